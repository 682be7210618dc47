/* Split-or-keep selection and painting (see select.h). Tested by tests/test_post_candidates.c. */
#include "post/select.h"

#include <stdlib.h>
#include <string.h>

/* Paints the pixels of one bbox row of src that hold `from` as `to` (pieces lie inside their
 * parent's bbox, so painting walks only that box). */
static void paint(uint16_t *out, const int32_t *src, int32_t from, uint16_t to, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (src[i] == from) out[i] = to;
}

ky_status ky_post_select(uint16_t *out, int *n_inst, const ky_candidates *c, const ky_features *f,
                         const double *scores, double thr) {
  KY_CHECK_NULL(out, "out"); KY_CHECK_NULL(c, "c"); KY_CHECK_NULL(f, "f"); KY_CHECK_NULL(scores, "scores");
  KY_CHECK(c->labels != NULL, KY_ERR_STATE, "%s: candidates are not computed", __func__);
  int want = c->n;
  for (int j = 0; j < KY_POST_LEVELS; j++) want += c->n_pieces[j];
  KY_CHECK(f->rows == want, KY_ERR_SHAPE, "%s: feature table has %d rows, candidates have %d", __func__,
           f->rows, want);
  for (int r = 0; r < f->rows; r++)
    KY_CHECK(scores[r] == scores[r], KY_ERR_NUMERIC, "%s: score of row %d is NaN", __func__, r);
  size_t n = (size_t)c->h * c->w;
  memset(out, 0, n * sizeof *out);
  int clr = 0;
  for (int i = 0; i < c->n; i++) {
    int max_sep = -1;
    double best = scores[i];
    for (int j = 0; j < KY_POST_LEVELS; j++) {
      int cnt = c->piece_count[j][i];
      if (cnt <= 1) continue;
      const double *ps = scores + f->offset[j + 1] + c->first_piece[j][i];
      double sum = 0, mx = ps[0];
      for (int k = 0; k < cnt; k++) { sum += ps[k]; if (ps[k] > mx) mx = ps[k]; }
      double mean = sum / cnt;
      if (mean > best) { max_sep = j; break; }   /* the first level whose mean beats the best wins */
      if (mx > best) { max_sep = j; best = mx; }
    }
    const int *bb = c->bbox[i];
    if (max_sep >= 0) {
      int j = max_sep, first = c->first_piece[j][i];
      for (int k = 0; k < c->piece_count[j][i]; k++) {
        if (!(scores[f->offset[j + 1] + first + k] > thr)) continue;
        KY_CHECK(clr < 65535, KY_ERR_SHAPE, "%s: more than 65535 instances do not fit a uint16 image", __func__);
        ++clr;
        for (int r = bb[0]; r < bb[2]; r++)
          paint(out + (size_t)r * c->w + bb[1], c->lvl2[j] + (size_t)r * c->w + bb[1], first + k + 1, (uint16_t)clr,
                (size_t)(bb[3] - bb[1]));
      }
    } else if (scores[i] > thr) {
      KY_CHECK(clr < 65535, KY_ERR_SHAPE, "%s: more than 65535 instances do not fit a uint16 image", __func__);
      ++clr;
      for (int r = bb[0]; r < bb[2]; r++)
        paint(out + (size_t)r * c->w + bb[1], c->labels + (size_t)r * c->w + bb[1], i + 1, (uint16_t)clr,
              (size_t)(bb[3] - bb[1]));
    }
  }
  if (n_inst) *n_inst = clr;
  return KY_OK;
}

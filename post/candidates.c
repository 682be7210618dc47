/* Level-1 and level-2 candidates (see candidates.h; spec section 7.1 / 7.2, victor/train_classifier.py
 * get_inputs). Tested by tests/test_post_candidates.c. */
#include "post/candidates.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "post/components.h"
#include "post/morph.h"
#include "post/watershed.h"

enum { MIN_SIZE = 10, BODY_MASK = 70, EXT_MASK = 90, EXT_DILATE = 7 };
static const double split_thr[KY_POST_LEVELS] = {0.6, 0.7, 0.8};

ky_cand_opts ky_cand_opts_default(void) {
  ky_cand_opts o = {0, 1};
  return o;
}

void ky_post_candidates_free(ky_candidates *c) {
  if (!c) return;
  free(c->labels); free(c->area); free(c->bbox); free(c->v_mean); free(c->v_std);
  free(c->bst_j); free(c->max_regs); free(c->v2);
  for (int j = 0; j < KY_POST_LEVELS; j++) {
    free(c->lvl2[j]); free(c->piece_parent[j]); free(c->first_piece[j]); free(c->piece_count[j]);
  }
  memset(c, 0, sizeof *c);
}

static ky_status flood(const ky_cand_opts *o, int32_t *lab, const uint8_t *el, const uint8_t *mask,
                       int h, int w, int line) {
  return o->exact_watershed ? ky_post_watershed_u8(lab, el, mask, h, w, 4, line)
                            : ky_post_watershed_u8_fast(lab, el, mask, h, w, 4, line);
}

/* q = b (1 - s) with the reference's float64 operations, so thresholds cut at the same pixels. */
static inline double seed_q(uint8_t b, uint8_t s) { return (b / 255.0) * (1.0 - s / 255.0); }

/* Steps 1-5 of section 7.1: main candidate labels into c->labels and mean_pred. */
static ky_status level1(ky_candidates *c, const uint8_t *B, const uint8_t *S, const uint8_t *E,
                        const ky_cand_opts *o, int32_t *lab, uint8_t *el, uint8_t *msk) {
  int h = c->h, w = c->w, cnt = 0;
  size_t n = (size_t)h * w;
  for (size_t i = 0; i < n; i++) msk[i] = seed_q(B[i], S[i]) > 0.5;
  KY_TRY(ky_post_label_binary(lab, &cnt, msk, h, w, 8));
  KY_TRY(ky_post_remove_small(lab, h, w, cnt, MIN_SIZE));
  KY_TRY(ky_post_relabel_sequential(lab, &cnt, h, w, cnt));
  for (size_t i = 0; i < n; i++) { el[i] = 255 - B[i]; msk[i] = B[i] > BODY_MASK; }
  KY_TRY(flood(o, lab, el, msk, h, w, 1));
  uint64_t sum = 0, num = 0;
  for (size_t i = 0; i < n; i++) if (lab[i]) { sum += B[i]; num++; }
  c->mean_pred = num ? (double)sum / (double)num : 0.0;
  if (E) {
    for (size_t i = 0; i < n; i++) el[i] = lab[i] != 0;
    KY_TRY(ky_post_dilate_square(msk, el, h, w, EXT_DILATE));
    for (size_t i = 0; i < n; i++) {
      msk[i] = (msk[i] && E[i] > EXT_MASK) || lab[i];
      el[i] = 255 - E[i];
    }
    KY_TRY(flood(o, lab, el, msk, h, w, 0));
  }
  KY_TRY(ky_post_remove_small(lab, h, w, cnt, MIN_SIZE));
  KY_TRY(ky_post_label_image(c->labels, &cnt, lab, h, w, 8));
  c->n = cnt;
  return KY_OK;
}

static ky_status alloc_main(ky_candidates *c) {
  int n = c->n > 0 ? c->n : 1;
  c->area = calloc(n, sizeof *c->area);
  c->bbox = calloc(n, sizeof *c->bbox);
  c->v_mean = calloc(n, sizeof *c->v_mean);
  c->v_std = calloc(n, sizeof *c->v_std);
  c->bst_j = calloc(n, sizeof *c->bst_j);
  c->max_regs = calloc(n, sizeof *c->max_regs);
  int ok = c->area && c->bbox && c->v_mean && c->v_std && c->bst_j && c->max_regs;
  for (int j = 0; j < KY_POST_LEVELS; j++) {
    c->lvl2[j] = calloc((size_t)c->h * c->w, sizeof *c->lvl2[j]);
    c->first_piece[j] = calloc(n, sizeof *c->first_piece[j]);
    c->piece_count[j] = calloc(n, sizeof *c->piece_count[j]);
    ok = ok && c->lvl2[j] && c->first_piece[j] && c->piece_count[j];
  }
  return ok ? KY_OK : ky_error(KY_ERR_NOMEM, "candidates: no memory for %d candidates", c->n);
}

static void area_bbox(ky_candidates *c) {
  for (int i = 0; i < c->n; i++) {
    c->bbox[i][0] = c->h; c->bbox[i][1] = c->w; c->bbox[i][2] = 0; c->bbox[i][3] = 0;
  }
  for (int r = 0; r < c->h; r++)
    for (int x = 0; x < c->w; x++) {
      int32_t l = c->labels[(size_t)r * c->w + x];
      if (!l) continue;
      int *b = c->bbox[l - 1];
      c->area[l - 1]++;
      if (r < b[0]) b[0] = r;
      if (x < b[1]) b[1] = x;
      if (r + 1 > b[2]) b[2] = r + 1;
      if (x + 1 > b[3]) b[3] = x + 1;
    }
}

static int add_pieces(ky_candidates *c, int j, int parent, int count) {
  int *p = realloc(c->piece_parent[j], (size_t)(c->n_pieces[j] + count) * sizeof *p);
  if (!p) return 0;
  c->piece_parent[j] = p;
  for (int k = 0; k < count; k++) p[c->n_pieces[j] + k] = parent;
  c->first_piece[j][parent] = c->n_pieces[j];
  c->piece_count[j][parent] = count;
  c->n_pieces[j] += count;
  return 1;
}

/* Section 7.2 for candidate i on its bounding-box crop. Bz / Ez: the (possibly zeroed) maps. */
static ky_status level2_one(ky_candidates *c, int i, const uint8_t *Bz, const uint8_t *S, const uint8_t *Ez,
                            const ky_cand_opts *o) {
  const int *bb = c->bbox[i];
  int bh = bb[2] - bb[0], bw = bb[3] - bb[1], w = c->w;
  size_t m = (size_t)bh * bw;
  uint8_t *reg = malloc(m), *bin = malloc(m), *el = malloc(m);
  int32_t *comp = malloc(m * sizeof *comp);
  ky_status s = KY_OK;
  if (!reg || !bin || !el || !comp) { s = ky_error(KY_ERR_NOMEM, "candidates: no memory for a %dx%d crop", bh, bw); goto done; }
  double sum = 0;
  for (int r = 0; r < bh; r++)
    for (int x = 0; x < bw; x++) {
      size_t g = (size_t)(bb[0] + r) * w + bb[1] + x, k = (size_t)r * bw + x;
      reg[k] = c->labels[g] == i + 1;
      uint8_t v = (uint8_t)((Ez[g] + Bz[g]) / 2);   /* (0.5 E + 0.5 B).astype(uint8) */
      el[k] = 255 - v;
      if (reg[k]) sum += v;
    }
  double mean = sum / (double)c->area[i], ss = 0;
  for (int r = 0; r < bh; r++)
    for (int x = 0; x < bw; x++)
      if (reg[(size_t)r * bw + x]) {
        size_t g = (size_t)(bb[0] + r) * w + bb[1] + x;
        double d = (double)((Ez[g] + Bz[g]) / 2) - mean;
        ss += d * d;
      }
  c->v_mean[i] = mean;
  c->v_std[i] = sqrt(ss / (double)c->area[i]);
  c->bst_j[i] = 0;
  c->max_regs[i] = 1;
  for (int j = 0; j < KY_POST_LEVELS; j++) {
    c->piece_count[j][i] = 0;
    c->first_piece[j][i] = -1;
    if (c->bst_j[i] > 0) continue;
    for (int r = 0; r < bh; r++)
      for (int x = 0; x < bw; x++) {
        size_t g = (size_t)(bb[0] + r) * w + bb[1] + x, k = (size_t)r * bw + x;
        bin[k] = reg[k] && seed_q(Bz[g], S[g]) > split_thr[j];
      }
    if (j == KY_POST_LEVELS - 1 && (s = ky_post_erode_square(bin, bin, bh, bw, 3, 1)) != KY_OK) goto done;
    int cnt = 0;
    if ((s = ky_post_label_binary(comp, &cnt, bin, bh, bw, 4)) != KY_OK) goto done;
    if (cnt > 1) { c->bst_j[i] = j + 1; c->max_regs[i] = cnt; }
    if (cnt > 1 || (j < KY_POST_LEVELS - 1 && cnt > 0)) {
      if ((s = flood(o, comp, el, reg, bh, bw, 0)) != KY_OK) goto done;
      int base = c->n_pieces[j];
      if (!add_pieces(c, j, i, cnt)) { s = ky_error(KY_ERR_NOMEM, "candidates: no memory for pieces"); goto done; }
      for (int r = 0; r < bh; r++)
        for (int x = 0; x < bw; x++) {
          int32_t l = comp[(size_t)r * bw + x];
          if (l) c->lvl2[j][(size_t)(bb[0] + r) * w + bb[1] + x] = base + l;
        }
    }
  }
done:
  free(reg); free(bin); free(el); free(comp);
  return s;
}

ky_status ky_post_candidates(ky_candidates *c, const uint8_t *B, const uint8_t *S, const uint8_t *E,
                             int h, int w, const ky_cand_opts *opts) {
  KY_CHECK_NULL(c, "c"); KY_CHECK_NULL(B, "B (body map)"); KY_CHECK_NULL(S, "S (separation map)");
  KY_CHECK(h > 0 && w > 0, KY_ERR_SHAPE, "%s: maps are %dx%d, expected positive sizes", __func__, h, w);
  ky_cand_opts o = opts ? *opts : ky_cand_opts_default();
  KY_CHECK(o.ref_bbox_zeroing == 0 || o.ref_bbox_zeroing == 1, KY_ERR_ARG,
           "%s: ref_bbox_zeroing is %d, expected 0 or 1", __func__, o.ref_bbox_zeroing);
  memset(c, 0, sizeof *c);
  c->h = h; c->w = w;
  size_t n = (size_t)h * w;
  int32_t *lab = malloc(n * sizeof *lab);
  uint8_t *el = malloc(n), *msk = malloc(n), *Bz = malloc(n), *Ez = E ? malloc(n) : NULL;
  c->labels = malloc(n * sizeof *c->labels);
  c->v2 = malloc(n);
  ky_status s = KY_OK;
  if (!lab || !el || !msk || !Bz || (E && !Ez) || !c->labels || !c->v2) {
    s = ky_error(KY_ERR_NOMEM, "%s: no memory for %dx%d maps", __func__, h, w);
    goto done;
  }
  if ((s = level1(c, B, S, E, &o, lab, el, msk)) != KY_OK) goto done;
  if ((s = alloc_main(c)) != KY_OK) goto done;
  area_bbox(c);
  memcpy(Bz, B, n);
  if (E) memcpy(Ez, E, n);
  const uint8_t *ez = E ? Ez : Bz;   /* without E the reference aliases E to B, zeros included */
  for (int i = 0; i < c->n; i++) {
    if ((s = level2_one(c, i, Bz, S, ez, &o)) != KY_OK) goto done;
    if (o.ref_bbox_zeroing) {
      const int *bb = c->bbox[i];
      for (int r = bb[0]; r < bb[2]; r++)
        for (int x = bb[1]; x < bb[3]; x++)
          if (c->labels[(size_t)r * w + x] != i + 1) Bz[(size_t)r * w + x] = 0;
    }
  }
  for (size_t i = 0; i < n; i++) c->v2[i] = (uint8_t)((ez[i] + Bz[i]) / 2);
done:
  free(lab); free(el); free(msk); free(Bz); free(Ez);
  if (s != KY_OK) ky_post_candidates_free(c);
  return s;
}

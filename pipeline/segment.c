/* Candidates -> (features -> GBT scores -> selection) -> instance labels.
 * Tested by tests/test_pipeline_segment.c. */
#include "pipeline/segment.h"

#include <stdlib.h>
#include <string.h>

#include "post/select.h"

ky_status ky_pipeline_instances(uint16_t *labels, int *n_inst, const ky_candidates *c, const ky_features *f,
                                const ky_gbt_ensemble *gbt, double thr) {
  KY_CHECK(labels && n_inst && c, KY_ERR_ARG, "instances: NULL labels, count or candidates");
  if (!gbt) {
    KY_CHECK(c->n <= 65535, KY_ERR_SHAPE, "segment: %d instances do not fit a 16-bit label map", c->n);
    for (size_t i = 0; i < (size_t)c->h * c->w; i++) labels[i] = (uint16_t)c->labels[i];
    *n_inst = c->n;
    return KY_OK;
  }
  KY_CHECK(f, KY_ERR_ARG, "instances: GBT scoring needs the candidates' features");
  KY_CHECK(gbt->n_features == KY_POST_NFEAT, KY_ERR_SHAPE, "segment: GBT model has %d features, candidates have %d",
           gbt->n_features, KY_POST_NFEAT);
  size_t rows = (size_t)(f->rows ? f->rows : 1);
  float *x = malloc(rows * KY_POST_NFEAT * sizeof *x);
  double *scores = malloc(rows * sizeof *scores);
  ky_status s = KY_OK;
  if (!x || !scores) s = ky_error(KY_ERR_NOMEM, "segment: out of memory for %d candidate rows", f->rows);
  if (s == KY_OK) {
    for (size_t i = 0; i < (size_t)f->rows * KY_POST_NFEAT; i++) x[i] = (float)f->x[i];
    if (f->rows) s = ky_gbt_ensemble_predict(gbt, scores, x, f->rows, KY_POST_NFEAT);
  }
  if (s == KY_OK) s = ky_post_select(labels, n_inst, c, f, scores, thr);
  free(x);
  free(scores);
  return s;
}

ky_status ky_pipeline_segment(uint16_t *labels, int *n_inst, const uint8_t *B, const uint8_t *S, const uint8_t *E,
                              int h, int w, const ky_gbt_ensemble *gbt, double thr) {
  KY_CHECK(labels && n_inst && B && S, KY_ERR_ARG, "segment: NULL labels, count, body or border map");
  KY_CHECK(h > 0 && w > 0, KY_ERR_ARG, "segment: empty %dx%d map", w, h);
  KY_CHECK(!gbt || gbt->n_features == KY_POST_NFEAT, KY_ERR_SHAPE, "segment: GBT model has %d features, candidates have %d",
           gbt ? gbt->n_features : 0, KY_POST_NFEAT);
  ky_cand_opts opts = ky_cand_opts_default();
  ky_candidates c;
  KY_TRY(ky_post_candidates(&c, B, S, E, h, w, &opts));
  ky_features f;
  memset(&f, 0, sizeof f);
  ky_status s = gbt ? ky_post_features(&f, &c) : KY_OK;
  if (s == KY_OK) s = ky_pipeline_instances(labels, n_inst, &c, gbt ? &f : NULL, gbt, thr);
  ky_post_features_free(&f);
  ky_post_candidates_free(&c);
  return s;
}

/* Candidate table building and GBT training over a folder of probability maps.
 * Tested by tests/test_pipeline_postproc.c. */
#include "pipeline/postproc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/image.h"
#include "data/dsb.h"
#include "post/candidates.h"
#include "post/features.h"

static ky_status read_map(uint8_t **out, int *h, int *w, const char *path, int optional) {
  *out = NULL;
  if (optional && access(path, F_OK) != 0) return KY_OK;
  ky_image im;
  KY_TRY(ky_image_load_u8(&im, path, 1));
  if (*h && (im.h != *h || im.w != *w)) {
    ky_image_free(&im);
    return ky_error(KY_ERR_SHAPE, "%s is %dx%d, the body map is %dx%d", path, im.w, im.h, *w, *h);
  }
  *h = im.h;
  *w = im.w;
  *out = im.data;
  return KY_OK;
}

ky_status ky_postproc_read_maps(uint8_t **B, uint8_t **S, uint8_t **E, int *h, int *w, const char *prob_dir,
                                const char *id) {
  char p[4096];
  *B = *S = *E = NULL;
  *h = *w = 0;
  snprintf(p, sizeof p, "%s/%s_body.png", prob_dir, id);
  KY_TRY(read_map(B, h, w, p, 0));
  snprintf(p, sizeof p, "%s/%s_border.png", prob_dir, id);
  ky_status s = read_map(S, h, w, p, 0);
  if (s == KY_OK) {
    snprintf(p, sizeof p, "%s/%s_full.png", prob_dir, id);
    s = read_map(E, h, w, p, 1);
  }
  if (s != KY_OK) { free(*B); free(*S); *B = *S = NULL; }
  return s;
}

ky_status ky_postproc_table(float **x_out, float **y_out, int **g_out, ky_postproc_stats *st, const char *prob_dir,
                            const char *truth_dir) {
  KY_CHECK(x_out && y_out && g_out && st && prob_dir && truth_dir, KY_ERR_ARG, "postproc: NULL argument");
  ky_dsb_ids ids;
  KY_TRY(ky_dsb_list_ids(&ids, truth_dir));
  /* Only the ids with maps, so that groups number the images used 0, 1, 2, ... */
  int n = 0, skipped = 0;
  for (int i = 0; i < ids.n; i++) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s_body.png", prob_dir, ids.ids[i]);
    if (access(p, F_OK) == 0) ids.ids[n++] = ids.ids[i];
    else { free(ids.ids[i]); skipped++; }
  }
  ids.n = n;
  ky_status s = ky_postproc_table_ids(x_out, y_out, g_out, st, prob_dir, truth_dir, (const char *const *)ids.ids, n);
  ky_dsb_ids_free(&ids);
  st->n_skipped += skipped;
  if (s == KY_OK && st->n_images == 0) s = ky_error(KY_ERR_ARG, "postproc: no probability maps in %s for the images of %s", prob_dir, truth_dir);
  return s;
}

ky_status ky_postproc_table_ids(float **x_out, float **y_out, int **g_out, ky_postproc_stats *st, const char *prob_dir,
                                const char *truth_dir, const char *const *ids, int n_ids) {
  KY_CHECK(x_out && y_out && g_out && st && prob_dir && truth_dir && (ids || !n_ids), KY_ERR_ARG, "postproc: NULL argument");
  memset(st, 0, sizeof *st);
  *x_out = *y_out = NULL;
  *g_out = NULL;
  float *X = NULL, *Y = NULL;
  int *G = NULL;
  long cap = 0, rows = 0;
  ky_status s = KY_OK;
  double tsum = 0;
  for (int i = 0; i < n_ids && s == KY_OK; i++) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s_body.png", prob_dir, ids[i]);
    if (access(p, F_OK) != 0) { st->n_skipped++; continue; }
    uint8_t *B, *S, *E;
    int h, w;
    if ((s = ky_postproc_read_maps(&B, &S, &E, &h, &w, prob_dir, ids[i])) != KY_OK) break;
    ky_dsb_sample sm;
    ky_candidates c;
    ky_features f;
    memset(&c, 0, sizeof c);
    memset(&f, 0, sizeof f);
    double *yt = NULL;
    int32_t *gt = NULL;
    int have_c = 0, have_f = 0, have_sm = 0;
    if ((s = ky_dsb_load(&sm, truth_dir, ids[i], KY_DSB_MASKS_REQUIRED)) != KY_OK) goto next;
    have_sm = 1;
    if (sm.h != h || sm.w != w) { s = ky_error(KY_ERR_SHAPE, "%s: maps are %dx%d, the image %dx%d", ids[i], w, h, sm.w, sm.h); goto next; }
    ky_cand_opts o = ky_cand_opts_default();
    if ((s = ky_post_candidates(&c, B, S, E, h, w, &o)) != KY_OK) goto next;
    have_c = 1;
    if ((s = ky_post_features(&f, &c)) != KY_OK) goto next;
    have_f = 1;
    yt = malloc((size_t)(f.rows ? f.rows : 1) * sizeof *yt);
    gt = malloc((size_t)h * w * sizeof *gt);
    if (!yt || !gt) { s = ky_error(KY_ERR_NOMEM, "postproc: out of memory"); goto next; }
    for (size_t q = 0; q < (size_t)h * w; q++) gt[q] = sm.labels[q];
    if ((s = ky_post_iou_targets(yt, &c, &f, gt, h, w)) != KY_OK) goto next;
    if (rows + f.rows > cap) {
      long nc = (rows + f.rows) * 2 + 1024;
      float *nx = realloc(X, (size_t)nc * KY_POST_NFEAT * sizeof *nx);
      if (nx) X = nx;
      float *ny = realloc(Y, (size_t)nc * sizeof *ny);
      if (ny) Y = ny;
      int *ng = realloc(G, (size_t)nc * sizeof *ng);
      if (ng) G = ng;
      if (!nx || !ny || !ng) { s = ky_error(KY_ERR_NOMEM, "postproc: out of memory for %ld rows", nc); goto next; }
      cap = nc;
    }
    for (int r = 0; r < f.rows; r++) {
      for (int q = 0; q < KY_POST_NFEAT; q++) X[(rows + r) * KY_POST_NFEAT + q] = (float)f.x[(size_t)r * KY_POST_NFEAT + q];
      Y[rows + r] = (float)yt[r];
      G[rows + r] = i;
      tsum += yt[r];
    }
    rows += f.rows;
    st->n_images++;
  next:
    if (s != KY_OK) s = ky_error_context(s, "image %s: ", ids[i]);
    free(yt); free(gt); free(B); free(S); free(E);
    if (have_f) ky_post_features_free(&f);
    if (have_c) ky_post_candidates_free(&c);
    if (have_sm) ky_dsb_sample_free(&sm);
  }
  if (s != KY_OK) { free(X); free(Y); free(G); return s; }
  st->n_rows = rows;
  st->mean_target = rows ? tsum / rows : 0;
  *x_out = X;
  *y_out = Y;
  *g_out = G;
  return KY_OK;
}

ky_status ky_postproc_train(const char *prob_dir, const char *truth_dir, const char *model_out, int reps,
                            uint64_t seed, ky_postproc_stats *st) {
  KY_CHECK(model_out && reps >= 1, KY_ERR_ARG, "postproc train: need an output path and reps >= 1");
  float *X, *Y;
  int *G;
  ky_postproc_stats st0;
  if (!st) st = &st0;
  KY_TRY(ky_postproc_table(&X, &Y, &G, st, prob_dir, truth_dir));
  ky_gbt_ensemble e;
  ky_status s = ky_postproc_fit(&e, X, Y, G, st->n_rows, st->n_images, reps, seed);
  if (s == KY_OK) {
    s = ky_gbt_ensemble_save(&e, model_out);
    ky_gbt_ensemble_free(&e);
  }
  free(X); free(Y); free(G);
  return s;
}

ky_status ky_postproc_fit(ky_gbt_ensemble *e, const float *x, const float *y, const int *groups, long n_rows, int n_images,
                          int reps, uint64_t seed) {
  KY_CHECK(e && reps >= 1, KY_ERR_ARG, "postproc fit: need an output and reps >= 1");
  if (n_images < 3) return ky_error(KY_ERR_ARG, "postproc train: %d images with maps; the 3-fold split needs at least 3", n_images);
  if (n_rows < 10) return ky_error(KY_ERR_ARG, "postproc train: only %ld candidate rows", n_rows);
  ky_gbt_params base;
  ky_gbt_params_default(&base);
  base.num_rounds = 400;
  base.early_stopping = 5;
  base.bagging_fraction = 0.95;
  base.bagging_freq = 1;
  /* Small tables (the demo) cannot fill leaves of 20 rows. */
  if (n_rows < 2000) base.min_data_in_leaf = 5;
  return ky_gbt_ensemble_train(e, &base, x, y, groups, (int)n_rows, KY_POST_NFEAT, reps, 3, seed);
}

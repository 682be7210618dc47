/* Candidate table building (one image per thread) and GBT training over a folder of probability
 * maps. Tested by tests/test_apps_cli.c (postproc train: the same model at 1, 2 and 3 threads). */
#include "pipeline/postproc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/image.h"
#include "core/pool.h"
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

/* One image's candidate rows (features and IoU targets), computed on its own thread. */
typedef struct {
  const char *id;
  float *x, *y;            /* [rows][KY_POST_NFEAT], [rows] */
  int rows;
  ky_status s;
  char err[1024];
} table_item;

typedef struct {
  table_item *it;
  const char *prob_dir, *truth_dir;
} table_job;

static ky_status table_image(table_item *ti, const char *prob_dir, const char *truth_dir) {
  const char *id = ti->id;
  uint8_t *B = NULL, *S = NULL, *E = NULL;
  int h, w;
  KY_TRY(ky_postproc_read_maps(&B, &S, &E, &h, &w, prob_dir, id));
  ky_dsb_sample sm;
  ky_candidates c;
  ky_features f;
  memset(&c, 0, sizeof c);
  memset(&f, 0, sizeof f);
  double *yt = NULL;
  int32_t *gt = NULL;
  int have_c = 0, have_f = 0, have_sm = 0;
  ky_status s;
  if ((s = ky_dsb_load(&sm, truth_dir, id, KY_DSB_MASKS_REQUIRED)) != KY_OK) goto done;
  have_sm = 1;
  if (sm.h != h || sm.w != w) { s = ky_error(KY_ERR_SHAPE, "%s: maps are %dx%d, the image %dx%d", id, w, h, sm.w, sm.h); goto done; }
  ky_cand_opts o = ky_cand_opts_default();
  if ((s = ky_post_candidates(&c, B, S, E, h, w, &o)) != KY_OK) goto done;
  have_c = 1;
  if ((s = ky_post_features(&f, &c)) != KY_OK) goto done;
  have_f = 1;
  yt = malloc((size_t)(f.rows ? f.rows : 1) * sizeof *yt);
  gt = malloc((size_t)h * w * sizeof *gt);
  ti->x = malloc((size_t)(f.rows ? f.rows : 1) * KY_POST_NFEAT * sizeof *ti->x);
  ti->y = malloc((size_t)(f.rows ? f.rows : 1) * sizeof *ti->y);
  if (!yt || !gt || !ti->x || !ti->y) { s = ky_error(KY_ERR_NOMEM, "postproc: out of memory"); goto done; }
  for (size_t q = 0; q < (size_t)h * w; q++) gt[q] = sm.labels[q];
  if ((s = ky_post_iou_targets(yt, &c, &f, gt, h, w)) != KY_OK) goto done;
  for (int r = 0; r < f.rows; r++) {
    for (int q = 0; q < KY_POST_NFEAT; q++) ti->x[(size_t)r * KY_POST_NFEAT + q] = (float)f.x[(size_t)r * KY_POST_NFEAT + q];
    ti->y[r] = (float)yt[r];
  }
  ti->rows = f.rows;
done:
  free(yt); free(gt); free(B); free(S); free(E);
  if (have_f) ky_post_features_free(&f);
  if (have_c) ky_post_candidates_free(&c);
  if (have_sm) ky_dsb_sample_free(&sm);
  return s;
}

static ky_status table_chunk(void *a, size_t i, int slot) {
  table_job *j = a;
  table_item *ti = &j->it[i];
  ti->s = table_image(ti, j->prob_dir, j->truth_dir);
  if (ti->s != KY_OK) snprintf(ti->err, sizeof ti->err, "%s", ky_last_error());
  return KY_OK; /* kept per image, reported in image order */
}

/* Images run one per thread; their rows are appended in image order, so the table (and the first
 * error reported) is that of a one-thread run. Rows of ids[i] get group i. */
ky_status ky_postproc_table_ids_on(ky_pool *pool, float **x_out, float **y_out, int **g_out, ky_postproc_stats *st,
                                   const char *prob_dir, const char *truth_dir, const char *const *ids, int n_ids) {
  KY_CHECK(x_out && y_out && g_out && st && prob_dir && truth_dir && (ids || !n_ids), KY_ERR_ARG, "postproc: NULL argument");
  memset(st, 0, sizeof *st);
  *x_out = *y_out = NULL;
  *g_out = NULL;
  float *X = NULL, *Y = NULL;
  int *G = NULL;
  long cap = 0, rows = 0;
  ky_status s = KY_OK;
  double tsum = 0;
  table_item *items = calloc((size_t)(n_ids ? n_ids : 1), sizeof *items);
  int *group = calloc((size_t)(n_ids ? n_ids : 1), sizeof *group);
  int n = 0;
  if (!items || !group) s = ky_error(KY_ERR_NOMEM, "postproc: out of memory");
  for (int i = 0; i < n_ids && s == KY_OK; i++) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s_body.png", prob_dir, ids[i]);
    if (access(p, F_OK) != 0) { st->n_skipped++; continue; }
    group[n] = i;
    items[n++].id = ids[i];
  }
  table_job job = {items, prob_dir, truth_dir};
  if (s == KY_OK) (void)ky_pool_run(pool, (size_t)n, table_chunk, &job);
  for (int i = 0; i < n && s == KY_OK; i++) {
    table_item *ti = &items[i];
    if (ti->s != KY_OK) {
      s = ky_error_context(ky_error(ti->s, "%s", ti->err), "image %s: ", ti->id);
      break;
    }
    /* !X: an image without candidates adds no rows, but memcpy needs a buffer even for 0 bytes. */
    if (!X || rows + ti->rows > cap) {
      long nc = (rows + ti->rows) * 2 + 1024;
      float *nx = realloc(X, (size_t)nc * KY_POST_NFEAT * sizeof *nx);
      if (nx) X = nx;
      float *ny = realloc(Y, (size_t)nc * sizeof *ny);
      if (ny) Y = ny;
      int *ng = realloc(G, (size_t)nc * sizeof *ng);
      if (ng) G = ng;
      if (!nx || !ny || !ng) {
        s = ky_error_context(ky_error(KY_ERR_NOMEM, "postproc: out of memory for %ld rows", nc), "image %s: ", ti->id);
        break;
      }
      cap = nc;
    }
    memcpy(X + rows * KY_POST_NFEAT, ti->x, (size_t)ti->rows * KY_POST_NFEAT * sizeof *X);
    for (int r = 0; r < ti->rows; r++) {
      Y[rows + r] = ti->y[r];
      G[rows + r] = group[i];
      tsum += ti->y[r];
    }
    rows += ti->rows;
    st->n_images++;
  }
  if (items)
    for (int i = 0; i < n; i++) { free(items[i].x); free(items[i].y); }
  free(items);
  free(group);
  if (s != KY_OK) { free(X); free(Y); free(G); return s; }
  st->n_rows = rows;
  st->mean_target = rows ? tsum / rows : 0;
  *x_out = X;
  *y_out = Y;
  *g_out = G;
  return KY_OK;
}

/* Every image of the truth folder that has maps; groups number them 0, 1, 2, ... */
ky_status ky_postproc_table_on(ky_pool *pool, float **x_out, float **y_out, int **g_out, ky_postproc_stats *st,
                               const char *prob_dir, const char *truth_dir) {
  KY_CHECK(x_out && y_out && g_out && st && prob_dir && truth_dir, KY_ERR_ARG, "postproc: NULL argument");
  ky_dsb_ids ids;
  KY_TRY(ky_dsb_list_ids(&ids, truth_dir));
  int n = 0, skipped = 0;
  for (int i = 0; i < ids.n; i++) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s_body.png", prob_dir, ids.ids[i]);
    if (access(p, F_OK) == 0) ids.ids[n++] = ids.ids[i];
    else { free(ids.ids[i]); skipped++; }
  }
  ids.n = n;
  ky_status s = ky_postproc_table_ids_on(pool, x_out, y_out, g_out, st, prob_dir, truth_dir, (const char *const *)ids.ids, n);
  ky_dsb_ids_free(&ids);
  st->n_skipped += skipped;
  if (s == KY_OK && st->n_images == 0) {
    free(*x_out); free(*y_out); free(*g_out);
    *x_out = *y_out = NULL;
    *g_out = NULL;
    s = ky_error(KY_ERR_ARG, "postproc: no probability maps in %s for the images of %s", prob_dir, truth_dir);
  }
  return s;
}

/* The default pool: KY_THREADS, else every core. */
static ky_status default_pool(ky_pool **pool) {
  int threads;
  KY_TRY(ky_pool_default_threads(&threads));
  return ky_pool_create(pool, threads);
}

ky_status ky_postproc_table(float **x_out, float **y_out, int **g_out, ky_postproc_stats *st, const char *prob_dir,
                            const char *truth_dir) {
  ky_pool *pool;
  KY_TRY(default_pool(&pool));
  ky_status s = ky_postproc_table_on(pool, x_out, y_out, g_out, st, prob_dir, truth_dir);
  ky_pool_free(pool);
  return s;
}

ky_status ky_postproc_table_ids(float **x_out, float **y_out, int **g_out, ky_postproc_stats *st, const char *prob_dir,
                                const char *truth_dir, const char *const *ids, int n_ids) {
  ky_pool *pool;
  KY_TRY(default_pool(&pool));
  ky_status s = ky_postproc_table_ids_on(pool, x_out, y_out, g_out, st, prob_dir, truth_dir, ids, n_ids);
  ky_pool_free(pool);
  return s;
}

/* The reference's ensemble; boosters train on `threads` threads, bit for bit as on one (post/gbt.h). */
static ky_status fit(ky_gbt_ensemble *e, const float *x, const float *y, const int *groups, long n_rows, int n_images,
                     int reps, uint64_t seed, int threads) {
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
  base.threads = threads;
  return ky_gbt_ensemble_train(e, &base, x, y, groups, (int)n_rows, KY_POST_NFEAT, reps, 3, seed);
}

ky_status ky_postproc_fit(ky_gbt_ensemble *e, const float *x, const float *y, const int *groups, long n_rows, int n_images,
                          int reps, uint64_t seed) {
  int threads;
  KY_TRY(ky_pool_default_threads(&threads));
  return fit(e, x, y, groups, n_rows, n_images, reps, seed, threads);
}

ky_status ky_postproc_train(const char *prob_dir, const char *truth_dir, const char *model_out, int reps,
                            uint64_t seed, ky_postproc_stats *st) {
  ky_pool *pool;
  KY_TRY(default_pool(&pool));
  ky_status s = ky_postproc_train_on(pool, prob_dir, truth_dir, model_out, reps, seed, st);
  ky_pool_free(pool);
  return s;
}

ky_status ky_postproc_train_on(ky_pool *pool, const char *prob_dir, const char *truth_dir, const char *model_out,
                               int reps, uint64_t seed, ky_postproc_stats *st) {
  KY_CHECK(model_out && reps >= 1, KY_ERR_ARG, "postproc train: need an output path and reps >= 1");
  float *X, *Y;
  int *G;
  ky_postproc_stats st0;
  if (!st) st = &st0;
  KY_TRY(ky_postproc_table_on(pool, &X, &Y, &G, st, prob_dir, truth_dir));
  ky_gbt_ensemble e;
  ky_status s = fit(&e, X, Y, G, st->n_rows, st->n_images, reps, seed, ky_pool_threads(pool));
  if (s == KY_OK) {
    s = ky_gbt_ensemble_save(&e, model_out);
    ky_gbt_ensemble_free(&e);
  }
  free(X); free(Y); free(G);
  return s;
}

/* Post-processing time per real DSB image: for every image of a DSB folder (default: the bundled
 * sample; the full set: ../shared/data/dsb2018/stage1_train), stand-in network outputs are made
 * from the ground truth (the reference's body / separation / full targets, box-blurred so that
 * they have soft edges like probabilities), then timed: level-1 + level-2 candidates with the
 * exact watershed, the 41 features, and scoring every row with one booster (100 trees x 31
 * leaves) trained on all images' rows against their IoU targets. Prints medians, 90th
 * percentiles and maxima per image; not a test.
 *
 *   build/bench/bench_postproc [DSB_DIR] [max_images]                                       */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/dsb.h"
#include "data/targets.h"
#include "post/candidates.h"
#include "post/features.h"
#include "post/gbt.h"
#include "tests/util_test.h"

/* Separable box blur of radius 2, edges clamped: a soft version of a 0/255 target. */
static void blur5(uint8_t *m, uint8_t *tmp, int h, int w) {
  for (int r = 0; r < h; r++)
    for (int c = 0; c < w; c++) {
      int s = 0;
      for (int k = -2; k <= 2; k++) s += m[(size_t)r * w + (c + k < 0 ? 0 : c + k >= w ? w - 1 : c + k)];
      tmp[(size_t)r * w + c] = (uint8_t)((s + 2) / 5);
    }
  for (int r = 0; r < h; r++)
    for (int c = 0; c < w; c++) {
      int s = 0;
      for (int k = -2; k <= 2; k++) s += tmp[(size_t)(r + k < 0 ? 0 : r + k >= h ? h - 1 : r + k) * w + c];
      m[(size_t)r * w + c] = (uint8_t)((s + 2) / 5);
    }
}

typedef struct { double cand, feat, gbt, total, rows, mpix; } img_t;   /* per image */

static void report(const char *name, img_t *t, int n, size_t off) {
  double *v = malloc((size_t)n * sizeof *v);
  for (int i = 0; i < n; i++) memcpy(&v[i], (const char *)&t[i] + off, sizeof v[i]);   /* field at `off` */
  qsort(v, (size_t)n, sizeof *v, ky_test_cmp_double);
  printf("%-22s %10.2f %10.2f %10.2f\n", name, v[n / 2], v[(int)(0.9 * (n - 1))], v[n - 1]);
  free(v);
}

/* Exits (the process's memory goes with it) rather than returning through main's buffers. */
_Noreturn static int fail(const char *what) {
  fprintf(stderr, "bench_postproc: %s: %s\n", what, ky_last_error());
  exit(1);
}

int main(int argc, char **argv) {
  const char *root = argc > 1 ? argv[1] : "tests/fixtures/dsb_sample";
  int max = argc > 2 ? atoi(argv[2]) : 0;
  ky_dsb_ids ids;
  if (ky_dsb_list_ids(&ids, root) != KY_OK) return fail(root);
  int n = max > 0 && max < ids.n ? max : ids.n;
  img_t *t = calloc((size_t)n, sizeof *t);
  ky_features *feats = calloc((size_t)n, sizeof *feats);
  float *x = NULL, *y = NULL;
  size_t total = 0;
  for (int i = 0; i < n; i++) {
    ky_dsb_sample s;
    if (ky_dsb_load(&s, root, ids.ids[i], KY_DSB_MASKS_REQUIRED) != KY_OK) return fail(ids.ids[i]);
    size_t np = (size_t)s.h * s.w;
    uint8_t *B = malloc(np), *S = malloc(np), *E = malloc(np), *tmp = malloc(np);
    int32_t *gt = malloc(np * sizeof *gt);
    if (ky_targets_make(B, S, E, s.labels, s.h, s.w) != KY_OK) return fail(ids.ids[i]);
    blur5(B, tmp, s.h, s.w); blur5(S, tmp, s.h, s.w); blur5(E, tmp, s.h, s.w);
    for (size_t k = 0; k < np; k++) gt[k] = s.labels[k];
    ky_cand_opts o = ky_cand_opts_default();
    ky_candidates c;
    double t0 = ky_test_now_ms();
    if (ky_post_candidates(&c, B, S, E, s.h, s.w, &o) != KY_OK) return fail(ids.ids[i]);
    double t1 = ky_test_now_ms();
    if (ky_post_features(&feats[i], &c) != KY_OK) return fail(ids.ids[i]);
    double t2 = ky_test_now_ms();
    t[i].cand = t1 - t0;
    t[i].feat = t2 - t1;
    t[i].rows = feats[i].rows;
    t[i].mpix = np / 1e6;
    double *yi = malloc(((size_t)feats[i].rows + 1) * sizeof *yi);
    if (ky_post_iou_targets(yi, &c, &feats[i], gt, s.h, s.w) != KY_OK) return fail(ids.ids[i]);
    float *nx = realloc(x, (total + feats[i].rows) * KY_POST_NFEAT * sizeof *x);
    if (nx) x = nx;
    float *ny = realloc(y, (total + feats[i].rows) * sizeof *y);
    if (ny) y = ny;
    if (!nx || !ny) return fail("out of memory for the GBT rows");
    for (int r = 0; r < feats[i].rows; r++) {
      for (int j = 0; j < KY_POST_NFEAT; j++)
        x[(total + r) * KY_POST_NFEAT + j] = (float)feats[i].x[(size_t)r * KY_POST_NFEAT + j];
      y[total + r] = (float)yi[r];
    }
    total += feats[i].rows;
    free(yi);
    ky_post_candidates_free(&c);
    free(B); free(S); free(E); free(tmp); free(gt);
    ky_dsb_sample_free(&s);
  }
  ky_gbt_params p;
  ky_gbt_params_default(&p);
  ky_gbt_model m;
  if (ky_gbt_train(&m, &p, x, y, (int)total, KY_POST_NFEAT, NULL, NULL, 0) != KY_OK) return fail("gbt");
  size_t at = 0;
  for (int i = 0; i < n; i++) {
    int rows = feats[i].rows;
    double *pred = malloc(((size_t)rows + 1) * sizeof *pred), best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
      double t0 = ky_test_now_ms();
      if (ky_gbt_predict(&m, pred, x + at * KY_POST_NFEAT, rows, KY_POST_NFEAT) != KY_OK) return fail("predict");
      double d = ky_test_now_ms() - t0;
      best = d < best ? d : best;
    }
    t[i].gbt = best;
    t[i].total = t[i].cand + t[i].feat + best;
    at += rows;
    free(pred);
    ky_post_features_free(&feats[i]);
  }
  printf("bench_postproc: %d images of %s, %zu candidate rows; stand-in maps from the ground truth;\n"
         "one booster of %d trees for scoring (the reference's ensemble has 150 boosters)\n\n",
         n, root, total, m.n_trees);
  printf("%-22s %10s %10s %10s\n", "per image", "median", "p90", "max");
  report("candidates ms", t, n, offsetof(img_t, cand));
  report("features ms", t, n, offsetof(img_t, feat));
  report("GBT scoring ms", t, n, offsetof(img_t, gbt));
  report("total ms", t, n, offsetof(img_t, total));
  report("rows", t, n, offsetof(img_t, rows));
  report("megapixels", t, n, offsetof(img_t, mpix));
  ky_gbt_free(&m);
  free(x); free(y); free(t); free(feats);
  ky_dsb_ids_free(&ids);
  return 0;
}

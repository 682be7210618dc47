/* Watershed and candidate-pipeline speed on a synthetic 1024x1024 nucleus image (~1,000 markers):
 * exact (skimage-order heap) and fast (FIFO queues) floods with and without lines, then the full
 * post-processing per image: level-1 + level-2 candidates, the 41 features, and GBT scoring. Inputs
 * and outputs are saved to /tmp (ky_bench_ws_*.png); tests/fixtures/bench_watershed.py runs this
 * program, times skimage and OpenCV on the same data right after, checks the labels against
 * skimage's, and prints the ratios to OpenCV. Prints medians and minima; not a test. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/image.h"
#include "core/rng.h"
#include "post/candidates.h"
#include "post/components.h"
#include "post/features.h"
#include "post/gbt.h"
#include "post/watershed.h"
#include "tests/util_test.h"

enum { H = 1024, W = 1024, NUC = 1400, REPS = 9 };

static double median(double *v, int n) { qsort(v, n, sizeof *v, ky_test_cmp_double); return v[n / 2]; }
/* call after median (sorted) */
static double minimum(const double *v) { return v[0]; }

/* Discs of random radius: B peaks (255, saturated) in the middle and falls to the rim, S marks
 * pixels near a different disc, E is the full disc with a soft rim. */
static void synth(uint8_t *B, uint8_t *S, uint8_t *E) {
  ky_rng r = ky_rng_make(2018, KY_RNG_STREAM_TEST);
  int32_t *own = calloc((size_t)H * W, sizeof *own);
  memset(B, 0, (size_t)H * W); memset(S, 0, (size_t)H * W); memset(E, 0, (size_t)H * W);
  for (int k = 1; k <= NUC; k++) {
    double cy = ky_rng_uniform(&r) * H, cx = ky_rng_uniform(&r) * W, rad = 6 + ky_rng_uniform(&r) * 9;
    for (int y = (int)(cy - rad - 2); y <= (int)(cy + rad + 2); y++)
      for (int x = (int)(cx - rad - 2); x <= (int)(cx + rad + 2); x++) {
        if (y < 0 || y >= H || x < 0 || x >= W) continue;
        double d = sqrt((y - cy) * (y - cy) + (x - cx) * (x - cx));
        size_t i = (size_t)y * W + x;
        if (d <= rad + 1.5 && own[i] && own[i] != k) S[i] = 230;
        if (d > rad) continue;
        double b = 255.0 * fmin(1.0, 2.2 * (1.0 - d / rad));
        if (b > B[i]) B[i] = (uint8_t)b;
        E[i] = (uint8_t)fmin(255.0, 255.0 * 3.0 * (1.0 - d / (rad + 0.5)));
        own[i] = k;
      }
  }
  for (size_t i = 0; i < (size_t)H * W; i++) {   /* a little noise breaks the plateaus up */
    int n = (int)(ky_rng_u32(&r) % 9) - 4;
    int b = B[i] + (B[i] > 0 && B[i] < 250 ? n : 0);
    B[i] = (uint8_t)(b < 0 ? 0 : b > 255 ? 255 : b);
  }
  free(own);
}

/* Time to score every candidate row of one image with one booster shaped like the reference's
 * (100 rounds, 31 leaves), trained here on the rows themselves against a made-up target. */
static ky_status bench_gbt(double *ms, const ky_features *f) {
  size_t n = (size_t)f->rows, nf = KY_POST_NFEAT;
  float *x = malloc(n * nf * sizeof *x), *y = malloc(n * sizeof *y);
  double *pred = malloc(n * sizeof *pred);
  ky_gbt_model m = {0};
  ky_status s = KY_ERR_NOMEM;
  if (!x || !y || !pred) goto done;
  for (size_t i = 0; i < n; i++) {
    for (size_t j = 0; j < nf; j++) x[i * nf + j] = (float)f->x[i * nf + j];
    y[i] = (float)(f->x[i * nf + 2] * 0.5 + (i % 7) * 0.05);   /* any target: the trees' shape is what costs */
  }
  ky_gbt_params p;
  ky_gbt_params_default(&p);
  p.min_data_in_leaf = 5;
  if ((s = ky_gbt_train(&m, &p, x, y, (int)n, (int)nf, NULL, NULL, 0)) != KY_OK) goto done;
  double t[REPS];
  for (int r = 0; r < REPS; r++) {
    double t0 = ky_test_now_ms();
    if ((s = ky_gbt_predict(&m, pred, x, (int)n, (int)nf)) != KY_OK) goto done;
    t[r] = ky_test_now_ms() - t0;
  }
  median(t, REPS);
  *ms = minimum(t);
done:
  if (s == KY_ERR_NOMEM && (!x || !y || !pred)) s = ky_error(KY_ERR_NOMEM, "bench_gbt: no memory");
  ky_gbt_free(&m);
  free(x); free(y); free(pred);
  return s;
}

int main(void) {
  size_t n = (size_t)H * W;
  uint8_t *B = malloc(n), *S = malloc(n), *E = malloc(n), *el = malloc(n), *seed = malloc(n);
  int32_t *mk = malloc(n * sizeof *mk), *lab = malloc(n * sizeof *lab);
  uint16_t *out16 = malloc(n * sizeof *out16);
  synth(B, S, E);
  int nm = 0;
  for (size_t i = 0; i < n; i++) { el[i] = 255 - B[i]; seed[i] = B[i] > 200 && S[i] == 0; }
  if (ky_post_label_binary(mk, &nm, seed, H, W, 8) != KY_OK) { fprintf(stderr, "%s\n", ky_last_error()); return 1; }
  for (size_t i = 0; i < n; i++) out16[i] = (uint16_t)mk[i];
  ky_png_save_u8("/tmp/ky_bench_ws_elev.png", el, W, H, 1);
  ky_png_save_u16("/tmp/ky_bench_ws_markers.png", out16, W, H, 1);
  printf("bench_watershed: %dx%d, %d markers, no mask, connectivity 4, %d runs (median and min: the\n"
         "build machine is shared, so min is the steadier figure)\n\n", W, H, nm, REPS);
  printf("%-24s %10s %10s %10s\n", "flood", "median ms", "min ms", "Mpix/s@min");
  for (int line = 0; line <= 1; line++)
    for (int fast = 0; fast <= 1; fast++) {
      double t[REPS];
      for (int r = 0; r < REPS; r++) {
        memcpy(lab, mk, n * sizeof *lab);
        double t0 = ky_test_now_ms();
        ky_status s = fast ? ky_post_watershed_u8_fast(lab, el, NULL, H, W, 4, line)
                           : ky_post_watershed_u8(lab, el, NULL, H, W, 4, line);
        t[r] = ky_test_now_ms() - t0;
        if (s != KY_OK) { fprintf(stderr, "%s\n", ky_last_error()); return 1; }
      }
      double ms = median(t, REPS), mn = minimum(t);
      char name[64];
      snprintf(name, sizeof name, "%s, lines %s", fast ? "fast (buckets)" : "exact", line ? "on" : "off");
      printf("%-24s %10.2f %10.2f %10.1f\n", name, ms, mn, n / 1e3 / mn);
      char path[128];
      snprintf(path, sizeof path, "/tmp/ky_bench_ws_%s_l%d.png", fast ? "fast" : "exact", line);
      for (size_t i = 0; i < n; i++) out16[i] = (uint16_t)lab[i];
      ky_png_save_u16(path, out16, W, H, 1);
    }
  printf("\n%-24s %10s %8s %8s\n", "pipeline (B,S,E 1024^2)", "min ms", "mains", "rows");
  double gbt_ms = 0, gbt_rows = 0;
  for (int fast = 0; fast <= 1; fast++) {
    double tc[5], tf[5];
    int mains = 0, rows = 0;
    for (int r = 0; r < 5; r++) {
      ky_cand_opts o = ky_cand_opts_default();
      o.exact_watershed = !fast;
      ky_candidates c;
      ky_features f;
      double t0 = ky_test_now_ms();
      if (ky_post_candidates(&c, B, S, E, H, W, &o) != KY_OK) { fprintf(stderr, "%s\n", ky_last_error()); return 1; }
      double t1 = ky_test_now_ms();
      if (ky_post_features(&f, &c) != KY_OK) { fprintf(stderr, "%s\n", ky_last_error()); return 1; }
      tf[r] = ky_test_now_ms() - t1;
      tc[r] = t1 - t0;
      mains = c.n; rows = f.rows;
      if (!fast && r == 0) {
        if (bench_gbt(&gbt_ms, &f) != KY_OK) { fprintf(stderr, "%s\n", ky_last_error()); return 1; }
        gbt_rows = f.rows;
      }
      ky_post_features_free(&f);
      ky_post_candidates_free(&c);
    }
    median(tc, 5); median(tf, 5);
    double a = minimum(tc), b = minimum(tf);
    printf("%-24s %10.1f %8d %8d   (candidates %.1f + features %.1f)\n", fast ? "fast watershed" : "exact watershed",
           a + b, mains, rows, a, b);
  }
  printf("%-24s %10.2f %8s %8.0f   (100 trees x 31 leaves, all rows of the exact run)\n", "GBT scoring, 1 booster",
         gbt_ms, "", gbt_rows);
  printf("%-24s %10.1f %8s %8s   (150 x the above: the reference's 50 x 3-fold ensemble)\n", "GBT scoring, 150",
         150 * gbt_ms, "", "");
  free(B); free(S); free(E); free(el); free(seed); free(mk); free(lab); free(out16);
  return 0;
}

/* Benchmark of post/gbt: training time on 100k x 41 synthetic rows (seeded), prediction rows/s for
 * one booster and per-image scoring cost. Prints a table of medians; compare with
 * tests/fixtures/bench_gbt.py (xgboost / LightGBM on the same kind of data and settings). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/rng.h"
#include "post/gbt.h"
#include "tests/util_test.h"

#define NTRAIN 100000
#define NTEST 20000
#define NF 41

/* CPU time of this process: the build machine is shared, so wall time mostly measures neighbours.
 * The code is single-threaded, so CPU time is the wall time it would take on an idle core. */
static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* Same function as bench_gbt.py: a few informative features among 41 uniform ones. */
static void make_data(float *x, float *y, int n, ky_rng *r) {
  for (int i = 0; i < n; i++) {
    float *xi = x + (size_t)i * NF;
    for (int f = 0; f < NF; f++) xi[f] = ky_rng_uniform(r);
    y[i] = (float)(10 * sin(M_PI * xi[0] * xi[1]) + 20 * (xi[2] - 0.5) * (xi[2] - 0.5) + 10 * xi[3] + 5 * xi[4] +
                   ky_rng_normal(r));
  }
}

int main(int argc, char **argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 3;
  if (reps < 1) reps = 1;
  float *x = malloc(sizeof(float) * NTRAIN * NF), *y = malloc(sizeof(float) * NTRAIN);
  float *xt = malloc(sizeof(float) * NTEST * NF), *yt = malloc(sizeof(float) * NTEST);
  double *pred = malloc(sizeof(double) * NTEST);
  ky_rng r = ky_rng_make(2018, KY_RNG_STREAM_TEST);
  make_data(x, y, NTRAIN, &r);
  make_data(xt, yt, NTEST, &r);

  struct { const char *name; int leaves; double lr, ff, bag; int freq; } cfg[] = {
    {"31 leaves, lr .1, no sampling", 31, 0.1, 1.0, 1.0, 0},
    {"31 leaves, lr .07, ff .75, bag .95", 31, 0.07, 0.75, 0.95, 1},
  };
  printf("bench_gbt: %d train rows x %d features, %d test rows, 100 rounds, single thread, CPU seconds, median of %d\n",
         NTRAIN, NF, NTEST, reps);
  printf("%-38s %10s %12s %14s %10s\n", "config", "train s", "ms / round", "predict rows/s", "test RMSE");
  for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
    ky_gbt_params p;
    ky_gbt_params_default(&p);
    p.num_rounds = 100;
    p.num_leaves = cfg[c].leaves;
    p.learning_rate = cfg[c].lr;
    p.feature_fraction = cfg[c].ff;
    p.bagging_fraction = cfg[c].bag;
    p.bagging_freq = cfg[c].freq;
    double tt[16] = {0}, tp[16] = {0}, rm = 0;
    for (int k = 0; k < reps && k < 16; k++) {
      ky_gbt_model m;
      double t0 = now();
      if (ky_gbt_train(&m, &p, x, y, NTRAIN, NF, NULL, NULL, 0) != KY_OK) { fprintf(stderr, "%s\n", ky_last_error()); exit(1); }
      tt[k] = now() - t0;
      t0 = now();
      ky_gbt_predict(&m, pred, xt, NTEST, NF);
      tp[k] = now() - t0;
      double s = 0;
      for (int i = 0; i < NTEST; i++) s += (pred[i] - yt[i]) * (pred[i] - yt[i]);
      rm = sqrt(s / NTEST);
      if (c == 0 && k == 0) {
        /* Per-image cost: 300 candidates through this 100-tree booster, and through 150 such
         * boosters (the reference ensemble's size, before early stopping trims trees). */
        double t1 = now();
        int loops = 200;
        volatile double sink = 0;
        for (int l = 0; l < loops; l++)
          for (int i = 0; i < 300; i++) sink += ky_gbt_predict_row(&m, xt + (size_t)i * NF);
        double per_row = (now() - t1) / loops;
        t1 = now();
        for (int l = 0; l < loops; l++) ky_gbt_predict(&m, pred, xt, 300, NF);
        double per_batch = (now() - t1) / loops;
        printf("  per image (300 candidates, one 100-tree booster): %.3f ms row by row, %.3f ms batched;"
               " x150 boosters: %.1f ms batched\n", per_row * 1e3, per_batch * 1e3, per_batch * 150 * 1e3);
        (void)sink;
      }
      ky_gbt_free(&m);
    }
    int n = reps < 16 ? reps : 16;
    qsort(tt, n, sizeof *tt, ky_test_cmp_double);
    qsort(tp, n, sizeof *tp, ky_test_cmp_double);
    printf("%-38s %10.2f %12.1f %14.0f %10.4f\n", cfg[c].name, tt[n / 2], tt[n / 2] * 1e3 / 100, NTEST / tp[n / 2], rm);
  }
  free(x); free(y); free(xt); free(yt); free(pred);
  return 0;
}

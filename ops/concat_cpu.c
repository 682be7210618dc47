/* CPU reference channel concatenation over NHWC (forward copy, backward split-accumulate), in
 * fixed runs of pixels on the pool (pixels are independent). Tested by tests/test_ops_kernels.c
 * (hand-worked values, NULL gradient slots, accumulation) and tests/test_ops_threads.c. */
#include <string.h>

#include "ops/kernels.h"

enum { PIX = 1024 }; /* pixels per chunk */

typedef struct {
  float *y;
  const float *const *xs;
  float *const *dxs;
  const float *dy;
  const int *cs;
  int k;
  size_t cy;
} cat_job;

static void cat_fwd(void *a, size_t lo, size_t hi) {
  cat_job *j = a;
  for (size_t p = lo; p < hi; p++) {
    float *o = j->y + p * j->cy;
    for (int i = 0; i < j->k; i++) {
      memcpy(o, j->xs[i] + p * j->cs[i], (size_t)j->cs[i] * sizeof *o);
      o += j->cs[i];
    }
  }
}

void ky_cpu_concat_fwd(ky_pool *pool, float *y, const float *const *xs, const int *cs, int k, size_t npix) {
  cat_job j = {y, xs, NULL, NULL, cs, k, 0};
  for (int i = 0; i < k; i++) j.cy += (size_t)cs[i];
  ky_pool_for(pool, npix, PIX, cat_fwd, &j);
}

static void cat_bwd(void *a, size_t lo, size_t hi) {
  cat_job *j = a;
  for (size_t p = lo; p < hi; p++) {
    const float *g = j->dy + p * j->cy;
    for (int i = 0; i < j->k; i++) {
      if (j->dxs[i]) {
        float *o = j->dxs[i] + p * j->cs[i];
        for (int q = 0; q < j->cs[i]; q++) o[q] += g[q];
      }
      g += j->cs[i];
    }
  }
}

void ky_cpu_concat_bwd(ky_pool *pool, float *const *dxs, const float *dy, const int *cs, int k, size_t npix) {
  cat_job j = {NULL, NULL, dxs, dy, cs, k, 0};
  for (int i = 0; i < k; i++) j.cy += (size_t)cs[i];
  ky_pool_for(pool, npix, PIX, cat_bwd, &j);
}

/* CPU reference channel softmax over the last (channel) axis of NHWC, in fixed runs of pixels on
 * the pool (each pixel's sums stay within the pixel). Tested by tests/test_ops_kernels.c
 * (hand-worked values, large logits, accumulation), tests/test_parity_ops.c (torch.softmax fixture)
 * and tests/test_ops_threads.c. */
#include <math.h>

#include "ops/kernels.h"

enum { PIX = 1024 };

typedef struct {
  float *out;
  const float *a, *b;
  int c;
} sm_job;

static void sm_fwd(void *arg, size_t lo, size_t hi) {
  sm_job *j = arg;
  int c = j->c;
  for (size_t p = lo; p < hi; p++) {
    const float *xp = j->a + p * c;
    float *yp = j->out + p * c;
    float m = xp[0];
    for (int q = 1; q < c; q++) m = xp[q] > m ? xp[q] : m;
    double sum = 0.0;
    for (int q = 0; q < c; q++) {
      yp[q] = expf(xp[q] - m);
      sum += yp[q];
    }
    float inv = (float)(1.0 / sum);
    for (int q = 0; q < c; q++) yp[q] *= inv;
  }
}

void ky_cpu_softmax_fwd(ky_pool *pool, float *y, const float *x, size_t npix, int c) {
  sm_job j = {y, x, NULL, c};
  ky_pool_for(pool, npix, PIX, sm_fwd, &j);
}

static void sm_bwd(void *arg, size_t lo, size_t hi) { /* a = dy, b = y */
  sm_job *j = arg;
  int c = j->c;
  for (size_t p = lo; p < hi; p++) {
    const float *dp = j->a + p * c, *yp = j->b + p * c;
    float *o = j->out + p * c;
    double dot = 0.0;
    for (int q = 0; q < c; q++) dot += (double)dp[q] * yp[q];
    float d = (float)dot;
    for (int q = 0; q < c; q++) o[q] += yp[q] * (dp[q] - d);
  }
}

void ky_cpu_softmax_bwd(ky_pool *pool, float *dx, const float *dy, const float *y, size_t npix, int c) {
  sm_job j = {dx, dy, y, c};
  ky_pool_for(pool, npix, PIX, sm_bwd, &j);
}

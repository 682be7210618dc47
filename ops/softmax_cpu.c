/* CPU reference channel softmax over the last (channel) axis of NHWC.
 * Tested by tests/test_ops_kernels.c (hand-worked values, large logits, accumulation) and
 * tests/test_parity_ops.c (torch.softmax fixture). */
#include <math.h>

#include "ops/kernels.h"

/* Subtracting the row maximum keeps every exp in (0, 1], so large logits do not overflow. */
void ky_cpu_softmax_fwd(float *y, const float *x, size_t npix, int c) {
  for (size_t p = 0; p < npix; p++) {
    const float *xp = x + p * c;
    float *yp = y + p * c;
    float m = xp[0];
    for (int j = 1; j < c; j++) m = xp[j] > m ? xp[j] : m;
    double sum = 0.0;
    for (int j = 0; j < c; j++) {
      yp[j] = expf(xp[j] - m);
      sum += yp[j];
    }
    float inv = (float)(1.0 / sum);
    for (int j = 0; j < c; j++) yp[j] *= inv;
  }
}

/* dx = y * (dy - sum_j dy_j y_j) */
void ky_cpu_softmax_bwd(float *dx, const float *dy, const float *y, size_t npix, int c) {
  for (size_t p = 0; p < npix; p++) {
    const float *dp = dy + p * c, *yp = y + p * c;
    float *o = dx + p * c;
    double dot = 0.0;
    for (int j = 0; j < c; j++) dot += (double)dp[j] * yp[j];
    float d = (float)dot;
    for (int j = 0; j < c; j++) o[j] += yp[j] * (dp[j] - d);
  }
}

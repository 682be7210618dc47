/* CPU reference binary cross-entropy with logits on one channel of an NHWC map (mean over pixels).
 * Tested by tests/test_ops_kernels.c (hand-worked values, extreme logits, accumulation) and
 * tests/test_parity_ops.c (F.binary_cross_entropy_with_logits fixture). */
#include <math.h>

#include "ops/kernels.h"

/* max(x,0) - x*t + log(1 + exp(-|x|)) stays finite for any finite logit. */
void ky_cpu_bce_logits_fwd(float *loss, const float *x, const float *t, size_t npix, int c, int ch) {
  double sum = 0.0;
  for (size_t p = 0; p < npix; p++) {
    double v = x[p * c + ch], tv = t[p * c + ch];
    sum += (v > 0.0 ? v : 0.0) - v * tv + log1p(exp(-fabs(v)));
  }
  *loss = npix ? (float)(sum / (double)npix) : 0.0f;
}

typedef struct {
  float *dx;
  const float *x, *t;
  float k;
  int c, ch;
} bce_job;

static void bce_bwd(void *arg, size_t lo, size_t hi) {
  bce_job *j = arg;
  size_t c = (size_t)j->c, ch = (size_t)j->ch;
  for (size_t p = lo; p < hi; p++) {
    float v = j->x[p * c + ch];
    float s = v >= 0.0f ? 1.0f / (1.0f + expf(-v)) : expf(v) / (1.0f + expf(v));
    j->dx[p * c + ch] += j->k * (s - j->t[p * c + ch]);
  }
}

/* Pixels are independent: fixed runs on the pool. */
void ky_cpu_bce_logits_bwd(ky_pool *pool, float *dx, const float *x, const float *t, float dloss, size_t npix, int c, int ch) {
  if (!npix) return;
  bce_job j = {dx, x, t, (float)((double)dloss / (double)npix), c, ch};
  ky_pool_for(pool, npix, 4096, bce_bwd, &j);
}

/* CPU reference SGD step (PyTorch semantics: L2 weight decay, momentum, dampening, Nesterov) and
 * the double sum of squares used by global-norm clipping. Tested by tests/test_ops_kernels.c
 * (hand-worked steps) and tests/test_parity_ops.c (three torch.optim.SGD momentum steps). */
#include "ops/kernels.h"

/* d = g + wd*p; buf = d on the first step, else momentum*buf + (1-dampening)*d;
 * d = nesterov ? d + momentum*buf : buf; p -= lr*d. With momentum 0, buf is unused (may be NULL). */
void ky_cpu_sgd(float *p, float *buf, const float *g, size_t n, const ky_sgd_args *a) {
  float wd = a->weight_decay, mom = a->momentum, damp = (float)(1.0 - a->dampening), lr = a->lr;
  int first = a->step <= 1;
  for (size_t i = 0; i < n; i++) {
    float d = g[i];
    if (wd != 0.0f) d += wd * p[i];
    if (mom != 0.0f) {
      float b = first ? d : mom * buf[i] + damp * d;
      buf[i] = b;
      d = a->nesterov ? d + mom * b : b;
    }
    p[i] -= lr * d;
  }
}

/* Eight interleaved partial sums (element i goes to lane i % 8), combined in a fixed tree: the
 * order never changes, so the result is reproducible, and the lanes vectorise. */
double ky_cpu_sumsq(const float *x, size_t n) {
  double lane[8] = {0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) lane[l] += (double)x[i + l] * x[i + l];
  for (int l = 0; i < n; i++, l++) lane[l] += (double)x[i] * x[i];
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

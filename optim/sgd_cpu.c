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

double ky_cpu_sumsq(const float *x, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
  return s;
}

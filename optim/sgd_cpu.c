/* CPU reference SGD step (PyTorch semantics: L2 weight decay, momentum, dampening, Nesterov) and
 * the double sum of squares used by global-norm clipping. Tested by tests/test_ops_kernels.c
 * (hand-worked steps) and tests/test_parity_ops.c (three torch.optim.SGD momentum steps). */
#include "ops/kernels.h"

/* d = g + wd*p; buf = d on the first step, else momentum*buf + (1-dampening)*d;
 * d = nesterov ? d + momentum*buf : buf; p -= lr*d. With momentum 0, buf is unused (may be NULL). */
typedef struct {
  float *p, *buf;
  const float *g;
  const ky_sgd_args *a;
} sgd_job;

static void sgd_range(void *arg, size_t lo, size_t hi) {
  sgd_job *j = arg;
  const ky_sgd_args *a = j->a;
  float *p = j->p, *buf = j->buf;
  const float *g = j->g;
  float wd = a->weight_decay, mom = a->momentum, damp = (float)(1.0 - a->dampening), lr = a->lr;
  int first = a->step <= 1;
  for (size_t i = lo; i < hi; i++) {
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

/* Elements are independent: fixed runs on the pool. */
void ky_cpu_sgd(ky_pool *pool, float *p, float *buf, const float *g, size_t n, const ky_sgd_args *a) {
  sgd_job j = {p, buf, g, a};
  ky_pool_for(pool, n, (size_t)1 << 15, sgd_range, &j);
}

double ky_cpu_sumsq(const float *x, size_t n) {
  double lane[8] = {0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) lane[l] += (double)x[i + l] * x[i + l];
  for (int l = 0; i < n; i++, l++) lane[l] += (double)x[i] * x[i];
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

/* CPU reference elementwise kernels: relu, sigmoid, add, scale, axpy, fill.
 * Tested by tests/test_ops_kernels.c (hand-worked values, backward accumulation) and
 * tests/test_parity_ops.c (torch.sigmoid fixture). */
#include <math.h>

#include "ops/kernels.h"

void ky_cpu_relu_fwd(float *y, const float *x, size_t n) {
  for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void ky_cpu_relu_bwd(float *dx, const float *dy, const float *y, size_t n) {
  for (size_t i = 0; i < n; i++) dx[i] += y[i] > 0.0f ? dy[i] : 0.0f; /* branch-free: vectorises */
}

/* exp of -|x| never overflows; for x < 0, sigmoid = e / (1 + e) keeps full relative precision
 * (1 - 1/(1 + e) would cancel). A select, not a branch: random signs do not mispredict. */
void ky_cpu_sigmoid_fwd(float *y, const float *x, size_t n) {
  for (size_t i = 0; i < n; i++) {
    float v = x[i];
    float e = expf(-fabsf(v));
    y[i] = (v >= 0.0f ? 1.0f : e) / (1.0f + e);
  }
}

void ky_cpu_sigmoid_bwd(float *dx, const float *dy, const float *y, size_t n) {
  for (size_t i = 0; i < n; i++) dx[i] += dy[i] * y[i] * (1.0f - y[i]);
}

void ky_cpu_add_fwd(float *y, const float *a, const float *b, size_t n) {
  for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void ky_cpu_scale_fwd(float *y, const float *x, float alpha, size_t n) {
  for (size_t i = 0; i < n; i++) y[i] = alpha * x[i];
}

void ky_cpu_axpy(float *y, const float *x, float alpha, size_t n) {
  for (size_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

void ky_cpu_fill(float *y, float v, size_t n) {
  for (size_t i = 0; i < n; i++) y[i] = v;
}

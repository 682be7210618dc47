/* CPU reference elementwise kernels: relu, sigmoid, add, scale, axpy, fill.
 * Tested by tests/test_ops_kernels.c (hand-worked values, backward accumulation) and
 * tests/test_parity_ops.c (torch.sigmoid fixture). */
#include <math.h>

#include "ops/kernels.h"

void ky_cpu_relu_fwd(float *y, const float *x, size_t n) {
  for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void ky_cpu_relu_bwd(float *dx, const float *dy, const float *y, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (y[i] > 0.0f) dx[i] += dy[i];
}

/* Both branches evaluate exp of a non-positive number, so neither overflows. */
void ky_cpu_sigmoid_fwd(float *y, const float *x, size_t n) {
  for (size_t i = 0; i < n; i++) {
    float v = x[i];
    if (v >= 0.0f) {
      y[i] = 1.0f / (1.0f + expf(-v));
    } else {
      float e = expf(v);
      y[i] = e / (1.0f + e);
    }
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

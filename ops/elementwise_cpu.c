/* CPU reference elementwise kernels: relu, sigmoid, add, scale, axpy, fill, in fixed runs of EW
 * elements on the pool (each element is computed alone, so any split gives the same bits).
 * Tested by tests/test_ops_kernels.c (hand-worked values, backward accumulation),
 * tests/test_parity_ops.c (torch.sigmoid fixture) and tests/test_ops_threads.c (thread counts). */
#include <math.h>

#include "ops/kernels.h"

enum { EW = 1 << 14 }; /* elements per chunk: 64 KB of floats */

/* Each chunk copies the pointers into locals first: read through `e` inside the loop, every store
 * to y[i] might change e->y itself, so the compiler reloaded it per element and vectorised nothing
 * (relu backward ran 8x slower than a plain loop). */
typedef struct {
  float *y;
  const float *a, *b;
  float v;
} ew_job;

static void relu_fwd(void *p, size_t lo, size_t hi) {
  const ew_job *e = p;
  float *y = e->y; const float *a = e->a;
  for (size_t i = lo; i < hi; i++) y[i] = a[i] > 0.0f ? a[i] : 0.0f;
}
void ky_cpu_relu_fwd(ky_pool *pool, float *y, const float *x, size_t n) {
  ew_job e = {y, x, NULL, 0};
  ky_pool_for(pool, n, EW, relu_fwd, &e);
}

static void relu_bwd(void *p, size_t lo, size_t hi) { /* a = dy, b = y */
  const ew_job *e = p;
  float *y = e->y; const float *a = e->a; const float *b = e->b;
  for (size_t i = lo; i < hi; i++) y[i] += b[i] > 0.0f ? a[i] : 0.0f; /* branch-free: vectorises */
}
void ky_cpu_relu_bwd(ky_pool *pool, float *dx, const float *dy, const float *y, size_t n) {
  ew_job e = {dx, dy, y, 0};
  ky_pool_for(pool, n, EW, relu_bwd, &e);
}

static void sigmoid_fwd(void *p, size_t lo, size_t hi) {
  const ew_job *e = p;
  float *y = e->y; const float *a = e->a;
  for (size_t i = lo; i < hi; i++) {
    float v = a[i];
    float ex = expf(-fabsf(v));
    y[i] = (v >= 0.0f ? 1.0f : ex) / (1.0f + ex);
  }
}
void ky_cpu_sigmoid_fwd(ky_pool *pool, float *y, const float *x, size_t n) {
  ew_job e = {y, x, NULL, 0};
  ky_pool_for(pool, n, EW, sigmoid_fwd, &e);
}

static void sigmoid_bwd(void *p, size_t lo, size_t hi) { /* a = dy, b = y */
  const ew_job *e = p;
  float *y = e->y; const float *a = e->a; const float *b = e->b;
  for (size_t i = lo; i < hi; i++) y[i] += a[i] * b[i] * (1.0f - b[i]);
}
void ky_cpu_sigmoid_bwd(ky_pool *pool, float *dx, const float *dy, const float *y, size_t n) {
  ew_job e = {dx, dy, y, 0};
  ky_pool_for(pool, n, EW, sigmoid_bwd, &e);
}

static void add_fwd(void *p, size_t lo, size_t hi) {
  const ew_job *e = p;
  float *y = e->y; const float *a = e->a; const float *b = e->b;
  for (size_t i = lo; i < hi; i++) y[i] = a[i] + b[i];
}
void ky_cpu_add_fwd(ky_pool *pool, float *y, const float *a, const float *b, size_t n) {
  ew_job e = {y, a, b, 0};
  ky_pool_for(pool, n, EW, add_fwd, &e);
}

static void scale_fwd(void *p, size_t lo, size_t hi) {
  const ew_job *e = p;
  float *y = e->y; const float *a = e->a; const float v = e->v;
  for (size_t i = lo; i < hi; i++) y[i] = v * a[i];
}
void ky_cpu_scale_fwd(ky_pool *pool, float *y, const float *x, float alpha, size_t n) {
  ew_job e = {y, x, NULL, alpha};
  ky_pool_for(pool, n, EW, scale_fwd, &e);
}

static void axpy(void *p, size_t lo, size_t hi) {
  const ew_job *e = p;
  float *y = e->y; const float *a = e->a; const float v = e->v;
  for (size_t i = lo; i < hi; i++) y[i] += v * a[i];
}
void ky_cpu_axpy(ky_pool *pool, float *y, const float *x, float alpha, size_t n) {
  ew_job e = {y, x, NULL, alpha};
  ky_pool_for(pool, n, EW, axpy, &e);
}

void ky_cpu_fill(ky_pool *pool, float *y, float v, size_t n) { ky_pool_fill(pool, y, v, n); }

/* CUDA kernels (everything but convolution) against the CPU reference of ops/kernels.h on random
 * inputs with odd shapes, NaN-poisoned forward outputs and pre-filled (accumulating) gradients;
 * a bitwise determinism check; bad-argument messages. Prints one SKIPPED line without a GPU.
 *
 * Tolerances (|gpu - cpu| <= atol + rtol*|cpu|), stated per op below:
 *   copies / gathers of one value (concat, nearest fwd, onehot, maxpool fwd + argmax): exact;
 *   elementwise and per-element formulas: a few ulps (rtol 4e-7 .. 2e-6; 1e-6 where expf is used,
 *   as CUDA's expf is within 2 ulps and glibc's within 1); reductions: atol grows with sqrt(length) (float partial sums),
 *   rtol 1e-5; double sums (dice sums, sumsq): rtol 1e-13 + 2e-16 * length (the bound on the CPU's
 *   own sequential double summation error). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/status.h"
#include "cuda/cuda.h"
#include "cuda/kernels.h"
#include "ops/kernels.h"

enum { MAXBUF = 512 };

typedef struct {
  ky_cuda *cu;
  void *bufs[MAXBUF];  /* device buffers released after each test */
  int nbufs;
  void *host[MAXBUF];  /* host buffers freed after each test */
  int nhost;
  ky_rng rng;
} tctx;

#define OK(call)                                                                        \
  do {                                                                                  \
    ky_status ok_s_ = (call);                                                           \
    if (ok_s_ != KY_OK) fail_msg("%s -> %s: %s", #call, ky_status_name(ok_s_), ky_last_error()); \
  } while (0)

/* ---- buffers ---------------------------------------------------------------------------------- */

static void *hmem(tctx *t, size_t bytes) {
  assert_true(t->nhost < MAXBUF);
  void *p = malloc(bytes ? bytes : 1);
  assert_non_null(p);
  t->host[t->nhost++] = p;
  return p;
}
static float *hf(tctx *t, size_t n) { return (float *)hmem(t, n * sizeof(float)); }

static void *dmem(tctx *t, size_t bytes) {
  assert_true(t->nbufs < MAXBUF);
  void *p;
  OK(ky_cuda_malloc(t->cu, &p, bytes));
  t->bufs[t->nbufs++] = p;
  return p;
}
/* Device copy of a host array. */
static void *dup_d(tctx *t, const void *h, size_t bytes) {
  void *d = dmem(t, bytes);
  OK(ky_cuda_h2d(t->cu, d, h, bytes));
  return d;
}
static float *dupf(tctx *t, const float *h, size_t n) { return (float *)dup_d(t, h, n * sizeof(float)); }
/* Device output filled with NaN (all bits set), so an element the kernel forgets shows up. */
static float *poison(tctx *t, size_t n) {
  float *d = (float *)dmem(t, n * sizeof(float));
  OK(ky_cuda_memset(t->cu, d, 0xff, n * sizeof(float)));
  return d;
}
static float *fetch(tctx *t, const float *d, size_t n) {
  float *h = hf(t, n);
  OK(ky_cuda_d2h(t->cu, h, d, n * sizeof(float)));
  return h;
}
static float *copyf(tctx *t, const float *h, size_t n) {
  float *c = hf(t, n);
  memcpy(c, h, n * sizeof(float));
  return c;
}
static float *randf(tctx *t, size_t n, float lo, float hi) {
  float *h = hf(t, n);
  for (size_t i = 0; i < n; i++) h[i] = ky_rng_uniform_range(&t->rng, lo, hi);
  return h;
}
static float *randn(tctx *t, size_t n, float mean, float sd) {
  float *h = hf(t, n);
  for (size_t i = 0; i < n; i++) h[i] = mean + sd * ky_rng_normal(&t->rng);
  return h;
}

static int setup_test(void **st) {
  tctx *t = (tctx *)*st;
  t->nbufs = t->nhost = 0;
  return 0;
}
static int teardown_test(void **st) {
  tctx *t = (tctx *)*st;
  for (int i = 0; i < t->nbufs; i++) ky_cuda_release(t->cu, t->bufs[i]);
  for (int i = 0; i < t->nhost; i++) free(t->host[i]);
  t->nbufs = t->nhost = 0;
  return 0;
}

/* ---- comparison --------------------------------------------------------------------------------- */

static void expect_close(const char *what, const float *got, const float *want, size_t n, double atol, double rtol) {
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < n; i++) {
    double g = got[i], w = want[i];
    int ok = isnan(w) ? isnan(g) : (!isnan(g) && fabs(g - w) <= atol + rtol * fabs(w));
    if (!ok && bad++ == 0) first = i;
  }
  if (bad)
    fail_msg("%s: %zu of %zu elements differ; first at %zu: gpu %.9g cpu %.9g (atol %g, rtol %g)", what, bad, n,
             first, got[first], want[first], atol, rtol);
}
static void expect_close_d(const char *what, const double *got, const double *want, size_t n, double rtol) {
  for (size_t i = 0; i < n; i++)
    if (!(fabs(got[i] - want[i]) <= rtol * (1.0 + fabs(want[i]))))
      fail_msg("%s[%zu]: gpu %.17g cpu %.17g (rtol %g)", what, i, got[i], want[i], rtol);
}

/* Few-ulp tolerance for per-element formulas. */
static const double ULPS = 4e-7;

/* ---- elementwise -------------------------------------------------------------------------------- */

static void elementwise_case(tctx *t, size_t n, size_t off) {
  ky_cuda *cu = t->cu;
  char what[96];
  float *x = randf(t, n, -4.f, 4.f), *b = randf(t, n, -2.f, 2.f), *g = randf(t, n, -1.f, 1.f);
  float *acc0 = randf(t, n, -1.f, 1.f);
  float *want = hf(t, n);
  /* `off` floats past a 16-byte boundary: exercises the scalar (unaligned) path. */
  float *dx = (float *)dmem(t, (n + off) * sizeof(float)) + off;
  float *dy = (float *)dmem(t, (n + off) * sizeof(float)) + off;
  float *da = (float *)dmem(t, (n + off) * sizeof(float)) + off;
  float *db = dupf(t, b, n), *dg = dupf(t, g, n);
  OK(ky_cuda_h2d(cu, dx, x, n * sizeof(float)));

#define FWD_CASE(name, cpu_call, gpu_call, rtol)                        \
  do {                                                                  \
    OK(ky_cuda_memset(cu, dy, 0xff, n * sizeof(float)));                \
    cpu_call;                                                           \
    OK(gpu_call);                                                       \
    snprintf(what, sizeof what, "%s n=%zu off=%zu", name, n, off);      \
    expect_close(what, fetch(t, dy, n), want, n, 0.0, rtol);            \
  } while (0)
  FWD_CASE("relu_fwd", ky_cpu_relu_fwd(NULL, want, x, n), ky_cuda_relu_fwd(cu, dy, dx, n), 0.0);
  /* CUDA's expf is within 2 ulps, glibc's within 1: allow 8 ulps after the add and divide */
  FWD_CASE("sigmoid_fwd", ky_cpu_sigmoid_fwd(NULL, want, x, n), ky_cuda_sigmoid_fwd(cu, dy, dx, n), 1e-6);
  FWD_CASE("add_fwd", ky_cpu_add_fwd(NULL, want, x, b, n), ky_cuda_add_fwd(cu, dy, dx, db, n), 0.0);
  FWD_CASE("scale_fwd", ky_cpu_scale_fwd(NULL, want, x, -1.7f, n), ky_cuda_scale_fwd(cu, dy, dx, -1.7f, n), 0.0);
  FWD_CASE("fill", ky_cpu_fill(NULL, want, 2.5f, n), ky_cuda_fill(cu, dy, 2.5f, n), 0.0);
#undef FWD_CASE

  /* Backward and axpy accumulate into a pre-filled buffer. */
  float *yh = hf(t, n);
  ky_cpu_sigmoid_fwd(NULL, yh, x, n);
  float *dyh = dupf(t, yh, n);
#define ACC_CASE(name, cpu_call, gpu_call, rtol)                        \
  do {                                                                  \
    memcpy(want, acc0, n * sizeof(float));                              \
    OK(ky_cuda_h2d(cu, da, acc0, n * sizeof(float)));                   \
    cpu_call;                                                           \
    OK(gpu_call);                                                       \
    snprintf(what, sizeof what, "%s n=%zu off=%zu", name, n, off);      \
    expect_close(what, fetch(t, da, n), want, n, 1e-7, rtol);           \
  } while (0)
  ACC_CASE("relu_bwd", ky_cpu_relu_bwd(NULL, want, g, x, n), ky_cuda_relu_bwd(cu, da, dg, dx, n), 0.0);
  ACC_CASE("sigmoid_bwd", ky_cpu_sigmoid_bwd(NULL, want, g, yh, n), ky_cuda_sigmoid_bwd(cu, da, dg, dyh, n), ULPS);
  ACC_CASE("axpy", ky_cpu_axpy(NULL, want, x, 0.3f, n), ky_cuda_axpy(cu, da, dx, 0.3f, n), 0.0);
#undef ACC_CASE

  /* In place: y = alpha * y. */
  memcpy(want, x, n * sizeof(float));
  ky_cpu_scale_fwd(NULL, want, want, 0.5f, n);
  OK(ky_cuda_scale_fwd(cu, dx, dx, 0.5f, n));
  expect_close("scale_fwd in place", fetch(t, dx, n), want, n, 0.0, 0.0);
}

static void test_elementwise(void **st) {
  tctx *t = (tctx *)*st;
  size_t sizes[] = {1, 7, 33, 4099, 1000003};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    elementwise_case(t, sizes[i], 0);
    elementwise_case(t, sizes[i], 1);
    teardown_test(st);
  }
}

/* ---- batch norm ----------------------------------------------------------------------------------- */

/* x ~ N(mean, sd): a mean far from 0 against the spread checks that the variance does not cancel. */
static void bn_case_m(tctx *t, size_t npix, int c, float mean, float sd) {
  ky_cuda *cu = t->cu;
  size_t n = npix * (size_t)c;
  char what[128];
  double red_atol = 2e-6 * sqrt((double)npix);  /* float partial sums over npix values of O(1) */
  /* y = (x - mean) / sd: float rounding of x itself (and of the CPU's x*scale + shift) is
   * ~eps * mean / sd in y */
  double y_atol = 2e-5 + 4e-7 * fabs(mean) / sd;
  float *x = randn(t, n, mean, sd), *dy = randn(t, n, 0.f, 1.f);
  float *gamma = randf(t, c, 0.5f, 1.5f), *beta = randf(t, c, -0.5f, 0.5f);
  float *rm0 = randf(t, c, -0.1f, 0.1f), *rv0 = randf(t, c, 0.8f, 1.2f);
  float *y = hf(t, n), *sm = hf(t, c), *si = hf(t, c), *rm = copyf(t, rm0, c), *rv = copyf(t, rv0, c);
  ky_cpu_bn_fwd_train(NULL, y, sm, si, rm, rv, x, gamma, beta, npix, c, 1e-5f, 0.1f);

  float *dx_ = dupf(t, x, n), *dgam = dupf(t, gamma, c), *dbet = dupf(t, beta, c);
  float *dyv = poison(t, n), *dsm = poison(t, c), *dsi = poison(t, c);
  float *drm = dupf(t, rm0, c), *drv = dupf(t, rv0, c);
  OK(ky_cuda_bn_fwd_train(cu, dyv, dsm, dsi, drm, drv, dx_, dgam, dbet, npix, c, 1e-5f, 0.1f));
  snprintf(what, sizeof what, "bn_fwd_train npix=%zu c=%d mean=%g", npix, c, mean);
  expect_close(what, fetch(t, dsm, c), sm, c, 1e-6, 1e-6);
  expect_close(what, fetch(t, dsi, c), si, c, 0.0, 1e-5);
  expect_close(what, fetch(t, drm, c), rm, c, 1e-6, 1e-6);
  expect_close(what, fetch(t, drv, c), rv, c, 1e-6, 1e-5);
  expect_close(what, fetch(t, dyv, n), y, n, y_atol, 1e-5);

  /* eval forward with the updated running statistics */
  ky_cpu_bn_fwd_eval(NULL, y, x, gamma, beta, rm, rv, npix, c, 1e-3f);
  float *drm2 = dupf(t, rm, c), *drv2 = dupf(t, rv, c);
  OK(ky_cuda_memset(cu, dyv, 0xff, n * sizeof(float)));
  OK(ky_cuda_bn_fwd_eval(cu, dyv, dx_, dgam, dbet, drm2, drv2, npix, c, 1e-3f));
  snprintf(what, sizeof what, "bn_fwd_eval npix=%zu c=%d", npix, c);
  expect_close(what, fetch(t, dyv, n), y, n, y_atol, 1e-5);

  /* backward (train): everything accumulates into pre-filled buffers */
  float *gx0 = randf(t, n, -1.f, 1.f), *gg0 = randf(t, c, -1.f, 1.f), *gb0 = randf(t, c, -1.f, 1.f);
  float *gx = copyf(t, gx0, n), *gg = copyf(t, gg0, c), *gb = copyf(t, gb0, c);
  ky_cpu_bn_bwd_train(NULL, gx, gg, gb, dy, x, gamma, sm, si, npix, c);
  float *dgx = dupf(t, gx0, n), *dgg = dupf(t, gg0, c), *dgb = dupf(t, gb0, c), *ddy = dupf(t, dy, n);
  float *dsm_c = dupf(t, sm, c), *dsi_c = dupf(t, si, c);
  OK(ky_cuda_bn_bwd_train(cu, dgx, dgg, dgb, ddy, dx_, dgam, dsm_c, dsi_c, npix, c));
  snprintf(what, sizeof what, "bn_bwd_train npix=%zu c=%d", npix, c);
  expect_close(what, fetch(t, dgg, c), gg, c, red_atol, 1e-5);
  expect_close(what, fetch(t, dgb, c), gb, c, red_atol, 1e-5);
  expect_close(what, fetch(t, dgx, n), gx, n, y_atol, 1e-5);

  /* backward (eval) */
  memcpy(gx, gx0, n * sizeof(float));
  memcpy(gg, gg0, c * sizeof(float));
  memcpy(gb, gb0, c * sizeof(float));
  ky_cpu_bn_bwd_eval(NULL, gx, gg, gb, dy, x, gamma, rm, rv, npix, c, 1e-3f);
  OK(ky_cuda_h2d(cu, dgx, gx0, n * sizeof(float)));
  OK(ky_cuda_h2d(cu, dgg, gg0, c * sizeof(float)));
  OK(ky_cuda_h2d(cu, dgb, gb0, c * sizeof(float)));
  OK(ky_cuda_bn_bwd_eval(cu, dgx, dgg, dgb, ddy, dx_, dgam, drm2, drv2, npix, c, 1e-3f));
  snprintf(what, sizeof what, "bn_bwd_eval npix=%zu c=%d", npix, c);
  /* eval xhat = (x - running mean) * invstd is of the order of |mean| here, not 1 */
  expect_close(what, fetch(t, dgg, c), gg, c, red_atol * (3.0 + fabs(mean)), 1e-5);
  expect_close(what, fetch(t, dgb, c), gb, c, red_atol, 1e-5);
  expect_close(what, fetch(t, dgx, n), gx, n, 1e-6, ULPS * 4);
}

static void bn_case(tctx *t, size_t npix, int c) { bn_case_m(t, npix, c, 3.0f, 1.5f); }

static void test_batchnorm(void **st) {
  tctx *t = (tctx *)*st;
  bn_case(t, 1 * 5 * 7, 3);
  bn_case(t, 2 * 9 * 11, 33);
  bn_case(t, 1 * 13 * 17, 67);
  bn_case(t, 3 * 40 * 50, 64);
  teardown_test(st);
  bn_case(t, 1200007, 5);  /* more than 2048 chunks of 512 pixels: longer chunks */
  teardown_test(st);
  bn_case(t, 2, 5);        /* two pixels */
  teardown_test(st);
  bn_case_m(t, 4099, 7, 300.f, 1.5f);  /* mean 200 standard deviations from 0 */
  bn_case_m(t, 2 * 31 * 17, 64, -50.f, 0.25f);
}

/* ---- pooling ------------------------------------------------------------------------------------ */

static void maxpool_case(tctx *t, int n, int h, int w, int c, int k, int stride, int pad) {
  ky_cuda *cu = t->cu;
  ky_pool_shape s = {n, h, w, c, k, stride, pad, 0, 0};
  assert_true(ky_pool_shape_finish(&s));
  size_t nin = (size_t)n * h * w * c, nout = (size_t)n * s.oh * s.ow * c;
  char what[128];
  snprintf(what, sizeof what, "maxpool %dx%dx%dx%d k%d s%d p%d", n, h, w, c, k, stride, pad);
  /* few distinct values: many ties, so the first-in-window rule is exercised */
  float *x = hf(t, nin);
  for (size_t i = 0; i < nin; i++) x[i] = (float)ky_rng_int(&t->rng, 0, 4);
  float *y = hf(t, nout);
  int32_t *am = (int32_t *)hmem(t, nout * sizeof(int32_t));
  ky_cpu_maxpool_fwd(NULL, y, am, x, &s);
  float *dxin = dupf(t, x, nin), *dy = poison(t, nout);
  int32_t *dam = (int32_t *)dmem(t, nout * sizeof(int32_t));
  OK(ky_cuda_memset(cu, dam, 0xff, nout * sizeof(int32_t)));
  OK(ky_cuda_maxpool_fwd(cu, dy, dam, dxin, &s));
  expect_close(what, fetch(t, dy, nout), y, nout, 0.0, 0.0);
  int32_t *gam = (int32_t *)hmem(t, nout * sizeof(int32_t));
  OK(ky_cuda_d2h(cu, gam, dam, nout * sizeof(int32_t)));
  for (size_t i = 0; i < nout; i++)
    if (gam[i] != am[i]) fail_msg("%s: argmax[%zu] gpu %d cpu %d", what, i, gam[i], am[i]);

  float *g = randf(t, nout, -1.f, 1.f), *gx0 = randf(t, nin, -1.f, 1.f), *gx = copyf(t, gx0, nin);
  ky_cpu_maxpool_bwd(NULL, gx, g, am, &s);
  float *dg = dupf(t, g, nout), *dgx = dupf(t, gx0, nin);
  OK(ky_cuda_maxpool_bwd(cu, dgx, dg, dam, &s));
  expect_close(what, fetch(t, dgx, nin), gx, nin, 1e-6, 1e-6);
}

static void test_maxpool(void **st) {
  tctx *t = (tctx *)*st;
  maxpool_case(t, 1, 7, 9, 5, 3, 2, 1);
  maxpool_case(t, 2, 12, 10, 33, 2, 2, 0);
  maxpool_case(t, 1, 5, 5, 3, 3, 1, 1);
  maxpool_case(t, 2, 17, 13, 67, 3, 2, 1);
  maxpool_case(t, 1, 1, 1, 3, 1, 1, 0);
}

static void gap_case(tctx *t, int n, int hw, int c) {
  ky_cuda *cu = t->cu;
  size_t nin = (size_t)n * hw * c, nout = (size_t)n * c;
  char what[96];
  snprintf(what, sizeof what, "gap n=%d hw=%d c=%d", n, hw, c);
  float *x = randf(t, nin, -1.f, 2.f), *y = hf(t, nout);
  ky_cpu_gap_fwd(NULL, y, x, n, hw, c);
  float *dx = dupf(t, x, nin), *dy = poison(t, nout);
  OK(ky_cuda_gap_fwd(cu, dy, dx, n, hw, c));
  expect_close(what, fetch(t, dy, nout), y, nout, 2e-6 * sqrt((double)hw) / hw + 1e-7, 1e-5);
  float *g = randf(t, nout, -1.f, 1.f), *gx0 = randf(t, nin, -1.f, 1.f), *gx = copyf(t, gx0, nin);
  ky_cpu_gap_bwd(NULL, gx, g, n, hw, c);
  float *dg = dupf(t, g, nout), *dgx = dupf(t, gx0, nin);
  OK(ky_cuda_gap_bwd(cu, dgx, dg, n, hw, c));
  expect_close(what, fetch(t, dgx, nin), gx, nin, 1e-7, ULPS);
}

static void test_gap(void **st) {
  tctx *t = (tctx *)*st;
  gap_case(t, 2, 7 * 9, 33);
  gap_case(t, 1, 1, 5);
  gap_case(t, 3, 300, 67);
  gap_case(t, 2, 64 * 64, 512);
}

/* ---- concat ------------------------------------------------------------------------------------- */

static void concat_case(tctx *t, const int *cs, int k, size_t npix) {
  ky_cuda *cu = t->cu;
  int ctot = 0;
  float *hx[8], *dxs[8], *hg0[8], *hg[8], *dgs[8];
  for (int j = 0; j < k; j++) ctot += cs[j];
  char what[96];
  snprintf(what, sizeof what, "concat k=%d ctot=%d npix=%zu", k, ctot, npix);
  for (int j = 0; j < k; j++) {
    size_t nj = npix * (size_t)cs[j];
    hx[j] = randf(t, nj, -1.f, 1.f);
    dxs[j] = dupf(t, hx[j], nj);
    hg0[j] = randf(t, nj, -1.f, 1.f);
    hg[j] = copyf(t, hg0[j], nj);
    dgs[j] = dupf(t, hg0[j], nj);
  }
  size_t ny = npix * (size_t)ctot;
  float *y = hf(t, ny), *dy = poison(t, ny);
  ky_cpu_concat_fwd(NULL, y, (const float *const *)hx, cs, k, npix);
  OK(ky_cuda_concat_fwd(cu, dy, (const float *const *)dxs, cs, k, npix));
  expect_close(what, fetch(t, dy, ny), y, ny, 0.0, 0.0);
  float *g = randf(t, ny, -1.f, 1.f), *dg = dupf(t, g, ny);
  ky_cpu_concat_bwd(NULL, hg, g, cs, k, npix);
  OK(ky_cuda_concat_bwd(cu, dgs, dg, cs, k, npix));
  for (int j = 0; j < k; j++) expect_close(what, fetch(t, dgs[j], npix * cs[j]), hg[j], npix * cs[j], 0.0, 0.0);
}

static void test_concat(void **st) {
  tctx *t = (tctx *)*st;
  int a[] = {3, 5, 33};
  concat_case(t, a, 3, 2 * 7 * 9);
  int b[] = {64, 64};
  concat_case(t, b, 2, 1 * 13 * 11); /* float4 path */
  int c[] = {4, 1, 8, 2, 67, 4, 3, 16};
  concat_case(t, c, 8, 37);
  int d[] = {7};
  concat_case(t, d, 1, 1);
}

/* ---- upsampling ---------------------------------------------------------------------------------- */

static void upsample_case(tctx *t, int n, int h, int w, int c, int f, int bilinear) {
  ky_cuda *cu = t->cu;
  size_t nin = (size_t)n * h * w * c, nout = nin * f * f;
  char what[96];
  snprintf(what, sizeof what, "upsample %s x%d %dx%dx%dx%d", bilinear ? "bilinear" : "nearest", f, n, h, w, c);
  float *x = randf(t, nin, -1.f, 1.f), *y = hf(t, nout);
  float *dx = dupf(t, x, nin), *dy = poison(t, nout);
  if (bilinear) {
    ky_cpu_upsample_bilinear2_fwd(NULL, y, x, n, h, w, c);
    OK(ky_cuda_upsample_bilinear2_fwd(cu, dy, dx, n, h, w, c));
  } else {
    ky_cpu_upsample_nearest_fwd(NULL, y, x, n, h, w, c, f);
    OK(ky_cuda_upsample_nearest_fwd(cu, dy, dx, n, h, w, c, f));
  }
  expect_close(what, fetch(t, dy, nout), y, nout, 1e-7, bilinear ? ULPS : 0.0);
  float *g = randf(t, nout, -1.f, 1.f), *gx0 = randf(t, nin, -1.f, 1.f), *gx = copyf(t, gx0, nin);
  float *dg = dupf(t, g, nout), *dgx = dupf(t, gx0, nin);
  if (bilinear) {
    ky_cpu_upsample_bilinear2_bwd(NULL, gx, g, n, h, w, c);
    OK(ky_cuda_upsample_bilinear2_bwd(cu, dgx, dg, n, h, w, c));
  } else {
    ky_cpu_upsample_nearest_bwd(NULL, gx, g, n, h, w, c, f);
    OK(ky_cuda_upsample_nearest_bwd(cu, dgx, dg, n, h, w, c, f));
  }
  /* sums of up to 16 terms in another order */
  expect_close(what, fetch(t, dgx, nin), gx, nin, 2e-6, 1e-6);
}

static void test_upsample(void **st) {
  tctx *t = (tctx *)*st;
  upsample_case(t, 2, 5, 7, 3, 2, 0);
  upsample_case(t, 1, 4, 6, 64, 2, 0);
  upsample_case(t, 1, 3, 5, 33, 3, 0);
  upsample_case(t, 1, 1, 1, 5, 2, 0);
  upsample_case(t, 1, 1, 1, 5, 2, 1);
  upsample_case(t, 2, 5, 7, 33, 2, 1);
  upsample_case(t, 1, 8, 6, 64, 2, 1);
  upsample_case(t, 1, 1, 9, 3, 2, 1);
}

/* ---- softmax -------------------------------------------------------------------------------------- */

static void softmax_case(tctx *t, size_t npix, int c) {
  ky_cuda *cu = t->cu;
  size_t n = npix * (size_t)c;
  char what[96];
  snprintf(what, sizeof what, "softmax npix=%zu c=%d", npix, c);
  float *x = randf(t, n, -8.f, 8.f), *y = hf(t, n);
  ky_cpu_softmax_fwd(NULL, y, x, npix, c);
  float *dx = dupf(t, x, n), *dy = poison(t, n);
  OK(ky_cuda_softmax_fwd(cu, dy, dx, npix, c));
  expect_close(what, fetch(t, dy, n), y, n, 1e-9, 2e-6);
  float *g = randf(t, n, -1.f, 1.f), *gx0 = randf(t, n, -1.f, 1.f), *gx = copyf(t, gx0, n);
  ky_cpu_softmax_bwd(NULL, gx, g, y, npix, c);
  float *dg = dupf(t, g, n), *dgx = dupf(t, gx0, n), *dyc = dupf(t, y, n);
  OK(ky_cuda_softmax_bwd(cu, dgx, dg, dyc, npix, c));
  expect_close(what, fetch(t, dgx, n), gx, n, 1e-7, ULPS);
}

static void test_softmax(void **st) {
  tctx *t = (tctx *)*st;
  softmax_case(t, 1000, 3);
  softmax_case(t, 97, 5);
  softmax_case(t, 31, 33);
  softmax_case(t, 17, 67);
  softmax_case(t, 1, 1);
}

/* ---- losses --------------------------------------------------------------------------------------- */

static void bce_case(tctx *t, size_t npix, int c, int ch) {
  ky_cuda *cu = t->cu;
  size_t n = npix * (size_t)c;
  char what[96];
  snprintf(what, sizeof what, "bce npix=%zu c=%d ch=%d", npix, c, ch);
  float *x = randf(t, n, -6.f, 6.f), *tg = randf(t, n, 0.f, 1.f);
  float loss;
  ky_cpu_bce_logits_fwd(&loss, x, tg, npix, c, ch);
  float *dx = dupf(t, x, n), *dt = dupf(t, tg, n), *dl = poison(t, 1);
  OK(ky_cuda_bce_logits_fwd(cu, dl, dx, dt, npix, c, ch));
  /* float per-pixel terms (expf, log1pf: 1-2 ulps) against the CPU's double ones */
  expect_close(what, fetch(t, dl, 1), &loss, 1, 2e-6, 1e-6);
  float dloss = 0.7f, *ddl = dupf(t, &dloss, 1);
  float *gx0 = randf(t, n, -1.f, 1.f), *gx = copyf(t, gx0, n), *dgx = dupf(t, gx0, n);
  ky_cpu_bce_logits_bwd(NULL, gx, x, tg, dloss, npix, c, ch);
  OK(ky_cuda_bce_logits_bwd(cu, dgx, dx, dt, ddl, npix, c, ch));
  expect_close(what, fetch(t, dgx, n), gx, n, 1e-7, ULPS);
}

static void test_bce(void **st) {
  tctx *t = (tctx *)*st;
  bce_case(t, 2 * 7 * 9, 3, 1);
  bce_case(t, 100003, 2, 0);
  bce_case(t, 1, 1, 0);
  bce_case(t, 17000011, 1, 0);  /* more than 4096 chunks: longer chunks */
}

static void ce_case(tctx *t, size_t npix, int c, int weighted, double ignore_frac) {
  ky_cuda *cu = t->cu;
  size_t n = npix * (size_t)c;
  char what[96];
  snprintf(what, sizeof what, "softmax_ce npix=%zu c=%d w=%d ignore=%.2f", npix, c, weighted, ignore_frac);
  float *x = randf(t, n, -5.f, 5.f);
  uint8_t *cls = (uint8_t *)hmem(t, npix);
  for (size_t p = 0; p < npix; p++)
    cls[p] = ky_rng_uniform(&t->rng) < ignore_frac ? 255 : (uint8_t)ky_rng_int(&t->rng, 0, c);
  float *w = weighted ? randf(t, c, 0.2f, 3.f) : NULL;
  float loss;
  ky_cpu_softmax_ce_fwd(NULL, &loss, NULL, x, cls, w, npix, c);
  float *dx = dupf(t, x, n), *dw = w ? dupf(t, w, c) : NULL, *dl = poison(t, 1);
  uint8_t *dcls = (uint8_t *)dup_d(t, cls, npix);
  OK(ky_cuda_softmax_ce_fwd(cu, dl, dx, dcls, dw, npix, c));
  expect_close(what, fetch(t, dl, 1), &loss, 1, 1e-6, 2e-6);
  float dloss = 1.3f, *ddl = dupf(t, &dloss, 1);
  float *gx0 = randf(t, n, -1.f, 1.f), *gx = copyf(t, gx0, n), *dgx = dupf(t, gx0, n);
  ky_cpu_softmax_ce_bwd(NULL, gx, x, cls, w, dloss, npix, c);
  OK(ky_cuda_softmax_ce_bwd(cu, dgx, dx, dcls, dw, ddl, npix, c));
  expect_close(what, fetch(t, dgx, n), gx, n, 1e-7, 2e-6);
}

static void test_softmax_ce(void **st) {
  tctx *t = (tctx *)*st;
  ce_case(t, 2 * 7 * 9, 3, 0, 0.1);
  ce_case(t, 200003, 3, 1, 0.05);
  ce_case(t, 97, 5, 1, 0.0);
  ce_case(t, 31, 67, 0, 0.3);
  ce_case(t, 50, 3, 1, 1.0);  /* nothing labelled: loss 0, gradient 0 */
}

static void dice_case(tctx *t, int n, size_t hw, int pc, int pch, int tc, int tch, int per_image, int negative) {
  ky_cuda *cu = t->cu;
  char what[128];
  snprintf(what, sizeof what, "dice n=%d hw=%zu pc=%d tc=%d per_image=%d neg=%d", n, hw, pc, tc, per_image, negative);
  size_t np = (size_t)n * hw * pc, nt = (size_t)n * hw * tc;
  int groups = per_image ? n : 1;
  /* negative: small negative predictions against half-positive targets give 2*sum(pt) + eps < 0
   * < sum(p) + sum(t) + eps, a raw dice below 0, where the clamp stops the gradient */
  float *p = negative ? randf(t, np, -0.2f, -0.1f) : randf(t, np, 0.f, 1.f);
  float *tg = hf(t, nt);
  for (size_t i = 0; i < nt; i++) tg[i] = ky_rng_uniform(&t->rng) < (negative ? 0.5f : 0.3f) ? 1.f : 0.f;
  float *dice = hf(t, groups);
  double *sums = (double *)hmem(t, groups * 3 * sizeof(double));
  ky_cpu_dice_fwd(dice, sums, p, pc, pch, tg, tc, tch, n, hw, 1e-3f, per_image);
  for (int g = 0; negative && g < groups; g++) /* the premise of the clamp case */
    assert_true((2.0 * sums[g * 3] + 1e-3) / (sums[g * 3 + 1] + sums[g * 3 + 2] + 1e-3) < 0.0);
  float *dp = dupf(t, p, np), *dt = dupf(t, tg, nt), *ddice = poison(t, groups);
  double *dsums = (double *)dmem(t, groups * 3 * sizeof(double));
  OK(ky_cuda_memset(cu, dsums, 0xff, groups * 3 * sizeof(double)));
  OK(ky_cuda_dice_fwd(cu, ddice, dsums, dp, pc, pch, dt, tc, tch, n, hw, 1e-3f, per_image));
  expect_close(what, fetch(t, ddice, groups), dice, groups, 1e-7, 1e-6);
  double *gs = (double *)hmem(t, groups * 3 * sizeof(double));
  OK(ky_cuda_d2h(cu, gs, dsums, groups * 3 * sizeof(double)));
  expect_close_d(what, gs, sums, groups * 3, 1e-13 + 2e-16 * (double)hw * n);

  float *dd = randf(t, groups, -1.f, 1.f), *ddd = dupf(t, dd, groups);
  float *gp0 = randf(t, np, -1.f, 1.f), *gp = copyf(t, gp0, np), *dgp = dupf(t, gp0, np);
  ky_cpu_dice_bwd(NULL, gp, dd, sums, p, pc, pch, tg, tc, tch, n, hw, 1e-3f, per_image);
  OK(ky_cuda_dice_bwd(cu, dgp, ddd, dsums, dp, pc, pch, dt, tc, tch, n, hw, 1e-3f, per_image));
  expect_close(what, fetch(t, dgp, np), gp, np, 1e-9, ULPS);
  if (negative) expect_close("dice clamp leaves dp unchanged", fetch(t, dgp, np), gp0, np, 0.0, 0.0);
}

static void test_dice(void **st) {
  tctx *t = (tctx *)*st;
  dice_case(t, 3, 7 * 9, 3, 2, 3, 2, 1, 0);
  dice_case(t, 3, 7 * 9, 3, 1, 1, 0, 0, 0);
  dice_case(t, 2, 70001, 3, 2, 5, 4, 1, 0);
  dice_case(t, 2, 70001, 1, 0, 3, 1, 0, 0);
  dice_case(t, 1, 1, 1, 0, 1, 0, 1, 0);
  dice_case(t, 2, 33, 3, 0, 3, 0, 1, 1);
}

static void test_onehot(void **st) {
  tctx *t = (tctx *)*st;
  int cs[] = {1, 3, 5, 67};
  for (int k = 0; k < 4; k++) {
    int c = cs[k];
    size_t npix = 1001;
    uint8_t *cls = (uint8_t *)hmem(t, npix);
    for (size_t p = 0; p < npix; p++) cls[p] = p % 7 == 0 ? 255 : (uint8_t)ky_rng_int(&t->rng, 0, c);
    float *y = hf(t, npix * c), *dy = poison(t, npix * c);
    ky_cpu_onehot(NULL, y, cls, npix, c);
    OK(ky_cuda_onehot(t->cu, dy, (const uint8_t *)dup_d(t, cls, npix), npix, c));
    expect_close("onehot", fetch(t, dy, npix * c), y, npix * c, 0.0, 0.0);
    teardown_test(st);
  }
}

/* ---- optimisers ----------------------------------------------------------------------------------- */

static void adam_case(tctx *t, size_t n, int amsgrad, float wd) {
  ky_cuda *cu = t->cu;
  char what[96];
  snprintf(what, sizeof what, "adam n=%zu amsgrad=%d wd=%g", n, amsgrad, wd);
  float *p = randf(t, n, -1.f, 1.f), *m = randf(t, n, -0.1f, 0.1f), *v = randf(t, n, 0.f, 0.01f);
  float *vm = copyf(t, v, n);
  float *dp = dupf(t, p, n), *dm = dupf(t, m, n), *dv = dupf(t, v, n), *dvm = dupf(t, vm, n);
  for (int64_t step = 1; step <= 3; step++) {
    ky_adam_args a = {1e-3f, 0.9f, 0.999f, 1e-8f, wd, amsgrad, step};
    float *g = randf(t, n, -1.f, 1.f), *dg = dupf(t, g, n);
    ky_cpu_adam(NULL, p, m, v, amsgrad ? vm : NULL, g, n, &a);
    OK(ky_cuda_adam(cu, dp, dm, dv, amsgrad ? dvm : NULL, dg, n, &a));
  }
  expect_close(what, fetch(t, dm, n), m, n, 0.0, ULPS);
  expect_close(what, fetch(t, dv, n), v, n, 0.0, ULPS);
  if (amsgrad) expect_close(what, fetch(t, dvm, n), vm, n, 0.0, ULPS);
  expect_close(what, fetch(t, dp, n), p, n, 1e-7, ULPS);
}

static void sgd_case(tctx *t, size_t n, float momentum, float dampening, float wd, int nesterov) {
  ky_cuda *cu = t->cu;
  char what[96];
  snprintf(what, sizeof what, "sgd n=%zu mom=%g damp=%g wd=%g nesterov=%d", n, momentum, dampening, wd, nesterov);
  float *p = randf(t, n, -1.f, 1.f), *b = hf(t, n);
  float *dp = dupf(t, p, n), *db = poison(t, n);
  for (int64_t step = 1; step <= 3; step++) {
    ky_sgd_args a = {0.05f, momentum, dampening, wd, nesterov, step};
    float *g = randf(t, n, -1.f, 1.f), *dg = dupf(t, g, n);
    ky_cpu_sgd(NULL, p, b, g, n, &a);
    OK(ky_cuda_sgd(cu, dp, db, dg, n, &a));
  }
  if (momentum != 0.f) expect_close(what, fetch(t, db, n), b, n, 0.0, ULPS);
  expect_close(what, fetch(t, dp, n), p, n, 1e-7, ULPS);
}

static void test_optim(void **st) {
  tctx *t = (tctx *)*st;
  adam_case(t, 100003, 0, 0.f);
  adam_case(t, 7, 1, 0.f);
  adam_case(t, 4099, 0, 0.01f);
  teardown_test(st);
  sgd_case(t, 100003, 0.9f, 0.f, 0.f, 0);
  sgd_case(t, 33, 0.9f, 0.1f, 1e-4f, 0);
  sgd_case(t, 4099, 0.9f, 0.f, 1e-4f, 1);
  sgd_case(t, 5, 0.f, 0.f, 0.f, 0);
}

static void test_sumsq(void **st) {
  tctx *t = (tctx *)*st;
  size_t sizes[] = {1, 7, 4099, 1000003, 20000003};
  for (int k = 0; k < 5; k++) {
    size_t n = sizes[k];
    float *x = randf(t, n, -2.f, 2.f);
    double want = ky_cpu_sumsq(x, n), got;
    double *dout = (double *)dmem(t, sizeof(double));
    OK(ky_cuda_sumsq(t->cu, dout, dupf(t, x, n), n));
    OK(ky_cuda_d2h(t->cu, &got, dout, sizeof got));
    expect_close_d("sumsq", &got, &want, 1, 1e-13 + 2e-16 * (double)n);
    teardown_test(st);
  }
}

/* ---- determinism: two runs, bitwise identical ------------------------------------------------------ */

static void test_determinism(void **st) {
  tctx *t = (tctx *)*st;
  ky_cuda *cu = t->cu;
  const int n = 4, h = 64, w = 48, c = 64;
  size_t npix = (size_t)n * h * w, nx = npix * c;
  float *x = randn(t, nx, 1.f, 2.f), *g = randn(t, nx, 0.f, 1.f);
  float *dx = dupf(t, x, nx), *dg = dupf(t, g, nx);
  float *gamma = randf(t, c, 0.5f, 1.5f), *dgam = dupf(t, gamma, c);
  float *sm = poison(t, c), *si = poison(t, c), *y = poison(t, nx);
  OK(ky_cuda_bn_fwd_train(cu, y, sm, si, NULL, NULL, dx, dgam, NULL, npix, c, 1e-5f, 0.1f));
  /* outputs of each run: BN dx, dgamma, dbeta; upsample bwd (nearest, bilinear) into an input-sized
   * buffer; dice sums + dp; CE loss + dx */
  size_t nlow = (size_t)n * (h / 2) * (w / 2) * c;
  const int K = 3;  /* classes for the loss head */
  size_t nl = npix * K;
  float *logits = randf(t, nl, -3.f, 3.f), *prob = hf(t, nl);
  ky_cpu_softmax_fwd(NULL, prob, logits, npix, K);
  uint8_t *cls = (uint8_t *)hmem(t, npix);
  for (size_t p = 0; p < npix; p++) cls[p] = (uint8_t)ky_rng_int(&t->rng, 0, K);
  float *dlog = dupf(t, logits, nl), *dprob = dupf(t, prob, nl), *onehot = poison(t, nl);
  uint8_t *dcls = (uint8_t *)dup_d(t, cls, npix);
  OK(ky_cuda_onehot(cu, onehot, dcls, npix, K));
  float one = 1.f, *done = dupf(t, &one, 1), dd[4] = {0.3f, -0.2f, 0.5f, 0.1f}, *ddd = dupf(t, dd, 4);

  size_t sizes[] = {nx, c, c, nlow, nlow, 24, 4, nl, 1, nl};
  enum { NOUT = 10 };
  float *run[2][NOUT];
  for (int r = 0; r < 2; r++) {
    float *o[NOUT];
    for (int k = 0; k < NOUT; k++) {
      o[k] = (float *)dmem(t, sizes[k] * sizeof(float));
      OK(ky_cuda_memset(cu, o[k], 0, sizes[k] * sizeof(float)));
    }
    OK(ky_cuda_bn_bwd_train(cu, o[0], o[1], o[2], dg, dx, dgam, sm, si, npix, c));
    OK(ky_cuda_upsample_nearest_bwd(cu, o[3], dg, n, h / 2, w / 2, c, 2));
    OK(ky_cuda_upsample_bilinear2_bwd(cu, o[4], dg, n, h / 2, w / 2, c));
    /* the 4 x 3 double sums are compared as the 24 floats that hold their bytes */
    double *sums = (double *)dmem(t, 4 * 3 * sizeof(double));
    OK(ky_cuda_dice_fwd(cu, o[6], sums, dprob, K, 2, onehot, K, 2, n, (size_t)h * w, 1e-3f, 1));
    OK(ky_cuda_dice_bwd(cu, o[7], ddd, sums, dprob, K, 2, onehot, K, 2, n, (size_t)h * w, 1e-3f, 1));
    OK(ky_cuda_d2d(cu, o[5], sums, 12 * sizeof(double)));
    OK(ky_cuda_softmax_ce_fwd(cu, o[8], dlog, dcls, NULL, npix, K));
    OK(ky_cuda_softmax_ce_bwd(cu, o[9], dlog, dcls, NULL, done, npix, K));
    for (int k = 0; k < NOUT; k++) run[r][k] = fetch(t, o[k], sizes[k]);
  }
  const char *names[NOUT] = {"bn dx", "bn dgamma", "bn dbeta", "nearest bwd", "bilinear bwd", "dice sums",
                             "dice", "dice dp", "ce loss", "ce dx"};
  for (int k = 0; k < NOUT; k++)
    if (memcmp(run[0][k], run[1][k], sizes[k] * sizeof(float)) != 0)
      fail_msg("determinism: %s differs between two identical runs", names[k]);
}

/* ---- bad arguments ---------------------------------------------------------------------------------- */

static void test_bad_args(void **st) {
  tctx *t = (tctx *)*st;
  ky_cuda *cu = t->cu;
  float *a = poison(t, 64), *b = poison(t, 64);
  ky_pool_shape s = {1, 8, 8, 1, 3, 2, 1, 3, 3}; /* oh should be 4 */
  assert_int_equal(ky_cuda_maxpool_fwd(cu, a, NULL, b, &s), KY_ERR_SHAPE);
  assert_non_null(strstr(ky_last_error(), "expected 4x4"));
  int cs[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
  const float *xs[9] = {a, a, a, a, a, a, a, a, a};
  assert_int_equal(ky_cuda_concat_fwd(cu, b, xs, cs, 9, 1), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "9 inputs"));
  assert_int_equal(ky_cuda_bn_fwd_eval(cu, a, b, NULL, NULL, NULL, NULL, 4, 3, 1e-5f), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "running statistics"));
  assert_int_equal(ky_cuda_softmax_fwd(cu, a, b, 4, 0), KY_ERR_SHAPE);
  assert_non_null(strstr(ky_last_error(), "got 0"));
  assert_int_equal(ky_cuda_bce_logits_fwd(cu, a, b, b, 4, 2, 2), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "channel 2 outside 0..1"));
  ky_adam_args ad = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.f, 1, 1};
  assert_int_equal(ky_cuda_adam(cu, a, a, a, NULL, b, 64, &ad), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "vmax is NULL"));
  assert_int_equal(ky_cuda_relu_fwd(NULL, a, b, 4), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "context is NULL"));
  /* zero-length calls are no-ops */
  OK(ky_cuda_relu_fwd(cu, a, b, 0));
  OK(ky_cuda_sync(cu));
}

/* ---- main ------------------------------------------------------------------------------------------- */

static int group_setup(void **st) {
  tctx *t = (tctx *)calloc(1, sizeof *t);
  if (!t) return -1;
  if (ky_cuda_init(&t->cu, 0) != KY_OK) {
    fprintf(stderr, "ky_cuda_init: %s\n", ky_last_error());
    free(t);
    return -1;
  }
  t->rng = ky_rng_make(1234, KY_RNG_STREAM_TEST);
  *st = t;
  return 0;
}

static int group_teardown(void **st) {
  tctx *t = (tctx *)*st;
  if (t) {
    teardown_test(st);
    ky_cuda_free(t->cu);
    free(t);
  }
  return 0;
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup_test, teardown_test)

int main(void) {
  char why[256];
  if (ky_cuda_device_count(why, sizeof why) == 0) {
    printf("test_cuda_ops: SKIPPED: no CUDA GPU (%s)\n", why);
    return 0;
  }
  const struct CMUnitTest tests[] = {
      T(test_elementwise), T(test_batchnorm), T(test_maxpool), T(test_gap),  T(test_concat),
      T(test_upsample),    T(test_softmax),   T(test_bce),     T(test_softmax_ce), T(test_dice),
      T(test_onehot),      T(test_optim),     T(test_sumsq),   T(test_determinism), T(test_bad_args),
  };
  return cmocka_run_group_tests_name("cuda_ops", tests, group_setup, group_teardown);
}

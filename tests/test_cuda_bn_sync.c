/* Synchronised batch norm on a CUDA rank (ops/batchnorm_sync.c with the sync kernels of
 * cuda/batchnorm.cu) against the CPU sync path, in a one-rank job (sync_bn on, mpi set, 1 rank:
 * the all-reduce is the identity, so both must give the same numbers up to float rounding), and
 * against the per-rank CUDA kernels. Forward and backward through the op (ky_batchnorm2d +
 * ky_backward_from) on odd shapes: batch 1, H != W, channels not a multiple of the kernels'
 * 32-channel block, one shape over one 512-pixel chunk, one on the float4 path; then the direct
 * calls with accumulating gradients and without gamma / beta / running statistics.
 * Runs on a GPU (`make test`) and on the CPU emulation (tests/cuda_emu/run_ops.sh, `make emu`);
 * prints one SKIPPED line when neither is there.
 *
 * Tolerances, |gpu - cpu| <= atol + rtol * |cpu|, GPU sync against CPU sync: both add the same
 * double terms in another order (~1e-16 relative), then round to float, so statistics, running
 * statistics, dgamma and dbeta are equal or 1 ulp apart: rtol 2.5e-7 (2^-22). y and dx are float
 * formulas fed with those: y = (x - m) * s + b (nvcc may contract it into an FMA) is within a few
 * ulps of |x - m| * s + |b|, atol 2e-6 + rtol 1e-6 for |x - m| * s up to ~6; dx uses the fused
 * kernels' arrangement (A dy + B xhat + D) where the CPU path factors out gamma * invstd: a few
 * ulps of the largest term (|A dy| ~ 3), atol 4e-6, rtol 1e-6. Against the per-rank CUDA kernels
 * (float partial sums, Welford), the tolerances of tests/test_cuda_ops.c's batch-norm rows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/rng.h"
#include "cuda/cuda.h"
#include "cuda/kernels.h"
#include "dist/dist.h"
#include "ops/batchnorm_sync.h"
#include "ops/ops.h"
#include "tests/util_test.h"

#define OK(call)                                                                                   \
  do {                                                                                             \
    ky_status ok_s_ = (call);                                                                      \
    if (ok_s_ != KY_OK) fail_msg("%s -> %s: %s", #call, ky_status_name(ok_s_), ky_last_error());    \
  } while (0)

static void expect_close(const char *what, const float *got, const float *want, size_t n, double atol, double rtol) {
  size_t worst = 0;
  double e = ky_test_max_err(got, want, n, atol, rtol, &worst);
  if (!(e <= 1.0))
    fail_msg("%s: element %zu of %zu: gpu %.9g cpu %.9g (atol %g, rtol %g: %.3g times the tolerance)", what, worst, n,
             got[worst], want[worst], atol, rtol, e);
}

typedef struct {
  int shape[4];
  float *x, *dy, *g, *b, *rm, *rv;   /* inputs (host) */
} bn_in;

typedef struct {
  float *y, *dx, *dg, *db, *rm, *rv;  /* outputs and updated running statistics (host) */
} bn_out;

static size_t numel(const int *s) { return (size_t)s[0] * s[1] * s[2] * s[3]; }

static float *randn(ky_rng *r, size_t n, float mean, float sd) {
  float *h = malloc(n * sizeof *h);
  assert_non_null(h);
  for (size_t i = 0; i < n; i++) h[i] = mean + sd * ky_rng_normal(r);
  return h;
}

static bn_in make_in(int n, int h, int w, int c, uint64_t seed) {
  ky_rng r = ky_rng_make(seed, KY_RNG_STREAM_TEST);
  bn_in in = {{n, h, w, c}};
  size_t all = numel(in.shape);
  in.x = randn(&r, all, 3.0f, 1.5f);  /* mean 2 sd from 0: the centred second pass matters */
  in.dy = randn(&r, all, 0.0f, 1.0f);
  in.g = randn(&r, (size_t)c, 1.0f, 0.25f);
  in.b = randn(&r, (size_t)c, 0.0f, 0.5f);
  in.rm = randn(&r, (size_t)c, 0.0f, 0.1f);
  in.rv = randn(&r, (size_t)c, 1.0f, 0.1f);
  return in;
}

static void free_in(bn_in *in) { free(in->x); free(in->dy); free(in->g); free(in->b); free(in->rm); free(in->rv); }
static void free_out(bn_out *o) { free(o->y); free(o->dx); free(o->dg); free(o->db); free(o->rm); free(o->rv); }

/* One training step of the op on dev in a one-rank job with sync_bn = sync. */
static void run_op(ky_device dev, int sync, const bn_in *in, bn_out *o) {
  int c = in->shape[3];
  size_t all = numel(in->shape);
  ky_ctx ctx;
  OK(ky_ctx_init(&ctx, dev, 0));
  ky_dist d;
  memset(&d, 0, sizeof d);
  d.size = d.local_size = 1;
  d.mpi = 1;   /* the data-parallel path, as under `mpirun -np 1` */
  d.sync_bn = sync;
  ctx.dist = &d;
  ctx.training = 1;
  ky_ctx_set_grad(&ctx, 1);
  assert_int_equal(ky_bn_sync_on(&ctx), sync);
  if (dev == KY_DEV_CUDA) {
    /* NaN bytes over the arena first: an element a kernel forgets to write fails the test */
    void *p;
    size_t poison = (size_t)8 << 20;
    OK(ky_ctx_alloc(&ctx, &p, poison));
    OK(ky_cuda_memset(ctx.cu, p, 0xff, poison));
    ky_ctx_reset(&ctx);
  }
  ky_tensor *x, *g, *b, *rm, *rv, *y, *dy;
  OK(ky_tensor_from_host(&ctx, &x, KY_F32, 4, in->shape, in->x));
  OK(ky_tensor_from_host(&ctx, &g, KY_F32, 1, &c, in->g));
  OK(ky_tensor_from_host(&ctx, &b, KY_F32, 1, &c, in->b));
  OK(ky_tensor_from_host(&ctx, &rm, KY_F32, 1, &c, in->rm));
  OK(ky_tensor_from_host(&ctx, &rv, KY_F32, 1, &c, in->rv));
  x->requires_grad = g->requires_grad = b->requires_grad = 1;
  OK(ky_batchnorm2d(&ctx, &y, x, g, b, rm, rv, 1e-5f, 0.1f));
  OK(ky_tensor_from_host(&ctx, &dy, KY_F32, 4, in->shape, in->dy));
  OK(ky_backward_from(&ctx, y, dy));
  assert_non_null(x->grad);
  assert_non_null(g->grad);
  assert_non_null(b->grad);
  o->y = malloc(all * 4);
  o->dx = malloc(all * 4);
  o->dg = malloc((size_t)c * 4);
  o->db = malloc((size_t)c * 4);
  o->rm = malloc((size_t)c * 4);
  o->rv = malloc((size_t)c * 4);
  OK(ky_tensor_to_host(&ctx, o->y, y));
  OK(ky_tensor_to_host(&ctx, o->dx, x->grad));
  OK(ky_tensor_to_host(&ctx, o->dg, g->grad));
  OK(ky_tensor_to_host(&ctx, o->db, b->grad));
  OK(ky_tensor_to_host(&ctx, o->rm, rm));
  OK(ky_tensor_to_host(&ctx, o->rv, rv));
  ky_ctx_free(&ctx);
}

static const int shapes[][4] = {
    {1, 5, 7, 37},    /* batch 1, H != W, 37 channels: one full 32-channel block and a ragged one */
    {2, 3, 11, 70},
    {1, 9, 4, 5},
    {1, 2, 1, 33},    /* two pixels */
    {1, 23, 29, 3},   /* 667 pixels: two 512-pixel chunks */
    {1, 6, 10, 36},   /* c % 4 == 0: the float4 apply and dx kernels */
};

static void test_op_cpu_vs_cuda(void **st) {
  for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
    const int *s = shapes[k];
    int c = s[3];
    size_t all = numel(s), npix = all / (size_t)c;
    bn_in in = make_in(s[0], s[1], s[2], c, 100 + k);
    bn_out cpu, gpu, gpu1;
    run_op(KY_DEV_CPU, 1, &in, &cpu);
    run_op(KY_DEV_CUDA, 1, &in, &gpu);
    run_op(KY_DEV_CUDA, 0, &in, &gpu1);
    char what[128];
#define CMP(field, n, atol, rtol, ref, tag)                                                       \
  do {                                                                                            \
    snprintf(what, sizeof what, "%s [%d,%d,%d,%d] %s", tag, s[0], s[1], s[2], s[3], #field);       \
    expect_close(what, gpu.field, ref.field, n, atol, rtol);                                      \
  } while (0)
    CMP(rm, (size_t)c, 1e-9, 2.5e-7, cpu, "cuda sync vs cpu sync");
    CMP(rv, (size_t)c, 1e-9, 2.5e-7, cpu, "cuda sync vs cpu sync");
    CMP(dg, (size_t)c, 1e-9, 2.5e-7, cpu, "cuda sync vs cpu sync");
    CMP(db, (size_t)c, 1e-9, 2.5e-7, cpu, "cuda sync vs cpu sync");
    CMP(y, all, 2e-6, 1e-6, cpu, "cuda sync vs cpu sync");
    CMP(dx, all, 4e-6, 1e-6, cpu, "cuda sync vs cpu sync");
    /* the per-rank kernels: float partial sums (atol ~ sqrt(npix)), Welford in float */
    double red_atol = 2e-6 * sqrt((double)npix);
    CMP(rm, (size_t)c, 1e-6, 1e-6, gpu1, "cuda sync vs cuda per-rank");
    CMP(rv, (size_t)c, 1e-6, 1e-5, gpu1, "cuda sync vs cuda per-rank");
    CMP(dg, (size_t)c, red_atol, 1e-5, gpu1, "cuda sync vs cuda per-rank");
    CMP(db, (size_t)c, red_atol, 1e-5, gpu1, "cuda sync vs cuda per-rank");
    CMP(y, all, 2e-5 + 4e-7 * 3.0 / 1.5, 1e-5, gpu1, "cuda sync vs cuda per-rank");
    CMP(dx, all, 2e-5 + 4e-7 * 3.0 / 1.5, 1e-5, gpu1, "cuda sync vs cuda per-rank");
#undef CMP
    free_out(&cpu);
    free_out(&gpu);
    free_out(&gpu1);
    free_in(&in);
  }
}

/* Device copy of n floats in ctx's arena. */
static float *dev_copy(ky_ctx *ctx, const float *h, size_t n) {
  void *p;
  OK(ky_ctx_alloc(ctx, &p, n * sizeof(float)));
  OK(ky_cuda_h2d(ctx->cu, p, h, n * sizeof(float)));
  return p;
}

/* The direct calls: gradients accumulate into pre-filled buffers; no gamma, beta or running
 * statistics (gamma = 1, beta = 0); dgamma alone without dx (no all-reduce of the sums then). */
static void test_direct_accumulate(void **st) {
  const int s[4] = {1, 7, 3, 41};
  int c = s[3];
  size_t npix = numel(s) / (size_t)c, all = numel(s);
  bn_in in = make_in(s[0], s[1], s[2], c, 7);
  ky_rng r = ky_rng_make(8, KY_RNG_STREAM_TEST);
  float *dx0 = randn(&r, all, 0.f, 1.f), *dg0 = randn(&r, (size_t)c, 0.f, 1.f), *db0 = randn(&r, (size_t)c, 0.f, 1.f);
  ky_dist d;
  memset(&d, 0, sizeof d);
  d.size = d.local_size = 1;
  d.mpi = d.sync_bn = 1;
  ky_ctx cc, gc;
  OK(ky_ctx_init(&cc, KY_DEV_CPU, 0));
  OK(ky_ctx_init(&gc, KY_DEV_CUDA, 0));
  cc.dist = gc.dist = &d;
  /* CPU reference, host buffers */
  float *y = malloc(all * 4), *m = malloc((size_t)c * 4), *is = malloc((size_t)c * 4);
  float *dx = malloc(all * 4), *dg = malloc((size_t)c * 4), *db = malloc((size_t)c * 4);
  memcpy(dx, dx0, all * 4);
  memcpy(dg, dg0, (size_t)c * 4);
  memcpy(db, db0, (size_t)c * 4);
  double count, gcount;
  OK(ky_bn_sync_fwd(&cc, y, m, is, &count, NULL, NULL, in.x, NULL, NULL, npix, c, 1e-3f, 0.1f));
  OK(ky_bn_sync_bwd(&cc, dx, dg, db, in.dy, in.x, NULL, m, is, count, npix, c));
  /* GPU */
  float *gx = dev_copy(&gc, in.x, all), *gdy = dev_copy(&gc, in.dy, all);
  float *gy = dev_copy(&gc, dx0, all), *gm = dev_copy(&gc, dg0, (size_t)c), *gis = dev_copy(&gc, db0, (size_t)c);
  float *gdx = dev_copy(&gc, dx0, all), *gdg = dev_copy(&gc, dg0, (size_t)c), *gdb = dev_copy(&gc, db0, (size_t)c);
  OK(ky_bn_sync_fwd(&gc, gy, gm, gis, &gcount, NULL, NULL, gx, NULL, NULL, npix, c, 1e-3f, 0.1f));
  assert_true(gcount == (double)npix && count == (double)npix);
  OK(ky_bn_sync_bwd(&gc, gdx, gdg, gdb, gdy, gx, NULL, gm, gis, gcount, npix, c));
  float *h = malloc(all * 4);
  OK(ky_cuda_d2h(gc.cu, h, gm, (size_t)c * 4));
  expect_close("direct save_mean", h, m, (size_t)c, 1e-9, 2.5e-7);
  OK(ky_cuda_d2h(gc.cu, h, gis, (size_t)c * 4));
  expect_close("direct save_invstd", h, is, (size_t)c, 1e-9, 2.5e-7);
  OK(ky_cuda_d2h(gc.cu, h, gy, all * 4));
  expect_close("direct y (no gamma, beta)", h, y, all, 2e-6, 1e-6);
  OK(ky_cuda_d2h(gc.cu, h, gdx, all * 4));
  expect_close("direct dx (accumulated)", h, dx, all, 4e-6, 1e-6);
  /* dgamma / dbeta: a pre-filled O(1) value plus a float-rounded sum: 1 ulp of each */
  OK(ky_cuda_d2h(gc.cu, h, gdg, (size_t)c * 4));
  expect_close("direct dgamma (accumulated)", h, dg, (size_t)c, 1e-6, 5e-7);
  OK(ky_cuda_d2h(gc.cu, h, gdb, (size_t)c * 4));
  expect_close("direct dbeta (accumulated)", h, db, (size_t)c, 1e-6, 5e-7);
  /* no dx: dgamma alone, and dx's buffer untouched */
  memcpy(dg, dg0, (size_t)c * 4);
  OK(ky_cuda_h2d(gc.cu, gdg, dg0, (size_t)c * 4));
  OK(ky_bn_sync_bwd(&cc, NULL, dg, NULL, in.dy, in.x, NULL, m, is, count, npix, c));
  OK(ky_bn_sync_bwd(&gc, NULL, gdg, NULL, gdy, gx, NULL, gm, gis, gcount, npix, c));
  OK(ky_cuda_d2h(gc.cu, h, gdg, (size_t)c * 4));
  expect_close("direct dgamma without dx", h, dg, (size_t)c, 1e-6, 5e-7);
  free(h); free(y); free(m); free(is); free(dx); free(dg); free(db); free(dx0); free(dg0); free(db0);
  free_in(&in);
  ky_ctx_free(&cc);
  ky_ctx_free(&gc);
}

static void test_bad_args(void **st) {
  ky_ctx gc;
  OK(ky_ctx_init(&gc, KY_DEV_CUDA, 0));
  double sums[8];
  float *p;
  OK(ky_ctx_alloc(&gc, (void **)&p, 64));
  assert_int_equal(ky_cuda_bn_sync_stats(gc.cu, sums, p, NULL, 4, 0), KY_ERR_SHAPE);
  assert_int_equal(ky_cuda_bn_sync_stats(gc.cu, NULL, p, NULL, 4, 2), KY_ERR_ARG);
  assert_int_equal(ky_cuda_bn_sync_grad_sums(gc.cu, sums, NULL, NULL, NULL, p, p, p, 4, 2), KY_ERR_ARG);
  assert_int_equal(ky_cuda_bn_sync_fwd_apply(gc.cu, p, p, p, NULL, NULL, p, NULL, NULL, sums, 0.0, 4, 2, 1e-5f, 0.1f),
                   KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "pixel count"));
  assert_int_equal(ky_cuda_bn_sync_bwd_apply(gc.cu, p, p, p, NULL, p, p, NULL, 4.0, 4, 2), KY_ERR_ARG);
  ky_ctx_free(&gc);
}

int main(void) {
  char why[256];
  if (ky_cuda_device_count(why, sizeof why) == 0) {
    printf("test_cuda_bn_sync: SKIPPED: no CUDA GPU (%s)\n", why);
    return 0;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_op_cpu_vs_cuda),
      cmocka_unit_test(test_direct_accumulate),
      cmocka_unit_test(test_bad_args),
  };
  return cmocka_run_group_tests_name("cuda_bn_sync", tests, NULL, NULL);
}

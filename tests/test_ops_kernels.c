/* Tests for the CPU reference kernels (ops/ *_cpu.c, losses/ *_cpu.c, optim/ *_cpu.c): hand-worked
 * small cases, backward-accumulates checks, finite differences, and conv against a naive direct
 * convolution (in double, written here) on odd shapes. Run by `make test`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/pool.h"
#include "core/rng.h"
#include "ops/kernels.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static float *rnd(ky_rng *r, size_t n, float lo, float hi) {
  float *a = malloc((n ? n : 1) * sizeof *a);
  assert_non_null(a);
  for (size_t i = 0; i < n; i++) a[i] = ky_rng_uniform_range(r, lo, hi);
  return a;
}

static float *dup(const float *a, size_t n) {
  float *b = malloc((n ? n : 1) * sizeof *b);
  assert_non_null(b);
  memcpy(b, a, n * sizeof *b);
  return b;
}

/* |got - want| <= atol + rtol*|want| everywhere; names the first failing index. */
static void expect_close(const char *what, const float *got, const double *want, size_t n, double atol,
                         double rtol) {
  for (size_t i = 0; i < n; i++) {
    double err = fabs((double)got[i] - want[i]);
    if (!(err <= atol + rtol * fabs(want[i]))) {
      fail_msg("%s: index %zu: got %.9g, want %.9g (err %.3g)", what, i, got[i], want[i], err);
    }
  }
}

static void expect_closef(const char *what, const float *got, const float *want, size_t n, double atol,
                          double rtol) {
  for (size_t i = 0; i < n; i++) {
    double err = fabs((double)got[i] - want[i]);
    if (!(err <= atol + rtol * fabs(want[i])))
      fail_msg("%s: index %zu: got %.9g, want %.9g", what, i, got[i], want[i]);
  }
}

/* ---- convolution -------------------------------------------------------------------------- */

typedef struct { int n, h, w, c, k, kh, kw, stride, pad, dil; } conv_case;

static const conv_case conv_cases[] = {
    {1, 5, 7, 3, 4, 3, 3, 1, 1, 1},      /* batch 1, H != W, C = 3 */
    {2, 9, 6, 5, 7, 3, 3, 2, 1, 1},      /* stride 2, odd sizes */
    {1, 11, 13, 17, 20, 3, 3, 1, 2, 2},  /* dilation 2, C = 17 */
    {2, 16, 15, 3, 8, 7, 7, 2, 3, 1},    /* the 7x7/2 stem */
    {2, 6, 5, 17, 19, 1, 1, 1, 0, 1},    /* 1x1 stride 1: the pointwise path (no im2col) */
    {1, 9, 7, 5, 6, 1, 1, 2, 0, 1},      /* 1x1 stride 2 (ResNet downsample) */
    {1, 7, 8, 4, 3, 3, 3, 1, 0, 1},      /* padding 0, K = 3 (the logits conv) */
    {1, 6, 9, 2, 5, 5, 3, 1, 2, 1},      /* kh != kw */
    {2, 20, 17, 40, 33, 3, 3, 1, 1, 1},  /* several pixel tiles, depth > one KC slice, K edge */
    {1, 3, 3, 2, 2, 3, 3, 2, 3, 1},      /* padding 3 larger than the image */
    {1, 4, 3, 5, 7, 1, 1, 1, 2, 1},      /* 1x1 with padding 2: windows wholly in the padding */
    {2, 5, 4, 3, 4, 1, 1, 3, 2, 1},      /* 1x1, stride 3, padding 2 */
    {1, 8, 9, 3, 5, 3, 3, 3, 2, 2},      /* stride 3 with dilation 2 */
    {1, 6, 7, 40, 3, 3, 3, 1, 1, 1},     /* K = 3 direct path, C = 40: vectors and no tail */
    {2, 9, 8, 64, 1, 3, 3, 2, 2, 2},     /* K = 1, stride 2, dilation 2 */
    {1, 7, 6, 24, 6, 3, 3, 1, 1, 1},     /* K = 6: the transposed (y^T) forward */
    /* C a multiple of 16: the wgrad reads the input in place (no im2col), one tap per panel */
    {1, 13, 11, 16, 7, 3, 3, 1, 1, 1},   /* C = 16, K = 7 (a last row panel of one row) */
    {2, 17, 15, 32, 13, 3, 3, 2, 1, 1},  /* C = 32: two panels per tap, stride 2 */
    {1, 50, 47, 16, 130, 3, 3, 1, 2, 2}, /* K = 130: two rounds of tiles, dilation 2 */
    {2, 9, 10, 48, 20, 1, 1, 1, 0, 1},   /* 1x1 pointwise, C = 48 */
    {1, 7, 6, 16, 9, 1, 1, 2, 1, 1},     /* 1x1 stride 2, padding 1: taps on the zero row */
    /* >= 16 pixel tiles: the stride-1 dgrad runs as a forward conv (ops/conv2d_cpu.c) */
    {1, 64, 63, 19, 17, 3, 3, 1, 2, 2},  /* dilation 2: W' packed from W, C = 19 (panel edge) */
    {1, 61, 67, 6, 9, 3, 3, 1, 1, 1},    /* C = 6: the flipped W' through the transposed forward */
    {2, 47, 45, 3, 5, 3, 3, 1, 0, 1},    /* C = 3, padding 0: the flipped W' through the direct forward */
    {2, 23, 19, 24, 3, 3, 3, 1, 1, 1},   /* direct dgrad over 4 tiles of input pixels (the last short) */
    {1, 31, 29, 13, 2, 3, 3, 2, 1, 1},   /* direct, stride 2 over 4 input tiles, C = 13 (a scalar tail) */
    {1, 50, 45, 12, 3, 3, 3, 1, 1, 1},   /* direct wgrad over 10 tiles: two rounds of partials */
};

static ky_conv_shape conv_shape_of(const conv_case *cc) {
  ky_conv_shape s = {.n = cc->n, .h = cc->h, .w = cc->w, .c = cc->c, .k = cc->k, .kh = cc->kh, .kw = cc->kw,
                     .stride = cc->stride, .pad = cc->pad, .dil = cc->dil};
  assert_int_equal(ky_conv_shape_finish(&s), 1);
  return s;
}

/* Direct convolution in double: y, and for a given dy the gradients dx, dw, db. */
static void naive_conv(double *y, double *dx, double *dw, double *db, const float *x, const float *w,
                       const float *b, const float *dy, const ky_conv_shape *s) {
  size_t nx = (size_t)s->n * s->h * s->w * s->c, nw = (size_t)s->k * s->kh * s->kw * s->c;
  memset(dx, 0, nx * sizeof *dx);
  memset(dw, 0, nw * sizeof *dw);
  memset(db, 0, (size_t)s->k * sizeof *db);
  for (int n = 0; n < s->n; n++)
    for (int oy = 0; oy < s->oh; oy++)
      for (int ox = 0; ox < s->ow; ox++)
        for (int k = 0; k < s->k; k++) {
          size_t o = (((size_t)n * s->oh + oy) * s->ow + ox) * s->k + k;
          double acc = b ? b[k] : 0.0;
          for (int i = 0; i < s->kh; i++)
            for (int j = 0; j < s->kw; j++) {
              int iy = oy * s->stride - s->pad + i * s->dil, ix = ox * s->stride - s->pad + j * s->dil;
              if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w) continue;
              for (int c = 0; c < s->c; c++) {
                size_t xi = (((size_t)n * s->h + iy) * s->w + ix) * s->c + c;
                size_t wi = (((size_t)k * s->kh + i) * s->kw + j) * s->c + c;
                acc += (double)x[xi] * w[wi];
                dx[xi] += (double)dy[o] * w[wi];
                dw[wi] += (double)dy[o] * x[xi];
              }
            }
          y[o] = acc;
          db[k] += dy[o];
        }
}

static void test_conv_vs_naive(void **st) {
  ky_rng r = ky_rng_make(7, KY_RNG_STREAM_TEST);
  for (size_t ci = 0; ci < sizeof conv_cases / sizeof *conv_cases; ci++) {
    ky_conv_shape s = conv_shape_of(&conv_cases[ci]);
    size_t nx = (size_t)s.n * s.h * s.w * s.c, nw = (size_t)s.k * s.kh * s.kw * s.c;
    size_t ny = (size_t)s.n * s.oh * s.ow * s.k;
    assert_true(nx > 0 && nw > 0 && ny > 0);
    float *x = rnd(&r, nx, -1, 1), *w = rnd(&r, nw, -1, 1), *b = rnd(&r, s.k, -1, 1);
    float *dy = rnd(&r, ny, -1, 1), *y = rnd(&r, ny, 5, 6);
    float *dx0 = rnd(&r, nx, -1, 1), *dw0 = rnd(&r, nw, -1, 1), *db0 = rnd(&r, s.k, -1, 1);
    float *dx = dup(dx0, nx), *dw = dup(dw0, nw), *db = dup(db0, s.k);
    size_t nwork = ky_cpu_conv2d_work_floats(&s, 1);
    float *work = rnd(&r, nwork, 1e6f, 2e6f); /* garbage scratch must not leak into results */
    /* calloc: an entry naive_conv missed is a 0, not garbage */
    double *ry = calloc(ny, sizeof *ry), *rdx = calloc(nx, sizeof *rdx), *rdw = calloc(nw, sizeof *rdw),
           *rdb = calloc((size_t)s.k, sizeof *rdb);
    naive_conv(ry, rdx, rdw, rdb, x, w, b, dy, &s);
    char what[96];
    double tol = 2e-5 * s.kh * s.kw * s.c; /* float accumulation of R terms of size <= 1 */

    snprintf(what, sizeof what, "case %zu fwd", ci);
    ky_cpu_conv2d_fwd(NULL, y, x, w, b, &s, 0, work);
    expect_close(what, y, ry, ny, tol, 1e-5);

    snprintf(what, sizeof what, "case %zu fwd relu no bias", ci);
    ky_cpu_conv2d_fwd(NULL, y, x, w, NULL, &s, 1, work);
    for (size_t i = 0; i < ny; i++) ry[i] = fmax(0.0, ry[i] - b[i % s.k]);
    expect_close(what, y, ry, ny, tol, 1e-5);

    /* backward accumulates onto the random starting values */
    ky_cpu_conv2d_dgrad(NULL, dx, dy, w, &s, work);
    ky_cpu_conv2d_wgrad(NULL, dw, db, dy, x, &s, work);
    for (size_t i = 0; i < nx; i++) rdx[i] += dx0[i];
    for (size_t i = 0; i < nw; i++) rdw[i] += dw0[i];
    for (int i = 0; i < s.k; i++) rdb[i] += db0[i];
    size_t npix = (size_t)s.n * s.oh * s.ow;
    snprintf(what, sizeof what, "case %zu dgrad", ci);
    expect_close(what, dx, rdx, nx, 2e-5 * s.k * s.kh * s.kw, 1e-5);
    snprintf(what, sizeof what, "case %zu wgrad", ci);
    expect_close(what, dw, rdw, nw, 2e-5 * npix, 1e-5);
    snprintf(what, sizeof what, "case %zu bias grad", ci);
    expect_close(what, db, rdb, s.k, 1e-5 * npix, 1e-5);

    /* wgrad without a bias gradient leaves db alone */
    ky_cpu_conv2d_wgrad(NULL, dw, NULL, dy, x, &s, work);

    free(x); free(w); free(b); free(dy); free(y); free(dx0); free(dw0); free(db0);
    free(dx); free(dw); free(db); free(work); free(ry); free(rdx); free(rdw); free(rdb);
  }
}

/* Same inputs, same bits: scratch contents and call history do not leak into results (the
 * conventions promise run-to-run reproducibility). */
static void test_conv_bitwise_repeatable(void **st) {
  ky_rng r = ky_rng_make(17, KY_RNG_STREAM_TEST);
  ky_conv_shape s = conv_shape_of(&conv_cases[8]); /* several tiles, depth > KC */
  size_t nx = (size_t)s.n * s.h * s.w * s.c, nw = (size_t)s.k * s.kh * s.kw * s.c;
  size_t ny = (size_t)s.n * s.oh * s.ow * s.k, nwork = ky_cpu_conv2d_work_floats(&s, 1);
  float *x = rnd(&r, nx, -1, 1), *w = rnd(&r, nw, -1, 1), *dy = rnd(&r, ny, -1, 1);
  float *out[2][3];
  for (int run = 0; run < 2; run++) {
    float *work = rnd(&r, nwork, -1e3f, 1e3f); /* different garbage each run */
    out[run][0] = malloc(ny * sizeof(float));
    out[run][1] = calloc(nx, sizeof(float));
    out[run][2] = calloc(nw, sizeof(float));
    ky_cpu_conv2d_fwd(NULL, out[run][0], x, w, NULL, &s, 0, work);
    ky_cpu_conv2d_dgrad(NULL, out[run][1], dy, w, &s, work);
    ky_cpu_conv2d_wgrad(NULL, out[run][2], NULL, dy, x, &s, work);
    free(work);
  }
  assert_memory_equal(out[0][0], out[1][0], ny * sizeof(float));
  assert_memory_equal(out[0][1], out[1][1], nx * sizeof(float));
  assert_memory_equal(out[0][2], out[1][2], nw * sizeof(float));
  for (int run = 0; run < 2; run++)
    for (int i = 0; i < 3; i++) free(out[run][i]);
  free(x); free(w); free(dy);
}

/* 3x3 all-ones kernel over 1..9 with padding 1: each output is the sum of its neighbourhood. */
static void test_conv_hand_3x3(void **st) {
  ky_conv_shape s = {.n = 1, .h = 3, .w = 3, .c = 1, .k = 1, .kh = 3, .kw = 3, .stride = 1, .pad = 1, .dil = 1};
  assert_int_equal(ky_conv_shape_finish(&s), 1);
  assert_int_equal(s.oh, 3);
  assert_int_equal(s.ow, 3);
  float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w[9], b = 0.5f, y[9];
  for (int i = 0; i < 9; i++) w[i] = 1.0f;
  float *work = malloc(ky_cpu_conv2d_work_floats(&s, 1) * sizeof *work);
  ky_cpu_conv2d_fwd(NULL, y, x, w, &b, &s, 0, work);
  const float want[9] = {12.5f, 21.5f, 16.5f, 27.5f, 45.5f, 33.5f, 24.5f, 39.5f, 28.5f};
  expect_closef("3x3 ones", y, want, 9, 0, 0);
  /* stride 2: only the corners */
  s.stride = 2;
  assert_int_equal(ky_conv_shape_finish(&s), 1);
  assert_int_equal(s.oh, 2);
  ky_cpu_conv2d_fwd(NULL, y, x, w, NULL, &s, 0, work);
  const float want2[4] = {12, 16, 24, 28};
  expect_closef("3x3 ones stride 2", y, want2, 4, 0, 0);
  /* dgrad of a single dy = 1 at the centre (stride 1) spreads the flipped kernel: all ones */
  s.stride = 1;
  assert_int_equal(ky_conv_shape_finish(&s), 1);
  float dy[9] = {0, 0, 0, 0, 1, 0, 0, 0, 0}, dx[9] = {0};
  for (int i = 0; i < 9; i++) w[i] = (float)(i + 1);
  ky_cpu_conv2d_dgrad(NULL, dx, dy, w, &s, work);
  const float want3[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  expect_closef("dgrad centre", dx, want3, 9, 0, 0);
  ky_cpu_conv2d_dgrad(NULL, dx, dy, w, &s, work);
  const float want4[9] = {2, 4, 6, 8, 10, 12, 14, 16, 18};
  expect_closef("dgrad twice", dx, want4, 9, 0, 0);
  free(work);
}

static void test_conv_shape_finish(void **st) {
  ky_conv_shape s = {.n = 2, .h = 256, .w = 256, .c = 3, .k = 64, .kh = 7, .kw = 7, .stride = 2, .pad = 3, .dil = 1};
  assert_int_equal(ky_conv_shape_finish(&s), 1);
  assert_int_equal(s.oh, 128);
  assert_int_equal(s.ow, 128);
  s = (ky_conv_shape){.n = 1, .h = 7, .w = 9, .c = 1, .k = 1, .kh = 3, .kw = 3, .stride = 2, .pad = 0, .dil = 2};
  assert_int_equal(ky_conv_shape_finish(&s), 1);
  assert_int_equal(s.oh, 2); /* (7 - 4 - 1)/2 + 1 */
  assert_int_equal(s.ow, 3); /* (9 - 4 - 1)/2 + 1 */
  s.h = 4;                   /* window 5 > 4: empty output */
  assert_int_equal(ky_conv_shape_finish(&s), 0);
  s.h = 7;
  s.stride = 0;
  assert_int_equal(ky_conv_shape_finish(&s), 0);
  s.stride = 1;
  s.pad = -1;
  assert_int_equal(ky_conv_shape_finish(&s), 0);
  assert_int_equal(ky_conv_shape_finish(NULL), 0);
}

/* The scratch does not grow with the batch or the image: it is sized by the pixel tile (small
 * images take the col2im dgrad, larger ones the dgrad-as-forward: each size is fixed). */
static void test_conv_work_bounded(void **st) {
  ky_conv_shape a = {.n = 1, .h = 64, .w = 64, .c = 64, .k = 64, .kh = 3, .kw = 3, .stride = 1, .pad = 1, .dil = 1};
  ky_conv_shape b = a, c = a;
  b.n = 16;
  b.h = b.w = 256;
  c.h = c.w = 8;
  assert_int_equal(ky_conv_shape_finish(&a), 1);
  assert_int_equal(ky_conv_shape_finish(&b), 1);
  assert_int_equal(ky_conv_shape_finish(&c), 1);
  assert_true(ky_cpu_conv2d_work_floats(&a, 1) == ky_cpu_conv2d_work_floats(&b, 1));
  assert_true(ky_cpu_conv2d_work_floats(&b, 1) < (size_t)2 << 20); /* < 8 MB for a 64-channel 3x3 */
  assert_true(ky_cpu_conv2d_work_floats(&c, 1) < (size_t)2 << 20);
}

/* ---- finite differences ------------------------------------------------------------------- */

/* Scalar objective of a kernel under test, reading its inputs through ctx; fd_check perturbs one
 * of those inputs in place. The analytic gradient comes from the kernel's backward. */
typedef double (*objective)(void *ctx);

static void fd_check(const char *what, float *x, size_t n, const float *analytic, objective f, void *ctx,
                     double h, double tol) {
  for (size_t i = 0; i < n; i++) {
    float keep = x[i];
    x[i] = keep + (float)h;
    double lp = f(ctx);
    x[i] = keep - (float)h;
    double lm = f(ctx);
    x[i] = keep;
    double num = (lp - lm) / (2 * h);
    if (fabs(num - analytic[i]) > tol * (1.0 + fabs(num)))
      fail_msg("%s: d/dx[%zu]: analytic %.7g, numeric %.7g", what, i, analytic[i], num);
  }
}

/* ---- batch norm --------------------------------------------------------------------------- */

static void test_bn_hand(void **st) {
  /* one channel, x = 1..4: mean 2.5, biased var 1.25, unbiased 5/3 */
  float x[4] = {1, 2, 3, 4}, y[4], g = 2.0f, b = 0.5f, sm, si, rm = 0.0f, rv = 1.0f;
  ky_cpu_bn_fwd_train(NULL, y, &sm, &si, &rm, &rv, x, &g, &b, 4, 1, 1e-5f, 0.1f);
  double is = 1.0 / sqrt(1.25 + 1e-5);
  double want[4];
  for (int i = 0; i < 4; i++) want[i] = (x[i] - 2.5) * is * 2.0 + 0.5;
  expect_close("bn train y", y, want, 4, 1e-6, 1e-6);
  assert_float_equal(sm, 2.5f, 1e-7);
  assert_float_equal(si, (float)is, 1e-6);
  assert_float_equal(rm, 0.25f, 1e-7);
  assert_float_equal(rv, (float)(0.9 + 0.1 * 5.0 / 3.0), 1e-6);
  /* eval with the given running stats */
  float rmean = 1.0f, rvar = 4.0f;
  ky_cpu_bn_fwd_eval(NULL, y, x, &g, &b, &rmean, &rvar, 4, 1, 0.0f);
  const float we[4] = {0.5f, 1.5f, 2.5f, 3.5f}; /* (x - 1)/2 * 2 + 0.5 */
  expect_closef("bn eval y", y, we, 4, 1e-6, 0);
  /* affine=False (NULL gamma/beta), two channels interleaved */
  float x2[6] = {1, 10, 3, 10, 5, 10}, y2[6], sm2[2], si2[2];
  ky_cpu_bn_fwd_train(NULL, y2, sm2, si2, NULL, NULL, x2, NULL, NULL, 3, 2, 1e-5f, 0.1f);
  const float w2[6] = {-1.2247449f, 0, 0, 0, 1.2247449f, 0};
  expect_closef("bn no affine", y2, w2, 6, 1e-5, 1e-6);
}

typedef struct { size_t npix; int c; const float *x, *g, *b, *r, *rm, *rv; int eval; } bn_ctx;

static double bn_obj(void *vctx) {
  bn_ctx *k = vctx;
  const float *x = k->x;
  size_t n = k->npix * k->c;
  float *y = malloc(n * sizeof *y), sm[8], si[8];
  if (k->eval) ky_cpu_bn_fwd_eval(NULL, y, x, k->g, k->b, k->rm, k->rv, k->npix, k->c, 1e-5f);
  else ky_cpu_bn_fwd_train(NULL, y, sm, si, NULL, NULL, x, k->g, k->b, k->npix, k->c, 1e-5f, 0.1f);
  double l = 0;
  for (size_t i = 0; i < n; i++) l += (double)k->r[i] * y[i];
  free(y);
  return l;
}

static void test_bn_backward_fd(void **st) {
  ky_rng r = ky_rng_make(3, KY_RNG_STREAM_TEST);
  enum { NP = 10, C = 3 };
  float *x = rnd(&r, NP * C, -2, 2), *dy = rnd(&r, NP * C, -1, 1), *g = rnd(&r, C, 0.5f, 1.5f),
        *b = rnd(&r, C, -1, 1), *rm = rnd(&r, C, -0.5f, 0.5f), *rv = rnd(&r, C, 0.5f, 2);
  for (int eval = 0; eval < 2; eval++) {
    float y[NP * C], sm[C], si[C], dx[NP * C] = {0}, dg[C] = {0}, db[C] = {0};
    ky_cpu_bn_fwd_train(NULL, y, sm, si, NULL, NULL, x, g, b, NP, C, 1e-5f, 0.1f);
    if (eval) ky_cpu_bn_bwd_eval(NULL, dx, dg, db, dy, x, g, rm, rv, NP, C, 1e-5f);
    else ky_cpu_bn_bwd_train(NULL, dx, dg, db, dy, x, g, sm, si, NP, C);
    bn_ctx k = {NP, C, x, g, b, dy, rm, rv, eval};
    fd_check(eval ? "bn eval dx" : "bn train dx", x, NP * C, dx, bn_obj, &k, 1e-2, 2e-3);
    fd_check(eval ? "bn eval dgamma" : "bn train dgamma", g, C, dg, bn_obj, &k, 1e-2, 2e-3);
    fd_check(eval ? "bn eval dbeta" : "bn train dbeta", b, C, db, bn_obj, &k, 1e-2, 2e-3);
    /* a second call doubles every gradient; NULL outputs are skipped */
    float dx1[NP * C], dg1[C], db1[C];
    memcpy(dx1, dx, sizeof dx); memcpy(dg1, dg, sizeof dg); memcpy(db1, db, sizeof db);
    if (eval) ky_cpu_bn_bwd_eval(NULL, dx, dg, db, dy, x, g, rm, rv, NP, C, 1e-5f);
    else ky_cpu_bn_bwd_train(NULL, dx, dg, db, dy, x, g, sm, si, NP, C);
    for (int i = 0; i < NP * C; i++) assert_float_equal(dx[i], 2 * dx1[i], 1e-5);
    for (int i = 0; i < C; i++) {
      assert_float_equal(dg[i], 2 * dg1[i], 1e-5);
      assert_float_equal(db[i], 2 * db1[i], 1e-5);
    }
    if (eval) ky_cpu_bn_bwd_eval(NULL, NULL, NULL, db, dy, x, g, rm, rv, NP, C, 1e-5f);
    else ky_cpu_bn_bwd_train(NULL, NULL, NULL, db, dy, x, g, sm, si, NP, C);
    for (int i = 0; i < C; i++) assert_float_equal(db[i], 3 * db1[i], 1e-5);
  }
  free(x); free(dy); free(g); free(b); free(rm); free(rv);
}

/* more channels than one accumulation block (64), so the channel blocking is exercised */
static void test_bn_many_channels(void **st) {
  ky_rng r = ky_rng_make(4, KY_RNG_STREAM_TEST);
  enum { NP = 5, C = 150 };
  float *x = rnd(&r, NP * C, -3, 3), y[NP * C], sm[C], si[C];
  ky_cpu_bn_fwd_train(NULL, y, sm, si, NULL, NULL, x, NULL, NULL, NP, C, 0.0f, 0.1f);
  for (int c = 0; c < C; c++) {
    double m = 0, v = 0;
    for (int p = 0; p < NP; p++) m += x[p * C + c];
    m /= NP;
    for (int p = 0; p < NP; p++) v += (x[p * C + c] - m) * (x[p * C + c] - m);
    v /= NP;
    for (int p = 0; p < NP; p++) assert_float_equal(y[p * C + c], (x[p * C + c] - m) / sqrt(v), 1e-5);
  }
  free(x);
}

/* ---- elementwise -------------------------------------------------------------------------- */

static void test_elementwise(void **st) {
  float x[5] = {-2, -0.0f, 0.5f, 3, -1e-30f}, y[5], dx[5] = {1, 1, 1, 1, 1}, dy[5] = {1, 2, 3, 4, 5};
  ky_cpu_relu_fwd(NULL, y, x, 5);
  const float wr[5] = {0, 0, 0.5f, 3, 0};
  expect_closef("relu", y, wr, 5, 0, 0);
  ky_cpu_relu_bwd(NULL, dx, dy, y, 5);
  const float wdr[5] = {1, 1, 4, 5, 1};
  expect_closef("relu bwd accumulates", dx, wdr, 5, 0, 0);

  float xs[4] = {0, 100, -100, 2}, s[4];
  ky_cpu_sigmoid_fwd(NULL, s, xs, 4);
  assert_float_equal(s[0], 0.5f, 0);
  assert_float_equal(s[1], 1.0f, 1e-7);
  assert_true(s[2] > 0 && s[2] < 1e-40f);
  assert_float_equal(s[3], 1 / (1 + exp(-2.0)), 1e-7);
  float ds[4] = {1, 0, 0, 0}, g[4] = {2, 2, 2, 2};
  ky_cpu_sigmoid_bwd(NULL, ds, g, s, 4);
  assert_float_equal(ds[0], 1.5f, 1e-7); /* 1 + 2 * 0.5 * 0.5 */
  assert_float_equal(ds[3], 2 * s[3] * (1 - s[3]), 1e-7);

  float a[3] = {1, 2, 3}, b[3] = {10, 20, 30}, o[3];
  ky_cpu_add_fwd(NULL, o, a, b, 3);
  const float wa[3] = {11, 22, 33};
  expect_closef("add", o, wa, 3, 0, 0);
  ky_cpu_scale_fwd(NULL, o, a, -2, 3);
  const float wsc[3] = {-2, -4, -6};
  expect_closef("scale", o, wsc, 3, 0, 0);
  ky_cpu_scale_fwd(NULL, a, a, 0.5f, 3); /* in place */
  const float wh[3] = {0.5f, 1, 1.5f};
  expect_closef("scale in place", a, wh, 3, 0, 0);
  ky_cpu_axpy(NULL, b, a, 2, 3);
  const float wx[3] = {11, 22, 33};
  expect_closef("axpy", b, wx, 3, 0, 0);
  ky_cpu_fill(NULL, o, 7, 3);
  const float wf[3] = {7, 7, 7};
  expect_closef("fill", o, wf, 3, 0, 0);
}

/* ---- pooling ------------------------------------------------------------------------------ */

static void test_pool_shape(void **st) {
  ky_pool_shape s = {.n = 2, .h = 128, .w = 128, .c = 64, .k = 3, .stride = 2, .pad = 1};
  assert_int_equal(ky_pool_shape_finish(&s), 1);
  assert_int_equal(s.oh, 64);
  s.h = 7;
  s.w = 6;
  assert_int_equal(ky_pool_shape_finish(&s), 1);
  assert_int_equal(s.oh, 4);
  assert_int_equal(s.ow, 3);
  s.pad = 2; /* more than half the window */
  assert_int_equal(ky_pool_shape_finish(&s), 0);
  s.pad = 0;
  s.h = 2; /* window larger than the image */
  assert_int_equal(ky_pool_shape_finish(&s), 0);
}

static void test_maxpool_ties_and_padding(void **st) {
  /* one image 3x3, two channels: channel 0 all equal (ties -> first), channel 1 negative values
   * (padding is -inf, never 0) */
  ky_pool_shape s = {.n = 1, .h = 3, .w = 3, .c = 2, .k = 3, .stride = 2, .pad = 1};
  assert_int_equal(ky_pool_shape_finish(&s), 1);
  assert_int_equal(s.oh, 2);
  float x[18];
  const float c1[9] = {-5, -3, -4, -9, -8, -2, -7, -6, -1};
  for (int i = 0; i < 9; i++) {
    x[i * 2] = 1.0f;
    x[i * 2 + 1] = c1[i];
  }
  float y[8];
  int32_t am[8];
  ky_cpu_maxpool_fwd(NULL, y, am, x, &s);
  /* windows: (0,0): rows 0-1, cols 0-1; (0,1): rows 0-1, cols 1-2; (1,0): rows 1-2, cols 0-1; (1,1) */
  const int32_t want_tie[4] = {0, 1, 3, 4};   /* first in-image element of each window */
  const float want_c1[4] = {-3, -2, -6, -1};
  const int32_t want_a1[4] = {1, 5, 7, 8};
  for (int p = 0; p < 4; p++) {
    assert_float_equal(y[p * 2], 1.0f, 0);
    assert_int_equal(am[p * 2], want_tie[p]);
    assert_float_equal(y[p * 2 + 1], want_c1[p], 0);
    assert_int_equal(am[p * 2 + 1], want_a1[p]);
  }
  /* backward: overlapping windows add up where argmax repeats */
  float dx[18] = {0}, dy[8] = {1, 10, 2, 20, 3, 30, 4, 40};
  ky_cpu_maxpool_bwd(NULL, dx, dy, am, &s);
  ky_cpu_maxpool_bwd(NULL, dx, dy, am, &s);
  float want_dx[18] = {0};
  for (int p = 0; p < 4; p++) {
    want_dx[am[p * 2] * 2] += 2 * dy[p * 2];
    want_dx[am[p * 2 + 1] * 2 + 1] += 2 * dy[p * 2 + 1];
  }
  expect_closef("maxpool bwd twice", dx, want_dx, 18, 0, 0);
  assert_float_equal(dx[0], 2.0f, 0);
  assert_float_equal(dx[17], 80.0f, 0);
  /* a NaN wins its window */
  x[8] = NAN;
  ky_cpu_maxpool_fwd(NULL, y, am, x, &s);
  assert_true(isnan(y[0]) && am[0] == 4);
}

static void test_gap(void **st) {
  float x[2 * 3 * 2] = {1, 10, 2, 20, 3, 30, /* image 1 */ -1, 0, -2, 0, -6, 3};
  float y[4];
  ky_cpu_gap_fwd(NULL, y, x, 2, 3, 2);
  const float want[4] = {2, 20, -3, 1};
  expect_closef("gap", y, want, 4, 1e-6, 0);
  float dx[12], dy[4] = {3, 6, 9, 12};
  ky_cpu_fill(NULL, dx, 1, 12);
  ky_cpu_gap_bwd(NULL, dx, dy, 2, 3, 2);
  const float wd[12] = {2, 3, 2, 3, 2, 3, 4, 5, 4, 5, 4, 5};
  expect_closef("gap bwd", dx, wd, 12, 1e-6, 0);
}

/* More channels than one stack block (64) in maxpool, global average pooling and the nearest
 * upsampling backward, against direct loops written here. */
static void test_channel_blocks(void **st) {
  ky_rng r = ky_rng_make(13, KY_RNG_STREAM_TEST);
  enum { N = 2, H = 5, W = 4, C = 70 };
  size_t nx = N * H * W * C;
  float *x = rnd(&r, nx, -1, 1);
  ky_pool_shape ps = {.n = N, .h = H, .w = W, .c = C, .k = 3, .stride = 2, .pad = 1};
  assert_int_equal(ky_pool_shape_finish(&ps), 1);
  size_t ny = (size_t)N * ps.oh * ps.ow * C;
  float *y = malloc(ny * sizeof *y);
  int32_t *am = malloc(ny * sizeof *am);
  ky_cpu_maxpool_fwd(NULL, y, am, x, &ps);
  for (int n = 0; n < N; n++)
    for (int oy = 0; oy < ps.oh; oy++)
      for (int ox = 0; ox < ps.ow; ox++)
        for (int c = 0; c < C; c++) {
          float best = -INFINITY;
          int bi = -1;
          for (int iy = oy * 2 - 1; iy <= oy * 2 + 1; iy++)
            for (int ix = ox * 2 - 1; ix <= ox * 2 + 1; ix++) {
              if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
              float v = x[(((size_t)n * H + iy) * W + ix) * C + c];
              if (v > best) { best = v; bi = iy * W + ix; }
            }
          size_t o = (((size_t)n * ps.oh + oy) * ps.ow + ox) * C + c;
          assert_float_equal(y[o], best, 0);
          assert_int_equal(am[o], bi);
        }
  float g[N * C];
  ky_cpu_gap_fwd(NULL, g, x, N, H * W, C);
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++) {
      double m = 0;
      for (int p = 0; p < H * W; p++) m += x[((size_t)n * H * W + p) * C + c];
      assert_float_equal(g[n * C + c], m / (H * W), 1e-6);
    }
  size_t nu = nx * 9;
  float *dy = rnd(&r, nu, -1, 1), *dx = calloc(nx, sizeof *dx);
  ky_cpu_upsample_nearest_bwd(NULL, dx, dy, N, H, W, C, 3);
  for (int n = 0; n < N; n++)
    for (int iy = 0; iy < H; iy++)
      for (int ix = 0; ix < W; ix++)
        for (int c = 0; c < C; c++) {
          double sum = 0;
          for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++) sum += dy[(((size_t)n * H * 3 + iy * 3 + a) * W * 3 + ix * 3 + b) * C + c];
          assert_float_equal(dx[(((size_t)n * H + iy) * W + ix) * C + c], sum, 1e-5);
        }
  free(x); free(y); free(am); free(dy); free(dx);
}

/* ---- concat ------------------------------------------------------------------------------- */

static void test_concat(void **st) {
  float a[4] = {1, 2, 3, 4};              /* 2 pixels x 2 */
  float b[2] = {9, 8};                    /* 2 pixels x 1 */
  float c[6] = {5, 6, 7, 50, 60, 70};     /* 2 pixels x 3 */
  const float *xs[3] = {a, b, c};
  const int cs[3] = {2, 1, 3};
  float y[12];
  ky_cpu_concat_fwd(NULL, y, xs, cs, 3, 2);
  const float want[12] = {1, 2, 9, 5, 6, 7, 3, 4, 8, 50, 60, 70};
  expect_closef("concat", y, want, 12, 0, 0);
  float da[4] = {1, 1, 1, 1}, dc[6] = {0};
  float *dxs[3] = {da, NULL, dc};
  ky_cpu_concat_bwd(NULL, dxs, y, cs, 3, 2);
  const float wa[4] = {2, 3, 4, 5};
  expect_closef("concat bwd a", da, wa, 4, 0, 0);
  expect_closef("concat bwd c", dc, c, 6, 0, 0);
}

/* ---- upsampling --------------------------------------------------------------------------- */

static void test_upsample_nearest(void **st) {
  float x[4] = {1, 2, 3, 4}; /* 1 x 2 x 2 x 1 */
  float y[36];
  ky_cpu_upsample_nearest_fwd(NULL, y, x, 1, 2, 2, 1, 3);
  for (int oy = 0; oy < 6; oy++)
    for (int ox = 0; ox < 6; ox++) assert_float_equal(y[oy * 6 + ox], x[(oy / 3) * 2 + ox / 3], 0);
  float dy[16], dx[4] = {100, 0, 0, 0};
  for (int i = 0; i < 16; i++) dy[i] = (float)i; /* 4x4 gradient, factor 2 */
  ky_cpu_upsample_nearest_bwd(NULL, dx, dy, 1, 2, 2, 1, 2);
  const float want[4] = {100 + 0 + 1 + 4 + 5, 2 + 3 + 6 + 7, 8 + 9 + 12 + 13, 10 + 11 + 14 + 15};
  expect_closef("nearest bwd", dx, want, 4, 0, 0);
}

static void test_upsample_bilinear_hand(void **st) {
  float x[4] = {1, 2, 3, 4}; /* [[1, 2], [3, 4]] */
  float y[16];
  ky_cpu_upsample_bilinear2_fwd(NULL, y, x, 1, 2, 2, 1);
  /* taps along an axis of 2: out 0 -> x0; 1 -> .75 x0 + .25 x1; 2 -> .25 x0 + .75 x1; 3 -> x1 */
  const float want[16] = {1,   1.25f, 1.75f, 2,    1.5f, 1.75f, 2.25f, 2.5f,
                          2.5f, 2.75f, 3.25f, 3.5f, 3,    3.25f, 3.75f, 4};
  expect_closef("bilinear 2x2", y, want, 16, 1e-6, 0);
  /* a 1 x 3 x 1 x 2 input (W = 1, two channels): columns repeat, rows interpolate */
  float x3[6] = {0, 10, 4, 20, 8, 40}, y3[6 * 2 * 2];
  ky_cpu_upsample_bilinear2_fwd(NULL, y3, x3, 1, 3, 1, 2);
  const float rows0[6] = {0, 1, 3, 5, 7, 8};
  const float rows1[6] = {10, 12.5f, 17.5f, 25, 35, 40};
  for (int oy = 0; oy < 6; oy++)
    for (int ox = 0; ox < 2; ox++) {
      assert_float_equal(y3[(oy * 2 + ox) * 2], rows0[oy], 1e-6);
      assert_float_equal(y3[(oy * 2 + ox) * 2 + 1], rows1[oy], 1e-6);
    }
}

/* The backward is the adjoint of the forward: <up(x), g> = <x, up^T(g)>, and it accumulates. */
static void test_upsample_adjoint(void **st) {
  ky_rng r = ky_rng_make(5, KY_RNG_STREAM_TEST);
  enum { N = 2, H = 5, W = 3, C = 4 };
  size_t nx = N * H * W * C, ny = nx * 4;
  float *x = rnd(&r, nx, -1, 1), *g = rnd(&r, ny, -1, 1), *y = malloc(ny * sizeof *y);
  for (int mode = 0; mode < 2; mode++) {
    float *dx = calloc(nx, sizeof *dx);
    if (mode) {
      ky_cpu_upsample_bilinear2_fwd(NULL, y, x, N, H, W, C);
      ky_cpu_upsample_bilinear2_bwd(NULL, dx, g, N, H, W, C);
    } else {
      ky_cpu_upsample_nearest_fwd(NULL, y, x, N, H, W, C, 2);
      ky_cpu_upsample_nearest_bwd(NULL, dx, g, N, H, W, C, 2);
    }
    double lhs = 0, rhs = 0;
    for (size_t i = 0; i < ny; i++) lhs += (double)y[i] * g[i];
    for (size_t i = 0; i < nx; i++) rhs += (double)x[i] * dx[i];
    assert_float_equal(lhs, rhs, 1e-4);
    float *dx1 = dup(dx, nx);
    if (mode) ky_cpu_upsample_bilinear2_bwd(NULL, dx, g, N, H, W, C);
    else ky_cpu_upsample_nearest_bwd(NULL, dx, g, N, H, W, C, 2);
    for (size_t i = 0; i < nx; i++) assert_float_equal(dx[i], 2 * dx1[i], 1e-5);
    free(dx);
    free(dx1);
  }
  free(x); free(g); free(y);
}

/* ---- softmax ------------------------------------------------------------------------------ */

static void test_softmax(void **st) {
  float x[6] = {0, 0, logf(2), 1000, 1000, -1000}, y[6];
  ky_cpu_softmax_fwd(NULL, y, x, 2, 3);
  const float want[6] = {0.25f, 0.25f, 0.5f, 0.5f, 0.5f, 0};
  expect_closef("softmax", y, want, 6, 1e-7, 1e-6);
  /* backward: dx = y (dy - <dy, y>); here <dy, y> = 0.25 + 0.5 + 1.5 = 2.25 */
  float dy[3] = {1, 2, 3}, dx[3] = {1, 1, 1};
  ky_cpu_softmax_bwd(NULL, dx, dy, y, 1, 3);
  const float wd[3] = {1 + 0.25f * (1 - 2.25f), 1 + 0.25f * (2 - 2.25f), 1 + 0.5f * (3 - 2.25f)};
  expect_closef("softmax bwd", dx, wd, 3, 1e-6, 0);
}

/* ---- losses ------------------------------------------------------------------------------- */

static void test_bce_logits(void **st) {
  /* channel 1 of a 2-channel map; channel 0 is never read nor written */
  float x[8] = {NAN, 0, NAN, 100, NAN, -100, NAN, 2};
  float t[8] = {NAN, 1, NAN, 1, NAN, 1, NAN, 0.25f};
  float loss;
  ky_cpu_bce_logits_fwd(&loss, x, t, 4, 2, 1);
  double l3 = 2 - 2 * 0.25 + log1p(exp(-2.0));
  assert_float_equal(loss, (log(2.0) + 0 + 100 + l3) / 4, 1e-5);
  float dx[8] = {0};
  ky_cpu_bce_logits_bwd(NULL, dx, x, t, 2.0f, 4, 2, 1);
  ky_cpu_bce_logits_bwd(NULL, dx, x, t, 2.0f, 4, 2, 1); /* twice: doubled */
  double s3 = 1 / (1 + exp(-2.0));
  assert_float_equal(dx[1], 2 * 2 * (0.5 - 1) / 4, 1e-7);
  assert_float_equal(dx[3], 0, 1e-7);
  assert_float_equal(dx[5], 2 * 2 * (0 - 1) / 4, 1e-7);
  assert_float_equal(dx[7], 2 * 2 * (s3 - 0.25) / 4, 1e-6);
  assert_float_equal(dx[0], 0, 0);
}

static void test_softmax_ce(void **st) {
  /* 3 pixels x 3 classes: uniform logits (nll = ln 3), a confident one, an ignored one */
  float x[9] = {0, 0, 0, 1, 2, 5, 7, 7, 7};
  uint8_t cls[3] = {1, 2, 255};
  float loss;
  double lse1 = log(exp(1.0) + exp(2.0) + exp(5.0));
  double nll0 = log(3.0), nll1 = lse1 - 5;
  ky_cpu_softmax_ce_fwd(NULL, &loss, NULL, x, cls, NULL, 3, 3);
  assert_float_equal(loss, (nll0 + nll1) / 2, 1e-6);
  /* class weights: mean weighted by w[y] */
  float w[3] = {0.5f, 2, 3};
  ky_cpu_softmax_ce_fwd(NULL, &loss, NULL, x, cls, w, 3, 3);
  assert_float_equal(loss, (2 * nll0 + 3 * nll1) / 5, 1e-6);
  float dx[9];
  ky_cpu_fill(NULL, dx, 1, 9);
  ky_cpu_softmax_ce_bwd(NULL, dx, x, cls, w, 1.0f, 3, 3);
  /* pixel 0: w=2: 2/5 * (1/3 - [j==1]) */
  assert_float_equal(dx[0], 1 + 0.4 / 3, 1e-6);
  assert_float_equal(dx[1], 1 + 0.4 * (1.0 / 3 - 1), 1e-6);
  double p2 = exp(5 - lse1);
  assert_float_equal(dx[5], 1 + 0.6 * (p2 - 1), 1e-6);
  for (int j = 6; j < 9; j++) assert_float_equal(dx[j], 1, 0); /* ignored pixel */
  /* nothing to count: loss 0, no gradient */
  uint8_t none[3] = {255, 255, 255};
  ky_cpu_softmax_ce_fwd(NULL, &loss, NULL, x, none, NULL, 3, 3);
  assert_float_equal(loss, 0, 0);
  ky_cpu_softmax_ce_bwd(NULL, dx, x, none, NULL, 1.0f, 3, 3);
  assert_float_equal(dx[6], 1, 0);
}

typedef struct { const float *x; const uint8_t *cls; const float *w; size_t npix; int c; } ce_ctx;
static double ce_obj(void *v) {
  ce_ctx *k = v;
  float l;
  ky_cpu_softmax_ce_fwd(NULL, &l, NULL, k->x, k->cls, k->w, k->npix, k->c);
  return l;
}

/* The per-pixel terms on a pool (three threads, several chunks, weights and ignored pixels) give
 * the loss of the loop on the calling thread, bit for bit. */
static void test_softmax_ce_terms_on_pool(void **st) {
  ky_rng r = ky_rng_make(12, KY_RNG_STREAM_TEST);
  enum { NP = 3 * 4096 + 77, C = 4 };
  float *x = rnd(&r, NP * C, -6, 6), w[C] = {1, 0.25f, 2, 3}, a, b;
  uint8_t *cls = malloc(NP);
  double *terms = malloc(NP * sizeof *terms);
  for (int p = 0; p < NP; p++) cls[p] = ky_rng_int(&r, 0, 5) == 4 ? 255 : (uint8_t)ky_rng_int(&r, 0, C);
  ky_pool *pool;
  assert_int_equal(ky_pool_create(&pool, 3), KY_OK);
  for (int weighted = 0; weighted < 2; weighted++) {
    ky_cpu_softmax_ce_fwd(NULL, &a, NULL, x, cls, weighted ? w : NULL, NP, C);
    ky_cpu_softmax_ce_fwd(pool, &b, terms, x, cls, weighted ? w : NULL, NP, C);
    assert_memory_equal(&a, &b, sizeof a);
    assert_true(a > 0.1f);
  }
  ky_pool_free(pool);
  free(terms);
  free(cls);
  free(x);
}

static void test_softmax_ce_fd(void **st) {
  ky_rng r = ky_rng_make(11, KY_RNG_STREAM_TEST);
  enum { NP = 7, C = 4 };
  float *x = rnd(&r, NP * C, -3, 3), w[C] = {1, 0.5f, 2, 3}, dx[NP * C] = {0};
  uint8_t cls[NP] = {0, 3, 255, 2, 1, 1, 3};
  ky_cpu_softmax_ce_bwd(NULL, dx, x, cls, w, 1.0f, NP, C);
  ce_ctx k = {x, cls, w, NP, C};
  fd_check("softmax ce dx", x, NP * C, dx, ce_obj, &k, 1e-2, 2e-3);
  free(x);
}

static void test_dice(void **st) {
  /* two images of 2 pixels; p and t on channel 1 / 0 of 2-channel maps */
  float p[8] = {0, 0.5f, 0, 1, 0, 0.2f, 0, 0.4f};
  float t[8] = {1, 9, 0, 9, 1, 9, 1, 9};
  float eps = 1e-3f, dice[2];
  double sums[6];
  ky_cpu_dice_fwd(dice, sums, p, 2, 1, t, 2, 0, 2, 2, eps, 1);
  /* image 0: pt = .5, p = 1.5, t = 1; image 1: pt = .6, p = .6, t = 2 */
  assert_float_equal(dice[0], (1.0 + eps) / (2.5 + eps), 1e-6);
  assert_float_equal(dice[1], (1.2 + eps) / (2.6 + eps), 1e-6);
  assert_float_equal(sums[3], 0.6, 1e-7);
  assert_float_equal(sums[4], 0.6, 1e-7);
  assert_float_equal(sums[5], 2.0, 0);
  float dp[8] = {0}, dd[2] = {1, -2};
  ky_cpu_dice_bwd(NULL, dp, dd, sums, p, 2, 1, t, 2, 0, 2, 2, eps, 1);
  double d0 = (1.0 + eps) / (2.5 + eps), den0 = 2.5 + eps;
  assert_float_equal(dp[1], (2 * 1 - d0) / den0, 1e-6);
  assert_float_equal(dp[3], (0 - d0) / den0, 1e-6);
  double d1 = (1.2 + eps) / (2.6 + eps), den1 = 2.6 + eps;
  assert_float_equal(dp[5], -2 * (2 - d1) / den1, 1e-6);
  assert_float_equal(dp[0], 0, 0);
  /* per batch: one group over both images */
  ky_cpu_dice_fwd(dice, sums, p, 2, 1, t, 2, 0, 2, 2, eps, 0);
  assert_float_equal(dice[0], (2 * 1.1 + eps) / (2.1 + 3 + eps), 1e-6);
  float dpb[8] = {0}, one = 1;
  ky_cpu_dice_bwd(NULL, dpb, &one, sums, p, 2, 1, t, 2, 0, 2, 2, eps, 0);
  double db = (2.2 + eps) / (5.1 + eps);
  assert_float_equal(dpb[7], (2 - db) / (5.1 + eps), 1e-6);
}

static void test_dice_clamp(void **st) {
  /* p = 2 where t = 1: raw dice (4 + eps) / (3 + eps) > 1 is clamped to 1, gradient 0;
   * image 2: sum pt = -.5, sum p = -.5, sum t = 2: raw < 0 is clamped to 0, gradient 0 */
  float p[4] = {2, 0, -1, 0.5f}, t[4] = {1, 0, 1, 1}, dice[2], dp[4] = {5, 5, 5, 5}, dd[2] = {1, 1};
  double sums[6];
  ky_cpu_dice_fwd(dice, sums, p, 1, 0, t, 1, 0, 2, 2, 1e-3f, 1);
  assert_float_equal(dice[0], 1, 0);
  assert_float_equal(dice[1], 0, 0);
  ky_cpu_dice_bwd(NULL, dp, dd, sums, p, 1, 0, t, 1, 0, 2, 2, 1e-3f, 1);
  for (int i = 0; i < 4; i++) assert_float_equal(dp[i], 5, 0);
  /* exactly 1 (p == t, binary) is not clamped: the gradient passes */
  float p2[2] = {1, 0}, t2[2] = {1, 0}, dp2[2] = {0}, d;
  ky_cpu_dice_fwd(&d, sums, p2, 1, 0, t2, 1, 0, 1, 2, 1e-3f, 1);
  assert_float_equal(d, 1, 0);
  ky_cpu_dice_bwd(NULL, dp2, dd, sums, p2, 1, 0, t2, 1, 0, 1, 2, 1e-3f, 1);
  assert_float_equal(dp2[0], (2 - 1.0) / (2 + 1e-3), 1e-6);
  assert_float_equal(dp2[1], -1.0 / (2 + 1e-3), 1e-6);
}

static void test_onehot(void **st) {
  uint8_t cls[3] = {2, 0, 255};
  float y[9];
  ky_cpu_onehot(NULL, y, cls, 3, 3);
  const float want[9] = {0, 0, 1, 1, 0, 0, 0, 0, 0};
  expect_closef("onehot", y, want, 9, 0, 0);
}

/* ---- optimisers --------------------------------------------------------------------------- */

static void test_adam_hand(void **st) {
  /* first step from zero moments: m_hat = g, v_hat = g^2, so p -= lr * g / (|g| + eps) */
  float p[2] = {1, -1}, m[2] = {0}, v[2] = {0}, vmax[2] = {0}, g[2] = {0.5f, -2};
  ky_adam_args a = {.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .step = 1};
  ky_cpu_adam(NULL, p, m, v, NULL, g, 2, &a);
  assert_float_equal(p[0], 0.9f, 1e-6);
  assert_float_equal(p[1], -0.9f, 1e-6);
  assert_float_equal(m[0], 0.05f, 1e-7);
  assert_float_equal(v[1], 0.004f, 1e-7); /* (1 - 0.999f) is 1e-3 to 1.3e-5 relative */
  /* second step with g = 0: m = .045, v = .000999*.25; m_hat = .045/.19, v_hat = v/(1-.999^2) */
  float g0[2] = {0, 0};
  a.step = 2;
  ky_cpu_adam(NULL, p, m, v, NULL, g0, 2, &a);
  double mh = 0.045 / (1 - 0.81), vh = 0.999 * 0.00025 / (1 - 0.999 * 0.999);
  assert_float_equal(p[0], 0.9 - 0.1 * mh / (sqrt(vh) + 1e-8), 1e-6);
  /* amsgrad keeps the running maximum of v */
  float p2[1] = {0}, m2[1] = {0}, v2[1] = {0}, g2[1] = {1};
  a.amsgrad = 1;
  a.step = 1;
  ky_cpu_adam(NULL, p2, m2, v2, vmax, g2, 1, &a);
  assert_float_equal(vmax[0], v2[0], 0);
  float before = vmax[0];
  a.step = 2;
  ky_cpu_adam(NULL, p2, m2, v2, vmax, g0, 1, &a);
  assert_true(v2[0] < before);
  assert_float_equal(vmax[0], before, 0);
  /* decoupled weight decay: p *= 1 - lr*wd before the Adam step (no effect through m, v) */
  float p3[1] = {2}, m3[1] = {0}, v3[1] = {0};
  ky_adam_args aw = {.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.5f, .step = 1};
  ky_cpu_adam(NULL, p3, m3, v3, NULL, g0, 1, &aw);
  assert_float_equal(p3[0], 2 * (1 - 0.05), 1e-6);
  assert_float_equal(m3[0], 0, 0);
}

/* Adam is elementwise: one call over a block (vectorised in release builds) gives the same bits
 * as single-element calls (the scalar path), for plain, amsgrad and weight-decay steps. */
static void test_adam_block_equals_elements(void **st) {
  ky_rng r = ky_rng_make(9, KY_RNG_STREAM_TEST);
  enum { N = 37 };
  float *p0 = rnd(&r, N, -1, 1), *g = rnd(&r, N, -2, 2), *m0 = rnd(&r, N, -0.1f, 0.1f), *v0 = rnd(&r, N, 0, 0.01f);
  for (int mode = 0; mode < 3; mode++) {
    ky_adam_args a = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .step = 4,
                      .amsgrad = mode == 1, .weight_decay = mode == 2 ? 0.01f : 0.0f};
    float *pb = dup(p0, N), *mb = dup(m0, N), *vb = dup(v0, N), *xb = dup(v0, N);
    float *pe = dup(p0, N), *me = dup(m0, N), *ve = dup(v0, N), *xe = dup(v0, N);
    for (int i = 0; i < N; i += 2) xb[i] = xe[i] = 1.0f; /* amsgrad: half the maxima win */
    ky_cpu_adam(NULL, pb, mb, vb, xb, g, N, &a);
    for (int i = 0; i < N; i++) ky_cpu_adam(NULL, pe + i, me + i, ve + i, xe + i, g + i, 1, &a);
    assert_memory_equal(pb, pe, N * sizeof(float));
    assert_memory_equal(mb, me, N * sizeof(float));
    assert_memory_equal(vb, ve, N * sizeof(float));
    assert_memory_equal(xb, xe, N * sizeof(float));
    free(pb); free(mb); free(vb); free(xb); free(pe); free(me); free(ve); free(xe);
  }
  free(p0); free(g); free(m0); free(v0);
}

static void test_sgd_hand(void **st) {
  float p[1] = {1}, buf[1] = {123}, g[1] = {2};
  ky_sgd_args a = {.lr = 0.1f, .momentum = 0.9f, .dampening = 0.5f, .step = 1};
  ky_cpu_sgd(NULL, p, buf, g, 1, &a); /* first step: buf = g (no dampening), p -= lr*g */
  assert_float_equal(buf[0], 2, 0);
  assert_float_equal(p[0], 0.8f, 1e-7);
  a.step = 2;
  ky_cpu_sgd(NULL, p, buf, g, 1, &a); /* buf = .9*2 + .5*2 = 2.8 */
  assert_float_equal(buf[0], 2.8f, 1e-6);
  assert_float_equal(p[0], 0.8f - 0.28f, 1e-6);
  /* nesterov + L2 weight decay: d = g + wd*p = 2 + 0.1; buf = d; d = d + .9 buf */
  float q[1] = {1}, b2[1] = {0};
  ky_sgd_args n = {.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.1f, .nesterov = 1, .step = 1};
  ky_cpu_sgd(NULL, q, b2, g, 1, &n);
  assert_float_equal(b2[0], 2.1f, 1e-6);
  assert_float_equal(q[0], 1 - 0.1 * (2.1 + 0.9 * 2.1), 1e-6);
  /* plain SGD: no momentum buffer needed */
  float r[1] = {1};
  ky_sgd_args pl = {.lr = 0.5f, .step = 3};
  ky_cpu_sgd(NULL, r, NULL, g, 1, &pl);
  assert_float_equal(r[0], 0, 0);
}

static void test_sumsq(void **st) {
  float x[4] = {1, -2, 3, 0.5f};
  assert_float_equal(ky_cpu_sumsq(x, 4), 14.25, 0);
  assert_float_equal(ky_cpu_sumsq(x, 0), 0, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_conv_vs_naive),
      cmocka_unit_test(test_conv_bitwise_repeatable),
      cmocka_unit_test(test_conv_hand_3x3),
      cmocka_unit_test(test_conv_shape_finish),
      cmocka_unit_test(test_conv_work_bounded),
      cmocka_unit_test(test_bn_hand),
      cmocka_unit_test(test_bn_backward_fd),
      cmocka_unit_test(test_bn_many_channels),
      cmocka_unit_test(test_elementwise),
      cmocka_unit_test(test_pool_shape),
      cmocka_unit_test(test_maxpool_ties_and_padding),
      cmocka_unit_test(test_gap),
      cmocka_unit_test(test_channel_blocks),
      cmocka_unit_test(test_concat),
      cmocka_unit_test(test_upsample_nearest),
      cmocka_unit_test(test_upsample_bilinear_hand),
      cmocka_unit_test(test_upsample_adjoint),
      cmocka_unit_test(test_softmax),
      cmocka_unit_test(test_bce_logits),
      cmocka_unit_test(test_softmax_ce),
      cmocka_unit_test(test_softmax_ce_fd),
      cmocka_unit_test(test_softmax_ce_terms_on_pool),
      cmocka_unit_test(test_dice),
      cmocka_unit_test(test_dice_clamp),
      cmocka_unit_test(test_onehot),
      cmocka_unit_test(test_adam_hand),
      cmocka_unit_test(test_adam_block_equals_elements),
      cmocka_unit_test(test_sgd_hand),
      cmocka_unit_test(test_sumsq),
  };
  return cmocka_run_group_tests_name("ops_kernels", tests, NULL, NULL);
}

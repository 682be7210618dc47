/* Tests for the CUDA convolution (cuda/conv2d*.cu): every algorithm x direction against a direct
 * fp64 reference written here (independent of ops/conv2d_cpu.c), on random inputs; prints one
 * SKIPPED line and passes when no GPU is present. Run by `make test` (CUDA builds).
 *
 * Checks, per output element e of a reduction of length L with terms t_i:
 *   |got - ref| <= tol * (sum_i |t_i| + |initial value|) + 1e-30,
 *   fp32 algorithms: tol = 2^-24 * (16 sqrt(L) + 8)  (rounding of L additions, any order);
 *   TF32 (tensor cores, or cuBLAS in TF32 mode): tol = 2e-3 + the fp32 term: each operand is
 *   rounded to a 10-bit mantissa (relative error <= 2^-11 each, so about 1e-3 per product).
 * plus a global ||got - ref|| / ||ref|| bound (fp32 5e-5, TF32 3e-3) and: every element finite
 * (forward outputs are NaN-poisoned before the call), a NaN guard band after every output left
 * untouched. Large layers are compared on 3000 sampled elements (all elements are still checked
 * for being written). wgrad is run twice per algorithm and must be bitwise identical. AUTO runs
 * both ways: deterministic (the fixed rule: bitwise equal to the rule's algorithm by name and to
 * AUTO in a second context) and timed.
 * KY_CONV_TEST_SMALL=1 skips the layers with more than 2^20 input or output elements (for runs
 * under compute-sanitizer, which slows kernels down a hundredfold). */
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
#include "ops/conv_choice.h"

#define GUARD 64          /* floats of NaN after every device output */
#define SAMPLES 3000      /* compared elements for large layers */
#define FULL_LIMIT 4e7    /* reference multiply-adds below which every element is compared */

typedef struct {
  const char *name;
  int n, h, w, c, k, kh, kw, stride, pad, dil;
} conv_case;

static const conv_case kCases[] = {
    /* the seven benchmark layers (bench/bench_cuda_conv.c, torch_anchor.py) at reduced batch */
    {"stem7x7s2", 1, 256, 256, 3, 64, 7, 7, 2, 3, 1},
    {"enc3x3_64", 2, 64, 64, 64, 64, 3, 3, 1, 1, 1},
    {"enc3x3_128", 2, 32, 32, 128, 128, 3, 3, 1, 1, 1},
    {"enc3x3_256", 2, 16, 16, 256, 256, 3, 3, 1, 1, 1},
    {"enc3x3_512", 2, 8, 8, 512, 512, 3, 3, 1, 1, 1},
    {"dec3x3_128to64", 1, 128, 128, 128, 64, 3, 3, 1, 1, 1},
    {"dec3x3_64full", 1, 256, 256, 64, 64, 3, 3, 1, 1, 1},
    /* odd shapes: channel counts off the tiles, H != W, strides with odd sizes, dilation */
    {"b1_hw_c5k7", 1, 9, 13, 5, 7, 3, 3, 1, 1, 1},
    {"c3k67_s2_odd", 2, 15, 11, 3, 67, 3, 3, 2, 1, 1},
    {"c67k5_dil2", 1, 12, 10, 67, 5, 3, 3, 1, 2, 2},
    {"1x1_c67k130", 2, 7, 9, 67, 130, 1, 1, 1, 0, 1},
    {"1x1_s2_down", 2, 16, 16, 64, 128, 1, 1, 2, 0, 1},
    {"stem7x7s2_small", 1, 37, 29, 3, 64, 7, 7, 2, 3, 1},
    {"5x5_s3_odd", 2, 17, 14, 8, 12, 5, 5, 3, 1, 1},
    {"3x3_s2_dil2", 1, 19, 21, 12, 20, 3, 3, 2, 2, 2},
    {"small_m_k512", 1, 4, 4, 512, 512, 3, 3, 1, 1, 1},
    {"head_64to3", 1, 20, 24, 64, 3, 3, 3, 1, 1, 1},
    {"1x1_c4k4", 3, 5, 6, 4, 4, 1, 1, 1, 0, 1},
};
#define NCASES ((int)(sizeof kCases / sizeof kCases[0]))

typedef struct {
  ky_cuda *cu;
  int sm;
} fixture;

static ky_conv_shape shape_of(const conv_case *cc) {
  ky_conv_shape s = {cc->n, cc->h, cc->w, cc->c, cc->k, cc->kh, cc->kw, cc->stride, cc->pad, cc->dil, 0, 0};
  s.oh = (s.h + 2 * s.pad - s.dil * (s.kh - 1) - 1) / s.stride + 1;
  s.ow = (s.w + 2 * s.pad - s.dil * (s.kw - 1) - 1) / s.stride + 1;
  return s;
}

static size_t nx(const ky_conv_shape *s) { return (size_t)s->n * s->h * s->w * s->c; }
static size_t ny(const ky_conv_shape *s) { return (size_t)s->n * s->oh * s->ow * s->k; }
static size_t nw(const ky_conv_shape *s) { return (size_t)s->k * s->kh * s->kw * s->c; }

static int skip_case(const ky_conv_shape *s) {
  const char *e = getenv("KY_CONV_TEST_SMALL");
  return e && e[0] == '1' && (nx(s) > ((size_t)1 << 20) || ny(s) > ((size_t)1 << 20));
}

static float *rand_host(size_t n, ky_rng *r) {
  float *p = malloc(n * sizeof *p);
  assert_non_null(p);
  for (size_t i = 0; i < n; ++i) p[i] = ky_rng_uniform_range(r, -1.f, 1.f);
  return p;
}

/* Device buffer of n floats followed by GUARD NaNs; `init` (may be NULL) fills the first n,
 * NULL leaves them NaN as well. */
static float *dev_buf(ky_cuda *cu, size_t n, const float *init) {
  float *d = NULL;
  assert_int_equal(ky_cuda_malloc(cu, (void **)&d, (n + GUARD) * sizeof(float)), KY_OK);
  float *h = malloc((n + GUARD) * sizeof *h);
  assert_non_null(h);
  for (size_t i = 0; i < n + GUARD; ++i) h[i] = NAN;
  if (init) memcpy(h, init, n * sizeof *h);
  assert_int_equal(ky_cuda_h2d(cu, d, h, (n + GUARD) * sizeof(float)), KY_OK);
  free(h);
  return d;
}

static float *dev_copy(ky_cuda *cu, size_t n, const float *h) {
  float *d = NULL;
  assert_int_equal(ky_cuda_malloc(cu, (void **)&d, n * sizeof(float) + 16), KY_OK);
  assert_int_equal(ky_cuda_h2d(cu, d, h, n * sizeof(float)), KY_OK);
  return d;
}

/* Downloads n floats plus the guard band and checks the band is still NaN. */
static float *download(ky_cuda *cu, const float *d, size_t n, const char *what) {
  float *h = malloc((n + GUARD) * sizeof *h);
  assert_non_null(h);
  assert_int_equal(ky_cuda_d2h(cu, h, d, (n + GUARD) * sizeof(float)), KY_OK);
  for (size_t i = n; i < n + GUARD; ++i)
    if (!isnan(h[i])) fail_msg("%s: write past the end at element %zu (of %zu)", what, i, n);
  return h;
}

/* ---- fp64 references: value and sum of |terms| of one output element ------------------------ */
static void ref_fwd(const ky_conv_shape *s, const float *x, const float *w, const float *b, size_t e,
                    double *val, double *abs_sum) {
  const int k = (int)(e % s->k);
  size_t p = e / s->k;
  const int ox = (int)(p % s->ow); p /= s->ow;
  const int oy = (int)(p % s->oh);
  const int n = (int)(p / s->oh);
  double v = b ? b[k] : 0.0, a = b ? fabs(b[k]) : 0.0;
  for (int ky = 0; ky < s->kh; ++ky)
    for (int kx = 0; kx < s->kw; ++kx) {
      const int ih = oy * s->stride - s->pad + ky * s->dil, iw = ox * s->stride - s->pad + kx * s->dil;
      if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) continue;
      const float *xp = x + (((size_t)n * s->h + ih) * s->w + iw) * s->c;
      const float *wp = w + (((size_t)k * s->kh + ky) * s->kw + kx) * s->c;
      for (int c = 0; c < s->c; ++c) {
        const double t = (double)xp[c] * wp[c];
        v += t; a += fabs(t);
      }
    }
  *val = v; *abs_sum = a;
}

static void ref_dgrad(const ky_conv_shape *s, const float *dy, const float *w, size_t e, double *val,
                      double *abs_sum) {
  const int c = (int)(e % s->c);
  size_t p = e / s->c;
  const int ix = (int)(p % s->w); p /= s->w;
  const int iy = (int)(p % s->h);
  const int n = (int)(p / s->h);
  double v = 0.0, a = 0.0;
  for (int ky = 0; ky < s->kh; ++ky) {
    const int ty = iy + s->pad - ky * s->dil;
    if (ty < 0 || ty % s->stride) continue;
    const int oy = ty / s->stride;
    if (oy >= s->oh) continue;
    for (int kx = 0; kx < s->kw; ++kx) {
      const int tx = ix + s->pad - kx * s->dil;
      if (tx < 0 || tx % s->stride) continue;
      const int ox = tx / s->stride;
      if (ox >= s->ow) continue;
      const float *g = dy + (((size_t)n * s->oh + oy) * s->ow + ox) * s->k;
      for (int k = 0; k < s->k; ++k) {
        const double t = (double)g[k] * w[(((size_t)k * s->kh + ky) * s->kw + kx) * s->c + c];
        v += t; a += fabs(t);
      }
    }
  }
  *val = v; *abs_sum = a;
}

static void ref_wgrad(const ky_conv_shape *s, const float *dy, const float *x, size_t e, double *val,
                      double *abs_sum) {
  const int c = (int)(e % s->c);
  size_t p = e / s->c;
  const int kx = (int)(p % s->kw); p /= s->kw;
  const int ky = (int)(p % s->kh);
  const int k = (int)(p / s->kh);
  double v = 0.0, a = 0.0;
  for (int n = 0; n < s->n; ++n)
    for (int oy = 0; oy < s->oh; ++oy) {
      const int ih = oy * s->stride - s->pad + ky * s->dil;
      if (ih < 0 || ih >= s->h) continue;
      for (int ox = 0; ox < s->ow; ++ox) {
        const int iw = ox * s->stride - s->pad + kx * s->dil;
        if (iw < 0 || iw >= s->w) continue;
        const double t = (double)dy[(((size_t)n * s->oh + oy) * s->ow + ox) * s->k + k] *
                         x[(((size_t)n * s->h + ih) * s->w + iw) * s->c + c];
        v += t; a += fabs(t);
      }
    }
  *val = v; *abs_sum = a;
}

static void ref_db(const ky_conv_shape *s, const float *dy, size_t e, double *val, double *abs_sum) {
  double v = 0.0, a = 0.0;
  const size_t np = (size_t)s->n * s->oh * s->ow;
  for (size_t p = 0; p < np; ++p) {
    v += dy[p * s->k + e];
    a += fabs(dy[p * s->k + e]);
  }
  *val = v; *abs_sum = a;
}

enum { DIR_FWD, DIR_DGRAD, DIR_WGRAD, DIR_DB };

typedef struct {
  const ky_conv_shape *s;
  const float *x, *w, *b, *dy;  /* host inputs */
  const float *init;            /* accumulate directions: value before the call */
  int relu;
} ref_args;

static void ref_elem(int dir, const ref_args *ra, size_t e, double *v, double *a) {
  switch (dir) {
    case DIR_FWD:
      ref_fwd(ra->s, ra->x, ra->w, ra->b, e, v, a);
      if (ra->relu && *v < 0) *v = 0;
      break;
    case DIR_DGRAD: ref_dgrad(ra->s, ra->dy, ra->w, e, v, a); break;
    case DIR_WGRAD: ref_wgrad(ra->s, ra->dy, ra->x, e, v, a); break;
    default: ref_db(ra->s, ra->dy, e, v, a); break;
  }
  if (ra->init) {
    *v += ra->init[e];
    *a += fabs(ra->init[e]);
  }
}

static int reduction_len(int dir, const ky_conv_shape *s) {
  switch (dir) {
    case DIR_FWD: return s->kh * s->kw * s->c;
    case DIR_DGRAD: return s->kh * s->kw * s->k;
    default: return s->n * s->oh * s->ow;
  }
}

/* Compares got[0..n) with the reference (all elements or a sample); fails with the worst one. */
static void compare(const char *what, int dir, const ref_args *ra, const float *got, size_t n, int tf32,
                    ky_rng *rng) {
  const int L = reduction_len(dir, ra->s);
  const double tol = ldexp(16.0 * sqrt((double)L) + 8.0, -24) + (tf32 ? 2e-3 : 0.0);
  const double gtol = tf32 ? 3e-3 : 5e-5;
  for (size_t i = 0; i < n; ++i)
    if (!isfinite(got[i])) fail_msg("%s: element %zu of %zu is %g (not written?)", what, i, n, got[i]);
  const double macs = (double)n * L;
  const int full = macs <= FULL_LIMIT;
  const size_t cnt = full ? n : SAMPLES;
  double worst = 0, e2 = 0, r2 = 0;
  size_t worst_i = 0;
  double worst_ref = 0, worst_tol = 0;
  for (size_t j = 0; j < cnt; ++j) {
    const size_t i = full ? j : (j == 0 ? 0 : j == 1 ? n - 1 : (size_t)ky_rng_int(rng, 0, (int64_t)n));
    double v, a;
    ref_elem(dir, ra, i, &v, &a);
    const double err = fabs((double)got[i] - v), lim = tol * a + 1e-30;
    if (err / lim > worst) {
      worst = err / lim; worst_i = i; worst_ref = v; worst_tol = lim;
    }
    e2 += err * err;
    r2 += v * v;
  }
  const double rel = r2 > 0 ? sqrt(e2 / r2) : sqrt(e2);
  if (worst > 1.0)
    fail_msg("%s: element %zu = %.9g, reference %.9g, |err| %.3g > bound %.3g (L = %d, %s)", what, worst_i,
             got[worst_i], worst_ref, fabs(got[worst_i] - worst_ref), worst_tol, L, tf32 ? "tf32" : "fp32");
  if (rel > gtol) fail_msg("%s: relative L2 error %.3g > %.3g (L = %d)", what, rel, gtol, L);
}

/* ---- fixture ------------------------------------------------------------------------------- */
static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  if (!f) return -1;
  if (ky_cuda_init(&f->cu, 0) != KY_OK) {
    fprintf(stderr, "ky_cuda_init: %s\n", ky_last_error());
    free(f);
    return -1;
  }
  char name[128];
  ky_cuda_device_name(f->cu, name, sizeof name, &f->sm);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  if (f) {
    ky_cuda_free(f->cu);
    free(f);
  }
  return 0;
}

typedef struct {
  ky_conv_algo algo;
  int tf32;   /* context flag during the call */
  int timed;  /* deterministic flag off during the call: AUTO times the candidates */
  const char *name;
} algo_run;

/* The runs to check on this device: fp32 algorithms, TF32 ones on sm_80+, and AUTO each way
 * (fixed rule, timed). */
static int algo_runs(const fixture *f, algo_run *out) {
  int n = 0;
  out[n++] = (algo_run){KY_CONV_ALGO_IMPLICIT_GEMM, 0, 0, "igemm"};
  out[n++] = (algo_run){KY_CONV_ALGO_IM2COL_GEMM, 0, 0, "im2col"};
  out[n++] = (algo_run){KY_CONV_ALGO_AUTO, 0, 0, "auto"};
  out[n++] = (algo_run){KY_CONV_ALGO_AUTO, 0, 1, "auto_timed"};
  if (f->sm >= 80) {
    out[n++] = (algo_run){KY_CONV_ALGO_IMPLICIT_TF32, 0, 0, "tf32"};
    out[n++] = (algo_run){KY_CONV_ALGO_IM2COL_GEMM, 1, 0, "im2col_tf32"};
    out[n++] = (algo_run){KY_CONV_ALGO_AUTO, 1, 0, "auto_tf32"};
    out[n++] = (algo_run){KY_CONV_ALGO_AUTO, 1, 1, "auto_tf32_timed"};
  }
  return n;
}

static void set_flags(fixture *f, const algo_run *r) {
  ky_cuda_set_tf32(f->cu, r ? r->tf32 : 0);
  ky_cuda_set_deterministic(f->cu, r ? !r->timed : 1);
}

static int uses_tf32(const algo_run *r) { return r->tf32 || r->algo == KY_CONV_ALGO_IMPLICIT_TF32; }

static void test_fwd(void **state) {
  fixture *f = *state;
  algo_run runs[8];
  const int nr = algo_runs(f, runs);
  ky_rng rng = ky_rng_make(1234, KY_RNG_STREAM_TEST);
  for (int ci = 0; ci < NCASES; ++ci) {
    const ky_conv_shape s = shape_of(&kCases[ci]);
    if (skip_case(&s)) continue;
    float *x = rand_host(nx(&s), &rng), *w = rand_host(nw(&s), &rng), *b = rand_host(s.k, &rng);
    float *dx = dev_copy(f->cu, nx(&s), x), *dw = dev_copy(f->cu, nw(&s), w), *db = dev_copy(f->cu, s.k, b);
    for (int ri = 0; ri < nr; ++ri) {
      const int relu = (ci + ri) % 2, with_bias = (ci + ri) % 3 != 0;
      set_flags(f, &runs[ri]);
      float *dy = dev_buf(f->cu, ny(&s), NULL);
      ky_status st = ky_cuda_conv2d_fwd(f->cu, dy, dx, dw, with_bias ? db : NULL, &s, relu, runs[ri].algo);
      if (st != KY_OK) fail_msg("fwd %s %s: %s", kCases[ci].name, runs[ri].name, ky_last_error());
      char what[160];
      snprintf(what, sizeof what, "fwd %s %s relu=%d bias=%d", kCases[ci].name, runs[ri].name, relu, with_bias);
      float *got = download(f->cu, dy, ny(&s), what);
      ref_args ra = {&s, x, w, with_bias ? b : NULL, NULL, NULL, relu};
      compare(what, DIR_FWD, &ra, got, ny(&s), uses_tf32(&runs[ri]), &rng);
      free(got);
      ky_cuda_release(f->cu, dy);
    }
    set_flags(f, NULL);
    ky_cuda_release(f->cu, dx); ky_cuda_release(f->cu, dw); ky_cuda_release(f->cu, db);
    free(x); free(w); free(b);
  }
}

static void test_dgrad(void **state) {
  fixture *f = *state;
  algo_run runs[8];
  const int nr = algo_runs(f, runs);
  ky_rng rng = ky_rng_make(2345, KY_RNG_STREAM_TEST);
  for (int ci = 0; ci < NCASES; ++ci) {
    const ky_conv_shape s = shape_of(&kCases[ci]);
    if (skip_case(&s)) continue;
    float *g = rand_host(ny(&s), &rng), *w = rand_host(nw(&s), &rng), *init = rand_host(nx(&s), &rng);
    float *dg = dev_copy(f->cu, ny(&s), g), *dw = dev_copy(f->cu, nw(&s), w);
    for (int ri = 0; ri < nr; ++ri) {
      set_flags(f, &runs[ri]);
      float *ddx = dev_buf(f->cu, nx(&s), init);
      ky_status st = ky_cuda_conv2d_dgrad(f->cu, ddx, dg, dw, &s, runs[ri].algo);
      if (st != KY_OK) fail_msg("dgrad %s %s: %s", kCases[ci].name, runs[ri].name, ky_last_error());
      char what[160];
      snprintf(what, sizeof what, "dgrad %s %s", kCases[ci].name, runs[ri].name);
      float *got = download(f->cu, ddx, nx(&s), what);
      ref_args ra = {&s, NULL, w, NULL, g, init, 0};
      compare(what, DIR_DGRAD, &ra, got, nx(&s), uses_tf32(&runs[ri]), &rng);
      free(got);
      ky_cuda_release(f->cu, ddx);
    }
    set_flags(f, NULL);
    ky_cuda_release(f->cu, dg); ky_cuda_release(f->cu, dw);
    free(g); free(w); free(init);
  }
}

static void test_wgrad(void **state) {
  fixture *f = *state;
  algo_run runs[8];
  const int nr = algo_runs(f, runs);
  ky_rng rng = ky_rng_make(3456, KY_RNG_STREAM_TEST);
  for (int ci = 0; ci < NCASES; ++ci) {
    const ky_conv_shape s = shape_of(&kCases[ci]);
    if (skip_case(&s)) continue;
    float *g = rand_host(ny(&s), &rng), *x = rand_host(nx(&s), &rng);
    float *winit = rand_host(nw(&s), &rng), *binit = rand_host(s.k, &rng);
    float *dg = dev_copy(f->cu, ny(&s), g), *dx = dev_copy(f->cu, nx(&s), x);
    for (int ri = 0; ri < nr; ++ri) {
      set_flags(f, &runs[ri]);
      const int with_db = (ci + ri) % 2 == 0;
      float *ddw[2], *ddb[2], *got[2], *gotb[2] = {NULL, NULL};
      char what[160];
      snprintf(what, sizeof what, "wgrad %s %s", kCases[ci].name, runs[ri].name);
      for (int rep = 0; rep < 2; ++rep) {
        ddw[rep] = dev_buf(f->cu, nw(&s), winit);
        ddb[rep] = with_db ? dev_buf(f->cu, s.k, binit) : NULL;
        ky_status st = ky_cuda_conv2d_wgrad(f->cu, ddw[rep], ddb[rep], dg, dx, &s, runs[ri].algo);
        if (st != KY_OK) fail_msg("%s: %s", what, ky_last_error());
        got[rep] = download(f->cu, ddw[rep], nw(&s), what);
        if (with_db) gotb[rep] = download(f->cu, ddb[rep], s.k, what);
      }
      /* Deterministic: the same inputs give the same bits (fixed-order split-K, no atomics). */
      if (memcmp(got[0], got[1], nw(&s) * sizeof(float)) != 0) fail_msg("%s: two runs differ bitwise", what);
      if (with_db && memcmp(gotb[0], gotb[1], s.k * sizeof(float)) != 0)
        fail_msg("%s: db differs bitwise between two runs", what);
      ref_args ra = {&s, x, NULL, NULL, g, winit, 0};
      compare(what, DIR_WGRAD, &ra, got[0], nw(&s), uses_tf32(&runs[ri]), &rng);
      if (with_db) {
        ref_args rb = {&s, NULL, NULL, NULL, g, binit, 0};
        char wb[170];
        snprintf(wb, sizeof wb, "%s (db)", what);
        compare(wb, DIR_DB, &rb, gotb[0], s.k, 0, &rng);
      }
      for (int rep = 0; rep < 2; ++rep) {
        free(got[rep]); free(gotb[rep]);
        ky_cuda_release(f->cu, ddw[rep]);
        if (ddb[rep]) ky_cuda_release(f->cu, ddb[rep]);
      }
    }
    set_flags(f, NULL);
    ky_cuda_release(f->cu, dg); ky_cuda_release(f->cu, dx);
    free(g); free(x); free(winit); free(binit);
  }
}

/* One direction on `cu` with algorithm `algo`; returns the host copy of its output (dw for wgrad,
 * with db as well when `db_out` is given). Backward outputs start from `init`. */
static float *run_dir(ky_cuda *cu, int dir, const ky_conv_shape *s, const float *x, const float *w, const float *g,
                      const float *init, ky_conv_algo algo, float **db_out) {
  const size_t nout = dir == DIR_FWD ? ny(s) : dir == DIR_DGRAD ? nx(s) : nw(s);
  float *out = dev_buf(cu, nout, dir == DIR_FWD ? NULL : init);
  float *dx = dev_copy(cu, nx(s), x), *dw = dev_copy(cu, nw(s), w), *dg = dev_copy(cu, ny(s), g);
  float *db = db_out ? dev_buf(cu, s->k, init) : NULL;
  ky_status st = dir == DIR_FWD     ? ky_cuda_conv2d_fwd(cu, out, dx, dw, NULL, s, 1, algo)
                 : dir == DIR_DGRAD ? ky_cuda_conv2d_dgrad(cu, out, dg, dw, s, algo)
                                    : ky_cuda_conv2d_wgrad(cu, out, db, dg, dx, s, algo);
  if (st != KY_OK) fail_msg("run_dir %d algo %d: %s", dir, (int)algo, ky_last_error());
  float *h = download(cu, out, nout, "run_dir");
  if (db_out) *db_out = download(cu, db, s->k, "run_dir db");
  ky_cuda_release(cu, out); ky_cuda_release(cu, dx); ky_cuda_release(cu, dw); ky_cuda_release(cu, dg);
  if (db) ky_cuda_release(cu, db);
  return h;
}

/* Deterministic AUTO (the context's default) runs the algorithm of the fixed rule
 * (ops/conv_choice.h), bitwise the same as asking for it by name, and the same again in a second
 * context: another process, or a resumed training run, on the same card sums in the same order. */
static void test_auto_deterministic(void **state) {
  fixture *f = *state;
  assert_int_equal(ky_cuda_deterministic(f->cu), 1);
  ky_cuda *cu2 = NULL;
  assert_int_equal(ky_cuda_init(&cu2, 0), KY_OK);
  ky_rng rng = ky_rng_make(5678, KY_RNG_STREAM_TEST);
  int checked = 0;
  for (int tf32 = 0; tf32 <= (f->sm >= 80); ++tf32)
    for (int ci = 0; ci < NCASES; ++ci) {
      const ky_conv_shape s = shape_of(&kCases[ci]);
      if (skip_case(&s) || nx(&s) + ny(&s) > ((size_t)1 << 16)) continue;  /* small layers suffice */
      ky_cuda_set_tf32(f->cu, tf32);
      ky_cuda_set_tf32(cu2, tf32);
      float *x = rand_host(nx(&s), &rng), *w = rand_host(nw(&s), &rng), *g = rand_host(ny(&s), &rng);
      float *init = rand_host(nx(&s) > nw(&s) ? nx(&s) : nw(&s), &rng);
      for (int dir = DIR_FWD; dir <= DIR_WGRAD; ++dir) {
        const ky_conv_choice ch = ky_conv_auto_choice(dir, &s, f->sm, ky_cuda_tf32(f->cu), 1);
        assert_int_not_equal(ch.algo, KY_CONV_ALGO_AUTO);
        const size_t nout = dir == DIR_FWD ? ny(&s) : dir == DIR_DGRAD ? nx(&s) : nw(&s);
        float *db[3] = {NULL, NULL, NULL}, *o[3];
        const int wdb = dir == DIR_WGRAD;
        o[0] = run_dir(f->cu, dir, &s, x, w, g, init, KY_CONV_ALGO_AUTO, wdb ? &db[0] : NULL);
        o[1] = run_dir(f->cu, dir, &s, x, w, g, init, ch.algo, wdb ? &db[1] : NULL);
        o[2] = run_dir(cu2, dir, &s, x, w, g, init, KY_CONV_ALGO_AUTO, wdb ? &db[2] : NULL);
        for (int i = 1; i < 3; ++i) {
          if (memcmp(o[0], o[i], nout * sizeof(float)) != 0 || (wdb && memcmp(db[0], db[i], s.k * sizeof(float)) != 0))
            fail_msg("%s dir %d tf32 %d: deterministic AUTO differs bitwise from %s", kCases[ci].name, dir, tf32,
                     i == 1 ? "the rule's algorithm by name" : "AUTO in a second context");
        }
        for (int i = 0; i < 3; ++i) { free(o[i]); free(db[i]); }
        ++checked;
      }
      free(x); free(w); free(g); free(init);
    }
  set_flags(f, NULL);
  ky_cuda_free(cu2);
  assert_true(checked >= 3);
}

/* Unaligned operands (offset by one float) must take the scalar path and stay correct. */
static void test_unaligned(void **state) {
  fixture *f = *state;
  ky_rng rng = ky_rng_make(4567, KY_RNG_STREAM_TEST);
  const conv_case cc = {"unaligned", 2, 9, 7, 8, 12, 3, 3, 1, 1, 1};
  const ky_conv_shape s = shape_of(&cc);
  float *x = rand_host(nx(&s) + 1, &rng), *w = rand_host(nw(&s) + 1, &rng), *g = rand_host(ny(&s) + 1, &rng);
  float *dxb = dev_copy(f->cu, nx(&s) + 1, x), *dwb = dev_copy(f->cu, nw(&s) + 1, w);
  float *dgb = dev_copy(f->cu, ny(&s) + 1, g);
  const ky_conv_algo algos[2] = {KY_CONV_ALGO_IMPLICIT_GEMM, KY_CONV_ALGO_IMPLICIT_TF32};
  for (int ai = 0; ai < (f->sm >= 80 ? 2 : 1); ++ai) {
    float *y = dev_buf(f->cu, ny(&s) + 1, NULL);
    assert_int_equal(ky_cuda_conv2d_fwd(f->cu, y + 1, dxb + 1, dwb + 1, NULL, &s, 0, algos[ai]), KY_OK);
    float *got = download(f->cu, y + 1, ny(&s), "fwd unaligned");
    ref_args ra = {&s, x + 1, w + 1, NULL, NULL, NULL, 0};
    compare("fwd unaligned", DIR_FWD, &ra, got, ny(&s), ai == 1, &rng);
    free(got);
    ky_cuda_release(f->cu, y);
    float *zero = calloc(nx(&s) + 1, sizeof(float));
    float *ddx = dev_buf(f->cu, nx(&s) + 1, zero);
    assert_int_equal(ky_cuda_conv2d_dgrad(f->cu, ddx + 1, dgb + 1, dwb + 1, &s, algos[ai]), KY_OK);
    got = download(f->cu, ddx + 1, nx(&s), "dgrad unaligned");
    ref_args rd = {&s, NULL, w + 1, NULL, g + 1, zero, 0};
    compare("dgrad unaligned", DIR_DGRAD, &rd, got, nx(&s), ai == 1, &rng);
    free(got);
    free(zero);
    ky_cuda_release(f->cu, ddx);
  }
  ky_cuda_release(f->cu, dxb); ky_cuda_release(f->cu, dwb); ky_cuda_release(f->cu, dgb);
  free(x); free(w); free(g);
}

/* L(x, w) = sum y * G: dL/dx = dgrad(G), dL/dw = wgrad(G), db = sum G. Central differences of
 * the CUDA forward (conv is linear, so only rounding limits the agreement). */
static double loss_of(ky_cuda *cu, const ky_conv_shape *s, const float *dx, const float *dw, const float *db,
                      float *dy, const float *G, float *hy) {
  assert_int_equal(ky_cuda_conv2d_fwd(cu, dy, dx, dw, db, s, 0, KY_CONV_ALGO_IMPLICIT_GEMM), KY_OK);
  assert_int_equal(ky_cuda_d2h(cu, hy, dy, ny(s) * sizeof(float)), KY_OK);
  double l = 0;
  for (size_t i = 0; i < ny(s); ++i) l += (double)hy[i] * G[i];
  return l;
}

static void test_gradcheck(void **state) {
  fixture *f = *state;
  ky_rng rng = ky_rng_make(5678, KY_RNG_STREAM_TEST);
  const conv_case cases[2] = {{"gc_s1", 2, 5, 6, 3, 4, 3, 3, 1, 1, 1}, {"gc_s2_d2", 1, 7, 6, 5, 3, 3, 3, 2, 2, 2}};
  for (int ci = 0; ci < 2; ++ci) {
    const ky_conv_shape s = shape_of(&cases[ci]);
    float *x = rand_host(nx(&s), &rng), *w = rand_host(nw(&s), &rng), *b = rand_host(s.k, &rng);
    float *G = rand_host(ny(&s), &rng), *hy = malloc(ny(&s) * sizeof(float));
    float *dx = dev_copy(f->cu, nx(&s), x), *dw = dev_copy(f->cu, nw(&s), w), *db = dev_copy(f->cu, s.k, b);
    float *dG = dev_copy(f->cu, ny(&s), G), *dy = dev_buf(f->cu, ny(&s), NULL);
    float *zx = calloc(nx(&s), sizeof(float)), *zw = calloc(nw(&s), sizeof(float)), *zb = calloc(s.k, sizeof(float));
    float *gx = dev_buf(f->cu, nx(&s), zx), *gw = dev_buf(f->cu, nw(&s), zw), *gb = dev_buf(f->cu, s.k, zb);
    assert_int_equal(ky_cuda_conv2d_dgrad(f->cu, gx, dG, dw, &s, KY_CONV_ALGO_IMPLICIT_GEMM), KY_OK);
    assert_int_equal(ky_cuda_conv2d_wgrad(f->cu, gw, gb, dG, dx, &s, KY_CONV_ALGO_IMPLICIT_GEMM), KY_OK);
    float *hgx = download(f->cu, gx, nx(&s), "gradcheck dx");
    float *hgw = download(f->cu, gw, nw(&s), "gradcheck dw");
    float *hgb = download(f->cu, gb, s.k, "gradcheck db");
    const float h = 0.05f;
    struct { float *host, *dev, *grad; size_t n; const char *name; } params[3] = {
        {x, dx, hgx, nx(&s), "x"}, {w, dw, hgw, nw(&s), "w"}, {b, db, hgb, (size_t)s.k, "b"}};
    for (int pi = 0; pi < 3; ++pi)
      for (int t = 0; t < 12; ++t) {
        const size_t i = (size_t)ky_rng_int(&rng, 0, (int64_t)params[pi].n);
        const float orig = params[pi].host[i];
        float v = orig + h;
        assert_int_equal(ky_cuda_h2d(f->cu, params[pi].dev + i, &v, sizeof v), KY_OK);
        const double lp = loss_of(f->cu, &s, dx, dw, db, dy, G, hy);
        v = orig - h;
        assert_int_equal(ky_cuda_h2d(f->cu, params[pi].dev + i, &v, sizeof v), KY_OK);
        const double lm = loss_of(f->cu, &s, dx, dw, db, dy, G, hy);
        assert_int_equal(ky_cuda_h2d(f->cu, params[pi].dev + i, &orig, sizeof orig), KY_OK);
        const double num = (lp - lm) / (2.0 * h), ana = params[pi].grad[i];
        if (fabs(num - ana) > 2e-3 * (1.0 + fabs(num)))
          fail_msg("%s: d loss / d %s[%zu]: central difference %.6g, CUDA backward %.6g", cases[ci].name,
                   params[pi].name, i, num, ana);
      }
    free(hgx); free(hgw); free(hgb);
    ky_cuda_release(f->cu, gx); ky_cuda_release(f->cu, gw); ky_cuda_release(f->cu, gb);
    ky_cuda_release(f->cu, dx); ky_cuda_release(f->cu, dw); ky_cuda_release(f->cu, db);
    ky_cuda_release(f->cu, dG); ky_cuda_release(f->cu, dy);
    free(x); free(w); free(b); free(G); free(hy); free(zx); free(zw); free(zb);
  }
}

static void test_bad_args(void **state) {
  fixture *f = *state;
  const conv_case cc = {"bad", 1, 8, 8, 4, 4, 3, 3, 1, 1, 1};
  ky_conv_shape s = shape_of(&cc);
  float *x = dev_buf(f->cu, nx(&s), NULL), *w = dev_buf(f->cu, nw(&s), NULL), *y = dev_buf(f->cu, ny(&s), NULL);

  assert_int_equal(ky_cuda_conv2d_fwd(f->cu, y, NULL, w, NULL, &s, 0, KY_CONV_ALGO_AUTO), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "x is NULL"));
  assert_int_equal(ky_cuda_conv2d_fwd(NULL, y, x, w, NULL, &s, 0, KY_CONV_ALGO_AUTO), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "context is NULL"));
  assert_int_equal(ky_cuda_conv2d_dgrad(f->cu, x, y, NULL, &s, KY_CONV_ALGO_AUTO), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "w is NULL"));
  assert_int_equal(ky_cuda_conv2d_wgrad(f->cu, w, NULL, y, x, NULL, KY_CONV_ALGO_AUTO), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "shape is NULL"));

  ky_conv_shape bad = s;
  bad.oh = 7;
  assert_int_equal(ky_cuda_conv2d_fwd(f->cu, y, x, w, NULL, &bad, 0, KY_CONV_ALGO_IMPLICIT_GEMM), KY_ERR_SHAPE);
  assert_non_null(strstr(ky_last_error(), "output size in the shape is 7x8, expected 8x8"));
  bad = s;
  bad.stride = 0;
  assert_int_equal(ky_cuda_conv2d_dgrad(f->cu, x, y, w, &bad, KY_CONV_ALGO_IMPLICIT_GEMM), KY_ERR_SHAPE);
  assert_non_null(strstr(ky_last_error(), "stride 0"));
  bad = s;
  bad.kh = 11; bad.pad = 0;
  assert_int_equal(ky_cuda_conv2d_fwd(f->cu, y, x, w, NULL, &bad, 0, KY_CONV_ALGO_IMPLICIT_GEMM), KY_ERR_SHAPE);
  assert_non_null(strstr(ky_last_error(), "does not fit"));
  assert_int_equal(ky_cuda_conv2d_fwd(f->cu, y, x, w, NULL, &s, 0, (ky_conv_algo)9), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "unknown algorithm 9"));
  if (f->sm < 80) {
    assert_int_equal(ky_cuda_conv2d_fwd(f->cu, y, x, w, NULL, &s, 0, KY_CONV_ALGO_IMPLICIT_TF32), KY_ERR_CUDA);
    assert_non_null(strstr(ky_last_error(), "compute capability 8.0"));
  }
  ky_cuda_release(f->cu, x); ky_cuda_release(f->cu, w); ky_cuda_release(f->cu, y);
}

int main(void) {
  char why[256];
  if (ky_cuda_device_count(why, sizeof why) == 0) {
    printf("test_cuda_conv: SKIPPED: no CUDA GPU (%s)\n", why);
    return 0;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_args),
      cmocka_unit_test(test_fwd),
      cmocka_unit_test(test_dgrad),
      cmocka_unit_test(test_wgrad),
      cmocka_unit_test(test_unaligned),
      cmocka_unit_test(test_auto_deterministic),
      cmocka_unit_test(test_gradcheck),
  };
  return cmocka_run_group_tests_name("cuda_conv", tests, setup, teardown);
}

/* PyTorch parity of the CPU reference kernels on the golden fixtures of
 * tests/fixtures/gen_parity_ops.py (torch 1.13; format documented there). Run by `make test` from
 * the repository root. The loss combinations (sigmoid_dice, focal_dice, weighted_sum) run through
 * the tensor-level ops and autograd; everything else calls the raw kernels.
 *
 * Tolerance, every tensor: fp32 relative 1e-5 of the tensor's scale,
 * |got - want| <= 1e-5 * (|want| + max|want|); max pooling's forward must be exact. (The Adam
 * betas reach the kernel as float, so its 1 - beta2 differs from PyTorch's by 1.3e-5 relative;
 * the moments still agree to this tolerance.) */
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
#include "core/fileio.h"
#include "losses/losses.h"
#include "ops/kernels.h"
#include "ops/ops.h"

#define FIX "tests/fixtures/parity_ops/"
#define RTOL 1e-5

/* Loads tensor `name` after checking its shape in the manifest against the caller's dims
 * (dims terminated by -1). */
static float *load(const char *name, ...) {
  int want[8], nd = 0;
  va_list ap;
  va_start(ap, name);
  for (int d; nd < 8 && (d = va_arg(ap, int)) >= 0;) want[nd++] = d;
  va_end(ap);

  char *man;
  size_t mlen;
  if (ky_file_read_all(FIX "manifest.txt", &man, &mlen) != KY_OK)
    fail_msg("cannot read " FIX "manifest.txt (run from the repository root)");
  size_t count = 1;
  int found = 0;
  for (char *line = strtok(man, "\n"); line; line = strtok(NULL, "\n")) {
    char nm[128];
    int nd2, off;
    if (line[0] == '#' || sscanf(line, "%127s %d%n", nm, &nd2, &off) != 2 || strcmp(nm, name) != 0) continue;
    found = 1;
    if (nd2 != nd) fail_msg("%s: manifest has %d dims, test expects %d", name, nd2, nd);
    char *p = line + off;
    for (int i = 0; i < nd; i++) {
      int d, used;
      if (sscanf(p, "%d%n", &d, &used) != 1) fail_msg("%s: manifest line is short", name);
      p += used;
      if (d != want[i]) fail_msg("%s: manifest dim %d is %d, test expects %d", name, i, d, want[i]);
      count *= (size_t)d;
    }
    break;
  }
  free(man);
  if (!found) fail_msg("%s: not in " FIX "manifest.txt", name);

  char path[256];
  snprintf(path, sizeof path, FIX "%s.bin", name);
  char *buf;
  size_t n;
  if (ky_file_read_all(path, &buf, &n) != KY_OK) fail_msg("cannot read %s", path);
  if (n != count * sizeof(float)) fail_msg("%s: %zu bytes, expected %zu", path, n, count * sizeof(float));
  float *a = malloc(n);
  memcpy(a, buf, n); /* little-endian float32 on every target we build for */
  free(buf);
  return a;
}

static void expect_near(const char *what, const float *got, const float *want, size_t n, double rtol) {
  double scale = 0;
  for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
  for (size_t i = 0; i < n; i++) {
    double err = fabs((double)got[i] - want[i]);
    if (!(err <= rtol * (fabs(want[i]) + scale)))
      fail_msg("%s[%zu]: got %.9g, torch %.9g (err %.3g, scale %.3g)", what, i, got[i], want[i], err, scale);
  }
}

static float *zeros(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

/* ---- convolution -------------------------------------------------------------------------- */

static void conv_case(const char *nm, int n, int c, int h, int w, int k, int kh, int kw, int stride, int pad,
                      int dil, int bias) {
  ky_conv_shape s = {.n = n, .h = h, .w = w, .c = c, .k = k, .kh = kh, .kw = kw, .stride = stride, .pad = pad,
                     .dil = dil};
  assert_int_equal(ky_conv_shape_finish(&s), 1);
  char a[64];
#define T(sfx) (snprintf(a, sizeof a, "%s." sfx, nm), a)
  float *x = load(T("x"), n, h, w, c, -1), *wt = load(T("w"), k, kh, kw, c, -1);
  float *dy = load(T("dy"), n, s.oh, s.ow, k, -1), *y_ref = load(T("y"), n, s.oh, s.ow, k, -1);
  float *dx_ref = load(T("dx"), n, h, w, c, -1), *dw_ref = load(T("dw"), k, kh, kw, c, -1);
  float *b = bias ? load(T("b"), k, -1) : NULL, *db_ref = bias ? load(T("db"), k, -1) : NULL;
  size_t ny = (size_t)n * s.oh * s.ow * k, nx = (size_t)n * h * w * c, nw = (size_t)k * kh * kw * c;
  float *work = malloc(ky_cpu_conv2d_work_floats(&s, 1) * sizeof *work);
  float *y = zeros(ny), *dx = zeros(nx), *dw = zeros(nw), *db = zeros(k);
  ky_cpu_conv2d_fwd(NULL, y, x, wt, b, &s, 0, work);
  ky_cpu_conv2d_dgrad(NULL, dx, dy, wt, &s, work);
  ky_cpu_conv2d_wgrad(NULL, dw, bias ? db : NULL, dy, x, &s, work);
  expect_near(T("y"), y, y_ref, ny, RTOL);
  expect_near(T("dx"), dx, dx_ref, nx, RTOL);
  expect_near(T("dw"), dw, dw_ref, nw, RTOL);
  if (bias) expect_near(T("db"), db, db_ref, k, RTOL);
  /* fused ReLU = relu of the plain output */
  ky_cpu_conv2d_fwd(NULL, y, x, wt, b, &s, 1, work);
  for (size_t i = 0; i < ny; i++) y_ref[i] = y_ref[i] > 0 ? y_ref[i] : 0;
  expect_near(T("y relu"), y, y_ref, ny, RTOL);
#undef T
  free(x); free(wt); free(dy); free(y_ref); free(dx_ref); free(dw_ref); free(b); free(db_ref);
  free(work); free(y); free(dx); free(dw); free(db);
}

static void test_conv(void **st) {
  conv_case("conv_s1", 2, 3, 6, 5, 4, 3, 3, 1, 1, 1, 1);
  conv_case("conv_s2", 1, 5, 7, 8, 6, 3, 3, 2, 1, 1, 1);
  conv_case("conv_d2", 1, 4, 9, 7, 3, 3, 3, 1, 2, 2, 1);
  conv_case("conv_stem", 1, 3, 12, 10, 8, 7, 7, 2, 3, 1, 0);
  conv_case("conv_1x1s2", 2, 6, 5, 5, 4, 1, 1, 2, 0, 1, 0);
  conv_case("conv_1x1", 1, 17, 4, 3, 9, 1, 1, 1, 0, 1, 1);
}

/* ---- batch norm --------------------------------------------------------------------------- */

static void test_batchnorm(void **st) {
  enum { N = 2, H = 4, W = 5, C = 6, NP = N * H * W };
  float *x = load("bn.x", N, H, W, C, -1), *g = load("bn.gamma", C, -1), *b = load("bn.beta", C, -1);
  float *rm = load("bn.rm0", C, -1), *rv = load("bn.rv0", C, -1), *dy = load("bn.dy", N, H, W, C, -1);
  float y[NP * C], sm[C], si[C], dx[NP * C] = {0}, dg[C] = {0}, dbeta[C] = {0};
  float *rm_ref = load("bn.train.rm", C, -1), *rv_ref = load("bn.train.rv", C, -1);
  float rm1[C], rv1[C];
  memcpy(rm1, rm, sizeof rm1);
  memcpy(rv1, rv, sizeof rv1);
  ky_cpu_bn_fwd_train(NULL, y, sm, si, rm1, rv1, x, g, b, NP, C, 1e-5f, 0.1f);
  ky_cpu_bn_bwd_train(NULL, dx, dg, dbeta, dy, x, g, sm, si, NP, C);
  const char *names[4] = {"y", "dx", "dgamma", "dbeta"};
  float *got[4] = {y, dx, dg, dbeta};
  size_t cnt[4] = {NP * C, NP * C, C, C};
  for (int mode = 0; mode < 2; mode++) {
    if (mode == 1) { /* eval with the initial running statistics */
      memset(dx, 0, sizeof dx);
      memset(dg, 0, sizeof dg);
      memset(dbeta, 0, sizeof dbeta);
      ky_cpu_bn_fwd_eval(NULL, y, x, g, b, rm, rv, NP, C, 1e-5f);
      ky_cpu_bn_bwd_eval(NULL, dx, dg, dbeta, dy, x, g, rm, rv, NP, C, 1e-5f);
    }
    for (int i = 0; i < 4; i++) {
      char nm[64];
      snprintf(nm, sizeof nm, "bn.%s.%s", mode ? "eval" : "train", names[i]);
      float *ref = i < 2 ? load(nm, N, H, W, C, -1) : load(nm, C, -1);
      expect_near(nm, got[i], ref, cnt[i], RTOL);
      free(ref);
    }
  }
  expect_near("bn.train.rm", rm1, rm_ref, C, RTOL);
  expect_near("bn.train.rv", rv1, rv_ref, C, RTOL);
  free(x); free(g); free(b); free(rm); free(rv); free(dy); free(rm_ref); free(rv_ref);
}

/* ---- upsampling, pooling, softmax, sigmoid ------------------------------------------------ */

static void test_upsample(void **st) {
  enum { N = 2, H = 5, W = 4, C = 3 };
  float *x = load("up.x", N, H, W, C, -1);
  const char *names[3] = {"nearest2", "nearest3", "bilinear"};
  const int f[3] = {2, 3, 2};
  for (int m = 0; m < 3; m++) {
    char a[64], b[64], d[64];
    snprintf(a, sizeof a, "up.%s.y", names[m]);
    snprintf(b, sizeof b, "up.%s.dy", names[m]);
    snprintf(d, sizeof d, "up.%s.dx", names[m]);
    size_t ny = (size_t)N * H * f[m] * W * f[m] * C;
    float *yref = load(a, N, H * f[m], W * f[m], C, -1), *dy = load(b, N, H * f[m], W * f[m], C, -1);
    float *dxref = load(d, N, H, W, C, -1), *y = zeros(ny), *dx = zeros(N * H * W * C);
    if (m < 2) {
      ky_cpu_upsample_nearest_fwd(NULL, y, x, N, H, W, C, f[m]);
      ky_cpu_upsample_nearest_bwd(NULL, dx, dy, N, H, W, C, f[m]);
    } else {
      ky_cpu_upsample_bilinear2_fwd(NULL, y, x, N, H, W, C);
      ky_cpu_upsample_bilinear2_bwd(NULL, dx, dy, N, H, W, C);
    }
    expect_near(a, y, yref, ny, RTOL);
    expect_near(d, dx, dxref, N * H * W * C, RTOL);
    free(yref); free(dy); free(dxref); free(y); free(dx);
  }
  free(x);
}

static void test_maxpool(void **st) {
  ky_pool_shape s = {.n = 2, .h = 7, .w = 6, .c = 3, .k = 3, .stride = 2, .pad = 1};
  assert_int_equal(ky_pool_shape_finish(&s), 1);
  size_t nx = 2 * 7 * 6 * 3, ny = (size_t)2 * s.oh * s.ow * 3;
  float *x = load("pool.x", 2, 7, 6, 3, -1), *dy = load("pool.dy", 2, s.oh, s.ow, 3, -1);
  float *yref = load("pool.y", 2, s.oh, s.ow, 3, -1), *dxref = load("pool.dx", 2, 7, 6, 3, -1);
  float *y = zeros(ny), *dx = zeros(nx);
  int32_t *am = calloc(ny, sizeof *am);
  ky_cpu_maxpool_fwd(NULL, y, am, x, &s);
  ky_cpu_maxpool_bwd(NULL, dx, dy, am, &s);
  expect_near("pool.y", y, yref, ny, 0); /* max is exact */
  expect_near("pool.dx", dx, dxref, nx, RTOL);
  free(x); free(dy); free(yref); free(dxref); free(y); free(dx); free(am);
}

static void test_softmax_sigmoid(void **st) {
  enum { NP = 2 * 3 * 4, C = 5 };
  float *x = load("softmax.x", 2, 3, 4, C, -1), *dy = load("softmax.dy", 2, 3, 4, C, -1);
  float *yref = load("softmax.y", 2, 3, 4, C, -1), *dxref = load("softmax.dx", 2, 3, 4, C, -1);
  float *sref = load("sigmoid.y", 2, 3, 4, C, -1), *dsref = load("sigmoid.dx", 2, 3, 4, C, -1);
  float y[NP * C], dx[NP * C] = {0}, s[NP * C], ds[NP * C] = {0};
  ky_cpu_softmax_fwd(NULL, y, x, NP, C);
  ky_cpu_softmax_bwd(NULL, dx, dy, y, NP, C);
  ky_cpu_sigmoid_fwd(NULL, s, x, NP * C);
  ky_cpu_sigmoid_bwd(NULL, ds, dy, s, NP * C);
  expect_near("softmax.y", y, yref, NP * C, RTOL);
  expect_near("softmax.dx", dx, dxref, NP * C, RTOL);
  expect_near("sigmoid.y", s, sref, NP * C, RTOL);
  expect_near("sigmoid.dx", ds, dsref, NP * C, RTOL);
  free(x); free(dy); free(yref); free(dxref); free(sref); free(dsref);
}

/* ---- losses ------------------------------------------------------------------------------- */

static void test_bce(void **st) {
  enum { NP = 2 * 4 * 4 };
  float *x = load("bce.x", 2, 4, 4, 2, -1), *t = load("bce.t", 2, 4, 4, 2, -1);
  float *lref = load("bce.loss", 1, -1), *dxref = load("bce.dx", 2, 4, 4, 2, -1);
  float loss, dx[NP * 2] = {0};
  ky_cpu_bce_logits_fwd(&loss, x, t, NP, 2, 1);
  ky_cpu_bce_logits_bwd(NULL, dx, x, t, 1.0f, NP, 2, 1);
  expect_near("bce.loss", &loss, lref, 1, RTOL);
  expect_near("bce.dx", dx, dxref, NP * 2, RTOL);
  free(x); free(t); free(lref); free(dxref);
}

static void test_softmax_ce(void **st) {
  enum { NP = 2 * 4 * 4, C = 3 };
  float *x = load("ce.x", 2, 4, 4, C, -1), *clsf = load("ce.cls", 2, 4, 4, -1), *w = load("ce.w", C, -1);
  uint8_t cls[NP];
  int ignored = 0;
  for (int i = 0; i < NP; i++) {
    cls[i] = (uint8_t)clsf[i];
    ignored += cls[i] == 255;
  }
  assert_int_equal(ignored, 1);
  for (int weighted = 0; weighted < 2; weighted++) {
    const char *nm = weighted ? "weighted" : "plain";
    char a[64], b[64];
    snprintf(a, sizeof a, "ce.%s.loss", nm);
    snprintf(b, sizeof b, "ce.%s.dx", nm);
    float *lref = load(a, 1, -1), *dxref = load(b, 2, 4, 4, C, -1), loss, dx[NP * C] = {0};
    ky_cpu_softmax_ce_fwd(NULL, &loss, NULL, x, cls, weighted ? w : NULL, NP, C);
    ky_cpu_softmax_ce_bwd(NULL, dx, x, cls, weighted ? w : NULL, 1.0f, NP, C);
    expect_near(a, &loss, lref, 1, RTOL);
    expect_near(b, dx, dxref, NP * C, RTOL);
    free(lref); free(dxref);
  }
  free(x); free(clsf); free(w);
}

static void test_dice(void **st) {
  enum { N = 2, HW = 16, C = 3 };
  float *p = load("dice.p", N, 4, 4, C, -1), *t = load("dice.t", N, 4, 4, C, -1);
  /* the one-hot target in the fixture is ky_cpu_onehot of the class map (ignore = all zeros) */
  float *clsf = load("ce.cls", N, 4, 4, -1), oh[N * HW * C];
  uint8_t cls[N * HW];
  for (int i = 0; i < N * HW; i++) cls[i] = (uint8_t)clsf[i];
  ky_cpu_onehot(NULL, oh, cls, N * HW, C);
  expect_near("dice.t (onehot)", oh, t, N * HW * C, 0);
  for (int per_image = 0; per_image < 2; per_image++) {
    int g = per_image ? N : 1;
    const char *nm = per_image ? "image" : "batch";
    char a[64], b[64], d[64];
    snprintf(a, sizeof a, "dice.%s.dice", nm);
    snprintf(b, sizeof b, "dice.%s.ddice", nm);
    snprintf(d, sizeof d, "dice.%s.dp", nm);
    float *dref = load(a, g, -1), *dd = load(b, g, -1), *dpref = load(d, N, 4, 4, C, -1);
    float dice[N], dp[N * HW * C] = {0};
    double sums[N * 3];
    ky_cpu_dice_fwd(dice, sums, p, C, 2, t, C, 2, N, HW, 1e-3f, per_image);
    ky_cpu_dice_bwd(NULL, dp, dd, sums, p, C, 2, t, C, 2, N, HW, 1e-3f, per_image);
    expect_near(a, dice, dref, g, RTOL);
    expect_near(d, dp, dpref, N * HW * C, RTOL);
    free(dref); free(dd); free(dpref);
  }
  free(p); free(t); free(clsf);
}

/* The combinations go through the tensor-level ops and autograd (forward value and the gradient
 * that ky_backward leaves on the logits), as training uses them. */
static void test_combined_losses(void **st) {
  enum { N = 2, H = 4, W = 5, C = 2, NE = N * H * W * C };
  const int shape[4] = {N, H, W, C};
  float *x = load("comb.x", N, H, W, C, -1), *t = load("comb.t", N, H, W, C, -1);
  ky_ctx ctx;
  assert_int_equal(ky_ctx_init(&ctx, KY_DEV_CPU, 0), KY_OK);
  for (int focal = 0; focal < 2; focal++) {
    const char *nm = focal ? "focal_dice" : "sigmoid_dice";
    char a[64], b[64];
    snprintf(a, sizeof a, "comb.%s.loss", nm);
    snprintf(b, sizeof b, "comb.%s.dx", nm);
    float *lref = load(a, 1, -1), *dxref = load(b, N, H, W, C, -1), loss, dx[NE];
    ky_ctx_reset(&ctx);
    ky_tensor *xt, *tt, *l;
    assert_int_equal(ky_tensor_from_host(&ctx, &xt, KY_F32, 4, shape, x), KY_OK);
    assert_int_equal(ky_tensor_from_host(&ctx, &tt, KY_F32, 4, shape, t), KY_OK);
    xt->requires_grad = 1;
    assert_int_equal(focal ? ky_loss_focal_dice(&ctx, &l, xt, tt, 0.5f) : ky_loss_sigmoid_dice(&ctx, &l, xt, tt, 0.5f),
                     KY_OK);
    assert_int_equal(ky_tensor_item(&ctx, &loss, l), KY_OK);
    assert_int_equal(ky_backward(&ctx, l), KY_OK);
    assert_non_null(xt->grad);
    assert_int_equal(ky_tensor_to_host(&ctx, dx, xt->grad), KY_OK);
    expect_near(a, &loss, lref, 1, RTOL);
    expect_near(b, dx, dxref, NE, RTOL);
    free(lref); free(dxref);
  }
  /* weighted_sum: 0.3*mean(a) - 1.7*mean(b) + 0.5*mean(a+b); a receives gradient from two terms. */
  float *av = load("comb.wsum.a", 3, 4, -1), *bv = load("comb.wsum.b", 3, 4, -1), *lref = load("comb.wsum.loss", 1, -1);
  float *daref = load("comb.wsum.da", 3, 4, -1), *dbref = load("comb.wsum.db", 3, 4, -1), loss, da[12], db[12];
  const int s2[2] = {3, 4};
  ky_ctx_reset(&ctx);
  ky_tensor *at, *bt, *ab, *terms[3], *l;
  assert_int_equal(ky_tensor_from_host(&ctx, &at, KY_F32, 2, s2, av), KY_OK);
  assert_int_equal(ky_tensor_from_host(&ctx, &bt, KY_F32, 2, s2, bv), KY_OK);
  at->requires_grad = bt->requires_grad = 1;
  assert_int_equal(ky_mean(&ctx, &terms[0], at), KY_OK);
  assert_int_equal(ky_mean(&ctx, &terms[1], bt), KY_OK);
  assert_int_equal(ky_add(&ctx, &ab, at, bt), KY_OK);
  assert_int_equal(ky_mean(&ctx, &terms[2], ab), KY_OK);
  static const float w[3] = {0.3f, -1.7f, 0.5f};
  assert_int_equal(ky_loss_weighted_sum(&ctx, &l, terms, w, 3), KY_OK);
  assert_int_equal(ky_tensor_item(&ctx, &loss, l), KY_OK);
  assert_int_equal(ky_backward(&ctx, l), KY_OK);
  assert_int_equal(ky_tensor_to_host(&ctx, da, at->grad), KY_OK);
  assert_int_equal(ky_tensor_to_host(&ctx, db, bt->grad), KY_OK);
  expect_near("comb.wsum.loss", &loss, lref, 1, RTOL);
  expect_near("comb.wsum.da", da, daref, 12, RTOL);
  expect_near("comb.wsum.db", db, dbref, 12, RTOL);
  ky_ctx_free(&ctx);
  free(x); free(t); free(av); free(bv); free(lref); free(daref); free(dbref);
}

/* ---- optimisers --------------------------------------------------------------------------- */

enum { NO = 40 };

static void test_adam(void **st) {
  float *p0 = load("opt.p0", NO, -1), *g[3];
  for (int i = 0; i < 3; i++) {
    char a[32];
    snprintf(a, sizeof a, "opt.g%d", i + 1);
    g[i] = load(a, NO, -1);
  }
  const char *names[3] = {"adam", "adam_ams", "adamw"};
  for (int c = 0; c < 3; c++) {
    float p[NO], m[NO] = {0}, v[NO] = {0}, vmax[NO] = {0};
    memcpy(p, p0, sizeof p);
    ky_adam_args a = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                      .weight_decay = c == 2 ? 0.1f : 0.0f, .amsgrad = c == 1};
    for (int s = 0; s < 3; s++) {
      a.step = s + 1;
      ky_cpu_adam(NULL, p, m, v, c == 1 ? vmax : NULL, g[s], NO, &a);
      char nm[64];
      snprintf(nm, sizeof nm, "opt.%s.p%d", names[c], s + 1);
      float *ref = load(nm, NO, -1);
      expect_near(nm, p, ref, NO, RTOL);
      free(ref);
    }
    char nm[64];
    snprintf(nm, sizeof nm, "opt.%s.m", names[c]);
    float *mref = load(nm, NO, -1);
    expect_near(nm, m, mref, NO, RTOL);
    snprintf(nm, sizeof nm, "opt.%s.v", names[c]);
    float *vref = load(nm, NO, -1);
    expect_near(nm, v, vref, NO, RTOL);
    free(mref); free(vref);
    if (c == 1) {
      float *vmref = load("opt.adam_ams.vmax", NO, -1);
      expect_near("opt.adam_ams.vmax", vmax, vmref, NO, RTOL);
      free(vmref);
    }
  }
  free(p0);
  for (int i = 0; i < 3; i++) free(g[i]);
}

static void test_sgd(void **st) {
  float *p0 = load("opt.p0", NO, -1), *g[3];
  for (int i = 0; i < 3; i++) {
    char a[32];
    snprintf(a, sizeof a, "opt.g%d", i + 1);
    g[i] = load(a, NO, -1);
  }
  const char *names[3] = {"sgd", "sgd_nesterov", "sgd_damp"};
  const ky_sgd_args args[3] = {{.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.01f},
                               {.lr = 0.1f, .momentum = 0.9f, .nesterov = 1},
                               {.lr = 0.1f, .momentum = 0.8f, .dampening = 0.3f}};
  for (int c = 0; c < 3; c++) {
    float p[NO], buf[NO] = {0};
    memcpy(p, p0, sizeof p);
    ky_sgd_args a = args[c];
    for (int s = 0; s < 3; s++) {
      a.step = s + 1;
      ky_cpu_sgd(NULL, p, buf, g[s], NO, &a);
      char nm[64];
      snprintf(nm, sizeof nm, "opt.%s.p%d", names[c], s + 1);
      float *ref = load(nm, NO, -1);
      expect_near(nm, p, ref, NO, RTOL);
      free(ref);
    }
    char nm[64];
    snprintf(nm, sizeof nm, "opt.%s.buf", names[c]);
    float *bref = load(nm, NO, -1);
    expect_near(nm, buf, bref, NO, RTOL);
    free(bref);
  }
  free(p0);
  for (int i = 0; i < 3; i++) free(g[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_conv),     cmocka_unit_test(test_batchnorm), cmocka_unit_test(test_upsample),
      cmocka_unit_test(test_maxpool),  cmocka_unit_test(test_softmax_sigmoid), cmocka_unit_test(test_bce),
      cmocka_unit_test(test_softmax_ce), cmocka_unit_test(test_dice),    cmocka_unit_test(test_adam),
      cmocka_unit_test(test_sgd),       cmocka_unit_test(test_combined_losses),
  };
  return cmocka_run_group_tests_name("parity_ops", tests, NULL, NULL);
}

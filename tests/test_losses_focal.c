/* Focal loss kernels (losses/focal_cpu.c) and ops (losses/focal.c): hand-worked values, gamma = 0 /
 * alpha = 0.5 against BCE / 2, extreme logits, gradient accumulation, the error messages, and
 * PyTorch reference values (tests/fixtures/focal/, made by tests/fixtures/gen_focal.py).
 * The op's gradients are also checked by finite differences in tests/test_ops_gradcheck.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "losses/losses.h"
#include "ops/kernels.h"

#define FIX "tests/fixtures/focal/"
enum { NPIX = 2 * 5 * 7, C = 2 };

/* Reads n little-endian float32 from a fixture (tests/fixtures/gen_focal.py); run from the repository root. */
static float *load(const char *name, size_t n) {
  char path[128], *buf;
  size_t len;
  snprintf(path, sizeof path, FIX "%s", name);
  if (ky_file_read_all(path, &buf, &len) != KY_OK) fail_msg("cannot read %s: %s", path, ky_last_error());
  if (len != n * sizeof(float)) fail_msg("%s: %zu bytes, expected %zu", path, len, n * sizeof(float));
  float *a = malloc(len);
  memcpy(a, buf, len);
  free(buf);
  return a;
}

/* Against PyTorch in float64 (torchvision's sigmoid_focal_loss for 0/1 targets, the soft formula,
 * BCE / 2 for gamma 0): loss and gradient for every case of the fixture script. */
static void test_pytorch_reference(void **state) {
  static const struct { int ch; float gamma, alpha; } cases[4] = {{0, 2.0f, 0.25f}, {1, 2.0f, 0.25f},
                                                                 {1, 1.5f, 0.6f}, {0, 0.0f, 0.5f}};
  float *x = load("x_2x5x7x2.bin", NPIX * C), *t = load("t_2x5x7x2.bin", NPIX * C), *want = load("loss_4.bin", 4);
  for (int k = 0; k < 4; k++) {
    char name[32];
    snprintf(name, sizeof name, "grad%d_2x5x7x2.bin", k);
    float *gw = load(name, NPIX * C), loss, dx[NPIX * C];
    ky_cpu_focal_logits_fwd(&loss, x, t, NPIX, C, cases[k].ch, cases[k].gamma, cases[k].alpha);
    if (!(fabs(loss - want[k]) <= 2e-7 * want[k])) fail_msg("case %d: loss %.9g, torch %.9g", k, loss, want[k]);
    memset(dx, 0, sizeof dx);
    ky_cpu_focal_logits_bwd(NULL, dx, x, t, 1.0f, NPIX, C, cases[k].ch, cases[k].gamma, cases[k].alpha);
    double scale = 0;
    for (int i = 0; i < NPIX * C; i++) scale = fmax(scale, fabs(gw[i]));
    for (int i = 0; i < NPIX * C; i++)
      if (!(fabs(dx[i] - gw[i]) <= 1e-6 * (fabs(gw[i]) + scale)))
        fail_msg("case %d: dx[%d] %.9g, torch %.9g", k, i, dx[i], gw[i]);
    free(gw);
  }
  free(x);
  free(t);
  free(want);
}

/* x = 0 (p = 1/2), t = 1: alpha (1/2)^2 log 2; x = ln 3 (p = 3/4), t = 0: (1-alpha) (3/4)^2 log 4. */
static void test_hand_worked(void **state) {
  float x[2] = {0.0f, (float)log(3.0)}, t[2] = {1.0f, 0.0f}, loss, dx[2] = {0, 0};
  ky_cpu_focal_logits_fwd(&loss, x, t, 1, 1, 0, 2.0f, 0.25f);
  assert_float_equal(loss, 0.25 * 0.25 * log(2.0), 1e-7);
  ky_cpu_focal_logits_fwd(&loss, x + 1, t + 1, 1, 1, 0, 2.0f, 0.25f);
  assert_float_equal(loss, 0.75 * 0.5625 * log(4.0), 1e-6);
  /* Two pixels in one call: the mean. */
  ky_cpu_focal_logits_fwd(&loss, x, t, 2, 1, 0, 2.0f, 0.25f);
  assert_float_equal(loss, (0.0625 * log(2.0) + 0.421875 * log(4.0)) / 2, 1e-6);
  /* dl/dx at x = 0, t = 1: -alpha q^2 (gamma p log 2 + q) = -0.0625 (log 2 + 0.5). Mean over 2 pixels. */
  ky_cpu_focal_logits_bwd(NULL, dx, x, t, 2.0f, 2, 1, 0, 2.0f, 0.25f);
  assert_float_equal(dx[0], -0.0625 * (log(2.0) + 0.5), 1e-7);
  /* x = ln 3, t = 0: (1-alpha) p^2 (gamma q log 4 + p) = 0.75 * 0.5625 * (0.5 log 4 + 0.75). */
  assert_float_equal(dx[1], 0.421875 * (0.5 * log(4.0) + 0.75), 1e-6);
}

/* gamma = 0, alpha = 1/2 is BCE / 2, forward and backward, on one channel of three. */
static void test_gamma0_is_half_bce(void **state) {
  enum { N = 41, C = 3 };
  float x[N * C], t[N * C];
  for (int i = 0; i < N * C; i++) {
    x[i] = (float)(i % 17 - 8) * 1.7f;
    t[i] = (float)((i * 7) % 11) / 10.0f;
  }
  x[1] = 80.0f;
  x[4] = -80.0f;
  float lf, lb, df[N * C], db[N * C];
  ky_cpu_focal_logits_fwd(&lf, x, t, N, C, 1, 0.0f, 0.5f);
  ky_cpu_bce_logits_fwd(&lb, x, t, N, C, 1);
  assert_float_equal(lf, lb / 2, 1e-6 * lb);
  memset(df, 0, sizeof df);
  memset(db, 0, sizeof db);
  ky_cpu_focal_logits_bwd(NULL, df, x, t, 1.0f, N, C, 1, 0.0f, 0.5f);
  ky_cpu_bce_logits_bwd(NULL, db, x, t, 0.5f, N, C, 1);
  for (int i = 0; i < N * C; i++) {
    if (i % C != 1) assert_true(df[i] == 0.0f);  /* other channels untouched */
    assert_float_equal(df[i], db[i], 1e-7);
  }
}

/* Far-saturated logits stay finite: a confident right answer costs ~0, a confident wrong one
 * costs alpha |x| (t = 1) with gradient -alpha. Backward accumulates into dx. */
static void test_extreme_logits_and_accumulation(void **state) {
  float x[4] = {100.0f, -100.0f, -100.0f, 100.0f}, t[4] = {1, 0, 1, 0}, loss, dx[4] = {1, 1, 1, 1};
  ky_cpu_focal_logits_fwd(&loss, x, t, 2, 1, 0, 2.0f, 0.25f);
  assert_true(loss >= 0.0f && loss < 1e-30f);
  ky_cpu_focal_logits_fwd(&loss, x + 2, t + 2, 1, 1, 0, 2.0f, 0.25f);
  assert_float_equal(loss, 25.0, 1e-4);
  ky_cpu_focal_logits_fwd(&loss, x + 3, t + 3, 1, 1, 0, 2.0f, 0.25f);
  assert_float_equal(loss, 75.0, 1e-4);
  ky_cpu_focal_logits_bwd(NULL, dx, x, t, 4.0f, 4, 1, 0, 2.0f, 0.25f);
  for (int i = 0; i < 4; i++) assert_true(isfinite(dx[i]));
  assert_float_equal(dx[0], 1.0, 1e-7);
  assert_float_equal(dx[1], 1.0, 1e-7);
  assert_float_equal(dx[2], 1.0 - 0.25, 1e-6);
  assert_float_equal(dx[3], 1.0 + 0.75, 1e-6);
}

static void expect_error(ky_status s, ky_status want, const char *part) {
  assert_int_equal(s, want);
  if (!strstr(ky_last_error(), part)) fail_msg("message '%s' lacks '%s'", ky_last_error(), part);
}

static void test_op_errors_and_value(void **state) {
  ky_ctx ctx;
  assert_int_equal(ky_ctx_init(&ctx, KY_DEV_CPU, 0), KY_OK);
  int s2[4] = {1, 2, 3, 2}, s3[4] = {1, 2, 3, 3};
  float xv[12], tv[18];
  for (int i = 0; i < 12; i++) xv[i] = (float)(i - 6) * 0.5f;
  for (int i = 0; i < 18; i++) tv[i] = (float)(i % 2);
  ky_tensor *x, *t, *t3, *loss, *f0, *f1;
  assert_int_equal(ky_tensor_from_host(&ctx, &x, KY_F32, 4, s2, xv), KY_OK);
  assert_int_equal(ky_tensor_from_host(&ctx, &t, KY_F32, 4, s2, tv), KY_OK);
  assert_int_equal(ky_tensor_from_host(&ctx, &t3, KY_F32, 4, s3, tv), KY_OK);
  expect_error(ky_loss_focal_logits(&ctx, &loss, x, t3, 0, 2.0f, 0.25f), KY_ERR_SHAPE, "differ in shape");
  expect_error(ky_loss_focal_logits(&ctx, &loss, x, t, 2, 2.0f, 0.25f), KY_ERR_ARG, "channel 2, logits have 2");
  expect_error(ky_loss_focal_logits(&ctx, &loss, x, t, 0, -1.0f, 0.25f), KY_ERR_ARG, "gamma -1");
  expect_error(ky_loss_focal_logits(&ctx, &loss, x, t, 0, NAN, 0.25f), KY_ERR_ARG, "gamma");
  expect_error(ky_loss_focal_logits(&ctx, &loss, x, t, 0, 2.0f, 1.5f), KY_ERR_ARG, "alpha 1.5");
  expect_error(ky_loss_focal_dice(&ctx, &loss, x, t, 1.5f), KY_ERR_ARG, "focal weight 1.5");
  /* With w = 1 the combination is the sum of the per-channel focal losses at the defaults. */
  float v, v0, v1;
  assert_int_equal(ky_loss_focal_dice(&ctx, &loss, x, t, 1.0f), KY_OK);
  assert_int_equal(ky_loss_focal_logits(&ctx, &f0, x, t, 0, KY_FOCAL_GAMMA, KY_FOCAL_ALPHA), KY_OK);
  assert_int_equal(ky_loss_focal_logits(&ctx, &f1, x, t, 1, KY_FOCAL_GAMMA, KY_FOCAL_ALPHA), KY_OK);
  assert_int_equal(ky_tensor_item(&ctx, &v, loss), KY_OK);
  assert_int_equal(ky_tensor_item(&ctx, &v0, f0), KY_OK);
  assert_int_equal(ky_tensor_item(&ctx, &v1, f1), KY_OK);
  assert_true(v0 > 0 && v1 > 0);
  assert_float_equal(v, v0 + v1, 1e-6);
  ky_ctx_free(&ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hand_worked),
      cmocka_unit_test(test_gamma0_is_half_bce),
      cmocka_unit_test(test_extreme_logits_and_accumulation),
      cmocka_unit_test(test_op_errors_and_value),
      cmocka_unit_test(test_pytorch_reference),
  };
  return cmocka_run_group_tests_name("losses_focal", tests, NULL, NULL);
}

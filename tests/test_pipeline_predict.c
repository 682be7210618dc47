/* Tests for pipeline/predict with two small untrained networks (unet_resnet18 at width 0.125,
 * different seeds) on the CPU: 8-way TTA equals the mean of the eight transformed images' plain
 * predictions mapped back; an image that is not a multiple of 32 is predicted as its reflection
 * padding (built here with numpy's 'reflect' rule) cropped back; an ensemble is the weighted mean of
 * its models; softmax head maps (full = 1 - background) stay probabilities; errors name the bad
 * value. The dihedral maps' own inverses are tested in tests/test_pipeline_train.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/predict.h"

static ky_model *net[2];
static ky_ctx ctx;

static int setup(void **st) {
  for (int i = 0; i < 2; i++) {
    ky_model_config mc = ky_model_config_default();
    mc.classes = 3;
    mc.width = 0.125f;
    mc.seed = 11 + 7 * (uint64_t)i;
    if (ky_model_create(&net[i], "unet_resnet18", &mc) != KY_OK) return -1;
  }
  return ky_ctx_init(&ctx, KY_DEV_CPU, 0) == KY_OK ? 0 : -1;
}

static int teardown(void **st) {
  for (int i = 0; i < 2; i++) ky_model_free(net[i]);
  ky_ctx_free(&ctx);
  return 0;
}

static void predictor(ky_predictor *p, int n, const float *w, int tta) {
  memset(p, 0, sizeof *p);
  for (int i = 0; i < n; i++) { p->model[i] = net[i]; p->head[i] = KY_HEAD_SOFTMAX; p->weight[i] = w[i]; }
  p->n = n;
  p->tta = tta;
  assert_int_equal(ky_norm_parse(&p->norm, "torch"), KY_OK);
}

static uint8_t *image(int h, int w, uint64_t seed) {
  uint8_t *im = malloc((size_t)h * w * 3);
  uint64_t x = seed;
  for (size_t i = 0; i < (size_t)h * w * 3; i++) { x = x * 6364136223846793005ull + 1442695040888963407ull; im[i] = (uint8_t)(x >> 56); }
  return im;
}

/* body, border, full of one image into m[3 * h * w] (planar). */
static void probs(const ky_predictor *p, const uint8_t *rgb, int h, int w, float *m) {
  size_t n = (size_t)h * w;
  ky_status s = ky_predict_probs(&ctx, p, rgb, h, w, m, m + n, m + 2 * n);
  if (s != KY_OK) fail_msg("predict %dx%d: %s", w, h, ky_last_error());
}

static void expect_close(const char *what, const float *a, const float *b, size_t n, double tol) {
  for (size_t i = 0; i < n; i++)
    if (!(fabs((double)a[i] - b[i]) <= tol)) fail_msg("%s[%zu]: %.7f vs %.7f", what, i, a[i], b[i]);
}

static void test_tta_is_the_mean_of_mapped_variants(void **st) {
  enum { H = 64, W = 32, N = H * W };
  uint8_t *rgb = image(H, W, 1), *vimg = malloc(N * 3);
  float *f = malloc(N * 3 * sizeof(float)), *fv = malloc(N * 3 * sizeof(float)), *m = malloc(N * 3 * sizeof(float));
  float *mi = malloc(N * 3 * sizeof(float)), *back = malloc(N * sizeof(float)), *want = calloc(N * 3, sizeof(float));
  ky_predictor p;
  predictor(&p, 1, (float[]){1}, 1);
  for (size_t q = 0; q < N * 3; q++) f[q] = rgb[q];
  for (int v = 0; v < 8; v++) {
    int vh = (v & 1) ? W : H, vw = (v & 1) ? H : W;
    ky_dihedral(fv, f, H, W, 3, v, 0);
    for (size_t q = 0; q < N * 3; q++) vimg[q] = (uint8_t)fv[q];
    probs(&p, vimg, vh, vw, m);
    for (int k = 0; k < 3; k++) {
      ky_dihedral(back, m + (size_t)k * N, vh, vw, 1, v, 1);
      for (size_t q = 0; q < N; q++) want[(size_t)k * N + q] += back[q] / 8;
    }
  }
  p.tta = 8;
  probs(&p, rgb, H, W, mi);
  expect_close("tta8", mi, want, N * 3, 2e-6);
  /* The variants disagree (the check is not vacuous) and the maps are probabilities. */
  ky_predictor p1;
  predictor(&p1, 1, (float[]){1}, 1);
  probs(&p1, rgb, H, W, m);
  double diff = 0;
  for (size_t q = 0; q < N; q++) {
    diff = fmax(diff, fabs(m[q] - mi[q]));
    assert_true(mi[q] >= 0 && mi[q] <= 1 && mi[N + q] >= 0 && mi[N + q] <= 1);
    assert_true(mi[q] + mi[N + q] <= mi[2 * N + q] + 1e-6);   /* full = body + border (softmax) */
  }
  assert_true(diff > 1e-3);
  free(rgb); free(vimg); free(f); free(fv); free(m); free(mi); free(back); free(want);
}

static void test_padding_is_reflection(void **st) {
  enum { H = 50, W = 37 };
  ky_pad pad = ky_pad_rule_to32(H, W);
  int ph = H + pad.top + pad.bottom, pw = W + pad.left + pad.right;
  assert_int_equal(ph % 32, 0);
  assert_int_equal(pw % 32, 0);
  uint8_t *rgb = image(H, W, 2), *big = malloc((size_t)ph * pw * 3);
  /* numpy 'reflect': d c b | a b c d | c b a (pads here are shorter than the image) */
  for (int y = 0; y < ph; y++)
    for (int x = 0; x < pw; x++) {
      int sy = y - pad.top, sx = x - pad.left;
      sy = sy < 0 ? -sy : sy >= H ? 2 * (H - 1) - sy : sy;
      sx = sx < 0 ? -sx : sx >= W ? 2 * (W - 1) - sx : sx;
      memcpy(big + ((size_t)y * pw + x) * 3, rgb + ((size_t)sy * W + sx) * 3, 3);
    }
  float *m = malloc((size_t)H * W * 3 * sizeof(float)), *mb = malloc((size_t)ph * pw * 3 * sizeof(float));
  ky_predictor p;
  predictor(&p, 1, (float[]){1}, 1);
  probs(&p, rgb, H, W, m);
  probs(&p, big, ph, pw, mb);
  for (int k = 0; k < 3; k++)
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        float a = m[(size_t)k * H * W + (size_t)y * W + x], b = mb[(size_t)k * ph * pw + (size_t)(y + pad.top) * pw + x + pad.left];
        if (!(fabsf(a - b) <= 1e-6f)) fail_msg("map %d (%d,%d): %.7f, padded by hand %.7f", k, y, x, a, b);
      }
  free(rgb); free(big); free(m); free(mb);
}

static void test_ensemble_weights(void **st) {
  enum { H = 32, W = 64, N = H * W };
  uint8_t *rgb = image(H, W, 3);
  float *a = malloc(N * 3 * sizeof(float)), *b = malloc(N * 3 * sizeof(float)), *e = malloc(N * 3 * sizeof(float));
  float *want = malloc(N * 3 * sizeof(float));
  ky_predictor p;
  predictor(&p, 1, (float[]){1}, 1);
  probs(&p, rgb, H, W, a);
  p.model[0] = net[1];
  probs(&p, rgb, H, W, b);
  predictor(&p, 2, (float[]){1, 3}, 1);
  probs(&p, rgb, H, W, e);
  double diff = 0;
  for (size_t q = 0; q < N * 3; q++) { want[q] = (a[q] + 3 * b[q]) / 4; diff = fmax(diff, fabs(a[q] - b[q])); }
  assert_true(diff > 1e-3);
  expect_close("ensemble (1, 3)", e, want, N * 3, 2e-6);
  /* Errors: a tta other than 1 or 8, an empty image, no model. */
  p.tta = 4;
  assert_int_equal(ky_predict_probs(&ctx, &p, rgb, H, W, e, e + N, e + 2 * N), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "tta 4"));
  p.tta = 1;
  assert_int_equal(ky_predict_probs(&ctx, &p, rgb, 0, W, e, e + N, e + 2 * N), KY_ERR_ARG);
  p.n = 0;
  assert_int_equal(ky_predict_probs(&ctx, &p, rgb, H, W, e, e + N, e + 2 * N), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "0 models"));
  free(rgb); free(a); free(b); free(e); free(want);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tta_is_the_mean_of_mapped_variants),
      cmocka_unit_test(test_padding_is_reflection),
      cmocka_unit_test(test_ensemble_weights),
  };
  return cmocka_run_group_tests_name("pipeline_predict", tests, setup, teardown);
}

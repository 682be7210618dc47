/* Tests for pipeline/curve: TensorBoard's debiased smoothing on hand-worked values, the smoothing
 * weight, axis ranges and ticks, pixel colours where each line, marker and legend swatch must be,
 * text present in the title and legend areas, the CSV logs read back into the same picture, and
 * errors that name the file. */
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
#include "pipeline/curve.h"
#include "tests/util_test.h"

static const uint8_t RAW[3] = KY_CURVE_RAW, SMOOTH[3] = KY_CURVE_SMOOTH, VAL[3] = KY_CURVE_VAL, SCORE[3] = KY_CURVE_SCORE,
                     BEST[3] = KY_CURVE_BEST;

static void expect_px(const uint8_t *img, int W, int x, int y, const uint8_t want[3], const char *what) {
  const uint8_t *p = img + ((size_t)y * W + x) * 3;
  if (memcmp(p, want, 3))
    fail_msg("%s at (%d,%d): colour (%d,%d,%d), expected (%d,%d,%d)", what, x, y, p[0], p[1], p[2], want[0], want[1], want[2]);
}

static int count_non_white(const uint8_t *img, int W, int x0, int y0, int x1, int y1) {
  int n = 0;
  for (int y = y0; y < y1; y++)
    for (int x = x0; x < x1; x++) {
      const uint8_t *p = img + ((size_t)y * W + x) * 3;
      n += p[0] != 255 || p[1] != 255 || p[2] != 255;
    }
  return n;
}

static void test_smoothing(void **st) {
  /* w = 0.5 on 1, 0, 0: 0.5 / 0.5 = 1, 0.25 / 0.75, 0.125 / 0.875 */
  const float x[4] = {1, 0, NAN, 0};
  float y[4];
  ky_curve_smooth(y, x, 4, 0.5);
  assert_float_equal(y[0], 1.0, 1e-7);
  assert_float_equal(y[1], 1.0 / 3, 1e-7);
  assert_true(isnan(y[2]));                  /* passed through, average not advanced */
  assert_float_equal(y[3], 0.125 / 0.875, 1e-7);
  /* A constant stays itself from the first step (the debiasing), whatever the weight. */
  float c[50], cs[50];
  for (int i = 0; i < 50; i++) c[i] = 0.7f;
  ky_curve_smooth(cs, c, 50, 0.99);
  for (int i = 0; i < 50; i++) assert_float_equal(cs[i], 0.7, 1e-6);
  assert_float_equal(ky_curve_smooth_weight(10), 0.6, 1e-12);
  assert_float_equal(ky_curve_smooth_weight(500), 0.9, 1e-12);
  assert_float_equal(ky_curve_smooth_weight(6000), 0.99, 1e-12);
}

/* 200 steps of raw loss alternating 1.6 / 0.4 (smoothed: about 1), four epochs (validation loss
 * 0.9, 0.6, 0.5, 0.55, score 0.2, 0.5, 0.7, 0.65), best = epoch 2. */
enum { NS = 200, NE = 4, W = 960, H = 600 };
static float tr[NS], vl[NE] = {0.9f, 0.6f, 0.5f, 0.55f}, vs[NE] = {0.2f, 0.5f, 0.7f, 0.65f};
static int tit[NS], vit[NE] = {50, 100, 150, 200};

static ky_curve_data data(void) {
  for (int i = 0; i < NS; i++) { tr[i] = i % 2 ? 0.4f : 1.6f; tit[i] = i + 1; }
  ky_curve_data d = {tr, tit, NS, vl, vs, vit, NE, 2};
  return d;
}

static void test_layout(void **st) {
  ky_curve_data d = data();
  ky_curve_layout lay;
  assert_int_equal(ky_curve_layout_make(&lay, &d, W, H), KY_OK);
  /* Steps: 0..200 with ticks of 50. Loss: the smoothed curve starts at 1.6 (debiased), so
   * 1.6 * 1.05 = 1.68 -> ticks of 0.5, axis to 2.0; raw values are inside it. */
  assert_float_equal(lay.xtick, 50, 0);
  assert_float_equal(lay.xmax, 200, 0);
  assert_float_equal(lay.ytick, 0.5, 1e-12);
  assert_float_equal(lay.ymax, 2.0, 1e-12);
  assert_float_equal(lay.smooth_weight, 0.75, 1e-12);
  assert_int_equal(ky_curve_x(&lay, 0), lay.L);
  assert_int_equal(ky_curve_x(&lay, 200), lay.R);
  assert_int_equal(ky_curve_y_loss(&lay, 0), lay.B);
  assert_int_equal(ky_curve_y_loss(&lay, 2.0), lay.T);
  assert_int_equal(ky_curve_y_loss(&lay, 5.0), lay.T);   /* clipped */
  assert_int_equal(ky_curve_y_score(&lay, 1.0), lay.T);
  assert_int_equal(ky_curve_y_score(&lay, 0.5), (lay.T + lay.B) / 2 + ((lay.B - lay.T) % 2 != 0));
  assert_true(lay.L > 40 && lay.R < W - 40 && lay.B < H - 80);
}

static void test_pixels(void **st) {
  ky_curve_data d = data();
  uint8_t *img = malloc((size_t)W * H * 3);
  ky_curve_layout lay;
  assert_int_equal(ky_curve_render(img, &d, W, H, &lay), KY_OK);
  /* Raw loss: the vertical zig-zag reaches 1.6 at odd steps; the pixel there is faint blue. */
  expect_px(img, W, ky_curve_x(&lay, 101), ky_curve_y_loss(&lay, 1.6), RAW, "raw loss peak");
  /* Smoothed loss: near 1 in the second half, drawn 2 px thick over the raw line. */
  float sm[NS];
  ky_curve_smooth(sm, tr, NS, lay.smooth_weight);
  int x = ky_curve_x(&lay, 120), y = ky_curve_y_loss(&lay, sm[119]);
  int hit = 0;
  for (int dy = -1; dy <= 1; dy++) hit += !memcmp(img + ((size_t)(y + dy) * W + x) * 3, SMOOTH, 3);
  if (!hit) fail_msg("smoothed loss not found near (%d,%d)", x, y);
  /* Validation loss dots and score squares at their epochs; the best epoch's ring and dashes. */
  for (int e = 0; e < NE; e++) {
    expect_px(img, W, ky_curve_x(&lay, vit[e]) - 1, ky_curve_y_loss(&lay, vl[e]), VAL, "validation loss dot");
    expect_px(img, W, ky_curve_x(&lay, vit[e]) - 2, ky_curve_y_score(&lay, vs[e]) + 2, SCORE, "validation score square");
  }
  int bx = ky_curve_x(&lay, 150), by = ky_curve_y_loss(&lay, 0.5);
  expect_px(img, W, bx + 7, by, BEST, "best-epoch ring");
  expect_px(img, W, bx, by - 7, BEST, "best-epoch ring");
  expect_px(img, W, bx, lay.T + 2, BEST, "best-epoch dashed line");
  /* step 150 is a tick: the grid line shows in the dashes' gaps */
  expect_px(img, W, bx, lay.T + 7, (const uint8_t[3]){228, 228, 228}, "gap of the dashed line");
  /* Axes in black; no line outside the plot area where only white belongs. */
  expect_px(img, W, lay.L, (lay.T + lay.B) / 2, (const uint8_t[3]){0, 0, 0}, "left axis");
  expect_px(img, W, (lay.L + lay.R) / 2, lay.B, (const uint8_t[3]){0, 0, 0}, "bottom axis");
  expect_px(img, W, lay.R, (lay.T + lay.B) / 2, SCORE, "score axis");
  /* Legend: five entries, swatches solid in their colours, each followed by text. */
  assert_int_equal(lay.n_legend, 5);
  const uint8_t *cols[5] = {RAW, SMOOTH, VAL, SCORE, BEST};
  for (int i = 0; i < 5; i++) {
    const int *s = lay.legend_swatch[i];
    assert_true(s[1] > lay.B + 30 && s[3] < H);
    expect_px(img, W, (s[0] + s[2]) / 2, (s[1] + s[3]) / 2, cols[i], "legend swatch");
    if (count_non_white(img, W, s[2] + 4, s[1] - 6, s[2] + 80, s[3] + 8) < 40) fail_msg("legend entry %d has no text", i);
  }
  /* Axis titles and tick labels are there: text below the axis, left of it and right of it. */
  assert_true(count_non_white(img, W, lay.L, lay.B + 28, lay.R, lay.B + 50) > 100);
  assert_true(count_non_white(img, W, 0, lay.T, 30, lay.B) > 50);
  assert_true(count_non_white(img, W, W - 30, lay.T, W, lay.B) > 100);
  assert_true(count_non_white(img, W, 0, lay.T, lay.L - 6, lay.B) > count_non_white(img, W, 0, lay.T, 30, lay.B));
  free(img);

  /* Without validation: two legend entries, no score axis. */
  ky_curve_data d2 = {tr, tit, NS, NULL, NULL, NULL, 0, -1};
  img = malloc((size_t)W * H * 3);
  assert_int_equal(ky_curve_render(img, &d2, W, H, &lay), KY_OK);
  assert_int_equal(lay.n_legend, 2);
  assert_int_equal(count_non_white(img, W, W - 30, lay.T, W, lay.B), 0);
  free(img);
}

static void test_from_logs(void **st) {
  char *dir = ky_test_tmpdir("curve"), sl[512], el[512], png[512], bad[512];
  snprintf(sl, sizeof sl, "%s/log.csv", dir);
  snprintf(el, sizeof el, "%s/epochs.csv", dir);
  snprintf(png, sizeof png, "%s/curve.png", dir);
  char *buf = malloc(64 * (NS + 2)), *p = buf;
  ky_curve_data d = data();
  p += sprintf(p, "step,epoch,loss,ce,dice_body,dice_border,lr,grad_norm\n");
  for (int i = 0; i < NS; i++) p += sprintf(p, "%d,%d,%.6g,0,0,0,0.001,1\n", tit[i], i / 50, tr[i]);
  assert_int_equal(ky_file_write_atomic(sl, buf, strlen(buf)), KY_OK);
  p = buf;
  p += sprintf(p, "step,epoch,train_loss,val_loss,val_score,best\n");
  for (int e = 0; e < NE; e++) p += sprintf(p, "%d,%d,1,%.6g,%.6g,%d\n", vit[e], e, vl[e], vs[e], e == 0 || e == 2);
  assert_int_equal(ky_file_write_atomic(el, buf, strlen(buf)), KY_OK);
  assert_int_equal(ky_curve_from_logs(png, sl, el, W, H), KY_OK);
  uint8_t *want = malloc((size_t)W * H * 3);
  assert_int_equal(ky_curve_render(want, &d, W, H, NULL), KY_OK);   /* best = the last flagged epoch, 2 */
  if (!ky_test_png_is_rgb(png, want, W, H)) fail_msg("%s", ky_last_error());
  free(want);

  /* Errors: a missing log, a malformed line, a bad size. */
  snprintf(bad, sizeof bad, "%s/none.csv", dir);
  assert_int_equal(ky_curve_from_logs(png, bad, el, W, H), KY_ERR_IO);
  assert_non_null(strstr(ky_last_error(), "none.csv"));
  const char *broken = "step,epoch,loss\n1,0,0.5\nxyz,0\n";
  assert_int_equal(ky_file_write_atomic(bad, broken, strlen(broken)), KY_OK);
  assert_int_equal(ky_curve_from_logs(png, bad, el, W, H), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "none.csv:3"));
  assert_int_equal(ky_curve_from_logs(png, sl, el, 100, 100), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "100x100"));
  ky_curve_data wrong = d;
  wrong.best = NE;
  assert_int_equal(ky_curve_png(png, &wrong, W, H), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "best epoch 4 of 4"));
  free(buf);
  ky_test_rmdir(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_smoothing),
      cmocka_unit_test(test_layout),
      cmocka_unit_test(test_pixels),
      cmocka_unit_test(test_from_logs),
  };
  return cmocka_run_group_tests_name("pipeline_curve", tests, NULL, NULL);
}

/* Tests for aug/color: RGB<->GRAY/LAB/HSV and CLAHE against OpenCV outputs (fixtures from
 * tests/fixtures/gen_aug.py), plus argument errors. Run by `make test`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <limits.h>

#include "aug/color.h"
#include "test_aug_util.h"

static void test_gray_exact(void **st) {
  uint8_t *src = fix_u8("src_48x48.png", 3, 48, 48), *exp = fix_u8("gray_48x48.png", 1, 48, 48);
  assert_non_null(src); assert_non_null(exp);
  uint8_t got[48 * 48];
  assert_int_equal(ky_aug_rgb_to_gray(got, src, 48, 48), KY_OK);
  assert_memory_equal(got, exp, sizeof got);
  free(src); free(exp);
}

/* OpenCV's 8-bit LAB forward path is fixed point: expect it exactly; the inverse is float. */
static void test_lab(void **st) {
  uint8_t *src = fix_u8("src_48x48.png", 3, 48, 48), *lab = fix_u8("lab_48x48.png", 3, 48, 48);
  uint8_t *back = fix_u8("lab2rgb_48x48.png", 3, 48, 48);
  assert_non_null(src); assert_non_null(lab); assert_non_null(back);
  uint8_t got[48 * 48 * 3];
  assert_int_equal(ky_aug_rgb_to_lab(got, src, 48, 48), KY_OK);
  cmp_u8 c = compare_u8(got, lab, sizeof got);
  print_cmp("rgb->lab", c);
  assert_true(c.max_diff <= 1 && c.exact >= 0.999);
  /* OpenCV's inverse is an integer LUT path: we use its float formula, within 1 level. */
  assert_int_equal(ky_aug_lab_to_rgb(got, src, 48, 48), KY_OK);
  c = compare_u8(got, back, sizeof got);
  print_cmp("lab->rgb", c);
  assert_true(c.max_diff <= 1 && c.exact >= 0.95);
  free(src); free(lab); free(back);
}

static void test_hsv(void **st) {
  uint8_t *src = fix_u8("src_48x48.png", 3, 48, 48), *hsv = fix_u8("hsv_48x48.png", 3, 48, 48);
  uint8_t *back = fix_u8("hsv2rgb_48x48.png", 3, 48, 48);
  assert_non_null(src); assert_non_null(hsv); assert_non_null(back);
  uint8_t got[48 * 48 * 3];
  assert_int_equal(ky_aug_rgb_to_hsv(got, src, 48, 48), KY_OK);
  assert_memory_equal(got, hsv, sizeof got);
  for (int i = 0; i < 48 * 48; i++) src[3 * i] %= 180;
  assert_int_equal(ky_aug_hsv_to_rgb(got, src, 48, 48), KY_OK);
  cmp_u8 c = compare_u8(got, back, sizeof got);
  print_cmp("hsv->rgb", c);
  assert_true(c.max_diff <= 1);
  /* OpenCV truncates in its vector loop (32 pixels at a time with AVX2) and rounds in each row's
   * scalar tail; we truncate, so the first 32 columns must agree. */
  cmp_u8 head = {0, 0, 0};
  size_t ex = 0;
  for (int y = 0; y < 48; y++)
    for (int t = 0; t < 32 * 3; t++) {
      int d = abs((int)got[y * 48 * 3 + t] - (int)back[y * 48 * 3 + t]);
      head.max_diff = d > head.max_diff ? d : head.max_diff;
      ex += d == 0;
    }
  head.exact = (double)ex / (48 * 32 * 3);
  print_cmp("hsv->rgb cols 0..31", head);
  assert_true(head.exact >= 0.995);
  free(src); free(hsv); free(back);
}

/* CLAHE: 8x8 tiles on a 40x52 plane (padded tiles), 17x17 tiles on 48x48. */
static void test_clahe_plane(void **st) {
  uint8_t *src = fix_u8("src_40x52.png", 3, 40, 52), *exp = fix_u8("clahe_plane_40x52.png", 1, 40, 52);
  assert_non_null(src); assert_non_null(exp);
  uint8_t g[40 * 52];
  ky_aug_rgb_to_gray(g, src, 40, 52);
  assert_int_equal(ky_aug_clahe_plane(g, 40, 52, 2.f, 8), KY_OK);
  cmp_u8 c = compare_u8(g, exp, sizeof g);
  print_cmp("clahe 8x8 40x52", c);
  assert_true(c.max_diff <= 1 && c.exact >= 0.99);
  free(src); free(exp);

  src = fix_u8("src_48x48.png", 3, 48, 48);
  exp = fix_u8("clahe17_plane_48x48.png", 1, 48, 48);
  assert_non_null(src); assert_non_null(exp);
  uint8_t g2[48 * 48];
  ky_aug_rgb_to_gray(g2, src, 48, 48);
  assert_int_equal(ky_aug_clahe_plane(g2, 48, 48, 2.f, 17), KY_OK);
  c = compare_u8(g2, exp, sizeof g2);
  print_cmp("clahe 17x17 48x48", c);
  assert_true(c.max_diff <= 1 && c.exact >= 0.99);
  free(src); free(exp);
}

static void test_clahe_rgb_and_channel(void **st) {
  uint8_t *src = fix_u8("src_48x48.png", 3, 48, 48), *exp = fix_u8("clahe_rgb_48x48.png", 3, 48, 48);
  assert_non_null(src); assert_non_null(exp);
  assert_int_equal(ky_aug_clahe(src, 48, 48, 1.5f, 8), KY_OK);
  cmp_u8 c = compare_u8(src, exp, 48 * 48 * 3);
  print_cmp("clahe on L, rgb", c);
  assert_true(c.max_diff <= 1 && c.exact >= 0.95);
  free(src); free(exp);

  src = fix_u8("src_40x52.png", 3, 40, 52);
  exp = fix_u8("clahe_channel_40x52.png", 1, 40, 52);
  assert_non_null(src); assert_non_null(exp);
  uint8_t ch[40 * 52];
  assert_int_equal(ky_aug_clahe_channel(ch, src, 40, 52), KY_OK);
  c = compare_u8(ch, exp, sizeof ch);
  print_cmp("clahe channel", c);
  assert_true(c.max_diff <= 1 && c.exact >= 0.99);
  free(src); free(exp);
}

/* The channel is inverted exactly when the CLAHE'd L has mean > 127: a white image turns dark. */
static void test_clahe_channel_inversion(void **st) {
  uint8_t rgb[32 * 32 * 3], ch[32 * 32];
  memset(rgb, 250, sizeof rgb);
  for (int i = 0; i < 20; i++) rgb[3 * (i * 32 + i)] = 10;
  assert_int_equal(ky_aug_clahe_channel(ch, rgb, 32, 32), KY_OK);
  long sum = 0;
  for (int i = 0; i < 32 * 32; i++) sum += ch[i];
  assert_true(sum / (32 * 32) <= 127);
}

static void test_errors(void **st) {
  uint8_t buf[16 * 3];
  assert_int_equal(ky_aug_clahe_plane(buf, 4, 4, 2.f, 0), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "tiles must be in 1..64, got 0"));
  assert_int_equal(ky_aug_clahe(NULL, 4, 4, 2.f, 2), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "rgb is NULL"));
  assert_int_equal(ky_aug_rgb_to_lab(buf, buf, 0, 4), KY_ERR_SHAPE);
  assert_non_null(strstr(ky_last_error(), "got 0x4"));
  assert_int_equal(ky_aug_clahe_plane(buf, 4, 4, -1.f, 2), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "clip must be >= 0"));
  /* A side whose padded size overflows an int is refused before the plane is read. */
  assert_int_equal(ky_aug_clahe_plane(buf, INT_MAX - 10, 1, 2.f, 64), KY_ERR_SHAPE);
  assert_non_null(strstr(ky_last_error(), "too large for 64 tiles"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gray_exact),
      cmocka_unit_test(test_lab),
      cmocka_unit_test(test_hsv),
      cmocka_unit_test(test_clahe_plane),
      cmocka_unit_test(test_clahe_rgb_and_channel),
      cmocka_unit_test(test_clahe_channel_inversion),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests_name("aug_color", tests, NULL, NULL);
}

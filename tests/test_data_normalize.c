/* Tests for data/normalize: the four normalisations' values, numpy.pad 'reflect'/'symmetric'
 * cases (expected arrays printed by numpy 1.24 and pasted here), the padding rules of spec 2.4
 * and the crop back. Run by `make test`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/normalize.h"

static void test_normalize_values(void **st) {
  const uint8_t px[6] = {0, 128, 255, 10, 20, 30};
  float o[6];
  assert_int_equal(ky_normalize_u8(o, px, 2, KY_NORM_TORCH), KY_OK);
  assert_true(fabsf(o[0] - (0.f - 0.485f) / 0.229f) < 1e-5f);
  assert_true(fabsf(o[1] - (128 / 255.f - 0.456f) / 0.224f) < 1e-5f);
  assert_true(fabsf(o[2] - (1.f - 0.406f) / 0.225f) < 1e-5f);
  assert_int_equal(ky_normalize_u8(o, px, 2, KY_NORM_CAFFE), KY_OK);
  /* BGR order: first output channel is blue. */
  assert_true(fabsf(o[0] - (255 - 103.939f)) < 1e-4f);
  assert_true(fabsf(o[1] - (128 - 116.779f)) < 1e-4f);
  assert_true(fabsf(o[2] - (0 - 123.68f)) < 1e-4f);
  assert_true(fabsf(o[3] - (30 - 103.939f)) < 1e-4f);
  assert_int_equal(ky_normalize_u8(o, px, 2, KY_NORM_DPN), KY_OK);
  assert_true(fabsf(o[0] - (0 - 124) * 0.0167f) < 1e-5f);
  assert_true(fabsf(o[5] - (30 - 104) * 0.0167f) < 1e-5f);
  /* DPN's formula as written in Albu's code: (x/255 - mean/255) / (1/(0.0167*255)). */
  assert_true(fabsf(o[1] - (128 / 255.f - 117 / 255.f) / (1.f / (0.0167f * 255.f))) < 1e-5f);
  assert_int_equal(ky_normalize_u8(o, px, 2, KY_NORM_TF), KY_OK);
  assert_true(o[0] == -1.f && o[2] == 1.f);
  ky_norm n;
  assert_int_equal(ky_norm_parse(&n, "dpn"), KY_OK);
  assert_int_equal(n, KY_NORM_DPN);
  assert_string_equal(ky_norm_name(KY_NORM_CAFFE), "caffe");
  assert_int_equal(ky_norm_parse(&n, "imagenet"), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "'imagenet'"));
  assert_int_equal(ky_normalize_u8(o, px, 2, (ky_norm)9), KY_ERR_ARG);
}

static void check_1d(int n, int before, int after, ky_pad_mode mode, const int *want) {
  int8_t in[16], out[64];
  for (int i = 0; i < n; i++) in[i] = (int8_t)i;
  ky_pad p = {0, 0, before, after};
  assert_int_equal(ky_pad_image(out, in, 1, n, 1, 1, p, mode), KY_OK);
  for (int i = 0; i < before + n + after; i++) assert_int_equal(out[i], want[i]);
}

static void test_numpy_pad_1d(void **st) {
  /* np.pad(np.arange(3), (8, 9), 'reflect') and 'symmetric' */
  const int r3[] = {0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1};
  const int s3[] = {1, 0, 0, 1, 2, 2, 1, 0, 0, 1, 2, 2, 1, 0, 0, 1, 2, 2, 1, 0};
  check_1d(3, 8, 9, KY_PAD_REFLECT, r3);
  check_1d(3, 8, 9, KY_PAD_SYMMETRIC, s3);
  /* np.pad(np.arange(1), 3, 'reflect'); np.pad(np.arange(2), 5, 'reflect' / 'symmetric') */
  const int r1[] = {0, 0, 0, 0, 0, 0, 0};
  const int r2[] = {1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0};
  const int s2[] = {0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1};
  check_1d(1, 3, 3, KY_PAD_REFLECT, r1);
  check_1d(2, 5, 5, KY_PAD_REFLECT, r2);
  check_1d(2, 5, 5, KY_PAD_SYMMETRIC, s2);
  /* np.pad(np.arange(4), (9, 10), 'reflect') */
  const int r4[] = {3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1};
  check_1d(4, 9, 10, KY_PAD_REFLECT, r4);
}

static void test_numpy_pad_2d(void **st) {
  /* np.pad(np.arange(6).reshape(2, 3), ((3, 2), (1, 4)), 'symmetric') */
  const int s[] = {3, 3, 4, 5, 5, 4, 3, 3, 3, 3, 4, 5, 5, 4, 3, 3, 0, 0, 1, 2, 2, 1, 0, 0, 0, 0, 1, 2, 2, 1, 0, 0,
                   3, 3, 4, 5, 5, 4, 3, 3, 3, 3, 4, 5, 5, 4, 3, 3, 0, 0, 1, 2, 2, 1, 0, 0};
  /* np.pad(np.arange(6).reshape(2, 3), ((1, 2), (2, 1)), 'reflect') */
  const int r[] = {5, 4, 3, 4, 5, 4, 2, 1, 0, 1, 2, 1, 5, 4, 3, 4, 5, 4, 2, 1, 0, 1, 2, 1, 5, 4, 3, 4, 5, 4};
  float in[6], out[7 * 8], back[6];
  for (int i = 0; i < 6; i++) in[i] = (float)i;
  ky_pad ps = {3, 2, 1, 4};
  assert_int_equal(ky_pad_image(out, in, 2, 3, 1, 4, ps, KY_PAD_SYMMETRIC), KY_OK);
  for (int i = 0; i < 56; i++) assert_true(out[i] == (float)s[i]);
  assert_int_equal(ky_pad_crop_back(back, out, 2, 3, 1, 4, ps), KY_OK);
  assert_memory_equal(back, in, sizeof in);
  ky_pad pr = {1, 2, 2, 1};
  assert_int_equal(ky_pad_image(out, in, 2, 3, 1, 4, pr, KY_PAD_REFLECT), KY_OK);
  for (int i = 0; i < 30; i++) assert_true(out[i] == (float)r[i]);
  /* Multi-channel uint8 with zero padding keeps pixels together. */
  const uint8_t rgb[2 * 3] = {1, 2, 3, 4, 5, 6};
  uint8_t z[3 * 3 * 3];
  ky_pad pz = {0, 2, 0, 1};
  assert_int_equal(ky_pad_image(z, rgb, 1, 2, 3, 1, pz, KY_PAD_ZERO), KY_OK);
  const uint8_t wz[27] = {1, 2, 3, 4, 5, 6, 0, 0, 0};
  assert_memory_equal(z, wz, sizeof wz);
}

static void test_pad_rules(void **st) {
  ky_pad a = ky_pad_rule_albu(256, 520);
  assert_int_equal(a.top, 0);
  assert_int_equal(a.left, 0);
  assert_int_equal(a.bottom, 32);   /* already a multiple: a full 32 */
  assert_int_equal(a.right, 24);
  ky_pad s = ky_pad_rule_selim(256, 603);   /* 603 % 32 = 27: 5 -> 2 + 3 */
  assert_int_equal(s.top, 16);
  assert_int_equal(s.bottom, 16);
  assert_int_equal(s.left, 18);
  assert_int_equal(s.right, 19);
  ky_pad t = ky_pad_rule_to32(520, 696);    /* 520 % 32 = 8: 24 -> 12 + 12; 696 % 32 = 24: 8 -> 4 + 4 */
  assert_int_equal(t.top, 12);
  assert_int_equal(t.bottom, 12);
  assert_int_equal(t.left, 4);
  assert_int_equal(t.right, 4);
  assert_int_equal((520 + t.top + t.bottom) % 32, 0);
  ky_pad t2 = ky_pad_rule_to32(257, 256);   /* 31 -> 15 + 16 */
  assert_int_equal(t2.top, 15);
  assert_int_equal(t2.bottom, 16);
  assert_int_equal(t2.left + t2.right, 0);
}

static void test_pad_errors(void **st) {
  float a[4] = {0}, b[64];
  ky_pad p = {1, 1, -1, 0};
  assert_int_equal(ky_pad_image(b, a, 2, 2, 1, 4, p, KY_PAD_REFLECT), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "negative"));
  ky_pad q = {1, 1, 1, 1};
  assert_int_equal(ky_pad_image(b, NULL, 2, 2, 1, 4, q, KY_PAD_REFLECT), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "in is NULL"));
  assert_int_equal(ky_pad_image(b, a, 0, 2, 1, 4, q, KY_PAD_REFLECT), KY_ERR_SHAPE);
  assert_int_equal(ky_pad_image(b, a, 2, 2, 1, 3, q, KY_PAD_REFLECT), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "element size 3"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_normalize_values),
      cmocka_unit_test(test_numpy_pad_1d),
      cmocka_unit_test(test_numpy_pad_2d),
      cmocka_unit_test(test_pad_rules),
      cmocka_unit_test(test_pad_errors),
  };
  return cmocka_run_group_tests_name("data_normalize", tests, NULL, NULL);
}

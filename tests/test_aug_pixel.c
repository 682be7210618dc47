/* Tests for aug/pixel: filters, HSV shift, stain remap, contrast/brightness against OpenCV / numpy
 * fixtures (tests/fixtures/gen_aug.py); noise statistics and determinism; grey/invert/shuffle
 * properties; argument errors. Run by `make test`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <limits.h>
#include <math.h>

#include "aug/color.h"
#include "aug/pixel.h"
#include "aug/rngfill.h"
#include "test_aug_util.h"

#define N48 (48 * 48 * 3)

/* Runs fn-like code on a fresh copy of src_48x48 and compares with the fixture. */
static uint8_t *src48(void) {
  uint8_t *s = fix_u8("src_48x48.png", 3, 48, 48);
  assert_non_null(s);
  return s;
}

static void check_fixture(const uint8_t *got, const char *name, int max_diff, double min_exact) {
  uint8_t *exp = fix_u8(name, 3, 48, 48);
  assert_non_null(exp);
  cmp_u8 c = compare_u8(got, exp, N48);
  print_cmp(name, c);
  free(exp);
  assert_true(c.max_diff <= max_diff);
  assert_true(c.exact >= min_exact);
}

static void test_median_box_exact(void **st) {
  uint8_t *s = src48();
  assert_int_equal(ky_aug_median3(s, 48, 48), KY_OK);
  check_fixture(s, "median3_48x48.png", 0, 1.0);
  free(s);
  s = src48();
  assert_int_equal(ky_aug_box3(s, 48, 48), KY_OK);
  check_fixture(s, "box3_48x48.png", 0, 1.0);
  free(s);
}

/* Our Bresenham kernel equals cv2.line's pixels for both fixture lines. */
static void test_motion_kernel_and_blur(void **st) {
  float *k1 = fix_f32("motion_kernel_9x9.f32", 81), *k2 = fix_f32("motion_kernel2_9x9.f32", 81);
  assert_non_null(k1); assert_non_null(k2);
  float mine[81];
  assert_int_equal(ky_aug_motion_kernel(mine, 9, 1, 2, 7, 5), KY_OK);
  for (int i = 0; i < 81; i++) assert_true(fabsf(mine[i] - k1[i]) < 1e-6f);
  assert_int_equal(ky_aug_motion_kernel(mine, 9, 8, 0, 0, 8), KY_OK);
  for (int i = 0; i < 81; i++) assert_true(fabsf(mine[i] - k2[i]) < 1e-6f);
  uint8_t *s = src48();
  assert_int_equal(ky_aug_motion_blur(s, 48, 48, k1, 9), KY_OK);
  check_fixture(s, "motion_48x48.png", 1, 0.99);
  free(s); free(k1); free(k2);
}

static void test_sharpen_emboss(void **st) {
  uint8_t *s = src48();
  assert_int_equal(ky_aug_sharpen(s, 48, 48, 0.35f, 0.8f), KY_OK);
  check_fixture(s, "sharpen_48x48.png", 1, 0.99);
  free(s);
  s = src48();
  assert_int_equal(ky_aug_emboss(s, 48, 48, 0.4f, 0.5f), KY_OK);
  check_fixture(s, "emboss_48x48.png", 1, 0.99);
  free(s);
}

static void test_hsv_shift(void **st) {
  uint8_t *s = src48();
  assert_int_equal(ky_aug_hsv_shift(s, 48, 48, 15.f, -20.f, 10.f), KY_OK);
  check_fixture(s, "hsv_shift_p_48x48.png", 1, 0.85);
  free(s);
  s = src48();
  assert_int_equal(ky_aug_hsv_shift(s, 48, 48, -17.f, 25.f, -12.f), KY_OK);
  check_fixture(s, "hsv_shift_n_48x48.png", 1, 0.85);
  free(s);
}

static void test_remap_color(void **st) {
  static const uint8_t bg[3] = {181, 159, 210}, center[3] = {136, 107, 204}, nmax[3] = {80, 20, 105};
  uint8_t *d = fix_u8("dark_48x48.png", 3, 48, 48);
  assert_non_null(d);
  assert_int_equal(ky_aug_remap_color(d, 48, 48, bg, center, nmax), KY_OK);
  check_fixture(d, "remap_color_48x48.png", 0, 1.0);
  free(d);
  /* Bright images (grey mean > 100) are left alone. */
  uint8_t *s = src48(), *orig = src48();
  assert_int_equal(ky_aug_remap_color(s, 48, 48, bg, center, nmax), KY_OK);
  assert_memory_equal(s, orig, N48);
  free(s); free(orig);
}

static void test_contrast_brightness(void **st) {
  uint8_t *s = src48();
  assert_int_equal(ky_aug_contrast(s, 48, 48, 1.15f), KY_OK);
  check_fixture(s, "contrast_48x48.png", 1, 0.99);
  free(s);
  s = src48();
  assert_int_equal(ky_aug_brightness(s, 48, 48, 0.85f), KY_OK);
  check_fixture(s, "brightness_48x48.png", 1, 0.99);
  free(s);
}

static void test_gray_invert_shuffle(void **st) {
  uint8_t *s = src48(), *orig = src48();
  assert_int_equal(ky_aug_invert(s, 48, 48), KY_OK);
  for (int i = 0; i < N48; i++) assert_int_equal(s[i], 255 - orig[i]);
  assert_int_equal(ky_aug_invert(s, 48, 48), KY_OK);
  assert_memory_equal(s, orig, N48);
  /* ToGray: equal channels, mean <= 127 (bright images are inverted). */
  for (int inv = 0; inv < 2; inv++) {
    memcpy(s, orig, N48);
    if (inv) ky_aug_invert(s, 48, 48);
    assert_int_equal(ky_aug_to_gray(s, 48, 48), KY_OK);
    long sum = 0;
    for (int i = 0; i < 48 * 48; i++) {
      assert_int_equal(s[3 * i], s[3 * i + 1]);
      assert_int_equal(s[3 * i], s[3 * i + 2]);
      sum += s[3 * i];
    }
    assert_true(sum <= 127L * 48 * 48);
  }
  int perm[3] = {2, 0, 1};
  memcpy(s, orig, N48);
  assert_int_equal(ky_aug_channel_shuffle(s, 48, 48, perm), KY_OK);
  for (int i = 0; i < 48 * 48; i++)
    for (int c = 0; c < 3; c++) assert_int_equal(s[3 * i + c], orig[3 * i + perm[c]]);
  free(s); free(orig);
}

/* AdditiveGaussianNoise: on a flat mid-grey image the added values have mean ~0 and sd ~sigma,
 * identical across channels; the same (seed, stream) repeats it, another stream does not. */
static void test_additive_noise(void **st) {
  enum { H = 64, W = 64 };
  static uint8_t a[H * W * 3], b[H * W * 3];
  memset(a, 128, sizeof a);
  memset(b, 128, sizeof b);
  ky_rng r1 = ky_rng_make(7, KY_RNG_STREAM_AUG), r2 = ky_rng_make(7, KY_RNG_STREAM_AUG);
  assert_int_equal(ky_aug_additive_gaussian_noise(a, H, W, 8.f, &r1), KY_OK);
  assert_int_equal(ky_aug_additive_gaussian_noise(b, H, W, 8.f, &r2), KY_OK);
  assert_memory_equal(a, b, sizeof a);
  double s1 = 0, s2 = 0;
  for (int i = 0; i < H * W; i++) {
    assert_int_equal(a[3 * i], a[3 * i + 1]);
    double d = a[3 * i] - 128.0;
    s1 += d; s2 += d * d;
  }
  double mean = s1 / (H * W), sd = sqrt(s2 / (H * W) - mean * mean);
  printf("  additive noise: mean %.3f sd %.3f (sigma 8)\n", mean, sd);
  assert_true(fabs(mean) < 0.5 && fabs(sd - 8.0) < 0.5);
  ky_rng r3 = ky_rng_make(7, KY_RNG_STREAM_AUG + (1 << 8));
  memset(b, 128, sizeof b);
  ky_aug_additive_gaussian_noise(b, H, W, 8.f, &r3);
  assert_memory_not_equal(a, b, sizeof a);
}

/* GaussNoise only adds (shifted to min 0) and never exceeds the image's own maximum. */
static void test_gauss_noise(void **st) {
  uint8_t *s = src48(), *orig = src48();
  int mx = 0;
  for (int i = 0; i < N48; i++) mx = orig[i] > mx ? orig[i] : mx;
  ky_rng r = ky_rng_make(3, 9);
  assert_int_equal(ky_aug_gauss_noise(s, 48, 48, 30.f, &r), KY_OK);
  long changed = 0;
  for (int i = 0; i < N48; i++) {
    assert_true(s[i] >= orig[i] || orig[i] > mx);
    assert_true(s[i] <= mx);
    changed += s[i] != orig[i];
  }
  assert_true(changed > N48 / 2);
  free(s); free(orig);
}

/* The ziggurat normals: moments, the 1-sigma mass and both tails (1M draws); bulk words equal
 * successive ky_rng_u32 calls. */
static void test_normal_generator(void **st) {
  enum { N = 1 << 20 };
  float *z = malloc(N * sizeof *z);
  ky_rng r = ky_rng_make(12, 34);
  assert_int_equal(ky_aug_fill_normal(z, N, &r), KY_OK);
  assert_int_equal(r.index % 256, 0);
  double s1 = 0, s2 = 0;
  long in1 = 0, out3 = 0, out4 = 0;
  for (int i = 0; i < N; i++) {
    double v = z[i];
    s1 += v; s2 += v * v;
    in1 += fabs(v) < 1;
    out3 += fabs(v) > 3;
    out4 += fabs(v) > 4;
  }
  double mean = s1 / N, var = s2 / N - mean * mean;
  printf("  normals: mean %.4f var %.4f P(|z|<1) %.4f P(|z|>3) %.5f n(|z|>4) %ld\n", mean, var,
         (double)in1 / N, (double)out3 / N, out4);
  assert_true(fabs(mean) < 0.005 && fabs(var - 1) < 0.01);
  assert_true(fabs((double)in1 / N - 0.682689) < 0.003);
  assert_true(fabs((double)out3 / N - 0.0026998) < 0.0003);
  assert_true(out4 >= 30 && out4 <= 110); /* expected 66 */
  free(z);
  /* Bulk words (scalar, 4-word and 8-block paths) equal successive ky_rng_u32 calls, also where
   * the block counter's low word wraps inside an 8-block batch. */
  uint64_t starts[2] = {1, ((uint64_t)1 << 34) - 4 * 5};
  for (int t = 0; t < 2; t++) {
    uint32_t a[301];
    ky_rng r1 = {0x1234567890abcdefull, (7ull << 40) + 3, starts[t]}, r2 = r1;
    ky_aug_fill_u32(&r1, a, 301);
    for (int i = 0; i < 301; i++) assert_int_equal(a[i], ky_rng_u32(&r2));
    assert_int_equal(r1.index, r2.index);
  }
}

static void test_errors(void **st) {
  uint8_t buf[27];
  float k[9] = {0};
  assert_int_equal(ky_aug_filter2d(buf, 3, 3, k, 2, 3), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "odd-sized up to 31x31, got 2x3"));
  assert_int_equal(ky_aug_motion_kernel(k, 3, 0, 0, 3, 1), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "leaves the 3x3 kernel"));
  int perm[3] = {0, 0, 1};
  assert_int_equal(ky_aug_channel_shuffle(buf, 3, 3, perm), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "permutation of 0,1,2, got 0,0,1"));
  assert_int_equal(ky_aug_sharpen(buf, 3, 3, 1.5f, 1.f), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "alpha must be in [0, 1], got 1.5"));
  assert_int_equal(ky_aug_gauss_noise(buf, 3, 3, 10.f, NULL), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "rng is NULL"));
  assert_int_equal(ky_aug_median3(buf, -1, 3), KY_ERR_SHAPE);
  assert_non_null(strstr(ky_last_error(), "got -1x3"));
  /* A side whose padded copy would overflow an int is refused before anything is allocated or read. */
  assert_int_equal(ky_aug_box3(buf, INT_MAX - 1, 1), KY_ERR_SHAPE);
  assert_non_null(strstr(ky_last_error(), "sides must be <="));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_median_box_exact),
      cmocka_unit_test(test_motion_kernel_and_blur),
      cmocka_unit_test(test_sharpen_emboss),
      cmocka_unit_test(test_hsv_shift),
      cmocka_unit_test(test_remap_color),
      cmocka_unit_test(test_contrast_brightness),
      cmocka_unit_test(test_gray_invert_shuffle),
      cmocka_unit_test(test_additive_noise),
      cmocka_unit_test(test_gauss_noise),
      cmocka_unit_test(test_normal_generator),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests_name("aug_pixel", tests, NULL, NULL);
}

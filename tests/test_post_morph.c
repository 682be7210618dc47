/* Tests for post/morph: square / cross dilation and erosion against cv2, scipy and skimage results
 * (both erosion border rules), in-place use and argument errors. Fixtures: tests/fixtures/gen_candidates.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/image.h"
#include "tests/util_test.h"
#include "post/morph.h"

#define FIX "tests/fixtures/candidates/"

/* Channel 0 of a fixture PNG as int32; a missing or broken fixture fails the test. */
static int32_t *load(const char *path, int *h, int *w) {
  int32_t *o = ky_test_load_png_i32(path, h, w);
  if (!o) fail_msg("%s: %s", path, ky_last_error());
  return o;
}

static uint8_t *to_u8(const int32_t *x, size_t n) {
  uint8_t *o = malloc(n);
  for (size_t i = 0; i < n; i++) o[i] = x[i] != 0;
  return o;
}

static void check_morph(const char *name, int op, int k, int border) {
  int h, w, h2, w2;
  int32_t *in = load(FIX "morph_in.png", &h, &w);
  char p[256];
  snprintf(p, sizeof p, FIX "morph_%s.png", name);
  int32_t *want = load(p, &h2, &w2);
  size_t n = (size_t)h * w;
  uint8_t *x = to_u8(in, n), *y = malloc(n);
  ky_status s = op == 0 ? ky_post_dilate_square(y, x, h, w, k)
              : op == 1 ? ky_post_erode_square(y, x, h, w, k, border)
              : op == 2 ? ky_post_dilate_cross(y, x, h, w, k)
                        : ky_post_erode_cross(y, x, h, w, k, border);
  assert_int_equal(s, KY_OK);
  size_t diff = 0;
  for (size_t i = 0; i < n; i++) diff += y[i] != (want[i] != 0);
  if (diff) fail_msg("morph %s: %zu pixels differ", name, diff);
  free(in); free(want); free(x); free(y);
}

static void test_morph(void **st) {
  check_morph("dil_sq7", 0, 7, 0);
  check_morph("cvdil_sq7", 0, 7, 0);
  check_morph("cverode_sq3", 1, 3, 1);
  check_morph("sperode_sq3", 1, 3, 0);
  check_morph("sperode_cr5", 3, 5, 0);
  check_morph("spdil_cr5", 2, 5, 0);
  uint8_t a[4] = {1, 1, 1, 1}, b[4];
  assert_int_equal(ky_post_dilate_square(b, a, 2, 2, 4), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "size is 4"));
  assert_int_equal(ky_post_erode_square(b, a, 2, 2, 3, 2), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "border is 2"));
  /* in place: an all-ones image stays ones under border 1 and empties under border 0 */
  assert_int_equal(ky_post_erode_square(a, a, 2, 2, 3, 1), KY_OK);
  assert_int_equal(a[0] + a[1] + a[2] + a[3], 4);
  assert_int_equal(ky_post_erode_square(a, a, 2, 2, 3, 0), KY_OK);
  assert_int_equal(a[0] + a[1] + a[2] + a[3], 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_morph),
  };
  return cmocka_run_group_tests_name("post_morph", tests, NULL, NULL);
}

/* Tests for post/components: skimage.measure.label numbering on binary and label images, 4 and 8
 * connectivity; small-object removal; sequential relabelling. Fixtures: tests/fixtures/gen_candidates.py. */
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
#include "post/components.h"

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

static void test_label_binary(void **st) {
  int h, w, h2, w2;
  int32_t *bin = load(FIX "comp_bin.png", &h, &w);
  uint8_t *b = to_u8(bin, (size_t)h * w);
  for (int conn = 4; conn <= 8; conn += 4) {
    int32_t *want = load(conn == 4 ? FIX "comp_c4.png" : FIX "comp_c8.png", &h2, &w2);
    int32_t *got = malloc((size_t)h * w * sizeof *got);
    int cnt = 0;
    assert_int_equal(ky_post_label_binary(got, &cnt, b, h, w, conn), KY_OK);
    assert_memory_equal(got, want, (size_t)h * w * sizeof *got);
    int32_t mx = 0;
    assert_int_equal(ky_post_label_max(&mx, want, h, w), KY_OK);
    assert_int_equal(cnt, mx);
    assert_true(cnt > 5);
    free(want); free(got);
  }
  free(bin); free(b);
}

static void test_label_image(void **st) {
  int h, w, h2, w2;
  int32_t *lab = load(FIX "comp_lab.png", &h, &w);
  for (int conn = 4; conn <= 8; conn += 4) {
    int32_t *want = load(conn == 4 ? FIX "comp_lab_c4.png" : FIX "comp_lab_c8.png", &h2, &w2);
    int32_t *got = malloc((size_t)h * w * sizeof *got);
    int cnt = 0;
    assert_int_equal(ky_post_label_image(got, &cnt, lab, h, w, conn), KY_OK);
    assert_memory_equal(got, want, (size_t)h * w * sizeof *got);
    free(want); free(got);
  }
  assert_int_equal(ky_post_label_image(lab, &h2, lab, h, w, 8), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "different buffers"));
  free(lab);
}

static void test_remove_small_and_relabel(void **st) {
  int32_t lab[12] = {1, 1, 0, 3, 3, 3, 0, 5, 5, 5, 5, 0};
  assert_int_equal(ky_post_remove_small(lab, 3, 4, 5, 3), KY_OK);   /* label 1 has 2 px */
  int32_t want[12] = {0, 0, 0, 3, 3, 3, 0, 5, 5, 5, 5, 0};
  assert_memory_equal(lab, want, sizeof want);
  int cnt = 0;
  assert_int_equal(ky_post_relabel_sequential(lab, &cnt, 3, 4, 5), KY_OK);
  int32_t want2[12] = {0, 0, 0, 1, 1, 1, 0, 2, 2, 2, 2, 0};
  assert_memory_equal(lab, want2, sizeof want2);
  assert_int_equal(cnt, 2);
  lab[0] = 9;
  assert_int_equal(ky_post_relabel_sequential(lab, &cnt, 3, 4, 5), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "label 9, expected 0..5"));
  uint8_t b[4] = {1, 0, 0, 1};
  int32_t o[4];
  assert_int_equal(ky_post_label_binary(o, &cnt, b, 2, 2, 6), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "connectivity is 6"));
  assert_int_equal(ky_post_label_binary(o, &cnt, b, 2, 2, 8), KY_OK);
  assert_int_equal(cnt, 1);
  assert_int_equal(ky_post_label_binary(o, &cnt, b, 2, 2, 4), KY_OK);
  assert_int_equal(cnt, 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_label_binary),
      cmocka_unit_test(test_label_image),
      cmocka_unit_test(test_remove_small_and_relabel),
  };
  return cmocka_run_group_tests_name("post_components", tests, NULL, NULL);
}

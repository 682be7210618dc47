/* Tests for core/image: 8- and 16-bit PNG round trips (grey, RGB, RGBA), conversion on load,
 * and errors for missing, empty, truncated and non-image files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/image.h"
#include "tests/util_test.h"

static void test_round_trips(void **st) {
  char *dir = ky_test_tmpdir("img");
  char path[300];
  snprintf(path, sizeof path, "%s/a.png", dir);
  for (int c = 1; c <= 4; c++) {
    for (int depth = 8; depth <= 16; depth += 8) {
      ky_image im, back;
      assert_int_equal(ky_image_alloc(&im, 13, 7, c, depth), KY_OK);
      for (int i = 0; i < 13 * 7 * c; i++) {
        if (depth == 8) ((uint8_t *)im.data)[i] = (uint8_t)(i * 37);
        else ((uint16_t *)im.data)[i] = (uint16_t)(i * 977 + 3);
      }
      assert_int_equal(ky_image_save_png(path, &im), KY_OK);
      assert_int_equal(ky_image_load(&back, path), KY_OK);
      assert_int_equal(back.w, 13);
      assert_int_equal(back.h, 7);
      assert_int_equal(back.c, c);
      assert_int_equal(back.depth, depth);
      assert_memory_equal(back.data, im.data, (size_t)13 * 7 * c * depth / 8);
      ky_image_free(&im);
      ky_image_free(&back);
    }
  }
  /* Grey loaded as RGB replicates the channel. */
  uint8_t g[4] = {0, 100, 200, 255};
  assert_int_equal(ky_png_save_u8(path, g, 2, 2, 1), KY_OK);
  ky_image rgb;
  assert_int_equal(ky_image_load_u8(&rgb, path, 3), KY_OK);
  assert_int_equal(rgb.c, 3);
  assert_int_equal(((uint8_t *)rgb.data)[3 * 2 + 1], 200);
  ky_image_free(&rgb);
  ky_test_rmdir(dir);
  free(dir);
}

static void test_errors_name_the_file(void **st) {
  char *dir = ky_test_tmpdir("imgbad");
  char path[300];
  ky_image im;
  assert_int_equal(ky_image_load(&im, "/nonexistent/x.png"), KY_ERR_IO);
  assert_non_null(strstr(ky_last_error(), "/nonexistent/x.png"));
  snprintf(path, sizeof path, "%s/empty.png", dir);
  assert_int_equal(ky_file_write_atomic(path, "", 0), KY_OK);
  assert_int_equal(ky_image_load(&im, path), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "empty.png"));
  /* A truncated PNG: the first 40 bytes of a real one. */
  uint8_t px[64 * 64];
  for (int i = 0; i < 64 * 64; i++) px[i] = (uint8_t)(i * 7);
  snprintf(path, sizeof path, "%s/full.png", dir);
  assert_int_equal(ky_png_save_u8(path, px, 64, 64, 1), KY_OK);
  char *buf;
  size_t n;
  assert_int_equal(ky_file_read_all(path, &buf, &n), KY_OK);
  snprintf(path, sizeof path, "%s/trunc.png", dir);
  assert_int_equal(ky_file_write_atomic(path, buf, 40), KY_OK);
  free(buf);
  assert_int_equal(ky_image_load(&im, path), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "trunc.png"));
  snprintf(path, sizeof path, "%s/text.png", dir);
  assert_int_equal(ky_file_write_atomic(path, "not an image at all", 19), KY_OK);
  assert_int_equal(ky_image_load(&im, path), KY_ERR_FORMAT);
  ky_image bad = {0, 0, 3, 8, px};
  assert_int_equal(ky_image_save_png(path, &bad), KY_ERR_ARG);
  ky_test_rmdir(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trips),
      cmocka_unit_test(test_errors_name_the_file),
  };
  return cmocka_run_group_tests_name("core_image", tests, NULL, NULL);
}

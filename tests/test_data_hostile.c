/* Hostile files met by the readers: images that declare a huge size (refused from the header,
 * before decoding), masks that are not PNGs or hold their shape only in alpha, palette label
 * maps, image folders where two files give one id, and solution CSVs with huge sizes. Each case
 * was read without a word (or took gigabytes) before its fix. Library calls only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/image.h"
#include "data/dsb.h"
#include "pipeline/infer.h"
#include "post/rle.h"
#include "tests/util_test.h"

static char *dir;

static void must(ky_status s) {
  if (s != KY_OK) fail_msg("%s", ky_last_error());
}

static void expect_err(ky_status s, const char *needle) {
  if (s == KY_OK) fail_msg("accepted; expected an error with '%s'", needle);
  if (!strstr(ky_last_error(), needle)) fail_msg("message '%s' lacks '%s'", ky_last_error(), needle);
}

/* Overwrites the big-endian IHDR width and height of a PNG file (stb does not check CRCs). */
static void patch_ihdr_size(const char *path, uint32_t w, uint32_t h) {
  char *b;
  size_t n;
  must(ky_file_read_all(path, &b, &n));
  uint8_t *u = (uint8_t *)b;
  for (int k = 0; k < 4; k++) { u[16 + k] = (uint8_t)(w >> (24 - 8 * k)); u[20 + k] = (uint8_t)(h >> (24 - 8 * k)); }
  must(ky_file_write_atomic(path, b, n));
  free(b);
}

static void test_image_size_limit_before_decoding(void **st) {
  char p[512];
  snprintf(p, sizeof p, "%s/bomb.png", dir);
  uint8_t px[64] = {0};
  must(ky_png_save_u8(p, px, 8, 8, 1));
  patch_ihdr_size(p, 20000, 20000);
  ky_image im;
  expect_err(ky_image_load(&im, p), "declares 20000 x 20000 = 400000000 pixels, above the limit of 67108864");
  /* The limit is the environment's when set: a lowered one refuses a small real image. */
  must(ky_png_save_u8(p, px, 8, 8, 1));
  setenv("KY_MAX_IMAGE_PIXELS", "63", 1);
  expect_err(ky_image_load(&im, p), "declares 8 x 8 = 64 pixels, above the limit of 63");
  setenv("KY_MAX_IMAGE_PIXELS", "64", 1);
  must(ky_image_load(&im, p));
  ky_image_free(&im);
  unsetenv("KY_MAX_IMAGE_PIXELS");
  /* The solution CSV's Height x Width is held to the same limit. */
  snprintf(p, sizeof p, "%s/sol.csv", dir);
  const char *csv = "ImageId,EncodedPixels,Height,Width\na,1 1,65536,65536\n";
  must(ky_file_write_atomic(p, csv, strlen(csv)));
  ky_rle_csv c;
  expect_err(ky_rle_csv_read(&c, p), "sol.csv:2: Height x Width = 65536 x 65536 is above the image limit");
}

/* A one-sample DSB folder whose single mask file holds `mask` bytes (n of them). */
static void make_sample(const char *root, const void *mask, size_t n) {
  char p[700];
  snprintf(p, sizeof p, "%s/s1/images", root);
  must(ky_mkdirs(p));
  snprintf(p, sizeof p, "%s/s1/masks", root);
  must(ky_mkdirs(p));
  uint8_t rgb[4 * 4 * 3] = {0};
  snprintf(p, sizeof p, "%s/s1/images/s1.png", root);
  must(ky_png_save_u8(p, rgb, 4, 4, 3));
  snprintf(p, sizeof p, "%s/s1/masks/m1.png", root);
  must(ky_file_write_atomic(p, mask, n));
}

static void test_masks_must_be_png_with_the_shape_in_colour(void **st) {
  char root[600], p[700];
  ky_dsb_sample s;
  snprintf(root, sizeof root, "%s/jpeg", dir);
  const uint8_t jpeg[] = {0xff, 0xd8, 0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0,
                          0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  make_sample(root, jpeg, sizeof jpeg);
  expect_err(ky_dsb_load(&s, root, "s1", KY_DSB_MASKS_REQUIRED), "mask is not a PNG file (it holds JPEG data)");
  /* RGBA mask: colour all zero, the nucleus only in alpha. */
  snprintf(root, sizeof root, "%s/alpha", dir);
  make_sample(root, "x", 1);
  uint8_t rgba[4 * 4 * 4] = {0};
  rgba[5 * 4 + 3] = rgba[6 * 4 + 3] = 255;
  snprintf(p, sizeof p, "%s/s1/masks/m1.png", root);
  must(ky_png_save_u8(p, rgba, 4, 4, 4));
  expect_err(ky_dsb_load(&s, root, "s1", KY_DSB_MASKS_REQUIRED), "alpha channel holds the shape");
  /* The same shape in the colour channels (opaque) loads. */
  rgba[5 * 4] = rgba[6 * 4] = 255;
  for (int i = 0; i < 16; i++) rgba[i * 4 + 3] = 255;
  must(ky_png_save_u8(p, rgba, 4, 4, 4));
  must(ky_dsb_load(&s, root, "s1", KY_DSB_MASKS_REQUIRED));
  assert_int_equal(s.n_labels, 1);
  assert_int_equal(s.labels[5], 1);
  assert_int_equal(s.labels[4], 0);
  ky_dsb_sample_free(&s);
}

static void test_palette_label_map_refused(void **st) {
  char p[600];
  snprintf(p, sizeof p, "%s/labels.png", dir);
  uint8_t lab[16] = {0, 1, 2, 3};
  must(ky_png_save_u8(p, lab, 4, 4, 1));
  char *b;
  size_t n;
  must(ky_file_read_all(p, &b, &n));
  b[25] = 3;   /* IHDR colour type: palette */
  must(ky_file_write_atomic(p, b, n));
  free(b);
  uint16_t *l;
  int h, w;
  expect_err(ky_dsb_read_labels(&l, &h, &w, p), "label map is a palette (indexed-colour) PNG");
}

static void test_one_id_from_two_files(void **st) {
  char sub[600], p[700];
  snprintf(sub, sizeof sub, "%s/flat", dir);
  must(ky_mkdirs(sub));
  uint8_t px[3 * 4] = {0};
  snprintf(p, sizeof p, "%s/x.png", sub);
  must(ky_png_save_u8(p, px, 2, 2, 3));
  snprintf(p, sizeof p, "%s/y.png", sub);
  must(ky_png_save_u8(p, px, 2, 2, 3));
  char **ids, **paths;
  int n;
  must(ky_infer_list(&ids, &paths, &n, sub));
  assert_int_equal(n, 2);
  ky_infer_list_free(ids, paths, n);
  snprintf(p, sizeof p, "%s/x.PNG", sub);
  must(ky_png_save_u8(p, px, 2, 2, 3));
  expect_err(ky_infer_list(&ids, &paths, &n, sub), "both give the image id 'x'");
}

/* A looping link or a device in place of an image says so (it used to be "missing image file"). */
static void test_image_links_and_devices(void **st) {
  char root[600], p[700];
  snprintf(root, sizeof root, "%s/links", dir);
  make_sample(root, "x", 1);
  snprintf(p, sizeof p, "%s/s1/images/s1.png", root);
  unlink(p);
  assert_int_equal(symlink(p, p), 0);
  ky_dsb_sample s;
  expect_err(ky_dsb_load(&s, root, "s1", KY_DSB_MASKS_SKIP), "cannot follow the link: Too many levels of symbolic links");
  unlink(p);
  assert_int_equal(symlink("/dev/zero", p), 0);
  expect_err(ky_dsb_load(&s, root, "s1", KY_DSB_MASKS_SKIP), "s1.png is not a regular file (a device");
}

/* CSVs saved by spreadsheet programs: a BOM and CRLF read as plain text; binary garbage in a
 * header is echoed escaped. */
static void test_csv_bom_and_binary_header(void **st) {
  char p[600];
  snprintf(p, sizeof p, "%s/sub.csv", dir);
  const char *bom = "\xef\xbb\xbfImageId,EncodedPixels\r\na,1 2\r\n";
  must(ky_file_write_atomic(p, bom, strlen(bom)));
  ky_rle_csv c;
  must(ky_rle_csv_read(&c, p));
  assert_int_equal(c.n, 1);
  assert_string_equal(c.rows[0].image_id, "a");
  ky_rle_csv_free(&c);
  const char *bin = "\x1b[31mImage\x01,x\n";
  must(ky_file_write_atomic(p, bin, strlen(bin)));
  expect_err(ky_rle_csv_read(&c, p), "header is \"\\x1b[31mImage\\x01,x\"");
}

/* Inputs the fuzzers found that make the system's stb_image 2.27 misbehave are refused first. */
static void test_stb_gaps_closed(void **st) {
  ky_image im;
  expect_err(ky_image_load(&im, "tests/fuzz/corpus/image/regress_jpeg_huffman_overflow"),
             "JPEG images are not read");   /* stb 2.27's JPEG decoder wrote past its Huffman table */
  expect_err(ky_image_load(&im, "tests/fuzz/corpus/labels/regress_png_huge_idat"),
             "PNG chunk 'IDAT' at byte ");   /* a tiny file made stb allocate 2 GB */
  /* A top-down BMP: stb 2.27 reports its height negative, which once slipped past the limit. */
  setenv("KY_MAX_IMAGE_PIXELS", "65536", 1);
  expect_err(ky_image_load(&im, "tests/fuzz/corpus/image/regress_bmp_negative_height"),
             "declares 4737293 x 7 = 33161051 pixels, above the limit of 65536");
  unsetenv("KY_MAX_IMAGE_PIXELS");
  /* A 1 x 1 PNG whose data inflates to 16 MB: stopped at about 1 MB, not inflated whole. */
  expect_err(ky_image_load(&im, "tests/fuzz/corpus/image/seed_zlib_bomb.png"),
             "needs more memory than its declared 1 x 1 pixels allow");
}

KY_TEST_TMPDIR_FIXTURES("hostile_data")

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_image_size_limit_before_decoding),
      cmocka_unit_test(test_masks_must_be_png_with_the_shape_in_colour),
      cmocka_unit_test(test_palette_label_map_refused),
      cmocka_unit_test(test_one_id_from_two_files),
      cmocka_unit_test(test_image_links_and_devices),
      cmocka_unit_test(test_csv_bom_and_binary_header),
      cmocka_unit_test(test_stb_gaps_closed),
  };
  return cmocka_run_group_tests_name("data_hostile", tests, setup, teardown);
}

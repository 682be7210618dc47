/* Tests for data/targets: pixel-exact equality with the skimage/scipy golden fixtures of
 * tests/fixtures/gen_targets.py (watershed lines, body, separation), the 8-connected relabel,
 * output encodings and bad arguments. Run by `make test` from the repository root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/image.h"
#include "data/dsb.h"
#include "data/targets.h"

#define FIX "tests/fixtures/targets/"

static const char *const k_cases[] = {"touching", "big", "tiny", "random1", "random2", "real_f", "real_b"};

static uint8_t *load_u8(const char *name, const char *kind, int h, int w) {
  char path[512];
  snprintf(path, sizeof path, FIX "%s_%s.png", name, kind);
  ky_image im;
  assert_int_equal(ky_image_load(&im, path), KY_OK);
  assert_int_equal(im.c, 1);
  assert_int_equal(im.depth, 8);
  assert_int_equal(im.h, h);
  assert_int_equal(im.w, w);
  return im.data;
}

static size_t count_diff(const uint8_t *a, const uint8_t *b, size_t n) {
  size_t d = 0;
  for (size_t i = 0; i < n; i++) d += (a[i] != 0) != (b[i] != 0);
  return d;
}

static void test_golden_fixtures(void **st) {
  for (size_t c = 0; c < sizeof k_cases / sizeof *k_cases; c++) {
    const char *name = k_cases[c];
    char path[512];
    snprintf(path, sizeof path, FIX "%s_labels.png", name);
    uint16_t *lab;
    int h, w;
    assert_int_equal(ky_dsb_read_labels(&lab, &h, &w, path), KY_OK);
    size_t np = (size_t)h * w;
    uint8_t *want_body = load_u8(name, "body", h, w), *want_sep = load_u8(name, "sep", h, w);
    uint8_t *want_lines = load_u8(name, "lines", h, w);
    uint8_t *body = malloc(np), *sep = malloc(np), *full = malloc(np), *lines = malloc(np), *f = malloc(np);
    int32_t *rl = malloc(np * sizeof *rl);
    /* Watershed lines alone (before the 7x7 dilation). */
    int n;
    assert_int_equal(ky_targets_relabel8(rl, &n, lab, h, w), KY_OK);
    assert_true(n > 0);
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++) {
        int on = 0;
        for (int yy = y - 4; yy <= y + 4; yy++)
          for (int xx = x - 4; xx <= x + 4; xx++)
            if (yy >= 0 && yy < h && xx >= 0 && xx < w && lab[(size_t)yy * w + xx]) on = 1;
        f[(size_t)y * w + x] = (uint8_t)on;
      }
    assert_int_equal(ky_targets_watershed_lines(lines, f, rl, h, w), KY_OK);
    size_t d_lines = count_diff(lines, want_lines, np);
    assert_int_equal(ky_targets_make(body, sep, full, lab, h, w), KY_OK);
    size_t d_body = 0, d_sep = 0, d_full = 0, n_sep = 0;
    for (size_t i = 0; i < np; i++) {
      d_body += body[i] != want_body[i];
      d_sep += sep[i] != want_sep[i];
      d_full += full[i] != (lab[i] ? 255 : 0);
      n_sep += sep[i] != 0;
    }
    if (d_lines || d_body || d_sep || d_full)
      print_error("%s: %zu line, %zu body, %zu sep, %zu full pixels differ\n", name, d_lines, d_body, d_sep, d_full);
    assert_int_equal(d_lines, 0);
    assert_int_equal(d_body, 0);
    assert_int_equal(d_sep, 0);
    assert_int_equal(d_full, 0);
    assert_true(n_sep > 0);  /* every case has nuclei close enough to separate */
    /* NULL outputs are allowed and do not change the others. */
    memset(sep, 7, np);
    assert_int_equal(ky_targets_make(NULL, sep, NULL, lab, h, w), KY_OK);
    assert_memory_equal(sep, want_sep, np);
    free(lab); free(want_body); free(want_sep); free(want_lines);
    free(body); free(sep); free(full); free(lines); free(f); free(rl);
  }
}

/* The real fixtures' label maps were painted by the generator from the shared sample's masks in
 * sorted order: the DSB reader must paint the same map. */
static void test_reader_paints_like_reference(void **st) {
  uint16_t *want;
  int h, w;
  assert_int_equal(ky_dsb_read_labels(&want, &h, &w, FIX "real_b_labels.png"), KY_OK);
  ky_dsb_ids ids;
  assert_int_equal(ky_dsb_list_ids(&ids, "tests/fixtures/dsb_sample"), KY_OK);
  const char *id = NULL;
  for (int i = 0; i < ids.n; i++)
    if (strncmp(ids.ids[i], "1ec74a26", 8) == 0) id = ids.ids[i];
  assert_non_null(id);
  ky_dsb_sample s;
  assert_int_equal(ky_dsb_load(&s, "tests/fixtures/dsb_sample", id, KY_DSB_MASKS_REQUIRED), KY_OK);
  assert_int_equal(s.h, h);
  assert_int_equal(s.w, w);
  assert_memory_equal(s.labels, want, (size_t)h * w * 2);
  ky_dsb_sample_free(&s);
  ky_dsb_ids_free(&ids);
  free(want);
}

static void test_relabel8_splits_pieces(void **st) {
  /* Label 5 in two pieces that only touch diagonally stays one component; a third piece two
   * pixels away becomes its own component; label 3 touching 5 stays separate. */
  const uint16_t lab[5 * 6] = {
      5, 0, 0, 0, 5, 5,
      0, 5, 0, 0, 0, 0,
      0, 0, 3, 3, 0, 0,
      0, 0, 0, 0, 0, 0,
      7, 7, 0, 0, 0, 0,
  };
  int32_t out[30];
  int n;
  assert_int_equal(ky_targets_relabel8(out, &n, lab, 5, 6), KY_OK);
  assert_int_equal(n, 4);
  assert_int_equal(out[0], 1);
  assert_int_equal(out[7], 1);
  assert_int_equal(out[4], 2);
  assert_int_equal(out[5], 2);
  assert_int_equal(out[14], 3);
  assert_int_equal(out[24], 4);
  assert_int_equal(out[1], 0);
}

static void test_two_touching_squares(void **st) {
  /* Two 4x4 squares side by side (areas 16 < 300, so r = 1 inside): the separation band is the
   * two touching columns (and the background next to the seam within r = 3 of both). */
  enum { H = 12, W = 16 };
  uint16_t lab[H * W] = {0};
  for (int y = 4; y < 8; y++)
    for (int x = 4; x < 12; x++) lab[y * W + x] = x < 8 ? 1 : 2;
  uint8_t body[H * W], sep[H * W];
  assert_int_equal(ky_targets_make(body, sep, NULL, lab, H, W), KY_OK);
  for (int y = 4; y < 8; y++) {
    assert_int_equal(sep[y * W + 7], 255);
    assert_int_equal(sep[y * W + 8], 255);
    assert_int_equal(body[y * W + 7], 0);
    assert_int_equal(body[y * W + 6], 255);   /* r = 1 window of column 6 sees only label 1 */
    assert_int_equal(sep[y * W + 6], 0);
  }
  assert_int_equal(sep[2 * W + 7], 255);      /* background above the seam, r = 3 */
  assert_int_equal(sep[0 * W + 0], 0);
  /* A lone nucleus has no separation at all. */
  memset(lab, 0, sizeof lab);
  lab[5 * W + 5] = 4;
  assert_int_equal(ky_targets_make(body, sep, NULL, lab, H, W), KY_OK);
  for (int i = 0; i < H * W; i++) assert_int_equal(sep[i], 0);
  assert_int_equal(body[5 * W + 5], 255);
}

static void test_encodings(void **st) {
  const uint8_t body[4] = {0, 255, 0, 255}, sep[4] = {0, 0, 255, 255}, full[4] = {0, 255, 255, 255};
  uint8_t cls[4];
  float y[12];
  assert_int_equal(ky_targets_classes(cls, body, sep, 4), KY_OK);
  assert_int_equal(cls[0], 0);
  assert_int_equal(cls[1], 2);
  assert_int_equal(cls[2], 1);
  assert_int_equal(cls[3], 2);
  assert_int_equal(ky_targets_sigmoid(y, body, sep, full, 4), KY_OK);
  const float want[12] = {0, 0, 0, 1, 0, 1, 0, 1, 1, 1, 1, 1};
  for (int i = 0; i < 12; i++) assert_true(y[i] == want[i]);
}

static void test_bad_args(void **st) {
  uint8_t b[4];
  uint16_t lab[4] = {0};
  assert_int_equal(ky_targets_make(b, NULL, NULL, NULL, 2, 2), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "labels"));
  assert_int_equal(ky_targets_make(b, NULL, NULL, lab, 0, 2), KY_ERR_SHAPE);
  assert_non_null(strstr(ky_last_error(), "2x0"));
  assert_int_equal(ky_targets_classes(NULL, b, b, 4), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "cls"));
  /* An empty label map: all outputs zero, no error. */
  uint8_t body[4], sep[4], full[4];
  assert_int_equal(ky_targets_make(body, sep, full, lab, 2, 2), KY_OK);
  for (int i = 0; i < 4; i++) assert_true(!body[i] && !sep[i] && !full[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_golden_fixtures),
      cmocka_unit_test(test_reader_paints_like_reference),
      cmocka_unit_test(test_relabel8_splits_pieces),
      cmocka_unit_test(test_two_touching_squares),
      cmocka_unit_test(test_encodings),
      cmocka_unit_test(test_bad_args),
  };
  return cmocka_run_group_tests_name("data_targets", tests, NULL, NULL);
}

/* Tests for post/candidates: main and level-2 label images identical to the Python reimplementation
 * of spec 7.1/7.2 on skimage/cv2 (tests/fixtures/gen_candidates.py), with and without an extension
 * map and with and without the reference's in-place bbox zeroing; argument errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/image.h"
#include "post/candidates.h"

#define FIX "tests/fixtures/candidates/"

static int32_t *load(const char *path, int *h, int *w) {
  ky_image im;
  if (ky_image_load(&im, path) != KY_OK) fail_msg("%s: %s", path, ky_last_error());
  *h = im.h; *w = im.w;
  int32_t *o = malloc((size_t)im.h * im.w * sizeof *o);
  for (size_t i = 0; i < (size_t)im.h * im.w; i++)
    o[i] = im.depth == 16 ? ((uint16_t *)im.data)[i * im.c] : ((uint8_t *)im.data)[i * im.c];
  ky_image_free(&im);
  return o;
}

static uint8_t *load_u8(const char *path, int *h, int *w) {
  if (access(path, F_OK) != 0) return NULL;
  int32_t *x = load(path, h, w);
  uint8_t *o = malloc((size_t)*h * *w);
  for (size_t i = 0; i < (size_t)*h * *w; i++) o[i] = (uint8_t)x[i];
  free(x);
  return o;
}

static size_t diff_labels(const char *path, const int32_t *got, int h, int w) {
  int h2, w2;
  int32_t *want = load(path, &h2, &w2);
  assert_int_equal(h2, h); assert_int_equal(w2, w);
  size_t d = 0;
  for (size_t i = 0; i < (size_t)h * w; i++) d += got[i] != want[i];
  free(want);
  return d;
}

static void check_image(int k, int zeroing) {
  char p[256];
  int h, w;
  snprintf(p, sizeof p, FIX "img%d_body.png", k);
  uint8_t *B = load_u8(p, &h, &w);
  snprintf(p, sizeof p, FIX "img%d_border.png", k);
  uint8_t *S = load_u8(p, &h, &w);
  snprintf(p, sizeof p, FIX "img%d_full.png", k);
  uint8_t *E = load_u8(p, &h, &w);
  assert_non_null(B); assert_non_null(S);
  assert_true(k == 0 ? E != NULL : E == NULL);
  ky_cand_opts o = ky_cand_opts_default();
  o.ref_bbox_zeroing = zeroing;
  ky_candidates c;
  assert_int_equal(ky_post_candidates(&c, B, S, E, h, w, &o), KY_OK);
  const char *tag = zeroing ? "_z" : "";
  snprintf(p, sizeof p, FIX "img%d%s_main.png", k, tag);
  size_t d = diff_labels(p, c.labels, h, w);
  if (d) fail_msg("img%d%s main: %zu pixels differ", k, tag, d);
  assert_true(c.n > 10);
  int total = 0;
  for (int j = 0; j < KY_POST_LEVELS; j++) {
    snprintf(p, sizeof p, FIX "img%d%s_lvl%d.png", k, tag, j + 1);
    d = diff_labels(p, c.lvl2[j], h, w);
    if (d) fail_msg("img%d%s level %d: %zu pixels differ", k, tag, j + 1, d);
    total += c.n_pieces[j];
    /* bookkeeping: pieces of each parent are contiguous and point back to it */
    for (int i = 0; i < c.n; i++)
      for (int q = 0; q < c.piece_count[j][i]; q++) assert_int_equal(c.piece_parent[j][c.first_piece[j][i] + q], i);
  }
  assert_true(total > c.n);
  int splits = 0;
  for (int i = 0; i < c.n; i++) {
    if (c.bst_j[i]) {
      splits++;
      assert_int_equal(c.piece_count[c.bst_j[i] - 1][i], c.max_regs[i]);
      for (int j = c.bst_j[i]; j < KY_POST_LEVELS; j++) assert_int_equal(c.piece_count[j][i], 0);
    } else {
      assert_int_equal(c.max_regs[i], 1);
    }
  }
  assert_true(splits > 0);
  /* the bucket watershed gives the same candidates on these maps, or nearly */
  o.exact_watershed = 0;
  ky_candidates f;
  assert_int_equal(ky_post_candidates(&f, B, S, E, h, w, &o), KY_OK);
  size_t fd = 0;
  for (size_t i = 0; i < (size_t)h * w; i++) fd += f.labels[i] != c.labels[i];
  print_message("img%d%s: %d main, %d pieces, %d splits; fast watershed moves %zu main pixels\n", k, tag, c.n,
                total, splits, fd);
  ky_post_candidates_free(&f);
  ky_post_candidates_free(&c);
  free(B); free(S); free(E);
}

static void test_with_extension(void **st) { check_image(0, 0); }
static void test_without_extension(void **st) { check_image(1, 0); }
static void test_ref_zeroing(void **st) { check_image(0, 1); check_image(1, 1); }

static void test_empty_and_errors(void **st) {
  uint8_t B[64] = {0}, S[64] = {0};
  ky_candidates c;
  assert_int_equal(ky_post_candidates(&c, B, S, NULL, 8, 8, NULL), KY_OK);
  assert_int_equal(c.n, 0);
  assert_true(c.mean_pred == 0.0);
  ky_post_candidates_free(&c);
  assert_int_equal(ky_post_candidates(&c, B, NULL, NULL, 8, 8, NULL), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "S (separation map) is NULL"));
  assert_int_equal(ky_post_candidates(&c, B, S, NULL, 0, 8, NULL), KY_ERR_SHAPE);
  assert_non_null(strstr(ky_last_error(), "0x8"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_with_extension),
      cmocka_unit_test(test_without_extension),
      cmocka_unit_test(test_ref_zeroing),
      cmocka_unit_test(test_empty_and_errors),
  };
  return cmocka_run_group_tests_name("post_candidates", tests, NULL, NULL);
}

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
#include "tests/util_test.h"
#include "post/candidates.h"
#include "post/select.h"

#define FIX "tests/fixtures/candidates/"

/* Channel 0 of a fixture PNG as int32; a missing or broken fixture fails the test. */
static int32_t *load(const char *path, int *h, int *w) {
  int32_t *o = ky_test_load_png_i32(path, h, w);
  if (!o) fail_msg("%s: %s", path, ky_last_error());
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

/* Selection hand cases on a 1x6 image: candidate 0 = pixels 0..2 split at level 1 into piece 1
 * (pixel 0) and piece 2 (pixels 1, 2); candidate 1 = pixels 3, 4 with a single level-1 piece. */
static void test_select(void **st) {
  int32_t labels[6] = {1, 1, 1, 2, 2, 0}, l1[6] = {1, 2, 2, 3, 3, 0}, l2[6] = {0}, l3[6] = {0};
  int64_t area[2] = {3, 2};
  int bbox[2][4] = {{0, 0, 1, 3}, {0, 3, 1, 5}};
  int bst[2] = {1, 0}, mr[2] = {2, 1}, par[3] = {0, 0, 1}, first1[2] = {0, 2}, cnt1[2] = {2, 1};
  int first0[2] = {-1, -1}, cnt0[2] = {0, 0};
  ky_candidates c;
  memset(&c, 0, sizeof c);
  c.h = 1; c.w = 6; c.n = 2; c.labels = labels; c.area = area; c.bbox = bbox; c.bst_j = bst; c.max_regs = mr;
  c.n_pieces[0] = 3; c.lvl2[0] = l1; c.lvl2[1] = l2; c.lvl2[2] = l3;
  c.piece_parent[0] = par;
  c.first_piece[0] = first1; c.piece_count[0] = cnt1;
  c.first_piece[1] = c.first_piece[2] = first0; c.piece_count[1] = c.piece_count[2] = cnt0;
  ky_features f;
  memset(&f, 0, sizeof f);
  f.rows = 5; f.offset[0] = 0; f.offset[1] = 2; f.offset[2] = 5; f.offset[3] = 5;
  uint16_t out[6];
  int n = 0;
  /* max piece 0.6 > 0.5 (mean 0.5 is not): split; piece 2 (0.4) is under thr 0.45. Candidate 1's
   * single piece (0.95) is never a split: it stays whole with 0.9. */
  double s1[5] = {0.5, 0.9, 0.6, 0.4, 0.95};
  assert_int_equal(ky_post_select(out, &n, &c, &f, s1, 0.45), KY_OK);
  uint16_t w1[6] = {1, 0, 0, 2, 2, 0};
  assert_memory_equal(out, w1, sizeof w1);
  assert_int_equal(n, 2);
  /* pieces do not beat 0.7: candidate 0 kept whole; candidate 1 (0.2) under thr */
  double s2[5] = {0.7, 0.2, 0.6, 0.4, 0.95};
  assert_int_equal(ky_post_select(out, &n, &c, &f, s2, 0.3), KY_OK);
  uint16_t w2[6] = {1, 1, 1, 0, 0, 0};
  assert_memory_equal(out, w2, sizeof w2);
  assert_int_equal(n, 1);
  /* thr is strict: a score equal to it is dropped */
  double s3[5] = {0.3, 0.31, 0.1, 0.1, 0.0};
  assert_int_equal(ky_post_select(out, &n, &c, &f, s3, 0.3), KY_OK);
  uint16_t w3[6] = {0, 0, 0, 1, 1, 0};
  assert_memory_equal(out, w3, sizeof w3);
  f.rows = 4;
  assert_int_equal(ky_post_select(out, &n, &c, &f, s3, 0.3), KY_ERR_SHAPE);
  assert_non_null(strstr(ky_last_error(), "4 rows, candidates have 5"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_with_extension),
      cmocka_unit_test(test_without_extension),
      cmocka_unit_test(test_ref_zeroing),
      cmocka_unit_test(test_empty_and_errors),
      cmocka_unit_test(test_select),
  };
  return cmocka_run_group_tests_name("post_candidates", tests, NULL, NULL);
}

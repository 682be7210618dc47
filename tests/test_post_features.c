/* Tests for post/features: the 41-column table and IoU targets against the Python reimplementation
 * (tests/fixtures/gen_candidates.py: skimage regionprops + cv2 contours). Non-shape columns (areas,
 * ratios, V statistics, mean_pred, border flag, counts, medians, neighbours, bst_j, max_regs,
 * siblings, level) and targets must agree to 1e-9 relative; the shape columns, which come from
 * post/regionprops, to 1e-6 relative (the first mismatches are printed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/image.h"
#include "tests/util_test.h"
#include "post/features.h"

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

/* Reads level,parent,f0..f40,target rows; returns the row count. */
static int read_csv(const char *path, double *v, int max_rows) {
  FILE *f = fopen(path, "r");
  if (!f) fail_msg("cannot open %s", path);
  char line[8192];
  int n = 0;
  if (!fgets(line, sizeof line, f)) fail_msg("%s is empty", path);
  while (fgets(line, sizeof line, f) && n < max_rows) {
    char *p = line;
    for (int k = 0; k < 44; k++) { v[(size_t)n * 44 + k] = strtod(p, &p); if (*p == ',') p++; }
    n++;
  }
  fclose(f);
  return n;
}

static int is_shape(int k) { return (k >= 2 && k <= 14) || (k >= 17 && k <= 19); }

static int close_to(double a, double b, double rel) { return fabs(a - b) <= rel * fmax(1.0, fmax(fabs(a), fabs(b))); }

static void check_image(int k, int zeroing) {
  char p[256];
  int h, w;
  snprintf(p, sizeof p, FIX "img%d_body.png", k);
  uint8_t *B = load_u8(p, &h, &w);
  snprintf(p, sizeof p, FIX "img%d_border.png", k);
  uint8_t *S = load_u8(p, &h, &w);
  snprintf(p, sizeof p, FIX "img%d_full.png", k);
  uint8_t *E = load_u8(p, &h, &w);
  snprintf(p, sizeof p, FIX "img%d_gt.png", k);
  int32_t *gt = load(p, &h, &w);
  ky_cand_opts o = ky_cand_opts_default();
  o.ref_bbox_zeroing = zeroing;
  ky_candidates c;
  assert_int_equal(ky_post_candidates(&c, B, S, E, h, w, &o), KY_OK);
  ky_features f;
  assert_int_equal(ky_post_features(&f, &c), KY_OK);
  double *y = malloc((size_t)f.rows * sizeof *y);
  assert_int_equal(ky_post_iou_targets(y, &c, &f, gt, h, w), KY_OK);

  snprintf(p, sizeof p, FIX "img%d%s_feat.csv", k, zeroing ? "_z" : "");
  double *want = malloc((size_t)4096 * 44 * sizeof *want);
  int rows = read_csv(p, want, 4096);
  assert_int_equal(rows, f.rows);
  int shape_bad = 0, nonzero_t = 0;
  for (int r = 0; r < rows; r++) {
    const double *wr = want + (size_t)r * 44, *gr = f.x + (size_t)r * KY_POST_NFEAT;
    assert_int_equal(f.meta[r].level, (int)wr[0]);
    assert_int_equal(f.meta[r].parent, (int)wr[1]);
    for (int q = 0; q < KY_POST_NFEAT; q++) {
      if (is_shape(q)) {
        if (!close_to(gr[q], wr[2 + q], 1e-6)) {
          if (shape_bad < 8) print_message("img%d row %d f%d: got %.9g want %.9g\n", k, r, q, gr[q], wr[2 + q]);
          shape_bad++;
        }
      } else if (!close_to(gr[q], wr[2 + q], 1e-9)) {
        fail_msg("img%d%s row %d (level %d) feature %d: got %.12g want %.12g", k, zeroing ? "_z" : "", r,
                 f.meta[r].level, q, gr[q], wr[2 + q]);
      }
    }
    if (!close_to(y[r], wr[43], 1e-12)) fail_msg("img%d row %d target: got %.12g want %.12g", k, r, y[r], wr[43]);
    nonzero_t += y[r] > 0;
  }
  assert_true(nonzero_t > rows / 4);
  print_message("img%d%s: %d rows, %d with IoU > 0.5; shape features off by > 1e-6: %d of %d\n", k,
                zeroing ? "_z" : "", rows, nonzero_t, shape_bad, rows * 16);
  assert_int_equal(shape_bad, 0);
  free(want); free(y);
  ky_post_features_free(&f);
  ky_post_candidates_free(&c);
  free(B); free(S); free(E); free(gt);
}

static void test_features_ext(void **st) { check_image(0, 0); }
static void test_features_noext(void **st) { check_image(1, 0); }
static void test_features_zeroing(void **st) { check_image(0, 1); check_image(1, 1); }

static void test_errors(void **st) {
  ky_features f;
  ky_candidates c;
  memset(&c, 0, sizeof c);
  assert_int_equal(ky_post_features(&f, &c), KY_ERR_STATE);
  assert_non_null(strstr(ky_last_error(), "not computed"));
  uint8_t B[64] = {0}, S[64] = {0};
  assert_int_equal(ky_post_candidates(&c, B, S, NULL, 8, 8, NULL), KY_OK);
  assert_int_equal(ky_post_features(&f, &c), KY_OK);
  assert_int_equal(f.rows, 0);
  int32_t gt[64] = {0};
  double y[1];
  assert_int_equal(ky_post_iou_targets(y, &c, &f, gt, 4, 16), KY_ERR_SHAPE);
  assert_non_null(strstr(ky_last_error(), "4x16"));
  ky_post_features_free(&f);
  ky_post_candidates_free(&c);
  /* Two blobs, then the second's pixels relabelled 1: region 2 is empty and is named, instead of
   * being measured from an inside-out box. */
  uint8_t B2[16 * 16] = {0}, S2[16 * 16] = {0};
  for (int y = 2; y < 6; y++)
    for (int x = 2; x < 6; x++) B2[y * 16 + x] = B2[(y + 8) * 16 + x + 8] = 250;
  assert_int_equal(ky_post_candidates(&c, B2, S2, NULL, 16, 16, NULL), KY_OK);
  assert_int_equal(c.n, 2);
  for (int q = 0; q < 16 * 16; q++)
    if (c.labels[q] == 2) c.labels[q] = 1;
  assert_int_equal(ky_post_features(&f, &c), KY_ERR_STATE);
  assert_non_null(strstr(ky_last_error(), "region 2 has no pixels"));
  ky_post_candidates_free(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_features_ext),
      cmocka_unit_test(test_features_noext),
      cmocka_unit_test(test_features_zeroing),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests_name("post_features", tests, NULL, NULL);
}

/* Tests for post/metric: hand-worked images (perfect, empty, missed, split, merged) and label-PNG
 * pairs scored by an independent numpy implementation (tests/fixtures/gen_metric.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/image.h"
#include "post/metric.h"

#define H 10
#define W 12

static void fill(int32_t *lab, int r0, int r1, int c0, int c1, int32_t id) {
  for (int r = r0; r < r1; r++)
    for (int c = c0; c < c1; c++) lab[r * W + c] = id;
}

static void test_perfect_and_relabelled(void **st) {
  int32_t gt[H * W] = {0}, pred[H * W] = {0};
  fill(gt, 0, 4, 0, 4, 1);
  fill(gt, 5, 9, 5, 11, 2);
  fill(pred, 0, 4, 0, 4, 900);   /* ids need not match or be contiguous */
  fill(pred, 5, 9, 5, 11, 17);
  ky_metric_result r;
  assert_int_equal(ky_metric_dsb(&r, gt, pred, H, W), KY_OK);
  assert_true(r.score == 1.0);
  assert_int_equal(r.n_truth, 2);
  assert_int_equal(r.n_pred, 2);
  assert_int_equal(r.tp[9], 2);
}

static void test_empty_cases(void **st) {
  int32_t gt[H * W] = {0}, pred[H * W] = {0};
  ky_metric_result r;
  assert_int_equal(ky_metric_dsb(&r, gt, pred, H, W), KY_OK);
  assert_true(r.score == 1.0);
  fill(pred, 0, 2, 0, 2, 1);
  assert_int_equal(ky_metric_dsb(&r, gt, pred, H, W), KY_OK);
  assert_true(r.score == 0.0);
  assert_int_equal(r.fp[0], 1);
  assert_int_equal(ky_metric_dsb(&r, pred, gt, H, W), KY_OK);
  assert_true(r.score == 0.0);
  assert_int_equal(r.fn[0], 1);
}

static void test_one_missed(void **st) {
  /* Two GT objects, one predicted exactly: TP 1, FN 1 at every threshold -> 1/2. */
  int32_t gt[H * W] = {0}, pred[H * W] = {0};
  fill(gt, 0, 4, 0, 4, 1);
  fill(gt, 5, 9, 5, 11, 2);
  fill(pred, 0, 4, 0, 4, 1);
  ky_metric_result r;
  assert_int_equal(ky_metric_dsb(&r, gt, pred, H, W), KY_OK);
  assert_true(fabs(r.score - 0.5) < 1e-15);
}

static void test_split_in_two(void **st) {
  /* GT 4x6 = 24 px; prediction splits it 4x4 (16 px, IoU 2/3) + 4x2 (8 px, IoU 1/3).
   * IoU 2/3 matches for t = .50, .55, .60, .65 (4 thresholds): TP 1, FP 1 -> 1/2; else TP 0,
   * FP 2, FN 1 -> 0. Score = 4 * 0.5 / 10 = 0.2. */
  int32_t gt[H * W] = {0}, pred[H * W] = {0};
  fill(gt, 0, 4, 0, 6, 1);
  fill(pred, 0, 4, 0, 4, 1);
  fill(pred, 0, 4, 4, 6, 2);
  ky_metric_result r;
  assert_int_equal(ky_metric_dsb(&r, gt, pred, H, W), KY_OK);
  assert_true(fabs(r.score - 0.2) < 1e-15);
  assert_int_equal(r.tp[3], 1);
  assert_int_equal(r.tp[4], 0);
}

static void test_merged_and_exact_threshold(void **st) {
  /* Two GT squares 4x4 (16 px each) merged into one 4x8 prediction: IoU 1/2 each, which does NOT
   * match at t = 0.5 (strict): TP 0, FP 1, FN 2 everywhere -> 0. */
  int32_t gt[H * W] = {0}, pred[H * W] = {0};
  fill(gt, 0, 4, 0, 4, 1);
  fill(gt, 0, 4, 4, 8, 2);
  fill(pred, 0, 4, 0, 8, 3);
  ky_metric_result r;
  assert_int_equal(ky_metric_dsb(&r, gt, pred, H, W), KY_OK);
  assert_true(r.score == 0.0);
  assert_int_equal(r.fn[0], 2);
  /* IoU exactly 0.55 (11/20): matches at 0.50 only. */
  memset(gt, 0, sizeof gt);
  memset(pred, 0, sizeof pred);
  fill(gt, 0, 1, 0, 11, 1);   /* 11 px */
  fill(pred, 0, 2, 0, 10, 1); /* 20 px, 10 shared -> 10 / 21: no */
  fill(pred, 1, 2, 0, 10, 0); /* 10 px, shared 10, union 11 -> 10/11 */
  assert_int_equal(ky_metric_dsb(&r, gt, pred, H, W), KY_OK);
  assert_int_equal(r.tp[8], 1);  /* 0.909 > 0.90 */
  assert_int_equal(r.tp[9], 0);  /* not > 0.95 */
  memset(pred, 0, sizeof pred);
  fill(pred, 0, 1, 0, 11, 1);
  fill(pred, 1, 2, 0, 9, 1);  /* 20 px, 11 shared, union 20: IoU = 0.55 exactly */
  assert_int_equal(ky_metric_dsb(&r, gt, pred, H, W), KY_OK);
  assert_int_equal(r.tp[0], 1);
  assert_int_equal(r.tp[1], 0);
}

static int32_t *load_labels(const char *path, int *h, int *w) {
  ky_image img;
  if (ky_image_load(&img, path) != KY_OK) return NULL;
  int32_t *lab = malloc(sizeof *lab * (size_t)img.w * img.h);
  for (int i = 0; i < img.w * img.h; i++)
    lab[i] = img.depth == 16 ? ((uint16_t *)img.data)[i * img.c] : ((uint8_t *)img.data)[i * img.c];
  *h = img.h;
  *w = img.w;
  ky_image_free(&img);
  return lab;
}

static void test_fixture_pairs(void **st) {
  char *text;
  size_t n;
  assert_int_equal(ky_file_read_all("tests/fixtures/metric/scores.csv", &text, &n), KY_OK);
  char *save = NULL;
  int count = 0;
  strtok_r(text, "\n", &save);  /* header */
  for (char *line = strtok_r(NULL, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char name[64];
    double want;
    int nt, np;
    assert_int_equal(sscanf(line, "%63[^,],%lf,%d,%d", name, &want, &nt, &np), 4);
    char pg[256], pp[256];
    snprintf(pg, sizeof pg, "tests/fixtures/metric/%s_gt.png", name);
    snprintf(pp, sizeof pp, "tests/fixtures/metric/%s_pred.png", name);
    int h1, w1, h2, w2;
    int32_t *g = load_labels(pg, &h1, &w1), *p = load_labels(pp, &h2, &w2);
    assert_non_null(g);
    assert_non_null(p);
    assert_int_equal(h1, h2);
    assert_int_equal(w1, w2);
    ky_metric_result r;
    assert_int_equal(ky_metric_dsb(&r, g, p, h1, w1), KY_OK);
    if (fabs(r.score - want) > 1e-12) print_error("%s: got %.15g, numpy %.15g\n", name, r.score, want);
    assert_true(fabs(r.score - want) <= 1e-12);
    assert_int_equal(r.n_truth, nt);
    assert_int_equal(r.n_pred, np);
    free(g);
    free(p);
    count++;
  }
  free(text);
  assert_int_equal(count, 11);
}

static void test_bad_input(void **st) {
  int32_t gt[4] = {0, 1, -2, 0}, pred[4] = {0};
  ky_metric_result r;
  assert_int_equal(ky_metric_dsb(&r, gt, pred, 2, 2), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "truth label at pixel 2 is -2"));
  assert_int_equal(ky_metric_dsb(&r, gt, pred, 0, 2), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "0x2"));
  assert_int_equal(ky_metric_dsb(&r, NULL, pred, 2, 2), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "gt"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_perfect_and_relabelled),
    cmocka_unit_test(test_empty_cases),
    cmocka_unit_test(test_one_missed),
    cmocka_unit_test(test_split_in_two),
    cmocka_unit_test(test_merged_and_exact_threshold),
    cmocka_unit_test(test_fixture_pairs),
    cmocka_unit_test(test_bad_input),
  };
  return cmocka_run_group_tests_name("post_metric", tests, NULL, NULL);
}

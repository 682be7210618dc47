/* Tests for pipeline/postproc on a synthetic fixture with a known answer, written by the test:
 * six 96x96 images, each with four nuclei (discs, the ground truth, body probability 250) and
 * three blobs that are no nucleus (body probability 140: above the level-1 threshold, so the
 * level-1 rule keeps them). ky_postproc_table gives the expected rows and IoU targets,
 * ky_postproc_train learns a GBT from them, and that GBT applied through ky_pipeline_segment keeps
 * exactly the nuclei (DSB score 1) where the level-1 rule scores 4/7 per image; errors for bad
 * folders name them. */
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
#include "core/rng.h"
#include "data/dsb.h"
#include "pipeline/postproc.h"
#include "pipeline/segment.h"
#include "post/candidates.h"
#include "post/features.h"
#include "post/metric.h"
#include "tests/util_test.h"

enum { NIMG = 6, H = 96, W = 96, NTRUE = 4, NFALSE = 3 };

static char *dir, truth[600], prob[600], model[600];

/* Non-overlapping discs (radius 6..9, 3 px apart) at seeded positions: the first NTRUE are nuclei. */
static void draw(uint16_t *lab, uint8_t *body, int img) {
  ky_rng r = ky_rng_make(100 + img, KY_RNG_STREAM_TEST);
  int cy[NTRUE + NFALSE] = {0}, cx[NTRUE + NFALSE] = {0}, rad[NTRUE + NFALSE] = {0};
  memset(lab, 0, H * W * sizeof *lab);
  memset(body, 0, H * W);
  for (int k = 0; k < NTRUE + NFALSE;) {
    int y = (int)ky_rng_int(&r, 12, H - 12), x = (int)ky_rng_int(&r, 12, W - 12), rr = (int)ky_rng_int(&r, 6, 10), ok = 1;
    for (int j = 0; j < k; j++)
      if ((y - cy[j]) * (y - cy[j]) + (x - cx[j]) * (x - cx[j]) < (rr + rad[j] + 3) * (rr + rad[j] + 3)) ok = 0;
    if (!ok) continue;
    cy[k] = y; cx[k] = x; rad[k] = rr;
    for (int yy = 0; yy < H; yy++)
      for (int xx = 0; xx < W; xx++)
        if ((yy - y) * (yy - y) + (xx - x) * (xx - x) <= rr * rr) {
          body[yy * W + xx] = k < NTRUE ? 250 : 140;
          if (k < NTRUE) lab[yy * W + xx] = (uint16_t)(k + 1);
        }
    k++;
  }
}

static void id_of(char *id, size_t n, int img) { snprintf(id, n, "synth%02d", img); }

static int setup(void **st) {
  dir = ky_test_tmpdir("postproc");
  if (!dir) return -1;
  snprintf(truth, sizeof truth, "%s/truth", dir);
  snprintf(prob, sizeof prob, "%s/prob", dir);
  snprintf(model, sizeof model, "%s/gbt.txt", dir);
  char p[800], id[32];
  static uint16_t lab[H * W];
  static uint8_t body[H * W], zero[H * W], rgb[H * W * 3];
  if (ky_mkdirs(prob) != KY_OK) return -1;
  for (int i = 0; i < NIMG; i++) {
    id_of(id, sizeof id, i);
    draw(lab, body, i);
    for (int q = 0; q < H * W; q++) rgb[3 * q] = rgb[3 * q + 1] = rgb[3 * q + 2] = body[q];
    ky_dsb_sample s = {H, W, rgb, lab, NTRUE};
    if (ky_dsb_save_compact(&s, truth, id) != KY_OK) return -1;
    snprintf(p, sizeof p, "%s/%s_body.png", prob, id);
    if (ky_png_save_u8(p, body, W, H, 1) != KY_OK) return -1;
    snprintf(p, sizeof p, "%s/%s_border.png", prob, id);
    if (ky_png_save_u8(p, zero, W, H, 1) != KY_OK) return -1;
  }
  return 0;
}

static int teardown(void **st) {
  ky_test_rmdir(dir);
  free(dir);
  return 0;
}

static void test_table(void **st) {
  float *x, *y;
  int *g;
  ky_postproc_stats s;
  assert_int_equal(ky_postproc_table(&x, &y, &g, &s, prob, truth), KY_OK);
  assert_int_equal(s.n_images, NIMG);
  assert_int_equal(s.n_skipped, 0);
  /* Rows: per image, the seven main candidates plus the level-2 pieces of the nuclei (a disc at
   * 250 is one piece at each of the thresholds it passes; the false blobs at 140 stay below 0.6). */
  long want_rows = 0;
  for (int i = 0; i < NIMG; i++) {
    static uint16_t lab[H * W];
    static uint8_t body[H * W], zero[H * W];
    draw(lab, body, i);
    ky_candidates c;
    ky_features f;
    assert_int_equal(ky_post_candidates(&c, body, zero, NULL, H, W, NULL), KY_OK);
    assert_int_equal(c.n, NTRUE + NFALSE);
    assert_int_equal(ky_post_features(&f, &c), KY_OK);
    assert_int_equal(f.offset[1], NTRUE + NFALSE);
    for (int r = f.offset[1]; r < f.rows; r++) {
      int par = f.meta[r].parent, seen = 0;
      for (int q = 0; q < H * W && !seen; q++)
        if (c.labels[q] == par + 1) { seen = 1; assert_int_equal(body[q], 250); }
      assert_true(seen);
    }
    want_rows += f.rows;
    ky_post_features_free(&f);
    ky_post_candidates_free(&c);
  }
  assert_int_equal(s.n_rows, want_rows);
  int ones = 0, zeros = 0;
  for (long r = 0; r < s.n_rows; r++) {
    assert_true(g[r] >= 0 && g[r] < NIMG);
    ones += y[r] == 1.0f;
    zeros += y[r] == 0.0f;
  }
  /* A nucleus candidate or piece is its disc (IoU 1); a false blob matches nothing (target 0). */
  assert_int_equal(zeros, NIMG * NFALSE);
  assert_int_equal(ones, s.n_rows - zeros);
  assert_float_equal(s.mean_target, (double)ones / s.n_rows, 1e-6);
  free(x); free(y); free(g);
}

/* An image without candidates (an empty body map) first in the table: it adds no rows, and the
 * rows of the image after it still come through (its copy used to go to a NULL table). */
static void test_table_empty_first(void **st) {
  char t2[700], p2[700], path[800];
  snprintf(t2, sizeof t2, "%s/truth_e", dir);
  snprintf(p2, sizeof p2, "%s/prob_e", dir);
  assert_int_equal(ky_mkdirs(p2), KY_OK);
  static uint16_t lab[H * W];
  static uint8_t body[H * W], zero[H * W], rgb[H * W * 3];
  const char *ids[2] = {"a_empty", "b_synth"};
  for (int i = 0; i < 2; i++) {
    draw(lab, body, 0);
    if (i == 0) memset(body, 0, sizeof body);
    for (int q = 0; q < H * W; q++) rgb[3 * q] = rgb[3 * q + 1] = rgb[3 * q + 2] = body[q];
    ky_dsb_sample s = {H, W, rgb, lab, NTRUE};
    assert_int_equal(ky_dsb_save_compact(&s, t2, ids[i]), KY_OK);
    snprintf(path, sizeof path, "%s/%s_body.png", p2, ids[i]);
    assert_int_equal(ky_png_save_u8(path, body, W, H, 1), KY_OK);
    snprintf(path, sizeof path, "%s/%s_border.png", p2, ids[i]);
    assert_int_equal(ky_png_save_u8(path, zero, W, H, 1), KY_OK);
  }
  float *x, *y;
  int *g;
  ky_postproc_stats s;
  assert_int_equal(ky_postproc_table(&x, &y, &g, &s, p2, t2), KY_OK);
  assert_int_equal(s.n_images, 2);
  /* Only the second image has rows: as many as image 0 of the main fixture, all in group 1. */
  draw(lab, body, 0);
  ky_candidates c;
  ky_features f;
  assert_int_equal(ky_post_candidates(&c, body, zero, NULL, H, W, NULL), KY_OK);
  assert_int_equal(ky_post_features(&f, &c), KY_OK);
  assert_true(f.rows > 0);
  assert_int_equal(s.n_rows, f.rows);
  for (long r = 0; r < s.n_rows; r++) assert_int_equal(g[r], 1);
  ky_post_features_free(&f);
  ky_post_candidates_free(&c);
  free(x); free(y); free(g);
}

static void test_train_and_apply(void **st) {
  ky_postproc_stats s;
  assert_int_equal(ky_postproc_train(prob, truth, model, 1, 7, &s), KY_OK);
  assert_int_equal(s.n_images, NIMG);
  ky_gbt_ensemble e;
  assert_int_equal(ky_gbt_ensemble_load(&e, model), KY_OK);
  assert_int_equal(e.n, 3);   /* 1 rep x 3 folds */
  for (int i = 0; i < NIMG; i++) {
    char id[32];
    id_of(id, sizeof id, i);
    uint8_t *B, *S, *E;
    int h, w;
    assert_int_equal(ky_postproc_read_maps(&B, &S, &E, &h, &w, prob, id), KY_OK);
    assert_int_equal(h, H);
    assert_null(E);
    ky_dsb_sample sm;
    assert_int_equal(ky_dsb_load(&sm, truth, id, KY_DSB_MASKS_REQUIRED), KY_OK);
    static uint16_t lab[H * W];
    static int32_t gt[H * W], pr[H * W];
    for (int q = 0; q < H * W; q++) gt[q] = sm.labels[q];
    ky_metric_result mr;
    int n;
    /* Level 1 keeps every blob: 4 of 7 predictions match. */
    assert_int_equal(ky_pipeline_segment(lab, &n, B, S, E, h, w, NULL, 0.3), KY_OK);
    assert_int_equal(n, NTRUE + NFALSE);
    for (int q = 0; q < H * W; q++) pr[q] = lab[q];
    assert_int_equal(ky_metric_dsb(&mr, gt, pr, h, w), KY_OK);
    assert_float_equal(mr.score, (double)NTRUE / (NTRUE + NFALSE), 1e-9);
    /* The trained GBT drops the false blobs: the nuclei exactly. */
    assert_int_equal(ky_pipeline_segment(lab, &n, B, S, E, h, w, &e, 0.3), KY_OK);
    assert_int_equal(n, NTRUE);
    for (int q = 0; q < H * W; q++) {
      pr[q] = lab[q];
      if ((lab[q] != 0) != (gt[q] != 0)) fail_msg("%s: pixel (%d,%d) is %d, truth %d", id, q / W, q % W, lab[q], gt[q]);
    }
    assert_int_equal(ky_metric_dsb(&mr, gt, pr, h, w), KY_OK);
    assert_float_equal(mr.score, 1.0, 1e-12);
    free(B); free(S);
    ky_dsb_sample_free(&sm);
  }
  ky_gbt_ensemble_free(&e);
}

static void test_errors(void **st) {
  float *x, *y;
  int *g;
  ky_postproc_stats s;
  char empty[700];
  snprintf(empty, sizeof empty, "%s/none", dir);
  assert_int_equal(ky_mkdirs(empty), KY_OK);
  assert_int_equal(ky_postproc_table(&x, &y, &g, &s, empty, truth), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "no probability maps"));
  assert_non_null(strstr(ky_last_error(), empty));
  assert_int_equal(ky_postproc_train(prob, truth, model, 0, 7, &s), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "reps"));
  uint8_t *B, *S, *E;
  int h, w;
  assert_int_not_equal(ky_postproc_read_maps(&B, &S, &E, &h, &w, prob, "nosuchid"), KY_OK);
  assert_non_null(strstr(ky_last_error(), "nosuchid_body.png"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_table),
      cmocka_unit_test(test_table_empty_first),
      cmocka_unit_test(test_train_and_apply),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests_name("pipeline_postproc", tests, setup, teardown);
}

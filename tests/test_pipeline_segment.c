/* Tests for pipeline/segment: ky_pipeline_segment without a GBT gives exactly the level-1 main
 * candidates of the Python reimplementation (tests/fixtures/candidates, gen_candidates.py) with
 * their count; with a GBT, the selection follows the trained scores (an ensemble trained on a
 * constant low target keeps nothing, a constant high one keeps what ky_post_select keeps for that
 * score), ky_pipeline_instances agrees with ky_pipeline_segment, and bad arguments are named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/rng.h"
#include "pipeline/segment.h"
#include "post/select.h"
#include "tests/util_test.h"

#define FIX "tests/fixtures/candidates/"

typedef struct {
  uint8_t *B, *S, *E;
  int32_t *main;   /* the reference's level-1 labels */
  int h, w, n_main;
} maps;

static uint8_t *load_u8(const char *path, int *h, int *w, int optional) {
  if (optional && access(path, F_OK) != 0) return NULL;
  int32_t *x = ky_test_load_png_i32(path, h, w);
  if (!x) fail_msg("%s: %s", path, ky_last_error());
  uint8_t *o = malloc((size_t)*h * *w);
  for (size_t i = 0; i < (size_t)*h * *w; i++) o[i] = (uint8_t)x[i];
  free(x);
  return o;
}

static void load_maps(maps *m, int k) {
  char p[256];
  int h2, w2;
  snprintf(p, sizeof p, FIX "img%d_body.png", k);
  m->B = load_u8(p, &m->h, &m->w, 0);
  snprintf(p, sizeof p, FIX "img%d_border.png", k);
  m->S = load_u8(p, &h2, &w2, 0);
  snprintf(p, sizeof p, FIX "img%d_full.png", k);
  m->E = load_u8(p, &h2, &w2, 1);
  snprintf(p, sizeof p, FIX "img%d_main.png", k);
  m->main = ky_test_load_png_i32(p, &h2, &w2);
  if (!m->main) fail_msg("%s: %s", p, ky_last_error());
  assert_int_equal(h2, m->h);
  assert_int_equal(w2, m->w);
  m->n_main = 0;
  for (size_t i = 0; i < (size_t)m->h * m->w; i++) if (m->main[i] > m->n_main) m->n_main = m->main[i];
}

static void free_maps(maps *m) { free(m->B); free(m->S); free(m->E); free(m->main); }

/* An ensemble (1 rep x 3 folds) trained on 60 random rows whose target is the constant y. */
static void train_constant(ky_gbt_ensemble *e, float y) {
  enum { N = 60 };
  float *x = malloc((size_t)N * KY_POST_NFEAT * sizeof *x), t[N];
  int g[N];
  ky_rng r = ky_rng_make(5, KY_RNG_STREAM_TEST);
  for (int i = 0; i < N * KY_POST_NFEAT; i++) x[i] = ky_rng_uniform_range(&r, 0, 100);
  for (int i = 0; i < N; i++) { t[i] = y; g[i] = i % 6; }
  ky_gbt_params p;
  ky_gbt_params_default(&p);
  p.num_rounds = 5;
  p.min_data_in_leaf = 5;
  assert_int_equal(ky_gbt_ensemble_train(e, &p, x, t, g, N, KY_POST_NFEAT, 1, 3, 9), KY_OK);
  assert_int_equal(e->n, 3);
  free(x);
}

static void test_level1_is_the_reference(void **st) {
  for (int k = 0; k < 2; k++) {
    maps m;
    load_maps(&m, k);
    uint16_t *lab = malloc((size_t)m.h * m.w * sizeof *lab);
    int n = -1;
    assert_int_equal(ky_pipeline_segment(lab, &n, m.B, m.S, m.E, m.h, m.w, NULL, 0.3), KY_OK);
    assert_int_equal(n, m.n_main);
    assert_true(n > 10);
    size_t diff = 0;
    for (size_t i = 0; i < (size_t)m.h * m.w; i++) diff += lab[i] != m.main[i];
    if (diff) fail_msg("img%d: %zu pixels differ from the reference's level-1 labels", k, diff);
    free(lab);
    free_maps(&m);
  }
}

static void test_gbt_scores_drive_selection(void **st) {
  maps m;
  load_maps(&m, 0);
  size_t np = (size_t)m.h * m.w;
  uint16_t *lab = malloc(np * sizeof *lab), *want = malloc(np * sizeof *want), *lab2 = malloc(np * sizeof *lab2);
  ky_gbt_ensemble lo, hi;
  train_constant(&lo, 0.1f);
  train_constant(&hi, 0.9f);
  float x0[KY_POST_NFEAT] = {0};
  assert_float_equal(ky_gbt_ensemble_predict_row(&lo, x0), 0.1, 1e-6);
  assert_float_equal(ky_gbt_ensemble_predict_row(&hi, x0), 0.9, 1e-6);

  /* Every candidate scores 0.1 < 0.3: nothing is kept. */
  int n = -1;
  assert_int_equal(ky_pipeline_segment(lab, &n, m.B, m.S, m.E, m.h, m.w, &lo, 0.3), KY_OK);
  assert_int_equal(n, 0);
  for (size_t i = 0; i < np; i++) if (lab[i]) fail_msg("pixel %zu labelled %d with every score below the threshold", i, lab[i]);
  /* ...unless the threshold is below the scores. */
  assert_int_equal(ky_pipeline_segment(lab, &n, m.B, m.S, m.E, m.h, m.w, &lo, 0.05), KY_OK);
  assert_true(n >= m.n_main);

  /* Every candidate scores 0.9: a split never beats its candidate, so the main candidates remain,
   * exactly as ky_post_select paints them for that score. */
  ky_cand_opts o = ky_cand_opts_default();
  ky_candidates c;
  ky_features f;
  assert_int_equal(ky_post_candidates(&c, m.B, m.S, m.E, m.h, m.w, &o), KY_OK);
  assert_int_equal(ky_post_features(&f, &c), KY_OK);
  double *sc = malloc((size_t)f.rows * sizeof *sc);
  for (int i = 0; i < f.rows; i++) sc[i] = ky_gbt_ensemble_predict_row(&hi, x0);
  int nw = -1;
  assert_int_equal(ky_post_select(want, &nw, &c, &f, sc, 0.3), KY_OK);
  assert_int_equal(nw, m.n_main);
  assert_int_equal(ky_pipeline_segment(lab, &n, m.B, m.S, m.E, m.h, m.w, &hi, 0.3), KY_OK);
  assert_int_equal(n, nw);
  assert_memory_equal(lab, want, np * sizeof *lab);
  for (size_t i = 0; i < np; i++) assert_int_equal(lab[i], m.main[i]);
  /* The selection step alone, on kept candidates and features, gives the same labels. */
  int n2 = -1;
  assert_int_equal(ky_pipeline_instances(lab2, &n2, &c, &f, &hi, 0.3), KY_OK);
  assert_int_equal(n2, n);
  assert_memory_equal(lab2, lab, np * sizeof *lab);
  assert_int_equal(ky_pipeline_instances(lab2, &n2, &c, NULL, NULL, 0.3), KY_OK);
  assert_int_equal(n2, m.n_main);
  /* Errors name what is wrong. */
  assert_int_equal(ky_pipeline_instances(lab2, &n2, &c, NULL, &hi, 0.3), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "features"));
  hi.n_features = 40;
  assert_int_equal(ky_pipeline_segment(lab, &n, m.B, m.S, m.E, m.h, m.w, &hi, 0.3), KY_ERR_SHAPE);
  assert_non_null(strstr(ky_last_error(), "40 features"));
  hi.n_features = KY_POST_NFEAT;
  assert_int_equal(ky_pipeline_segment(lab, &n, NULL, m.S, m.E, m.h, m.w, NULL, 0.3), KY_ERR_ARG);
  assert_int_equal(ky_pipeline_segment(lab, &n, m.B, m.S, m.E, 0, m.w, NULL, 0.3), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "empty"));

  free(sc);
  ky_post_features_free(&f);
  ky_post_candidates_free(&c);
  ky_gbt_ensemble_free(&lo);
  ky_gbt_ensemble_free(&hi);
  free(lab); free(want); free(lab2);
  free_maps(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_level1_is_the_reference),
      cmocka_unit_test(test_gbt_scores_drive_selection),
  };
  return cmocka_run_group_tests_name("pipeline_segment", tests, NULL, NULL);
}

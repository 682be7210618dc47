/* Tests for post/gbt: accuracy against xgboost on the gen_gbt.py fixture, determinism, early
 * stopping, the §7.5 ensemble recipe, save -> load bit-identity, malformed model files, and tables
 * with fewer rows than features. */
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

#include "core/fileio.h"
#include "post/gbt.h"

#define NF 10

typedef struct {
  float *x[3], *y[3];   /* train, valid, test */
  int n[3];
  double xgb_plain, xgb_sub, constant;
} fixture;

static fixture FX;

static int load_fixture(void **st) {
  char *text;
  size_t len;
  if (ky_file_read_all("tests/fixtures/gbt/data.csv", &text, &len) != KY_OK) return -1;
  for (int s = 0; s < 3; s++) {
    FX.x[s] = malloc(sizeof(float) * 2000 * NF);
    FX.y[s] = malloc(sizeof(float) * 2000);
    FX.n[s] = 0;
  }
  char *save = NULL;
  strtok_r(text, "\n", &save);
  for (char *line = strtok_r(NULL, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    float v[NF + 1];
    char *p = line;
    for (int k = 0; k <= NF; k++) { v[k] = strtof(p, &p); p++; }
    int s = atoi(p);
    memcpy(FX.x[s] + (size_t)FX.n[s] * NF, v, sizeof(float) * NF);
    FX.y[s][FX.n[s]++] = v[NF];
  }
  free(text);
  if (ky_file_read_all("tests/fixtures/gbt/xgboost.txt", &text, &len) != KY_OK) return -1;
  char *a = strstr(text, "plain "), *b = strstr(text, "subsampled "), *c = strstr(text, "constant ");
  if (!a || !b || !c) return -1;
  FX.xgb_plain = atof(a + 6);
  FX.xgb_sub = atof(b + 11);
  FX.constant = atof(c + 9);
  free(text);
  return FX.n[0] == 1200 && FX.n[1] == 400 && FX.n[2] == 400 ? 0 : -1;
}

static int free_fixture(void **st) {
  for (int s = 0; s < 3; s++) { free(FX.x[s]); free(FX.y[s]); }
  return 0;
}

static double rmse(const double *pred, const float *y, int n) {
  double s = 0;
  for (int i = 0; i < n; i++) s += (pred[i] - y[i]) * (pred[i] - y[i]);
  return sqrt(s / n);
}

static void matched_params(ky_gbt_params *p) {
  ky_gbt_params_default(p);
  p->num_rounds = 200;
  p->num_leaves = 31;
  p->min_data_in_leaf = 20;
  p->lambda_l2 = 1.0;
  p->learning_rate = 0.1;
  p->max_bins = 255;
}

static void test_rmse_matches_xgboost(void **st) {
  ky_gbt_params p;
  matched_params(&p);
  ky_gbt_model m;
  assert_int_equal(ky_gbt_train(&m, &p, FX.x[0], FX.y[0], FX.n[0], NF, NULL, NULL, 0), KY_OK);
  assert_int_equal(m.n_trees, 200);
  double *pred = malloc(sizeof(double) * FX.n[2]);
  assert_int_equal(ky_gbt_predict(&m, pred, FX.x[2], FX.n[2], NF), KY_OK);
  double r = rmse(pred, FX.y[2], FX.n[2]);
  print_message("      gbt test RMSE %.4f, xgboost %.4f (constant predictor %.4f)\n", r, FX.xgb_plain, FX.constant);
  assert_true(r <= 1.02 * FX.xgb_plain);
  ky_gbt_free(&m);
  /* Row and feature subsampling: other random draws than xgboost's, so 5% is allowed. */
  p.bagging_fraction = 0.8;
  p.bagging_freq = 1;
  p.feature_fraction = 0.7;
  assert_int_equal(ky_gbt_train(&m, &p, FX.x[0], FX.y[0], FX.n[0], NF, NULL, NULL, 0), KY_OK);
  assert_int_equal(ky_gbt_predict(&m, pred, FX.x[2], FX.n[2], NF), KY_OK);
  r = rmse(pred, FX.y[2], FX.n[2]);
  print_message("      subsampled: gbt %.4f, xgboost %.4f\n", r, FX.xgb_sub);
  assert_true(r <= 1.05 * FX.xgb_sub);
  ky_gbt_free(&m);
  free(pred);
}

static void test_deterministic_and_save_load_bitwise(void **st) {
  ky_gbt_params p;
  matched_params(&p);
  p.num_rounds = 60;
  p.bagging_fraction = 0.9;
  p.bagging_freq = 2;
  p.feature_fraction = 0.6;
  p.seed = 77;
  ky_gbt_model a, b;
  assert_int_equal(ky_gbt_train(&a, &p, FX.x[0], FX.y[0], FX.n[0], NF, NULL, NULL, 0), KY_OK);
  assert_int_equal(ky_gbt_train(&b, &p, FX.x[0], FX.y[0], FX.n[0], NF, NULL, NULL, 0), KY_OK);
  int n = FX.n[2];
  double *pa = malloc(sizeof(double) * n), *pb = malloc(sizeof(double) * n);
  assert_int_equal(ky_gbt_predict(&a, pa, FX.x[2], n, NF), KY_OK);
  assert_int_equal(ky_gbt_predict(&b, pb, FX.x[2], n, NF), KY_OK);
  assert_memory_equal(pa, pb, sizeof(double) * n);
  /* Batched prediction (rows interleaved in blocks of 8) equals the one-row path bit for bit. */
  for (int i = 0; i < n; i++) assert_true(ky_gbt_predict_row(&a, FX.x[2] + (size_t)i * NF) == pa[i]);
  /* Another seed gives another model. */
  ky_gbt_free(&b);
  p.seed = 78;
  assert_int_equal(ky_gbt_train(&b, &p, FX.x[0], FX.y[0], FX.n[0], NF, NULL, NULL, 0), KY_OK);
  assert_int_equal(ky_gbt_predict(&b, pb, FX.x[2], n, NF), KY_OK);
  assert_true(memcmp(pa, pb, sizeof(double) * n) != 0);
  ky_gbt_free(&b);

  char dir[] = "/tmp/ky_gbt_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[256];
  snprintf(path, sizeof path, "%s/model.txt", dir);
  assert_int_equal(ky_gbt_save(&a, path), KY_OK);
  ky_gbt_ensemble e;
  assert_int_equal(ky_gbt_ensemble_load(&e, path), KY_OK);
  assert_int_equal(e.n, 1);
  assert_int_equal(ky_gbt_ensemble_predict(&e, pb, FX.x[2], n, NF), KY_OK);
  assert_memory_equal(pa, pb, sizeof(double) * n);
  ky_gbt_ensemble_free(&e);
  remove(path);
  rmdir(dir);
  ky_gbt_free(&a);
  free(pa);
  free(pb);
}

static void test_early_stopping_keeps_best_round(void **st) {
  ky_gbt_params p;
  matched_params(&p);
  p.num_rounds = 400;
  p.learning_rate = 0.3;
  p.early_stopping = 5;
  ky_gbt_model m;
  assert_int_equal(ky_gbt_train(&m, &p, FX.x[0], FX.y[0], FX.n[0], NF, FX.x[1], FX.y[1], FX.n[1]), KY_OK);
  assert_true(m.n_trees > 5 && m.n_trees < 400);
  int n = FX.n[1];
  double *pv = malloc(sizeof(double) * n);
  assert_int_equal(ky_gbt_predict(&m, pv, FX.x[1], n, NF), KY_OK);
  double l2 = 0;
  for (int i = 0; i < n; i++) l2 += (pv[i] - FX.y[1][i]) * (pv[i] - FX.y[1][i]);
  l2 /= n;
  assert_true(fabs(l2 - m.best_valid_l2) <= 1e-9 * l2);
  /* One more tree (the next round) does not beat it: the kept round is a minimum. */
  ky_gbt_params q = p;
  q.num_rounds = m.n_trees + 1;
  q.early_stopping = 0;
  ky_gbt_model m2;
  assert_int_equal(ky_gbt_train(&m2, &q, FX.x[0], FX.y[0], FX.n[0], NF, FX.x[1], FX.y[1], FX.n[1]), KY_OK);
  assert_int_equal(m2.n_trees, m.n_trees);  /* valid set given: truncated to the best round */
  ky_gbt_free(&m);
  ky_gbt_free(&m2);
  free(pv);
}

static void test_ensemble_recipe(void **st) {
  int n = FX.n[0] + FX.n[1];
  float *x = malloc(sizeof(float) * n * NF), *y = malloc(sizeof(float) * n);
  int *groups = malloc(sizeof(int) * n);
  memcpy(x, FX.x[0], sizeof(float) * FX.n[0] * NF);
  memcpy(x + (size_t)FX.n[0] * NF, FX.x[1], sizeof(float) * FX.n[1] * NF);
  memcpy(y, FX.y[0], sizeof(float) * FX.n[0]);
  memcpy(y + FX.n[0], FX.y[1], sizeof(float) * FX.n[1]);
  for (int i = 0; i < n; i++) groups[i] = 1000 + (i / 10) * 7;   /* 160 "images" of 10 rows */
  ky_gbt_params base;
  ky_gbt_params_default(&base);
  base.num_rounds = 400;
  base.early_stopping = 5;
  ky_gbt_ensemble e;
  assert_int_equal(ky_gbt_ensemble_train(&e, &base, x, y, groups, n, NF, 2, 3, 5), KY_OK);
  assert_int_equal(e.n, 6);
  for (int b = 0; b < e.n; b++) {
    const ky_gbt_model *m = &e.boosters[b];
    int maxleaves = 0;
    for (int t = 0; t < m->n_trees; t++) {
      int l = m->tree_leaf[t + 1] - m->tree_leaf[t];
      if (l > maxleaves) maxleaves = l;
    }
    assert_true(maxleaves >= 2 && maxleaves <= 49);   /* num_leaves ~ randint[6, 50) */
    assert_true(m->n_trees >= 1 && m->n_trees <= 400);
  }
  int nt = FX.n[2];
  double *pe = malloc(sizeof(double) * nt), *pb = malloc(sizeof(double) * nt);
  assert_int_equal(ky_gbt_ensemble_predict(&e, pe, FX.x[2], nt, NF), KY_OK);
  /* The mean of the boosters. */
  for (int i = 0; i < nt; i++) {
    double s = 0;
    for (int b = 0; b < e.n; b++) s += ky_gbt_predict_row(&e.boosters[b], FX.x[2] + (size_t)i * NF);
    assert_true(s / e.n == pe[i]);
    assert_true(ky_gbt_ensemble_predict_row(&e, FX.x[2] + (size_t)i * NF) == pe[i]);
  }
  double r = rmse(pe, FX.y[2], nt);
  print_message("      ensemble of %d: test RMSE %.4f (xgboost single %.4f)\n", e.n, r, FX.xgb_plain);
  assert_true(r < 1.15 * FX.xgb_plain);
  /* Three threads train the same ensemble, bit for bit. */
  ky_gbt_ensemble e3;
  base.threads = 3;
  assert_int_equal(ky_gbt_ensemble_train(&e3, &base, x, y, groups, n, NF, 2, 3, 5), KY_OK);
  assert_int_equal(ky_gbt_ensemble_predict(&e3, pb, FX.x[2], nt, NF), KY_OK);
  assert_memory_equal(pe, pb, sizeof(double) * nt);
  ky_gbt_ensemble_free(&e3);
  /* Same seed -> same ensemble, through a file too. */
  char dir[] = "/tmp/ky_gbt_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[256];
  snprintf(path, sizeof path, "%s/ens.txt", dir);
  assert_int_equal(ky_gbt_ensemble_save(&e, path), KY_OK);
  ky_gbt_ensemble e2;
  assert_int_equal(ky_gbt_ensemble_load(&e2, path), KY_OK);
  assert_int_equal(ky_gbt_ensemble_predict(&e2, pb, FX.x[2], nt, NF), KY_OK);
  assert_memory_equal(pe, pb, sizeof(double) * nt);
  ky_gbt_ensemble_free(&e2);
  remove(path);
  rmdir(dir);
  /* Too few groups for the folds. */
  for (int i = 0; i < n; i++) groups[i] = i % 2;
  assert_int_equal(ky_gbt_ensemble_train(&e2, &base, x, y, groups, n, NF, 1, 3, 5), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "2 distinct groups, need at least 3"));
  ky_gbt_ensemble_free(&e);
  free(x); free(y); free(groups); free(pe); free(pb);
}

/* Depth of the deepest leaf below internal node k of tree t. */
static int depth_of(const ky_gbt_model *m, int t, int k) {
  int base = m->tree_node[t], best = 0;
  int kids[2] = {m->left[base + k], m->right[base + k]};
  for (int c = 0; c < 2; c++) {
    int d = kids[c] < 0 ? 1 : 1 + depth_of(m, t, kids[c]);
    if (d > best) best = d;
  }
  return best;
}

static void test_tree_limits(void **st) {
  ky_gbt_params p;
  matched_params(&p);
  p.num_rounds = 20;
  p.max_depth = 3;
  p.min_data_in_leaf = 50;
  ky_gbt_model m;
  assert_int_equal(ky_gbt_train(&m, &p, FX.x[0], FX.y[0], FX.n[0], NF, NULL, NULL, 0), KY_OK);
  int n = FX.n[0];
  int *count = malloc(sizeof(int) * 64);
  for (int t = 0; t < m.n_trees; t++) {
    int nl = m.tree_leaf[t + 1] - m.tree_leaf[t];
    assert_true(nl >= 2 && nl <= 8);
    assert_true(depth_of(&m, t, 0) <= 3);
    /* Every leaf holds at least min_data_in_leaf training rows (no bagging here). */
    memset(count, 0, sizeof(int) * 64);
    for (int i = 0; i < n; i++) {
      const float *x = FX.x[0] + (size_t)i * NF;
      int base = m.tree_node[t], k = 0;
      do { k = (double)x[m.feature[base + k]] <= m.threshold[base + k] ? m.left[base + k] : m.right[base + k]; } while (k >= 0);
      count[~k]++;
    }
    for (int l = 0; l < nl; l++) assert_true(count[l] >= 50);
  }
  free(count);
  ky_gbt_free(&m);
  /* feature_fraction 0.3 of 10 features: each tree splits on at most 3 of them, not always the same. */
  p.max_depth = 0;
  p.min_data_in_leaf = 20;
  p.feature_fraction = 0.3;
  assert_int_equal(ky_gbt_train(&m, &p, FX.x[0], FX.y[0], FX.n[0], NF, NULL, NULL, 0), KY_OK);
  int seen_any[NF] = {0};
  for (int t = 0; t < m.n_trees; t++) {
    int used[NF] = {0}, nused = 0;
    for (int k = m.tree_node[t]; k < m.tree_node[t + 1]; k++) used[m.feature[k]] = 1;
    for (int f = 0; f < NF; f++) { nused += used[f]; seen_any[f] |= used[f]; }
    assert_true(nused <= 3);
  }
  int total = 0;
  for (int f = 0; f < NF; f++) total += seen_any[f];
  assert_true(total > 3);
  ky_gbt_free(&m);
}

/* Fewer rows than features with feature_fraction < 1 (small second-level tables: a fold of a
 * few images against 41 features): the feature draw once wrote past a row-sized buffer. */
static void test_fewer_rows_than_features(void **st) {
  enum { N = 12, F = 41 };
  float x[N * F], y[N];
  for (int i = 0; i < N; i++) {
    y[i] = (float)(i % 3);
    for (int f = 0; f < F; f++) x[i * F + f] = (float)((i * 7 + f * 3) % 11);
  }
  ky_gbt_params p;
  ky_gbt_params_default(&p);
  p.num_rounds = 5;
  p.min_data_in_leaf = 2;
  p.feature_fraction = 0.5;
  ky_gbt_model m;
  assert_int_equal(ky_gbt_train(&m, &p, x, y, N, F, NULL, NULL, 0), KY_OK);
  assert_int_equal(m.n_trees, 5);
  double pr[N];
  assert_int_equal(ky_gbt_predict(&m, pr, x, N, F), KY_OK);
  for (int i = 0; i < N; i++) assert_true(pr[i] >= 0 && pr[i] <= 2);
  ky_gbt_free(&m);
}

static void write_text(const char *path, const char *text) {
  assert_int_equal(ky_file_write_atomic(path, text, strlen(text)), KY_OK);
}

static void test_malformed_model_files(void **st) {
  char dir[] = "/tmp/ky_gbt_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[256];
  snprintf(path, sizeof path, "%s/m.txt", dir);
  ky_gbt_ensemble e;
  const char *good =
      "karyon-gbt 1\nfeatures 2\nboosters 1\nbooster 0 trees 1 base_score 0.5\n"
      "tree 0 nodes 1 leaves 2\nnode 1 0.25 -1 -2\nleaf -1 1\nend\n";
  write_text(path, good);
  assert_int_equal(ky_gbt_ensemble_load(&e, path), KY_OK);
  float r0[2] = {0, 0.2f}, r1[2] = {0, 0.3f};
  assert_true(ky_gbt_ensemble_predict_row(&e, r0) == -0.5);
  assert_true(ky_gbt_ensemble_predict_row(&e, r1) == 1.5);
  ky_gbt_ensemble_free(&e);
  struct { const char *text, *msg; } bad[] = {
    {"karyon-gbt 2\n", "m.txt:1: expected the header"},
    {"karyon-gbt 1\nfeatures x\n", "m.txt:2: expected \"features"},
    {"karyon-gbt 1\nfeatures 2\nboosters 1\nbooster 0 trees 1 base_score 0.5\n"
     "tree 0 nodes 1 leaves 2\nnode 2 0.25 -1 -2\nleaf -1 1\nend\n", "m.txt:6: node feature 2, expected 0..1"},
    {"karyon-gbt 1\nfeatures 2\nboosters 1\nbooster 0 trees 1 base_score 0.5\n"
     "tree 0 nodes 1 leaves 2\nnode 1 0.25 -1 -3\nleaf -1 1\nend\n", "m.txt:6: node 0 children -1 -3 out of range"},
    {"karyon-gbt 1\nfeatures 2\nboosters 1\nbooster 0 trees 1 base_score 0.5\n"
     "tree 0 nodes 1 leaves 2\nnode 1 0.25 -1 -2\nleaf -1 zz\nend\n", "m.txt:7: leaf value 2 of tree 0"},
    {"karyon-gbt 1\nfeatures 2\nboosters 1\nbooster 0 trees 1 base_score 0.5\n"
     "tree 0 nodes 1 leaves 2\nnode 1 0.25 -1 -2\n", "m.txt:7: file ends before the leaf values"},
    {"karyon-gbt 1\nfeatures 2\nboosters 1\nbooster 0 trees 1 base_score 0.5\n"
     "tree 0 nodes 1 leaves 2\nnode 1 0.25 -1 -2\nleaf -1 1\n", "m.txt:8: expected \"end\""},
    {"karyon-gbt 1\nfeatures 2\nboosters 1\nbooster 0 trees 2 base_score 0.5\n"
     "tree 0 nodes 0 leaves 1\nleaf 3\ntree 5 nodes 0 leaves 1\n", "m.txt:7: expected \"tree 1 nodes"},
    /* Hostile counts: refused before anything is allocated for them, with no integer overflow
     * (these used to be signed-overflow UB in the loader and in grow()). */
    {"karyon-gbt 1\nfeatures 2\nboosters 900000000\nend\n", "m.txt:3: 900000000 boosters declared, but the file has only"},
    {"karyon-gbt 1\nfeatures 2\nboosters 99999999999\n", "m.txt:3: expected \"boosters"},
    {"karyon-gbt 1\nfeatures 2\nboosters 1\nbooster 0 trees 999999999 base_score 0.5\nend\n",
     "m.txt:4: booster 0 declares 999999999 trees"},
    {"karyon-gbt 1\nfeatures 2\nboosters 1\nbooster 0 trees 1 base_score 0.5\n"
     "tree 0 nodes 2147483646 leaves 2147483647\nend\n", "m.txt:5: a number has more than 9 digits"},
    {"karyon-gbt 1\nfeatures 2\nboosters 1\nbooster 0 trees 1 base_score 0.5\n"
     "tree 0 nodes 100000000 leaves 100000001\nend\n", "m.txt:5: tree 0 declares 100000000 nodes"},
    {"karyon-gbt 1\nfeatures 2\nboosters 1\nbooster 0 trees 1 base_score 0.5\n"
     "tree 0 nodes 1 leaves 2\nnode 1 0.25 -1 -99999999999\nleaf -1 1\nend\n", "m.txt:6: a number has more than 9 digits"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    write_text(path, bad[i].text);
    assert_int_equal(ky_gbt_ensemble_load(&e, path), KY_ERR_FORMAT);
    if (!strstr(ky_last_error(), bad[i].msg)) print_error("case %zu: %s\n", i, ky_last_error());
    assert_non_null(strstr(ky_last_error(), bad[i].msg));
  }
  /* Saved on Windows (CRLF) it loads the same; a NUL byte is named, not a silent end of file. */
  char crlf[512], *o = crlf;
  for (const char *g = good; *g; g++) { if (*g == '\n') *o++ = '\r'; *o++ = *g; }
  *o = 0;
  write_text(path, crlf);
  assert_int_equal(ky_gbt_ensemble_load(&e, path), KY_OK);
  assert_true(ky_gbt_ensemble_predict_row(&e, r1) == 1.5);
  ky_gbt_ensemble_free(&e);
  char nul[256];
  size_t gl = strlen(good);
  memcpy(nul, good, gl);
  nul[30] = 0;
  assert_int_equal(ky_file_write_atomic(path, nul, gl), KY_OK);
  assert_int_equal(ky_gbt_ensemble_load(&e, path), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "NUL byte at line 3"));
  remove(path);
  assert_int_equal(ky_gbt_ensemble_load(&e, path), KY_ERR_IO);
  rmdir(dir);
}

static void test_bad_input(void **st) {
  ky_gbt_params p;
  ky_gbt_params_default(&p);
  float x[4] = {0, 1, NAN, 3}, y[2] = {0, 1};
  ky_gbt_model m;
  assert_int_equal(ky_gbt_train(&m, &p, x, y, 2, 2, NULL, NULL, 0), KY_ERR_NUMERIC);
  assert_non_null(strstr(ky_last_error(), "x[2] is nan"));
  x[2] = 2;
  p.num_leaves = 1;
  assert_int_equal(ky_gbt_train(&m, &p, x, y, 2, 2, NULL, NULL, 0), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "num_leaves = 1"));
  p.num_leaves = 4;
  assert_int_equal(ky_gbt_train(&m, &p, x, y, 2, 2, NULL, NULL, 3), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "3 validation rows"));
  /* Too few rows to split: a constant model at the mean. */
  assert_int_equal(ky_gbt_train(&m, &p, x, y, 2, 2, NULL, NULL, 0), KY_OK);
  assert_true(ky_gbt_predict_row(&m, x) == 0.5);
  double out[2];
  assert_int_equal(ky_gbt_predict(&m, out, x, 2, 3), KY_ERR_SHAPE);
  assert_non_null(strstr(ky_last_error(), "3 features, the model expects 2"));
  ky_gbt_free(&m);
  /* A booster's error reaches the caller's thread with its repetition and fold. */
  float ex[12 * 2], ey[12];
  int eg[12];
  for (int i = 0; i < 12; i++) { ex[2 * i] = (float)i; ex[2 * i + 1] = (float)(i % 3); ey[i] = (float)i; eg[i] = i / 2; }
  ex[2 * 5 + 1] = INFINITY;
  ky_gbt_ensemble e;
  p.threads = 2;
  assert_int_equal(ky_gbt_ensemble_train(&e, &p, ex, ey, eg, 12, 2, 1, 3, 1), KY_ERR_NUMERIC);
  assert_non_null(strstr(ky_last_error(), "booster 0 (repetition 0, fold 0): ky_gbt_train: x"));
  assert_non_null(strstr(ky_last_error(), "is inf"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_rmse_matches_xgboost),
    cmocka_unit_test(test_deterministic_and_save_load_bitwise),
    cmocka_unit_test(test_early_stopping_keeps_best_round),
    cmocka_unit_test(test_tree_limits),
    cmocka_unit_test(test_fewer_rows_than_features),
    cmocka_unit_test(test_ensemble_recipe),
    cmocka_unit_test(test_malformed_model_files),
    cmocka_unit_test(test_bad_input),
  };
  return cmocka_run_group_tests_name("post_gbt", tests, load_fixture, free_fixture);
}

/* Tests for pipeline/reproduce: the whole chain in miniature on the bundled sample (2 folds of its 7
 * non-hold-out images, 2 hold-out images, seconds-long nets): every artefact exists and loads, the
 * hold-out images never train, each nested GBT model scores only images it did not train on (and
 * refitting it from the images it lists gives the same model), the ensemble's maps are the
 * weighted mean of the members', a rerun skips the stages done, the GPU scale's plan, and bad options
 * are clear errors. */
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
#include "core/image.h"
#include "data/dsb.h"
#include "data/folds.h"
#include "pipeline/postproc.h"
#include "pipeline/predict.h"
#include "pipeline/reproduce.h"
#include "post/features.h"
#include "tests/util_test.h"

#define SAMPLE "tests/fixtures/dsb_sample"

static char *g_dir;
static char g_folds[512], g_out[512];
static ky_repro_opts g_opts;

/* The sample's folds.csv with its two hold-out rows kept and the other 7 split over folds 0 and 1. */
static int setup(void **st) {
  g_dir = ky_test_tmpdir("repro");
  if (!g_dir) return -1;
  ky_folds f;
  if (ky_folds_load(&f, SAMPLE "/folds.csv") != KY_OK) return -1;
  snprintf(g_folds, sizeof g_folds, "%s/folds2.csv", g_dir);
  snprintf(g_out, sizeof g_out, "%s/out", g_dir);
  FILE *o = fopen(g_folds, "w");
  if (!o) return -1;
  fprintf(o, "img_id,fold,cluster,hold_out\n");
  for (int i = 0, j = 0; i < f.n; i++)
    fprintf(o, "%s,%d,%s,%d\n", f.rows[i].id, f.rows[i].hold_out ? f.rows[i].fold : j++ % 2, f.rows[i].cluster, f.rows[i].hold_out);
  fclose(o);
  ky_folds_free(&f);
  ky_repro_opts_default(&g_opts);
  g_opts.data = SAMPLE;
  g_opts.folds = g_folds;
  g_opts.out = g_out;
  g_opts.scale = "tiny";
  g_opts.n_folds = 2;
  g_opts.device = "cpu";
  return 0;
}

static int teardown(void **st) {
  ky_test_rmdir(g_dir);
  free(g_dir);
  return 0;
}

typedef struct { int done, skipped; } stage_count;
static void count_stage(void *ud, const char *stage, double sec, int skipped) {
  stage_count *c = ud;
  c->done++;
  c->skipped += skipped;
}

static int exists(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int exists(const char *fmt, ...) {
  char p[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p, sizeof p, fmt, ap);
  va_end(ap);
  return access(p, F_OK) == 0;
}

static void load_labels_ok(const char *dir, const char *id) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s.png", dir, id);
  uint16_t *l;
  int h, w;
  if (ky_dsb_read_labels(&l, &h, &w, p) != KY_OK) fail_msg("%s: %s", p, ky_last_error());
  free(l);
}

static void test_whole_chain(void **st) {
  stage_count c = {0, 0};
  ky_repro_hooks h = {count_stage, {NULL, NULL, NULL, NULL, 0}, &c};
  if (ky_repro_run(&g_opts, &h) != KY_OK) fail_msg("%s", ky_last_error());
  assert_int_equal(c.done, 2 + 5);
  assert_int_equal(c.skipped, 0);
  ky_repro_plan p;
  assert_int_equal(ky_repro_plan_make(&p, &g_opts), KY_OK);
  assert_int_equal(p.n_ho, 2);
  assert_int_equal(p.n_oof, 7);

  /* The nets' folds CSV has no hold-out image. */
  ky_folds tf;
  assert_int_equal(ky_folds_load(&tf, p.train_csv), KY_OK);
  assert_int_equal(tf.n, 7);
  for (int i = 0; i < p.n_ho; i++) assert_int_equal(ky_folds_find(&tf, p.ho_ids[i]), -1);
  ky_folds_free(&tf);

  /* Checkpoints load; maps and labels exist for every image and stage. */
  char dir[1024];
  for (int k = 0; k < 2; k++) {
    ky_predictor pr;
    memset(&pr, 0, sizeof pr);
    char ck[1024];
    ky_repro_ckpt_path(ck, sizeof ck, &p, 0, k);
    if (ky_predictor_add(&pr, ck, 1, KY_DEV_CPU, NULL, NULL, NULL) != KY_OK) fail_msg("%s", ky_last_error());
    ky_predictor_free(&pr);
    assert_true(exists("%s/nets/%s_fold%d/curve.png", g_out, p.fam[0].name, k));
    assert_true(exists("%s/nets/%s_fold%d/epochs.csv", g_out, p.fam[0].name, k));
    for (int i = 0; i < p.n_oof; i++) {
      if (p.oof_fold[i] != k) continue;
      for (int t = 1; t <= 8; t += 7) {
        assert_true(exists("%s/oof/fold%d_tta%d/prob/%s_body.png", g_out, k, t, p.oof_ids[i]));
        snprintf(dir, sizeof dir, "%s/oof/fold%d_tta%d/labels", g_out, k, t);
        load_labels_ok(dir, p.oof_ids[i]);
      }
      snprintf(dir, sizeof dir, "%s/oof/fold%d_tta8/gbt_labels", g_out, k);
      load_labels_ok(dir, p.oof_ids[i]);
    }
    for (int i = 0; i < p.n_ho; i++) {
      snprintf(dir, sizeof dir, "%s/holdout/fold%d_tta1/labels", g_out, k);
      load_labels_ok(dir, p.ho_ids[i]);
      snprintf(dir, sizeof dir, "%s/holdout/fold%d_tta8/gbt_labels", g_out, k);
      load_labels_ok(dir, p.ho_ids[i]);
    }
    ky_gbt_ensemble e;
    snprintf(dir, sizeof dir, "%s/gbt/nested_fold%d.txt", g_out, k);
    if (ky_gbt_ensemble_load(&e, dir) != KY_OK) fail_msg("%s", ky_last_error());
    assert_int_equal(e.n, 3);
    ky_gbt_ensemble_free(&e);
  }
  ky_gbt_ensemble full;
  snprintf(dir, sizeof dir, "%s/gbt/gbt.txt", g_out);
  assert_int_equal(ky_gbt_ensemble_load(&full, dir), KY_OK);
  assert_int_equal(full.n_features, KY_POST_NFEAT);
  ky_gbt_ensemble_free(&full);
  for (int i = 0; i < p.n_ho; i++) {
    snprintf(dir, sizeof dir, "%s/predict/labels", g_out);
    load_labels_ok(dir, p.ho_ids[i]);
    snprintf(dir, sizeof dir, "%s/predict/level1", g_out);
    load_labels_ok(dir, p.ho_ids[i]);
    assert_true(exists("%s/predict/overlay/%s.png", g_out, p.ho_ids[i]));
  }
  assert_true(exists("%s/predict/submission.csv", g_out));

  /* Tables: one row per image, every stage timed, the summary's two sets. */
  char *text;
  size_t n;
  snprintf(dir, sizeof dir, "%s/tables/per_image.csv", g_out);
  assert_int_equal(ky_file_read_all(dir, &text, &n), KY_OK);
  int lines = 0;
  for (size_t q = 0; q < n; q++) lines += text[q] == '\n';
  assert_int_equal(lines, 1 + 7 + 2);
  assert_non_null(strstr(text, "img_id,set,fold,oof_tta1_level1,oof_tta8_level1,oof_tta8_gbt_nested,fold0_tta1_level1"));
  free(text);
  snprintf(dir, sizeof dir, "%s/tables/stages.csv", g_out);
  assert_int_equal(ky_file_read_all(dir, &text, &n), KY_OK);
  const char *stages[] = {"train_fold0,", "train_fold1,", "oof,", "holdout,", "gbt,", "predict,", "score,"};
  for (int i = 0; i < 7; i++) assert_non_null(strstr(text, stages[i]));
  free(text);
  snprintf(dir, sizeof dir, "%s/tables/summary.md", g_out);
  assert_int_equal(ky_file_read_all(dir, &text, &n), KY_OK);
  assert_non_null(strstr(text, "## Hold-out images (2;"));
  assert_non_null(strstr(text, "## Out-of-fold images (7;"));
  /* The run's own check: ensemble maps within truncation of the mean of the fold maps. */
  const char *chk = strstr(text, "by at most ");
  assert_non_null(chk);
  assert_true(atof(chk + 11) < 1.0);
  free(text);

  /* A rerun finds every stage done (the score table is always redone). */
  stage_count c2 = {0, 0};
  ky_repro_hooks h2 = {count_stage, {NULL, NULL, NULL, NULL, 0}, &c2};
  assert_int_equal(ky_repro_run(&g_opts, &h2), KY_OK);
  assert_int_equal(c2.skipped, 6);
  ky_repro_plan_free(&p);
}

/* Nested GBT: each model's scored images are its own fold's, none of them is among its training
 * images, every OOF image is scored once, and hold-out images are nowhere. */
static void test_nested_gbt_never_scores_its_training_images(void **st) {
  ky_folds f;
  assert_int_equal(ky_folds_load(&f, g_folds), KY_OK);
  char path[1024], *text;
  size_t n;
  snprintf(path, sizeof path, "%s/gbt/nested.csv", g_out);
  assert_int_equal(ky_file_read_all(path, &text, &n), KY_OK);
  enum { MAXR = 64 };
  char model[MAXR][32], role[MAXR][16], id[MAXR][80];
  int nr = 0;
  char *save, *line = strtok_r(text, "\n", &save);
  assert_string_equal(line, "model,role,img_id,fold");
  while ((line = strtok_r(NULL, "\n", &save)) && nr < MAXR) {
    int fold;
    assert_int_equal(sscanf(line, "%31[^,],%15[^,],%79[^,],%d", model[nr], role[nr], id[nr], &fold), 4);
    int row = ky_folds_find(&f, id[nr]);
    assert_true(row >= 0);
    assert_int_equal(f.rows[row].fold, fold);
    assert_int_equal(f.rows[row].hold_out, 0);
    nr++;
  }
  free(text);
  int scored[MAXR] = {0}, n_scored = 0, n_train[2] = {0, 0};
  for (int k = 0; k < 2; k++) {
    char mk[32];
    snprintf(mk, sizeof mk, "nested_fold%d", k);
    for (int a = 0; a < nr; a++) {
      if (strcmp(model[a], mk)) continue;
      int fold = f.rows[ky_folds_find(&f, id[a])].fold;
      if (!strcmp(role[a], "scored")) {
        assert_int_equal(fold, k);
        for (int b = 0; b < nr; b++)
          if (!strcmp(model[b], mk) && !strcmp(role[b], "train")) assert_string_not_equal(id[a], id[b]);
        for (int b = 0; b < a; b++) if (scored[b]) assert_string_not_equal(id[a], id[b]);
        scored[a] = 1;
        n_scored++;
      } else {
        assert_string_equal(role[a], "train");
        assert_int_not_equal(fold, k);
        n_train[k]++;
      }
    }
  }
  assert_int_equal(n_scored, 7);
  assert_true(n_train[0] >= 3 && n_train[1] >= 3);

  /* Refit nested_fold0 from the images it lists, with the seed the stage uses (seed + 100 + k):
   * the same boosters, so it saw exactly those images' rows. */
  const char *ids[MAXR];
  int ni = 0;
  for (int a = 0; a < nr; a++) if (!strcmp(model[a], "nested_fold0") && !strcmp(role[a], "train")) ids[ni++] = id[a];
  float *x, *y;
  int *g;
  ky_postproc_stats ps;
  snprintf(path, sizeof path, "%s/oof/fold1_tta8/prob", g_out);
  assert_int_equal(ky_postproc_table_ids(&x, &y, &g, &ps, path, SAMPLE, ids, ni), KY_OK);
  ky_gbt_ensemble refit, saved;
  assert_int_equal(ky_postproc_fit(&refit, x, y, g, ps.n_rows, ps.n_images, 1, g_opts.seed + 100), KY_OK);
  snprintf(path, sizeof path, "%s/gbt/nested_fold0.txt", g_out);
  assert_int_equal(ky_gbt_ensemble_load(&saved, path), KY_OK);
  double *a = malloc(sizeof(double) * (size_t)ps.n_rows), *b = malloc(sizeof(double) * (size_t)ps.n_rows);
  assert_int_equal(ky_gbt_ensemble_predict(&refit, a, x, (int)ps.n_rows, KY_POST_NFEAT), KY_OK);
  assert_int_equal(ky_gbt_ensemble_predict(&saved, b, x, (int)ps.n_rows, KY_POST_NFEAT), KY_OK);
  for (long r = 0; r < ps.n_rows; r++) assert_true(fabs(a[r] - b[r]) < 1e-12);
  free(a); free(b); free(x); free(y); free(g);
  ky_gbt_ensemble_free(&refit);
  ky_gbt_ensemble_free(&saved);
  ky_folds_free(&f);
}

/* ky_predict_probs over the two fold nets with weights 1 and 3 equals (1 p0 + 3 p1) / 4 of the
 * members' own maps, channel by channel, TTA 8. */
static void test_ensemble_is_weighted_mean(void **st) {
  ky_repro_plan p;
  assert_int_equal(ky_repro_plan_make(&p, &g_opts), KY_OK);
  ky_dsb_sample sm;
  assert_int_equal(ky_dsb_load(&sm, SAMPLE, p.ho_ids[0], KY_DSB_MASKS_SKIP), KY_OK);
  size_t np = (size_t)sm.h * sm.w;
  float *m[3][3];
  for (int a = 0; a < 3; a++) for (int c = 0; c < 3; c++) m[a][c] = malloc(np * sizeof(float));
  ky_ctx ctx;
  assert_int_equal(ky_ctx_init(&ctx, KY_DEV_CPU, 0), KY_OK);
  const float wt[2] = {1, 3};
  for (int a = 0; a < 3; a++) {
    ky_predictor pr;
    memset(&pr, 0, sizeof pr);
    pr.tta = 8;
    for (int k = 0; k < 2; k++) {
      if (a < 2 && k != a) continue;
      char ck[1024];
      ky_repro_ckpt_path(ck, sizeof ck, &p, 0, k);
      assert_int_equal(ky_predictor_add(&pr, ck, wt[k], KY_DEV_CPU, NULL, NULL, NULL), KY_OK);
    }
    assert_int_equal(ky_predict_probs(&ctx, &pr, sm.rgb, sm.h, sm.w, m[a][0], m[a][1], m[a][2]), KY_OK);
    ky_predictor_free(&pr);
  }
  double worst = 0, spread = 0;
  for (int c = 0; c < 3; c++)
    for (size_t q = 0; q < np; q++) {
      double want = (1.0 * m[0][c][q] + 3.0 * m[1][c][q]) / 4;
      worst = fmax(worst, fabs(m[2][c][q] - want));
      spread = fmax(spread, fabs(m[0][c][q] - m[1][c][q]));
    }
  assert_true(worst < 1e-5);
  assert_true(spread > 1e-2);   /* the members differ, so the weights matter */
  for (int a = 0; a < 3; a++) for (int c = 0; c < 3; c++) free(m[a][c]);
  ky_ctx_free(&ctx);
  ky_dsb_sample_free(&sm);
  ky_repro_plan_free(&p);
}

/* The GPU scale's plan: the reference's two families with their schedules; overrides by family. */
static void test_gpu_plan(void **st) {
  ky_repro_plan p;
  ky_repro_opts o = g_opts;
  char out[600];
  snprintf(out, sizeof out, "%s/out_gpu", g_dir);
  o.out = out;
  o.scale = "gpu";
  const char *sets[] = {"fpn152:lr=2e-4", "val_images=3"};
  o.set = sets;
  o.n_set = 2;
  assert_int_equal(ky_repro_plan_make(&p, &o), KY_OK);
  assert_int_equal(p.n_fam, 2);
  assert_string_equal(p.fam[0].cfg.model, "unet_resnet34");
  assert_string_equal(p.fam[0].cfg.schedule, "exp:0.85");
  assert_int_equal(p.fam[0].cfg.crop, 256);
  assert_int_equal(p.fam[0].cfg.batch, 16);
  assert_true(fabsf(p.fam[0].cfg.lr - 5e-5f) < 1e-9f);
  assert_string_equal(p.fam[1].cfg.model, "fpn_resnet152");
  assert_string_equal(p.fam[1].cfg.loss, "sigmoid");
  assert_true(fabsf(p.fam[1].cfg.lr - 2e-4f) < 1e-9f);
  assert_int_equal(p.fam[0].cfg.val_images, 3);
  assert_int_equal(p.fam[1].cfg.val_images, 3);
  assert_int_equal(p.o.gbt_reps, 50);
  assert_true(exists("%s/plan/families.txt", out));
  ky_repro_plan_free(&p);
}

static void test_bad_options(void **st) {
  ky_repro_plan p;
  ky_repro_opts o = g_opts;
  o.scale = "huge";
  assert_int_equal(ky_repro_plan_make(&p, &o), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "scale 'huge'"));
  o = g_opts;
  o.n_folds = 5;
  assert_int_equal(ky_repro_plan_make(&p, &o), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "5 folds"));
  o = g_opts;
  const char *bad[] = {"nofamily:lr=1"};
  o.set = bad;
  o.n_set = 1;
  assert_int_equal(ky_repro_plan_make(&p, &o), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "no family named 'nofamily'"));
  const char *bad2[] = {"lerning_rate=1"};
  o.set = bad2;
  assert_int_equal(ky_repro_plan_make(&p, &o), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "unknown key 'lerning_rate'"));
  /* Every row hold-out: nothing to train on. */
  char path[600];
  snprintf(path, sizeof path, "%s/allho.csv", g_dir);
  const char *csv = "img_id,fold,hold_out\n13c8ff1f49886e91c98ce795c93648ad8634c782ff57eb928ce29496b0425057,0,1\n";
  assert_int_equal(ky_file_write_atomic(path, csv, strlen(csv)), KY_OK);
  o = g_opts;
  o.folds = path;
  snprintf(path + 300, 300, "%s/out_bad", g_dir);
  o.out = path + 300;
  assert_int_equal(ky_repro_plan_make(&p, &o), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "no scorable images in fold 0"));
  o = g_opts;
  o.data = "/nonexistent_ky/dsb";
  assert_int_equal(ky_repro_plan_make(&p, &o), KY_ERR_IO);
  assert_non_null(strstr(ky_last_error(), "/nonexistent_ky/dsb"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_whole_chain),
    cmocka_unit_test(test_nested_gbt_never_scores_its_training_images),
    cmocka_unit_test(test_ensemble_is_weighted_mean),
    cmocka_unit_test(test_gpu_plan),
    cmocka_unit_test(test_bad_options),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

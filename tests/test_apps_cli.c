/* Command-line tests: runs the built `karyon` ($KY_BUILD/karyon, set by `make test`) on the bundled
 * sample: --help of every command, exit codes, pack, train a few iterations, resume, predict,
 * score (submissions score exactly as their label PNGs), postproc train/apply, and config errors;
 * checks the files each step writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/image.h"
#include "data/dsb.h"
#include "tests/util_test.h"

static char karyon[512], *dir, out_txt[600];

/* Runs a karyon command line with stdout+stderr into dir/out.txt; returns the exit status. */
static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...) {
  char args[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(args, sizeof args, fmt, ap);
  va_end(ap);
  return ky_test_sh(out_txt, "%s %s", karyon, args);
}

static char *output(void) { return ky_test_read_text(out_txt); }

static void expect_output(const char *needle) {
  if (!ky_test_log_has(out_txt, needle)) fail_msg("output lacks '%s'", needle);
}

/* The "images: N" and "score: S" lines `karyon score` ends with. */
static void score_line(double *score, double *images) {
  char *o = output(), *sc = strstr(o, "\nscore: "), *im = strstr(o, "images: ");
  if (!sc || !im || sscanf(sc + 8, "%lf", score) != 1 || sscanf(im + 8, "%lf", images) != 1)
    fail_msg("no 'images: N' and 'score: S' lines in:\n%s", o);
  free(o);
}

static void test_help_and_exit_codes(void **st) {
  const char *cmds[] = {"train", "predict", "postproc", "segment", "score", "watershed", "targets", "pack", "summary", "info",
                        "demo"};
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
    if (run("%s --help", cmds[i]) != 0) fail_msg("karyon %s --help failed", cmds[i]);
    expect_output("usage: karyon");
  }
  assert_int_equal(run("--help"), 0);
  expect_output("commands:");
  assert_int_equal(run("frobnicate"), 2);
  expect_output("unknown command 'frobnicate'");
  assert_int_not_equal(run("train --data /nonexistent_ky --out %s/x", dir), 0);
  expect_output("/nonexistent_ky");
  assert_int_not_equal(run("train --data tests/fixtures/dsb_sample --batchsize 3"), 0);
  expect_output("unknown option '--batchsize'");
  assert_int_not_equal(run("train --data tests/fixtures/dsb_sample --lr fast"), 0);
  expect_output("'lr' must be a number");
  assert_int_not_equal(run("predict --ckpt %s/none.safetensors --images tests/fixtures/dsb_sample --out %s/p", dir, dir), 0);
  expect_output("none.safetensors");
  assert_int_equal(run("summary --model unet_resnet34"), 0);
  expect_output("params: 24531523");
}

/* pack writes the compact layout; targets read from it equal targets read from the original. */
static void test_pack_then_targets(void **st) {
  const char *id = "13c8ff1f";
  char full[256] = {0}, p[1024], q[1024];
  ky_dsb_ids ids;
  assert_int_equal(ky_dsb_list_ids(&ids, "tests/fixtures/dsb_sample"), KY_OK);
  for (int i = 0; i < ids.n; i++)
    if (!strncmp(ids.ids[i], id, strlen(id))) snprintf(full, sizeof full, "%s", ids.ids[i]);
  ky_dsb_ids_free(&ids);
  assert_true(full[0]);
  assert_int_equal(run("pack --data tests/fixtures/dsb_sample --out %s/packed", dir), 0);
  expect_output("wrote 9 samples (9 with labels)");
  snprintf(p, sizeof p, "%s/packed/%s/labels.png", dir, full);
  assert_int_equal(access(p, R_OK), 0);
  assert_int_equal(run("targets --data tests/fixtures/dsb_sample --ids %s --out %s/t_orig", full, dir), 0);
  assert_int_equal(run("targets --data %s/packed --ids %s --out %s/t_packed", dir, full, dir), 0);
  const char *kinds[] = {"body", "border", "full", "labels"};
  for (int k = 0; k < 4; k++) {
    char *a, *b;
    size_t na, nb;
    snprintf(p, sizeof p, "%s/t_orig/%s_%s.png", dir, full, kinds[k]);
    snprintf(q, sizeof q, "%s/t_packed/%s_%s.png", dir, full, kinds[k]);
    assert_int_equal(ky_file_read_all(p, &a, &na), KY_OK);
    assert_int_equal(ky_file_read_all(q, &b, &nb), KY_OK);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    free(a);
    free(b);
  }
  assert_int_equal(run("pack --data tests/fixtures/dsb_sample --ids , --out %s/p2", dir), 1);
  expect_output("names no id");
}

static void test_train_resume_predict_score(void **st) {
  const char *common = "--data tests/fixtures/dsb_sample --folds tests/fixtures/dsb_sample/folds.csv --model unet_resnet18 "
                       "--width 0.125 --crop 64 --batch 2 --epoch_size 4 --device cpu --lr 1e-3 --threads 1";
  if (run("train %s --iters 4 --out %s/run", common, dir) != 0) { char *o = output(); fail_msg("train: %s", o); }
  expect_output("epoch 0 (step 4)");
  /* A config file, extended by a flag; resume continues from step 4 to 8. */
  char cfg[700];
  snprintf(cfg, sizeof cfg, "%s/run/config.txt", dir);
  if (run("train --config %s --iters 8 --resume", cfg) != 0) { char *o = output(); fail_msg("resume: %s", o); }
  expect_output("resumed from");
  expect_output("done: 8 steps");
  /* Predict the two fold-0 images, all 9 in fact, and score them. */
  if (run("predict --ckpt %s/run/last.safetensors --images tests/fixtures/dsb_sample --out %s/pred --tta 8 --export-dsb %s/exp",
          dir, dir, dir) != 0) { char *o = output(); fail_msg("predict: %s", o); }
  expect_output("predicted 9 images");
  char p[800];
  snprintf(p, sizeof p, "%s/pred/labels/d2815f2f616d92be35c7e8dcfe592deec88516aef9ffc9b21257f52b7d6d0354.png", dir);
  ky_image im;
  assert_int_equal(ky_image_load(&im, p), KY_OK);
  assert_int_equal(im.depth, 16);
  assert_int_equal(im.w, 256);
  ky_image_free(&im);
  if (run("score --truth tests/fixtures/dsb_sample --pred %s/pred/labels --csv %s/scores.csv", dir, dir) != 0) {
    char *o = output(); fail_msg("score: %s", o);
  }
  double png_score, png_images, csv_score, csv_images;
  score_line(&png_score, &png_images);
  snprintf(p, sizeof p, "%s/scores.csv", dir);
  assert_int_equal(access(p, R_OK), 0);
  /* The submission scores the same as the label PNGs: same images, same mean to the printed digit. */
  if (run("score --truth tests/fixtures/dsb_sample --pred %s/pred/submission.csv", dir) != 0) { char *o = output(); fail_msg("score csv: %s", o); }
  score_line(&csv_score, &csv_images);
  assert_int_equal((int)png_images, 9);
  assert_int_equal((int)csv_images, 9);
  if (csv_score != png_score) fail_msg("submission scores %.5f, its label PNGs %.5f", csv_score, png_score);
  /* Second level on maps with real candidates: the reference targets as probability maps
   * (`karyon targets` writes <id>_body/_border/_full.png, the names postproc reads). */
  if (run("targets --data tests/fixtures/dsb_sample --out %s/tg", dir) != 0) { char *o = output(); fail_msg("targets: %s", o); }
  if (run("postproc train --prob %s/tg --truth tests/fixtures/dsb_sample --out %s/gbt.txt --reps 1", dir, dir) != 0) {
    char *o = output(); fail_msg("postproc train: %s", o);
  }
  expect_output("candidate rows");
  if (run("postproc apply --prob %s/tg --gbt %s/gbt.txt --out %s/pp", dir, dir, dir) != 0) {
    char *o = output(); fail_msg("postproc apply: %s", o);
  }
  expect_output("segmented 9 images");
  snprintf(p, sizeof p, "%s/pp/submission.csv", dir);
  assert_int_equal(access(p, R_OK), 0);
  /* Near-perfect maps: the GBT-selected instances must score well against the masks. */
  if (run("score --truth tests/fixtures/dsb_sample --pred %s/pp/labels", dir) != 0) { char *o = output(); fail_msg("score pp: %s", o); }
  double pp_score, pp_images;
  score_line(&pp_score, &pp_images);
  if (pp_score < 0.5) fail_msg("GBT selection on target maps scores only %.5f", pp_score);
  /* Its submission (RLE of the same instances) scores exactly as its label PNGs. An 8-step model's
   * predictions above may hold no instance, so this is the comparison with something in it. */
  if (run("score --truth tests/fixtures/dsb_sample --pred %s/pp/submission.csv", dir) != 0) { char *o = output(); fail_msg("score pp csv: %s", o); }
  score_line(&csv_score, &csv_images);
  assert_int_equal((int)csv_images, 9);
  if (csv_score != pp_score) fail_msg("postproc submission scores %.5f, its label PNGs %.5f", csv_score, pp_score);
  print_message("score: predict labels %.5f = submission; postproc labels %.5f = submission\n", png_score, pp_score);
  /* karyon segment over the same maps: the level-1 rule (seg0) and GBT selection (seg1), each
   * writing the feature table; both must score well against the masks. */
  if (run("segment --prob %s/tg --out %s/seg0 --features %s/feat0.csv", dir, dir, dir) != 0) {
    char *o2 = output(); fail_msg("segment: %s", o2);
  }
  if (run("segment --prob %s/tg --out %s/seg1 --gbt %s/gbt.txt --features %s/feat1.csv", dir, dir, dir, dir) != 0) {
    char *o2 = output(); fail_msg("segment --gbt: %s", o2);
  }
  for (int g = 0; g < 2; g++) {
    if (run("score --truth tests/fixtures/dsb_sample --pred %s/seg%d", dir, g) != 0) { char *o2 = output(); fail_msg("score seg%d: %s", g, o2); }
    char *o2 = output(), *sc2 = strstr(o2, "score: ");
    assert_non_null(sc2);
    if (atof(sc2 + 7) < 0.5) fail_msg("segment (gbt %d) on target maps scores only %s", g, sc2 + 7);
    free(o2);
    snprintf(p, sizeof p, "%s/feat%d.csv", dir, g);
    assert_int_equal(access(p, R_OK), 0);
  }
  /* Post-processing runs one image per thread: the model, the labels, the submissions and the
   * feature table are the same files at 1 and 3 threads as at the default count. */
  for (int t = 1; t <= 3; t += 2) {
    if (run("postproc train --prob %s/tg --truth tests/fixtures/dsb_sample --out %s/gbt%d.txt --reps 1 --threads %d", dir,
            dir, t, t) != 0) {
      char *o2 = output(); fail_msg("postproc train --threads %d: %s", t, o2);
    }
    if (run("postproc apply --prob %s/tg --gbt %s/gbt.txt --out %s/pp%d --threads %d", dir, dir, dir, t, t) != 0) {
      char *o2 = output(); fail_msg("postproc apply --threads %d: %s", t, o2);
    }
    if (run("segment --prob %s/tg --out %s/seg1t%d --gbt %s/gbt.txt --features %s/feat1t%d.csv --threads %d", dir, dir, t,
            dir, dir, t, t) != 0) {
      char *o2 = output(); fail_msg("segment --threads %d: %s", t, o2);
    }
    char a[700], b[700];
    const char *pairs[][2] = {{"gbt.txt", "gbt%d.txt"}, {"pp/submission.csv", "pp%d/submission.csv"},
                              {"seg1/submission.csv", "seg1t%d/submission.csv"}, {"feat1.csv", "feat1t%d.csv"}};
    for (int k = 0; k < 4; k++) {
      char rel[64];
      snprintf(rel, sizeof rel, pairs[k][1], t);
      snprintf(a, sizeof a, "%s/%s", dir, pairs[k][0]);
      snprintf(b, sizeof b, "%s/%s", dir, rel);
      char *da, *db;
      size_t na, nb;
      assert_int_equal(ky_file_read_all(a, &da, &na), KY_OK);
      assert_int_equal(ky_file_read_all(b, &db, &nb), KY_OK);
      if (na != nb || memcmp(da, db, na)) fail_msg("%s at --threads %d differs from %s", rel, t, pairs[k][0]);
      free(da);
      free(db);
    }
  }
  /* The export holds exactly the images with instances, one mask PNG per instance. */
  int exported = 0;
  const char *ids[9] = {"13c8ff1f49886e91c98ce795c93648ad8634c782ff57eb928ce29496b0425057",
                        "16c3d5935ba94b720becc24b7a05741c26149e221e3401924080f41e2f891368",
                        "1ec74a26e772966df764e063f1391109a60d803cff9d15680093641ed691bf72",
                        "4193474b2f1c72f735b13633b219d9cabdd43c21d9c2bb4dfc4809f104ba4c06",
                        "66612c188d73e931e1863af2c99d2af782c32f65fd97d224abb40bbadb87263f",
                        "8e507d58f4c27cd2a82bee79fe27b069befd62a46fdaed20970a95a2ba819c7b",
                        "d2815f2f616d92be35c7e8dcfe592deec88516aef9ffc9b21257f52b7d6d0354",
                        "e321cfa987e77c21373a0f8b1236c83d6636306949a82a7f5b07fc0838e7777f",
                        "f4b7c24baf69b8752c49d0eb5db4b7b5e1524945d48e54925bff401d5658045d"};
  for (int i = 0; i < 9; i++) {
    snprintf(p, sizeof p, "%s/pred/labels/%s.png", dir, ids[i]);
    assert_int_equal(ky_image_load(&im, p), KY_OK);
    int maxl = 0;
    for (int q = 0; q < im.w * im.h; q++) if (((uint16_t *)im.data)[q] > maxl) maxl = ((uint16_t *)im.data)[q];
    ky_image_free(&im);
    snprintf(p, sizeof p, "%s/exp/%s/masks/%s_%05d.png", dir, ids[i], ids[i], maxl);
    if (maxl > 0) { exported++; if (access(p, R_OK) != 0) fail_msg("export lacks %s", p); }
    snprintf(p, sizeof p, "%s/exp/%s", dir, ids[i]);
    if (maxl == 0 && access(p, F_OK) == 0) fail_msg("%s has no instances but was exported", ids[i]);
  }
  /* An exported pseudo-label folder trains like any DSB folder (as extra data beside the sample). */
  char extra[700];
  if (exported) snprintf(extra, sizeof extra, "%s/exp", dir);
  else snprintf(extra, sizeof extra, "tests/fixtures/dsb_sample");   /* an 8-step model may find nothing */
  if (run("train %s --extra_data %s --iters 2 --out %s/run2", common, extra, dir) != 0) {
    char *o = output(); fail_msg("train with the export as extra data: %s", o);
  }
}

static int setup(void **st) {
  const char *b = getenv("KY_BUILD");
  snprintf(karyon, sizeof karyon, "%s/karyon", b && *b ? b : "build");
  if (access(karyon, X_OK) != 0) { fprintf(stderr, "test_apps_cli: %s not built\n", karyon); return -1; }
  dir = ky_test_tmpdir("cli");
  if (!dir) return -1;
  snprintf(out_txt, sizeof out_txt, "%s/out.txt", dir);
  return 0;
}

static int teardown(void **st) {
  ky_test_rmdir(dir);
  free(dir);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_help_and_exit_codes),
      cmocka_unit_test(test_pack_then_targets),
      cmocka_unit_test(test_train_resume_predict_score),
  };
  return cmocka_run_group_tests_name("apps_cli", tests, setup, teardown);
}

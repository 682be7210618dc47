/* Tests for pipeline/: the config table (unknown keys, bad values, files, flags win), training on
 * the bundled sample (runs, writes its files, resumes bitwise: 20 steps == 10 + kill + 10), the
 * TTA transforms (every variant's inverse restores the image), folder inference outputs
 * (label PNG values, submission CSV format, overlays), clear errors for bad checkpoints, and the
 * same checkpoints whatever the number of kernel threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/image.h"
#include "data/dsb.h"
#include "pipeline/config.h"
#include "pipeline/infer.h"
#include "pipeline/predict.h"
#include "pipeline/train.h"
#include "tests/util_test.h"

#define SAMPLE "tests/fixtures/dsb_sample"

static void test_config_errors(void **st) {
  ky_train_config c;
  ky_train_config_default(&c);
  assert_int_equal(ky_train_config_set(&c, "lerning_rate", "1"), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "unknown key 'lerning_rate'"));
  assert_int_equal(ky_train_config_set(&c, "batch", "sixteen"), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "'batch' must be an integer"));
  assert_int_equal(ky_train_config_set(&c, "lr", "1e-3x"), KY_ERR_ARG);
  assert_int_equal(ky_train_config_set(&c, "decoder_bn", "maybe"), KY_ERR_ARG);
  /* A file: errors name the file and line; flags given after --config win. */
  char *dir = ky_test_tmpdir("cfg");
  char path[300];
  snprintf(path, sizeof path, "%s/a.cfg", dir);
  const char *text = "# comment\nmodel = fpn_resnet50\nbatch = 4   # trailing comment\n";
  assert_int_equal(ky_file_write_atomic(path, text, strlen(text)), KY_OK);
  char *argv[] = {"train", "--batch", "7", "--config", path, NULL};
  assert_int_equal(ky_train_config_args(&c, 5, argv, NULL), KY_OK);
  assert_string_equal(c.model, "fpn_resnet50");
  assert_int_equal(c.batch, 7);
  const char *bad = "model = unet_resnet34\nnot a pair\n";
  assert_int_equal(ky_file_write_atomic(path, bad, strlen(bad)), KY_OK);
  assert_int_equal(ky_train_config_load(&c, path), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "a.cfg:2"));
  char *argv2[] = {"train", "--nope", "1", NULL};
  assert_int_equal(ky_train_config_args(&c, 3, argv2, NULL), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "unknown option '--nope'"));
  /* Validation: missing data folder, bad loss name. */
  ky_train_config_default(&c);
  assert_int_equal(ky_train_config_validate(&c), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "'data'"));
  snprintf(c.data, sizeof c.data, "/nonexistent/dsb");
  assert_int_equal(ky_train_config_validate(&c), KY_ERR_IO);
  assert_non_null(strstr(ky_last_error(), "/nonexistent/dsb"));
  snprintf(c.data, sizeof c.data, "%s", SAMPLE);
  snprintf(c.loss, sizeof c.loss, "hinge");
  assert_int_equal(ky_train_config_validate(&c), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "loss 'hinge'"));
  /* Write -> read gives the same config. */
  ky_train_config_default(&c);
  c.lr = 1.25e-4f;
  snprintf(path, sizeof path, "%s/eff.cfg", dir);
  assert_int_equal(ky_train_config_save(&c, path), KY_OK);
  ky_train_config d;
  ky_train_config_default(&d);
  d.lr = 9;
  assert_int_equal(ky_train_config_load(&d, path), KY_OK);
  assert_memory_equal(&c, &d, sizeof c);
  ky_test_rmdir(dir);
  free(dir);
}

static void tiny_config(ky_train_config *c, const char *out) {
  ky_train_config_default(c);
  snprintf(c->data, sizeof c->data, "%s", SAMPLE);
  snprintf(c->folds, sizeof c->folds, "%s/folds.csv", SAMPLE);
  snprintf(c->model, sizeof c->model, "unet_resnet18");
  snprintf(c->out, sizeof c->out, "%s", out);
  snprintf(c->device, sizeof c->device, "cpu");
  c->width = 0.125f;
  c->crop = 64;
  c->batch = 2;
  c->iters = 20;
  c->epoch_size = 8;
  c->lr = 1e-3f;
  c->loader_threads = 2;
  c->copy_paste = 0.5f;
  c->quiet = 1;
}

static void test_resume_is_bitwise(void **st) {
  char *dir = ky_test_tmpdir("resume");
  char a[300], b[300], pa[400], pb[400];
  snprintf(a, sizeof a, "%s/full", dir);
  snprintf(b, sizeof b, "%s/split", dir);
  ky_train_config c;
  tiny_config(&c, a);
  ky_train_result r;
  if (ky_train_run(&c, 0, NULL, &r) != KY_OK) fail_msg("uninterrupted run: %s", ky_last_error());
  assert_int_equal(r.steps, 20);
  /* Interrupted after 10 steps (mid-epoch: the checkpoint comes from the kill path), resumed. */
  tiny_config(&c, b);
  ky_train_hooks h = {0};
  h.stop_after = 10;
  if (ky_train_run(&c, 0, &h, &r) != KY_OK) fail_msg("first half: %s", ky_last_error());
  assert_int_equal(r.steps, 10);
  if (ky_train_run(&c, 1, NULL, &r) != KY_OK) fail_msg("resumed half: %s", ky_last_error());
  assert_int_equal(r.steps, 20);
  snprintf(pa, sizeof pa, "%s/last.safetensors", a);
  snprintf(pb, sizeof pb, "%s/last.safetensors", b);
  char *da, *db;
  size_t na, nb;
  assert_int_equal(ky_file_read_all(pa, &da, &na), KY_OK);
  assert_int_equal(ky_file_read_all(pb, &db, &nb), KY_OK);
  /* The config text names the output folder, which differs: compare the tensors' bytes. */
  uint64_t ha = 0, hb = 0;
  memcpy(&ha, da, 8);
  memcpy(&hb, db, 8);
  assert_int_equal(na - 8 - ha, nb - 8 - hb);
  assert_memory_equal(da + 8 + ha, db + 8 + hb, na - 8 - ha);
  free(da);
  free(db);
  /* The other outputs exist. */
  const char *files[] = {"config.txt", "log.csv", "epochs.csv", "curve.png", "best.safetensors"};
  for (int i = 0; i < 5; i++) {
    snprintf(pa, sizeof pa, "%s/%s", b, files[i]);
    if (access(pa, R_OK) != 0) fail_msg("missing %s", pa);
  }
  ky_image curve;
  snprintf(pa, sizeof pa, "%s/curve.png", b);
  assert_int_equal(ky_image_load(&curve, pa), KY_OK);
  assert_int_equal(curve.w, 800);
  ky_image_free(&curve);
  /* The per-step log holds steps 1..20 exactly once after the resume. */
  char *log;
  size_t nl;
  snprintf(pa, sizeof pa, "%s/log.csv", b);
  assert_int_equal(ky_file_read_all(pa, &log, &nl), KY_OK);
  int lines = 0;
  for (size_t i = 0; i < nl; i++) lines += log[i] == '\n';
  assert_int_equal(lines, 21);
  free(log);

  /* Folder inference with the trained checkpoint. */
  ky_ctx ctx;
  assert_int_equal(ky_ctx_init(&ctx, KY_DEV_CPU, 0), KY_OK);
  ky_predictor p;
  memset(&p, 0, sizeof p);
  p.tta = 8;
  snprintf(pa, sizeof pa, "%s/last.safetensors", b);
  if (ky_predictor_add(&p, pa, 1, KY_DEV_CPU, NULL, NULL, NULL) != KY_OK) fail_msg("predictor: %s", ky_last_error());
  const char *only[2] = {"13c8ff1f49886e91c98ce795c93648ad8634c782ff57eb928ce29496b0425057",
                         "4193474b2f1c72f735b13633b219d9cabdd43c21d9c2bb4dfc4809f104ba4c06"};
  char out[300], exp[300];
  snprintf(out, sizeof out, "%s/pred", dir);
  snprintf(exp, sizeof exp, "%s/export", dir);
  ky_infer_opts io = {SAMPLE, out, NULL, 0.3, exp, 1, only, 2};
  ky_infer_result ir;
  if (ky_infer_folder(&ctx, &p, &io, &ir) != KY_OK) fail_msg("infer: %s", ky_last_error());
  assert_int_equal(ir.n_images, 2);
  for (int i = 0; i < 2; i++) {
    ky_image im;
    snprintf(pa, sizeof pa, "%s/labels/%s.png", out, only[i]);
    assert_int_equal(ky_image_load(&im, pa), KY_OK);
    assert_int_equal(im.depth, 16);
    int maxl = 0;
    for (int q = 0; q < im.w * im.h; q++) if (((uint16_t *)im.data)[q] > maxl) maxl = ((uint16_t *)im.data)[q];
    ky_image_free(&im);
    const char *suffix[4] = {"prob/%s_body.png", "prob/%s_border.png", "prob/%s_full.png", "overlay/%s.png"};
    for (int k = 0; k < 4; k++) {
      char rel[200];
      snprintf(rel, sizeof rel, suffix[k], only[i]);
      snprintf(pa, sizeof pa, "%s/%s", out, rel);
      assert_int_equal(ky_image_load(&im, pa), KY_OK);
      assert_int_equal(im.depth, 8);
      ky_image_free(&im);
    }
    /* Exported exactly when the image has instances (an empty masks/ folder is not training data). */
    snprintf(pa, sizeof pa, "%s/%s/images/%s.png", exp, only[i], only[i]);
    if ((access(pa, R_OK) == 0) != (maxl > 0)) fail_msg("%s: %d instances, export %s", only[i], maxl, pa);
  }
  /* Multi-scale TTA (Victor's 1, 0.75, 1.25) on one image: probabilities stay in [0, 1]. */
  {
    ky_dsb_sample sm;
    assert_int_equal(ky_dsb_load(&sm, SAMPLE, only[1], KY_DSB_MASKS_SKIP), KY_OK);
    size_t np = (size_t)sm.h * sm.w;
    float *pb = malloc(np * sizeof(float)), *ps = malloc(np * sizeof(float)), *pf = malloc(np * sizeof(float));
    p.n_scales = 3;
    p.scales[0] = 1; p.scales[1] = 0.75f; p.scales[2] = 1.25f;
    if (ky_predict_probs(&ctx, &p, sm.rgb, sm.h, sm.w, pb, ps, pf) != KY_OK) fail_msg("multi-scale: %s", ky_last_error());
    for (size_t q = 0; q < np; q++)
      if (!(pb[q] >= 0 && pb[q] <= 1 && ps[q] >= 0 && ps[q] <= 1 && pf[q] >= 0 && pf[q] <= 1)) fail_msg("probability out of range at %zu", q);
    p.n_scales = 0;
    free(pb); free(ps); free(pf);
    ky_dsb_sample_free(&sm);
  }
  char *csv;
  size_t nc;
  snprintf(pa, sizeof pa, "%s/submission.csv", out);
  assert_int_equal(ky_file_read_all(pa, &csv, &nc), KY_OK);
  assert_true(!strncmp(csv, "ImageId,EncodedPixels\n", 22));
  assert_non_null(strstr(csv, only[0]));
  assert_non_null(strstr(csv, only[1]));
  free(csv);
  ky_predictor_free(&p);
  ky_ctx_free(&ctx);
  ky_test_rmdir(dir);
  free(dir);
}

/* The demo model (pipeline/demo.c's CPU network) for a few steps, two epochs with validation, at 1,
 * 2 and 3 kernel threads (KY_THREADS, so the saved config text is the same): the last and best
 * checkpoints and the epoch log must be the same bytes. */
static void test_threads_same_checkpoint(void **st) {
  char *dir = ky_test_tmpdir("threads");
  char out[300], path[400];
  snprintf(out, sizeof out, "%s/run", dir);
  static const char *const files[] = {"last.safetensors", "best.safetensors", "epochs.csv"};
  char *ref[3] = {0};
  size_t nref[3] = {0};
  static const char *const counts[] = {"1", "2", "3"};
  for (int k = 0; k < 3; k++) {
    ky_train_config c;
    tiny_config(&c, out);
    snprintf(c.model, sizeof c.model, "unet_resnet18"); /* the CPU demo network */
    c.width = 0.25f;
    c.crop = 96;
    c.iters = 4;
    c.epoch_size = 2;
    c.val_images = 2;
    c.threads = 0;
    setenv("KY_THREADS", counts[k], 1);
    ky_train_result r;
    ky_status s = ky_train_run(&c, 0, NULL, &r);
    unsetenv("KY_THREADS");
    if (s != KY_OK) fail_msg("run at %s threads: %s", counts[k], ky_last_error());
    assert_int_equal(r.steps, 4);
    for (int f = 0; f < 3; f++) {
      char *d;
      size_t n;
      snprintf(path, sizeof path, "%s/%s", out, files[f]);
      assert_int_equal(ky_file_read_all(path, &d, &n), KY_OK);
      if (!k) {
        ref[f] = d;
        nref[f] = n;
        continue;
      }
      if (n != nref[f] || memcmp(d, ref[f], n))
        fail_msg("%s at %s threads differs from 1 thread (%zu vs %zu bytes)", files[f], counts[k], n, nref[f]);
      free(d);
    }
  }
  for (int f = 0; f < 3; f++) free(ref[f]);

  /* Folder inference with that checkpoint at 1 and 3 threads (three images, batches of 2 and 6):
   * the same maps, labels and submission. */
  char **ids, **paths;
  int nids;
  assert_int_equal(ky_infer_list(&ids, &paths, &nids, SAMPLE), KY_OK);
  assert_true(nids >= 3);
  const char *only[3] = {ids[0], ids[1], ids[2]};
  char *sub[2] = {0};
  size_t nsub[2] = {0};
  for (int k = 0; k < 2; k++) {
    ky_ctx ctx;
    assert_int_equal(ky_ctx_init(&ctx, KY_DEV_CPU, 0), KY_OK);
    assert_int_equal(ky_ctx_set_threads(&ctx, k ? 3 : 1), KY_OK);
    ky_predictor p;
    memset(&p, 0, sizeof p);
    p.tta = 1;
    snprintf(path, sizeof path, "%s/last.safetensors", out);
    if (ky_predictor_add(&p, path, 1, KY_DEV_CPU, NULL, NULL, NULL) != KY_OK) fail_msg("predictor: %s", ky_last_error());
    char pred[320];
    snprintf(pred, sizeof pred, "%s/pred%d", dir, k);
    ky_infer_opts io = {SAMPLE, pred, NULL, 0.3, NULL, 0, only, 3};
    ky_infer_result ir;
    if (ky_infer_folder(&ctx, &p, &io, &ir) != KY_OK) fail_msg("infer at %d threads: %s", k ? 3 : 1, ky_last_error());
    assert_int_equal(ir.n_images, 3);
    snprintf(path, sizeof path, "%s/submission.csv", pred);
    assert_int_equal(ky_file_read_all(path, &sub[k], &nsub[k]), KY_OK);
    ky_predictor_free(&p);
    ky_ctx_free(&ctx);
  }
  if (nsub[0] != nsub[1] || memcmp(sub[0], sub[1], nsub[0])) fail_msg("submission.csv differs at 3 threads");
  free(sub[0]);
  free(sub[1]);
  for (int i = 0; i < 3; i++) {
    const char *kinds[2] = {"prob/%s_body.png", "labels/%s.png"};
    for (int q = 0; q < 2; q++) {
      char rel[300], *d[2];
      size_t nd[2];
      snprintf(rel, sizeof rel, kinds[q], only[i]);
      for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/pred%d/%s", dir, k, rel);
        assert_int_equal(ky_file_read_all(path, &d[k], &nd[k]), KY_OK);
      }
      if (nd[0] != nd[1] || memcmp(d[0], d[1], nd[0])) fail_msg("%s differs at 3 threads", rel);
      free(d[0]);
      free(d[1]);
    }
  }
  ky_infer_list_free(ids, paths, nids);
  ky_test_rmdir(dir);
  free(dir);
}

static void test_bad_checkpoint(void **st) {
  ky_train_config c;
  char *dir = ky_test_tmpdir("badckpt");
  tiny_config(&c, dir);
  /* Resuming with no checkpoint, or a garbage one, names the file. */
  assert_int_not_equal(ky_train_run(&c, 1, NULL, NULL), KY_OK);
  assert_non_null(strstr(ky_last_error(), "last.safetensors"));
  char p[300];
  snprintf(p, sizeof p, "%s/last.safetensors", dir);
  assert_int_equal(ky_file_write_atomic(p, "garbage!garbage!", 16), KY_OK);
  assert_int_not_equal(ky_train_run(&c, 1, NULL, NULL), KY_OK);
  assert_non_null(strstr(ky_last_error(), "last.safetensors"));
  ky_predictor pr;
  memset(&pr, 0, sizeof pr);
  assert_int_not_equal(ky_predictor_add(&pr, p, 1, KY_DEV_CPU, NULL, NULL, NULL), KY_OK);
  assert_non_null(strstr(ky_last_error(), "last.safetensors"));
  ky_test_rmdir(dir);
  free(dir);
}

static void test_dihedral_inverse(void **st) {
  enum { H = 5, W = 7, C = 2 };
  float in[H * W * C], fw[H * W * C], back[H * W * C];
  for (int i = 0; i < H * W * C; i++) in[i] = (float)i;
  int seen_distinct = 0;
  for (int v = 0; v < 8; v++) {
    ky_dihedral(fw, in, H, W, C, v, 0);
    int vh = (v & 1) ? W : H, vw = (v & 1) ? H : W;
    ky_dihedral(back, fw, vh, vw, C, v, 1);
    assert_memory_equal(back, in, sizeof in);
    seen_distinct += memcmp(fw, in, sizeof in) != 0;
  }
  assert_int_equal(seen_distinct, 7);   /* only the identity leaves the image as it was */
  /* Bilinear resize: identity at the same size, constants stay constant, an exact 2x reduction
   * averages pixel pairs (OpenCV's half-pixel convention). */
  float ramp[4 * 4], half[2 * 2], same[16], cst[9], cst2[25];
  for (int i = 0; i < 16; i++) ramp[i] = (float)i;
  ky_resize_bilinear_f32(same, 4, 4, ramp, 4, 4, 1);
  assert_memory_equal(same, ramp, sizeof ramp);
  ky_resize_bilinear_f32(half, 2, 2, ramp, 4, 4, 1);
  assert_float_equal(half[0], (0 + 1 + 4 + 5) / 4.0, 1e-6);
  assert_float_equal(half[3], (10 + 11 + 14 + 15) / 4.0, 1e-6);
  for (int i = 0; i < 9; i++) cst[i] = 0.25f;
  ky_resize_bilinear_f32(cst2, 5, 5, cst, 3, 3, 1);
  for (int i = 0; i < 25; i++) assert_float_equal(cst2[i], 0.25, 1e-7);
  /* v = 1 is numpy.rot90: out[i][j] = in[j][W-1-i]. */
  ky_dihedral(fw, in, H, W, C, 1, 0);
  assert_true(fw[(0 * H + 0) * C] == in[(0 * W + W - 1) * C]);
  assert_true(fw[(2 * H + 3) * C + 1] == in[(3 * W + W - 1 - 2) * C + 1]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_config_errors),
      cmocka_unit_test(test_dihedral_inverse),
      cmocka_unit_test(test_bad_checkpoint),
      cmocka_unit_test(test_resume_is_bitwise),
      cmocka_unit_test(test_threads_same_checkpoint),
  };
  return cmocka_run_group_tests_name("pipeline_train", tests, NULL, NULL);
}

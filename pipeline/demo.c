/* The demo job (see pipeline/demo.h). Tested by tests/test_pipeline_demo.c. */
#include "pipeline/demo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/fileio.h"
#include "data/dsb.h"
#include "data/folds.h"
#include "models/checkpoint.h"
#include "pipeline/infer.h"
#include "post/metric.h"
#ifdef KY_HAVE_CUDA
#include "cuda/cuda.h"
#endif

ky_status ky_demo_score(double *mean, const char *truth_dir, const char *pred_dir, const char *const *ids, int n) {
  KY_CHECK(mean && n > 0, KY_ERR_ARG, "score: nothing to score");
  double *each = malloc((size_t)n * sizeof *each), sum = 0;
  if (!each) return ky_error(KY_ERR_NOMEM, "score: out of memory");
  ky_status s = ky_demo_score_each(each, truth_dir, pred_dir, ids, n);
  for (int i = 0; i < n && s == KY_OK; i++) sum += each[i];
  free(each);
  KY_TRY(s);
  *mean = sum / n;
  return KY_OK;
}

ky_status ky_demo_score_each(double *scores, const char *truth_dir, const char *pred_dir, const char *const *ids, int n) {
  KY_CHECK(scores && truth_dir && pred_dir && ids && n > 0, KY_ERR_ARG, "score: nothing to score");
  for (int i = 0; i < n; i++) {
    ky_dsb_sample sm;
    KY_TRY(ky_dsb_load(&sm, truth_dir, ids[i], KY_DSB_MASKS_REQUIRED));
    char p[4096];
    snprintf(p, sizeof p, "%s/%s.png", pred_dir, ids[i]);
    uint16_t *pl;
    int h, w;
    ky_status s = ky_dsb_read_labels(&pl, &h, &w, p);
    if (s == KY_OK && (h != sm.h || w != sm.w)) s = ky_error(KY_ERR_SHAPE, "%s is %dx%d, the image %dx%d", p, w, h, sm.w, sm.h);
    int32_t *a = NULL, *b = NULL;
    if (s == KY_OK) {
      a = malloc((size_t)h * w * sizeof *a);
      b = malloc((size_t)h * w * sizeof *b);
      if (!a || !b) s = ky_error(KY_ERR_NOMEM, "score: out of memory");
    }
    ky_metric_result mr;
    if (s == KY_OK) {
      for (size_t q = 0; q < (size_t)h * w; q++) { a[q] = sm.labels[q]; b[q] = pl[q]; }
      s = ky_metric_dsb(&mr, a, b, h, w);
    }
    if (s == KY_OK) scores[i] = mr.score;
    free(a); free(b);
    if (s == KY_OK) free(pl);
    ky_dsb_sample_free(&sm);
    KY_TRY(s);
  }
  return KY_OK;
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

ky_status ky_demo_run(const ky_demo_opts *o, const ky_train_hooks *hooks, ky_demo_result *r) {
  KY_CHECK(o && o->sample && o->out && r, KY_ERR_ARG, "demo: NULL argument");
  memset(r, 0, sizeof *r);
  double t0 = now_s();
  char folds_csv[4096], run[4096], pred[4096], pred0[4096], ckpt[4096], labels[4096];
  snprintf(folds_csv, sizeof folds_csv, "%s/folds.csv", o->sample);
  snprintf(run, sizeof run, "%s/train", o->out);
  snprintf(pred, sizeof pred, "%s/predict", o->out);
  snprintf(pred0, sizeof pred0, "%s/untrained", o->out);
  KY_TRY(ky_mkdirs(o->out));

  int gpu = 0;
#ifdef KY_HAVE_CUDA
  if (strcmp(o->device ? o->device : "auto", "cpu")) gpu = ky_cuda_device_count(NULL, 0) > 0;
#endif
  if (o->device && !strcmp(o->device, "cuda") && !gpu)
    return ky_error(KY_ERR_CUDA, "demo: device cuda asked for, but no GPU is usable");
  ky_train_config cfg;
  ky_train_config_default(&cfg);
  snprintf(cfg.data, sizeof cfg.data, "%s", o->sample);
  snprintf(cfg.folds, sizeof cfg.folds, "%s", folds_csv);
  snprintf(cfg.out, sizeof cfg.out, "%s", run);
  snprintf(cfg.device, sizeof cfg.device, "%s", gpu ? "cuda" : "cpu");
  cfg.fold = 0;
  cfg.seed = 777;
  cfg.quiet = o->quiet;
  cfg.clip = 1;
  snprintf(cfg.oversample, sizeof cfg.oversample, "%s", "");
  snprintf(cfg.schedule, sizeof cfg.schedule, "%s", "const");
  if (gpu) {
    snprintf(cfg.model, sizeof cfg.model, "unet_resnet34");
    cfg.width = 1;
    cfg.crop = 256;
    cfg.batch = 16;
    cfg.lr = 3e-4f;
    cfg.iters = o->iters ? o->iters : 600;
  } else {
    /* A slim U-Net that trains in a few minutes on two cores. */
    snprintf(cfg.model, sizeof cfg.model, "unet_resnet18");
    cfg.width = 0.25f;
    cfg.crop = 128;
    cfg.batch = 8;
    cfg.lr = 2e-3f;
    cfg.iters = o->iters ? o->iters : 600;
  }
  cfg.epoch_size = cfg.iters / 6 > 0 ? cfg.iters / 6 : 1;
  cfg.threads = o->threads;
  snprintf(r->device, sizeof r->device, "%s", cfg.device);
  snprintf(r->model, sizeof r->model, "%s x%.2g", cfg.model, cfg.width);

  /* Held-out ids: fold 0 of the sample's folds.csv. */
  ky_folds folds;
  KY_TRY(ky_folds_load(&folds, folds_csv));
  const char **val = malloc((size_t)folds.n * sizeof *val);
  int n_val = 0;
  if (!val) { ky_folds_free(&folds); return ky_error(KY_ERR_NOMEM, "demo: out of memory"); }
  for (int i = 0; i < folds.n; i++) if (folds.rows[i].fold == 0) val[n_val++] = folds.rows[i].id;
  ky_status s = n_val ? KY_OK : ky_error(KY_ERR_FORMAT, "demo: %s has no fold-0 images to hold out", folds_csv);
  r->n_val = n_val;

  ky_train_result tr;
  if (s == KY_OK) s = ky_train_run(&cfg, 0, hooks, &tr);

  ky_ctx ctx;
  memset(&ctx, 0, sizeof ctx);
  int have_ctx = 0;
  if (s == KY_OK) { s = ky_ctx_init(&ctx, gpu ? KY_DEV_CUDA : KY_DEV_CPU, 0); have_ctx = s == KY_OK; }
  if (s == KY_OK && o->threads) s = ky_ctx_set_threads(&ctx, o->threads);
  /* Trained model (the checkpoint of the last step) on the held-out images. */
  snprintf(ckpt, sizeof ckpt, "%s/last.safetensors", run);
  for (int pass = 0; pass < 2 && s == KY_OK; pass++) {
    ky_predictor p;
    memset(&p, 0, sizeof p);
    p.tta = 8;
    if (pass == 0) {
      s = ky_predictor_add(&p, ckpt, 1, ctx.dev, ctx.cu, NULL, NULL);
    } else {
      /* Untrained: the same network from the same seed, no steps. */
      ky_model_config mc = ky_model_config_default();
      mc.classes = 3;
      mc.width = cfg.width;
      mc.seed = cfg.seed;
      mc.dev = ctx.dev;
      mc.cu = ctx.cu;
      s = ky_model_create(&p.model[0], cfg.model, &mc);
      if (s == KY_OK) { p.n = 1; p.head[0] = KY_HEAD_SOFTMAX; p.weight[0] = 1; ky_norm_parse(&p.norm, cfg.norm); }
    }
    if (s == KY_OK) {
      ky_infer_opts io = {o->sample, pass ? pred0 : pred, NULL, 0.3, NULL, 1, val, n_val};
      ky_infer_result ir;
      s = ky_infer_folder(&ctx, &p, &io, &ir);
    }
    ky_predictor_free(&p);
    if (s == KY_OK) {
      snprintf(labels, sizeof labels, "%s/labels", pass ? pred0 : pred);
      s = ky_demo_score(pass ? &r->untrained_score : &r->score, o->sample, labels, val, n_val);
    }
  }
  if (have_ctx) ky_ctx_free(&ctx);
  free(val);
  ky_folds_free(&folds);
  r->seconds = now_s() - t0;
  return s;
}

/* `karyon predict`: checkpoints (averaged with weights) over a folder of images with 8-way TTA ->
 * probability PNGs, instance labels, overlays, submission.csv, and optionally a DSB-layout export.
 * Tested by tests/test_apps_cli.c on the bundled sample, and tests/test_apps_hostile.c for bad flags. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/cli.h"
#include "core/fileio.h"
#include "dist/dist.h"
#include "pipeline/infer.h"
#ifdef KY_HAVE_CUDA
#include "cuda/cuda.h"
#endif

const char ky_cmd_predict_summary[] = "predict instances for a folder of images (TTA, ensembles, GBT)";

static void usage(void) {
  printf("usage: karyon predict --ckpt A.safetensors[,B.safetensors...] --images DIR [options]\n"
         "  --weights W1,W2,...   ensemble weights, one per checkpoint [1 each]\n"
         "  --out DIR             output folder [predictions]: prob/, labels/, overlay/, submission.csv\n"
         "  --tta 8|1             dihedral test-time augmentation variants [8]\n"
         "  --scales S1,S2,...    also predict at these scales and average (Victor: 1,0.75,1.25) [1]\n"
         "  --gbt MODEL           score candidates with a GBT ensemble (karyon postproc train) [level-1 rule]\n"
         "  --thr T               GBT selection threshold [0.3]\n"
         "  --export-dsb DIR      also write the instances as a DSB-layout folder (pseudo-labels)\n"
         "  --device cpu|cuda|auto  [auto]\n"
         "  --model NAME --loss softmax|sigmoid|sigmoid3|focal   for weight files without a training config\n"
         "  --no-overlay          skip the overlay PNGs\n"
         "  --threads N           CPU threads for the kernels and post-processing [KY_THREADS, else every core];\n"
         "                        the outputs do not depend on it\n"
         "  Under mpirun -np N (or srun) the ranks split the images (contiguous parts, one device each: CPU\n"
         "  or GPU local_rank); rank 0 merges submission.csv in the folder's order and prints the totals.\n");
}

/* --ckpt A,B and --weights 1,2 are checked whole before anything loads or is written: a run
 * should not start and then fail on the third list entry. */
static int check_lists(const char *ckpt, const char *weights) {
  int n_ck = 0, n_w = 0;
  for (const char *p = ckpt;; p++) {
    size_t len = strcspn(p, ",");
    if (len == 0) {
      fprintf(stderr, "karyon predict: --ckpt '%s' has an empty entry (expected A.safetensors[,B.safetensors...])\n", ckpt);
      return 0;
    }
    n_ck++;
    p += len;
    if (!*p) break;
  }
  if (!weights) return 1;
  char buf[64];
  for (const char *p = weights;; p++) {
    size_t len = strcspn(p, ",");
    double w;
    snprintf(buf, sizeof buf, "%.*s", (int)(len < sizeof buf - 1 ? len : sizeof buf - 1), p);
    if (len == 0 || len >= sizeof buf || !ky_cli_parse_double(buf, 1e-6, 1e6, &w)) {
      fprintf(stderr, "karyon predict: --weights '%s': entry '%.*s' is not a number in [1e-06, 1e+06]\n", weights,
              (int)len, p);
      return 0;
    }
    n_w++;
    p += len;
    if (!*p) break;
  }
  if (n_w != n_ck) {
    fprintf(stderr, "karyon predict: --weights '%s' has %d entries, expected one per --ckpt entry (%d)\n", weights, n_w,
            n_ck);
    return 0;
  }
  return 1;
}

static int predict(int argc, char **argv, ky_dist *d) {
  static const char *const known[] = {"ckpt", "weights", "images", "out", "tta", "scales", "gbt", "thr", "export-dsb", "device",
                                      "model", "loss", "no-overlay!", "threads", "help!", NULL};
  if (!ky_cli_check(argc, argv, "predict", known)) return 2;
  const char *ckpt = ky_cli_opt(argc, argv, "ckpt"), *images = ky_cli_opt(argc, argv, "images");
  if (!ckpt || !images) { fprintf(stderr, "karyon predict: --ckpt and --images are required (karyon predict --help)\n"); return 2; }
  const char *out = ky_cli_opt(argc, argv, "out") ? ky_cli_opt(argc, argv, "out") : "predictions";
  const char *dev_s = ky_cli_opt(argc, argv, "device") ? ky_cli_opt(argc, argv, "device") : "auto";
  long tta;
  double thr;
  if (!ky_cli_int(argc, argv, "predict", "tta", 1, 8, 8, &tta) || !ky_cli_double(argc, argv, "predict", "thr", 0, 1, 0.3, &thr))
    return 2;
  if (tta != 1 && tta != 8) { fprintf(stderr, "karyon predict: --tta is '%ld', expected 1 or 8\n", tta); return 2; }
  if (!check_lists(ckpt, ky_cli_opt(argc, argv, "weights"))) return 2;
  ky_device dev = KY_DEV_CPU;
  if (strcmp(dev_s, "cpu")) {
#ifdef KY_HAVE_CUDA
    char why[256] = "";
    if (ky_cuda_device_count(why, sizeof why) > 0) dev = KY_DEV_CUDA;
    else if (!strcmp(dev_s, "cuda")) { fprintf(stderr, "karyon predict: no usable GPU: %s\n", why); return 1; }
#else
    if (!strcmp(dev_s, "cuda")) { fprintf(stderr, "karyon predict: this build has no CUDA backend\n"); return 1; }
#endif
  }
  int threads;
  ky_status s = ky_cli_threads(&threads, argc, argv);
  if (s != KY_OK) return ky_cli_fail("predict", s);
  ky_ctx ctx;
  int gpu = 0;
#ifdef KY_HAVE_CUDA
  if (dev == KY_DEV_CUDA) gpu = d->local_rank % ky_cuda_device_count(NULL, 0);
#endif
  s = ky_ctx_init(&ctx, dev, gpu);
  if (s == KY_OK && (s = ky_ctx_set_threads(&ctx, threads)) != KY_OK) ky_ctx_free(&ctx);
  if (s != KY_OK) return ky_cli_fail("predict", s);
  ky_predictor p;
  memset(&p, 0, sizeof p);
  p.tta = tta;
  if (ky_cli_opt(argc, argv, "scales")) {
    char *sl = strdup(ky_cli_opt(argc, argv, "scales")), *sv, *end;
    for (char *t = strtok_r(sl, ",", &sv); t; t = strtok_r(NULL, ",", &sv)) {
      float v = strtof(t, &end);
      if (*end || p.n_scales == 4 || !(v >= 0.25f && v <= 4.0f)) {
        fprintf(stderr, "karyon predict: --scales takes up to 4 numbers in [0.25, 4], got '%s'\n", t);
        free(sl);
        ky_ctx_free(&ctx);
        return 2;
      }
      p.scales[p.n_scales++] = v;
    }
    free(sl);
  }
  char *list = strdup(ckpt), *wl = ky_cli_opt(argc, argv, "weights") ? strdup(ky_cli_opt(argc, argv, "weights")) : NULL;
  char *sv1, *sv2, *wtok = wl ? strtok_r(wl, ",", &sv2) : NULL;
  for (char *tok = strtok_r(list, ",", &sv1); tok && s == KY_OK; tok = strtok_r(NULL, ",", &sv1)) {
    float wgt = wtok ? strtof(wtok, NULL) : 1.0f;   /* checked by check_lists */
    s = ky_predictor_add(&p, tok, wgt, dev, ctx.cu, ky_cli_opt(argc, argv, "model"), ky_cli_opt(argc, argv, "loss"));
    if (wtok) wtok = strtok_r(NULL, ",", &sv2);
  }
  free(list);
  free(wl);
  ky_gbt_ensemble gbt;
  int have_gbt = 0;
  if (s == KY_OK && ky_cli_opt(argc, argv, "gbt")) {
    s = ky_gbt_ensemble_load(&gbt, ky_cli_opt(argc, argv, "gbt"));
    have_gbt = s == KY_OK;
  }
  /* Every output goes to temporary folders first: a failure on image k (or a kill) leaves the
   * previous prob/, labels/ and submission.csv as they were. Under mpirun each rank stages its own
   * part and moves it in before rank 0 merges submission.csv. */
  ky_infer_result r;
  const char *exp = ky_cli_opt(argc, argv, "export-dsb");
  ky_staged_dir so, se;
  int so_open = 0, se_open = 0;
  if (s == KY_OK) so_open = (s = ky_staged_open(&so, out)) == KY_OK;
  if (s == KY_OK && exp) se_open = (s = ky_staged_open(&se, exp)) == KY_OK;
  if (s == KY_OK) {
    ky_infer_opts o = {images, so.tmp, have_gbt ? &gbt : NULL, thr, exp ? se.tmp : NULL,
                       !ky_cli_flag(argc, argv, "no-overlay"), NULL, 0, d->rank, d->size};
    s = ky_infer_folder(&ctx, &p, &o, &r);
  }
  if (s == KY_OK) { so_open = 0; s = ky_staged_commit(&so); }
  if (s == KY_OK && exp) { se_open = 0; s = ky_staged_commit(&se); }
  if (so_open) ky_staged_abort(&so);
  if (se_open) ky_staged_abort(&se);
  if (have_gbt) ky_gbt_ensemble_free(&gbt);
  int n_models = p.n;
  ky_predictor_free(&p);
  ky_ctx_free(&ctx);
  if (s != KY_OK) return ky_cli_fail("predict", s);
  if (d->size > 1) {
    double tot[2] = {r.n_images, (double)r.n_instances};
    if ((s = ky_dist_sum_f64(d, tot, 2)) != KY_OK) return ky_cli_fail("predict", s);
    r.n_images = (int)tot[0];
    r.n_instances = (long)tot[1];
    if (d->rank == 0 && (s = ky_infer_merge_submission(out, d->size)) != KY_OK) return ky_cli_fail("predict", s);
    if (d->rank != 0) return 0;
  }
  printf("predicted %d images (%ld instances) with %d model(s) x %d TTA on %s\n", r.n_images, r.n_instances, n_models,
         (int)tta, dev == KY_DEV_CUDA ? "cuda" : "cpu");
  printf("outputs: %s/prob, %s/labels, %s/overlay, %s/submission.csv\n", out, out, out, out);
  return 0;
}

int ky_cmd_predict(int argc, char **argv) {
  if (ky_cli_wants_help(argc, argv)) { usage(); return 0; }
  ky_dist d;
  ky_status s = ky_dist_init(&d, &argc, &argv);
  if (s != KY_OK) return ky_cli_fail("predict", s);
  int rc = predict(argc, argv, &d);
  /* A rank that failed ends every rank (the others may wait in the final sum). */
  if (rc != 0) ky_dist_abort(&d, rc);
  ky_dist_finalize(&d);
  return rc;
}

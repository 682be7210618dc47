/* The whole reference procedure as stages (see pipeline/reproduce.h).
 * Tested by tests/test_pipeline_reproduce.c. */
#include "pipeline/reproduce.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/image.h"
#include "data/folds.h"
#include "pipeline/demo.h"
#include "pipeline/infer.h"
#include "pipeline/postproc.h"
#include "pipeline/segment.h"
#ifdef KY_HAVE_CUDA
#include "cuda/cuda.h"
#endif

#define PATHN 4096

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

void ky_repro_opts_default(ky_repro_opts *o) {
  memset(o, 0, sizeof *o);
  o->scale = "cpu";
  o->n_folds = KY_FOLDS_K;
  o->device = "auto";
  o->seed = 777;
  o->thr = 0.3;
}

/* ---------------------------------------------------------------- scales */

static ky_status set_pairs(ky_train_config *c, const char *const *kv) {
  for (; *kv; kv += 2) KY_TRY(ky_train_config_set(c, kv[0], kv[1]));
  return KY_OK;
}

/* A family named `name` with weight 1: the default config, then the key/value pairs of kv. */
static ky_status add_family(ky_repro_plan *p, const char *name, const char *const *kv, ky_repro_family **out) {
  ky_repro_family *f = &p->fam[p->n_fam++];
  snprintf(f->name, sizeof f->name, "%s", name);
  f->weight = 1;
  ky_train_config_default(&f->cfg);
  *out = f;
  return set_pairs(&f->cfg, kv);
}

/* The slim net `make demo` trains on a CPU, with a step down of the learning rate for the last
 * quarter: short runs end far from a minimum at a constant 2e-3. */
static ky_status scale_cpu(ky_repro_plan *p, int iters, int tiny) {
  static const char *const kv[] = {"model", "unet_resnet18", "width", "0.25", "loss", "softmax", "norm", "torch",
                                   "crop", "128", "batch", "8", "lr", "2e-3", "clip", "1", "oversample", "",
                                   "threads", "2", "val_images", "40", NULL};
  static const char *const kt[] = {"crop", "64", "batch", "4", "aug", "none", "val_images", "2", "threads", "1", NULL};
  ky_repro_family *f;
  KY_TRY(add_family(p, "unet18w025", kv, &f));
  if (tiny) KY_TRY(set_pairs(&f->cfg, kt));
  int it = iters > 0 ? iters : (tiny ? 150 : 1500);
  f->cfg.iters = it;
  /* Four epochs (a validation each); lr 2e-3, then 5e-4 in the last. */
  f->cfg.epoch_size = it / 4 > 0 ? it / 4 : 1;
  snprintf(f->cfg.schedule, sizeof f->cfg.schedule, "steps:2e-3@3,5e-4@4");
  return KY_OK;
}

/* The reference's own settings (spec sections 2, 4): Albu's ResNet34 U-Net (softmax, lr 5e-5 x
 * 0.85 per epoch, 17 epochs of 64 passes over the oversampled list) and Selim's FPN (sigmoid body +
 * border, Adam 1e-4 with Keras decay 1e-4, 72 epochs x 500 steps, copy-paste 0.05), 256 crops,
 * batch 16. One normalisation for both: an ensemble shares its input. */
static ky_status scale_gpu(ky_repro_plan *p, int iters) {
  static const char *const ku[] = {"model", "unet_resnet34", "loss", "softmax", "norm", "torch", "crop", "256",
                                   "batch", "16", "lr", "5e-5", "schedule", "exp:0.85", "epochs", "17",
                                   "epoch_size", "2920", "clip", "1", "aug", "mega", "aug_p", "0.97",
                                   "ssr_lo", "-0.4", "ssr_hi", "0.4", "oversample", "b:4,d:4,e:4,m:4,c:3,n:3,polosa:5",
                                   "val_images", "0", NULL};
  static const char *const kf[] = {"model", "fpn_resnet152", "loss", "sigmoid", "bce_weight", "0.5", "norm", "torch",
                                   "crop", "256", "batch", "16", "lr", "1e-4", "schedule", "inverse:1e-4",
                                   "epochs", "72", "epoch_size", "500", "clip", "0", "aug", "mega", "aug_p", "0.95",
                                   "ssr_lo", "-0.45", "ssr_hi", "0.45", "copy_paste", "0.05",
                                   "oversample", "b:2,d:2,e:2,m:2,c:2,n:3,polosa:4", "val_images", "0", NULL};
  ky_repro_family *u, *f;
  KY_TRY(add_family(p, "unet34", ku, &u));
  KY_TRY(add_family(p, "fpn152", kf, &f));
  if (iters > 0) { u->cfg.iters = iters; f->cfg.iters = iters; }
  return KY_OK;
}

/* "KEY=VALUE" for every family or "FAMILY:KEY=VALUE" for one. */
static ky_status apply_set(ky_repro_plan *p, const char *spec) {
  char buf[KY_CFG_STR + 64];
  snprintf(buf, sizeof buf, "%s", spec);
  char *eq = strchr(buf, '=');
  if (!eq) return ky_error(KY_ERR_ARG, "reproduce: --set '%s': expected KEY=VALUE or FAMILY:KEY=VALUE", spec);
  *eq = 0;
  char *key = buf, *colon = strchr(buf, ':'), *fam = NULL;
  if (colon) { *colon = 0; fam = buf; key = colon + 1; }
  int hit = 0;
  for (int i = 0; i < p->n_fam; i++) {
    if (fam && strcmp(fam, p->fam[i].name)) continue;
    KY_TRY(ky_train_config_set(&p->fam[i].cfg, key, eq + 1));
    hit++;
  }
  if (!hit) return ky_error(KY_ERR_ARG, "reproduce: --set '%s': no family named '%s' (this scale has %s%s%s)", spec, fam,
                            p->fam[0].name, p->n_fam > 1 ? ", " : "", p->n_fam > 1 ? p->fam[1].name : "");
  return KY_OK;
}

/* ---------------------------------------------------------------- plan */

static char *path_of(char *buf, const ky_repro_plan *p, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static char *path_of(char *buf, const ky_repro_plan *p, const char *fmt, ...) {
  int n = snprintf(buf, PATHN, "%s/", p->o.out);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf + n, PATHN - n, fmt, ap);
  va_end(ap);
  return buf;
}

void ky_repro_plan_free(ky_repro_plan *p) {
  if (!p) return;
  for (int i = 0; i < p->n_oof; i++) free(p->oof_ids[i]);
  for (int i = 0; i < p->n_ho; i++) free(p->ho_ids[i]);
  free(p->oof_ids);
  free(p->oof_fold);
  free(p->ho_ids);
  memset(p, 0, sizeof *p);
}

ky_status ky_repro_plan_make(ky_repro_plan *p, const ky_repro_opts *o) {
  KY_CHECK(p && o, KY_ERR_ARG, "reproduce: NULL argument");
  memset(p, 0, sizeof *p);
  KY_CHECK(o->data && o->folds && o->out, KY_ERR_ARG, "reproduce: the data folder, folds CSV and output folder are required");
  KY_CHECK(o->n_folds >= 2 && o->n_folds <= KY_FOLDS_K, KY_ERR_ARG, "reproduce: %d folds, expected 2..%d", o->n_folds, KY_FOLDS_K);
  KY_CHECK(o->iters >= 0 && o->gbt_reps >= 0 && o->max_images >= 0, KY_ERR_ARG, "reproduce: iters, gbt reps and max images must be >= 0");
  KY_CHECK(o->thr >= 0 && o->thr < 1, KY_ERR_ARG, "reproduce: GBT threshold %g, expected [0, 1)", o->thr);
  KY_CHECK(access(o->data, R_OK) == 0, KY_ERR_IO, "reproduce: data folder %s not found", o->data);
  p->o = *o;
  const char *sc = o->scale ? o->scale : "cpu";
  ky_status s;
  if (!strcmp(sc, "cpu")) s = scale_cpu(p, o->iters, 0);
  else if (!strcmp(sc, "tiny")) s = scale_cpu(p, o->iters, 1);
  else if (!strcmp(sc, "gpu")) s = scale_gpu(p, o->iters);
  else s = ky_error(KY_ERR_ARG, "reproduce: scale '%s', expected cpu, gpu or tiny", sc);
  if (!p->o.gbt_reps) p->o.gbt_reps = !strcmp(sc, "gpu") ? 50 : !strcmp(sc, "tiny") ? 1 : 10;
  for (int i = 0; i < o->n_set && s == KY_OK; i++) s = apply_set(p, o->set[i]);
  if (s == KY_OK && o->device) for (int i = 0; i < p->n_fam; i++) snprintf(p->fam[i].cfg.device, sizeof p->fam[i].cfg.device, "%s", o->device);
  if (s != KY_OK) { ky_repro_plan_free(p); return s; }

  ky_folds f;
  KY_TRY(ky_folds_load(&f, o->folds));
  char path[PATHN];
  p->oof_ids = calloc((size_t)f.n, sizeof *p->oof_ids);
  p->oof_fold = calloc((size_t)f.n, sizeof *p->oof_fold);
  p->ho_ids = calloc((size_t)f.n, sizeof *p->ho_ids);
  if (!p->oof_ids || !p->oof_fold || !p->ho_ids) { s = ky_error(KY_ERR_NOMEM, "reproduce: out of memory"); goto done; }
  if ((s = ky_mkdirs(path_of(path, p, "plan"))) != KY_OK) goto done;
  /* The nets' folds CSV: every row but the hold-out ones, so that no net ever sees them. */
  ky_atomic_file af;
  if ((s = ky_atomic_open(&af, path_of(path, p, "plan/train_folds.csv"))) != KY_OK) goto done;
  fprintf(af.f, "img_id,fold,cluster,source\n");
  int per_fold[KY_FOLDS_K] = {0}, n_train = 0;
  for (int i = 0; i < f.n; i++) {
    const ky_fold_row *r = &f.rows[i];
    if (r->hold_out) {
      if (!o->max_images || p->n_ho < o->max_images) p->ho_ids[p->n_ho++] = strdup(r->id);
      continue;
    }
    fprintf(af.f, "%s,%d,%s,%s\n", r->id, r->fold, r->cluster, r->source);
    n_train++;
    if (r->fold >= o->n_folds) continue;
    /* Always-in-train images train their own fold's net too: their OOF maps are not out of fold. */
    if (ky_folds_always_train(r)) { p->n_always++; continue; }
    if (o->max_images && per_fold[r->fold] >= o->max_images) continue;
    per_fold[r->fold]++;
    p->oof_fold[p->n_oof] = r->fold;
    p->oof_ids[p->n_oof++] = strdup(r->id);
  }
  if ((s = ky_atomic_commit(&af)) != KY_OK) goto done;
  for (int i = 0; i < p->n_oof; i++) if (!p->oof_ids[i]) s = ky_error(KY_ERR_NOMEM, "reproduce: out of memory");
  for (int i = 0; i < p->n_ho; i++) if (!p->ho_ids[i]) s = ky_error(KY_ERR_NOMEM, "reproduce: out of memory");
  if (s != KY_OK) goto done;
  for (int k = 0; k < o->n_folds; k++)
    if (!per_fold[k]) { s = ky_error(KY_ERR_FORMAT, "reproduce: %s has no scorable images in fold %d", o->folds, k); goto done; }
  if (!n_train) { s = ky_error(KY_ERR_FORMAT, "reproduce: every row of %s is hold-out", o->folds); goto done; }
  snprintf(p->train_csv, sizeof p->train_csv, "%s", path_of(path, p, "plan/train_folds.csv"));
  /* The image lists and each family's settings, for people reading the output. */
  if ((s = ky_atomic_open(&af, path_of(path, p, "plan/oof.csv"))) != KY_OK) goto done;
  fprintf(af.f, "img_id,fold\n");
  for (int i = 0; i < p->n_oof; i++) fprintf(af.f, "%s,%d\n", p->oof_ids[i], p->oof_fold[i]);
  if ((s = ky_atomic_commit(&af)) != KY_OK) goto done;
  if ((s = ky_atomic_open(&af, path_of(path, p, "plan/holdout.txt"))) != KY_OK) goto done;
  for (int i = 0; i < p->n_ho; i++) fprintf(af.f, "%s\n", p->ho_ids[i]);
  if ((s = ky_atomic_commit(&af)) != KY_OK) goto done;
  if ((s = ky_atomic_open(&af, path_of(path, p, "plan/families.txt"))) != KY_OK) goto done;
  fprintf(af.f, "# scale %s, %d folds, GBT %d x 3 boosters, threshold %g, %d OOF images, %d hold-out, %d always-in-train left out\n",
          sc, o->n_folds, p->o.gbt_reps, o->thr, p->n_oof, p->n_ho, p->n_always);
  for (int i = 0; i < p->n_fam; i++) {
    fprintf(af.f, "\n[%s] weight = %g\n", p->fam[i].name, p->fam[i].weight);
    ky_train_config_write(af.f, &p->fam[i].cfg);
  }
  s = ky_atomic_commit(&af);
done:
  ky_folds_free(&f);
  if (s != KY_OK) ky_repro_plan_free(p);
  return s;
}

/* ---------------------------------------------------------------- nets */

void ky_repro_ckpt_path(char *out, size_t n, const ky_repro_plan *p, int fam, int fold) {
  snprintf(out, n, "%s/nets/%s_fold%d/last.safetensors", p->o.out, p->fam[fam].name, fold);
}

ky_status ky_repro_train_fold(const ky_repro_plan *p, int fold, const ky_train_hooks *hooks) {
  KY_CHECK(p && fold >= 0 && fold < p->o.n_folds, KY_ERR_ARG, "reproduce: fold %d outside 0..%d", fold, p ? p->o.n_folds - 1 : 0);
  for (int i = 0; i < p->n_fam; i++) {
    ky_train_config c = p->fam[i].cfg;
    snprintf(c.data, sizeof c.data, "%s", p->o.data);
    snprintf(c.folds, sizeof c.folds, "%s", p->train_csv);
    c.fold = fold;
    c.seed = p->o.seed + (uint64_t)fold;
    snprintf(c.out, sizeof c.out, "%s/nets/%s_fold%d", p->o.out, p->fam[i].name, fold);
    char last[PATHN];
    ky_repro_ckpt_path(last, sizeof last, p, i, fold);
    /* A run stopped part way continues from its last checkpoint (bitwise, as karyon train --resume). */
    int resume = access(last, F_OK) == 0;
    ky_status s = ky_train_run(&c, resume, hooks, NULL);
    if (s != KY_OK) return ky_error_context(s, "training %s fold %d: ", p->fam[i].name, fold);
  }
  return KY_OK;
}

static ky_device pick_dev(const char *want) {
#ifdef KY_HAVE_CUDA
  if (strcmp(want ? want : "auto", "cpu") && ky_cuda_device_count(NULL, 0) > 0) return KY_DEV_CUDA;
#else
  (void)want;
#endif
  return KY_DEV_CPU;
}

/* A predictor over every family's net of `fold`, or of every fold when fold < 0. */
static ky_status make_predictor(ky_predictor *pr, const ky_repro_plan *p, int fold, int tta, ky_ctx *ctx) {
  memset(pr, 0, sizeof *pr);
  pr->tta = tta;
  for (int k = 0; k < p->o.n_folds; k++) {
    if (fold >= 0 && k != fold) continue;
    for (int i = 0; i < p->n_fam; i++) {
      char ck[PATHN];
      ky_repro_ckpt_path(ck, sizeof ck, p, i, k);
      ky_status s = ky_predictor_add(pr, ck, p->fam[i].weight, ctx->dev, ctx->cu, NULL, NULL);
      if (s != KY_OK) { ky_predictor_free(pr); return s; }
    }
  }
  return KY_OK;
}

/* One (fold, TTA) pass of ky_infer_folder over `ids` of the data folder. */
static ky_status infer_ids(const ky_repro_plan *p, ky_ctx *ctx, int fold, int tta, const char *out, const char *const *ids,
                           int n) {
  if (!n) return KY_OK;
  ky_predictor pr;
  KY_TRY(make_predictor(&pr, p, fold, tta, ctx));
  ky_infer_opts io = {p->o.data, out, NULL, p->o.thr, NULL, 0, ids, n};
  ky_infer_result r;
  ky_status s = ky_infer_folder(ctx, &pr, &io, &r);
  ky_predictor_free(&pr);
  return s;
}

ky_status ky_repro_oof(const ky_repro_plan *p) {
  ky_ctx ctx;
  KY_TRY(ky_ctx_init(&ctx, pick_dev(p->o.device), 0));
  const char **ids = malloc((size_t)(p->n_oof ? p->n_oof : 1) * sizeof *ids);
  ky_status s = ids ? KY_OK : ky_error(KY_ERR_NOMEM, "reproduce: out of memory");
  for (int k = 0; k < p->o.n_folds && s == KY_OK; k++) {
    int n = 0;
    for (int i = 0; i < p->n_oof; i++) if (p->oof_fold[i] == k) ids[n++] = p->oof_ids[i];
    for (int t = 1; t <= 8 && s == KY_OK; t += 7) {
      char out[PATHN];
      path_of(out, p, "oof/fold%d_tta%d", k, t);
      s = infer_ids(p, &ctx, k, t, out, ids, n);
      if (s != KY_OK) s = ky_error_context(s, "out-of-fold maps of fold %d (TTA %d): ", k, t);
    }
  }
  free(ids);
  ky_ctx_free(&ctx);
  return s;
}

ky_status ky_repro_holdout(const ky_repro_plan *p) {
  if (!p->n_ho) return KY_OK;
  ky_ctx ctx;
  KY_TRY(ky_ctx_init(&ctx, pick_dev(p->o.device), 0));
  ky_status s = KY_OK;
  for (int k = 0; k < p->o.n_folds && s == KY_OK; k++)
    for (int t = 1; t <= 8 && s == KY_OK; t += 7) {
      char out[PATHN];
      path_of(out, p, "holdout/fold%d_tta%d", k, t);
      s = infer_ids(p, &ctx, k, t, out, (const char *const *)p->ho_ids, p->n_ho);
      if (s != KY_OK) s = ky_error_context(s, "hold-out maps of fold %d (TTA %d): ", k, t);
    }
  ky_ctx_free(&ctx);
  return s;
}

/* ---------------------------------------------------------------- GBT */

/* Instances of one image's maps (prob_dir/<id>_*.png) selected by gbt (NULL: level-1) into
 * out_dir/<id>.png. */
static ky_status segment_file(const char *prob_dir, const char *id, const ky_gbt_ensemble *gbt, double thr,
                              const char *out_dir) {
  uint8_t *B, *S, *E;
  int h, w, n;
  KY_TRY(ky_postproc_read_maps(&B, &S, &E, &h, &w, prob_dir, id));
  uint16_t *lab = malloc((size_t)h * w * sizeof *lab);
  ky_status s = lab ? ky_pipeline_segment(lab, &n, B, S, E, h, w, gbt, thr) : ky_error(KY_ERR_NOMEM, "reproduce: out of memory");
  char path[PATHN];
  snprintf(path, sizeof path, "%s/%s.png", out_dir, id);
  if (s == KY_OK) s = ky_png_save_u16(path, lab, w, h, 1);
  free(B); free(S); free(E); free(lab);
  return s == KY_OK ? s : ky_error_context(s, "segmenting %s: ", id);
}

typedef struct { float *x, *y; int *g; long n; } table;

static ky_status table_append(table *t, const float *x, const float *y, const int *g, long n, const int *gmap) {
  float *nx = realloc(t->x, (size_t)(t->n + n) * KY_POST_NFEAT * sizeof *nx + 1);
  if (nx) t->x = nx;
  float *ny = realloc(t->y, (size_t)(t->n + n) * sizeof *ny + 1);
  if (ny) t->y = ny;
  int *ng = realloc(t->g, (size_t)(t->n + n) * sizeof *ng + 1);
  if (ng) t->g = ng;
  if (!nx || !ny || !ng) return ky_error(KY_ERR_NOMEM, "reproduce: out of memory for %ld candidate rows", t->n + n);
  memcpy(t->x + t->n * KY_POST_NFEAT, x, (size_t)n * KY_POST_NFEAT * sizeof *x);
  memcpy(t->y + t->n, y, (size_t)n * sizeof *y);
  for (long r = 0; r < n; r++) t->g[t->n + r] = gmap[g[r]];
  t->n += n;
  return KY_OK;
}

/* Fits on the rows whose image is not in fold `skip` (skip < 0: every row); *n_img counts the
 * images those rows come from. */
static ky_status fit_subset(ky_gbt_ensemble *e, const ky_repro_plan *p, const table *t, int skip, uint64_t seed,
                            int *n_img, char *used /* [n_oof] */) {
  float *x = malloc((size_t)t->n * KY_POST_NFEAT * sizeof *x + 1), *y = malloc((size_t)t->n * sizeof *y + 1);
  int *g = malloc((size_t)t->n * sizeof *g + 1);
  ky_status s = x && y && g ? KY_OK : ky_error(KY_ERR_NOMEM, "reproduce: out of memory");
  long n = 0;
  memset(used, 0, (size_t)p->n_oof);
  for (long r = 0; r < t->n && s == KY_OK; r++) {
    if (skip >= 0 && p->oof_fold[t->g[r]] == skip) continue;
    memcpy(x + n * KY_POST_NFEAT, t->x + r * KY_POST_NFEAT, KY_POST_NFEAT * sizeof *x);
    y[n] = t->y[r];
    g[n++] = t->g[r];
    used[t->g[r]] = 1;
  }
  *n_img = 0;
  int n_pool = 0;
  for (int i = 0; i < p->n_oof; i++) { *n_img += used[i]; n_pool += skip < 0 || p->oof_fold[i] != skip; }
  /* Images whose maps give no candidate add no rows: say so rather than "N images with maps". */
  if (s == KY_OK && *n_img < 3)
    s = ky_error(KY_ERR_ARG, "only %d of the %d OOF images it may train on have level-1 candidates (the nets' maps have "
                 "no seed above 0.5?); the 3-fold split needs 3", *n_img, n_pool);
  if (s == KY_OK) s = ky_postproc_fit(e, x, y, g, n, *n_img, p->o.gbt_reps, seed);
  free(x); free(y); free(g);
  return s;
}

ky_status ky_repro_gbt(const ky_repro_plan *p) {
  char path[PATHN], dir[PATHN];
  KY_TRY(ky_mkdirs(path_of(dir, p, "gbt")));
  table t = {0};
  int *gmap = malloc((size_t)(p->n_oof ? p->n_oof : 1) * sizeof *gmap);
  const char **ids = malloc((size_t)(p->n_oof ? p->n_oof : 1) * sizeof *ids);
  char *used = malloc((size_t)p->n_oof + 1);
  ky_status s = gmap && ids && used ? KY_OK : ky_error(KY_ERR_NOMEM, "reproduce: out of memory");
  /* One table over every OOF image (its own fold's TTA-8 maps); groups = index in the plan. */
  for (int k = 0; k < p->o.n_folds && s == KY_OK; k++) {
    int n = 0;
    for (int i = 0; i < p->n_oof; i++) if (p->oof_fold[i] == k) { gmap[n] = i; ids[n++] = p->oof_ids[i]; }
    float *x, *y;
    int *g;
    ky_postproc_stats st;
    path_of(dir, p, "oof/fold%d_tta8/prob", k);
    if ((s = ky_postproc_table_ids(&x, &y, &g, &st, dir, p->o.data, ids, n)) != KY_OK) break;
    if (st.n_skipped) s = ky_error(KY_ERR_IO, "reproduce: %d images of fold %d have no maps in %s", st.n_skipped, k, dir);
    if (s == KY_OK) s = table_append(&t, x, y, g, st.n_rows, gmap);
    free(x); free(y); free(g);
  }
  ky_atomic_file af;
  int af_open = 0;
  if (s == KY_OK && (s = ky_atomic_open(&af, path_of(path, p, "gbt/nested.csv"))) == KY_OK) {
    af_open = 1;
    fprintf(af.f, "model,role,img_id,fold\n");
  }
  /* Nested: the model for fold k never sees a row of fold k's images, and scores only them. */
  for (int k = 0; k < p->o.n_folds && s == KY_OK; k++) {
    ky_gbt_ensemble e;
    int n_img;
    if ((s = fit_subset(&e, p, &t, k, p->o.seed + 100 + (uint64_t)k, &n_img, used)) != KY_OK) {
      s = ky_error_context(s, "nested GBT for fold %d: ", k);
      break;
    }
    s = ky_gbt_ensemble_save(&e, path_of(path, p, "gbt/nested_fold%d.txt", k));
    for (int i = 0; i < p->n_oof; i++) if (used[i]) fprintf(af.f, "nested_fold%d,train,%s,%d\n", k, p->oof_ids[i], p->oof_fold[i]);
    char prob[PATHN];
    path_of(prob, p, "oof/fold%d_tta8/prob", k);
    path_of(dir, p, "oof/fold%d_tta8/gbt_labels", k);
    if (s == KY_OK) s = ky_mkdirs(dir);
    for (int i = 0; i < p->n_oof && s == KY_OK; i++) {
      if (p->oof_fold[i] != k) continue;
      if (used[i]) { s = ky_error(KY_ERR_ARG, "nested GBT for fold %d trained on %s, which it scores", k, p->oof_ids[i]); break; }
      s = segment_file(prob, p->oof_ids[i], &e, p->o.thr, dir);
      fprintf(af.f, "nested_fold%d,scored,%s,%d\n", k, p->oof_ids[i], p->oof_fold[i]);
    }
    ky_gbt_ensemble_free(&e);
  }
  /* The model a user takes: every OOF image; applied here to each single fold's hold-out maps. */
  ky_gbt_ensemble full;
  int n_img, have_full = 0;
  if (s == KY_OK && (s = fit_subset(&full, p, &t, -1, p->o.seed + 100 + KY_FOLDS_K, &n_img, used)) == KY_OK) {
    have_full = 1;
    s = ky_gbt_ensemble_save(&full, path_of(path, p, "gbt/gbt.txt"));
    for (int i = 0; i < p->n_oof; i++) if (used[i]) fprintf(af.f, "full,train,%s,%d\n", p->oof_ids[i], p->oof_fold[i]);
  }
  for (int k = 0; k < p->o.n_folds && s == KY_OK; k++) {
    char prob[PATHN];
    path_of(prob, p, "holdout/fold%d_tta8/prob", k);
    path_of(dir, p, "holdout/fold%d_tta8/gbt_labels", k);
    if (p->n_ho) s = ky_mkdirs(dir);
    for (int i = 0; i < p->n_ho && s == KY_OK; i++) s = segment_file(prob, p->ho_ids[i], &full, p->o.thr, dir);
  }
  if (have_full) ky_gbt_ensemble_free(&full);
  if (af_open) {
    if (s == KY_OK) s = ky_atomic_commit(&af);
    else ky_atomic_abort(&af);
  }
  free(t.x); free(t.y); free(t.g); free(gmap); free(ids); free(used);
  return s;
}

/* ---------------------------------------------------------------- ensemble prediction */

ky_status ky_repro_predict(const ky_repro_plan *p, const char *images, const char *out, const char *const *only,
                           int n_only, const char *gbt_path) {
  KY_CHECK(p && images && out, KY_ERR_ARG, "reproduce predict: NULL argument");
  char path[PATHN];
  if (!gbt_path) gbt_path = path_of(path, p, "gbt/gbt.txt");
  ky_gbt_ensemble gbt;
  KY_TRY(ky_gbt_ensemble_load(&gbt, gbt_path));
  ky_ctx ctx;
  ky_status s = ky_ctx_init(&ctx, pick_dev(p->o.device), 0);
  if (s != KY_OK) { ky_gbt_ensemble_free(&gbt); return s; }
  ky_predictor pr;
  if ((s = make_predictor(&pr, p, -1, 8, &ctx)) == KY_OK) {
    ky_infer_opts io = {images, out, &gbt, p->o.thr, NULL, 1, only, n_only};
    ky_infer_result r;
    s = ky_infer_folder(&ctx, &pr, &io, &r);
    ky_predictor_free(&pr);
  }
  ky_ctx_free(&ctx);
  ky_gbt_ensemble_free(&gbt);
  /* The level-1 rule on the same maps. */
  char **ids = NULL, **paths = NULL, prob[PATHN], l1[PATHN];
  int n = 0;
  snprintf(prob, sizeof prob, "%s/prob", out);
  snprintf(l1, sizeof l1, "%s/level1", out);
  if (s == KY_OK) s = ky_mkdirs(l1);
  if (s == KY_OK) s = ky_infer_list(&ids, &paths, &n, images);
  for (int i = 0; i < n && s == KY_OK; i++) {
    int keep = !only;
    for (int k = 0; k < n_only && !keep; k++) keep = !strcmp(only[k], ids[i]);
    if (keep) s = segment_file(prob, ids[i], NULL, 0, l1);
  }
  ky_infer_list_free(ids, paths, n);
  return s;
}

/* ---------------------------------------------------------------- scores and tables */

static int stage_seconds(const ky_repro_plan *p, const char *stage, double *sec) {
  char path[PATHN], *buf;
  size_t n;
  if (ky_file_read_all(path_of(path, p, "stages/%s.done", stage), &buf, &n) != KY_OK) { ky_error_clear(); return 0; }
  *sec = atof(buf);
  free(buf);
  return 1;
}

typedef struct {
  char name[48];
  char what[128];
  int holdout;        /* 1: over the hold-out images; 0: over the OOF images */
  char dir_fmt[96];   /* under OUT; %d = the fold (OOF: the image's own; hold-out: fixed `fold`) */
  int fold;           /* hold-out per-fold methods; -1: none */
  double *score;      /* [n images of its set] */
  double mean;
} method;

static ky_status score_method(const ky_repro_plan *p, method *m) {
  int n = m->holdout ? p->n_ho : p->n_oof;
  m->score = calloc((size_t)(n ? n : 1), sizeof *m->score);
  if (!m->score) return ky_error(KY_ERR_NOMEM, "reproduce: out of memory");
  m->mean = NAN;
  if (!n) return KY_OK;
  char rel[PATHN], dir[PATHN];
  if (m->holdout) {
    snprintf(rel, sizeof rel, m->dir_fmt, m->fold);
    KY_TRY(ky_demo_score_each(m->score, p->o.data, path_of(dir, p, "%s", rel), (const char *const *)p->ho_ids, n));
  } else {
    const char **ids = malloc((size_t)n * sizeof *ids);
    int *idx = malloc((size_t)n * sizeof *idx);
    double *sc = malloc((size_t)n * sizeof *sc);
    ky_status s = ids && idx && sc ? KY_OK : ky_error(KY_ERR_NOMEM, "reproduce: out of memory");
    for (int k = 0; k < p->o.n_folds && s == KY_OK; k++) {
      int c = 0;
      for (int i = 0; i < n; i++) if (p->oof_fold[i] == k) { idx[c] = i; ids[c++] = p->oof_ids[i]; }
      snprintf(rel, sizeof rel, m->dir_fmt, k);
      if (c) s = ky_demo_score_each(sc, p->o.data, path_of(dir, p, "%s", rel), ids, c);
      for (int i = 0; i < c && s == KY_OK; i++) m->score[idx[i]] = sc[i];
    }
    free(ids); free(idx); free(sc);
    KY_TRY(s);
  }
  double sum = 0;
  for (int i = 0; i < n; i++) sum += m->score[i];
  m->mean = sum / n;
  return KY_OK;
}

/* Mean and standard error of a - b over n paired images. */
static void paired(double *mean, double *se, const double *a, const double *b, int n) {
  double s = 0, s2 = 0;
  for (int i = 0; i < n; i++) { double d = a[i] - b[i]; s += d; s2 += d * d; }
  *mean = n ? s / n : NAN;
  *se = n > 1 ? sqrt(fmax(0, (s2 - s * s / n) / (n - 1)) / n) : NAN;
}

/* The stages in run order. */
static int stage_names(const ky_repro_plan *p, char names[16][32]) {
  static const char *const later[] = {"oof", "holdout", "gbt", "predict", "score"};
  int n = 0;
  for (int k = 0; k < p->o.n_folds; k++) snprintf(names[n++], 32, "train_fold%d", k);
  for (int i = 0; i < 5; i++) snprintf(names[n++], 32, "%s", later[i]);
  return n;
}

/* OUT/tables/stages.csv from the markers of the stages done. */
static ky_status write_stages(const ky_repro_plan *p) {
  char stages[16][32], path[PATHN];
  int ns = stage_names(p, stages);
  KY_TRY(ky_mkdirs(path_of(path, p, "tables")));
  ky_atomic_file af;
  KY_TRY(ky_atomic_open(&af, path_of(path, p, "tables/stages.csv")));
  fprintf(af.f, "stage,seconds\n");
  for (int i = 0; i < ns; i++) {
    double sec;
    if (stage_seconds(p, stages[i], &sec)) fprintf(af.f, "%s,%.1f\n", stages[i], sec);
  }
  return ky_atomic_commit(&af);
}

/* Largest |ensemble map - mean of the fold maps| over the hold-out body maps (uint8 units): each
 * map is truncated to uint8 on its own, so below 1 means the ensemble is the weighted mean. */
static ky_status ensemble_check(const ky_repro_plan *p, double *max_diff) {
  *max_diff = 0;
  char dir[PATHN], path[PATHN];
  for (int i = 0; i < p->n_ho; i++) {
    ky_image e;
    snprintf(path, sizeof path, "%s/%s_body.png", path_of(dir, p, "predict/prob"), p->ho_ids[i]);
    KY_TRY(ky_image_load_u8(&e, path, 1));
    double *acc = calloc((size_t)e.h * e.w, sizeof *acc);
    ky_status s = acc ? KY_OK : ky_error(KY_ERR_NOMEM, "reproduce: out of memory");
    for (int k = 0; k < p->o.n_folds && s == KY_OK; k++) {
      ky_image m;
      snprintf(path, sizeof path, "%s/%s_body.png", path_of(dir, p, "holdout/fold%d_tta8/prob", k), p->ho_ids[i]);
      if ((s = ky_image_load_u8(&m, path, 1)) != KY_OK) break;
      if (m.h != e.h || m.w != e.w) s = ky_error(KY_ERR_SHAPE, "%s is %dx%d, the ensemble map %dx%d", path, m.w, m.h, e.w, e.h);
      for (size_t q = 0; s == KY_OK && q < (size_t)e.h * e.w; q++) acc[q] += ((const uint8_t *)m.data)[q];
      ky_image_free(&m);
    }
    for (size_t q = 0; s == KY_OK && q < (size_t)e.h * e.w; q++) {
      double d = fabs(((const uint8_t *)e.data)[q] - acc[q] / p->o.n_folds);
      if (d > *max_diff) *max_diff = d;
    }
    free(acc);
    ky_image_free(&e);
    KY_TRY(s);
  }
  return KY_OK;
}

ky_status ky_repro_score(const ky_repro_plan *p) {
  int K = p->o.n_folds, nm = 0;
  method *m = calloc((size_t)(3 + 3 * K + 2), sizeof *m);
  if (!m) return ky_error(KY_ERR_NOMEM, "reproduce: out of memory");
#define ADD(nm_, what_, ho_, fmt_, fold_) \
  do { snprintf(m[nm].name, sizeof m[nm].name, nm_, fold_); snprintf(m[nm].what, sizeof m[nm].what, what_, fold_); \
       m[nm].holdout = ho_; snprintf(m[nm].dir_fmt, sizeof m[nm].dir_fmt, "%s", fmt_); m[nm].fold = fold_; nm++; } while (0)
  ADD("oof_tta1_level1%.0d", "own fold's net, no TTA, level-1 rule%.0d", 0, "oof/fold%d_tta1/labels", 0);
  ADD("oof_tta8_level1%.0d", "own fold's net, 8-way TTA, level-1 rule%.0d", 0, "oof/fold%d_tta8/labels", 0);
  ADD("oof_tta8_gbt_nested%.0d", "own fold's net, 8-way TTA, nested GBT selection%.0d", 0, "oof/fold%d_tta8/gbt_labels", 0);
  int ho0 = nm;
  for (int k = 0; k < K; k++) {
    ADD("fold%d_tta1_level1", "fold %d's net, no TTA, level-1 rule", 1, "holdout/fold%d_tta1/labels", k);
    ADD("fold%d_tta8_level1", "fold %d's net, 8-way TTA, level-1 rule", 1, "holdout/fold%d_tta8/labels", k);
    ADD("fold%d_tta8_gbt", "fold %d's net, 8-way TTA, GBT selection", 1, "holdout/fold%d_tta8/gbt_labels", k);
  }
  int ens = nm;
  ADD("ensemble_tta8_level1%.0d", "every fold's net, 8-way TTA, level-1 rule%.0d", 1, "predict/level1", 0);
  ADD("ensemble_tta8_gbt%.0d", "every fold's net, 8-way TTA, GBT selection%.0d", 1, "predict/labels", 0);
#undef ADD
  ky_status s = KY_OK;
  for (int i = 0; i < nm && s == KY_OK; i++) {
    if (m[i].holdout && !p->n_ho) { m[i].score = calloc(1, sizeof *m[i].score); m[i].mean = NAN; continue; }
    s = score_method(p, &m[i]);
    if (s != KY_OK) s = ky_error_context(s, "scoring %s: ", m[i].name);
  }
  char path[PATHN], dir[PATHN];
  if (s == KY_OK) s = ky_mkdirs(path_of(dir, p, "tables"));
  ky_atomic_file af;
  /* Per image: one column per method, empty where the method does not apply. */
  if (s == KY_OK && (s = ky_atomic_open(&af, path_of(path, p, "tables/per_image.csv"))) == KY_OK) {
    fprintf(af.f, "img_id,set,fold");
    for (int i = 0; i < nm; i++) fprintf(af.f, ",%s", m[i].name);
    fprintf(af.f, "\n");
    for (int set = 0; set < 2; set++) {
      int n = set ? p->n_ho : p->n_oof;
      for (int j = 0; j < n; j++) {
        fprintf(af.f, "%s,%s,%d", set ? p->ho_ids[j] : p->oof_ids[j], set ? "holdout" : "oof", set ? -1 : p->oof_fold[j]);
        for (int i = 0; i < nm; i++) {
          if (m[i].holdout == set) fprintf(af.f, ",%.6f", m[i].score[j]);
          else fprintf(af.f, ",");
        }
        fprintf(af.f, "\n");
      }
    }
    s = ky_atomic_commit(&af);
  }
  char stages[16][32];
  int ns = stage_names(p, stages);
  if (s == KY_OK) s = write_stages(p);
  double max_diff = NAN;
  if (s == KY_OK && p->n_ho) s = ensemble_check(p, &max_diff);
  if (s == KY_OK && (s = ky_atomic_open(&af, path_of(path, p, "tables/summary.md"))) == KY_OK) {
    FILE *f = af.f;
    fprintf(f, "# karyon reproduce: scale %s, %d folds, %d net(s) per fold", p->o.scale ? p->o.scale : "cpu", K, p->n_fam);
    for (int i = 0; i < p->n_fam; i++) fprintf(f, "%s %s (%s x%.2g, %d steps)", i ? "," : ":", p->fam[i].name, p->fam[i].cfg.model,
                                               p->fam[i].cfg.width, p->fam[i].cfg.iters ? p->fam[i].cfg.iters : p->fam[i].cfg.epochs * p->fam[i].cfg.epoch_size);
    fprintf(f, "\n\nMean DSB score (the reference metric); every row of a table is over the same images. "
               "GBT: %d x 3 boosters, threshold %g.\n\n", p->o.gbt_reps, p->o.thr);
    if (p->n_ho) {
      fprintf(f, "## Hold-out images (%d; no net and no GBT model trained on them)\n\n| row | mean DSB |\n|---|---|\n", p->n_ho);
      double fm[3] = {0, 0, 0};
      for (int k = 0; k < K; k++) for (int j = 0; j < 3; j++) fm[j] += m[ho0 + 3 * k + j].mean / K;
      fprintf(f, "| single fold's net (fold 0), level-1 rule | %.4f |\n", m[ho0].mean);
      fprintf(f, "| the same, 8-way TTA | %.4f |\n", m[ho0 + 1].mean);
      fprintf(f, "| %d-fold ensemble, 8-way TTA, level-1 rule | %.4f |\n", K, m[ens].mean);
      fprintf(f, "| %d-fold ensemble, 8-way TTA, GBT selection | %.4f |\n", K, m[ens + 1].mean);
      fprintf(f, "| single fold's net (fold 0), 8-way TTA, GBT selection | %.4f |\n", m[ho0 + 2].mean);
      fprintf(f, "| mean over the %d single-fold nets: no TTA / TTA 8 / TTA 8 + GBT | %.4f / %.4f / %.4f |\n", K, fm[0], fm[1], fm[2]);
      for (int k = 0; k < K; k++)
        fprintf(f, "| fold %d's net: no TTA / TTA 8 / TTA 8 + GBT | %.4f / %.4f / %.4f |\n", k, m[ho0 + 3 * k].mean,
                m[ho0 + 3 * k + 1].mean, m[ho0 + 3 * k + 2].mean);
      fprintf(f, "\nPaired differences on the hold-out images (mean ± standard error over images):\n\n"
                 "| comparison | difference |\n|---|---|\n");
      double d, e;
      for (int k = 0; k < K; k++) {
        paired(&d, &e, m[ho0 + 3 * k + 1].score, m[ho0 + 3 * k].score, p->n_ho);
        fprintf(f, "| fold %d: TTA 8 - no TTA | %+.4f ± %.4f |\n", k, d, e);
      }
      for (int k = 0; k < K; k++) {
        paired(&d, &e, m[ens].score, m[ho0 + 3 * k + 1].score, p->n_ho);
        fprintf(f, "| ensemble - fold %d (both TTA 8, level-1) | %+.4f ± %.4f |\n", k, d, e);
      }
      paired(&d, &e, m[ens + 1].score, m[ens].score, p->n_ho);
      fprintf(f, "| ensemble: GBT - level-1 | %+.4f ± %.4f |\n", d, e);
      for (int k = 0; k < K; k++) {
        paired(&d, &e, m[ho0 + 3 * k + 2].score, m[ho0 + 3 * k + 1].score, p->n_ho);
        fprintf(f, "| fold %d (TTA 8): GBT - level-1 | %+.4f ± %.4f |\n", k, d, e);
      }
      fprintf(f, "\nEnsemble check: the ensemble's body maps differ from the mean of the %d fold maps by at most %.3f "
                 "(uint8 units; each map is truncated on its own, so < 1 means equal).\n\n", K, max_diff);
    }
    fprintf(f, "## Out-of-fold images (%d; each by its own fold's net, which did not train on it; %d always-in-train "
               "images left out)\n\n| row | mean DSB |\n|---|---|\n", p->n_oof, p->n_always);
    for (int i = 0; i < ho0; i++) fprintf(f, "| %s | %.4f |\n", m[i].what, m[i].mean);
    double d, e;
    paired(&d, &e, m[1].score, m[0].score, p->n_oof);
    fprintf(f, "\n| comparison | difference |\n|---|---|\n| TTA 8 - no TTA | %+.4f ± %.4f |\n", d, e);
    paired(&d, &e, m[2].score, m[1].score, p->n_oof);
    fprintf(f, "| nested GBT - level-1 (TTA 8) | %+.4f ± %.4f |\n", d, e);
    fprintf(f, "\n## Wall time per stage (this table's own stage is in stages.csv)\n\n| stage | seconds |\n|---|---|\n");
    double total = 0;
    for (int i = 0; i < ns; i++) {
      double sec;
      if (strcmp(stages[i], "score") && stage_seconds(p, stages[i], &sec)) { fprintf(f, "| %s | %.0f |\n", stages[i], sec); total += sec; }
    }
    fprintf(f, "| total of the stages above | %.0f |\n", total);
    s = ky_atomic_commit(&af);
  }
  for (int i = 0; i < nm; i++) free(m[i].score);
  free(m);
  return s;
}

/* ---------------------------------------------------------------- the run */

static ky_status mark_done(const ky_repro_plan *p, const char *stage, double sec) {
  char path[PATHN], txt[64];
  KY_TRY(ky_mkdirs(path_of(path, p, "stages")));
  int n = snprintf(txt, sizeof txt, "%.3f\n", sec);
  return ky_file_write_atomic(path_of(path, p, "stages/%s.done", stage), txt, (size_t)n);
}

ky_status ky_repro_run(const ky_repro_opts *o, const ky_repro_hooks *h) {
  ky_repro_plan p;
  KY_TRY(ky_repro_plan_make(&p, o));
  ky_status s = KY_OK;
  char names[16][32];
  int K = p.o.n_folds, ns = stage_names(&p, names);
  for (int st = 0; st < ns && s == KY_OK; st++) {
    const char *name = names[st];
    double sec;
    /* The score stage is cheap and reads the other stages' markers: always redone. */
    if (!o->force && strcmp(name, "score") && stage_seconds(&p, name, &sec)) {
      if (h && h->on_stage) h->on_stage(h->ud, name, sec, 1);
      continue;
    }
    double t0 = now_s();
    if (st < K) s = ky_repro_train_fold(&p, st, h ? &h->train : NULL);
    else if (!strcmp(name, "oof")) s = ky_repro_oof(&p);
    else if (!strcmp(name, "holdout")) s = ky_repro_holdout(&p);
    else if (!strcmp(name, "gbt")) s = ky_repro_gbt(&p);
    else if (!strcmp(name, "predict")) {
      char out[PATHN];
      if (p.n_ho) s = ky_repro_predict(&p, p.o.data, path_of(out, &p, "predict"), (const char *const *)p.ho_ids, p.n_ho, NULL);
    } else {
      s = ky_repro_score(&p);
    }
    sec = now_s() - t0;
    if (s == KY_OK) s = mark_done(&p, name, sec);
    if (s == KY_OK && !strcmp(name, "score")) s = write_stages(&p);
    if (s == KY_OK && h && h->on_stage) h->on_stage(h->ud, name, sec, 0);
  }
  ky_repro_plan_free(&p);
  return s;
}

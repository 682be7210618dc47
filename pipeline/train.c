/* The training loop (see pipeline/train.h). Tested by tests/test_pipeline_train.c. */
#include "pipeline/train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aug/chain.h"
#include "aug/copypaste.h"
#include "core/fileio.h"
#include "data/batch.h"
#include "data/dsb.h"
#include "data/folds.h"
#include "data/loader.h"
#include "data/normalize.h"
#include "data/targets.h"
#include "dist/dist.h"
#include "losses/losses.h"
#include "models/checkpoint.h"
#include "models/model.h"
#include "ops/ops.h"
#include "optim/optim.h"
#include "pipeline/curve.h"
#include "pipeline/predict.h"
#include "pipeline/segment.h"
#include "post/metric.h"
#ifdef KY_HAVE_CUDA
#include "cuda/cuda.h"
#endif

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Hooks hear from rank 0 only (NULL elsewhere). */
static void info(const ky_train_hooks *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void info(const ky_train_hooks *h, const char *fmt, ...) {
  if (!h || !h->on_info) return;
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  h->on_info(h->ud, line);
}

/* Picks the device: cuda needs a CUDA build and a GPU; auto falls back to the CPU. */
static ky_status pick_device(ky_device *dev, const char *want, char *why, size_t why_len) {
  *dev = KY_DEV_CPU;
  snprintf(why, why_len, "cpu");
  if (!strcmp(want, "cpu")) return KY_OK;
#ifdef KY_HAVE_CUDA
  char reason[256] = "";
  int n = ky_cuda_device_count(reason, sizeof reason);
  if (n > 0) { *dev = KY_DEV_CUDA; snprintf(why, why_len, "cuda"); return KY_OK; }
  if (!strcmp(want, "cuda")) return ky_error(KY_ERR_CUDA, "device cuda asked for, but no GPU is usable: %s", reason);
  snprintf(why, why_len, "cpu (no GPU: %.200s)", reason);
#else
  if (!strcmp(want, "cuda")) return ky_error(KY_ERR_CUDA, "device cuda asked for, but this build has no CUDA backend");
  snprintf(why, why_len, "cpu (CUDA backend not built)");
#endif
  return KY_OK;
}

/* Appends set b's samples to a (b is emptied). */
static ky_status merge_sets(ky_dsb_set *a, ky_dsb_set *b) {
  if (!b->n) return KY_OK;
  char **ids = realloc(a->ids, (size_t)(a->n + b->n) * sizeof *ids);
  if (!ids) return ky_error(KY_ERR_NOMEM, "train: out of memory merging data folders");
  a->ids = ids;
  ky_dsb_sample *sm = realloc(a->samples, (size_t)(a->n + b->n) * sizeof *sm);
  if (!sm) return ky_error(KY_ERR_NOMEM, "train: out of memory merging data folders");
  a->samples = sm;
  memcpy(a->ids + a->n, b->ids, (size_t)b->n * sizeof *ids);
  memcpy(a->samples + a->n, b->samples, (size_t)b->n * sizeof *sm);
  a->n += b->n;
  free(b->ids);
  free(b->samples);
  memset(b, 0, sizeof *b);
  return KY_OK;
}

typedef struct {
  const ky_train_config *cfg;
  ky_dist *dist;
  ky_ctx ctx;
  ky_model *model;
  ky_head head;
  ky_norm norm;
  int classes;
} trainer;

/* The configured loss on logits for a batch's targets (cls u8 [n,h,w]; sig f32 [n,h,w,3]). */
static ky_status batch_loss(trainer *t, ky_tensor **loss, ky_tensor *parts[3], ky_tensor *logits,
                            const uint8_t *cls, const float *sig, int n, int h, int w) {
  if (t->head == KY_HEAD_SOFTMAX) {
    ky_tensor *ct;
    int cs[3] = {n, h, w};
    KY_TRY(ky_tensor_from_host(&t->ctx, &ct, KY_U8, 3, cs, cls));
    return ky_loss_softmax_dice(&t->ctx, loss, parts, logits, ct);
  }
  int C = t->classes;
  size_t np = (size_t)n * h * w;
  float *tg = malloc(np * C * sizeof(float));
  if (!tg) return ky_error(KY_ERR_NOMEM, "train: out of memory for targets");
  for (size_t p = 0; p < np; p++) for (int c = 0; c < C; c++) tg[p * C + c] = sig[p * 3 + c];
  ky_tensor *tt;
  int ts[4] = {n, h, w, C};
  ky_status s = ky_tensor_from_host(&t->ctx, &tt, KY_F32, 4, ts, tg);
  free(tg);
  KY_TRY(s);
  if (parts) parts[0] = parts[1] = parts[2] = NULL;
  if (!strcmp(t->cfg->loss, "focal")) return ky_loss_focal_dice(&t->ctx, loss, logits, tt, t->cfg->bce_weight);
  return ky_loss_sigmoid_dice(&t->ctx, loss, logits, tt, t->cfg->bce_weight);
}

/* One validation image, whole (padded to a multiple of 32 by reflection, no TTA): loss on the
 * padded image, probabilities cropped back, level-1 instances scored against the masks. */
static ky_status validate_one(trainer *t, const ky_dsb_sample *sm, double *loss_out, double *score_out) {
  int h = sm->h, w = sm->w;
  ky_pad pad = ky_pad_rule_to32(h, w);
  int ph = h + pad.top + pad.bottom, pw = w + pad.left + pad.right;
  size_t np = (size_t)ph * pw;
  uint8_t *rgb = malloc(np * 3), *body = malloc(np), *sep = malloc(np), *full = malloc(np), *cls = malloc(np);
  uint16_t *lab = malloc(np * sizeof(uint16_t)), *inst = malloc((size_t)h * w * sizeof(uint16_t));
  float *x = malloc(np * 3 * sizeof(float)), *sig = malloc(np * 3 * sizeof(float)), *lg = malloc(np * t->classes * sizeof(float));
  uint8_t *B = malloc((size_t)h * w), *S = malloc((size_t)h * w), *E = malloc((size_t)h * w);
  int32_t *gt = malloc((size_t)h * w * sizeof(int32_t)), *pr = malloc((size_t)h * w * sizeof(int32_t));
  ky_status s = KY_OK;
  if (!rgb || !body || !sep || !full || !cls || !lab || !inst || !x || !sig || !lg || !B || !S || !E || !gt || !pr) {
    s = ky_error(KY_ERR_NOMEM, "validation: out of memory for a %dx%d image", w, h);
    goto done;
  }
  if ((s = ky_pad_image(rgb, sm->rgb, h, w, 3, 1, pad, KY_PAD_REFLECT)) != KY_OK) goto done;
  if ((s = ky_pad_image(lab, sm->labels, h, w, 1, 2, pad, KY_PAD_REFLECT)) != KY_OK) goto done;
  if ((s = ky_targets_make(body, sep, full, lab, ph, pw)) != KY_OK) goto done;
  if ((s = ky_targets_classes(cls, body, sep, (int64_t)np)) != KY_OK) goto done;
  if ((s = ky_targets_sigmoid(sig, body, sep, full, (int64_t)np)) != KY_OK) goto done;
  if ((s = ky_normalize_u8(x, rgb, (int64_t)np, t->norm)) != KY_OK) goto done;
  ky_ctx_reset(&t->ctx);
  ky_tensor *xt, *logits, *loss;
  int xs[4] = {1, ph, pw, 3};
  if ((s = ky_tensor_from_host(&t->ctx, &xt, KY_F32, 4, xs, x)) != KY_OK) goto done;
  if ((s = ky_model_forward(&t->ctx, t->model, xt, &logits)) != KY_OK) goto done;
  if ((s = batch_loss(t, &loss, NULL, logits, cls, sig, 1, ph, pw)) != KY_OK) goto done;
  float lv;
  if ((s = ky_tensor_item(&t->ctx, &lv, loss)) != KY_OK) goto done;
  if ((s = ky_tensor_to_host(&t->ctx, lg, logits)) != KY_OK) goto done;
  *loss_out = lv;
  /* Probabilities of the original window. */
  for (int y = 0; y < h; y++)
    for (int xx = 0; xx < w; xx++) {
      const float *l = lg + ((size_t)(y + pad.top) * pw + xx + pad.left) * t->classes;
      float pb, ps, pf;
      if (t->head == KY_HEAD_SOFTMAX) {
        float m = fmaxf(l[0], fmaxf(l[1], l[2])), e0 = expf(l[0] - m), e1 = expf(l[1] - m), e2 = expf(l[2] - m);
        float z = e0 + e1 + e2;
        pb = e2 / z; ps = e1 / z; pf = (e1 + e2) / z;
      } else {
        pb = 1 / (1 + expf(-l[0])); ps = 1 / (1 + expf(-l[1]));
        pf = t->head == KY_HEAD_SIGMOID3 ? 1 / (1 + expf(-l[2])) : pb;
      }
      size_t o = (size_t)y * w + xx;
      ky_probs_to_u8(&B[o], &pb, 1);
      ky_probs_to_u8(&S[o], &ps, 1);
      ky_probs_to_u8(&E[o], &pf, 1);
    }
  int n_inst;
  if ((s = ky_pipeline_segment(inst, &n_inst, B, S, E, h, w, NULL, 0)) != KY_OK) goto done;
  for (size_t i = 0; i < (size_t)h * w; i++) { gt[i] = sm->labels[i]; pr[i] = inst[i]; }
  ky_metric_result mr;
  if ((s = ky_metric_dsb(&mr, gt, pr, h, w)) != KY_OK) goto done;
  *score_out = mr.score;
done:
  free(rgb); free(body); free(sep); free(full); free(cls); free(lab); free(inst); free(x); free(sig); free(lg);
  free(B); free(S); free(E); free(gt); free(pr);
  return s;
}

/* Each rank validates images i = rank, rank + size, ...; the sums are all-reduced. */
static ky_status validate(trainer *t, const ky_dsb_set *set, const int *val, int n_val, float *loss, float *score) {
  int old_train = t->ctx.training, old_grad = ky_ctx_set_grad(&t->ctx, 0);
  t->ctx.training = 0;
  double sum[2] = {0, 0};
  ky_status s = KY_OK;
  for (int i = t->dist->rank; i < n_val && s == KY_OK; i += t->dist->size) {
    double l = 0, sc = 0;
    s = validate_one(t, &set->samples[val[i]], &l, &sc);
    if (s != KY_OK) s = ky_error_context(s, "validating %s: ", set->ids[val[i]]);
    sum[0] += l;
    sum[1] += sc;
  }
  t->ctx.training = old_train;
  ky_ctx_set_grad(&t->ctx, old_grad);
  KY_TRY(s);
  KY_TRY(ky_dist_sum_f64(t->dist, sum, 2));
  *loss = n_val ? (float)(sum[0] / n_val) : NAN;
  *score = n_val ? (float)(sum[1] / n_val) : NAN;
  return s;
}

/* Rank 0's block (parameters, or batch-norm running statistics) to every rank. */
static ky_status bcast_block(ky_dist *d, ky_params *ps, float *block) {
  if (d->size < 2 || !ps->total || !block) return KY_OK;
  float *h = malloc(ps->total * sizeof *h);
  if (!h) return ky_error(KY_ERR_NOMEM, "train: out of memory for a %zu-float copy", ps->total);
  ky_status s = ky_params_get(ps, h, block);
  if (s == KY_OK) s = ky_dist_bcast(d, h, ps->total * sizeof *h, 0);
  if (s == KY_OK) s = ky_params_set(ps, block, h);
  free(h);
  return s;
}

/* Every rank must hold the same parameters after each step (the same summed gradients, the same
 * optimiser): checked at checkpoints, so a divergence is an error, not a silent drift. */
static ky_status check_in_step(ky_dist *d, ky_params *ps, int64_t step) {
  if (d->size < 2) return KY_OK;
  float *h = malloc(ps->total * sizeof *h + 1);
  if (!h) return ky_error(KY_ERR_NOMEM, "train: out of memory");
  ky_status s = ky_params_get(ps, h, ps->data);
  uint64_t hash = s == KY_OK ? ky_dist_hash(0, h, ps->total * sizeof *h) : 0;
  free(h);
  KY_TRY(s);
  s = ky_dist_check_same(d, hash, "parameters");
  if (s != KY_OK) s = ky_error_context(s, "step %lld: ranks diverged: ", (long long)step);
  return s;
}

/* Copies the lines of the CSV log `path` whose first field (step) is <= max_step to `dst` (to
 * continue the logs, and the curve drawn from them, exactly on resume). */
static ky_status trim_log(const char *path, const char *dst, int64_t max_step) {
  char *buf;
  size_t n;
  if (ky_file_read_all(path, &buf, &n) != KY_OK) { ky_error_clear(); return KY_OK; }
  ky_atomic_file af;
  ky_status s = ky_atomic_open(&af, dst);
  if (s != KY_OK) { free(buf); return s; }
  char *save, *line = strtok_r(buf, "\n", &save);
  if (line) fprintf(af.f, "%s\n", line);   /* header */
  while ((line = strtok_r(NULL, "\n", &save))) {
    long long st = atoll(line);
    if (st > max_step) continue;
    fprintf(af.f, "%s\n", line);
  }
  free(buf);
  return ky_atomic_commit(&af);
}

/* Rank 0's logs are written to <name>.partial and published (copied atomically over <name>), with
 * config.txt, only after each checkpoint: so the files a user sees always belong together. A fresh
 * run that fails or is killed before its first checkpoint, or a disk that fills at a checkpoint,
 * leaves the previous run's checkpoint, config and logs as they were. */
typedef struct {
  const ky_train_config *cfg;
  FILE *steplog, *eplog;
  char step_final[KY_CFG_STR + 64], step_part[KY_CFG_STR + 80];
  char ep_final[KY_CFG_STR + 64], ep_part[KY_CFG_STR + 80];
  char config[KY_CFG_STR + 64];
  int config_written;
} run_files;

static ky_status copy_file_atomic(const char *dst, const char *src) {
  char *b;
  size_t n;
  KY_TRY(ky_file_read_all(src, &b, &n));
  ky_status s = ky_file_write_atomic(dst, b, n);
  free(b);
  return s;
}

static ky_status publish(run_files *rf) {
  if (fflush(rf->steplog) != 0 || fflush(rf->eplog) != 0)
    return ky_error(KY_ERR_IO, "writing the logs in %s failed: %s", rf->cfg->out, strerror(errno));
  KY_TRY(copy_file_atomic(rf->step_final, rf->step_part));
  KY_TRY(copy_file_atomic(rf->ep_final, rf->ep_part));
  if (!rf->config_written) KY_TRY(ky_train_config_save(rf->cfg, rf->config));
  rf->config_written = 1;
  return KY_OK;
}

ky_status ky_train_run(const ky_train_config *cfg, int resume, const ky_train_hooks *hooks, ky_train_result *res) {
  ky_dist one;
  memset(&one, 0, sizeof one);
  one.size = one.local_size = 1;
  return ky_train_run_dist(cfg, resume, &one, hooks, res);
}

/* Same build and same options on every rank, or an error naming the first rank that differs. */
static ky_status check_ranks(ky_dist *d, const ky_train_config *cfg) {
  if (d->size < 2) return KY_OK;
  static const char build[] = __DATE__ " " __TIME__ " " __FILE__;
  uint64_t h = ky_dist_hash(0, build, sizeof build);
  h = ky_dist_hash(h, ky_dist_mpi_version(), strlen(ky_dist_mpi_version()));
  size_t sz = sizeof *cfg;
  h = ky_dist_hash(h, &sz, sizeof sz);
  KY_TRY(ky_dist_check_same(d, h, "karyon build"));
  char *text = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&text, &n);
  if (!f) return ky_error(KY_ERR_NOMEM, "train: out of memory");
  ky_train_config_write(f, cfg);
  fclose(f);
  ky_status s = ky_dist_check_same(d, ky_dist_hash(0, text, n), "training options (config and flags)");
  free(text);
  return s;
}

ky_status ky_train_run_dist(const ky_train_config *cfg, int resume, ky_dist *dist, const ky_train_hooks *hooks,
                            ky_train_result *res) {
  KY_CHECK_NULL(cfg, "config");
  KY_CHECK_NULL(dist, "dist");
  KY_TRY(ky_train_config_validate(cfg));
  KY_TRY(check_ranks(dist, cfg));
  const int rank0 = dist->rank == 0;
  KY_CHECK(cfg->batch >= dist->size, KY_ERR_ARG,
           "train: batch %d cannot split over %d ranks (each rank needs at least one crop; --batch is the global batch)",
           cfg->batch, dist->size);
  const ky_train_hooks *all_hooks = hooks;
  if (!rank0) hooks = NULL;
  ky_reducer *reducer = NULL;
  double *step_s = NULL;
  ky_train_result r0;
  memset(&r0, 0, sizeof r0);
  if (!res) res = &r0;
  memset(res, 0, sizeof *res);
  res->best_val_loss = INFINITY;

  trainer t;
  memset(&t, 0, sizeof t);
  t.cfg = cfg;
  t.dist = dist;
  ky_dsb_set set, extra;
  memset(&set, 0, sizeof set);
  memset(&extra, 0, sizeof extra);
  ky_folds folds;
  memset(&folds, 0, sizeof folds);
  int *tr_rows = NULL, *va_rows = NULL, *list = NULL, *val = NULL, n_tr = 0, n_va = 0, n_list = 0, n_val = 0;
  ky_loader *loader = NULL;
  ky_optim opt;
  char last[KY_CFG_STR + 64], best[KY_CFG_STR + 64];
  FILE *steplog = NULL, *eplog = NULL;
  run_files rf;
  memset(&rf, 0, sizeof rf);
  rf.cfg = cfg;
  int partials = 0;
  ky_ckpt_state st;
  memset(&st, 0, sizeof st);
  ky_status s;

  KY_TRY(ky_head_parse(&t.head, cfg->loss));
  KY_TRY(ky_norm_parse(&t.norm, cfg->norm));
  t.classes = t.head == KY_HEAD_SIGMOID ? 2 : 3;
  ky_aug_chain chain;
  int use_aug = strcmp(cfg->aug, "none") != 0;
  if (!strcmp(cfg->aug, "mega")) KY_TRY(ky_aug_chain_mega(&chain, cfg->aug_p, cfg->ssr_lo, cfg->ssr_hi));
  else if (use_aug) KY_TRY(ky_aug_chain_parse(&chain, cfg->aug));
  ky_oversample os;
  KY_TRY(ky_oversample_parse(&os, cfg->oversample));
  if (rank0) KY_TRY(ky_mkdirs(cfg->out));
  snprintf(last, sizeof last, "%s/last.safetensors", cfg->out);
  snprintf(best, sizeof best, "%s/best.safetensors", cfg->out);

  /* Data: folds (CSV or hash split over the folder), then every listed image decoded once. */
  ky_dsb_ids ids;
  KY_TRY(ky_dsb_list_ids(&ids, cfg->data));
  if (cfg->folds[0]) s = ky_folds_load(&folds, cfg->folds);
  else s = ky_folds_fallback(&folds, (const char *const *)ids.ids, ids.n);
  ky_dsb_ids_free(&ids);
  if (s != KY_OK) goto done;
  {
    const char **fid = malloc((size_t)folds.n * sizeof *fid);
    if (!fid) { s = ky_error(KY_ERR_NOMEM, "train: out of memory"); goto done; }
    for (int i = 0; i < folds.n; i++) fid[i] = folds.rows[i].id;
    s = ky_dsb_set_load(&set, cfg->data, fid, folds.n, KY_DSB_MASKS_REQUIRED);
    free(fid);
    if (s != KY_OK) { s = ky_error_context(s, "loading %s (ids from %s): ", cfg->data, cfg->folds[0] ? cfg->folds : "the folder"); goto done; }
  }
  if (cfg->fold >= 0) {
    if ((s = ky_folds_split(&tr_rows, &n_tr, &va_rows, &n_va, &folds, cfg->fold, &os, NULL)) != KY_OK) goto done;
  } else {
    /* fold -1: every image trains (with its oversampling), none validates. */
    int cap = 0;
    for (int i = 0; i < folds.n; i++) cap += ky_oversample_repeats(&os, &folds.rows[i]);
    tr_rows = malloc((size_t)(cap ? cap : 1) * sizeof *tr_rows);
    if (!tr_rows) { s = ky_error(KY_ERR_NOMEM, "train: out of memory"); goto done; }
    for (int i = 0; i < folds.n; i++)
      for (int r = ky_oversample_repeats(&os, &folds.rows[i]); r > 0; r--) tr_rows[n_tr++] = i;
  }
  if (cfg->extra_data[0]) {
    if ((s = ky_dsb_set_load(&extra, cfg->extra_data, NULL, 0, KY_DSB_MASKS_REQUIRED)) != KY_OK) goto done;
  }
  n_list = n_tr + extra.n;
  list = malloc((size_t)(n_list ? n_list : 1) * sizeof *list);
  val = malloc((size_t)(n_va ? n_va : 1) * sizeof *val);
  if (!list || !val) { s = ky_error(KY_ERR_NOMEM, "train: out of memory"); goto done; }
  for (int i = 0; i < n_tr; i++) list[i] = ky_dsb_set_find(&set, folds.rows[tr_rows[i]].id);
  for (int i = 0; i < n_va; i++) {
    /* Validation images once each, in fold order. */
    int idx = ky_dsb_set_find(&set, folds.rows[va_rows[i]].id), dup = 0;
    for (int j = 0; j < n_val; j++) dup |= val[j] == idx;
    if (!dup && (!cfg->val_images || n_val < cfg->val_images)) val[n_val++] = idx;
  }
  {
    int base = set.n;
    if ((s = merge_sets(&set, &extra)) != KY_OK) goto done;
    for (int i = 0; i < n_list - n_tr; i++) list[n_tr + i] = base + i;
  }
  if (n_list == 0) { s = ky_error(KY_ERR_ARG, "train: no training images (fold %d holds every image?)", cfg->fold); goto done; }
  info(hooks, "data: %d images, %d in the training list (oversampled), %d for validation (fold %d)", set.n, n_list, n_val,
       cfg->fold);

  /* Device, model, optimiser. */
  {
    ky_device dev;
    char why[300];
    if ((s = pick_device(&dev, cfg->device, why, sizeof why)) != KY_OK) goto done;
    int gpu = 0;
#ifdef KY_HAVE_CUDA
    if (dev == KY_DEV_CUDA) gpu = dist->local_rank % ky_cuda_device_count(NULL, 0);
#endif
    if ((s = ky_ctx_init(&t.ctx, dev, gpu)) != KY_OK) goto done;
    if (cfg->threads && (s = ky_ctx_set_threads(&t.ctx, cfg->threads)) != KY_OK) goto done;
    t.ctx.dist = dist;
    dist->sync_bn = cfg->sync_bn;
    if (dev == KY_DEV_CUDA && (s = ky_dist_nccl_init(dist, t.ctx.cu)) != KY_OK) goto done;
#ifdef KY_HAVE_CUDA
    if (t.ctx.cu) {
      ky_cuda_set_tf32(t.ctx.cu, cfg->tf32);
      ky_cuda_set_deterministic(t.ctx.cu, cfg->deterministic);
      /* Read back from the context, so the log shows what the kernels will see. */
      info(hooks, "cuda: tf32 %s; convolution kernels %s", ky_cuda_tf32(t.ctx.cu) ? "on" : "off",
           ky_cuda_deterministic(t.ctx.cu) ? "by a fixed rule (--deterministic 1: reproducible)"
                                           : "by timing (--deterministic 0: not reproducible)");
    }
#endif
    snprintf(res->device, sizeof res->device, "%s", dev == KY_DEV_CUDA ? "cuda" : "cpu");
    if (dist->mpi)
      info(hooks, "device: %s; %d ranks (%d on this machine), %s gradients, batch %d split %d..%d per rank, %s batch norm",
           why, dist->size, dist->local_size, dev == KY_DEV_CUDA && dist->nccl ? "NCCL" : "MPI", cfg->batch,
           cfg->batch / dist->size, (cfg->batch + dist->size - 1) / dist->size, cfg->sync_bn ? "synchronised" : "per-rank");
    else info(hooks, "device: %s", why);
    info(hooks, "threads: %d for the CPU kernels", ky_ctx_threads(&t.ctx));
    ky_model_config mc = ky_model_config_default();
    mc.classes = t.classes;
    mc.width = cfg->width;
    mc.decoder_bn = cfg->decoder_bn;
    mc.seed = cfg->seed;
    mc.dev = dev;
    mc.cu = t.ctx.cu;
    if ((s = ky_model_create(&t.model, cfg->model, &mc)) != KY_OK) goto done;
  }
  if (!strcmp(cfg->optim, "sgd")) opt = ky_optim_sgd(cfg->lr, cfg->momentum);
  else { opt = ky_optim_adam(cfg->lr); opt.amsgrad = !strcmp(cfg->optim, "amsgrad"); }
  opt.pool = t.ctx.pool;
  opt.weight_decay = cfg->weight_decay;
  opt.keras_decay = cfg->keras_decay;
  ky_schedule sched;
  if ((s = ky_schedule_parse(&sched, cfg->schedule)) != KY_OK) goto done;

  int64_t start = 0;
  float best_val = INFINITY;
  if (resume) {
    if ((s = ky_checkpoint_load(last, t.model, &opt, &st)) != KY_OK) { s = ky_error_context(s, "resuming: "); goto done; }
    start = opt.step;
    const char *bv = st.config ? strstr(st.config, "# best_val_loss = ") : NULL;
    if (bv) best_val = strtof(bv + 18, NULL);
    info(hooks, "resumed from %s at step %lld (epoch %lld)", last, (long long)start, (long long)st.epoch);
  } else if (cfg->init[0]) {
    ky_load_report rep;
    memset(&rep, 0, sizeof rep);
    /* The encoder must be complete (a ResNet18 file given to a ResNet34 is an error); the decoder may be missing. */
    s = ky_model_load(t.model, cfg->init, KY_LOAD_ENCODER_ONLY, &rep);
    if (s == KY_OK) info(hooks, "init: %d tensors from %s (%d model tensors not in the file, %d file tensors unused)",
                         rep.n_loaded, cfg->init, rep.n_missing, rep.n_unexpected);
    ky_load_report_free(&rep);
    if (s != KY_OK) goto done;
  }

  if (dist->mpi) {
    /* Every rank built the same model from the same seed and file; rank 0's copy makes sure. */
    if ((s = bcast_block(dist, ky_model_params(t.model), ky_model_params(t.model)->data)) != KY_OK) goto done;
    if ((s = bcast_block(dist, ky_model_buffers(t.model), ky_model_buffers(t.model)->data)) != KY_OK) goto done;
    if ((s = ky_reducer_create(&reducer, dist, ky_model_params(t.model), (size_t)(cfg->bucket_mb * 1048576.0))) != KY_OK) goto done;
  }
  int epoch_size = cfg->epoch_size ? cfg->epoch_size : (n_list + cfg->batch - 1) / cfg->batch;
  int64_t total = cfg->iters ? cfg->iters : (int64_t)cfg->epochs * epoch_size;
  if (start > total) {
    s = ky_error(KY_ERR_ARG, "resuming: %s is at step %lld, beyond this run's %lld steps (raise iters or epochs to go on)",
                 last, (long long)start, (long long)total);
    goto done;
  }
  /* Effective config (with the data sizes the run derived) beside the checkpoints: written with
   * the first checkpoint (publish). */
  snprintf(rf.config, sizeof rf.config, "%s/config.txt", cfg->out);

  /* Logs: continue exactly from the resumed step (later lines came from the killed run). */
  char curve_path[KY_CFG_STR + 64];
  snprintf(rf.step_final, sizeof rf.step_final, "%s/log.csv", cfg->out);
  snprintf(rf.step_part, sizeof rf.step_part, "%s/log.csv.partial", cfg->out);
  snprintf(rf.ep_final, sizeof rf.ep_final, "%s/epochs.csv", cfg->out);
  snprintf(rf.ep_part, sizeof rf.ep_part, "%s/epochs.csv.partial", cfg->out);
  snprintf(curve_path, sizeof curve_path, "%s/curve.png", cfg->out);
  partials = rank0;
  if (resume && rank0) {
    if ((s = trim_log(rf.step_final, rf.step_part, start)) != KY_OK) goto done;
    if ((s = trim_log(rf.ep_final, rf.ep_part, start)) != KY_OK) goto done;
  }
  /* Rank 0 alone writes logs, curves and checkpoints; the others write to nowhere. */
  steplog = rf.steplog = fopen(rank0 ? rf.step_part : "/dev/null", resume ? "a" : "w");
  eplog = rf.eplog = fopen(rank0 ? rf.ep_part : "/dev/null", resume ? "a" : "w");
  if (!steplog || !eplog) { s = ky_error(KY_ERR_IO, "cannot write logs in %s: %s", cfg->out, strerror(errno)); goto done; }
  if (!resume) {
    fprintf(steplog, "step,epoch,loss,ce,dice_body,dice_border,lr,grad_norm\n");
    fprintf(eplog, "step,epoch,train_loss,val_loss,val_score,best\n");
  }

  ky_loader_config lc;
  memset(&lc, 0, sizeof lc);
  lc.set = &set;
  lc.list = list;
  lc.n_list = n_list;
  lc.batch = cfg->batch;
  lc.crop = cfg->crop;
  lc.seed = cfg->seed;
  lc.norm = t.norm;
  lc.with_sigmoid = t.head != KY_HEAD_SOFTMAX;
  /* On the CPU the kernels already use every core: one loader thread, at a lower priority, fills the
   * ring in the gaps instead of stalling the kernels' threads (batches do not depend on it). */
  lc.threads = cfg->loader_threads ? cfg->loader_threads : t.ctx.dev == KY_DEV_CUDA ? 2 : 1;
  lc.nice = t.ctx.dev == KY_DEV_CUDA ? 0 : 10;
  lc.first_batch = start;
  if (dist->size > 1) ky_dist_shard(&lc.shard_lo, &lc.shard_hi, cfg->batch, dist->rank, dist->size);
  float cp = cfg->copy_paste;
  if (cp > 0) { lc.precrop = ky_aug_copy_paste_hook; lc.precrop_ctx = &cp; }
  if (use_aug) { lc.augment = ky_aug_hook; lc.augment_ctx = &chain; }
  if (start < total && (s = ky_loader_start(&loader, &lc)) != KY_OK) goto done;

  ky_params *ps = ky_model_params(t.model);
  /* This rank's loss counts for its share of the global batch, so the summed gradients are those
   * of the global batch's mean loss (exact for per-image losses; batch dice is per rank). */
  const float share = lc.shard_hi ? (float)(lc.shard_hi - lc.shard_lo) / (float)cfg->batch : 1.0f;
  double t0 = now_s(), ep_loss = 0, compute_s = 0, t_prev = t0;
  step_s = malloc((size_t)(total - start > 0 ? total - start : 1) * sizeof *step_s);   /* wall time per step */
  if (!step_s) { s = ky_error(KY_ERR_NOMEM, "train: out of memory"); goto done; }
  int ep_n = 0;
  int64_t steps_this_call = 0;
  for (int64_t step = start; step < total; step++) {
    int epoch = (int)(step / epoch_size);
    ky_model_freeze_encoder(t.model, epoch < cfg->freeze_epochs);
    const ky_batch *b;
    if ((s = ky_loader_next(loader, &b, NULL)) != KY_OK) goto done;
    double tc0 = now_s();
    ky_ctx_reset(&t.ctx);
    t.ctx.training = 1;
    if ((s = ky_params_zero_grad(ps, t.ctx.pool)) != KY_OK) goto done;
    ky_tensor *xt, *logits, *loss, *parts[3] = {0};
    int xs[4] = {b->n, b->h, b->w, 3};
    if ((s = ky_tensor_from_host(&t.ctx, &xt, KY_F32, 4, xs, b->x)) != KY_OK) goto done;
    if ((s = ky_model_forward(&t.ctx, t.model, xt, &logits)) != KY_OK) goto done;
    if ((s = batch_loss(&t, &loss, parts, logits, b->cls, b->sig, b->n, b->h, b->w)) != KY_OK) goto done;
    float lv, pv[3] = {0, 0, 0};
    if ((s = ky_tensor_item(&t.ctx, &lv, loss)) != KY_OK) goto done;
    for (int k = 0; k < 3; k++) if (parts[k]) ky_tensor_item(&t.ctx, &pv[k], parts[k]);
    if (dist->mpi) {
      /* The global batch's loss on every rank, so a NaN anywhere stops every rank at this step. */
      double g[4] = {share * (double)lv, share * (double)pv[0], share * (double)pv[1], share * (double)pv[2]};
      if ((s = ky_dist_sum_f64(dist, g, 4)) != KY_OK) goto done;
      lv = (float)g[0];
      for (int k = 0; k < 3; k++) pv[k] = (float)g[k + 1];
    }
    /* The loss and gradients checked here are all-reduced: every rank stops at this step. */
    if (!isfinite(lv)) { s = ky_error(KY_ERR_NUMERIC, "step %lld: the loss is %g; stopping (last good checkpoint: %s)", (long long)step + 1, lv, last); res->stopped_together = 1; goto done; }
    if (reducer) {
      ky_tensor *seed;
      int one = 1;
      if ((s = ky_tensor_from_host(&t.ctx, &seed, KY_F32, 1, &one, &share)) != KY_OK) goto done;
      if ((s = ky_reducer_attach(reducer, &t.ctx)) != KY_OK) goto done;
      s = ky_backward_from(&t.ctx, loss, seed);
      ky_status s2 = ky_reducer_finish(reducer, &t.ctx);
      if (s == KY_OK) s = s2;
      if (s != KY_OK) goto done;
    } else if ((s = ky_backward(&t.ctx, loss)) != KY_OK) goto done;
    float gn;
    s = cfg->clip > 0 ? ky_clip_grad_norm(ps, cfg->clip, &gn) : ky_grad_norm(ps, &gn);
    if (s == KY_OK && !isfinite(gn)) s = ky_error(KY_ERR_NUMERIC, "gradient norm %g", gn);
    if (s != KY_OK) { res->stopped_together = s == KY_ERR_NUMERIC; s = ky_error_context(s, "step %lld: a gradient is NaN/Inf (last good checkpoint: %s): ", (long long)step + 1, last); goto done; }
    float lr = ky_schedule_lr(&sched, cfg->lr, epoch, step);
    size_t first, end;
    ky_model_trainable_range(t.model, &first, &end);
    if ((s = ky_optim_step(&opt, ps, lr, first, end)) != KY_OK) goto done;
    compute_s += now_s() - tc0;
    steps_this_call++;
    ep_loss += lv;
    ep_n++;
    fprintf(steplog, "%lld,%d,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g\n", (long long)step + 1, epoch, lv, pv[0], pv[1], pv[2], lr, gn);
    res->steps = step + 1;
    res->last_loss = lv;
    if (hooks && hooks->on_step) {
      double el = now_s() - t0;
      ky_train_progress p = {step + 1, total, epoch, lv, {pv[0], pv[1], pv[2]}, lr, gn,
                             steps_this_call * cfg->batch / (el > 0 ? el : 1e-9),
                             el / steps_this_call * (double)(total - step - 1)};
      hooks->on_step(hooks->ud, &p);
    }
    int epoch_end = (step + 1) % epoch_size == 0 || step + 1 == total;
    int stop_now = all_hooks && all_hooks->stop_after && steps_this_call >= all_hooks->stop_after;
    int saving = epoch_end || (cfg->ckpt_every && (step + 1) % cfg->ckpt_every == 0) || stop_now;
    if (saving && dist->mpi) {
      /* Rank 0's batch-norm running statistics (per-rank statistics differ) validate and save. */
      if ((s = bcast_block(dist, ky_model_buffers(t.model), ky_model_buffers(t.model)->data)) != KY_OK) goto done;
      if ((s = check_in_step(dist, ps, step + 1)) != KY_OK) goto done;
    }
    if (epoch_end) {
      ky_train_epoch e = {epoch, step + 1, (float)(ep_loss / (ep_n ? ep_n : 1)), NAN, NAN, 0};
      if (n_val) {
        if ((s = validate(&t, &set, val, n_val, &e.val_loss, &e.val_score)) != KY_OK) goto done;
        res->last_val_score = e.val_score;
        if (e.val_loss < best_val) {
          best_val = e.val_loss;
          e.best = 1;
        }
      }
      fprintf(eplog, "%lld,%d,%.6g,%.6g,%.6g,%d\n", (long long)step + 1, epoch, e.train_loss, e.val_loss, e.val_score, e.best);
      fflush(eplog);
      ep_loss = 0;
      ep_n = 0;
      /* Checkpoint, then best (a copy of the same state). */
      char cfgtext[8192];
      FILE *mf = fmemopen(cfgtext, sizeof cfgtext, "w");
      if (mf) { ky_train_config_write(mf, cfg); fprintf(mf, "# best_val_loss = %.9g\n", best_val); fclose(mf); }
      cfgtext[sizeof cfgtext - 1] = 0;
      st.epoch = epoch + 1;
      char *old = st.config;
      st.config = cfgtext;
      s = rank0 ? ky_checkpoint_save(last, t.model, &opt, &st) : KY_OK;
      if (s == KY_OK && e.best && rank0) s = ky_checkpoint_save(best, t.model, &opt, &st);
      if (s == KY_OK && rank0) s = publish(&rf);
      st.config = old;
      if (s != KY_OK) goto done;
      fflush(steplog);
      if (rank0 && (s = ky_curve_from_logs(curve_path, rf.step_part, rf.ep_part, 800, 480)) != KY_OK) goto done;
      if (hooks && hooks->on_epoch) hooks->on_epoch(hooks->ud, &e);
    } else if ((cfg->ckpt_every && (step + 1) % cfg->ckpt_every == 0) || stop_now) {
      char cfgtext[8192];
      FILE *mf = fmemopen(cfgtext, sizeof cfgtext, "w");
      if (mf) { ky_train_config_write(mf, cfg); fprintf(mf, "# best_val_loss = %.9g\n", best_val); fclose(mf); }
      cfgtext[sizeof cfgtext - 1] = 0;
      char *old = st.config;
      st.config = cfgtext;
      st.epoch = epoch;
      s = rank0 ? ky_checkpoint_save(last, t.model, &opt, &st) : KY_OK;
      if (s == KY_OK && rank0) s = publish(&rf);
      st.config = old;
      if (s != KY_OK) goto done;
    }
    fflush(steplog);
    double t_now = now_s();
    step_s[steps_this_call - 1] = t_now - t_prev;
    t_prev = t_now;
    if (stop_now) break;
  }
  res->best_val_loss = best_val;
  if (steps_this_call) {
    res->compute_s = compute_s / steps_this_call;
    res->comm_wait_s = dist->steps ? dist->wait_s / dist->steps : 0;
    qsort(step_s, (size_t)steps_this_call, sizeof *step_s, cmp_double);
    res->median_step_s = step_s[steps_this_call / 2];
    info(hooks, "timing: %d rank%s; median step %.1f ms (%.2f img/s); per step %.1f ms compute (forward, backward, "
         "all-reduce, optimiser) of which %.2f ms waiting for the gradient all-reduce after the backward pass; %.2f MB "
         "all-reduced per step in %d bucket(s), %.1f of them started during the backward pass", dist->size,
         dist->size > 1 ? "s" : "", 1e3 * res->median_step_s, cfg->batch / res->median_step_s, 1e3 * res->compute_s,
         1e3 * res->comm_wait_s, dist->bytes / (dist->steps ? dist->steps : 1) / 1048576.0,
         reducer ? ky_reducer_buckets(reducer, NULL) : 0, dist->early / (dist->steps ? dist->steps : 1));
  }
  s = KY_OK;
done:
  if (loader) ky_loader_stop(loader);
  ky_reducer_free(reducer);
  free(step_s);
  if (steplog) fclose(steplog);
  if (eplog) fclose(eplog);
  if (partials) { unlink(rf.step_part); unlink(rf.ep_part); }
  ky_ckpt_state_free(&st);
  free(tr_rows); free(va_rows); free(list); free(val);
  if (t.model) ky_model_free(t.model);
  ky_ctx_free(&t.ctx);
  ky_dsb_set_free(&set);
  ky_dsb_set_free(&extra);
  ky_folds_free(&folds);
  return s;
}

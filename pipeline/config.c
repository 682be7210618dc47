/* The option table behind ky_train_config: parsing, validation, writing, help.
 * Tested by tests/test_pipeline_train.c (test_config_errors). */
#include "pipeline/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fileio.h"

typedef enum { T_STR, T_INT, T_FLOAT, T_U64, T_BOOL } opt_type;
typedef struct {
  const char *name;
  opt_type type;
  size_t off, size;
  const char *def;
  const char *help;
} opt;

#define S(f) offsetof(ky_train_config, f), sizeof(((ky_train_config *)0)->f)
static const opt opts[] = {
    {"data", T_STR, S(data), "", "DSB-layout training folder (<id>/images, <id>/masks)"},
    {"extra_data", T_STR, S(extra_data), "", "second DSB-layout folder, always in training (pseudo-labels)"},
    {"folds", T_STR, S(folds), "", "folds CSV (img_id, fold, cluster, ...); empty: built-in hash split"},
    {"fold", T_INT, S(fold), "0", "validation fold 0..3; -1 trains on every image"},
    {"model", T_STR, S(model), "unet_resnet34", "network: unet_resnet18/34/50/101/152, fpn_resnet18/34/50/101/152"},
    {"width", T_FLOAT, S(width), "1", "width multiplier for every layer (1 = reference; 0.25 for a slim CPU model)"},
    {"decoder_bn", T_BOOL, S(decoder_bn), "0", "batch norm in the U-Net decoder blocks"},
    {"loss", T_STR, S(loss), "softmax", "softmax (0.6 CE + 0.2 dice body + 0.2 dice border), sigmoid (body, sep), sigmoid3 (body, sep, full), focal (sigmoid head, focal loss in place of BCE)"},
    {"bce_weight", T_FLOAT, S(bce_weight), "0.5", "sigmoid/focal losses: weight of BCE (focal) against 1 - dice"},
    {"norm", T_STR, S(norm), "torch", "input normalisation: torch, caffe, dpn, tf"},
    {"crop", T_INT, S(crop), "256", "training crop side (multiple of 32)"},
    {"batch", T_INT, S(batch), "16", "crops per batch"},
    {"iters", T_INT, S(iters), "0", "total iterations; 0: epochs x epoch_size"},
    {"epochs", T_INT, S(epochs), "17", "epochs"},
    {"epoch_size", T_INT, S(epoch_size), "0", "iterations per epoch; 0: one pass over the oversampled list"},
    {"optim", T_STR, S(optim), "adam", "adam, amsgrad or sgd"},
    {"lr", T_FLOAT, S(lr), "5e-5", "base learning rate"},
    {"weight_decay", T_FLOAT, S(weight_decay), "0", "Adam: decoupled weight decay; SGD: L2"},
    {"momentum", T_FLOAT, S(momentum), "0.9", "SGD momentum"},
    {"keras_decay", T_FLOAT, S(keras_decay), "0", "Keras-style per-step decay: lr / (1 + d * step)"},
    {"schedule", T_STR, S(schedule), "exp:0.85", "const, exp:GAMMA (per epoch), inverse:DECAY (per step), steps:LR@EPOCH,..."},
    {"clip", T_FLOAT, S(clip), "1", "clip the global gradient norm to this (0 = off)"},
    {"aug", T_STR, S(aug), "mega", "augmentation: mega (reference chain), none, or a chain spec"},
    {"aug_p", T_FLOAT, S(aug_p), "0.97", "probability of applying the whole mega chain"},
    {"ssr_lo", T_FLOAT, S(ssr_lo), "-0.4", "ShiftScaleRotate scale range low (scale = 1 + U(lo, hi))"},
    {"ssr_hi", T_FLOAT, S(ssr_hi), "0.4", "ShiftScaleRotate scale range high"},
    {"copy_paste", T_FLOAT, S(copy_paste), "0", "nuclei copy-paste probability (Victor 0.25, Selim 0.05)"},
    {"oversample", T_STR, S(oversample), "b:4,d:4,e:4,m:4,c:3,n:3,polosa:5", "per-cluster repeats in the training list"},
    {"seed", T_U64, S(seed), "777", "seed for initialisation, sampling and augmentation"},
    {"device", T_STR, S(device), "auto", "cpu, cuda or auto"},
    {"tf32", T_BOOL, S(tf32), "0", "allow TF32 tensor cores for convolutions (sm_80+)"},
    {"deterministic", T_BOOL, S(deterministic), "1", "GPU: pick convolution kernels by a fixed rule, so a run and its resume are bitwise reproducible on one card; 0: time them (may be faster, not reproducible)"},
    {"init", T_STR, S(init), "", "initial weights (safetensors; a torchvision ResNet loads into the encoder)"},
    {"freeze_epochs", T_INT, S(freeze_epochs), "0", "keep the encoder frozen for the first N epochs"},
    {"out", T_STR, S(out), "runs/train", "output folder (checkpoints, config, log.csv, curve.png)"},
    {"ckpt_every", T_INT, S(ckpt_every), "0", "also checkpoint every N iterations (0: at epoch ends only)"},
    {"threads", T_INT, S(threads), "0", "CPU threads for the kernels (0: KY_THREADS, else every core); results do not depend on it"},
    {"loader_threads", T_INT, S(loader_threads), "0", "data loader threads (0: 1 on the CPU, beside the kernel threads at low priority; 2 on a GPU)"},
    {"val_images", T_INT, S(val_images), "0", "at most this many validation images per epoch (0 = all)"},
    {"quiet", T_BOOL, S(quiet), "0", "no progress line"},
    {"sync_bn", T_BOOL, S(sync_bn), "0", "under mpirun: batch-norm statistics over the global batch (SyncBatchNorm; CPU or GPU ranks) instead of per rank"},
    {"bucket_mb", T_FLOAT, S(bucket_mb), "4", "under mpirun: gradient all-reduce bucket size in MB (buckets start during the backward pass; 0: one per tensor)"},
};
#undef S
#define N_OPTS (sizeof opts / sizeof opts[0])

static const opt *find(const char *key) {
  for (size_t i = 0; i < N_OPTS; i++) if (!strcmp(opts[i].name, key)) return &opts[i];
  return NULL;
}

ky_status ky_train_config_set(ky_train_config *c, const char *key, const char *value) {
  KY_CHECK(c && key && value, KY_ERR_ARG, "config: NULL argument");
  const opt *o = find(key);
  KY_CHECK(o, KY_ERR_ARG, "config: unknown key '%s' (karyon train --help lists the keys)", key);
  char *p = (char *)c + o->off, *end, shown[96];
  errno = 0;
  switch (o->type) {
    case T_STR:
      KY_CHECK(strlen(value) < o->size, KY_ERR_ARG, "config: value of '%s' is too long (max %zu characters)", key, o->size - 1);
      for (const char *q = value; *q; q++)
        KY_CHECK((unsigned char)*q >= 0x20, KY_ERR_ARG, "config: value of '%s' has a control character: '%s'", key,
                 ky_printable(shown, sizeof shown, value, 60));
      strcpy(p, value);
      return KY_OK;
    case T_INT: {
      long v = strtol(value, &end, 10);
      KY_CHECK(*value && !*end && !errno && v >= -1000000000L && v <= 1000000000L, KY_ERR_ARG,
               "config: '%s' must be an integer in -1e9..1e9, got '%s'", key, ky_printable(shown, sizeof shown, value, 60));
      *(int *)p = (int)v;
      return KY_OK;
    }
    case T_BOOL: {
      int v = !strcmp(value, "1") || !strcmp(value, "true") || !strcmp(value, "yes");
      KY_CHECK(v || !strcmp(value, "0") || !strcmp(value, "false") || !strcmp(value, "no"), KY_ERR_ARG,
               "config: '%s' must be 0/1 (or true/false), got '%s'", key, ky_printable(shown, sizeof shown, value, 60));
      *(int *)p = v;
      return KY_OK;
    }
    case T_FLOAT: {
      float v = strtof(value, &end);
      KY_CHECK(*value && !*end, KY_ERR_ARG, "config: '%s' must be a number, got '%s'", key,
               ky_printable(shown, sizeof shown, value, 60));
      /* strtof sets ERANGE on underflow too: 1e-45 would silently become a denormal or 0. */
      KY_CHECK(!errno && isfinite(v), KY_ERR_ARG,
               "config: '%s' = %s is outside the float32 range (magnitude 1.2e-38 to 3.4e38, or 0)", key, value);
      *(float *)p = v;
      return KY_OK;
    }
    case T_U64: {
      KY_CHECK(*value && isdigit((unsigned char)value[0]), KY_ERR_ARG, "config: '%s' must be a non-negative integer, got '%s'",
               key, ky_printable(shown, sizeof shown, value, 60));
      unsigned long long v = strtoull(value, &end, 10);
      KY_CHECK(!*end && !errno, KY_ERR_ARG, "config: '%s' must be an integer in 0..2^64-1, got '%s'", key,
               ky_printable(shown, sizeof shown, value, 60));
      *(uint64_t *)p = v;
      return KY_OK;
    }
  }
  return KY_OK;
}

void ky_train_config_default(ky_train_config *c) {
  memset(c, 0, sizeof *c);
  for (size_t i = 0; i < N_OPTS; i++) ky_train_config_set(c, opts[i].name, opts[i].def);
}

static char *trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  char *e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
  return s;
}

ky_status ky_train_config_parse(ky_train_config *c, const char *text, const char *where) {
  KY_CHECK(c && text && where, KY_ERR_ARG, "config: NULL argument");
  char *buf = strdup(text);
  if (!buf) return ky_error(KY_ERR_NOMEM, "config: out of memory");
  int line = 0;
  ky_status s = KY_OK;
  for (char *ln = buf; ln && s == KY_OK;) {
    char *nl = strchr(ln, '\n');
    if (nl) *nl = 0;
    line++;
    char *hash = strchr(ln, '#');
    if (hash) *hash = 0;
    char *t = trim(ln);
    if (*t) {
      char *eq = strchr(t, '=');
      char shown[96];
      if (!eq) s = ky_error(KY_ERR_FORMAT, "%s:%d: expected 'key = value', got '%s'", where, line, ky_printable(shown, sizeof shown, t, 60));
      else {
        *eq = 0;
        s = ky_train_config_set(c, trim(t), trim(eq + 1));
        if (s != KY_OK) s = ky_error_context(s, "%s:%d: ", where, line);
      }
    }
    ln = nl ? nl + 1 : NULL;
  }
  free(buf);
  return s;
}

ky_status ky_train_config_load(ky_train_config *c, const char *path) {
  char *buf;
  size_t n;
  KY_TRY(ky_file_read_text(path, &buf, &n));
  ky_status s = ky_train_config_parse(c, buf, path);
  free(buf);
  return s;
}

static int is_extra(const char *name, const char *const *extra, int *flag) {
  for (const char *const *e = extra; e && *e; e++) {
    size_t n = strlen(*e);
    int f = n && (*e)[n - 1] == '!';
    if (strlen(name) == n - f && !strncmp(name, *e, n - f)) { *flag = f; return 1; }
  }
  return 0;
}

ky_status ky_train_config_args(ky_train_config *c, int argc, char **argv, const char *const *extra) {
  for (int i = 1; i + 1 < argc; i++)
    if (!strcmp(argv[i], "--config")) KY_TRY(ky_train_config_load(c, argv[i + 1]));
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    KY_CHECK(a[0] == '-' && a[1] == '-', KY_ERR_ARG, "unexpected argument '%s' (options look like --key value)", a);
    int flag = 0;
    if (!strcmp(a + 2, "config")) { i++; continue; }
    if (is_extra(a + 2, extra, &flag)) { if (!flag) i++; continue; }
    KY_CHECK(find(a + 2), KY_ERR_ARG, "unknown option '%s' (karyon train --help lists them)", a);
    KY_CHECK(i + 1 < argc, KY_ERR_ARG, "option '%s' needs a value", a);
    KY_TRY(ky_train_config_set(c, a + 2, argv[i + 1]));
    i++;
  }
  return KY_OK;
}

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

ky_status ky_train_config_validate(const ky_train_config *c) {
  KY_CHECK(c->data[0], KY_ERR_ARG, "config: 'data' (the training folder) is required");
  KY_CHECK(is_dir(c->data), KY_ERR_IO, "config: data folder '%s' does not exist", c->data);
  KY_CHECK(!c->extra_data[0] || is_dir(c->extra_data), KY_ERR_IO, "config: extra_data folder '%s' does not exist", c->extra_data);
  KY_CHECK(c->fold >= -1 && c->fold <= 3, KY_ERR_ARG, "config: fold %d, expected -1..3", c->fold);
  /* 2048 is twice the largest DSB image side; larger crops are mostly padding and their batches
   * quickly take tens of GB. The batch bound keeps batch x crop^2 x 3 floats in size_t and int
   * index range, and in memory a user can have. */
  KY_CHECK(c->crop >= 32 && c->crop <= 2048 && c->crop % 32 == 0, KY_ERR_ARG,
           "config: crop %d, expected a multiple of 32 in 32..2048", c->crop);
  KY_CHECK(c->batch >= 1 && c->batch <= 4096, KY_ERR_ARG, "config: batch %d, expected 1..4096", c->batch);
  KY_CHECK((long long)c->batch * c->crop * c->crop <= (1LL << 28), KY_ERR_ARG,
           "config: batch %d x crop %d^2 = %lld pixels per batch, above the limit 2^28 (lower batch or crop)", c->batch,
           c->crop, (long long)c->batch * c->crop * c->crop);
  KY_CHECK(c->iters >= 0, KY_ERR_ARG, "config: iters %d must be >= 0", c->iters);
  KY_CHECK(c->epochs >= 0, KY_ERR_ARG, "config: epochs %d must be >= 0", c->epochs);
  KY_CHECK(c->epoch_size >= 0, KY_ERR_ARG, "config: epoch_size %d must be >= 0", c->epoch_size);
  KY_CHECK(c->iters > 0 || c->epochs > 0, KY_ERR_ARG, "config: set iters or epochs to a positive number");
  KY_CHECK(c->width > 0 && c->width <= 4, KY_ERR_ARG, "config: width %g outside (0, 4]", c->width);
  KY_CHECK(!strcmp(c->loss, "softmax") || !strcmp(c->loss, "sigmoid") || !strcmp(c->loss, "sigmoid3") ||
               !strcmp(c->loss, "focal"),
           KY_ERR_ARG, "config: loss '%s', expected softmax, sigmoid, sigmoid3 or focal", c->loss);
  KY_CHECK(!strcmp(c->optim, "adam") || !strcmp(c->optim, "amsgrad") || !strcmp(c->optim, "sgd"), KY_ERR_ARG,
           "config: optim '%s', expected adam, amsgrad or sgd", c->optim);
  KY_CHECK(!strcmp(c->device, "cpu") || !strcmp(c->device, "cuda") || !strcmp(c->device, "auto"), KY_ERR_ARG,
           "config: device '%s', expected cpu, cuda or auto", c->device);
  KY_CHECK(c->lr > 0, KY_ERR_ARG, "config: lr %g must be > 0", c->lr);
  KY_CHECK(c->clip >= 0, KY_ERR_ARG, "config: clip %g must be >= 0", c->clip);
  KY_CHECK(c->bce_weight >= 0 && c->bce_weight <= 1, KY_ERR_ARG, "config: bce_weight %g, expected [0, 1]", c->bce_weight);
  KY_CHECK(c->copy_paste >= 0 && c->copy_paste <= 1, KY_ERR_ARG, "config: copy_paste %g, expected a probability in [0, 1]",
           c->copy_paste);
  KY_CHECK(c->aug_p >= 0 && c->aug_p <= 1, KY_ERR_ARG, "config: aug_p %g, expected a probability in [0, 1]", c->aug_p);
  KY_CHECK(c->threads >= 0 && c->threads <= 256, KY_ERR_ARG, "config: threads %d, expected 0 (automatic) or 1..256", c->threads);
  KY_CHECK(c->loader_threads >= 0 && c->loader_threads <= 64, KY_ERR_ARG,
           "config: loader_threads %d, expected 0 (automatic) or 1..64", c->loader_threads);
  KY_CHECK(c->freeze_epochs >= 0, KY_ERR_ARG, "config: freeze_epochs %d must be >= 0", c->freeze_epochs);
  KY_CHECK(c->ckpt_every >= 0, KY_ERR_ARG, "config: ckpt_every %d must be >= 0", c->ckpt_every);
  KY_CHECK(c->val_images >= 0, KY_ERR_ARG, "config: val_images %d must be >= 0", c->val_images);
  KY_CHECK(c->out[0], KY_ERR_ARG, "config: 'out' (the output folder) is required");
  KY_CHECK(c->bucket_mb >= 0 && c->bucket_mb <= 4096, KY_ERR_ARG, "config: bucket_mb %g, expected 0..4096", c->bucket_mb);
  return KY_OK;
}

void ky_train_config_write(FILE *f, const ky_train_config *c) {
  for (size_t i = 0; i < N_OPTS; i++) {
    const char *p = (const char *)c + opts[i].off;
    fprintf(f, "%s = ", opts[i].name);
    switch (opts[i].type) {
      case T_STR: fprintf(f, "%s\n", p); break;
      case T_INT: case T_BOOL: fprintf(f, "%d\n", *(const int *)p); break;
      case T_FLOAT: fprintf(f, "%.9g\n", *(const float *)p); break;
      case T_U64: fprintf(f, "%llu\n", (unsigned long long)*(const uint64_t *)p); break;
    }
  }
}

ky_status ky_train_config_save(const ky_train_config *c, const char *path) {
  ky_atomic_file af;
  KY_TRY(ky_atomic_open(&af, path));
  fprintf(af.f, "# karyon train: effective configuration (flags applied); rerun with --config %s\n", path);
  ky_train_config_write(af.f, c);
  return ky_atomic_commit(&af);
}

void ky_train_config_help(FILE *f) {
  for (size_t i = 0; i < N_OPTS; i++)
    fprintf(f, "  --%-14s %s [%s]\n", opts[i].name, opts[i].help, opts[i].def[0] ? opts[i].def : "\"\"");
}

/* Training configuration: every option of `karyon train` in one table (name, type, default, help)
 * read from `key = value` files and `--key value` flags (flags win; unknown keys are errors), and
 * written back as the effective config beside the checkpoints.
 * Tested by tests/test_pipeline_train.c (test_config_errors). */
#ifndef KY_PIPELINE_CONFIG_H
#define KY_PIPELINE_CONFIG_H

#include <stdint.h>
#include <stdio.h>
#include "core/status.h"

#define KY_CFG_STR 512

typedef struct {
  char data[KY_CFG_STR];        /* DSB-layout training folder */
  char extra_data[KY_CFG_STR];  /* optional second folder (pseudo-labels, stage-2 "tune"), always in train */
  char folds[KY_CFG_STR];       /* folds CSV ("" = built-in hash split) */
  int fold;                     /* validation fold, 0..3; -1 = train on everything */
  char model[64];               /* unet_resnet34, fpn_resnet50, ... */
  float width;                  /* width multiplier (1 = reference) */
  int decoder_bn;
  char loss[32];                /* softmax (Albu) | sigmoid (Selim: body, sep) | sigmoid3 (body, sep, full) */
  float bce_weight;             /* sigmoid losses: w in w*BCE + (1-w)*(1 - dice) */
  char norm[16];                /* torch | caffe | dpn | tf */
  int crop, batch;
  int iters;                    /* total iterations (0: epochs * epoch_size) */
  int epochs;
  int epoch_size;               /* iterations per epoch (0: one pass over the oversampled list) */
  char optim[16];               /* adam | amsgrad | sgd */
  float lr, weight_decay, momentum, keras_decay;
  char schedule[256];           /* const | exp:G | inverse:D | steps:LR@E,... */
  float clip;                   /* global gradient-norm bound, 0 = off */
  char aug[1024];               /* mega | none | a chain spec (aug/chain.h syntax) */
  float aug_p;                  /* whole-chain probability for "mega" */
  float ssr_lo, ssr_hi;         /* ShiftScaleRotate scale range for "mega" */
  float copy_paste;             /* nuclei copy-paste probability */
  char oversample[256];         /* "b:4,d:4,e:4,c:3,polosa:5" */
  uint64_t seed;
  char device[16];              /* cpu | cuda | auto */
  int tf32;                     /* allow TF32 tensor cores on sm_80+ */
  int deterministic;            /* GPU convolution algorithms by a fixed rule, not by timing */
  char init[KY_CFG_STR];        /* initial weights (safetensors, e.g. a torchvision ResNet) */
  int freeze_epochs;            /* encoder frozen for the first N epochs */
  char out[KY_CFG_STR];         /* output folder: checkpoints, logs, curve */
  int ckpt_every;               /* checkpoint every N iterations (0: only per epoch) */
  int threads;                  /* CPU threads for kernels (0: KY_THREADS, else every core we may use) */
  int loader_threads;           /* data loader threads (0: 1 on the CPU, at low priority; 2 on a GPU) */
  int val_images;               /* cap on validation images per epoch (0 = all) */
  int quiet;                    /* no progress line */
  int sync_bn;                  /* data-parallel ranks: batch statistics over the global batch */
  float bucket_mb;              /* data-parallel ranks: gradient all-reduce bucket size (MB) */
} ky_train_config;

void ky_train_config_default(ky_train_config *c);
/* Applies one key = value pair; errors name the key and say what was expected. */
ky_status ky_train_config_set(ky_train_config *c, const char *key, const char *value);
/* Reads a config file (`key = value`, # comments); errors name the file and line. */
ky_status ky_train_config_load(ky_train_config *c, const char *path);
/* The same from text already in memory (a checkpoint's stored config); `where` names it in errors. */
ky_status ky_train_config_parse(ky_train_config *c, const char *text, const char *where);
/* --key value pairs from argv (argv[0] is skipped); `--config F` is read first wherever it appears,
 * so flags win. Flags listed in `extra` (NULL-terminated, names without dashes, '!' suffix for
 * value-less ones) are skipped for the caller to handle. */
ky_status ky_train_config_args(ky_train_config *c, int argc, char **argv, const char *const *extra);
/* Checks cross-field consistency (folders exist, sizes positive, names valid). */
ky_status ky_train_config_validate(const ky_train_config *c);
/* key = value lines for every option. */
void ky_train_config_write(FILE *f, const ky_train_config *c);
ky_status ky_train_config_save(const ky_train_config *c, const char *path);
/* Help text for every key. */
void ky_train_config_help(FILE *f);

#endif

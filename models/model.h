/* Segmentation models: ResNet 18/34/50/101/152 encoders (torchvision names and layout) with the
 * reference solution's U-Net (Albu) or FPN (Selim) decoders; creation by name, forward, encoder
 * freezing, and weight import/export as safetensors in PyTorch layout (OIHW <-> OHWI only here).
 * Tested by tests/test_models_parity.c (PyTorch logits, loss, gradients), tests/test_models_weights.c
 * (torchvision names, round trip, bad files) and tests/test_models_summary.c. */
#ifndef KY_MODELS_MODEL_H
#define KY_MODELS_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "core/ctx.h"
#include "core/params.h"
#include "core/status.h"

struct ky_cuda;

typedef struct {
  int in_channels;     /* 3 (RGB) or 4 (RGB + CLAHE) ... */
  int classes;         /* output channels: 3 for softmax, 2-3 for sigmoid heads */
  float width;         /* multiplies every channel count: max(1, floor(w * base + 0.5)); 1 = reference */
  int decoder_bn;      /* U-Net: batch norm after each decoder conv (Albu's BN variant); FPN: must be 0 */
  uint64_t seed;       /* initialisation seed (stream KY_RNG_STREAM_INIT) */
  int no_alloc;        /* register names and shapes only (summary, name checks): no forward */
  ky_device dev;       /* where the parameter blocks live */
  struct ky_cuda *cu;  /* the CUDA context when dev == KY_DEV_CUDA */
} ky_model_config;

/* in 3, classes 3, width 1, no decoder BN, seed 0, CPU. */
ky_model_config ky_model_config_default(void);

typedef struct ky_model ky_model;

/* Names: unet_resnet18, unet_resnet34, unet_resnet50, unet_resnet101, unet_resnet152,
 * fpn_resnet18, fpn_resnet34, fpn_resnet50, fpn_resnet101, fpn_resnet152. */
ky_status ky_model_create(ky_model **m, const char *name, const ky_model_config *cfg);
void ky_model_free(ky_model *m);
/* NULL-terminated list of the names ky_model_create accepts. */
const char *const *ky_model_names(void);

/* logits [n, h, w, classes] from x [n, h, w, in_channels] (h, w multiples of 32). ctx->training
 * selects batch statistics in batch norm (and updates the running ones). */
ky_status ky_model_forward(ky_ctx *ctx, ky_model *m, ky_tensor *x, ky_tensor **logits);

/* Encoder freezing: its parameters get requires_grad = 0 and ky_model_trainable_range starts after
 * them (the encoder is registered first, so it is a prefix of the flat block). */
void ky_model_freeze_encoder(ky_model *m, int on);
int ky_model_encoder_frozen(const ky_model *m);
/* Float range of the flat parameter block an optimiser should update. */
void ky_model_trainable_range(const ky_model *m, size_t *first, size_t *end);
/* Float range [first, end) of the encoder's parameters and the number of encoder tensors. */
void ky_model_encoder_range(const ky_model *m, size_t *first, size_t *end, int *n_tensors);

ky_params *ky_model_params(ky_model *m);    /* trainable: weights, biases, BN gamma/beta */
ky_params *ky_model_buffers(ky_model *m);   /* BN running_mean / running_var */
const ky_model_config *ky_model_get_config(const ky_model *m);
const char *ky_model_name(const ky_model *m);
/* Channels of the encoder taps E0..E4 (strides 2..32). */
void ky_model_tap_channels(const ky_model *m, int ch[5]);
/* Training-mode forwards so far (PyTorch's num_batches_tracked; saved with the weights). */
int64_t ky_model_bn_steps(const ky_model *m);
/* "unet_resnet34 in=3 classes=3 width=1 decoder_bn=0": enough to re-create the model. */
void ky_model_describe(const ky_model *m, char *buf, size_t len);

/* Inverse of ky_model_describe: fills name (>= 32 bytes) and cfg's in_channels, classes, width,
 * decoder_bn; other cfg fields are left as they are. */
ky_status ky_model_parse_desc(char *name, size_t name_len, ky_model_config *cfg, const char *desc);

/* The exported state in PyTorch's layout: parameters, buffers, and one I64 num_batches_tracked
 * per batch norm. Entry i: name, dtype (KY_F32 or KY_I64), ndim and shape (OIHW for conv weights). */
int ky_model_state_count(const ky_model *m);
ky_status ky_model_state_entry(const ky_model *m, int i, const char **name, ky_dtype *dtype, int *ndim,
                               int64_t shape[4]);

/* Loading. Default: every model tensor must be in the file (else KY_ERR_FORMAT listing the missing
 * names), file tensors the model does not have are reported and skipped (torchvision's fc.*). */
enum {
  KY_LOAD_ALLOW_MISSING = 1,   /* missing tensors keep their values */
  KY_LOAD_ENCODER_ONLY = 2,    /* only the encoder must be complete (ImageNet weights) */
  KY_LOAD_STRICT = 4,          /* unexpected tensors are an error too */
  KY_LOAD_ADAPT_STEM = 8,      /* a 4-channel model takes a 3-channel conv1.weight: channels 0-2 =
                                  0.9 x RGB filters, channel 3 = 0.1 x G filter (reference 2.3) */
};

typedef struct {
  char **missing;     int n_missing;      /* model tensors not in the file */
  char **unexpected;  int n_unexpected;   /* file tensors the model does not have */
  int n_loaded;
} ky_load_report;

/* rep may be NULL; free it with ky_load_report_free. Shape mismatch: KY_ERR_SHAPE naming the key
 * and both shapes; dtype other than F32 (I64 for num_batches_tracked): KY_ERR_FORMAT. */
ky_status ky_model_load(ky_model *m, const char *path, int flags, ky_load_report *rep);
void ky_load_report_free(ky_load_report *rep);
/* Creates the model that a file from ky_model_save or ky_checkpoint_save describes (its
 * "karyon.model" metadata) on dev and loads its weights and buffers (all must be present). */
ky_status ky_model_open(ky_model **m, const char *path, ky_device dev, struct ky_cuda *cu);
/* Writes weights + buffers (+ num_batches_tracked) in PyTorch layout, atomically, so that
 * `model.load_state_dict(safetensors.torch.load_file(path))` works. */
ky_status ky_model_save(const ky_model *m, const char *path);

#endif

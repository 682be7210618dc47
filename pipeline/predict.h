/* Inference: pad to a multiple of 32 (reflection), 8-way dihedral TTA (flip x rot90), a weighted
 * ensemble of models, and the body / border / full probability maps post-processing reads.
 * Tested by tests/test_pipeline_predict.c (TTA as the mean of mapped-back variants, reflection
 * padding, ensemble weights) and tests/test_pipeline_train.c (dihedral inverses, bad checkpoints). */
#ifndef KY_PIPELINE_PREDICT_H
#define KY_PIPELINE_PREDICT_H

#include <stdint.h>
#include "core/ctx.h"
#include "data/normalize.h"
#include "models/model.h"

/* How a model's outputs map to (body, border, full). */
typedef enum {
  KY_HEAD_SOFTMAX = 0,   /* 3 logits: background, border, body; full = 1 - background */
  KY_HEAD_SIGMOID = 1,   /* 2 logits: body, border; full = body */
  KY_HEAD_SIGMOID3 = 2,  /* 3 logits: body, border, full */
} ky_head;

ky_status ky_head_parse(ky_head *h, const char *loss_name);   /* "softmax", "sigmoid", "sigmoid3", "focal" (sigmoid head) */

#define KY_PREDICT_MAX_MODELS 16
typedef struct {
  int n;
  ky_model *model[KY_PREDICT_MAX_MODELS];
  ky_head head[KY_PREDICT_MAX_MODELS];
  float weight[KY_PREDICT_MAX_MODELS];
  ky_norm norm;
  int tta;               /* 1: identity only; 8: the 8 dihedral variants */
  int n_scales;          /* 0 or 1 with scales[0] = 1: the image as it is */
  float scales[4];       /* Victor's TTA: 1, 0.75, 1.25 (bilinear resize, maps resized back) */
} ky_predictor;

/* Dihedral variant v in 0..7: flip = v >> 2 (vertical flip first), k = v & 3 (then rot90 k times,
 * counter-clockwise like numpy.rot90). Forward maps an h x w x c image to the variant (w x h when k is
 * odd); inverse maps a variant-shaped image back. */
void ky_dihedral(float *out, const float *in, int h, int w, int c, int v, int inverse);

/* Probability maps [h, w] (0..1 floats) of one RGB image: the weighted mean over models and TTA
 * variants. ctx must be on the models' device; it is reset between forwards. */
ky_status ky_predict_probs(ky_ctx *ctx, const ky_predictor *p, const uint8_t *rgb, int h, int w,
                           float *body, float *border, float *full);
/* Adds a model to the ensemble from a training checkpoint (its stored config names the network,
 * width, head and normalisation) or, when the file has no training config, from plain weights
 * with the network given by `fallback_model` / `fallback_loss` (e.g. "unet_resnet34", "softmax").
 * The model lives on (dev, cu). Every model of one predictor must share the normalisation. */
ky_status ky_predictor_add(ky_predictor *p, const char *path, float weight, ky_device dev, struct ky_cuda *cu,
                           const char *fallback_model, const char *fallback_loss);
void ky_predictor_free(ky_predictor *p);

/* Bilinear resize with OpenCV's INTER_LINEAR convention (half-pixel centres, clamped edges):
 * out [oh, ow, c] from in [h, w, c]. */
void ky_resize_bilinear_f32(float *out, int oh, int ow, const float *in, int h, int w, int c);

/* Probabilities as uint8 (x 255, truncated as the reference stores them). */
void ky_probs_to_u8(uint8_t *out, const float *p, int64_t n);

#endif

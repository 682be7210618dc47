/* Model summary: one row per layer (name, output shape, parameters, forward FLOPs) and totals,
 * computed by walking the model's forward pass on shapes only (no memory for activations).
 * Tested by tests/test_models_summary.c (the benchmark ResNet34 U-Net: 24,531,523 parameters). */
#ifndef KY_MODELS_SUMMARY_H
#define KY_MODELS_SUMMARY_H

#include <stdint.h>
#include "core/status.h"

typedef struct {
  char name[64];       /* parameter prefix ("layer2.0.conv1") or op label ("decoder.0.up2") */
  char kind[16];       /* "conv3x3", "bn", "maxpool", "upsample", "concat" */
  int shape[4];        /* output [n, h, w, c] */
  int64_t params;      /* trainable parameters of this layer */
  int64_t flops;       /* forward FLOPs: 2 * MACs for convolutions; 0 for data movement */
} ky_summary_row;

typedef struct ky_model_summary {
  ky_summary_row *rows;
  int n, cap;
  int64_t params;      /* trainable parameters of the whole model */
  int64_t buffers;     /* non-trainable floats (batch-norm running statistics) */
  int64_t flops;       /* sum of the rows */
  int64_t enc_params;  /* of which the encoder */
} ky_model_summary;

struct ky_model;
/* Summary for an input of n x h x w (h, w multiples of 32). Works on models created with
 * no_alloc = 1 as well. Free with ky_model_summary_free. */
ky_status ky_model_summarize(ky_model_summary *s, const struct ky_model *m, int n, int h, int w);
void ky_model_summary_free(ky_model_summary *s);

#endif

/* Training batches: random crops (zero-padded bottom/right when the image is smaller), NHWC float
 * inputs, class maps and sigmoid targets regenerated from labels, and the seeded epoch sampler.
 * Tested by tests/test_data_loader.c. */
#ifndef KY_DATA_BATCH_H
#define KY_DATA_BATCH_H

#include <stdint.h>
#include "core/rng.h"
#include "core/status.h"
#include "data/normalize.h"

typedef struct {
  int n, h, w;
  float *x;      /* [n, h, w, 3] normalised input */
  uint8_t *cls;  /* [n, h, w] Albu's softmax classes: 0 background, 1 border, 2 body */
  float *sig;    /* [n, h, w, 3] sigmoid targets (body, sep, full) as 0/1; NULL unless asked */
  int *item;     /* [n] dataset index of each sample */
} ky_batch;

ky_status ky_batch_alloc(ky_batch *b, int n, int h, int w, int with_sigmoid);
void ky_batch_free(ky_batch *b);

/* Crop origin for a crop x crop window of an h x w image: uniform in [0, max(0, h - crop)] and
 * [0, max(0, w - crop)] (y drawn first, then x). */
void ky_crop_origin(int *y0, int *x0, int h, int w, int crop, ky_rng *rng);
/* Copies the window [y0, y0 + crop) x [x0, x0 + crop); pixels outside the image are 0 (this is
 * the reference's zero padding at the bottom/right of small images). rgb_out: [crop, crop, 3],
 * lab_out: [crop, crop] (may be NULL, as may lab). */
ky_status ky_crop(uint8_t *rgb_out, uint16_t *lab_out, const uint8_t *rgb, const uint16_t *lab, int h, int w,
                  int y0, int x0, int crop);

/* Fills item i of b from an RGB crop [b->h, b->w, 3] and its labels [b->h, b->w]: normalises
 * the input and regenerates the targets with ky_targets_make (so they are exact after any
 * augmentation of the labels). */
ky_status ky_batch_set_item(ky_batch *b, int i, const uint8_t *rgb, const uint16_t *labels, ky_norm norm);

/* A whole image for validation/inference, padded by `pad` (ky_pad_rule_*) with `mode` as the
 * reference pads both the image and its target image: out is allocated as a 1-item batch of
 * [1, h + top + bottom, w + left + right]. labels may be NULL (no targets: cls and sig stay
 * NULL). The targets are made on the unpadded labels and then padded like the image. */
ky_status ky_batch_full_image(ky_batch *out, const uint8_t *rgb, const uint16_t *labels, int h, int w,
                              ky_norm norm, ky_pad pad, ky_pad_mode mode, int with_sigmoid);

/* Epoch sampler: the sample stream is the concatenation of epochs; epoch e is a permutation of
 * 0..n-1 drawn from ky_rng_make(seed, KY_RNG_STREAM_SAMPLER + (e << 8)). perm: [n]. */
ky_status ky_sampler_epoch(int *perm, int n, uint64_t seed, int64_t epoch);
/* The per-sample random stream for position s of the sample stream. */
static inline ky_rng ky_sample_rng(uint64_t seed, int64_t s) {
  return ky_rng_make(seed, KY_RNG_STREAM_AUG + ((uint64_t)s << 8));
}

#endif

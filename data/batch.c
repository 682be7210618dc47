/* Crops, batch assembly (normalisation + targets) and the epoch sampler.
 * Tested by tests/test_data_loader.c. */
#include "data/batch.h"

#include <stdlib.h>
#include <string.h>

#include "data/targets.h"

ky_status ky_batch_alloc(ky_batch *b, int n, int h, int w, int with_sigmoid) {
  KY_CHECK_NULL(b, "b");
  memset(b, 0, sizeof *b);
  KY_CHECK(n > 0 && h > 0 && w > 0, KY_ERR_SHAPE, "ky_batch_alloc: bad batch shape [%d, %d, %d]", n, h, w);
  size_t np = (size_t)n * h * w;
  b->x = malloc(np * 3 * sizeof *b->x);
  b->cls = malloc(np);
  b->item = calloc((size_t)n, sizeof *b->item);
  if (with_sigmoid) b->sig = malloc(np * 3 * sizeof *b->sig);
  if (!b->x || !b->cls || !b->item || (with_sigmoid && !b->sig)) {
    ky_batch_free(b);
    return ky_error(KY_ERR_NOMEM, "ky_batch_alloc: out of memory for [%d, %d, %d]", n, h, w);
  }
  b->n = n; b->h = h; b->w = w;
  return KY_OK;
}

void ky_batch_free(ky_batch *b) {
  if (!b) return;
  free(b->x);
  free(b->cls);
  free(b->sig);
  free(b->item);
  memset(b, 0, sizeof *b);
}

void ky_crop_origin(int *y0, int *x0, int h, int w, int crop, ky_rng *rng) {
  *y0 = h > crop ? (int)ky_rng_int(rng, 0, (int64_t)h - crop + 1) : 0;
  *x0 = w > crop ? (int)ky_rng_int(rng, 0, (int64_t)w - crop + 1) : 0;
}

ky_status ky_crop(uint8_t *rgb_out, uint16_t *lab_out, const uint8_t *rgb, const uint16_t *lab, int h, int w,
                  int y0, int x0, int crop) {
  KY_CHECK_NULL(rgb_out, "rgb_out");
  KY_CHECK_NULL(rgb, "rgb");
  KY_CHECK(h > 0 && w > 0 && crop > 0, KY_ERR_SHAPE, "ky_crop: bad sizes: image %dx%d, crop %d", w, h, crop);
  KY_CHECK(y0 >= 0 && x0 >= 0 && y0 < h && x0 < w, KY_ERR_ARG, "ky_crop: origin (%d, %d) outside the %dx%d image", y0, x0, w, h);
  int cw = w - x0 < crop ? w - x0 : crop;
  for (int y = 0; y < crop; y++) {
    uint8_t *o = rgb_out + (size_t)y * crop * 3;
    uint16_t *ol = lab_out ? lab_out + (size_t)y * crop : NULL;
    if (y0 + y >= h) {
      memset(o, 0, (size_t)crop * 3);
      if (ol) memset(ol, 0, (size_t)crop * 2);
      continue;
    }
    memcpy(o, rgb + ((size_t)(y0 + y) * w + x0) * 3, (size_t)cw * 3);
    memset(o + (size_t)cw * 3, 0, (size_t)(crop - cw) * 3);
    if (ol) {
      if (lab) memcpy(ol, lab + (size_t)(y0 + y) * w + x0, (size_t)cw * 2);
      else memset(ol, 0, (size_t)cw * 2);
      memset(ol + cw, 0, (size_t)(crop - cw) * 2);
    }
  }
  return KY_OK;
}

ky_status ky_batch_set_item(ky_batch *b, int i, const uint8_t *rgb, const uint16_t *labels, ky_norm norm) {
  KY_CHECK(b && b->x && b->cls, KY_ERR_ARG, "ky_batch_set_item: batch is NULL or not allocated");
  KY_CHECK_NULL(rgb, "rgb");
  KY_CHECK_NULL(labels, "labels");
  KY_CHECK(i >= 0 && i < b->n, KY_ERR_ARG, "ky_batch_set_item: item %d not in 0..%d", i, b->n - 1);
  size_t np = (size_t)b->h * b->w;
  KY_TRY(ky_normalize_u8(b->x + (size_t)i * np * 3, rgb, (int64_t)np, norm));
  uint8_t *body = malloc(np), *sep = malloc(np), *full = b->sig ? malloc(np) : NULL;
  ky_status s = KY_OK;
  if (!body || !sep || (b->sig && !full)) s = ky_error(KY_ERR_NOMEM, "ky_batch_set_item: out of memory");
  if (s == KY_OK) s = ky_targets_make(body, sep, full, labels, b->h, b->w);
  if (s == KY_OK) s = ky_targets_classes(b->cls + (size_t)i * np, body, sep, (int64_t)np);
  if (s == KY_OK && b->sig) s = ky_targets_sigmoid(b->sig + (size_t)i * np * 3, body, sep, full, (int64_t)np);
  free(body);
  free(sep);
  free(full);
  return s;
}

ky_status ky_batch_full_image(ky_batch *out, const uint8_t *rgb, const uint16_t *labels, int h, int w,
                              ky_norm norm, ky_pad pad, ky_pad_mode mode, int with_sigmoid) {
  KY_CHECK_NULL(out, "out");
  memset(out, 0, sizeof *out);
  KY_CHECK_NULL(rgb, "rgb");
  KY_CHECK(h > 0 && w > 0, KY_ERR_SHAPE, "ky_batch_full_image: bad image size %dx%d", w, h);
  KY_CHECK(pad.top >= 0 && pad.bottom >= 0 && pad.left >= 0 && pad.right >= 0, KY_ERR_ARG,
           "ky_batch_full_image: negative padding (%d, %d, %d, %d)", pad.top, pad.bottom, pad.left, pad.right);
  int hp = h + pad.top + pad.bottom, wp = w + pad.left + pad.right;
  size_t np = (size_t)h * w;
  KY_TRY(ky_batch_alloc(out, 1, hp, wp, labels && with_sigmoid));
  float *x = malloc(np * 3 * sizeof *x);
  uint8_t *body = NULL, *sep = NULL, *full = NULL, *cls = NULL;
  float *sig = NULL;
  ky_status s = KY_OK;
  if (!x) s = ky_error(KY_ERR_NOMEM, "ky_batch_full_image: out of memory for %dx%d", w, h);
  if (s == KY_OK) s = ky_normalize_u8(x, rgb, (int64_t)np, norm);
  if (s == KY_OK) s = ky_pad_image(out->x, x, h, w, 3, (int)sizeof *x, pad, mode);
  if (s == KY_OK && labels) {
    body = malloc(np); sep = malloc(np); full = malloc(np); cls = malloc(np);
    if (with_sigmoid) sig = malloc(np * 3 * sizeof *sig);
    if (!body || !sep || !full || !cls || (with_sigmoid && !sig))
      s = ky_error(KY_ERR_NOMEM, "ky_batch_full_image: out of memory for %dx%d", w, h);
    if (s == KY_OK) s = ky_targets_make(body, sep, full, labels, h, w);
    if (s == KY_OK) s = ky_targets_classes(cls, body, sep, (int64_t)np);
    if (s == KY_OK) s = ky_pad_image(out->cls, cls, h, w, 1, 1, pad, mode);
    if (s == KY_OK && with_sigmoid) s = ky_targets_sigmoid(sig, body, sep, full, (int64_t)np);
    if (s == KY_OK && with_sigmoid) s = ky_pad_image(out->sig, sig, h, w, 3, (int)sizeof *sig, pad, mode);
  } else if (s == KY_OK) {
    free(out->cls);
    out->cls = NULL;
  }
  free(x); free(body); free(sep); free(full); free(cls); free(sig);
  if (s != KY_OK) ky_batch_free(out);
  return s;
}

ky_status ky_sampler_epoch(int *perm, int n, uint64_t seed, int64_t epoch) {
  KY_CHECK_NULL(perm, "perm");
  KY_CHECK(n > 0, KY_ERR_ARG, "ky_sampler_epoch: %d items, expected at least 1", n);
  KY_CHECK(epoch >= 0, KY_ERR_ARG, "ky_sampler_epoch: epoch %lld < 0", (long long)epoch);
  for (int i = 0; i < n; i++) perm[i] = i;
  ky_rng r = ky_rng_make(seed, KY_RNG_STREAM_SAMPLER + ((uint64_t)epoch << 8));
  ky_rng_shuffle_int(&r, perm, (size_t)n);
  return KY_OK;
}

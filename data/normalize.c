/* Normalisation conventions and numpy-compatible mirror padding. Tested by
 * tests/test_data_normalize.c (values, numpy.pad cases, pad rules, crop back). */
#include "data/normalize.h"

#include <string.h>

static const char *const k_norm_names[] = {"torch", "caffe", "dpn", "tf"};

ky_status ky_norm_parse(ky_norm *out, const char *name) {
  KY_CHECK_NULL(out, "out");
  KY_CHECK_NULL(name, "name");
  for (int i = 0; i < 4; i++)
    if (!strcmp(name, k_norm_names[i])) { *out = (ky_norm)i; return KY_OK; }
  return ky_error(KY_ERR_ARG, "normalisation '%s': expected torch, caffe, dpn or tf", name);
}

const char *ky_norm_name(ky_norm n) { return (unsigned)n < 4 ? k_norm_names[n] : "?"; }

ky_status ky_normalize_u8(float *out, const uint8_t *rgb, int64_t n_pixels, ky_norm mode) {
  KY_CHECK_NULL(out, "out");
  KY_CHECK_NULL(rgb, "rgb");
  KY_CHECK(n_pixels >= 0, KY_ERR_ARG, "ky_normalize_u8: n_pixels = %lld", (long long)n_pixels);
  switch (mode) {
    case KY_NORM_TORCH: {
      const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
      for (int64_t i = 0; i < n_pixels; i++)
        for (int k = 0; k < 3; k++) out[3 * i + k] = (rgb[3 * i + k] / 255.f - mean[k]) / std[k];
      break;
    }
    case KY_NORM_CAFFE: {
      const float mean_bgr[3] = {103.939f, 116.779f, 123.68f};
      for (int64_t i = 0; i < n_pixels; i++)
        for (int k = 0; k < 3; k++) out[3 * i + k] = (float)rgb[3 * i + 2 - k] - mean_bgr[k];
      break;
    }
    case KY_NORM_DPN: {
      const float mean[3] = {124.f, 117.f, 104.f};
      for (int64_t i = 0; i < n_pixels; i++)
        for (int k = 0; k < 3; k++) out[3 * i + k] = ((float)rgb[3 * i + k] - mean[k]) * 0.0167f;
      break;
    }
    case KY_NORM_TF:
      for (int64_t i = 0; i < 3 * n_pixels; i++) out[i] = rgb[i] / 127.5f - 1.f;
      break;
    default:
      return ky_error(KY_ERR_ARG, "ky_normalize_u8: unknown normalisation %d", (int)mode);
  }
  return KY_OK;
}

static void split32(int d, int *before, int *after) {
  int p = d % 32 ? 32 - d % 32 : 0;
  *before = p / 2;
  *after = p - p / 2;
}

ky_pad ky_pad_rule_albu(int h, int w) {
  ky_pad p = {0, 32 - h % 32, 0, 32 - w % 32};
  return p;
}

ky_pad ky_pad_rule_to32(int h, int w) {
  ky_pad p;
  split32(h, &p.top, &p.bottom);
  split32(w, &p.left, &p.right);
  return p;
}

ky_pad ky_pad_rule_selim(int h, int w) {
  ky_pad p = ky_pad_rule_to32(h, w);
  p.top += 16; p.bottom += 16; p.left += 16; p.right += 16;
  return p;
}

int ky_pad_index(int i, int n, ky_pad_mode mode) {
  if (i >= 0 && i < n) return i;
  if (mode == KY_PAD_ZERO || n <= 0) return -1;
  if (mode == KY_PAD_REFLECT) {
    if (n == 1) return 0;
    int period = 2 * (n - 1), m = i % period;
    if (m < 0) m += period;
    return m < n ? m : period - m;
  }
  int period = 2 * n, m = i % period;
  if (m < 0) m += period;
  return m < n ? m : period - 1 - m;
}

static ky_status check_pad(const void *out, const void *in, int h, int w, int c, int es, ky_pad p, const char *fn) {
  KY_CHECK(out != NULL && in != NULL, KY_ERR_ARG, "%s: %s is NULL", fn, out ? "in" : "out");
  KY_CHECK(h > 0 && w > 0 && c > 0, KY_ERR_SHAPE, "%s: bad image size %dx%dx%d", fn, w, h, c);
  KY_CHECK(es == 1 || es == 2 || es == 4, KY_ERR_ARG, "%s: element size %d, expected 1, 2 or 4", fn, es);
  KY_CHECK(p.top >= 0 && p.bottom >= 0 && p.left >= 0 && p.right >= 0, KY_ERR_ARG,
           "%s: negative padding (%d, %d, %d, %d)", fn, p.top, p.bottom, p.left, p.right);
  return KY_OK;
}

ky_status ky_pad_image(void *out, const void *in, int h, int w, int c, int elem_size, ky_pad pad, ky_pad_mode mode) {
  KY_TRY(check_pad(out, in, h, w, c, elem_size, pad, "ky_pad_image"));
  KY_CHECK(mode >= KY_PAD_ZERO && mode <= KY_PAD_SYMMETRIC, KY_ERR_ARG, "ky_pad_image: unknown mode %d", (int)mode);
  int ho = h + pad.top + pad.bottom, wo = w + pad.left + pad.right;
  size_t px = (size_t)c * elem_size;
  uint8_t *o = out;
  const uint8_t *s = in;
  for (int y = 0; y < ho; y++) {
    int sy = ky_pad_index(y - pad.top, h, mode);
    uint8_t *orow = o + (size_t)y * wo * px;
    if (sy < 0) { memset(orow, 0, (size_t)wo * px); continue; }
    const uint8_t *srow = s + (size_t)sy * w * px;
    for (int x = 0; x < pad.left; x++) {
      int sx = ky_pad_index(x - pad.left, w, mode);
      if (sx < 0) memset(orow + (size_t)x * px, 0, px);
      else memcpy(orow + (size_t)x * px, srow + (size_t)sx * px, px);
    }
    memcpy(orow + (size_t)pad.left * px, srow, (size_t)w * px);
    for (int x = pad.left + w; x < wo; x++) {
      int sx = ky_pad_index(x - pad.left, w, mode);
      if (sx < 0) memset(orow + (size_t)x * px, 0, px);
      else memcpy(orow + (size_t)x * px, srow + (size_t)sx * px, px);
    }
  }
  return KY_OK;
}

ky_status ky_pad_crop_back(void *out, const void *in, int h, int w, int c, int elem_size, ky_pad pad) {
  KY_TRY(check_pad(out, in, h, w, c, elem_size, pad, "ky_pad_crop_back"));
  int wi = w + pad.left + pad.right;
  size_t px = (size_t)c * elem_size;
  for (int y = 0; y < h; y++)
    memcpy((uint8_t *)out + (size_t)y * w * px, (const uint8_t *)in + ((size_t)(y + pad.top) * wi + pad.left) * px, (size_t)w * px);
  return KY_OK;
}

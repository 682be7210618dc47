/* Input normalisation (torch, caffe, DPN, tf conventions of spec 4.1/4.2) into NHWC float, and
 * padding to a multiple of 32 by the reference's rules (spec 2.4) with numpy's mirror modes,
 * plus the crop back. Tested by tests/test_data_normalize.c. */
#ifndef KY_DATA_NORMALIZE_H
#define KY_DATA_NORMALIZE_H

#include <stdint.h>
#include "core/status.h"

typedef enum {
  KY_NORM_TORCH = 0,  /* RGB: (x/255 - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225) (Selim's DenseNet) */
  KY_NORM_CAFFE = 1,  /* BGR channel order: x - (103.939, 116.779, 123.68) (Selim's ResNets) */
  KY_NORM_DPN = 2,    /* RGB: (x - (124, 117, 104)) * 0.0167 (Albu, all nets) */
  KY_NORM_TF = 3,     /* RGB: x / 127.5 - 1 (Victor's RGB channels) */
} ky_norm;

/* "torch", "caffe", "dpn", "tf" -> ky_norm. */
ky_status ky_norm_parse(ky_norm *out, const char *name);
const char *ky_norm_name(ky_norm n);

/* out: [n_pixels, 3] float; rgb: [n_pixels, 3] uint8 in RGB order. */
ky_status ky_normalize_u8(float *out, const uint8_t *rgb, int64_t n_pixels, ky_norm mode);

/* Padding amounts per side. */
typedef struct {
  int top, bottom, left, right;
} ky_pad;

typedef enum {
  KY_PAD_ZERO = 0,
  KY_PAD_REFLECT = 1,    /* numpy 'reflect' = cv2 BORDER_REFLECT_101: d c b | a b c d | c b a */
  KY_PAD_SYMMETRIC = 2,  /* numpy 'symmetric' = cv2 BORDER_REFLECT: c b a | a b c d | d c b */
} ky_pad_mode;

/* Albu: bottom/right by 32 - d % 32 (a full 32 when d is already a multiple). */
ky_pad ky_pad_rule_albu(int h, int w);
/* Selim/Victor inference: to a multiple of 32 split floor (top/left) / ceil (bottom/right), then
 * 16 more on every side. */
ky_pad ky_pad_rule_selim(int h, int w);
/* Selim's validation during training: to a multiple of 32 split floor/ceil, nothing more. */
ky_pad ky_pad_rule_to32(int h, int w);

/* Source index for a padded coordinate i in [-before, n + after) along an axis of length n, by
 * numpy.pad's rules (repeated mirroring for pads longer than the axis); -1 for KY_PAD_ZERO
 * outside. */
int ky_pad_index(int i, int n, ky_pad_mode mode);

/* out: [h + top + bottom, w + left + right, c]; in: [h, w, c]. Element size 1 (uint8), 2 or 4
 * (float) bytes per channel sample. */
ky_status ky_pad_image(void *out, const void *in, int h, int w, int c, int elem_size, ky_pad pad, ky_pad_mode mode);
/* Crops the padding off again: out: [h, w, c] from in: [h + top + bottom, w + left + right, c]. */
ky_status ky_pad_crop_back(void *out, const void *in, int h, int w, int c, int elem_size, ky_pad pad);

#endif

/* Training targets from a label map, exactly as the reference's create_mask (spec section 1.1):
 * body, separation border and full masks, plus the per-author encodings of section 1.3.
 * Tested by tests/test_data_targets.c (pixel-exact against skimage/scipy golden fixtures made by
 * tests/fixtures/gen_targets.py). */
#ifndef KY_DATA_TARGETS_H
#define KY_DATA_TARGETS_H

#include <stdint.h>
#include "core/status.h"

/* body, sep, full: [h, w] outputs, 0 or 255; any may be NULL. labels: [h, w], 0 = background.
 * Steps: relabel same-label 8-connected components; F = dilate(L>0, 9x9); skimage-style marker
 * watershed on the flat image F with mask F, markers L, 4-connectivity, watershed lines; lines =
 * F and unassigned; Z = dilate(lines, 7x7); for p in Z with adaptive half-window r (background:
 * 6 if the largest component area > 4000 else 3; inside component k: 1 if area < 300, 2 if
 * < 2000, else 3) sep = 255 and body = 0 when the clipped (2r+1)^2 window holds > 1 distinct
 * non-zero label. full = 255 * (L > 0). */
ky_status ky_targets_make(uint8_t *body, uint8_t *sep, uint8_t *full, const uint16_t *labels, int h, int w);

/* The first stages, exposed for tests and tools:
 * same-label 8-connected components numbered 1..*n in raster order of their first pixel
 * (like skimage.measure.label(L, connectivity=2)); out: [h, w]. */
ky_status ky_targets_relabel8(int32_t *out, int *n, const uint16_t *labels, int h, int w);
/* Watershed lines of the flat mask F (0/1, [h, w]) flooded from markers (labels, [h, w], every
 * marker inside F): lines[p] = 1 where F[p] and the watershed left p unassigned. */
ky_status ky_targets_watershed_lines(uint8_t *lines, const uint8_t *f, const int32_t *markers, int h, int w);

/* Albu's softmax classes: 0 background, 1 border (sep > 127 and not body > 127), 2 body > 127.
 * cls: [n]; body, sep: [n]. */
ky_status ky_targets_classes(uint8_t *cls, const uint8_t *body, const uint8_t *sep, int64_t n);
/* Albu's sigmoid channels [body, sep, full], each (x > 127) as 0.0/1.0; y: [n, 3]. */
ky_status ky_targets_sigmoid(float *y, const uint8_t *body, const uint8_t *sep, const uint8_t *full, int64_t n);

#endif

/* Nuclei copy-paste (reference 5.2, Victor's "copy_cells"): whole isolated nuclei are copied, flipped /
 * rotated, pasted over the crop window with new label ids and their seams blended by a masked median.
 * Tested by tests/test_aug_copypaste.c (whole pastes, unique ids, determinism, targets). */
#ifndef KY_AUG_COPYPASTE_H
#define KY_AUG_COPYPASTE_H

#include <stdint.h>
#include "core/rng.h"
#include "core/status.h"

/* On the whole (padded) image before the crop: rgb uint8 [h, w, 3], labels uint16 [h, w], in place.
 * With probability p: donors are label ids all of whose pixels are body (ky_targets_make) and whose
 * bounding box does not touch the 1-px frame; n ~ U{1..min(5, donors)} copies, each of a random donor
 * (taken from the image as it was on entry), flipped horizontally with p .5, turned by np.rot90 k in
 * 0..3, placed with its top-left in [x0 - pw/2, x0 + crop - pw/2] x [y0 - ph/2, y0 + crop - ph/2]
 * clipped to the image, pasted with id max + 1 (overwriting), and the ring
 * (mask ^ erode5x5(mask)) | (dilate5x5(mask) ^ mask) replaced per channel by the median of the ring
 * pixels in its 3x3 neighbourhood. Draw order: p, n, the n donors, then per copy flip, k, y, x.
 * Targets must be remade from the new labels after the crop (the loader does). */
ky_status ky_aug_copy_paste(uint8_t *rgb, uint16_t *labels, int h, int w, int crop_x0, int crop_y0, int crop,
                            float p, ky_rng *rng);
/* The donor pool of a label map (what ky_aug_copy_paste computes on each call, through
 * ky_targets_make): a loader can find it once per image and reuse it for every crop of that image. */
typedef struct {
  int h, w;        /* the label map it was found on */
  int max_id;      /* largest label id */
  int n;           /* donors */
  uint16_t *ids;   /* [n] label ids, increasing */
  int *boxes;      /* [n, 4] inclusive bounding boxes x0, y0, x1, y1 */
} ky_aug_donors;

ky_status ky_aug_donors_find(ky_aug_donors *out, const uint16_t *labels, int h, int w);
void ky_aug_donors_free(ky_aug_donors *d);
/* ky_aug_copy_paste with a pool found on this very label map (as it is before the paste): same
 * draws, same result. */
ky_status ky_aug_copy_paste_donors(uint8_t *rgb, uint16_t *labels, int h, int w, int crop_x0, int crop_y0,
                                   int crop, float p, const ky_aug_donors *donors, ky_rng *rng);

/* skimage.filters.rank.median(plane, square(3), mask=mask) where mask is set: the value at sorted
 * index n/2 of the masked pixels of the 3x3 neighbourhood (n of them, clipped to the image);
 * elsewhere out = plane. out, plane, mask: [h, w] (out must not alias plane). */
ky_status ky_aug_masked_median3(uint8_t *out, const uint8_t *plane, const uint8_t *mask, int h, int w);

/* The loader's ky_precrop_fn signature (data/loader.h); ctx points to the float probability p. */
ky_status ky_aug_copy_paste_hook(void *ctx, uint8_t *rgb, uint16_t *labels, int h, int w, int y0, int x0,
                                 int crop, ky_rng *rng);

#endif

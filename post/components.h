/* Connected components with scikit-image's measure.label numbering (labels in raster order of each
 * component's first pixel), small-object removal and sequential relabelling.
 * Tested by tests/test_post_components.c against skimage fixtures (tests/fixtures/candidates/). */
#ifndef KY_POST_COMPONENTS_H
#define KY_POST_COMPONENTS_H

#include <stdint.h>
#include "core/status.h"

/* Components of nonzero pixels of `bin` [h, w]; connectivity 4 or 8. out: int32 [h, w], 0 outside,
 * 1..count inside. */
ky_status ky_post_label_binary(int32_t *out, int *count, const uint8_t *bin, int h, int w, int connectivity);

/* Same-value components of a label image (0 = background), as skimage.measure.label on an integer
 * image: two touching regions with different values stay apart, one value split in two parts
 * becomes two labels. out may not alias lab. */
ky_status ky_post_label_image(int32_t *out, int *count, const int32_t *lab, int h, int w, int connectivity);

/* Pixel count of every label 1..max_label: area [max_label + 1] (area[0] = background). Labels must
 * lie in 0..max_label. */
ky_status ky_post_label_areas(int64_t *area, const int32_t *lab, int h, int w, int max_label);

/* Sets to 0 every label whose area is below min_size (labels must lie in 0..max_label). No
 * relabelling: callers follow with ky_post_relabel_sequential or ky_post_label_image. */
ky_status ky_post_remove_small(int32_t *lab, int h, int w, int max_label, int min_size);

/* Renumbers the labels present to 1..count keeping their relative order (skimage
 * segmentation.relabel_sequential). */
ky_status ky_post_relabel_sequential(int32_t *lab, int *count, int h, int w, int max_label);

/* Largest label value in lab (0 for none); error on a negative label. */
ky_status ky_post_label_max(int32_t *max_label, const int32_t *lab, int h, int w);

#endif

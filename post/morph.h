/* Binary morphology with square and cross structuring elements of any odd size.
 * Border rules (what lies outside the image):
 *   dilation: outside counts as background, which equals skimage.morphology.dilation / scipy
 *             grey_dilation (mode 'reflect' adds nothing for a symmetric window) and cv2.dilate;
 *   erosion:  `border` = 1 treats outside as foreground (cv2.erode's default BORDER_CONSTANT with
 *             the "+inf" morphology border, used by the reference's 3x3 split-level erosion);
 *             `border` = 0 treats it as background (scipy.ndimage.binary_erosion, border_value=0).
 * Tested by tests/test_post_morph.c against cv2/scipy/skimage fixtures (tests/fixtures/candidates/). */
#ifndef KY_POST_MORPH_H
#define KY_POST_MORPH_H

#include <stdint.h>
#include "core/status.h"

/* in, out: uint8 [h, w] (nonzero = foreground in; 0/1 out); out may equal in. k odd >= 1. */
ky_status ky_post_dilate_square(uint8_t *out, const uint8_t *in, int h, int w, int k);
ky_status ky_post_erode_square(uint8_t *out, const uint8_t *in, int h, int w, int k, int border);
/* Cross ("plus") of k x k: centre row and centre column. */
ky_status ky_post_dilate_cross(uint8_t *out, const uint8_t *in, int h, int w, int k);
ky_status ky_post_erode_cross(uint8_t *out, const uint8_t *in, int h, int w, int k, int border);

#endif

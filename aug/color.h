/* Colour conversions with OpenCV's 8-bit semantics (RGB<->GRAY/LAB/HSV) and CLAHE on the L channel.
 * Tested by tests/test_aug_color.c against fixtures made by tests/fixtures/gen_aug.py (cv2). */
#ifndef KY_AUG_COLOR_H
#define KY_AUG_COLOR_H

#include <stdint.h>
#include "core/status.h"

/* Images are interleaved RGB uint8 [h, w, 3]; planes are uint8 [h, w]. */

/* cv2.COLOR_RGB2GRAY, fixed point (0.299, 0.587, 0.114 in 15 bits). */
ky_status ky_aug_rgb_to_gray(uint8_t *gray, const uint8_t *rgb, int h, int w);
/* cv2.COLOR_RGB2LAB / COLOR_LAB2RGB for uint8 (L*255/100, a+128, b+128, sRGB D65). May alias. */
ky_status ky_aug_rgb_to_lab(uint8_t *lab, const uint8_t *rgb, int h, int w);
ky_status ky_aug_lab_to_rgb(uint8_t *rgb, const uint8_t *lab, int h, int w);
/* cv2.COLOR_RGB2HSV / COLOR_HSV2RGB for uint8: H in 0..179, S and V in 0..255. May alias. */
ky_status ky_aug_rgb_to_hsv(uint8_t *hsv, const uint8_t *rgb, int h, int w);
ky_status ky_aug_hsv_to_rgb(uint8_t *rgb, const uint8_t *hsv, int h, int w);

/* cv2.createCLAHE(clip, (tiles, tiles)).apply on one uint8 plane, in place. Image sizes that are
 * not a multiple of `tiles` are padded (reflect-101) for the histograms, as OpenCV does. */
ky_status ky_aug_clahe_plane(uint8_t *plane, int h, int w, float clip, int tiles);
/* CLAHE on the L channel of LAB, back to RGB, in place (the reference's `clahe`). */
ky_status ky_aug_clahe(uint8_t *rgb, int h, int w, float clip, int tiles);
/* Victor's 4th input channel (reference 2.3): CLAHE (clip 2, 17x17 tiles) of L, inverted when
 * its mean is > 127 so that nuclei are bright. out: uint8 [h, w]. */
ky_status ky_aug_clahe_channel(uint8_t *out, const uint8_t *rgb, int h, int w);

#endif

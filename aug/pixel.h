/* Image-only augmentations of the reference chain: filters (imgaug Sharpen/Emboss, blurs), noise,
 * grey/invert/remap, contrast/brightness, HSV shift, channel shuffle. Images are uint8 RGB [h, w, 3],
 * changed in place; explicit parameters make every function deterministic (noise takes an rng).
 * Tested by tests/test_aug_pixel.c (cv2 parity fixtures and properties). */
#ifndef KY_AUG_PIXEL_H
#define KY_AUG_PIXEL_H

#include <stdint.h>
#include "core/rng.h"
#include "core/status.h"

/* cv2.filter2D(x, -1, k) per channel: correlation with a float kernel [kh, kw] (odd sizes, anchor
 * at the centre), reflect-101 borders, rounded and saturated. */
ky_status ky_aug_filter2d(uint8_t *rgb, int h, int w, const float *k, int kh, int kw);
/* imgaug Sharpen(alpha, lightness) and Emboss(alpha, strength): 3x3 kernels blended with identity. */
ky_status ky_aug_sharpen(uint8_t *rgb, int h, int w, float alpha, float lightness);
ky_status ky_aug_emboss(uint8_t *rgb, int h, int w, float alpha, float strength);
/* Motion-blur kernel: a 1-px 8-connected line from (x0, y0) to (x1, y1) in a k x k grid, normalised
 * to sum 1 (the reference's cv2.line + division). kernel: float [k, k]. */
ky_status ky_aug_motion_kernel(float *kernel, int k, int x0, int y0, int x1, int y1);
ky_status ky_aug_motion_blur(uint8_t *rgb, int h, int w, const float *kernel, int k);
/* cv2.medianBlur(x, 3) (replicated borders) and cv2.blur(x, (3, 3)) (reflect-101). */
ky_status ky_aug_median3(uint8_t *rgb, int h, int w);
ky_status ky_aug_box3(uint8_t *rgb, int h, int w);

/* imgaug AdditiveGaussianNoise(scale = sigma): one N(0, sigma) value per pixel, shared by the
 * channels, rounded and clipped to 0..255. */
ky_status ky_aug_additive_gaussian_noise(uint8_t *rgb, int h, int w, float sigma, ky_rng *rng);
/* The reference's GaussNoise(var): N(var, sqrt(var)) per value, shifted so its minimum is 0,
 * truncated to uint8, added, clipped to the image's own maximum. */
ky_status ky_aug_gauss_noise(uint8_t *rgb, int h, int w, float var, ky_rng *rng);
/* grey = RGB->GRAY, inverted when its mean is > 127, copied to the 3 channels. */
ky_status ky_aug_to_gray(uint8_t *rgb, int h, int w);
ky_status ky_aug_invert(uint8_t *rgb, int h, int w);
/* Fake H&E stain LUT for dark images (grey mean <= 100; brighter images are left unchanged).
 * bg, center, nmax: RGB triples. Channel c maps through its own LUT built from the image maximum. */
ky_status ky_aug_remap_color(uint8_t *rgb, int h, int w, const uint8_t bg[3], const uint8_t center[3],
                             const uint8_t nmax[3]);
/* alpha * x + 3 (1 - alpha) mean(grey) (the reference's formula), and alpha * x; both clipped to
 * [0, max of the image] and truncated. */
ky_status ky_aug_contrast(uint8_t *rgb, int h, int w, float alpha);
ky_status ky_aug_brightness(uint8_t *rgb, int h, int w, float alpha);
/* Shift H (wrapping in 0..179), S and V (clipped) in OpenCV 8-bit HSV; shifts are rounded first. */
ky_status ky_aug_hsv_shift(uint8_t *rgb, int h, int w, float dh, float ds, float dv);
/* out channel c = in channel perm[c]; perm is a permutation of {0, 1, 2}. */
ky_status ky_aug_channel_shuffle(uint8_t *rgb, int h, int w, const int perm[3]);

#endif

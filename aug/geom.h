/* Geometric augmentations: flips, rot90, transpose and every warp of the reference chain. The image
 * (uint8 RGB [h, w, 3], bilinear) and the label map (uint16 [h, w], nearest) move together with one
 * mapping; borders are reflect-101. `labels` may be NULL (image only).
 * Tested by tests/test_aug_geom.c (identities, image/label alignment, cv2 parity fixtures). */
#ifndef KY_AUG_GEOM_H
#define KY_AUG_GEOM_H

#include <stdint.h>
#include "core/rng.h"
#include "core/status.h"

/* cv2.flip codes: 0 flips rows (vertical), 1 flips columns (horizontal), -1 both. */
ky_status ky_aug_flip(uint8_t *rgb, uint16_t *labels, int h, int w, int code);
/* np.rot90(x, k): counter-clockwise k quarter turns (any integer k). Non-square images change
 * shape for odd k: *h and *w are swapped (the buffers keep their size). */
ky_status ky_aug_rot90(uint8_t *rgb, uint16_t *labels, int *h, int *w, int k);
/* x.transpose(1, 0, 2): swaps *h and *w. */
ky_status ky_aug_transpose(uint8_t *rgb, uint16_t *labels, int *h, int *w);

/* cv2.warpPerspective(x, m, (w, h), INTER_LINEAR, BORDER_REFLECT_101): `m` (3x3, row-major) maps
 * source to output pixel coordinates; OpenCV's 1/32-pixel fixed-point bilinear is reproduced. */
ky_status ky_aug_warp_perspective(uint8_t *rgb, uint16_t *labels, int h, int w, const double m[9]);
/* cv2.warpAffine(x, m, (w, h), INTER_LINEAR, BORDER_REFLECT_101), m is 2x3 source -> output. */
ky_status ky_aug_warp_affine(uint8_t *rgb, uint16_t *labels, int h, int w, const double m[6]);
/* cv2.remap(x, mapx, mapy, INTER_LINEAR, BORDER_REFLECT_101): output (x, y) reads the source at
 * (mapx, mapy)[y, x]; maps are float32 [h, w]. */
ky_status ky_aug_remap(uint8_t *rgb, uint16_t *labels, int h, int w, const float *mapx, const float *mapy);

/* Solvers (cv2.getAffineTransform / getPerspectiveTransform): src/dst are 3 or 4 (x, y) pairs. */
ky_status ky_aug_affine_from_points(double m[6], const double src[6], const double dst[6]);
ky_status ky_aug_perspective_from_points(double m[9], const double src[8], const double dst[8]);

/* ShiftScaleRotate as the reference builds it: rotate by `angle` degrees and scale about the centre,
 * shifted by (dx*w, dy*h), as a perspective warp. The forward matrix is written to m when non-NULL. */
ky_status ky_aug_shift_scale_rotate(uint8_t *rgb, uint16_t *labels, int h, int w, float angle,
                                    float scale, float dx, float dy);
ky_status ky_aug_shift_scale_rotate_matrix(double m[9], int h, int w, float angle, float scale, float dx, float dy);
/* Barrel / pincushion distortion ("Distort1"): r' = r (1 + k 1e-5 r^2) about the centre shifted by
 * (dx*w, dy*h). The reference's numpy mgrid also transposed the image; this one does not. */
ky_status ky_aug_distort1(uint8_t *rgb, uint16_t *labels, int h, int w, float k, float dx, float dy);
/* Grid distortion ("Distort2"): `num_steps` cells per axis, xsteps/ysteps hold num_steps + 1 cell
 * stretch factors each (the reference's loop, including its last partial cell). */
ky_status ky_aug_distort2(uint8_t *rgb, uint16_t *labels, int h, int w, int num_steps,
                          const float *xsteps, const float *ysteps);
/* ElasticTransform as albumentations/reference: warpAffine by the forward 2x3 `affine`, then remap by
 * (x + dx, y + dy). dx/dy are float32 [h, w] or both NULL (affine only). */
ky_status ky_aug_elastic(uint8_t *rgb, uint16_t *labels, int h, int w, const double affine[6],
                         const float *dx, const float *dy);
/* Draws the elastic parameters: the random affine (corner jitter U(-alpha_affine, alpha_affine) of
 * the reference's three points) and the displacement fields alpha * G_sigma * U(-1, 1), where G_sigma
 * is a 3-pass box approximation of the Gaussian (reflect borders). */
ky_status ky_aug_elastic_sample(double affine[6], float *dx, float *dy, int h, int w, float alpha,
                                float sigma, float alpha_affine, ky_rng *rng);
/* In-place Gaussian-like smoothing of a float [h, w] field: 3 box passes per axis whose combined
 * variance matches sigma^2, borders as scipy.ndimage 'reflect'. */
ky_status ky_aug_smooth_field(float *f, int h, int w, float sigma);
/* imgaug-like PerspectiveTransform: the quadrilateral quad = (tl, tr, br, bl) (x, y pixel pairs) of
 * the source is mapped onto the whole output (keep_size, in one resampling). */
ky_status ky_aug_perspective(uint8_t *rgb, uint16_t *labels, int h, int w, const float quad[8]);
/* imgaug-like PiecewiseAffine: a rows x cols grid over [0, w] x [0, h] whose points are moved by
 * jitter [rows * cols * 2] (dx, dy in pixels, row-major); output pixels near a moved point read the
 * source near the original point. Pixels outside the moved mesh extend the nearest triangle. */
ky_status ky_aug_piecewise_affine(uint8_t *rgb, uint16_t *labels, int h, int w, int rows, int cols,
                                  const float *jitter);

#endif

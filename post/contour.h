/* Contour geometry on binary masks with OpenCV's semantics: the first contour of
 * cv2.findContours(RETR_TREE, CHAIN_APPROX_SIMPLE), convex hulls, cv2.isContourConvex and
 * cv2.minAreaRect (OpenCV 4.6 conventions). Tested by tests/test_post_regionprops.c (fixtures from
 * tests/fixtures/gen_regionprops.py) and its hand-made cases. */
#ifndef KY_POST_CONTOUR_H
#define KY_POST_CONTOUR_H

#include <stdint.h>
#include "core/status.h"

typedef struct { int x, y; } ky_point;   /* x = column, y = row */

/* The first contour cv2.findContours(mask, RETR_TREE, CHAIN_APPROX_SIMPLE) returns: the outer border
 * of the top-level 8-connected component whose first pixel (raster order) comes last, traced the way
 * Suzuki-Abe border following does it, with straight runs compressed to their end points.
 * mask: [h, w], nonzero = foreground; pixels outside the mask count as background.
 * *pts is malloc'ed (free it), *n >= 1. An all-zero mask is an error. */
ky_status ky_contour_first_outer(ky_point **pts, int *n, const uint8_t *mask, int h, int w);

/* cv2.isContourConvex: 1 when every turn has the same strict orientation (three collinear
 * consecutive points or a repeated point make it 0, as in OpenCV); 0 for n == 0. */
int ky_contour_is_convex(const ky_point *p, int n);

/* Convex hull without collinear points, counter-clockwise for x right / y up, starting at the
 * lexicographically smallest (x, y). hull needs room for n points; returns the vertex count
 * (1 for a single distinct point, 2 for collinear points). */
int ky_convex_hull(ky_point *hull, const ky_point *p, int n);

/* cv2.minAreaRect as OpenCV 4.6 (this machine's cv2) computes it: the hull built and ordered like
 * cv2.convexHull(points, clockwise=False) (Sklansky scan plus OpenCV's cyclic shift), then OpenCV's
 * float32 rotating calipers, "area <= min" so the last of equal-area orientations wins. Angles come
 * out in [0, 90] for >= 3 hull vertices. cv2 3.x, which the reference ran, fed the calipers the
 * clockwise hull and reported [-90, 0); we reproduce 4.6, the version we can check against. With 2
 * hull vertices (collinear points) the rectangle has height 0 and the angle is that of the segment
 * from hull[0] to hull[1] (atan2, degrees); with one point, all zero. p: the contour, in order. */
ky_status ky_min_area_rect(double *short_side, double *long_side, double *angle,
                           const ky_point *p, int n);

#endif

/* Shape properties of one binary region with scikit-image's regionprops definitions, plus the
 * OpenCV contour features (isContourConvex, minAreaRect). Tested by tests/test_post_regionprops.c
 * against skimage/cv2 values from tests/fixtures/gen_regionprops.py. */
#ifndef KY_POST_REGIONPROPS_H
#define KY_POST_REGIONPROPS_H

#include <stdint.h>
#include "core/status.h"

typedef struct {
  double area, convex_area, solidity, eccentricity, extent, perimeter;
  double major_axis_length, minor_axis_length, euler_number, equivalent_diameter;
  double centroid_r, centroid_c; int bbox[4]; /* min_row, min_col, max_row(excl), max_col(excl) */
  int contour_convex;                 /* cv2.isContourConvex of the first external contour */
  double rect_short, rect_long, rect_angle; /* cv2.minAreaRect of that contour */
} ky_regionprops;

/* mask: [h, w] bytes, nonzero = inside the one region (callers pass a bbox crop with a 1-px margin;
   offsets let centroid/bbox be reported in full-image coordinates). */
ky_status ky_post_regionprops(ky_regionprops *out, const uint8_t *mask, int h, int w, int off_r, int off_c);

#endif

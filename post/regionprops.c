/* Region properties of one binary mask with scikit-image 0.19 definitions, plus OpenCV contour
 * features. Tested by tests/test_post_regionprops.c against tests/fixtures/gen_regionprops.py. */
#include "post/regionprops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "post/contour.h"

static inline int px(const uint8_t *m, int h, int w, int r, int c) {
  return r >= 0 && c >= 0 && r < h && c < w && m[(size_t)r * w + c] != 0;
}

/* skimage.measure.perimeter(image, 4): border pixels (the region minus its erosion by a cross)
 * weighted by the configuration of their border neighbours (Benkrid & Crookes). */
static double perimeter4(const uint8_t *m, int h, int w) {
  uint8_t *border = calloc((size_t)h * w, 1);
  if (!border) return NAN;
  for (int r = 0; r < h; r++)
    for (int c = 0; c < w; c++)
      if (px(m, h, w, r, c))
        border[(size_t)r * w + c] = !(px(m, h, w, r - 1, c) && px(m, h, w, r + 1, c) &&
                                      px(m, h, w, r, c - 1) && px(m, h, w, r, c + 1));
  long long hist[50] = {0};
  for (int r = 0; r < h; r++)
    for (int c = 0; c < w; c++) {
      if (!border[(size_t)r * w + c]) continue;
      int v = 1;
      v += 2 * (px(border, h, w, r - 1, c) + px(border, h, w, r + 1, c) + px(border, h, w, r, c - 1) + px(border, h, w, r, c + 1));
      v += 10 * (px(border, h, w, r - 1, c - 1) + px(border, h, w, r - 1, c + 1) + px(border, h, w, r + 1, c - 1) + px(border, h, w, r + 1, c + 1));
      hist[v]++;
    }
  free(border);
  double weight[50] = {0};
  weight[5] = weight[7] = weight[15] = weight[17] = weight[25] = weight[27] = 1;
  weight[21] = weight[33] = sqrt(2.0);
  weight[13] = weight[23] = (1 + sqrt(2.0)) / 2;
  double p = 0;
  for (int k = 0; k < 50; k++) p += weight[k] * (double)hist[k];
  return p;
}

/* skimage euler_number(image, connectivity=2): 8-connected objects minus 4-connected holes, by
 * counting 2x2 configurations (bit values: top-left 8, top-right 2, bottom-left 4, bottom-right 1). */
static int euler8(const uint8_t *m, int h, int w) {
  int e = 0;
  for (int r = 0; r <= h; r++)
    for (int c = 0; c <= w; c++) {
      int v = px(m, h, w, r, c) + 2 * px(m, h, w, r - 1, c) + 4 * px(m, h, w, r, c - 1) + 8 * px(m, h, w, r - 1, c - 1);
      if (v == 8) e += 1;
      else if (v == 6 || v == 14) e -= 1;
    }
  return e;
}

static inline long long floor_div(long long a, long long b) {
  long long q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static inline long long ceil_div(long long a, long long b) {
  long long q = a / b;
  return (a % b != 0 && ((a < 0) == (b < 0))) ? q + 1 : q;
}

/* skimage convex_hull_image: hull of the pixels' edge midpoints (centre +- 0.5 along each axis);
 * pixels whose centres lie inside or on that hull. Coordinates are doubled to stay integral. */
static ky_status convex_area(double *out, const uint8_t *m, int h, int w, int r0, int r1, int c0, int c1) {
  int rows = r1 - r0;
  ky_point *pts = malloc(sizeof *pts * (size_t)rows * 6);
  ky_point *hull = malloc(sizeof *hull * (size_t)rows * 6);
  if (!pts || !hull) { free(pts); free(hull); return ky_error(KY_ERR_NOMEM, "ky_post_regionprops: convex hull of %d rows", rows); }
  int n = 0;
  memset(pts, 0, sizeof *pts * (size_t)rows * 6);
  for (int r = r0; r < r1; r++) {
    int lo = -1, hi = -1;
    for (int c = c0; c < c1; c++)
      if (m[(size_t)r * w + c]) { if (lo < 0) lo = c; hi = c; }
    if (lo < 0) continue;
    /* Interior midpoints of a row lie on the segments between these extremes. */
    pts[n++] = (ky_point){2 * lo - 1, 2 * r};
    pts[n++] = (ky_point){2 * hi + 1, 2 * r};
    pts[n++] = (ky_point){2 * lo, 2 * r - 1};
    pts[n++] = (ky_point){2 * lo, 2 * r + 1};
    pts[n++] = (ky_point){2 * hi, 2 * r - 1};
    pts[n++] = (ky_point){2 * hi, 2 * r + 1};
  }
  int k = ky_convex_hull(hull, pts, n);
  /* A pixel centre q = (2c, 2r) is inside when it is on the left of (or on) every hull edge a->b:
   * dx (qy - ay) - dy (qx - ax) >= 0. On one row that bounds 2c from one side per edge, so each row
   * is one interval of columns, found in integers, instead of a test per pixel and edge. */
  long long count = 0;
  for (int r = r0; r < r1; r++) {
    long long lo = c0, hi = c1 - 1, qy = 2LL * r;
    for (int i = 0; i < k && lo <= hi; i++) {
      ky_point a = hull[i], b = hull[(i + 1) % k];
      long long dx = b.x - a.x, dy = b.y - a.y, rhs = dx * (qy - a.y) + dy * a.x;   /* dy qx <= rhs */
      if (dy > 0) { long long m = floor_div(rhs, 2 * dy); hi = m < hi ? m : hi; }
      else if (dy < 0) { long long m = ceil_div(rhs, 2 * dy); lo = m > lo ? m : lo; }
      else if (rhs < 0) hi = lo - 1;   /* dy = 0: the row is wholly on one side */
    }
    if (hi >= lo) count += hi - lo + 1;
  }
  free(pts);
  free(hull);
  *out = (double)count;
  return KY_OK;
}

ky_status ky_post_regionprops(ky_regionprops *out, const uint8_t *mask, int h, int w, int off_r, int off_c) {
  KY_CHECK_NULL(out, "out");
  KY_CHECK_NULL(mask, "mask");
  KY_CHECK(h > 0 && w > 0, KY_ERR_ARG, "ky_post_regionprops: mask is %dx%d, expected positive sizes", h, w);
  long long area = 0;
  double sr = 0, sc = 0;
  int r0 = h, r1 = -1, c0 = w, c1 = -1;
  for (int r = 0; r < h; r++)
    for (int c = 0; c < w; c++)
      if (mask[(size_t)r * w + c]) {
        area++;
        sr += r;
        sc += c;
        if (r < r0) r0 = r;
        if (r > r1) r1 = r;
        if (c < c0) c0 = c;
        if (c > c1) c1 = c;
      }
  KY_CHECK(area > 0, KY_ERR_ARG, "ky_post_regionprops: %dx%d mask has no foreground pixel", h, w);
  r1++;
  c1++;
  ky_regionprops p = {0};
  p.area = (double)area;
  double mr = sr / area, mc = sc / area;
  p.centroid_r = mr + off_r;
  p.centroid_c = mc + off_c;
  p.bbox[0] = r0 + off_r;
  p.bbox[1] = c0 + off_c;
  p.bbox[2] = r1 + off_r;
  p.bbox[3] = c1 + off_c;
  p.extent = p.area / ((double)(r1 - r0) * (c1 - c0));
  p.equivalent_diameter = sqrt(4 * p.area / M_PI);

  /* Inertia tensor from central moments; its eigenvalues give the ellipse axes. */
  double mrr = 0, mcc = 0, mrc = 0;
  for (int r = r0; r < r1; r++)
    for (int c = c0; c < c1; c++)
      if (mask[(size_t)r * w + c]) {
        double dr = r - mr, dc = c - mc;
        mrr += dr * dr;
        mcc += dc * dc;
        mrc += dr * dc;
      }
  double a = mcc / area, b = -mrc / area, d = mrr / area;
  double half = 0.5 * (a + d), disc = sqrt(0.25 * (a - d) * (a - d) + b * b);
  double l1 = half + disc, l2 = l1 > 0 ? (a * d - b * b) / l1 : 0;  /* det / l1: no cancellation */
  if (l1 < 0) l1 = 0;
  if (l2 < 0) l2 = 0;
  if (l2 > l1 || disc == 0) l2 = l1;   /* round-off in det / l1 must not make 1 - l2 / l1 negative */
  p.major_axis_length = 4 * sqrt(l1);
  p.minor_axis_length = 4 * sqrt(l2);
  p.eccentricity = l1 == 0 ? 0 : sqrt(1 - l2 / l1);

  p.perimeter = perimeter4(mask, h, w);
  if (isnan(p.perimeter)) return ky_error(KY_ERR_NOMEM, "ky_post_regionprops: perimeter of %dx%d mask", h, w);
  p.euler_number = euler8(mask, h, w);
  KY_TRY(convex_area(&p.convex_area, mask, h, w, r0, r1, c0, c1));
  p.solidity = p.area / p.convex_area;

  ky_point *cnt = NULL;
  int n = 0;
  KY_TRY(ky_contour_first_outer(&cnt, &n, mask, h, w));
  p.contour_convex = ky_contour_is_convex(cnt, n);
  ky_status s = ky_min_area_rect(&p.rect_short, &p.rect_long, &p.rect_angle, cnt, n);
  free(cnt);
  KY_TRY(s);
  *out = p;
  return KY_OK;
}

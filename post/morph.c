/* Separable binary morphology: a 1-D window pass counts foreground pixels with a running sum, so
 * the cost does not grow with k. Tested by tests/test_post_morph.c. */
#include "post/morph.h"

#include <stdlib.h>
#include <string.h>

/* One 1-D pass over n samples at stride `st`: out[i] = 1 when the window of radius r holds any
 * foreground (dilate) or only foreground (erode; samples outside count as `border`). */
static void pass_1d(uint8_t *out, const uint8_t *in, int n, size_t st, int r, int erode, int border) {
  int cnt = 0;   /* foreground count of in-image samples in the window [i - r, i + r] */
  for (int i = 0; i < r && i < n; i++) cnt += in[i * st] != 0;
  for (int i = 0; i < n; i++) {
    if (i + r < n) cnt += in[(i + r) * st] != 0;
    if (i - r - 1 >= 0) cnt -= in[(i - r - 1) * st] != 0;
    int lo = i - r < 0 ? 0 : i - r, hi = i + r >= n ? n - 1 : i + r;
    int inside = hi - lo + 1;
    if (!erode) out[i * st] = cnt > 0;
    else out[i * st] = cnt == inside && (border || inside == 2 * r + 1);
  }
}

static ky_status check(const char *fn, uint8_t *out, const uint8_t *in, int h, int w, int k, int border) {
  KY_CHECK(out && in, KY_ERR_ARG, "%s: %s is NULL", fn, out ? "in" : "out");
  KY_CHECK(h > 0 && w > 0, KY_ERR_SHAPE, "%s: image is %dx%d, expected positive sizes", fn, h, w);
  KY_CHECK(k >= 1 && k % 2 == 1, KY_ERR_ARG, "%s: size is %d, expected an odd size >= 1", fn, k);
  KY_CHECK(border == 0 || border == 1, KY_ERR_ARG, "%s: border is %d, expected 0 or 1", fn, border);
  return KY_OK;
}

/* rows then columns (square) or rows and columns separately combined (cross). */
static ky_status run(const char *fn, uint8_t *out, const uint8_t *in, int h, int w, int k, int erode,
                     int border, int cross) {
  KY_TRY(check(fn, out, in, h, w, k, border));
  size_t n = (size_t)h * w;
  uint8_t *a = malloc(n), *b = malloc(n);
  if (!a || !b) { free(a); free(b); return ky_error(KY_ERR_NOMEM, "%s: no memory for %dx%d", fn, h, w); }
  int r = k / 2;
  for (int y = 0; y < h; y++) pass_1d(a + (size_t)y * w, in + (size_t)y * w, w, 1, r, erode, border);
  if (!cross) {
    for (int x = 0; x < w; x++) pass_1d(b + x, a + x, h, (size_t)w, r, erode, border);
  } else {
    for (int x = 0; x < w; x++) pass_1d(b + x, in + x, h, (size_t)w, r, erode, border);
    for (size_t i = 0; i < n; i++) b[i] = erode ? (a[i] & b[i]) : (a[i] | b[i]);
  }
  memcpy(out, b, n);
  free(a); free(b);
  return KY_OK;
}

ky_status ky_post_dilate_square(uint8_t *out, const uint8_t *in, int h, int w, int k) {
  return run(__func__, out, in, h, w, k, 0, 0, 0);
}
ky_status ky_post_erode_square(uint8_t *out, const uint8_t *in, int h, int w, int k, int border) {
  return run(__func__, out, in, h, w, k, 1, border, 0);
}
ky_status ky_post_dilate_cross(uint8_t *out, const uint8_t *in, int h, int w, int k) {
  return run(__func__, out, in, h, w, k, 0, 0, 1);
}
ky_status ky_post_erode_cross(uint8_t *out, const uint8_t *in, int h, int w, int k, int border) {
  return run(__func__, out, in, h, w, k, 1, border, 1);
}

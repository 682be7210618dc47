/* Geometric augmentations over one resampling engine: every warp produces, per output pixel, a source
 * position in 1/32 pixels (as OpenCV's INTER_LINEAR does), read bilinearly for the image and to the
 * nearest pixel for labels, reflect-101 outside. Tested by tests/test_aug_geom.c. */
#include "aug/geom.h"
#include "aug/round.h"
#include "aug/rngfill.h"
#ifdef __SSE4_1__
#include <smmintrin.h>
#endif

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_ARGS(rgb, h, w)                                                                    \
  do {                                                                                           \
    KY_CHECK_NULL(rgb, "rgb");                                                                   \
    KY_CHECK((h) > 0 && (w) > 0, KY_ERR_SHAPE, "%s: image must be non-empty, got %dx%d", __func__, \
             (h), (w));                                                                          \
  } while (0)

static inline int refl(int i, int n) {
  if ((unsigned)i < (unsigned)n) return i; /* the common case: no division */
  if (n == 1) return 0;
  int p = 2 * n - 2;
  i %= p;
  if (i < 0) i += p;
  return i < n ? i : p - i;
}

/* ---------------------------------------------------------------- flips, rot90, transpose */

ky_status ky_aug_flip(uint8_t *rgb, uint16_t *labels, int h, int w, int code) {
  CHECK_ARGS(rgb, h, w);
  KY_CHECK(code >= -1 && code <= 1, KY_ERR_ARG, "ky_aug_flip: code must be -1, 0 or 1, got %d", code);
  int fr = code <= 0, fc = code != 0; /* flip rows? flip columns? */
  if (fr) {
    uint8_t *tmp = malloc((size_t)w * 3);
    if (!tmp) return ky_error(KY_ERR_NOMEM, "ky_aug_flip: no memory for a %d-pixel row", w);
    for (int y = 0; y < h / 2; y++) {
      uint8_t *a = rgb + (size_t)y * w * 3, *b = rgb + (size_t)(h - 1 - y) * w * 3;
      memcpy(tmp, a, (size_t)w * 3); memcpy(a, b, (size_t)w * 3); memcpy(b, tmp, (size_t)w * 3);
      if (labels) {
        uint16_t *la = labels + (size_t)y * w, *lb = labels + (size_t)(h - 1 - y) * w;
        for (int x = 0; x < w; x++) { uint16_t t = la[x]; la[x] = lb[x]; lb[x] = t; }
      }
    }
    free(tmp);
  }
  if (fc)
    for (int y = 0; y < h; y++) {
      uint8_t *row = rgb + (size_t)y * w * 3;
      uint16_t *lrow = labels ? labels + (size_t)y * w : NULL;
      for (int x = 0, xr = w - 1; x < xr; x++, xr--) {
        for (int c = 0; c < 3; c++) { uint8_t t = row[3 * x + c]; row[3 * x + c] = row[3 * xr + c]; row[3 * xr + c] = t; }
        if (lrow) { uint16_t t = lrow[x]; lrow[x] = lrow[xr]; lrow[xr] = t; }
      }
    }
  return KY_OK;
}

/* out (oh x ow) pixel (i, j) reads in pixel src_index(i, j). */
static ky_status permute(uint8_t *rgb, uint16_t *labels, int h, int w, int oh, int ow, int k, int transpose) {
  size_t n = (size_t)h * w;
  uint8_t *tmp = malloc(n * 3);
  uint16_t *tl = labels ? malloc(n * sizeof *tl) : NULL;
  if (!tmp || (labels && !tl)) {
    free(tmp); free(tl);
    return ky_error(KY_ERR_NOMEM, "ky_aug_rot90: no memory for a %dx%d image", h, w);
  }
  memcpy(tmp, rgb, n * 3);
  if (labels) memcpy(tl, labels, n * sizeof *tl);
  for (int i = 0; i < oh; i++)
    for (int j = 0; j < ow; j++) {
      int sy, sx;
      if (transpose) { sy = j; sx = i; }
      else if (k == 1) { sy = j; sx = w - 1 - i; }
      else if (k == 2) { sy = h - 1 - i; sx = w - 1 - j; }
      else { sy = h - 1 - j; sx = i; }
      size_t d = (size_t)i * ow + j, s = (size_t)sy * w + sx;
      rgb[3 * d] = tmp[3 * s]; rgb[3 * d + 1] = tmp[3 * s + 1]; rgb[3 * d + 2] = tmp[3 * s + 2];
      if (labels) labels[d] = tl[s];
    }
  free(tmp); free(tl);
  return KY_OK;
}

ky_status ky_aug_rot90(uint8_t *rgb, uint16_t *labels, int *h, int *w, int k) {
  KY_CHECK_NULL(h, "h");
  KY_CHECK_NULL(w, "w");
  CHECK_ARGS(rgb, *h, *w);
  k = ((k % 4) + 4) % 4;
  if (k == 0) return KY_OK;
  int oh = k == 2 ? *h : *w, ow = k == 2 ? *w : *h;
  KY_TRY(permute(rgb, labels, *h, *w, oh, ow, k, 0));
  *h = oh; *w = ow;
  return KY_OK;
}

ky_status ky_aug_transpose(uint8_t *rgb, uint16_t *labels, int *h, int *w) {
  KY_CHECK_NULL(h, "h");
  KY_CHECK_NULL(w, "w");
  CHECK_ARGS(rgb, *h, *w);
  int oh = *w, ow = *h;
  KY_TRY(permute(rgb, labels, *h, *w, oh, ow, 0, 1));
  *h = oh; *w = ow;
  return KY_OK;
}

/* ---------------------------------------------------------------- resampling engine */

typedef enum { MAP_PERSPECTIVE, MAP_AFFINE, MAP_FIELD } map_kind;
typedef struct {
  map_kind kind;
  double m[9];             /* inverse matrix: output -> source */
  const float *mx, *my;    /* MAP_FIELD */
} mapping;

static inline int clamp_q(double v) {
  const double lim = (double)(1 << 28);
  v = v < -lim ? -lim : v > lim ? lim : v;
  return ky_aug_iround(v);
}

/* Source positions of row y in 1/32 px, rounded as OpenCV rounds them for each warp type. */
static void map_row(const mapping *g, int y, int w, int *qx, int *qy) {
  const double *m = g->m;
  if (g->kind == MAP_AFFINE) {
    /* warpAffine: row offset and per-column deltas in 1/1024 px, then >> 5. */
    int x0 = clamp_q((m[1] * y + m[2]) * 1024) + 16, y0 = clamp_q((m[4] * y + m[5]) * 1024) + 16;
    for (int x = 0; x < w; x++) {
      qx[x] = (x0 + clamp_q(m[0] * x * 1024)) >> 5;
      qy[x] = (y0 + clamp_q(m[3] * x * 1024)) >> 5;
    }
  } else if (g->kind == MAP_PERSPECTIVE) {
    double X0 = m[1] * y + m[2], Y0 = m[4] * y + m[5], W0 = m[7] * y + m[8];
    if (m[6] == 0 && W0 != 0) { /* W is the same along the row: same numbers, no division */
      double W = 32.0 / W0;
      for (int x = 0; x < w; x++) {
        qx[x] = clamp_q((X0 + m[0] * x) * W);
        qy[x] = clamp_q((Y0 + m[3] * x) * W);
      }
      return;
    }
    for (int x = 0; x < w; x++) {
      double W = W0 + m[6] * x;
      W = W != 0 ? 32.0 / W : 0;
      qx[x] = clamp_q((X0 + m[0] * x) * W);
      qy[x] = clamp_q((Y0 + m[3] * x) * W);
    }
  } else {
    const float *mx = g->mx + (size_t)y * w, *my = g->my + (size_t)y * w;
    for (int x = 0; x < w; x++) {
      qx[x] = clamp_q(mx[x] * 32.f);
      qy[x] = clamp_q(my[x] * 32.f);
    }
  }
}

static ky_status resample(uint8_t *rgb, uint16_t *labels, int h, int w, const mapping *g) {
  size_t n = (size_t)h * w;
  uint8_t *src = malloc(n * 3 + 4); /* + 4: the vector path reads 4 bytes per pixel */
  uint16_t *sl = labels ? malloc(n * sizeof *sl) : NULL;
  int *q = malloc((size_t)w * 2 * sizeof *q);
  if (!src || !q || (labels && !sl)) {
    free(src); free(sl); free(q);
    return ky_error(KY_ERR_NOMEM, "warp: no memory for a %dx%d image", h, w);
  }
  memcpy(src, rgb, n * 3);
  memset(src + n * 3, 0, 4);
  if (labels) memcpy(sl, labels, n * sizeof *sl);
  int *qx = q, *qy = q + w;
  for (int y = 0; y < h; y++) {
    map_row(g, y, w, qx, qy);
    uint8_t *out = rgb + (size_t)y * w * 3;
    for (int x = 0; x < w; x++) {
      int ix = qx[x] >> 5, iy = qy[x] >> 5, fx = qx[x] & 31, fy = qy[x] & 31;
      /* OpenCV's 15-bit weights are 32 (32 - fx)(32 - fy) etc., exact products of 1/32 fractions;
       * (32 S + 2^14) >> 15 == (S + 2^9) >> 10 for the 10-bit weights below. */
      int w00 = (32 - fx) * (32 - fy), w01 = fx * (32 - fy);
      int w10 = (32 - fx) * fy, w11 = fx * fy;
      const uint8_t *p00, *p01, *p10, *p11;
      if ((unsigned)ix < (unsigned)(w - 1) && (unsigned)iy < (unsigned)(h - 1)) {
        p00 = src + ((size_t)iy * w + ix) * 3;
        p01 = p00 + 3; p10 = p00 + (size_t)w * 3; p11 = p10 + 3;
      } else {
        int x0 = refl(ix, w), x1 = refl(ix + 1, w), y0 = refl(iy, h), y1 = refl(iy + 1, h);
        p00 = src + ((size_t)y0 * w + x0) * 3; p01 = src + ((size_t)y0 * w + x1) * 3;
        p10 = src + ((size_t)y1 * w + x0) * 3; p11 = src + ((size_t)y1 * w + x1) * 3;
      }
#ifdef __SSE4_1__
      {
        /* [p00 c, p01 c] pairs of 16-bit values times [w00, w01] by pmaddwd, per channel c. */
        uint32_t a, b, c_, d;
        memcpy(&a, p00, 4); memcpy(&b, p01, 4); memcpy(&c_, p10, 4); memcpy(&d, p11, 4);
        __m128i top = _mm_unpacklo_epi16(_mm_cvtepu8_epi16(_mm_cvtsi32_si128((int)a)), _mm_cvtepu8_epi16(_mm_cvtsi32_si128((int)b)));
        __m128i bot = _mm_unpacklo_epi16(_mm_cvtepu8_epi16(_mm_cvtsi32_si128((int)c_)), _mm_cvtepu8_epi16(_mm_cvtsi32_si128((int)d)));
        __m128i s = _mm_add_epi32(_mm_madd_epi16(top, _mm_set1_epi32(w00 | (w01 << 16))),
                                  _mm_madd_epi16(bot, _mm_set1_epi32(w10 | (w11 << 16))));
        s = _mm_srli_epi32(_mm_add_epi32(s, _mm_set1_epi32(1 << 9)), 10);
        uint32_t v = (uint32_t)_mm_cvtsi128_si32(_mm_packus_epi16(_mm_packus_epi32(s, s), s));
        /* One 4-byte store: its 4th byte is the next pixel's, written after this one (pixels go
         * in memory order); the image's last pixel stores 3 bytes. */
        if (x + 1 < w || y + 1 < h) {
          memcpy(out + 3 * x, &v, 4);
        } else {
          out[3 * x] = (uint8_t)v;
          out[3 * x + 1] = (uint8_t)(v >> 8);
          out[3 * x + 2] = (uint8_t)(v >> 16);
        }
      }
#else
      for (int c = 0; c < 3; c++) {
        int v = (p00[c] * w00 + p01[c] * w01 + p10[c] * w10 + p11[c] * w11 + (1 << 9)) >> 10;
        out[3 * x + c] = (uint8_t)(v > 255 ? 255 : v);
      }
#endif
      if (labels) {
        int lx = refl((qx[x] + 16) >> 5, w), ly = refl((qy[x] + 16) >> 5, h);
        labels[(size_t)y * w + x] = sl[(size_t)ly * w + lx];
      }
    }
  }
  free(src); free(sl); free(q);
  return KY_OK;
}

static int invert3(double out[9], const double m[9]) {
  double a = m[0], b = m[1], c = m[2], d = m[3], e = m[4], f = m[5], g = m[6], h = m[7], i = m[8];
  double A = e * i - f * h, B = -(d * i - f * g), C = d * h - e * g;
  double det = a * A + b * B + c * C;
  if (det == 0 || !isfinite(det)) return 0;
  double r = 1.0 / det;
  out[0] = A * r; out[1] = -(b * i - c * h) * r; out[2] = (b * f - c * e) * r;
  out[3] = B * r; out[4] = (a * i - c * g) * r; out[5] = -(a * f - c * d) * r;
  out[6] = C * r; out[7] = -(a * h - b * g) * r; out[8] = (a * e - b * d) * r;
  return 1;
}

ky_status ky_aug_warp_perspective(uint8_t *rgb, uint16_t *labels, int h, int w, const double m[9]) {
  CHECK_ARGS(rgb, h, w);
  KY_CHECK_NULL(m, "m");
  mapping g = {MAP_PERSPECTIVE, {0}, NULL, NULL};
  KY_CHECK(invert3(g.m, m), KY_ERR_NUMERIC, "ky_aug_warp_perspective: matrix is singular or not finite");
  return resample(rgb, labels, h, w, &g);
}

ky_status ky_aug_warp_affine(uint8_t *rgb, uint16_t *labels, int h, int w, const double m[6]) {
  CHECK_ARGS(rgb, h, w);
  KY_CHECK_NULL(m, "m");
  double full[9] = {m[0], m[1], m[2], m[3], m[4], m[5], 0, 0, 1};
  mapping g = {MAP_AFFINE, {0}, NULL, NULL};
  KY_CHECK(invert3(g.m, full), KY_ERR_NUMERIC, "ky_aug_warp_affine: matrix is singular or not finite");
  return resample(rgb, labels, h, w, &g);
}

ky_status ky_aug_remap(uint8_t *rgb, uint16_t *labels, int h, int w, const float *mapx, const float *mapy) {
  CHECK_ARGS(rgb, h, w);
  KY_CHECK_NULL(mapx, "mapx");
  KY_CHECK_NULL(mapy, "mapy");
  mapping g = {MAP_FIELD, {0}, mapx, mapy};
  return resample(rgb, labels, h, w, &g);
}

/* ---------------------------------------------------------------- matrix solvers */

/* Solves a (n x n, row-major, destroyed) x = b by Gaussian elimination with partial pivoting. */
static int solve(double *a, double *b, int n) {
  for (int c = 0; c < n; c++) {
    int p = c;
    for (int r = c + 1; r < n; r++)
      if (fabs(a[r * n + c]) > fabs(a[p * n + c])) p = r;
    if (fabs(a[p * n + c]) < 1e-12) return 0;
    if (p != c) {
      for (int k = 0; k < n; k++) { double t = a[c * n + k]; a[c * n + k] = a[p * n + k]; a[p * n + k] = t; }
      double t = b[c]; b[c] = b[p]; b[p] = t;
    }
    for (int r = c + 1; r < n; r++) {
      double f = a[r * n + c] / a[c * n + c];
      for (int k = c; k < n; k++) a[r * n + k] -= f * a[c * n + k];
      b[r] -= f * b[c];
    }
  }
  for (int c = n - 1; c >= 0; c--) {
    double s = b[c];
    for (int k = c + 1; k < n; k++) s -= a[c * n + k] * b[k];
    b[c] = s / a[c * n + c];
  }
  return 1;
}

ky_status ky_aug_affine_from_points(double m[6], const double src[6], const double dst[6]) {
  KY_CHECK_NULL(m, "m");
  KY_CHECK_NULL(src, "src");
  KY_CHECK_NULL(dst, "dst");
  double a[36] = {0}, b[6];
  for (int i = 0; i < 3; i++) {
    double x = src[2 * i], y = src[2 * i + 1];
    double *r0 = a + (2 * i) * 6, *r1 = a + (2 * i + 1) * 6;
    r0[0] = x; r0[1] = y; r0[2] = 1;
    r1[3] = x; r1[4] = y; r1[5] = 1;
    b[2 * i] = dst[2 * i]; b[2 * i + 1] = dst[2 * i + 1];
  }
  KY_CHECK(solve(a, b, 6), KY_ERR_NUMERIC, "ky_aug_affine_from_points: the source points are collinear");
  memcpy(m, b, sizeof b);
  return KY_OK;
}

ky_status ky_aug_perspective_from_points(double m[9], const double src[8], const double dst[8]) {
  KY_CHECK_NULL(m, "m");
  KY_CHECK_NULL(src, "src");
  KY_CHECK_NULL(dst, "dst");
  double a[64] = {0}, b[8];
  for (int i = 0; i < 4; i++) {
    double x = src[2 * i], y = src[2 * i + 1], u = dst[2 * i], v = dst[2 * i + 1];
    double *r0 = a + i * 8, *r1 = a + (i + 4) * 8;
    r0[0] = x; r0[1] = y; r0[2] = 1; r0[6] = -x * u; r0[7] = -y * u;
    r1[3] = x; r1[4] = y; r1[5] = 1; r1[6] = -x * v; r1[7] = -y * v;
    b[i] = u; b[i + 4] = v;
  }
  KY_CHECK(solve(a, b, 8), KY_ERR_NUMERIC, "ky_aug_perspective_from_points: degenerate point set");
  memcpy(m, b, sizeof b);
  m[8] = 1;
  return KY_OK;
}

/* ---------------------------------------------------------------- transforms */

ky_status ky_aug_shift_scale_rotate_matrix(double m[9], int h, int w, float angle, float scale, float dx, float dy) {
  KY_CHECK_NULL(m, "m");
  KY_CHECK(scale > 0 && isfinite(scale) && isfinite(angle), KY_ERR_ARG,
           "ky_aug_shift_scale_rotate: scale must be > 0 and finite, got %g (angle %g)", scale, angle);
  double a = angle / 180.0 * M_PI, cc = cos(a) * scale, ss = sin(a) * scale;
  double cx = w / 2.0, cy = h / 2.0, tx = cx + dx * w, ty = cy + dy * h;
  /* box1 = R (box0 - c) + c + d: an affine map written as the 3x3 that getPerspectiveTransform gives. */
  m[0] = cc; m[1] = -ss; m[2] = tx - cc * cx + ss * cy;
  m[3] = ss; m[4] = cc; m[5] = ty - ss * cx - cc * cy;
  m[6] = 0; m[7] = 0; m[8] = 1;
  return KY_OK;
}

ky_status ky_aug_shift_scale_rotate(uint8_t *rgb, uint16_t *labels, int h, int w, float angle,
                                    float scale, float dx, float dy) {
  CHECK_ARGS(rgb, h, w);
  double m[9];
  KY_TRY(ky_aug_shift_scale_rotate_matrix(m, h, w, angle, scale, dx, dy));
  return ky_aug_warp_perspective(rgb, labels, h, w, m);
}

static ky_status alloc_maps(float **mx, float **my, int h, int w, const char *who) {
  *mx = malloc((size_t)h * w * sizeof **mx);
  *my = malloc((size_t)h * w * sizeof **my);
  if (!*mx || !*my) {
    free(*mx); free(*my);
    return ky_error(KY_ERR_NOMEM, "%s: no memory for %dx%d maps", who, h, w);
  }
  return KY_OK;
}

ky_status ky_aug_distort1(uint8_t *rgb, uint16_t *labels, int h, int w, float k, float dx, float dy) {
  CHECK_ARGS(rgb, h, w);
  KY_CHECK(isfinite(k) && isfinite(dx) && isfinite(dy), KY_ERR_ARG, "ky_aug_distort1: parameters must be finite");
  float *mx, *my;
  KY_TRY(alloc_maps(&mx, &my, h, w, "ky_aug_distort1"));
  float kk = k * 1e-5f, cx = w / 2.f + dx * w, cy = h / 2.f + dy * h;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      float u = x - cx, v = y - cy, f = 1.f + kk * (u * u + v * v);
      mx[(size_t)y * w + x] = u * f + cx;
      my[(size_t)y * w + x] = v * f + cy;
    }
  ky_status s = ky_aug_remap(rgb, labels, h, w, mx, my);
  free(mx); free(my);
  return s;
}

/* The reference's 1-D grid: cells of size/num_steps, each stretched by steps[i], the last one (if the
 * size is not a multiple) ending exactly at size. */
static void distort_axis(float *xx, int size, int num_steps, const float *steps) {
  int step = size / num_steps;
  KY_ASSERT(step >= 1);   /* 1 <= num_steps <= size (checked by the caller): every cell is written */
  double prev = 0;
  for (int idx = 0, x = 0; x < size; idx++, x += step) {
    int start = x, end = x + step;
    double cur;
    if (end > size) { end = size; cur = size; }
    else cur = prev + step * (double)steps[idx];
    int n = end - start;
    for (int i = 0; i < n; i++) xx[start + i] = (float)(n == 1 ? prev : prev + (cur - prev) * i / (n - 1));
    prev = cur;
  }
}

ky_status ky_aug_distort2(uint8_t *rgb, uint16_t *labels, int h, int w, int num_steps,
                          const float *xsteps, const float *ysteps) {
  CHECK_ARGS(rgb, h, w);
  KY_CHECK_NULL(xsteps, "xsteps");
  KY_CHECK_NULL(ysteps, "ysteps");
  KY_CHECK(num_steps >= 1 && num_steps <= h && num_steps <= w, KY_ERR_ARG,
           "ky_aug_distort2: num_steps must be in 1..min(h, w) = %d, got %d", h < w ? h : w, num_steps);
  /* The loop visits ceil(size / (size / num_steps)) cells, up to 2 * num_steps; the caller passes
   * num_steps + 1 factors, which is enough whenever num_steps divides size or size >= num_steps^2. */
  int sx = w / num_steps, sy = h / num_steps;
  KY_CHECK((w + sx - 1) / sx <= num_steps + 1 && (h + sy - 1) / sy <= num_steps + 1, KY_ERR_SHAPE,
           "ky_aug_distort2: a %dx%d image needs more than num_steps + 1 = %d step factors", h, w, num_steps + 1);
  float *xx = malloc((size_t)(w + h) * sizeof *xx);
  if (!xx) return ky_error(KY_ERR_NOMEM, "ky_aug_distort2: no memory");
  float *yy = xx + w;
  distort_axis(xx, w, num_steps, xsteps);
  distort_axis(yy, h, num_steps, ysteps);
  float *mx, *my;
  ky_status s = alloc_maps(&mx, &my, h, w, "ky_aug_distort2");
  if (s == KY_OK) {
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++) {
        mx[(size_t)y * w + x] = xx[x];
        my[(size_t)y * w + x] = yy[y];
      }
    s = ky_aug_remap(rgb, labels, h, w, mx, my);
    free(mx); free(my);
  }
  free(xx);
  return s;
}

ky_status ky_aug_elastic(uint8_t *rgb, uint16_t *labels, int h, int w, const double affine[6],
                         const float *dx, const float *dy) {
  CHECK_ARGS(rgb, h, w);
  KY_CHECK_NULL(affine, "affine");
  KY_CHECK((dx == NULL) == (dy == NULL), KY_ERR_ARG, "ky_aug_elastic: dx and dy must both be given or both NULL");
  KY_TRY(ky_aug_warp_affine(rgb, labels, h, w, affine));
  if (!dx) return KY_OK;
  /* A field below 1/64 px everywhere rounds to the identity at OpenCV's 1/32 px precision. */
  size_t n = (size_t)h * w;
  int moves = 0;
  for (size_t i = 0; i < n && !moves; i++) moves = fabsf(dx[i]) >= 1.f / 64 || fabsf(dy[i]) >= 1.f / 64;
  if (!moves) return KY_OK;
  float *mx, *my;
  KY_TRY(alloc_maps(&mx, &my, h, w, "ky_aug_elastic"));
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      size_t i = (size_t)y * w + x;
      mx[i] = (float)x + dx[i];
      my[i] = (float)y + dy[i];
    }
  ky_status s = ky_aug_remap(rgb, labels, h, w, mx, my);
  free(mx); free(my);
  return s;
}

/* scipy.ndimage 'reflect' (half-sample symmetric): d c b a | a b c d | d c b a */
static inline int refl_half(int i, int n) {
  int p = 2 * n;
  i %= p;
  if (i < 0) i += p;
  return i < n ? i : p - 1 - i;
}

/* Box means of radius r along rows (in place), reflect borders, by a sliding sum. idx[p + r + 1]
 * is the source column of position p, for p in -r-1 .. w+r-1. */
static void box_rows(float *f, int h, int w, int r, const int *idx, float *tmp) {
  double inv = 1.0 / (2 * r + 1);
  for (int y = 0; y < h; y++) {
    float *row = f + (size_t)y * w;
    memcpy(tmp, row, (size_t)w * sizeof *tmp);
    double s = 0;
    for (int k = -r; k <= r; k++) s += tmp[idx[k + r + 1]];
    row[0] = (float)(s * inv);
    for (int i = 1; i < w; i++) {
      s += tmp[idx[i + 2 * r + 1]] - tmp[idx[i]]; /* enters i + r, leaves i - r - 1 */
      row[i] = (float)(s * inv);
    }
  }
}

/* The same along columns, all columns at once (row-contiguous access); src is a copy of f. */
static void box_cols(float *f, int h, int w, int r, const int *idx, float *src, double *acc) {
  double inv = 1.0 / (2 * r + 1);
  memcpy(src, f, (size_t)h * w * sizeof *src);
  for (int x = 0; x < w; x++) acc[x] = 0;
  for (int k = -r; k <= r; k++) {
    const float *row = src + (size_t)idx[k + r + 1] * w;
    for (int x = 0; x < w; x++) acc[x] += row[x];
  }
  for (int x = 0; x < w; x++) f[x] = (float)(acc[x] * inv);
  for (int i = 1; i < h; i++) {
    const float *add = src + (size_t)idx[i + 2 * r + 1] * w, *sub = src + (size_t)idx[i] * w;
    float *out = f + (size_t)i * w;
    for (int x = 0; x < w; x++) {
      acc[x] += add[x] - sub[x];
      out[x] = (float)(acc[x] * inv);
    }
  }
}

ky_status ky_aug_smooth_field(float *f, int h, int w, float sigma) {
  KY_CHECK_NULL(f, "f");
  KY_CHECK(h > 0 && w > 0, KY_ERR_SHAPE, "ky_aug_smooth_field: field must be non-empty, got %dx%d", h, w);
  KY_CHECK(sigma >= 0 && isfinite(sigma), KY_ERR_ARG, "ky_aug_smooth_field: sigma must be >= 0, got %g", sigma);
  /* The boxes' radius is about sigma and the reflect table holds side + 2 radius + 2 entries: both
   * must fit in an int (a sigma that large smooths any field to its mean anyway). */
  KY_CHECK(sigma <= 1e7f && h <= INT_MAX / 2 && w <= INT_MAX / 2, KY_ERR_ARG,
           "ky_aug_smooth_field: sigma must be <= 1e7 and the sides <= INT_MAX / 2, got sigma %g on %dx%d",
           sigma, h, w);
  if (sigma < 0.5f) return KY_OK;
  /* Three boxes whose variances ((width^2 - 1) / 12 each) add up to sigma^2: m passes of odd width
   * wl and 3 - m of wl + 2 (Kovesi's choice), so the match is exact up to rounding m. */
  const int n = 3;
  double s2 = (double)sigma * sigma, ideal = sqrt(12.0 * s2 / n + 1.0);
  int wl = (int)floor(ideal);
  if (wl % 2 == 0) wl--;
  int m = ky_aug_iround((12.0 * s2 - n * wl * wl - 4.0 * n * wl - 3.0 * n) / (-4.0 * wl - 4.0));
  m = m < 0 ? 0 : m > n ? n : m;
  int rmax = (wl + 2) / 2, mx = h > w ? h : w;
  if (wl < 1) wl = 1;
  float *src = malloc((size_t)h * w * sizeof *src), *tmp = malloc((size_t)mx * sizeof *tmp);
  double *acc = malloc((size_t)w * sizeof *acc);
  /* calloc, not malloc: each pass fills idx[0 .. side + 2r] before the boxes read it, which the
   * static analyser cannot relate to their loops; zeroing mx + 2 rmax + 2 ints once costs nothing. */
  int *idx = calloc((size_t)(mx + 2 * rmax + 2), sizeof *idx);
  if (!src || !tmp || !acc || !idx) {
    free(src); free(tmp); free(acc); free(idx);
    return ky_error(KY_ERR_NOMEM, "ky_aug_smooth_field: no memory for a %dx%d field", h, w);
  }
  for (int pass = 0; pass < n; pass++) {
    int r = (pass < m ? wl : wl + 2) / 2;
    if (r < 1) continue;
    for (int k = 0; k < w + 2 * r + 1; k++) idx[k] = refl_half(k - r - 1, w);
    box_rows(f, h, w, r, idx, tmp);
    for (int k = 0; k < h + 2 * r + 1; k++) idx[k] = refl_half(k - r - 1, h);
    box_cols(f, h, w, r, idx, src, acc);
  }
  free(src); free(tmp); free(acc); free(idx);
  return KY_OK;
}

ky_status ky_aug_elastic_sample(double affine[6], float *dx, float *dy, int h, int w, float alpha,
                                float sigma, float alpha_affine, ky_rng *rng) {
  KY_CHECK_NULL(affine, "affine");
  KY_CHECK_NULL(rng, "rng");
  KY_CHECK(h > 0 && w > 0, KY_ERR_SHAPE, "ky_aug_elastic_sample: image must be non-empty, got %dx%d", h, w);
  KY_CHECK((dx == NULL) == (dy == NULL), KY_ERR_ARG, "ky_aug_elastic_sample: dx and dy must both be given or both NULL");
  /* The reference's points use (h // 2, w // 2) as (x, y) and min(h, w) // 3 as the half size. */
  double c0 = h / 2, c1 = w / 2, s = (h < w ? h : w) / 3;
  double p1[6] = {c0 + s, c1 + s, c0 + s, c1 - s, c0 - s, c1 - s}, p2[6];
  for (int i = 0; i < 6; i++) p2[i] = p1[i] + ky_rng_uniform_range(rng, -alpha_affine, alpha_affine);
  KY_TRY(ky_aug_affine_from_points(affine, p1, p2));
  if (!dx) return KY_OK;
  size_t n = (size_t)h * w;
  float *d[2] = {dx, dy};
  for (int k = 0; k < 2; k++) {
    ky_aug_fill_uniform(rng, d[k], n, -1.f, 1.f);
    KY_TRY(ky_aug_smooth_field(d[k], h, w, sigma));
    for (size_t i = 0; i < n; i++) d[k][i] *= alpha;
  }
  return KY_OK;
}

ky_status ky_aug_perspective(uint8_t *rgb, uint16_t *labels, int h, int w, const float quad[8]) {
  CHECK_ARGS(rgb, h, w);
  KY_CHECK_NULL(quad, "quad");
  double src[8], dst[8] = {0, 0, w - 1, 0, w - 1, h - 1, 0, h - 1}, m[9];
  for (int i = 0; i < 8; i++) src[i] = quad[i];
  KY_TRY(ky_aug_perspective_from_points(m, src, dst));
  return ky_aug_warp_perspective(rgb, labels, h, w, m);
}

/* A triangle of the moved mesh with its affine map back to the regular grid. */
typedef struct {
  double ax, ay, e1x, e1y, e2x, e2y, inv_det; /* barycentric setup on the moved points */
  double m[6];                                /* moved -> original */
} tri;

static int tri_make(tri *t, const double q[6], const double p[6]) {
  t->ax = q[0]; t->ay = q[1];
  t->e1x = q[2] - q[0]; t->e1y = q[3] - q[1];
  t->e2x = q[4] - q[0]; t->e2y = q[5] - q[1];
  double det = t->e1x * t->e2y - t->e1y * t->e2x;
  if (fabs(det) < 1e-9) return 0;
  t->inv_det = 1.0 / det;
  return ky_aug_affine_from_points(t->m, q, p) == KY_OK;
}

/* Smallest barycentric coordinate of (x, y): >= 0 inside. */
static double tri_inside(const tri *t, double x, double y) {
  double px = x - t->ax, py = y - t->ay;
  double b1 = (px * t->e2y - py * t->e2x) * t->inv_det, b2 = (t->e1x * py - t->e1y * px) * t->inv_det;
  double b0 = 1 - b1 - b2;
  double mn = b0 < b1 ? b0 : b1;
  return mn < b2 ? mn : b2;
}

ky_status ky_aug_piecewise_affine(uint8_t *rgb, uint16_t *labels, int h, int w, int rows, int cols,
                                  const float *jitter) {
  CHECK_ARGS(rgb, h, w);
  KY_CHECK_NULL(jitter, "jitter");
  KY_CHECK(rows >= 2 && cols >= 2 && rows <= 64 && cols <= 64, KY_ERR_ARG,
           "ky_aug_piecewise_affine: grid must be 2..64 x 2..64, got %dx%d", rows, cols);
  int nt = 2 * (rows - 1) * (cols - 1);
  tri *ts = malloc((size_t)nt * sizeof *ts);
  float *mx = NULL, *my = NULL;
  uint8_t *done = calloc((size_t)h * w, 1);
  if (!ts || !done || alloc_maps(&mx, &my, h, w, "ky_aug_piecewise_affine") != KY_OK) {
    free(ts); free(done);
    return ky_error(KY_ERR_NOMEM, "ky_aug_piecewise_affine: no memory for a %dx%d image", h, w);
  }
  ky_status st = KY_OK;
  int k = 0;
  for (int r = 0; r + 1 < rows && st == KY_OK; r++)
    for (int c = 0; c + 1 < cols; c++) {
      int id[4] = {r * cols + c, r * cols + c + 1, (r + 1) * cols + c + 1, (r + 1) * cols + c};
      double P[8], Q[8];
      for (int i = 0; i < 4; i++) {
        int rr = id[i] / cols, cc = id[i] % cols;
        P[2 * i] = (double)w * cc / (cols - 1);
        P[2 * i + 1] = (double)h * rr / (rows - 1);
        Q[2 * i] = P[2 * i] + jitter[2 * id[i]];
        Q[2 * i + 1] = P[2 * i + 1] + jitter[2 * id[i] + 1];
      }
      int tri_ids[2][3] = {{0, 1, 2}, {0, 2, 3}};
      for (int t = 0; t < 2; t++) {
        double q[6], p[6];
        for (int i = 0; i < 3; i++) {
          q[2 * i] = Q[2 * tri_ids[t][i]]; q[2 * i + 1] = Q[2 * tri_ids[t][i] + 1];
          p[2 * i] = P[2 * tri_ids[t][i]]; p[2 * i + 1] = P[2 * tri_ids[t][i] + 1];
        }
        if (!tri_make(&ts[k++], q, p)) {
          st = ky_error(KY_ERR_ARG, "ky_aug_piecewise_affine: jitter folds grid cell (%d, %d) flat", r, c);
          break;
        }
      }
      if (st != KY_OK) break;
    }
  if (st == KY_OK) {
    for (int t = 0; t < nt; t++) {
      const tri *T = &ts[t];
      double xs[3] = {T->ax, T->ax + T->e1x, T->ax + T->e2x}, ys[3] = {T->ay, T->ay + T->e1y, T->ay + T->e2y};
      int x0 = (int)floor(fmin(xs[0], fmin(xs[1], xs[2]))), x1 = (int)ceil(fmax(xs[0], fmax(xs[1], xs[2])));
      int y0 = (int)floor(fmin(ys[0], fmin(ys[1], ys[2]))), y1 = (int)ceil(fmax(ys[0], fmax(ys[1], ys[2])));
      x0 = x0 < 0 ? 0 : x0; y0 = y0 < 0 ? 0 : y0;
      x1 = x1 > w - 1 ? w - 1 : x1; y1 = y1 > h - 1 ? h - 1 : y1;
      for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
          size_t i = (size_t)y * w + x;
          if (done[i] || tri_inside(T, x, y) < -1e-9) continue;
          done[i] = 1;
          mx[i] = (float)(T->m[0] * x + T->m[1] * y + T->m[2]);
          my[i] = (float)(T->m[3] * x + T->m[4] * y + T->m[5]);
        }
    }
    /* Outside the moved mesh: extend the least-outside triangle's map. */
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++) {
        size_t i = (size_t)y * w + x;
        if (done[i]) continue;
        int best = 0;
        double bv = -1e300;
        for (int t = 0; t < nt; t++) {
          double v = tri_inside(&ts[t], x, y);
          if (v > bv) { bv = v; best = t; }
        }
        const double *m = ts[best].m;
        mx[i] = (float)(m[0] * x + m[1] * y + m[2]);
        my[i] = (float)(m[3] * x + m[4] * y + m[5]);
      }
    st = ky_aug_remap(rgb, labels, h, w, mx, my);
  }
  free(ts); free(done); free(mx); free(my);
  return st;
}

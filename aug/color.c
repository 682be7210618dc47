/* OpenCV-compatible 8-bit colour conversions (GRAY, LAB, HSV) and CLAHE, written from OpenCV's
 * documented formulas. Tested by tests/test_aug_color.c (parity with cv2 fixtures). */
#include "aug/color.h"
#include "aug/round.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_IMG(p, h, w)                                                                       \
  do {                                                                                           \
    KY_CHECK_NULL(p, #p);                                                                        \
    KY_CHECK((h) > 0 && (w) > 0, KY_ERR_SHAPE, "%s: image must be non-empty, got %dx%d", __func__, \
             (h), (w));                                                                          \
  } while (0)

static inline uint8_t sat_u8(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }
static inline uint8_t sat_u8f(float v) { return sat_u8(ky_aug_iroundf(v)); }

ky_status ky_aug_rgb_to_gray(uint8_t *gray, const uint8_t *rgb, int h, int w) {
  CHECK_IMG(gray, h, w);
  CHECK_IMG(rgb, h, w);
  size_t n = (size_t)h * w;
  for (size_t i = 0; i < n; i++) {
    const uint8_t *p = rgb + 3 * i;
    gray[i] = (uint8_t)((p[0] * 9798 + p[1] * 19235 + p[2] * 3735 + (1 << 14)) >> 15);
  }
  return KY_OK;
}

/* ---- LAB: the forward direction is OpenCV's fixed-point path (gamma LUT, 12-bit matrix,
 * cube-root LUT), the inverse is its float formula. */
enum { LAB_SHIFT = 12, GAMMA_SHIFT = 3, LAB_SHIFT2 = LAB_SHIFT + GAMMA_SHIFT, CBRT_TAB = 256 * 3 / 2 * (1 << GAMMA_SHIFT) };

/* Tables in double precision: OpenCV builds them with (exact) soft-float arithmetic. */
static double srgb_to_linear(double x) {
  return x <= 0.04045 ? x / 12.92 : pow((x + 0.055) / 1.055, 2.4);
}

typedef struct {
  uint16_t gamma[256];
  uint16_t cbrt[CBRT_TAB];
  int coef[9];
} lab_tabs;

static void lab_tabs_init(lab_tabs *t) {
  static const double m[9] = {0.412453, 0.357580, 0.180423, 0.212671, 0.715160,
                              0.072169, 0.019334, 0.119193, 0.950227};
  static const double white[3] = {0.950456, 1.0, 1.088754};
  for (int i = 0; i < 256; i++) {
    double v = 255.0 * (1 << GAMMA_SHIFT) * srgb_to_linear(i / 255.0);
    t->gamma[i] = (uint16_t)ky_aug_iround(v);
  }
  for (int i = 0; i < CBRT_TAB; i++) {
    double x = i / (255.0 * (1 << GAMMA_SHIFT));
    double f = x < 0.008856 ? x * 7.787 + 16.0 / 116.0 : cbrt(x);
    long v = ky_aug_iround((1 << LAB_SHIFT2) * f);
    t->cbrt[i] = (uint16_t)(v > 65535 ? 65535 : v);
  }
  for (int i = 0; i < 9; i++) t->coef[i] = ky_aug_iround((1 << LAB_SHIFT) * m[i] / white[i / 3]);
}

#define DESCALE(x, n) (((x) + (1 << ((n) - 1))) >> (n))

ky_status ky_aug_rgb_to_lab(uint8_t *lab, const uint8_t *rgb, int h, int w) {
  CHECK_IMG(lab, h, w);
  CHECK_IMG(rgb, h, w);
  lab_tabs *t = malloc(sizeof *t);
  if (!t) return ky_error(KY_ERR_NOMEM, "ky_aug_rgb_to_lab: no memory for tables");
  lab_tabs_init(t);
  const int *c = t->coef;
  const int lscale = (116 * 255 + 50) / 100, lshift = -((16 * 255 * (1 << LAB_SHIFT2) + 50) / 100);
  size_t n = (size_t)h * w;
  for (size_t i = 0; i < n; i++) {
    int R = t->gamma[rgb[3 * i]], G = t->gamma[rgb[3 * i + 1]], B = t->gamma[rgb[3 * i + 2]];
    int fx = t->cbrt[DESCALE(R * c[0] + G * c[1] + B * c[2], LAB_SHIFT)];
    int fy = t->cbrt[DESCALE(R * c[3] + G * c[4] + B * c[5], LAB_SHIFT)];
    int fz = t->cbrt[DESCALE(R * c[6] + G * c[7] + B * c[8], LAB_SHIFT)];
    int L = DESCALE(lscale * fy + lshift, LAB_SHIFT2);
    int a = DESCALE(500 * (fx - fy) + 128 * (1 << LAB_SHIFT2), LAB_SHIFT2);
    int b = DESCALE(200 * (fy - fz) + 128 * (1 << LAB_SHIFT2), LAB_SHIFT2);
    lab[3 * i] = sat_u8(L);
    lab[3 * i + 1] = sat_u8(a);
    lab[3 * i + 2] = sat_u8(b);
  }
  free(t);
  return KY_OK;
}

static float linear_to_srgb(float x) {
  x = x < 0.f ? 0.f : x > 1.f ? 1.f : x;
  return x <= 0.0031308f ? 12.92f * x : (float)(1.055 * pow(x, 1.0 / 2.4) - 0.055);
}

ky_status ky_aug_lab_to_rgb(uint8_t *rgb, const uint8_t *lab, int h, int w) {
  CHECK_IMG(lab, h, w);
  CHECK_IMG(rgb, h, w);
  const float m0 = 3.240479f, m1 = -1.53715f, m2 = -0.498535f, m3 = -0.969256f, m4 = 1.875991f,
              m5 = 0.041556f, m6 = 0.055648f, m7 = -0.204043f, m8 = 1.057311f;
  const float wx = 0.950456f, wz = 1.088754f;
  const float lthresh = 0.008856f * 903.3f, fthresh = 7.787f * 0.008856f + 16.f / 116.f;
  /* The inverse gamma is the only expensive step: tabulate it per 1/4096 of linear light. */
  enum { GT = 4096, CH = 256 };
  float *gt = malloc((GT + 2 + 3 * CH) * sizeof *gt);
  if (!gt) return ky_error(KY_ERR_NOMEM, "ky_aug_lab_to_rgb: no memory for tables");
  float *lin = gt + GT + 2; /* [CH, 3] linear RGB of a chunk */
  for (int i = 0; i <= GT + 1; i++) gt[i] = linear_to_srgb((float)i / GT);
  size_t n = (size_t)h * w;
  for (size_t i0 = 0; i0 < n; i0 += CH) {
    int m = n - i0 < CH ? (int)(n - i0) : CH;
    const uint8_t *src = lab + 3 * i0;
    /* Branch-free so that the chunk loop vectorises; same arithmetic as OpenCV's float path. */
    for (int k = 0; k < m; k++) {
      float li = src[3 * k] * (100.f / 255.f), ai = (float)(src[3 * k + 1] - 128), bi = (float)(src[3 * k + 2] - 128);
      float ylo = li / 903.3f, fylo = 7.787f * ylo + 16.f / 116.f;
      float fyhi = (li + 16.f) / 116.f, yhi = fyhi * fyhi * fyhi;
      int low = li <= lthresh;
      float y = low ? ylo : yhi, fy = low ? fylo : fyhi;
      float fx = ai / 500.f + fy, fz = fy - bi / 200.f;
      float x = fx <= fthresh ? (fx - 16.f / 116.f) / 7.787f : fx * fx * fx;
      float z = fz <= fthresh ? (fz - 16.f / 116.f) / 7.787f : fz * fz * fz;
      x *= wx;
      z *= wz;
      float r = m0 * x + m1 * y + m2 * z, g = m3 * x + m4 * y + m5 * z, b = m6 * x + m7 * y + m8 * z;
      lin[3 * k] = r < 0.f ? 0.f : r > 1.f ? 1.f : r;
      lin[3 * k + 1] = g < 0.f ? 0.f : g > 1.f ? 1.f : g;
      lin[3 * k + 2] = b < 0.f ? 0.f : b > 1.f ? 1.f : b;
    }
    uint8_t *dst = rgb + 3 * i0;
    for (int k = 0; k < 3 * m; k++) {
      float pos = lin[k] * GT;
      int j = (int)pos;
      float s = gt[j] + (gt[j + 1] - gt[j]) * (pos - (float)j);
      dst[k] = sat_u8f(s * 255.f);
    }
  }
  free(gt);
  return KY_OK;
}

/* ---- HSV (OpenCV 8-bit, H in 0..179). */
ky_status ky_aug_rgb_to_hsv(uint8_t *hsv, const uint8_t *rgb, int h, int w) {
  CHECK_IMG(hsv, h, w);
  CHECK_IMG(rgb, h, w);
  enum { SH = 12 };
  int sdiv[256], hdiv[256];
  sdiv[0] = hdiv[0] = 0;
  for (int i = 1; i < 256; i++) {
    sdiv[i] = ky_aug_iround((255 << SH) / (1. * i));
    hdiv[i] = ky_aug_iround((180 << SH) / (6. * i));
  }
  size_t n = (size_t)h * w;
  for (size_t i = 0; i < n; i++) {
    int r = rgb[3 * i], g = rgb[3 * i + 1], b = rgb[3 * i + 2];
    int v = b, vmin = b;
    if (g > v) v = g;
    if (r > v) v = r;
    if (g < vmin) vmin = g;
    if (r < vmin) vmin = r;
    int diff = v - vmin;
    int vr = v == r ? -1 : 0, vg = v == g ? -1 : 0;
    int s = (diff * sdiv[v] + (1 << (SH - 1))) >> SH;
    int hh = (vr & (g - b)) + (~vr & ((vg & (b - r + 2 * diff)) + ((~vg) & (r - g + 4 * diff))));
    hh = (hh * hdiv[diff] + (1 << (SH - 1))) >> SH;
    hh += hh < 0 ? 180 : 0;
    hsv[3 * i] = (uint8_t)hh;
    hsv[3 * i + 1] = (uint8_t)s;
    hsv[3 * i + 2] = (uint8_t)v;
  }
  return KY_OK;
}

ky_status ky_aug_hsv_to_rgb(uint8_t *rgb, const uint8_t *hsv, int h, int w) {
  CHECK_IMG(hsv, h, w);
  CHECK_IMG(rgb, h, w);
  size_t n = (size_t)h * w;
  /* OpenCV's sector table {b, g, r} = {1,3,0} {1,0,2} {3,0,1} {0,2,1} {0,1,3} {2,1,0} written as
   * selects (as its vector path does), so that the loop vectorises; s = 0 gives r = g = b = v. */
  for (size_t i = 0; i < n; i++) {
    float hh = hsv[3 * i] * (6.f / 180.f), s = hsv[3 * i + 1] * (1.f / 255.f), v = hsv[3 * i + 2] * (1.f / 255.f);
    hh = hh >= 6.f ? hh - 6.f : hh; /* H <= 255 wraps at most once */
    int sector = (int)hh;
    float f = hh - (float)sector;
    float t0 = v, t1 = v * (1.f - s), t2 = v * (1.f - s * f), t3 = v * (1.f - s * (1.f - f));
    float b = sector < 2 ? t1 : sector == 2 ? t3 : sector < 5 ? t0 : t2;
    float g = sector == 0 ? t3 : sector < 3 ? t0 : sector == 3 ? t2 : t1;
    float r = sector == 0 ? t0 : sector == 1 ? t2 : sector < 4 ? t1 : sector == 4 ? t3 : t0;
    /* OpenCV's vectorised 8-bit path (every pixel but a row's tail) truncates. */
    rgb[3 * i] = (uint8_t)(int)(r * 255.f);
    rgb[3 * i + 1] = (uint8_t)(int)(g * 255.f);
    rgb[3 * i + 2] = (uint8_t)(int)(b * 255.f);
  }
  return KY_OK;
}

/* ---- CLAHE */
static inline int reflect101(int i, int n) {
  if (n == 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * n - 2 - i;
  return i;
}

ky_status ky_aug_clahe_plane(uint8_t *plane, int h, int w, float clip, int tiles) {
  CHECK_IMG(plane, h, w);
  KY_CHECK(tiles >= 1 && tiles <= 64, KY_ERR_ARG, "ky_aug_clahe_plane: tiles must be in 1..64, got %d", tiles);
  KY_CHECK(clip >= 0.f && isfinite(clip), KY_ERR_ARG, "ky_aug_clahe_plane: clip must be >= 0, got %g", clip);
  KY_CHECK(h <= INT_MAX - tiles && w <= INT_MAX - tiles, KY_ERR_SHAPE,
           "ky_aug_clahe_plane: %dx%d image is too large for %d tiles (the padded side must fit in an int)",
           h, w, tiles);
  /* OpenCV pads bottom/right by tiles - (size % tiles) (reflect-101) when either side is not
   * divisible; a divisible side then grows by a whole `tiles` too. */
  int pad = h % tiles || w % tiles;
  int he = pad ? h + tiles - h % tiles : h, we = pad ? w + tiles - w % tiles : w;
  int th = he / tiles, tw = we / tiles;
  KY_ASSERT(th * tiles == he && tw * tiles == we);   /* so tile rows/columns stay inside rowmap/colmap */
  KY_ASSERT(he > 0 && we > 0);   /* h, w >= 1 and no overflow (checked above): the maps below are filled */
  KY_CHECK(th >= 1 && tw >= 1, KY_ERR_SHAPE, "ky_aug_clahe_plane: %dx%d image is too small for %d tiles", h, w, tiles);
  int total = th * tw;
  float lut_scale = 255.f / total;
  int limit = 0;
  if (clip > 0.f) {
    limit = (int)(clip * total / 256);
    if (limit < 1) limit = 1;
  }
  uint8_t *luts = malloc((size_t)tiles * tiles * 256);
  int *rowmap = malloc((size_t)(he + we) * sizeof *rowmap);
  float *xw = malloc((size_t)w * sizeof *xw);
  int *xi = malloc((size_t)w * 2 * sizeof *xi);
  if (!luts || !rowmap || !xw || !xi) {
    free(luts); free(rowmap); free(xw); free(xi);
    return ky_error(KY_ERR_NOMEM, "ky_aug_clahe_plane: no memory for %d tiles", tiles * tiles);
  }
  int *colmap = rowmap + he;
  for (int y = 0; y < he; y++) rowmap[y] = reflect101(y, h);
  for (int x = 0; x < we; x++) colmap[x] = reflect101(x, w);
  for (int ty = 0; ty < tiles; ty++) {
    for (int tx = 0; tx < tiles; tx++) {
      int hist[256] = {0};
      for (int y = ty * th; y < (ty + 1) * th; y++) {
        const uint8_t *row = plane + (size_t)rowmap[y] * w;
        for (int x = tx * tw; x < (tx + 1) * tw; x++) hist[row[colmap[x]]]++;
      }
      if (limit > 0) {
        int clipped = 0;
        for (int i = 0; i < 256; i++)
          if (hist[i] > limit) {
            clipped += hist[i] - limit;
            hist[i] = limit;
          }
        int batch = clipped / 256, residual = clipped - batch * 256;
        for (int i = 0; i < 256; i++) hist[i] += batch;
        if (residual) {
          int step = 256 / residual;
          if (step < 1) step = 1;
          for (int i = 0; i < 256 && residual > 0; i += step, residual--) hist[i]++;
        }
      }
      uint8_t *lut = luts + ((size_t)ty * tiles + tx) * 256;
      int sum = 0;
      for (int i = 0; i < 256; i++) {
        sum += hist[i];
        lut[i] = sat_u8f(sum * lut_scale);
      }
    }
  }
  float inv_tw = 1.f / tw, inv_th = 1.f / th;
  for (int x = 0; x < w; x++) {
    float txf = x * inv_tw - 0.5f;
    int tx1 = (int)floorf(txf), tx2 = tx1 + 1;
    xw[x] = txf - tx1;
    xi[2 * x] = tx1 < 0 ? 0 : tx1;
    xi[2 * x + 1] = tx2 > tiles - 1 ? tiles - 1 : tx2;
  }
  for (int y = 0; y < h; y++) {
    float tyf = y * inv_th - 0.5f;
    int ty1 = (int)floorf(tyf), ty2 = ty1 + 1;
    float ya = tyf - ty1, ya1 = 1.f - ya;
    ty1 = ty1 < 0 ? 0 : ty1;
    ty2 = ty2 > tiles - 1 ? tiles - 1 : ty2;
    const uint8_t *l1 = luts + (size_t)ty1 * tiles * 256, *l2 = luts + (size_t)ty2 * tiles * 256;
    uint8_t *row = plane + (size_t)y * w;
    for (int x = 0; x < w; x++) {
      int v = row[x];
      float xa = xw[x], xa1 = 1.f - xa;
      int a = xi[2 * x] * 256 + v, b = xi[2 * x + 1] * 256 + v;
      float res = (l1[a] * xa1 + l1[b] * xa) * ya1 + (l2[a] * xa1 + l2[b] * xa) * ya;
      row[x] = sat_u8f(res);
    }
  }
  free(luts); free(rowmap); free(xw); free(xi);
  return KY_OK;
}

ky_status ky_aug_clahe(uint8_t *rgb, int h, int w, float clip, int tiles) {
  CHECK_IMG(rgb, h, w);
  size_t n = (size_t)h * w;
  uint8_t *lab = malloc(n * 3), *L = malloc(n);
  if (!lab || !L) {
    free(lab); free(L);
    return ky_error(KY_ERR_NOMEM, "ky_aug_clahe: no memory for a %dx%d image", h, w);
  }
  ky_status s = ky_aug_rgb_to_lab(lab, rgb, h, w);
  if (s == KY_OK) {
    for (size_t i = 0; i < n; i++) L[i] = lab[3 * i];
    s = ky_aug_clahe_plane(L, h, w, clip, tiles);
  }
  if (s == KY_OK) {
    for (size_t i = 0; i < n; i++) lab[3 * i] = L[i];
    s = ky_aug_lab_to_rgb(rgb, lab, h, w);
  }
  free(lab); free(L);
  return s;
}

ky_status ky_aug_clahe_channel(uint8_t *out, const uint8_t *rgb, int h, int w) {
  CHECK_IMG(out, h, w);
  CHECK_IMG(rgb, h, w);
  size_t n = (size_t)h * w;
  uint8_t *lab = malloc(n * 3);
  if (!lab) return ky_error(KY_ERR_NOMEM, "ky_aug_clahe_channel: no memory for a %dx%d image", h, w);
  ky_status s = ky_aug_rgb_to_lab(lab, rgb, h, w);
  if (s == KY_OK)
    for (size_t i = 0; i < n; i++) out[i] = lab[3 * i];
  free(lab);
  KY_TRY(s);
  KY_TRY(ky_aug_clahe_plane(out, h, w, 2.f, 17));
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++) sum += out[i];
  if ((double)sum / n > 127.0)
    for (size_t i = 0; i < n; i++) out[i] = (uint8_t)(255 - out[i]);
  return KY_OK;
}

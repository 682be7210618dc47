/* Image-only augmentations (filters, noise, colour LUTs) with the reference's / OpenCV's rounding.
 * Tested by tests/test_aug_pixel.c. */
#include "aug/pixel.h"
#include "aug/round.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aug/color.h"
#include "aug/rngfill.h"

#define CHECK_ARGS(rgb, h, w)                                                                    \
  do {                                                                                           \
    KY_CHECK_NULL(rgb, "rgb");                                                                   \
    KY_CHECK((h) > 0 && (w) > 0, KY_ERR_SHAPE, "%s: image must be non-empty, got %dx%d", __func__, \
             (h), (w));                                                                          \
    KY_CHECK((h) <= PAD_MAX_SIDE && (w) <= PAD_MAX_SIDE, KY_ERR_SHAPE,                            \
             "%s: image sides must be <= %d, got %dx%d", __func__, PAD_MAX_SIDE, (h), (w));       \
  } while (0)
/* The padded copies below add up to 15 pixels a side (31x31 kernels): keep their sides in an int. */
#define PAD_MAX_SIDE (INT_MAX - 32)

static inline uint8_t sat_u8(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

static inline int refl(int i, int n) {
  if ((unsigned)i < (unsigned)n) return i; /* the common case: no division */
  if (n == 1) return 0;
  int p = 2 * n - 2;
  i %= p;
  if (i < 0) i += p;
  return i < n ? i : p - i;
}

/* Copies rgb into a (h + 2r) x (w + 2r) reflect-101 (or replicate) padded buffer. */
static uint8_t *pad_image(const uint8_t *rgb, int h, int w, int r, int replicate) {
  int pw = w + 2 * r, ph = h + 2 * r;
  uint8_t *p = malloc((size_t)ph * pw * 3);
  if (!p) return NULL;
  for (int y = 0; y < ph; y++) {
    int sy = y - r;
    sy = replicate ? (sy < 0 ? 0 : sy >= h ? h - 1 : sy) : refl(sy, h);
    const uint8_t *srow = rgb + (size_t)sy * w * 3;
    uint8_t *drow = p + (size_t)y * pw * 3;
    memcpy(drow + (size_t)r * 3, srow, (size_t)w * 3);
    for (int x = 0; x < r; x++) {
      int lx = replicate ? 0 : refl(x - r, w), rx = replicate ? w - 1 : refl(w + x, w);
      memcpy(drow + (size_t)x * 3, srow + (size_t)lx * 3, 3);
      memcpy(drow + (size_t)(r + w + x) * 3, srow + (size_t)rx * 3, 3);
    }
  }
  return p;
}

ky_status ky_aug_filter2d(uint8_t *rgb, int h, int w, const float *k, int kh, int kw) {
  CHECK_ARGS(rgb, h, w);
  KY_CHECK_NULL(k, "k");
  KY_CHECK(kh >= 1 && kw >= 1 && kh % 2 == 1 && kw % 2 == 1 && kh <= 31 && kw <= 31, KY_ERR_ARG,
           "ky_aug_filter2d: kernel must be odd-sized up to 31x31, got %dx%d", kh, kw);
  int r = (kh > kw ? kh : kw) / 2, pw = w + 2 * r;
  uint8_t *pad = pad_image(rgb, h, w, r, 0);
  float *acc = malloc((size_t)w * 3 * sizeof *acc);
  if (!pad || !acc) {
    free(pad); free(acc);
    return ky_error(KY_ERR_NOMEM, "ky_aug_filter2d: no memory for a %dx%d image", h, w);
  }
  for (int y = 0; y < h; y++) {
    memset(acc, 0, (size_t)w * 3 * sizeof *acc);
    /* Only non-zero taps: a motion-blur line has at most k of its k*k entries set. */
    for (int i = 0; i < kh; i++)
      for (int j = 0; j < kw; j++) {
        float kv = k[i * kw + j];
        if (kv == 0.f) continue;
        const uint8_t *src = pad + ((size_t)(y + r + i - kh / 2) * pw + (r + j - kw / 2)) * 3;
        for (int t = 0; t < w * 3; t++) acc[t] += kv * src[t];
      }
    uint8_t *out = rgb + (size_t)y * w * 3;
    for (int t = 0; t < w * 3; t++) out[t] = sat_u8(ky_aug_iroundf(acc[t]));
  }
  free(pad); free(acc);
  return KY_OK;
}

ky_status ky_aug_sharpen(uint8_t *rgb, int h, int w, float alpha, float lightness) {
  CHECK_ARGS(rgb, h, w);
  KY_CHECK(alpha >= 0 && alpha <= 1, KY_ERR_ARG, "ky_aug_sharpen: alpha must be in [0, 1], got %g", alpha);
  float k[9];
  for (int i = 0; i < 9; i++) k[i] = -alpha;
  k[4] = (1 - alpha) + alpha * (8 + lightness);
  return ky_aug_filter2d(rgb, h, w, k, 3, 3);
}

ky_status ky_aug_emboss(uint8_t *rgb, int h, int w, float alpha, float strength) {
  CHECK_ARGS(rgb, h, w);
  KY_CHECK(alpha >= 0 && alpha <= 1, KY_ERR_ARG, "ky_aug_emboss: alpha must be in [0, 1], got %g", alpha);
  float s = strength;
  float e[9] = {-1 - s, -s, 0, -s, 1, s, 0, s, 1 + s};
  float k[9];
  for (int i = 0; i < 9; i++) k[i] = alpha * e[i] + (i == 4 ? 1 - alpha : 0);
  return ky_aug_filter2d(rgb, h, w, k, 3, 3);
}

ky_status ky_aug_motion_kernel(float *kernel, int k, int x0, int y0, int x1, int y1) {
  KY_CHECK_NULL(kernel, "kernel");
  KY_CHECK(k >= 1 && k <= 31 && k % 2 == 1, KY_ERR_ARG, "ky_aug_motion_kernel: k must be odd in 1..31, got %d", k);
  KY_CHECK(x0 >= 0 && x0 < k && y0 >= 0 && y0 < k && x1 >= 0 && x1 < k && y1 >= 0 && y1 < k, KY_ERR_ARG,
           "ky_aug_motion_kernel: line (%d,%d)-(%d,%d) leaves the %dx%d kernel", x0, y0, x1, y1, k, k);
  memset(kernel, 0, (size_t)k * k * sizeof *kernel);
  /* cv2.line's 8-connected iterator: drawn left to right; one pixel per major-axis step, a minor
   * step whenever the error term is negative before the update. */
  if (x1 < x0) {
    int t = x0; x0 = x1; x1 = t;
    t = y0; y0 = y1; y1 = t;
  }
  int dx = x1 - x0, dy = abs(y1 - y0), sy = y1 < y0 ? -1 : 1;
  int ymajor = dy > dx, A = ymajor ? dy : dx, B = ymajor ? dx : dy;
  int err = A - 2 * B, n = A + 1;
  for (int i = 0, x = x0, y = y0; i <= A; i++) {
    kernel[y * k + x] = 1.f;
    int minor = err < 0;
    err += -2 * B + (minor ? 2 * A : 0);
    if (ymajor) { y += sy; x += minor; }
    else { x += 1; y += minor ? sy : 0; }
  }
  for (int i = 0; i < k * k; i++) kernel[i] /= (float)n;
  return KY_OK;
}

ky_status ky_aug_motion_blur(uint8_t *rgb, int h, int w, const float *kernel, int k) {
  return ky_aug_filter2d(rgb, h, w, kernel, k, k);
}

/* One compare-exchange of the median network, on locals so that the loop over a row vectorises. */
#define SORT2(a, b)                    \
  do {                                 \
    uint8_t lo_ = (a) < (b) ? (a) : (b); \
    (b) = (a) < (b) ? (b) : (a);       \
    (a) = lo_;                         \
  } while (0)

ky_status ky_aug_median3(uint8_t *rgb, int h, int w) {
  CHECK_ARGS(rgb, h, w);
  uint8_t *pad = pad_image(rgb, h, w, 1, 1);
  if (!pad) return ky_error(KY_ERR_NOMEM, "ky_aug_median3: no memory for a %dx%d image", h, w);
  size_t pw3 = ((size_t)w + 2) * 3;
  for (int y = 0; y < h; y++) {
    const uint8_t *r0 = pad + (size_t)y * pw3, *r1 = r0 + pw3, *r2 = r1 + pw3;
    uint8_t *out = rgb + (size_t)y * w * 3;
    /* Interleaved values: the neighbours of value t of the row are t, t + 3, t + 6 (same channel). */
    for (int t = 0; t < w * 3; t++) {
      uint8_t p0 = r0[t], p1 = r0[t + 3], p2 = r0[t + 6], p3 = r1[t], p4 = r1[t + 3], p5 = r1[t + 6];
      uint8_t p6 = r2[t], p7 = r2[t + 3], p8 = r2[t + 6];
      /* Median of 9 by the classic 19-exchange network. */
      SORT2(p1, p2); SORT2(p4, p5); SORT2(p7, p8);
      SORT2(p0, p1); SORT2(p3, p4); SORT2(p6, p7);
      SORT2(p1, p2); SORT2(p4, p5); SORT2(p7, p8);
      SORT2(p0, p3); SORT2(p5, p8); SORT2(p4, p7);
      SORT2(p3, p6); SORT2(p1, p4); SORT2(p2, p5);
      SORT2(p4, p7); SORT2(p4, p2); SORT2(p6, p4);
      SORT2(p4, p2);
      out[t] = p4;
    }
  }
  free(pad);
  return KY_OK;
}

ky_status ky_aug_box3(uint8_t *rgb, int h, int w) {
  CHECK_ARGS(rgb, h, w);
  uint8_t *pad = pad_image(rgb, h, w, 1, 0);
  if (!pad) return ky_error(KY_ERR_NOMEM, "ky_aug_box3: no memory for a %dx%d image", h, w);
  size_t pw = (size_t)w + 2;
  for (int y = 0; y < h; y++)
    for (int t = 0; t < w * 3; t++) {
      const uint8_t *p = pad + (size_t)y * pw * 3 + t;
      int s = p[0] + p[3] + p[6] + p[pw * 3] + p[pw * 3 + 3] + p[pw * 3 + 6] + p[pw * 6] + p[pw * 6 + 3] + p[pw * 6 + 6];
      rgb[(size_t)y * w * 3 + t] = (uint8_t)((2 * s + 9) / 18); /* round(s / 9); never a tie */
    }
  free(pad);
  return KY_OK;
}

ky_status ky_aug_additive_gaussian_noise(uint8_t *rgb, int h, int w, float sigma, ky_rng *rng) {
  CHECK_ARGS(rgb, h, w);
  KY_CHECK_NULL(rng, "rng");
  KY_CHECK(sigma >= 0 && isfinite(sigma), KY_ERR_ARG, "ky_aug_additive_gaussian_noise: sigma must be >= 0, got %g", sigma);
  size_t n = (size_t)h * w;
  float *z = malloc(n * sizeof *z);
  if (!z) return ky_error(KY_ERR_NOMEM, "ky_aug_additive_gaussian_noise: no memory");
  ky_status s = ky_aug_fill_normal(z, n, rng);
  if (s == KY_OK)
    for (size_t i = 0; i < n; i++) {
      float d = z[i] * sigma;
      for (int c = 0; c < 3; c++) rgb[3 * i + c] = sat_u8(ky_aug_iroundf(rgb[3 * i + c] + d));
    }
  free(z);
  return s;
}

static uint8_t image_max(const uint8_t *rgb, size_t n) {
  uint8_t m = 0;
  for (size_t i = 0; i < n; i++) m = rgb[i] > m ? rgb[i] : m;
  return m;
}

ky_status ky_aug_gauss_noise(uint8_t *rgb, int h, int w, float var, ky_rng *rng) {
  CHECK_ARGS(rgb, h, w);
  KY_CHECK_NULL(rng, "rng");
  KY_CHECK(var >= 0 && isfinite(var), KY_ERR_ARG, "ky_aug_gauss_noise: var must be >= 0, got %g", var);
  size_t n = (size_t)h * w * 3;
  float *z = malloc(n * sizeof *z);
  if (!z) return ky_error(KY_ERR_NOMEM, "ky_aug_gauss_noise: no memory");
  ky_status s = ky_aug_fill_normal(z, n, rng);
  if (s == KY_OK) {
    /* N(var, sqrt(var)) - its minimum: the mean cancels, only the spread matters. */
    float sd = sqrtf(var), zmin = z[0];
    for (size_t i = 1; i < n; i++) zmin = z[i] < zmin ? z[i] : zmin;
    int mx = image_max(rgb, n);
    for (size_t i = 0; i < n; i++) {
      float g = (z[i] - zmin) * sd;
      int gi = g >= 255.f ? 255 : (int)g; /* numpy astype(uint8) of a small positive float */
      int v = rgb[i] + gi;
      rgb[i] = (uint8_t)(v > mx ? mx : v);
    }
  }
  free(z);
  return s;
}

ky_status ky_aug_to_gray(uint8_t *rgb, int h, int w) {
  CHECK_ARGS(rgb, h, w);
  size_t n = (size_t)h * w;
  uint8_t *g = malloc(n);
  if (!g) return ky_error(KY_ERR_NOMEM, "ky_aug_to_gray: no memory");
  ky_aug_rgb_to_gray(g, rgb, h, w);
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++) sum += g[i];
  int inv = (double)sum / n > 127.0;
  for (size_t i = 0; i < n; i++) {
    uint8_t v = inv ? (uint8_t)(255 - g[i]) : g[i];
    rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = v;
  }
  free(g);
  return KY_OK;
}

ky_status ky_aug_invert(uint8_t *rgb, int h, int w) {
  CHECK_ARGS(rgb, h, w);
  size_t n = (size_t)h * w * 3;
  for (size_t i = 0; i < n; i++) rgb[i] = (uint8_t)(255 - rgb[i]);
  return KY_OK;
}

/* np.linspace(a, b, n).astype(np.uint8) appended at lut[*pos]. */
static void linspace_u8(uint8_t *lut, int *pos, double a, double b, int n) {
  for (int i = 0; i < n && *pos < 256; i++) {
    double v = n == 1 ? a : a + (b - a) * i / (n - 1);
    if (i == n - 1 && n > 1) v = b;
    lut[(*pos)++] = (uint8_t)(int)v;
  }
}

ky_status ky_aug_remap_color(uint8_t *rgb, int h, int w, const uint8_t bg[3], const uint8_t center[3],
                             const uint8_t nmax[3]) {
  CHECK_ARGS(rgb, h, w);
  KY_CHECK(bg && center && nmax, KY_ERR_ARG, "ky_aug_remap_color: bg, center and nmax must be given");
  size_t n = (size_t)h * w;
  uint8_t *g = malloc(n);
  if (!g) return ky_error(KY_ERR_NOMEM, "ky_aug_remap_color: no memory");
  ky_aug_rgb_to_gray(g, rgb, h, w);
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++) sum += g[i];
  free(g);
  if ((double)sum / n > 100.0) return KY_OK;
  int ma = image_max(rgb, n * 3), th = ma / 2, range2 = ma - th;
  uint8_t lut[3][256];
  for (int c = 0; c < 3; c++) {
    int pos = 0;
    linspace_u8(lut[c], &pos, bg[c] - 10, center[c] - 10, th);
    linspace_u8(lut[c], &pos, center[c] - 10, nmax[c] + 10, range2);
    while (pos < 256) lut[c][pos++] = (uint8_t)(nmax[c] + 10);
  }
  for (size_t i = 0; i < n; i++)
    for (int c = 0; c < 3; c++) rgb[3 * i + c] = lut[c][rgb[3 * i + c]];
  return KY_OK;
}

/* clip(v, 0, mx).astype(uint8) */
static inline uint8_t clip_trunc(float v, int mx) {
  if (!(v > 0.f)) return 0;
  if (v >= (float)mx) return (uint8_t)mx;
  return (uint8_t)(int)v;
}

ky_status ky_aug_contrast(uint8_t *rgb, int h, int w, float alpha) {
  CHECK_ARGS(rgb, h, w);
  KY_CHECK(isfinite(alpha), KY_ERR_ARG, "ky_aug_contrast: alpha must be finite");
  size_t n = (size_t)h * w;
  uint8_t *g = malloc(n);
  if (!g) return ky_error(KY_ERR_NOMEM, "ky_aug_contrast: no memory");
  ky_aug_rgb_to_gray(g, rgb, h, w);
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++) sum += g[i];
  free(g);
  float off = (float)(3.0 * (1.0 - alpha) / n * (double)sum);
  int mx = image_max(rgb, n * 3);
  uint8_t lut[256]; /* the result depends on the value only */
  for (int v = 0; v < 256; v++) lut[v] = clip_trunc(alpha * v + off, mx);
  for (size_t i = 0; i < n * 3; i++) rgb[i] = lut[rgb[i]];
  return KY_OK;
}

ky_status ky_aug_brightness(uint8_t *rgb, int h, int w, float alpha) {
  CHECK_ARGS(rgb, h, w);
  KY_CHECK(isfinite(alpha), KY_ERR_ARG, "ky_aug_brightness: alpha must be finite");
  size_t n = (size_t)h * w * 3;
  int mx = image_max(rgb, n);
  uint8_t lut[256];
  for (int v = 0; v < 256; v++) lut[v] = clip_trunc(alpha * v, mx);
  for (size_t i = 0; i < n; i++) rgb[i] = lut[rgb[i]];
  return KY_OK;
}

ky_status ky_aug_hsv_shift(uint8_t *rgb, int h, int w, float dh, float ds, float dv) {
  CHECK_ARGS(rgb, h, w);
  KY_CHECK(isfinite(dh) && isfinite(ds) && isfinite(dv), KY_ERR_ARG, "ky_aug_hsv_shift: shifts must be finite");
  int ih = ky_aug_iroundf(dh), is = ky_aug_iroundf(ds), iv = ky_aug_iroundf(dv);
  /* The reference mirrored negative hues (h < 0 -> -h); a shift is a rotation of the hue circle. */
  ih = ((ih % 180) + 180) % 180;
  uint8_t lh[256], ls[256], lv[256];
  for (int i = 0; i < 256; i++) {
    lh[i] = (uint8_t)((i + ih) % 180);
    ls[i] = sat_u8(i + is);
    lv[i] = sat_u8(i + iv);
  }
  KY_TRY(ky_aug_rgb_to_hsv(rgb, rgb, h, w));
  size_t n = (size_t)h * w;
  for (size_t i = 0; i < n; i++) {
    rgb[3 * i] = lh[rgb[3 * i]];
    rgb[3 * i + 1] = ls[rgb[3 * i + 1]];
    rgb[3 * i + 2] = lv[rgb[3 * i + 2]];
  }
  return ky_aug_hsv_to_rgb(rgb, rgb, h, w);
}

ky_status ky_aug_channel_shuffle(uint8_t *rgb, int h, int w, const int perm[3]) {
  CHECK_ARGS(rgb, h, w);
  KY_CHECK_NULL(perm, "perm");
  KY_CHECK(perm[0] >= 0 && perm[0] < 3 && perm[1] >= 0 && perm[1] < 3 && perm[2] >= 0 && perm[2] < 3 &&
               perm[0] != perm[1] && perm[1] != perm[2] && perm[0] != perm[2],
           KY_ERR_ARG, "ky_aug_channel_shuffle: perm must be a permutation of 0,1,2, got %d,%d,%d",
           perm[0], perm[1], perm[2]);
  size_t n = (size_t)h * w;
  for (size_t i = 0; i < n; i++) {
    uint8_t t[3] = {rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]};
    for (int c = 0; c < 3; c++) rgb[3 * i + c] = t[perm[c]];
  }
  return KY_OK;
}

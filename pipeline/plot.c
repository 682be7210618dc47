/* Overlay and loss-curve rasterisation (no font or plotting library: lines, dots and a 3x5 digit
 * font are enough to read a curve). Tested by tests/test_pipeline_plot.c. */
#include "pipeline/plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/image.h"

static void id_colour(uint8_t c[3], unsigned id) {
  /* Well-spread hues from a multiplicative hash, full saturation, bright. */
  unsigned x = id * 2654435761u;
  float hue = (float)(x >> 8 & 0xffff) / 65536.0f * 6.0f;
  int i = (int)hue;
  float f = hue - (float)i;
  float v[6][3] = {{1, f, 0}, {1 - f, 1, 0}, {0, 1, f}, {0, 1 - f, 1}, {f, 0, 1}, {1, 0, 1 - f}};
  for (int k = 0; k < 3; k++) c[k] = (uint8_t)(55 + 200 * v[i % 6][k]);
}

void ky_plot_overlay(uint8_t *out, const uint8_t *rgb, const uint16_t *labels, int h, int w) {
  memcpy(out, rgb, (size_t)h * w * 3);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      uint16_t l = labels[(size_t)y * w + x];
      if (!l) continue;
      int edge = (y == 0 || labels[(size_t)(y - 1) * w + x] != l) || (y == h - 1 || labels[(size_t)(y + 1) * w + x] != l) ||
                 (x == 0 || labels[(size_t)y * w + x - 1] != l) || (x == w - 1 || labels[(size_t)y * w + x + 1] != l);
      if (edge) id_colour(out + ((size_t)y * w + x) * 3, l);
    }
}

ky_status ky_plot_overlay_png(const char *path, const uint8_t *rgb, const uint16_t *labels, int h, int w) {
  KY_CHECK(path && rgb && labels && h > 0 && w > 0, KY_ERR_ARG, "overlay: bad arguments");
  uint8_t *o = malloc((size_t)h * w * 3);
  if (!o) return ky_error(KY_ERR_NOMEM, "overlay %s: out of memory", path);
  ky_plot_overlay(o, rgb, labels, h, w);
  ky_status s = ky_png_save_u8(path, o, w, h, 3);
  free(o);
  return s;
}

/* ---- curve ---------------------------------------------------------------------------------- */
typedef struct { uint8_t *px; int W, H; } canvas;

static void put(canvas *c, int x, int y, const uint8_t col[3]) {
  if (x < 0 || y < 0 || x >= c->W || y >= c->H) return;
  memcpy(c->px + ((size_t)y * c->W + x) * 3, col, 3);
}

static void line(canvas *c, int x0, int y0, int x1, int y1, const uint8_t col[3]) {
  int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, err = dx + dy;
  for (;;) {
    put(c, x0, y0, col);
    if (x0 == x1 && y0 == y1) break;
    int e2 = 2 * err;
    if (e2 >= dy) { err += dy; x0 += sx; }
    if (e2 <= dx) { err += dx; y0 += sy; }
  }
}

/* 3x5 glyphs for "0123456789.e-", one 15-bit row-major mask each. */
static const char glyph_chars[] = "0123456789.e-";
static const uint16_t glyphs[] = {0x7B6F, 0x2C97, 0x73E7, 0x73CF, 0x5BC9, 0x79CF, 0x79EF, 0x7249, 0x7BEF, 0x7BCF,
                                  0x0002, 0x03E6, 0x01C0};

static void text(canvas *c, int x, int y, const char *s, const uint8_t col[3]) {
  for (; *s; s++, x += 8) {   /* glyphs are drawn 2x: 6 px wide plus a 2 px gap */
    const char *g = strchr(glyph_chars, *s);
    if (!g) continue;
    uint16_t m = glyphs[g - glyph_chars];
    for (int r = 0; r < 5; r++)
      for (int q = 0; q < 3; q++)
        if (m >> (14 - (r * 3 + q)) & 1) { put(c, x + 2 * q, y + 2 * r, col); put(c, x + 2 * q + 1, y + 2 * r, col);
                                           put(c, x + 2 * q, y + 2 * r + 1, col); put(c, x + 2 * q + 1, y + 2 * r + 1, col); }
  }
}

ky_status ky_plot_curve_png(const char *path, const float *train, const int *train_it, int n_train,
                            const float *val, const int *val_it, int n_val, int W, int H) {
  KY_CHECK(path && W >= 120 && H >= 80, KY_ERR_ARG, "curve: bad size %dx%d", W, H);
  KY_CHECK(n_train >= 0 && n_val >= 0 && (!n_train || (train && train_it)) && (!n_val || (val && val_it)), KY_ERR_ARG,
           "curve: bad series");
  canvas c = {malloc((size_t)W * H * 3), W, H};
  if (!c.px) return ky_error(KY_ERR_NOMEM, "curve %s: out of memory", path);
  memset(c.px, 255, (size_t)W * H * 3);
  static const uint8_t black[3] = {0, 0, 0}, blue[3] = {31, 90, 200}, red[3] = {220, 40, 40}, grey[3] = {210, 210, 210};
  int L = 60, R = W - 15, T = 15, B = H - 30;
  double ymax = 0;
  int xmax = 1;
  for (int i = 0; i < n_train; i++) if (isfinite(train[i])) { ymax = fmax(ymax, train[i]); if (train_it[i] > xmax) xmax = train_it[i]; }
  for (int i = 0; i < n_val; i++) if (isfinite(val[i])) { ymax = fmax(ymax, val[i]); if (val_it[i] > xmax) xmax = val_it[i]; }
  if (ymax <= 0) ymax = 1;
  for (int k = 1; k <= 4; k++) line(&c, L, B - (B - T) * k / 4, R, B - (B - T) * k / 4, grey);
  line(&c, L, T, L, B, black);
  line(&c, L, B, R, B, black);
  char lab[32];
  snprintf(lab, sizeof lab, "%.3g", ymax);
  text(&c, 4, T - 4, lab, black);
  text(&c, 4, (T + B) / 2 - 4, (snprintf(lab, sizeof lab, "%.3g", ymax / 2), lab), black);
  text(&c, 4, B - 4, "0", black);
  snprintf(lab, sizeof lab, "%d", xmax);
  text(&c, R - 8 * (int)strlen(lab), B + 8, lab, black);
  text(&c, L, B + 8, "0", black);
#define PX(it) (L + (int)((double)(R - L) * (it) / xmax))
#define PY(v) (B - (int)((double)(B - T) * fmin((v), ymax) / ymax))
  for (int i = 1; i < n_train; i++)
    if (isfinite(train[i - 1]) && isfinite(train[i]))
      line(&c, PX(train_it[i - 1]), PY(train[i - 1]), PX(train_it[i]), PY(train[i]), blue);
  for (int i = 0; i < n_val; i++) {
    if (!isfinite(val[i])) continue;
    int x = PX(val_it[i]), y = PY(val[i]);
    for (int dy = -3; dy <= 3; dy++)
      for (int dx = -3; dx <= 3; dx++) if (dx * dx + dy * dy <= 9) put(&c, x + dx, y + dy, red);
    if (i) line(&c, PX(val_it[i - 1]), PY(val[i - 1]), x, y, red);
  }
#undef PX
#undef PY
  /* Legend: blue = train, red = validation. */
  line(&c, R - 60, T + 6, R - 40, T + 6, blue);
  for (int dy = -3; dy <= 3; dy++) for (int dx = -3; dx <= 3; dx++) if (dx * dx + dy * dy <= 9) put(&c, R - 50 + dx, T + 18 + dy, red);
  ky_status s = ky_png_save_u8(path, c.px, W, H, 3);
  free(c.px);
  return s;
}

/* Instance overlays: boundary pixels painted in per-id colours. Tested by tests/test_pipeline_plot.c. */
#include "pipeline/plot.h"

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

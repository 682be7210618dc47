/* CPU reference pooling: max pooling with argmax (PyTorch tie and NaN rules) and global average.
 * Tested by tests/test_ops_kernels.c (ties, padding, accumulation) and tests/test_parity_ops.c
 * (torch max_pool2d 3/2/1 fixture). */
#include <math.h>

#include "ops/kernels.h"

/* Channels are the inner loop (NHWC), in blocks of CB kept on the stack: each window pixel is one
 * contiguous read of CB values. */
void ky_cpu_maxpool_fwd(float *y, int32_t *argmax, const float *x, const ky_pool_shape *s) {
  enum { CB = 64 };
  size_t c = (size_t)s->c, plane = (size_t)s->h * s->w;
  float best[CB];
  int32_t best_i[CB];
  for (int n = 0; n < s->n; n++) {
    const float *xn = x + (size_t)n * plane * c;
    for (int oy = 0; oy < s->oh; oy++) {
      int y0 = oy * s->stride - s->pad, y1 = y0 + s->k;
      if (y0 < 0) y0 = 0;
      if (y1 > s->h) y1 = s->h;
      for (int ox = 0; ox < s->ow; ox++) {
        int x0 = ox * s->stride - s->pad, x1 = x0 + s->k;
        if (x0 < 0) x0 = 0;
        if (x1 > s->w) x1 = s->w;
        size_t o = (((size_t)n * s->oh + oy) * s->ow + ox) * c;
        for (size_t c0 = 0; c0 < c; c0 += CB) {
          size_t cb = c - c0 < CB ? c - c0 : CB;
          /* First window element wins ties; a NaN wins over numbers (the last NaN, as PyTorch). */
          for (size_t j = 0; j < cb; j++) {
            best[j] = -INFINITY;
            best_i[j] = (int32_t)(y0 * s->w + x0);
          }
          for (int iy = y0; iy < y1; iy++)
            for (int ix = x0; ix < x1; ix++) {
              int32_t i = (int32_t)(iy * s->w + ix);
              const float *xp = xn + (size_t)i * c + c0;
              for (size_t j = 0; j < cb; j++) {
                float v = xp[j];
                int take = v > best[j] || v != v; /* v != v: NaN */
                best[j] = take ? v : best[j];
                best_i[j] = take ? i : best_i[j];
              }
            }
          for (size_t j = 0; j < cb; j++) {
            y[o + c0 + j] = best[j];
            argmax[o + c0 + j] = best_i[j];
          }
        }
      }
    }
  }
}

void ky_cpu_maxpool_bwd(float *dx, const float *dy, const int32_t *argmax, const ky_pool_shape *s) {
  size_t c = (size_t)s->c, plane = (size_t)s->h * s->w, opix = (size_t)s->oh * s->ow;
  for (int n = 0; n < s->n; n++) {
    float *dxn = dx + (size_t)n * plane * c;
    const float *dyn = dy + (size_t)n * opix * c;
    const int32_t *an = argmax + (size_t)n * opix * c;
    for (size_t p = 0; p < opix; p++)
      for (size_t ch = 0; ch < c; ch++) dxn[(size_t)an[p * c + ch] * c + ch] += dyn[p * c + ch];
  }
}

void ky_cpu_gap_fwd(float *y, const float *x, int n, int hw, int c) {
  enum { CB = 64 };
  double acc[CB];
  for (int i = 0; i < n; i++) {
    const float *xn = x + (size_t)i * hw * c;
    for (int c0 = 0; c0 < c; c0 += CB) {
      int cb = c - c0 < CB ? c - c0 : CB;
      for (int j = 0; j < cb; j++) acc[j] = 0.0;
      for (int p = 0; p < hw; p++)
        for (int j = 0; j < cb; j++) acc[j] += xn[(size_t)p * c + c0 + j];
      for (int j = 0; j < cb; j++) y[(size_t)i * c + c0 + j] = (float)(acc[j] / hw);
    }
  }
}

void ky_cpu_gap_bwd(float *dx, const float *dy, int n, int hw, int c) {
  for (int i = 0; i < n; i++)
    for (int p = 0; p < hw; p++) {
      float *o = dx + ((size_t)i * hw + p) * c;
      const float *g = dy + (size_t)i * c;
      for (int j = 0; j < c; j++) o[j] += g[j] / (float)hw;
    }
}

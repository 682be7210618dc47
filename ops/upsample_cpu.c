/* CPU reference upsampling over NHWC: nearest by an integer factor, bilinear x2 with PyTorch's
 * align_corners=False rule. Tested by tests/test_ops_kernels.c (hand-computed values, accumulation)
 * and tests/test_parity_ops.c (torch interpolate fixtures, forward and backward). */
#include "ops/kernels.h"

void ky_cpu_upsample_nearest_fwd(float *y, const float *x, int n, int h, int w, int c, int f) {
  int oh = h * f, ow = w * f;
  for (int i = 0; i < n; i++)
    for (int oy = 0; oy < oh; oy++)
      for (int ox = 0; ox < ow; ox++) {
        const float *s = x + (((size_t)i * h + oy / f) * w + ox / f) * c;
        float *d = y + (((size_t)i * oh + oy) * ow + ox) * c;
        for (int j = 0; j < c; j++) d[j] = s[j];
      }
}

/* Each input pixel gathers its f x f block of output gradients in row-major order, channels in
 * blocks of CB on the stack (contiguous reads), then adds the sum to dx. */
void ky_cpu_upsample_nearest_bwd(float *dx, const float *dy, int n, int h, int w, int c, int f) {
  enum { CB = 64 };
  float acc[CB];
  int oh = h * f, ow = w * f;
  for (int i = 0; i < n; i++)
    for (int iy = 0; iy < h; iy++)
      for (int ix = 0; ix < w; ix++) {
        float *d = dx + (((size_t)i * h + iy) * w + ix) * c;
        for (int c0 = 0; c0 < c; c0 += CB) {
          int cb = c - c0 < CB ? c - c0 : CB;
          for (int j = 0; j < cb; j++) acc[j] = 0.0f;
          for (int a = 0; a < f; a++)
            for (int b = 0; b < f; b++) {
              const float *g = dy + (((size_t)i * oh + iy * f + a) * ow + ix * f + b) * c + c0;
              for (int j = 0; j < cb; j++) acc[j] += g[j];
            }
          for (int j = 0; j < cb; j++) d[c0 + j] += acc[j];
        }
      }
}

/* Source taps of output index o along an axis of length len (PyTorch, align_corners=False, scale
 * 1/2): src = max(0, (o + 0.5) / 2 - 0.5); i0 = floor(src), i1 = min(i0 + 1, len - 1). */
static void bilinear_taps(int o, int len, int *i0, int *i1, float *l0, float *l1) {
  float src = 0.5f * (o + 0.5f) - 0.5f;
  if (src < 0.0f) src = 0.0f;
  int a = (int)src;
  *i0 = a;
  *i1 = a < len - 1 ? a + 1 : a;
  *l1 = src - (float)a;
  *l0 = 1.0f - *l1;
}

void ky_cpu_upsample_bilinear2_fwd(float *y, const float *x, int n, int h, int w, int c) {
  int oh = 2 * h, ow = 2 * w;
  for (int i = 0; i < n; i++) {
    const float *xn = x + (size_t)i * h * w * c;
    for (int oy = 0; oy < oh; oy++) {
      int y0, y1;
      float ly0, ly1;
      bilinear_taps(oy, h, &y0, &y1, &ly0, &ly1);
      for (int ox = 0; ox < ow; ox++) {
        int x0, x1;
        float lx0, lx1;
        bilinear_taps(ox, w, &x0, &x1, &lx0, &lx1);
        const float *p00 = xn + ((size_t)y0 * w + x0) * c, *p01 = xn + ((size_t)y0 * w + x1) * c;
        const float *p10 = xn + ((size_t)y1 * w + x0) * c, *p11 = xn + ((size_t)y1 * w + x1) * c;
        float *d = y + (((size_t)i * oh + oy) * ow + ox) * c;
        for (int j = 0; j < c; j++)
          d[j] = ly0 * (lx0 * p00[j] + lx1 * p01[j]) + ly1 * (lx0 * p10[j] + lx1 * p11[j]);
      }
    }
  }
}

/* The adjoint: each output gradient is scattered to its four taps, output pixels in order, so the
 * summation order is fixed. */
void ky_cpu_upsample_bilinear2_bwd(float *dx, const float *dy, int n, int h, int w, int c) {
  int oh = 2 * h, ow = 2 * w;
  for (int i = 0; i < n; i++) {
    float *dn = dx + (size_t)i * h * w * c;
    for (int oy = 0; oy < oh; oy++) {
      int y0, y1;
      float ly0, ly1;
      bilinear_taps(oy, h, &y0, &y1, &ly0, &ly1);
      for (int ox = 0; ox < ow; ox++) {
        int x0, x1;
        float lx0, lx1;
        bilinear_taps(ox, w, &x0, &x1, &lx0, &lx1);
        float *p00 = dn + ((size_t)y0 * w + x0) * c, *p01 = dn + ((size_t)y0 * w + x1) * c;
        float *p10 = dn + ((size_t)y1 * w + x0) * c, *p11 = dn + ((size_t)y1 * w + x1) * c;
        const float *g = dy + (((size_t)i * oh + oy) * ow + ox) * c;
        float w00 = ly0 * lx0, w01 = ly0 * lx1, w10 = ly1 * lx0, w11 = ly1 * lx1;
        for (int j = 0; j < c; j++) {
          p00[j] += w00 * g[j];
          p01[j] += w01 * g[j];
          p10[j] += w10 * g[j];
          p11[j] += w11 * g[j];
        }
      }
    }
  }
}

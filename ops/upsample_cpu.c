/* CPU reference upsampling over NHWC: nearest by an integer factor, bilinear x2 with PyTorch's
 * align_corners=False rule. Tested by tests/test_ops_kernels.c (hand-computed values, accumulation),
 * tests/test_parity_ops.c (torch interpolate fixtures, forward and backward) and
 * tests/test_ops_threads.c (thread counts).
 *
 * Threads: forwards split over output rows, the nearest backward over input rows (a gather); the
 * bilinear backward scatters into two input rows per output row, so each chunk owns a band of
 * input rows, walks the output rows that reach it in order and adds only the taps that land in
 * its band: every dx element gets the same additions in the same order as on one thread. */
#include "ops/kernels.h"

enum { CB = 64, BAND = 4 };

typedef struct {
  float *out;
  const float *in;
  int n, h, w, c, f;
} up_job;

/* Output rows [r0, r1) over n * oh. */
static void nearest_fwd(void *arg, size_t r0, size_t r1) {
  up_job *j = arg;
  int f = j->f, h = j->h, w = j->w, c = j->c, oh = h * f, ow = w * f;
  for (size_t row = r0; row < r1; row++) {
    size_t i = row / oh;
    int oy = (int)(row % oh);
    for (int ox = 0; ox < ow; ox++) {
      const float *s = j->in + ((i * h + oy / f) * w + ox / f) * c;
      float *d = j->out + ((i * oh + oy) * ow + ox) * c;
      for (int q = 0; q < c; q++) d[q] = s[q];
    }
  }
}

void ky_cpu_upsample_nearest_fwd(ky_pool *pool, float *y, const float *x, int n, int h, int w, int c, int f) {
  up_job j = {y, x, n, h, w, c, f};
  ky_pool_for(pool, (size_t)n * h * f, 4, nearest_fwd, &j);
}

/* Input rows [r0, r1) over n * h: each input pixel gathers its f x f block. */
static void nearest_bwd(void *arg, size_t r0, size_t r1) {
  up_job *j = arg;
  int f = j->f, h = j->h, w = j->w, c = j->c, oh = h * f, ow = w * f;
  float acc[CB];
  for (size_t row = r0; row < r1; row++) {
    size_t i = row / h;
    int iy = (int)(row % h);
    for (int ix = 0; ix < w; ix++) {
      float *d = j->out + ((i * h + iy) * w + ix) * c;
      for (int c0 = 0; c0 < c; c0 += CB) {
        int cb = c - c0 < CB ? c - c0 : CB;
        for (int q = 0; q < cb; q++) acc[q] = 0.0f;
        for (int a = 0; a < f; a++)
          for (int b = 0; b < f; b++) {
            const float *g = j->in + ((i * oh + iy * f + a) * ow + ix * f + b) * c + c0;
            for (int q = 0; q < cb; q++) acc[q] += g[q];
          }
        for (int q = 0; q < cb; q++) d[c0 + q] += acc[q];
      }
    }
  }
}

void ky_cpu_upsample_nearest_bwd(ky_pool *pool, float *dx, const float *dy, int n, int h, int w, int c, int f) {
  up_job j = {dx, dy, n, h, w, c, f};
  ky_pool_for(pool, (size_t)n * h, 2, nearest_bwd, &j);
}

static void bilinear_taps(int o, int len, int *i0, int *i1, float *l0, float *l1) {
  float src = 0.5f * (o + 0.5f) - 0.5f;
  if (src < 0.0f) src = 0.0f;
  int a = (int)src;
  *i0 = a;
  *i1 = a < len - 1 ? a + 1 : a;
  *l1 = src - (float)a;
  *l0 = 1.0f - *l1;
}

/* Output rows [r0, r1) over n * 2h. */
static void bilinear_fwd(void *arg, size_t r0, size_t r1) {
  up_job *j = arg;
  int h = j->h, w = j->w, c = j->c, oh = 2 * h, ow = 2 * w;
  for (size_t row = r0; row < r1; row++) {
    size_t i = row / oh;
    int oy = (int)(row % oh);
    const float *xn = j->in + i * h * w * c;
    int y0, y1;
    float ly0, ly1;
    bilinear_taps(oy, h, &y0, &y1, &ly0, &ly1);
    for (int ox = 0; ox < ow; ox++) {
      int x0, x1;
      float lx0, lx1;
      bilinear_taps(ox, w, &x0, &x1, &lx0, &lx1);
      const float *p00 = xn + ((size_t)y0 * w + x0) * c, *p01 = xn + ((size_t)y0 * w + x1) * c;
      const float *p10 = xn + ((size_t)y1 * w + x0) * c, *p11 = xn + ((size_t)y1 * w + x1) * c;
      float *d = j->out + ((i * oh + oy) * ow + ox) * c;
      for (int q = 0; q < c; q++)
        d[q] = ly0 * (lx0 * p00[q] + lx1 * p01[q]) + ly1 * (lx0 * p10[q] + lx1 * p11[q]);
    }
  }
}

void ky_cpu_upsample_bilinear2_fwd(ky_pool *pool, float *y, const float *x, int n, int h, int w, int c) {
  up_job j = {y, x, n, h, w, c, 2};
  ky_pool_for(pool, (size_t)n * 2 * h, 4, bilinear_fwd, &j);
}

/* Bands [b0, b1) of BAND input rows over n * ceil(h / BAND). */
static void bilinear_bwd(void *arg, size_t b0, size_t b1) {
  up_job *j = arg;
  int h = j->h, w = j->w, c = j->c, oh = 2 * h, ow = 2 * w, nb = (h + BAND - 1) / BAND;
  for (size_t band = b0; band < b1; band++) {
    size_t i = band / nb;
    int lo = (int)(band % nb) * BAND, hi = lo + BAND < h ? lo + BAND : h;
    float *dn = j->out + i * h * w * c;
    /* output row oy reads input rows floor(oy/2 - 1/4) and the next: oy in [2 lo - 2, 2 hi + 1] */
    int oy0 = 2 * lo - 2 < 0 ? 0 : 2 * lo - 2, oy1 = 2 * hi + 1 < oh - 1 ? 2 * hi + 1 : oh - 1;
    for (int oy = oy0; oy <= oy1; oy++) {
      int y0, y1;
      float ly0, ly1;
      bilinear_taps(oy, h, &y0, &y1, &ly0, &ly1);
      int in0 = y0 >= lo && y0 < hi, in1 = y1 >= lo && y1 < hi;
      if (!in0 && !in1) continue;
      for (int ox = 0; ox < ow; ox++) {
        int x0, x1;
        float lx0, lx1;
        bilinear_taps(ox, w, &x0, &x1, &lx0, &lx1);
        float *p00 = dn + ((size_t)y0 * w + x0) * c, *p01 = dn + ((size_t)y0 * w + x1) * c;
        float *p10 = dn + ((size_t)y1 * w + x0) * c, *p11 = dn + ((size_t)y1 * w + x1) * c;
        const float *g = j->in + ((i * oh + oy) * ow + ox) * c;
        float w00 = ly0 * lx0, w01 = ly0 * lx1, w10 = ly1 * lx0, w11 = ly1 * lx1;
        if (in0 && in1) {
          for (int q = 0; q < c; q++) {
            p00[q] += w00 * g[q];
            p01[q] += w01 * g[q];
            p10[q] += w10 * g[q];
            p11[q] += w11 * g[q];
          }
        } else if (in0) {
          for (int q = 0; q < c; q++) {
            p00[q] += w00 * g[q];
            p01[q] += w01 * g[q];
          }
        } else {
          for (int q = 0; q < c; q++) {
            p10[q] += w10 * g[q];
            p11[q] += w11 * g[q];
          }
        }
      }
    }
  }
}

void ky_cpu_upsample_bilinear2_bwd(ky_pool *pool, float *dx, const float *dy, int n, int h, int w, int c) {
  up_job j = {dx, dy, n, h, w, c, 2};
  ky_pool_for(pool, (size_t)n * ((h + BAND - 1) / BAND), 1, bilinear_bwd, &j);
}

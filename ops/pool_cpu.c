/* CPU reference pooling: max pooling with argmax (PyTorch tie and NaN rules) and global average.
 * Tested by tests/test_ops_kernels.c (ties, padding, accumulation) and tests/test_parity_ops.c
 * (torch max_pool2d 3/2/1 fixture). */
#include <math.h>

#include "ops/kernels.h"

/* Threads: the forward and global-average passes split over output rows / images (outputs are
 * independent); the max-pool backward scatters through overlapping windows, so it splits over runs
 * of channels instead and each dx element still receives its pixels in index order. */
enum { CB = 64, RUN = 16 };

typedef struct {
  float *y, *dx;
  int32_t *argmax;
  const int32_t *argmax_in;
  const float *x, *dy;
  const ky_pool_shape *s;
  int n, hw, c;
} pool_job;

/* Channels are the inner loop (NHWC), in blocks of CB kept on the stack: each window pixel is one
 * contiguous read of CB values. Output rows [r0, r1) over n * oh. */
static void maxpool_rows(void *arg, size_t r0, size_t r1) {
  pool_job *j = arg;
  const ky_pool_shape *s = j->s;
  size_t c = (size_t)s->c, plane = (size_t)s->h * s->w;
  float best[CB];
  int32_t best_i[CB];
  for (size_t row = r0; row < r1; row++) {
    int n = (int)(row / s->oh), oy = (int)(row % s->oh);
    const float *xn = j->x + (size_t)n * plane * c;
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
        for (size_t q = 0; q < cb; q++) {
          best[q] = -INFINITY;
          best_i[q] = (int32_t)(y0 * s->w + x0);
        }
        for (int iy = y0; iy < y1; iy++)
          for (int ix = x0; ix < x1; ix++) {
            int32_t i = (int32_t)(iy * s->w + ix);
            const float *xp = xn + (size_t)i * c + c0;
            for (size_t q = 0; q < cb; q++) {
              float v = xp[q];
              int take = v > best[q] || v != v; /* v != v: NaN */
              best[q] = take ? v : best[q];
              best_i[q] = take ? i : best_i[q];
            }
          }
        for (size_t q = 0; q < cb; q++) {
          j->y[o + c0 + q] = best[q];
          j->argmax[o + c0 + q] = best_i[q];
        }
      }
    }
  }
}

void ky_cpu_maxpool_fwd(ky_pool *pool, float *y, int32_t *argmax, const float *x, const ky_pool_shape *s) {
  pool_job j = {.y = y, .argmax = argmax, .x = x, .s = s};
  ky_pool_for(pool, (size_t)s->n * s->oh, 2, maxpool_rows, &j);
}

static void maxpool_bwd_chans(void *arg, size_t c0, size_t c1) {
  const pool_job *j = arg;
  const ky_pool_shape *s = j->s;
  size_t c = (size_t)s->c, plane = (size_t)s->h * s->w, opix = (size_t)s->oh * s->ow;
  for (int n = 0; n < s->n; n++) {
    float *dxn = j->dx + (size_t)n * plane * c;
    const float *dyn = j->dy + (size_t)n * opix * c;
    const int32_t *an = j->argmax_in + (size_t)n * opix * c;
    for (size_t p = 0; p < opix; p++)
      for (size_t ch = c0; ch < c1; ch++) dxn[(size_t)an[p * c + ch] * c + ch] += dyn[p * c + ch];
  }
}

void ky_cpu_maxpool_bwd(ky_pool *pool, float *dx, const float *dy, const int32_t *argmax, const ky_pool_shape *s) {
  pool_job j = {.dx = dx, .dy = dy, .argmax_in = argmax, .s = s};
  ky_pool_for(pool, (size_t)s->c, ky_pool_share(pool, (size_t)s->c, RUN), maxpool_bwd_chans, &j);
}

/* Images [i0, i1). */
static void gap_images(void *arg, size_t i0, size_t i1) {
  pool_job *j = arg;
  int hw = j->hw, c = j->c;
  double acc[CB];
  for (size_t i = i0; i < i1; i++) {
    const float *xn = j->x + i * hw * c;
    for (int c0 = 0; c0 < c; c0 += CB) {
      int cb = c - c0 < CB ? c - c0 : CB;
      for (int q = 0; q < cb; q++) acc[q] = 0.0;
      for (int p = 0; p < hw; p++)
        for (int q = 0; q < cb; q++) acc[q] += xn[(size_t)p * c + c0 + q];
      for (int q = 0; q < cb; q++) j->y[i * c + c0 + q] = (float)(acc[q] / hw);
    }
  }
}

void ky_cpu_gap_fwd(ky_pool *pool, float *y, const float *x, int n, int hw, int c) {
  pool_job j = {.y = y, .x = x, .n = n, .hw = hw, .c = c};
  ky_pool_for(pool, (size_t)n, 1, gap_images, &j);
}

/* Pixels [p0, p1) over n * hw. */
static void gap_bwd_pixels(void *arg, size_t p0, size_t p1) {
  pool_job *j = arg;
  int c = j->c;
  for (size_t q = p0; q < p1; q++) {
    float *o = j->dx + q * c;
    const float *g = j->dy + q / j->hw * c;
    for (int k = 0; k < c; k++) o[k] += g[k] / (float)j->hw;
  }
}

void ky_cpu_gap_bwd(ky_pool *pool, float *dx, const float *dy, int n, int hw, int c) {
  pool_job j = {.dx = dx, .dy = dy, .n = n, .hw = hw, .c = c};
  ky_pool_for(pool, (size_t)n * hw, 4096, gap_bwd_pixels, &j);
}

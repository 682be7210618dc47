/* CPU reference batch normalisation over NHWC (per-channel statistics over N*H*W pixels).
 * Tested by tests/test_ops_kernels.c (hand-worked values, accumulation), tests/test_parity_ops.c
 * (torch.nn.BatchNorm2d train and eval fixtures) and tests/test_ops_threads.c (thread counts).
 *
 * Channel sums run in double, pixel by pixel in index order. gamma / beta may be NULL
 * (affine=False: gamma = 1, beta = 0). The forward is y = (x - mean) * (gamma * invstd) + beta:
 * centring first avoids the cancellation of x * scale + (beta - mean * scale) when |mean| >> std.
 *
 * Threads: channels go in blocks of CBLK (per-channel factors on the stack: kernels never
 * allocate); within a block the sums are split by runs of channels, a multiple of RUN wide (each
 * channel's sum stays one sequence in pixel order) and the per-pixel passes by runs of PIX
 * pixels. Neither split changes an operation, so every thread count gives the bits of one thread. */
#include <math.h>

#include "ops/kernels.h"

enum {
  CBLK = 512, /* channels per block */
  RUN = 16,   /* channels per statistics chunk: one 64-byte line per pixel, so threads never share one */
  PIX = 512,  /* pixels per chunk of the elementwise passes */
};

typedef struct {
  float *y, *save_mean, *save_invstd, *run_mean, *run_var, *dgamma, *dbeta;
  const float *x, *dy, *gamma, *beta, *mean_in, *var_in;
  size_t npix;
  int c, c0, cb;             /* all channels; this block: [c0, c0 + cb) */
  float eps, momentum;
  float m[CBLK], scale[CBLK], shift[CBLK], q[CBLK]; /* per-channel factors of the block */
} bn_job;

static inline int min_i(int a, int b) { return a < b ? a : b; }

/* Training statistics of channels [c0 + j0, c0 + j1) and their factors. */
static void stats_train(void *arg, size_t j0, size_t j1) {
  bn_job *b = arg;
  size_t c = (size_t)b->c, c0 = (size_t)b->c0, cb = j1 - j0;
  double mean[CBLK], var[CBLK];
  for (size_t j = 0; j < cb; j++) mean[j] = var[j] = 0.0;
  for (size_t p = 0; p < b->npix; p++) {
    const float *xp = b->x + p * c + c0 + j0;
    for (size_t j = 0; j < cb; j++) mean[j] += xp[j];
  }
  for (size_t j = 0; j < cb; j++) mean[j] /= (double)b->npix;
  /* two passes: the variance from centred values, not E[x^2] - mean^2 */
  for (size_t p = 0; p < b->npix; p++) {
    const float *xp = b->x + p * c + c0 + j0;
    for (size_t j = 0; j < cb; j++) {
      double d = xp[j] - mean[j];
      var[j] += d * d;
    }
  }
  for (size_t j = 0; j < cb; j++) {
    size_t ch = c0 + j0 + j;
    double v = var[j] / (double)b->npix;
    double invstd = 1.0 / sqrt(v + (double)b->eps);
    b->save_mean[ch] = (float)mean[j];
    b->save_invstd[ch] = (float)invstd;
    /* PyTorch updates running_var with the unbiased variance; with one pixel there is none and
     * the biased one (0) is used. */
    double unbiased = b->npix > 1 ? var[j] / (double)(b->npix - 1) : v;
    double mom = b->momentum;
    if (b->run_mean) b->run_mean[ch] = (float)((1.0 - mom) * b->run_mean[ch] + mom * mean[j]);
    if (b->run_var) b->run_var[ch] = (float)((1.0 - mom) * b->run_var[ch] + mom * unbiased);
    double g = b->gamma ? b->gamma[ch] : 1.0, be = b->beta ? b->beta[ch] : 0.0;
    b->m[j0 + j] = (float)mean[j];
    b->scale[j0 + j] = (float)(g * invstd);
    b->shift[j0 + j] = (float)be;
  }
}

/* y = (x - m) * scale + shift on pixels [p0, p1) of the block's channels. */
static void apply(void *arg, size_t p0, size_t p1) {
  const bn_job *b = arg;
  size_t c = (size_t)b->c;
  int cb = b->cb;
  const float *x = b->x + b->c0, *m = b->m, *scale = b->scale, *shift = b->shift;
  float *y = b->y + b->c0;
  for (size_t p = p0; p < p1; p++) {
    const float *xp = x + p * c;
    float *yp = y + p * c;
    for (int j = 0; j < cb; j++) yp[j] = (xp[j] - m[j]) * scale[j] + shift[j];
  }
}

void ky_cpu_bn_fwd_train(ky_pool *pool, float *y, float *save_mean, float *save_invstd, float *run_mean,
                         float *run_var, const float *x, const float *gamma, const float *beta, size_t npix, int c,
                         float eps, float momentum) {
  bn_job b = {.y = y, .save_mean = save_mean, .save_invstd = save_invstd, .run_mean = run_mean, .run_var = run_var,
              .x = x, .gamma = gamma, .beta = beta, .npix = npix, .c = c, .eps = eps, .momentum = momentum};
  for (b.c0 = 0; b.c0 < c; b.c0 += CBLK) {
    b.cb = min_i(CBLK, c - b.c0);
    ky_pool_for(pool, (size_t)b.cb, ky_pool_share(pool, (size_t)b.cb, RUN), stats_train, &b);
    ky_pool_for(pool, npix, PIX, apply, &b);
  }
}

void ky_cpu_bn_fwd_eval(ky_pool *pool, float *y, const float *x, const float *gamma, const float *beta,
                        const float *run_mean, const float *run_var, size_t npix, int c, float eps) {
  bn_job b = {.y = y, .x = x, .npix = npix, .c = c};
  for (b.c0 = 0; b.c0 < c; b.c0 += CBLK) {
    b.cb = min_i(CBLK, c - b.c0);
    for (int j = 0; j < b.cb; j++) {
      int ch = b.c0 + j;
      double invstd = 1.0 / sqrt((double)run_var[ch] + (double)eps);
      b.scale[j] = (float)((gamma ? gamma[ch] : 1.0) * invstd);
      b.shift[j] = beta ? beta[ch] : 0.0f;
      b.m[j] = run_mean[ch];
    }
    ky_pool_for(pool, npix, PIX, apply, &b);
  }
}

/* sdy = sum dy, sdyx = sum dy * xhat (xhat = (x - mean) * invstd) for channels [c0 + j0, c0 + j1);
 * dgamma += sdyx, dbeta += sdy, and the dx factors. mean_in / var_in: saved mean and invstd
 * (training) or running mean and variance (evaluation, var_in != NULL with eps). */
static void grad_stats(void *arg, size_t j0, size_t j1, int train) {
  bn_job *b = arg;
  size_t c = (size_t)b->c, c0 = (size_t)b->c0, cb = j1 - j0;
  double mean[CBLK], invstd[CBLK], sdy[CBLK], sdyx[CBLK];
  for (size_t j = 0; j < cb; j++) {
    size_t ch = c0 + j0 + j;
    mean[j] = b->mean_in[ch];
    invstd[j] = train ? (double)b->var_in[ch] : 1.0 / sqrt((double)b->var_in[ch] + (double)b->eps);
    sdy[j] = sdyx[j] = 0.0;
  }
  if (train || b->dgamma || b->dbeta) {
    for (size_t p = 0; p < b->npix; p++) {
      const float *dp = b->dy + p * c + c0 + j0, *xp = b->x + p * c + c0 + j0;
      for (size_t j = 0; j < cb; j++) {
        sdy[j] += dp[j];
        sdyx[j] += (double)dp[j] * ((xp[j] - mean[j]) * invstd[j]);
      }
    }
    for (size_t j = 0; j < cb; j++) {
      if (b->dgamma) b->dgamma[c0 + j0 + j] += (float)sdyx[j];
      if (b->dbeta) b->dbeta[c0 + j0 + j] += (float)sdy[j];
    }
  }
  /* train: dx += a * (dy - mdy - (x - m) * q), the gradient through the batch statistics;
   * eval: dx += a * dy (scale = a, the rest 0 and unused) */
  for (size_t j = 0; j < cb; j++) {
    size_t ch = c0 + j0 + j;
    b->scale[j0 + j] = (float)((b->gamma ? b->gamma[ch] : 1.0) * invstd[j]);
    if (train) {
      b->shift[j0 + j] = (float)(sdy[j] / (double)b->npix);
      b->m[j0 + j] = (float)mean[j];
      b->q[j0 + j] = (float)(sdyx[j] / (double)b->npix * invstd[j]);
    }
  }
}
static void grad_stats_train(void *arg, size_t j0, size_t j1) { grad_stats(arg, j0, j1, 1); }
static void grad_stats_eval(void *arg, size_t j0, size_t j1) { grad_stats(arg, j0, j1, 0); }

static void dx_train(void *arg, size_t p0, size_t p1) { /* y = dx */
  const bn_job *b = arg;
  size_t c = (size_t)b->c;
  int cb = b->cb;
  const float *a = b->scale, *mdy = b->shift, *m = b->m, *q = b->q, *dy = b->dy + b->c0, *x = b->x + b->c0;
  float *dx = b->y + b->c0;
  for (size_t p = p0; p < p1; p++) {
    const float *dp = dy + p * c, *xp = x + p * c;
    float *o = dx + p * c;
    for (int j = 0; j < cb; j++) o[j] += a[j] * (dp[j] - mdy[j] - (xp[j] - m[j]) * q[j]);
  }
}

static void dx_eval(void *arg, size_t p0, size_t p1) {
  const bn_job *b = arg;
  size_t c = (size_t)b->c;
  int cb = b->cb;
  const float *dy = b->dy + b->c0, *a = b->scale;
  float *dx = b->y + b->c0;
  for (size_t p = p0; p < p1; p++) {
    const float *dp = dy + p * c;
    float *o = dx + p * c;
    for (int j = 0; j < cb; j++) o[j] += a[j] * dp[j];
  }
}

void ky_cpu_bn_bwd_train(ky_pool *pool, float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                         const float *gamma, const float *save_mean, const float *save_invstd, size_t npix,
                         int c) {
  bn_job b = {.y = dx, .dgamma = dgamma, .dbeta = dbeta, .dy = dy, .x = x, .gamma = gamma, .mean_in = save_mean,
              .var_in = save_invstd, .npix = npix, .c = c};
  for (b.c0 = 0; b.c0 < c; b.c0 += CBLK) {
    b.cb = min_i(CBLK, c - b.c0);
    ky_pool_for(pool, (size_t)b.cb, ky_pool_share(pool, (size_t)b.cb, RUN), grad_stats_train, &b);
    if (dx) ky_pool_for(pool, npix, PIX, dx_train, &b);
  }
}

void ky_cpu_bn_bwd_eval(ky_pool *pool, float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                        const float *gamma, const float *run_mean, const float *run_var, size_t npix, int c,
                        float eps) {
  bn_job b = {.y = dx, .dgamma = dgamma, .dbeta = dbeta, .dy = dy, .x = x, .gamma = gamma, .mean_in = run_mean,
              .var_in = run_var, .npix = npix, .c = c, .eps = eps};
  for (b.c0 = 0; b.c0 < c; b.c0 += CBLK) {
    b.cb = min_i(CBLK, c - b.c0);
    ky_pool_for(pool, (size_t)b.cb, ky_pool_share(pool, (size_t)b.cb, RUN), grad_stats_eval, &b);
    if (dx) ky_pool_for(pool, npix, PIX, dx_eval, &b);
  }
}

/* CPU reference batch normalisation over NHWC (per-channel statistics over N*H*W pixels).
 * Tested by tests/test_ops_kernels.c (hand-worked values, accumulation) and tests/test_parity_ops.c
 * (torch.nn.BatchNorm2d train and eval fixtures).
 *
 * Channel sums run in double, pixel by pixel in index order, over blocks of CB channels so that the
 * accumulators live on the stack (kernels never allocate). gamma / beta may be NULL (affine=False:
 * gamma = 1, beta = 0). The forward is y = (x - mean) * (gamma * invstd) + beta: centring first
 * avoids the cancellation of x * scale + (beta - mean * scale) when |mean| >> std. */
#include <math.h>

#include "ops/kernels.h"

enum { CB = 64 }; /* channels per accumulation block */

/* acc[j] = sum_p x[p, c0 + j] for j < cb */
static void channel_sums(double *acc, const float *x, size_t npix, int c, int c0, int cb) {
  for (int j = 0; j < cb; j++) acc[j] = 0.0;
  for (size_t p = 0; p < npix; p++) {
    const float *xp = x + p * c + c0;
    for (int j = 0; j < cb; j++) acc[j] += xp[j];
  }
}

void ky_cpu_bn_fwd_train(float *y, float *save_mean, float *save_invstd, float *run_mean, float *run_var,
                         const float *x, const float *gamma, const float *beta, size_t npix, int c, float eps,
                         float momentum) {
  double mean[CB], var[CB];
  for (int c0 = 0; c0 < c; c0 += CB) {
    int cb = c - c0 < CB ? c - c0 : CB;
    channel_sums(mean, x, npix, c, c0, cb);
    for (int j = 0; j < cb; j++) mean[j] /= (double)npix;
    /* two passes: the variance from centred values, not E[x^2] - mean^2 */
    for (int j = 0; j < cb; j++) var[j] = 0.0;
    for (size_t p = 0; p < npix; p++) {
      const float *xp = x + p * c + c0;
      for (int j = 0; j < cb; j++) {
        double d = xp[j] - mean[j];
        var[j] += d * d;
      }
    }
    float m[CB], scale[CB], shift[CB];
    for (int j = 0; j < cb; j++) {
      double v = var[j] / (double)npix;
      double invstd = 1.0 / sqrt(v + (double)eps);
      save_mean[c0 + j] = (float)mean[j];
      save_invstd[c0 + j] = (float)invstd;
      /* PyTorch updates running_var with the unbiased variance; with one pixel there is none and
       * the biased one (0) is used. */
      double unbiased = npix > 1 ? var[j] / (double)(npix - 1) : v;
      if (run_mean) run_mean[c0 + j] = (float)((1.0 - momentum) * run_mean[c0 + j] + momentum * mean[j]);
      if (run_var) run_var[c0 + j] = (float)((1.0 - momentum) * run_var[c0 + j] + momentum * unbiased);
      double g = gamma ? gamma[c0 + j] : 1.0, b = beta ? beta[c0 + j] : 0.0;
      m[j] = (float)mean[j];
      scale[j] = (float)(g * invstd);
      shift[j] = (float)b;
    }
    for (size_t p = 0; p < npix; p++) {
      const float *xp = x + p * c + c0;
      float *yp = y + p * c + c0;
      for (int j = 0; j < cb; j++) yp[j] = (xp[j] - m[j]) * scale[j] + shift[j];
    }
  }
}

void ky_cpu_bn_fwd_eval(float *y, const float *x, const float *gamma, const float *beta, const float *run_mean,
                        const float *run_var, size_t npix, int c, float eps) {
  for (int c0 = 0; c0 < c; c0 += CB) {
    int cb = c - c0 < CB ? c - c0 : CB;
    float scale[CB], shift[CB];
    for (int j = 0; j < cb; j++) {
      double invstd = 1.0 / sqrt((double)run_var[c0 + j] + (double)eps);
      scale[j] = (float)((gamma ? gamma[c0 + j] : 1.0) * invstd);
      shift[j] = beta ? beta[c0 + j] : 0.0f;
    }
    const float *m = run_mean + c0;
    for (size_t p = 0; p < npix; p++) {
      const float *xp = x + p * c + c0;
      float *yp = y + p * c + c0;
      for (int j = 0; j < cb; j++) yp[j] = (xp[j] - m[j]) * scale[j] + shift[j];
    }
  }
}

/* sdy[j] = sum dy, sdyx[j] = sum dy * xhat, xhat = (x - mean) * invstd */
static void grad_sums(double *sdy, double *sdyx, const float *dy, const float *x, const double *mean,
                      const double *invstd, size_t npix, int c, int c0, int cb) {
  for (int j = 0; j < cb; j++) sdy[j] = sdyx[j] = 0.0;
  for (size_t p = 0; p < npix; p++) {
    const float *dp = dy + p * c + c0, *xp = x + p * c + c0;
    for (int j = 0; j < cb; j++) {
      sdy[j] += dp[j];
      sdyx[j] += (double)dp[j] * ((xp[j] - mean[j]) * invstd[j]);
    }
  }
}

void ky_cpu_bn_bwd_train(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                         const float *gamma, const float *save_mean, const float *save_invstd, size_t npix,
                         int c) {
  for (int c0 = 0; c0 < c; c0 += CB) {
    int cb = c - c0 < CB ? c - c0 : CB;
    double mean[CB], invstd[CB], sdy[CB], sdyx[CB];
    for (int j = 0; j < cb; j++) {
      mean[j] = save_mean[c0 + j];
      invstd[j] = save_invstd[c0 + j];
    }
    grad_sums(sdy, sdyx, dy, x, mean, invstd, npix, c, c0, cb);
    for (int j = 0; j < cb; j++) {
      if (dgamma) dgamma[c0 + j] += (float)sdyx[j];
      if (dbeta) dbeta[c0 + j] += (float)sdy[j];
    }
    if (!dx) continue;
    /* dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)) */
    float a[CB], mdy[CB], m[CB], q[CB]; /* dx += a * (dy - mdy - (x - m) * q) */
    for (int j = 0; j < cb; j++) {
      a[j] = (float)((gamma ? gamma[c0 + j] : 1.0) * invstd[j]);
      mdy[j] = (float)(sdy[j] / (double)npix);
      m[j] = (float)mean[j];
      q[j] = (float)(sdyx[j] / (double)npix * invstd[j]);
    }
    for (size_t p = 0; p < npix; p++) {
      const float *dp = dy + p * c + c0, *xp = x + p * c + c0;
      float *o = dx + p * c + c0;
      for (int j = 0; j < cb; j++) o[j] += a[j] * (dp[j] - mdy[j] - (xp[j] - m[j]) * q[j]);
    }
  }
}

void ky_cpu_bn_bwd_eval(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                        const float *gamma, const float *run_mean, const float *run_var, size_t npix, int c,
                        float eps) {
  for (int c0 = 0; c0 < c; c0 += CB) {
    int cb = c - c0 < CB ? c - c0 : CB;
    double mean[CB], invstd[CB], sdy[CB], sdyx[CB];
    for (int j = 0; j < cb; j++) {
      mean[j] = run_mean[c0 + j];
      invstd[j] = 1.0 / sqrt((double)run_var[c0 + j] + (double)eps);
    }
    if (dgamma || dbeta) {
      grad_sums(sdy, sdyx, dy, x, mean, invstd, npix, c, c0, cb);
      for (int j = 0; j < cb; j++) {
        if (dgamma) dgamma[c0 + j] += (float)sdyx[j];
        if (dbeta) dbeta[c0 + j] += (float)sdy[j];
      }
    }
    if (!dx) continue;
    float a[CB];
    for (int j = 0; j < cb; j++) a[j] = (float)((gamma ? gamma[c0 + j] : 1.0) * invstd[j]);
    for (size_t p = 0; p < npix; p++) {
      const float *dp = dy + p * c + c0;
      float *o = dx + p * c + c0;
      for (int j = 0; j < cb; j++) o[j] += a[j] * dp[j];
    }
  }
}

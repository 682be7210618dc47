/* Synchronised batch norm over the ranks of a data-parallel job (see ops/batchnorm_sync.h). CPU
 * only: the channel sums run in double in pixel order, as in ops/batchnorm_cpu.c, so one rank
 * gets the fused kernel's statistics. Tested by tests/test_dist_train.c and
 * tests/test_dist_allreduce.c. */
#include "ops/batchnorm_sync.h"

#include <math.h>
#include <stdlib.h>

#include "dist/dist.h"

int ky_bn_sync_on(const ky_ctx *ctx) { return ctx->dist && ctx->dist->sync_bn && ctx->dist->mpi; }

static ky_status need_cpu(const ky_ctx *ctx) {
  KY_CHECK(ctx->dev == KY_DEV_CPU, KY_ERR_STATE,
           "batchnorm2d: sync_bn 1 runs on CPU ranks only in this build (GPU ranks: sync_bn 0, per-GPU statistics)");
  return KY_OK;
}

ky_status ky_bn_sync_fwd(ky_ctx *ctx, float *y, float *save_mean, float *save_invstd, double *count, float *run_mean,
                         float *run_var, const float *x, const float *gamma, const float *beta, size_t npix, int c,
                         float eps, float momentum) {
  KY_TRY(need_cpu(ctx));
  double *acc = calloc((size_t)c + 1, sizeof *acc);   /* [c] sums, then [c] centred squares; + count */
  if (!acc) return ky_error(KY_ERR_NOMEM, "batchnorm2d: out of memory for %d channel sums", c);
  for (size_t p = 0; p < npix; p++) {
    const float *xp = x + p * c;
    for (int j = 0; j < c; j++) acc[j] += xp[j];
  }
  acc[c] = (double)npix;
  ky_status s = ky_dist_sum_f64(ctx->dist, acc, (size_t)c + 1);
  if (s != KY_OK) { free(acc); return s; }
  double n = acc[c];
  *count = n;
  for (int j = 0; j < c; j++) save_mean[j] = (float)(acc[j] / n);
  double *mean = malloc((size_t)c * sizeof *mean);
  if (!mean) { free(acc); return ky_error(KY_ERR_NOMEM, "batchnorm2d: out of memory"); }
  for (int j = 0; j < c; j++) { mean[j] = acc[j] / n; acc[j] = 0; }
  for (size_t p = 0; p < npix; p++) {
    const float *xp = x + p * c;
    for (int j = 0; j < c; j++) {
      double d = xp[j] - mean[j];
      acc[j] += d * d;
    }
  }
  s = ky_dist_sum_f64(ctx->dist, acc, (size_t)c);
  if (s != KY_OK) { free(acc); free(mean); return s; }
  float *m = malloc((size_t)c * 3 * sizeof *m);
  if (!m) { free(acc); free(mean); return ky_error(KY_ERR_NOMEM, "batchnorm2d: out of memory"); }
  float *scale = m + c, *shift = m + 2 * c;
  for (int j = 0; j < c; j++) {
    double v = acc[j] / n, invstd = 1.0 / sqrt(v + (double)eps);
    double unbiased = n > 1 ? acc[j] / (n - 1) : v;
    save_invstd[j] = (float)invstd;
    if (run_mean) run_mean[j] = (float)((1.0 - momentum) * run_mean[j] + momentum * mean[j]);
    if (run_var) run_var[j] = (float)((1.0 - momentum) * run_var[j] + momentum * unbiased);
    m[j] = (float)mean[j];
    scale[j] = (float)((gamma ? gamma[j] : 1.0) * invstd);
    shift[j] = beta ? beta[j] : 0.0f;
  }
  for (size_t p = 0; p < npix; p++) {
    const float *xp = x + p * c;
    float *yp = y + p * c;
    for (int j = 0; j < c; j++) yp[j] = (xp[j] - m[j]) * scale[j] + shift[j];
  }
  free(acc);
  free(mean);
  free(m);
  return KY_OK;
}

ky_status ky_bn_sync_bwd(ky_ctx *ctx, float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                         const float *gamma, const float *save_mean, const float *save_invstd, double count,
                         size_t npix, int c) {
  KY_TRY(need_cpu(ctx));
  double *sums = calloc((size_t)c * 2, sizeof *sums);
  float *f = malloc((size_t)c * 4 * sizeof *f);
  if (!sums || !f) { free(sums); free(f); return ky_error(KY_ERR_NOMEM, "batchnorm2d: out of memory"); }
  double *sdy = sums, *sdyx = sums + c;
  float *a = f, *mdy = f + c, *m = f + 2 * c, *q = f + 3 * c;
  for (size_t p = 0; p < npix; p++) {
    const float *dp = dy + p * c, *xp = x + p * c;
    for (int j = 0; j < c; j++) {
      sdy[j] += dp[j];
      sdyx[j] += (double)dp[j] * ((xp[j] - (double)save_mean[j]) * (double)save_invstd[j]);
    }
  }
  for (int j = 0; j < c; j++) {
    if (dgamma) dgamma[j] += (float)sdyx[j];
    if (dbeta) dbeta[j] += (float)sdy[j];
  }
  ky_status s = dx ? ky_dist_sum_f64(ctx->dist, sums, (size_t)c * 2) : KY_OK;
  if (s == KY_OK && dx) {
    for (int j = 0; j < c; j++) {
      a[j] = (float)((gamma ? gamma[j] : 1.0) * save_invstd[j]);
      mdy[j] = (float)(sdy[j] / count);
      m[j] = save_mean[j];
      q[j] = (float)(sdyx[j] / count * save_invstd[j]);
    }
    for (size_t p = 0; p < npix; p++) {
      const float *dp = dy + p * c, *xp = x + p * c;
      float *o = dx + p * c;
      for (int j = 0; j < c; j++) o[j] += a[j] * (dp[j] - mdy[j] - (xp[j] - m[j]) * q[j]);
    }
  }
  free(sums);
  free(f);
  return s;
}

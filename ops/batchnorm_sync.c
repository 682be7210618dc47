/* Synchronised batch norm over the ranks of a data-parallel job (see ops/batchnorm_sync.h), on CPU
 * and CUDA ranks. Each pass computes this rank's per-channel sums in double (the CPU loops below,
 * or the kernels of cuda/batchnorm.cu, which use the same formulas), the ranks add them on the
 * host, and the apply step uses the global sums: one rank gets the fused kernels' statistics.
 * Tested by tests/test_dist_train.c, tests/test_dist_allreduce.c (CPU, 1 to 3 ranks) and
 * tests/test_cuda_bn_sync.c (one CUDA rank against the CPU path; GPU or tests/cuda_emu). */
#include "ops/batchnorm_sync.h"

#include <math.h>
#include <string.h>

#include "dist/dist.h"
#include "ops/op_util.h"

int ky_bn_sync_on(const ky_ctx *ctx) { return ctx->dist && ctx->dist->sync_bn && ctx->dist->mpi; }

/* Why the all-reduce runs on the host for CUDA ranks too: a layer's statistics are c + 1 doubles
 * (then c, and 2c in the backward pass), a few KB at most, so the cost is the collective's latency,
 * not its bytes. MPI's host all-reduce is present in every data-parallel build, whereas NCCL is
 * optional (dist/dist.h): one path serves CPU and GPU ranks, and both add the ranks' sums in the
 * same double arithmetic. What it costs is a stream synchronisation per pass (the d2h copy), three
 * per layer and step, which the GPU would need anyway before a host MPI call. */

/* This rank's sums into host sum[c]: sum x (mean NULL), or sum (x - mean)^2 (mean: [c]). */
static ky_status rank_stats(ky_ctx *ctx, double *sum, const float *x, const double *mean, size_t npix, int c) {
  KY_IF_CUDA(ctx, ky_cuda_bn_sync_stats(ctx->cu, sum, x, mean, npix, c))
  else {
    memset(sum, 0, (size_t)c * sizeof *sum);
    for (size_t p = 0; p < npix; p++) {
      const float *xp = x + p * c;
      if (!mean) {
        for (int j = 0; j < c; j++) sum[j] += xp[j];
      } else {
        for (int j = 0; j < c; j++) {
          double d = xp[j] - mean[j];
          sum[j] += d * d;
        }
      }
    }
  }
  return KY_OK;
}

ky_status ky_bn_sync_fwd(ky_ctx *ctx, float *y, float *save_mean, float *save_invstd, double *count, float *run_mean,
                         float *run_var, const float *x, const float *gamma, const float *beta, size_t npix, int c,
                         float eps, float momentum) {
  /* acc: [c] channel sums, the count, then [c] mean and [c] centred squares (the apply's input) */
  double *acc;
  KY_TRY(ky_ctx_alloc_host(ctx, (void **)&acc, (3 * (size_t)c + 1) * sizeof *acc));
  double *mean = acc + c + 1, *sq = mean + c;
  KY_TRY(rank_stats(ctx, acc, x, NULL, npix, c));
  acc[c] = (double)npix;
  KY_TRY(ky_dist_sum_f64(ctx->dist, acc, (size_t)c + 1));
  double n = acc[c];
  *count = n;
  for (int j = 0; j < c; j++) mean[j] = acc[j] / n;
  KY_TRY(rank_stats(ctx, sq, x, mean, npix, c));
  KY_TRY(ky_dist_sum_f64(ctx->dist, sq, (size_t)c));
  KY_IF_CUDA(ctx, ky_cuda_bn_sync_fwd_apply(ctx->cu, y, save_mean, save_invstd, run_mean, run_var, x, gamma, beta,
                                            mean, n, npix, c, eps, momentum))
  else {
    float *m;
    KY_TRY(ky_ctx_alloc_host(ctx, (void **)&m, (size_t)c * 3 * sizeof *m));
    float *scale = m + c, *shift = m + 2 * c;
    for (int j = 0; j < c; j++) {
      double v = sq[j] / n, invstd = 1.0 / sqrt(v + (double)eps);
      double unbiased = n > 1 ? sq[j] / (n - 1) : v;
      save_mean[j] = (float)mean[j];
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
  }
  return KY_OK;
}

ky_status ky_bn_sync_bwd(ky_ctx *ctx, float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                         const float *gamma, const float *save_mean, const float *save_invstd, double count,
                         size_t npix, int c) {
  double *sums;   /* [c] sum dy, [c] sum dy * xhat */
  KY_TRY(ky_ctx_alloc_host(ctx, (void **)&sums, (size_t)c * 2 * sizeof *sums));
  double *sdy = sums, *sdyx = sums + c;
  KY_IF_CUDA(ctx, ky_cuda_bn_sync_grad_sums(ctx->cu, sums, dgamma, dbeta, dy, x, save_mean, save_invstd, npix, c))
  else {
    memset(sums, 0, (size_t)c * 2 * sizeof *sums);
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
  }
  /* dx is NULL on every rank or on none (x's requires_grad comes from the same model). */
  if (!dx) return KY_OK;
  KY_TRY(ky_dist_sum_f64(ctx->dist, sums, (size_t)c * 2));
  KY_IF_CUDA(ctx, ky_cuda_bn_sync_bwd_apply(ctx->cu, dx, dy, x, gamma, save_mean, save_invstd, sums, count, npix, c))
  else {
    float *f;
    KY_TRY(ky_ctx_alloc_host(ctx, (void **)&f, (size_t)c * 4 * sizeof *f));
    float *a = f, *mdy = f + c, *m = f + 2 * c, *q = f + 3 * c;
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
  return KY_OK;
}

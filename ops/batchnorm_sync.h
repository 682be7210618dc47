/* Synchronised batch norm (SyncBatchNorm): the training form of batchnorm2d with statistics over
 * the global batch of a data-parallel job (dist/dist.h), used by ops/batchnorm.c when the
 * context's job has sync_bn set. Tested by tests/test_dist_train.c (2 ranks with --sync_bn 1 take
 * the steps of 1 rank) and tests/test_dist_allreduce.c (one rank: equal to the fused kernels). */
#ifndef KY_OPS_BATCHNORM_SYNC_H
#define KY_OPS_BATCHNORM_SYNC_H

#include <stddef.h>
#include "core/ctx.h"

/* 1 when batch norm in ctx must synchronise its training statistics. */
int ky_bn_sync_on(const ky_ctx *ctx);
/* Forward: mean and biased variance over every rank's pixels (channel sums all-reduced in double,
 * then the centred squares: the same two passes as the one-process kernel), y normalised with
 * them, running statistics updated with the global unbiased variance; *count = global N*H*W. */
ky_status ky_bn_sync_fwd(ky_ctx *ctx, float *y, float *save_mean, float *save_invstd, double *count, float *run_mean,
                         float *run_var, const float *x, const float *gamma, const float *beta, size_t npix, int c,
                         float eps, float momentum);
/* Backward: sum(dy) and sum(dy * xhat) all-reduced (dx needs the global ones); dgamma / dbeta get
 * this rank's sums, which the gradient all-reduce then adds up. */
ky_status ky_bn_sync_bwd(ky_ctx *ctx, float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                         const float *gamma, const float *save_mean, const float *save_invstd, double count,
                         size_t npix, int c);

#endif

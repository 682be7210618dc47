/* CUDA launchers: the same list as ops/kernels.h (read its conventions: NHWC, OHWI, outputs
 * first, forward overwrites, backward accumulates), each taking the context first and returning
 * a status that reports launch errors with file and line. Declared extern "C"; no CUDA types.
 * All pointers are device pointers. Tested by tests/test_cuda_ops.c and tests/test_cuda_conv.c
 * against the CPU reference on odd shapes with NaN-poisoned outputs (skip without a GPU). */
#ifndef KY_CUDA_KERNELS_H
#define KY_CUDA_KERNELS_H

#include "cuda/cuda.h"
#include "ops/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- convolution (cuda/conv2d_*.cu) ------------------------------------------------------- */
typedef enum {
  KY_CONV_ALGO_AUTO = 0,        /* deterministic context: fixed rule (ops/conv_choice.h); else time once per shape */
  KY_CONV_ALGO_IMPLICIT_GEMM,   /* hand-written implicit GEMM, fp32 SIMT (sm_61+) */
  KY_CONV_ALGO_IMPLICIT_TF32,   /* implicit GEMM on TF32 tensor cores (sm_80+) */
  KY_CONV_ALGO_IM2COL_GEMM,     /* im2col + cuBLAS SGEMM (1x1 stride 1: plain GEMM) */
} ky_conv_algo;
ky_status ky_cuda_conv2d_fwd(ky_cuda *cu, float *y, const float *x, const float *w, const float *b,
                             const ky_conv_shape *s, int relu, ky_conv_algo algo);
ky_status ky_cuda_conv2d_dgrad(ky_cuda *cu, float *dx, const float *dy, const float *w,
                               const ky_conv_shape *s, ky_conv_algo algo);
ky_status ky_cuda_conv2d_wgrad(ky_cuda *cu, float *dw, float *db, const float *dy, const float *x,
                               const ky_conv_shape *s, ky_conv_algo algo);

/* ---- batch norm --------------------------------------------------------------------------- */
ky_status ky_cuda_bn_fwd_train(ky_cuda *cu, float *y, float *save_mean, float *save_invstd, float *run_mean,
                               float *run_var, const float *x, const float *gamma, const float *beta,
                               size_t npix, int c, float eps, float momentum);
ky_status ky_cuda_bn_fwd_eval(ky_cuda *cu, float *y, const float *x, const float *gamma, const float *beta,
                              const float *run_mean, const float *run_var, size_t npix, int c, float eps);
ky_status ky_cuda_bn_bwd_train(ky_cuda *cu, float *dx, float *dgamma, float *dbeta, const float *dy,
                               const float *x, const float *gamma, const float *save_mean,
                               const float *save_invstd, size_t npix, int c);
ky_status ky_cuda_bn_bwd_eval(ky_cuda *cu, float *dx, float *dgamma, float *dbeta, const float *dy,
                              const float *x, const float *gamma, const float *run_mean,
                              const float *run_var, size_t npix, int c, float eps);
/* Synchronised batch norm (ops/batchnorm_sync.c): the per-channel sums of one rank, in double,
 * copied to host buffers for the all-reduce, and the apply steps fed with the global sums.
 * stats: sums[c] = sum x (mean NULL), or sum (x - mean)^2 (mean: host [c] doubles). */
ky_status ky_cuda_bn_sync_stats(ky_cuda *cu, double *sums, const float *x, const double *mean, size_t npix, int c);
/* sums: host [2c] = sum dy, sum dy * xhat; dgamma / dbeta (may be NULL) += this rank's sums. */
ky_status ky_cuda_bn_sync_grad_sums(ky_cuda *cu, double *sums, float *dgamma, float *dbeta, const float *dy,
                                    const float *x, const float *save_mean, const float *save_invstd, size_t npix,
                                    int c);
/* stats: host [2c] = global mean, global sum of centred squares; n: global N*H*W. */
ky_status ky_cuda_bn_sync_fwd_apply(ky_cuda *cu, float *y, float *save_mean, float *save_invstd, float *run_mean,
                                    float *run_var, const float *x, const float *gamma, const float *beta,
                                    const double *stats, double n, size_t npix, int c, float eps, float momentum);
/* sums: host [2c] = global sum dy, sum dy * xhat; dx += with count = global N*H*W. */
ky_status ky_cuda_bn_sync_bwd_apply(ky_cuda *cu, float *dx, const float *dy, const float *x, const float *gamma,
                                    const float *save_mean, const float *save_invstd, const double *sums,
                                    double count, size_t npix, int c);

/* ---- elementwise -------------------------------------------------------------------------- */
ky_status ky_cuda_relu_fwd(ky_cuda *cu, float *y, const float *x, size_t n);
ky_status ky_cuda_relu_bwd(ky_cuda *cu, float *dx, const float *dy, const float *y, size_t n);
ky_status ky_cuda_sigmoid_fwd(ky_cuda *cu, float *y, const float *x, size_t n);
ky_status ky_cuda_sigmoid_bwd(ky_cuda *cu, float *dx, const float *dy, const float *y, size_t n);
ky_status ky_cuda_add_fwd(ky_cuda *cu, float *y, const float *a, const float *b, size_t n);
ky_status ky_cuda_scale_fwd(ky_cuda *cu, float *y, const float *x, float alpha, size_t n);
ky_status ky_cuda_axpy(ky_cuda *cu, float *y, const float *x, float alpha, size_t n);
ky_status ky_cuda_fill(ky_cuda *cu, float *y, float v, size_t n);

/* ---- pooling ------------------------------------------------------------------------------ */
ky_status ky_cuda_maxpool_fwd(ky_cuda *cu, float *y, int32_t *argmax, const float *x, const ky_pool_shape *s);
ky_status ky_cuda_maxpool_bwd(ky_cuda *cu, float *dx, const float *dy, const int32_t *argmax, const ky_pool_shape *s);
ky_status ky_cuda_gap_fwd(ky_cuda *cu, float *y, const float *x, int n, int hw, int c);
ky_status ky_cuda_gap_bwd(ky_cuda *cu, float *dx, const float *dy, int n, int hw, int c);

/* ---- concat (xs / dxs are host arrays of device pointers, k <= 8) ---------------------------- */
ky_status ky_cuda_concat_fwd(ky_cuda *cu, float *y, const float *const *xs, const int *cs, int k, size_t npix);
ky_status ky_cuda_concat_bwd(ky_cuda *cu, float *const *dxs, const float *dy, const int *cs, int k, size_t npix);

/* ---- upsampling --------------------------------------------------------------------------- */
ky_status ky_cuda_upsample_nearest_fwd(ky_cuda *cu, float *y, const float *x, int n, int h, int w, int c, int f);
ky_status ky_cuda_upsample_nearest_bwd(ky_cuda *cu, float *dx, const float *dy, int n, int h, int w, int c, int f);
ky_status ky_cuda_upsample_bilinear2_fwd(ky_cuda *cu, float *y, const float *x, int n, int h, int w, int c);
ky_status ky_cuda_upsample_bilinear2_bwd(ky_cuda *cu, float *dx, const float *dy, int n, int h, int w, int c);

/* ---- softmax ------------------------------------------------------------------------------ */
ky_status ky_cuda_softmax_fwd(ky_cuda *cu, float *y, const float *x, size_t npix, int c);
ky_status ky_cuda_softmax_bwd(ky_cuda *cu, float *dx, const float *dy, const float *y, size_t npix, int c);

/* ---- losses: scalar outputs (loss, dice, sums) are DEVICE pointers; dloss / ddice are read
 *      from device memory too so that no host round trip sits in the training step. --------- */
ky_status ky_cuda_bce_logits_fwd(ky_cuda *cu, float *loss, const float *x, const float *t, size_t npix, int c, int ch);
ky_status ky_cuda_bce_logits_bwd(ky_cuda *cu, float *dx, const float *x, const float *t, const float *dloss,
                                 size_t npix, int c, int ch);
ky_status ky_cuda_focal_logits_fwd(ky_cuda *cu, float *loss, const float *x, const float *t, size_t npix, int c, int ch,
                                   float gamma, float alpha);  /* cuda/focal.cu */
ky_status ky_cuda_focal_logits_bwd(ky_cuda *cu, float *dx, const float *x, const float *t, const float *dloss,
                                   size_t npix, int c, int ch, float gamma, float alpha);
ky_status ky_cuda_softmax_ce_fwd(ky_cuda *cu, float *loss, const float *x, const uint8_t *cls, const float *w,
                                 size_t npix, int c);
ky_status ky_cuda_softmax_ce_bwd(ky_cuda *cu, float *dx, const float *x, const uint8_t *cls, const float *w,
                                 const float *dloss, size_t npix, int c);
ky_status ky_cuda_dice_fwd(ky_cuda *cu, float *dice, double *sums, const float *p, int pc, int pch,
                           const float *t, int tc, int tch, int n, size_t hw, float eps, int per_image);
ky_status ky_cuda_dice_bwd(ky_cuda *cu, float *dp, const float *ddice, const double *sums, const float *p,
                           int pc, int pch, const float *t, int tc, int tch, int n, size_t hw, float eps,
                           int per_image);
ky_status ky_cuda_onehot(ky_cuda *cu, float *y, const uint8_t *cls, size_t npix, int c);

/* ---- optimisers over flat device blocks --------------------------------------------------- */
ky_status ky_cuda_adam(ky_cuda *cu, float *p, float *m, float *v, float *vmax, const float *g, size_t n,
                       const ky_adam_args *a);
ky_status ky_cuda_sgd(ky_cuda *cu, float *p, float *buf, const float *g, size_t n, const ky_sgd_args *a);
/* *out (device double) = sum of squares of x, fixed-order reduction. */
ky_status ky_cuda_sumsq(ky_cuda *cu, double *out, const float *x, size_t n);

#ifdef __cplusplus
}
#endif
#endif

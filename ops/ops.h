/* Tensor-level ops with autograd: shape checks, a tape node, and one dispatch point per op to the
 * CPU reference (ops/kernels.h) or the CUDA backend (cuda/kernels.h) by the tensors' device.
 * Results are allocated in the context's step arena. Tested by tests/optable_cases.c, which drives
 * the gradient checks (tests/test_ops_gradcheck.c), the CPU-vs-CUDA checks (tests/test_cuda_optable.c)
 * and the op benchmarks (bench/bench_ops.c). CUDA convolutions use the context's algorithm chooser
 * (KY_CONV_ALGO_AUTO) within the precision the context allows (ky_cuda_set_tf32). */
#ifndef KY_OPS_H
#define KY_OPS_H

#include "core/ctx.h"
#include "core/tensor.h"

/* y = conv(x, w) + b, optional fused ReLU. x [n,h,w,c], w [k,kh,kw,c] (OHWI), b [k] or NULL. */
ky_status ky_conv2d(ky_ctx *ctx, ky_tensor **y, ky_tensor *x, ky_tensor *w, ky_tensor *b,
                    int stride, int pad, int dil, int relu);
/* Batch norm over NHWC channels: ctx->training picks batch statistics (and updates the running
 * ones in place) or running statistics. gamma, beta, run_mean, run_var: [c]. */
ky_status ky_batchnorm2d(ky_ctx *ctx, ky_tensor **y, ky_tensor *x, ky_tensor *gamma, ky_tensor *beta,
                         ky_tensor *run_mean, ky_tensor *run_var, float eps, float momentum);
ky_status ky_relu(ky_ctx *ctx, ky_tensor **y, ky_tensor *x);
ky_status ky_sigmoid(ky_ctx *ctx, ky_tensor **y, ky_tensor *x);
/* Softmax over the last (channel) axis. */
ky_status ky_softmax(ky_ctx *ctx, ky_tensor **y, ky_tensor *x);
ky_status ky_add(ky_ctx *ctx, ky_tensor **y, ky_tensor *a, ky_tensor *b);
ky_status ky_scale(ky_ctx *ctx, ky_tensor **y, ky_tensor *x, float alpha);
/* Max pooling, square window k, stride, padding (padding never wins). */
ky_status ky_maxpool2d(ky_ctx *ctx, ky_tensor **y, ky_tensor *x, int k, int stride, int pad);
/* [n,h,w,c] -> [n,1,1,c] */
ky_status ky_global_avgpool(ky_ctx *ctx, ky_tensor **y, ky_tensor *x);
/* Channel concat of k (<= 8) NHWC tensors with equal n, h, w. */
ky_status ky_concat(ky_ctx *ctx, ky_tensor **y, ky_tensor *const *xs, int k);
/* Nearest-neighbour upsampling by an integer factor f. */
ky_status ky_upsample_nearest(ky_ctx *ctx, ky_tensor **y, ky_tensor *x, int f);
/* Bilinear x2, align_corners = false (PyTorch). */
ky_status ky_upsample_bilinear2(ky_ctx *ctx, ky_tensor **y, ky_tensor *x);
/* A view with another shape of the same element count (no copy); backward passes the gradient. */
ky_status ky_reshape(ky_ctx *ctx, ky_tensor **y, ky_tensor *x, int ndim, const int *shape);

/* y = a * x + b elementwise (used for "1 - dice" and loss sums); backward dx += a * dy. */
ky_status ky_affine(ky_ctx *ctx, ky_tensor **y, ky_tensor *x, float a, float b);
/* Mean of all elements -> one-element tensor [1]. */
ky_status ky_mean(ky_ctx *ctx, ky_tensor **y, ky_tensor *x);

#endif

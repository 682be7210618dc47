/* The raw-pointer kernel contract shared by the CPU reference (ops/ *_cpu.c, losses/ *_cpu.c,
 * optim/ *_cpu.c) and the CUDA backend (cuda/kernels.h declares the same list with a leading
 * ky_cuda* and a ky_status return). The tensor-level ops (ops/ *.c) check shapes and dispatch here.
 * Tested by tests/test_ops_kernels.c (hand-worked values), the op-case table's gradient checks
 * (tests/optable_cases.c) and the PyTorch parity fixtures (tests/test_parity_ops.c).
 *
 * Conventions, for every kernel here:
 * - Activations are NHWC float32, contiguous. `npix` = N*H*W. Weights are OHWI.
 * - Outputs first, inputs next, sizes last.
 * - Forward kernels OVERWRITE their outputs.
 * - Backward kernels ACCUMULATE into gradient buffers (dx += ...), because one tensor may feed
 *   several consumers; callers zero gradients explicitly.
 * - Reductions are done in a fixed order (double or pairwise accumulation on the CPU), so results
 *   are bitwise reproducible run to run.
 * - No kernel allocates memory: scratch space comes from the caller (see *_work_floats).
 * - The leading `pool` (core/pool.h; NULL = the calling thread alone) spreads a kernel over the
 *   context's threads. Results are bitwise identical whatever the thread count: work is split so
 *   that every output element is computed by one chunk, by the same operations in the same order
 *   as on one thread (fixed tiles, channel runs or rows; never a reduction across chunks). The loss
 *   forwards (one double sum in pixel order, a few milliseconds) and ky_cpu_sumsq stay on the
 *   calling thread, so that their sums keep the single-thread order.
 */
#ifndef KY_OPS_KERNELS_H
#define KY_OPS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "core/pool.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- convolution (groups = 1) ------------------------------------------------------------- */
typedef struct {
  int n, h, w, c;          /* input  N x H x W x C */
  int k;                   /* output channels */
  int kh, kw;              /* kernel size */
  int stride, pad, dil;    /* same for both axes */
  int oh, ow;              /* output size: (h + 2*pad - dil*(kh-1) - 1) / stride + 1 */
} ky_conv_shape;

/* Fills oh/ow from the rest; returns 0 when the output would be empty or sizes are invalid. */
int ky_conv_shape_finish(ky_conv_shape *s);

/* Scratch floats the CPU kernels need (im2col tiles) when run on a pool of `threads` threads; the
 * caller passes at least this many (it grows with the thread count: per-thread tiles). */
size_t ky_cpu_conv2d_work_floats(const ky_conv_shape *s, int threads);
/* y[n,oh,ow,k] = sum x * w[k,kh,kw,c] + b[k] (b may be NULL); relu != 0 fuses max(0, .). */
void ky_cpu_conv2d_fwd(ky_pool *pool, float *y, const float *x, const float *w, const float *b,
                       const ky_conv_shape *s, int relu, float *work);
/* dx[n,h,w,c] += conv^T(dy, w) */
void ky_cpu_conv2d_dgrad(ky_pool *pool, float *dx, const float *dy, const float *w, const ky_conv_shape *s, float *work);
/* dw[k,kh,kw,c] += sum dy * x ; db[k] += sum dy (db may be NULL) */
void ky_cpu_conv2d_wgrad(ky_pool *pool, float *dw, float *db, const float *dy, const float *x,
                         const ky_conv_shape *s, float *work);

/* ---- batch normalisation over NHWC (statistics per channel over npix = N*H*W) --------------- */
/* Training: y = (x - mean) * invstd * gamma + beta with batch statistics (biased variance);
 * writes save_mean[c], save_invstd[c] for backward; updates running stats in place with
 * run = (1 - momentum) * run + momentum * batch (running var uses the unbiased variance). */
void ky_cpu_bn_fwd_train(ky_pool *pool, float *y, float *save_mean, float *save_invstd, float *run_mean, float *run_var,
                         const float *x, const float *gamma, const float *beta,
                         size_t npix, int c, float eps, float momentum);
/* Evaluation: running statistics. */
void ky_cpu_bn_fwd_eval(ky_pool *pool, float *y, const float *x, const float *gamma, const float *beta,
                        const float *run_mean, const float *run_var, size_t npix, int c, float eps);
/* Backward of the training form: dx += ..., dgamma += ..., dbeta += ... (any may be NULL). */
/* Decided (CPU reference): gamma / beta may be NULL in every BN kernel (affine=False: 1 and 0);
 * run_mean / run_var may be NULL (no update); with npix == 1 the running variance takes the biased
 * variance (0). Forward computes (x - mean) * (gamma * invstd) + beta, centring first. */
void ky_cpu_bn_bwd_train(ky_pool *pool, float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                         const float *gamma, const float *save_mean, const float *save_invstd,
                         size_t npix, int c);
/* Backward of the evaluation form (a per-channel affine map). */
void ky_cpu_bn_bwd_eval(ky_pool *pool, float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                        const float *gamma, const float *run_mean, const float *run_var,
                        size_t npix, int c, float eps);

/* ---- elementwise ------------------------------------------------------------------------- */
/* Decided: relu(x) = x > 0 ? x : 0, so relu(NaN) = 0 (PyTorch propagates NaN). */
void ky_cpu_relu_fwd(ky_pool *pool, float *y, const float *x, size_t n);
void ky_cpu_relu_bwd(ky_pool *pool, float *dx, const float *dy, const float *y, size_t n);      /* dx += dy*(y>0) */
void ky_cpu_sigmoid_fwd(ky_pool *pool, float *y, const float *x, size_t n);
void ky_cpu_sigmoid_bwd(ky_pool *pool, float *dx, const float *dy, const float *y, size_t n);   /* dx += dy*y*(1-y) */
void ky_cpu_add_fwd(ky_pool *pool, float *y, const float *a, const float *b, size_t n);         /* y = a + b */
void ky_cpu_scale_fwd(ky_pool *pool, float *y, const float *x, float alpha, size_t n);          /* y = alpha*x */
void ky_cpu_axpy(ky_pool *pool, float *y, const float *x, float alpha, size_t n);               /* y += alpha*x */
void ky_cpu_fill(ky_pool *pool, float *y, float v, size_t n);

/* ---- pooling ----------------------------------------------------------------------------- */
typedef struct {
  int n, h, w, c;     /* input */
  int k, stride, pad; /* square window; padding counts as -inf */
  int oh, ow;         /* (h + 2*pad - k) / stride + 1 */
} ky_pool_shape;
/* Decided: returns 0 unless pad <= k/2 (PyTorch's rule: every window holds a real pixel). */
int ky_pool_shape_finish(ky_pool_shape *s);
/* argmax[n,oh,ow,c] = index (ih*w + iw) of the chosen input pixel within its image plane;
 * ties go to the first in row-major window order (as PyTorch). Decided: a NaN beats any number and
 * a later NaN beats an earlier one (PyTorch's `v > max || isnan(v)`). */
void ky_cpu_maxpool_fwd(ky_pool *pool, float *y, int32_t *argmax, const float *x, const ky_pool_shape *s);
void ky_cpu_maxpool_bwd(ky_pool *pool, float *dx, const float *dy, const int32_t *argmax, const ky_pool_shape *s);
/* y[n,c] = mean over H*W of x[n,h,w,c] */
void ky_cpu_gap_fwd(ky_pool *pool, float *y, const float *x, int n, int hw, int c);
void ky_cpu_gap_bwd(ky_pool *pool, float *dx, const float *dy, int n, int hw, int c);

/* ---- channel concat: y[p, :] = [x0[p, 0:c0], x1[p, 0:c1], ...] for p < npix ---------------- */
void ky_cpu_concat_fwd(ky_pool *pool, float *y, const float *const *xs, const int *cs, int k, size_t npix);
/* Decided: dxs[i] == NULL skips input i (it needs no gradient). */
void ky_cpu_concat_bwd(ky_pool *pool, float *const *dxs, const float *dy, const int *cs, int k, size_t npix);

/* ---- upsampling (input N x H x W x C; output N x fH x fW x C) ----------------------------- */
void ky_cpu_upsample_nearest_fwd(ky_pool *pool, float *y, const float *x, int n, int h, int w, int c, int f);
void ky_cpu_upsample_nearest_bwd(ky_pool *pool, float *dx, const float *dy, int n, int h, int w, int c, int f);
/* Bilinear x2, align_corners = false (PyTorch): src = (dst + 0.5)/2 - 0.5, clamped at 0. */
void ky_cpu_upsample_bilinear2_fwd(ky_pool *pool, float *y, const float *x, int n, int h, int w, int c);
void ky_cpu_upsample_bilinear2_bwd(ky_pool *pool, float *dx, const float *dy, int n, int h, int w, int c);

/* ---- channel softmax over the last axis: y[p, :] = softmax(x[p, :]) ------------------------ */
void ky_cpu_softmax_fwd(ky_pool *pool, float *y, const float *x, size_t npix, int c);
void ky_cpu_softmax_bwd(ky_pool *pool, float *dx, const float *dy, const float *y, size_t npix, int c);

/* ---- losses (losses/ *_cpu.c). Scalars are float; sums use double internally. ------------- */
/* BCE with logits on channel `ch` of x (NHWC with c channels) against soft targets t (same layout),
 * mean over npix: loss = mean(max(x,0) - x*t + log(1 + exp(-|x|))). */
void ky_cpu_bce_logits_fwd(float *loss, const float *x, const float *t, size_t npix, int c, int ch);
/* dx[p, ch] += dloss * (sigmoid(x) - t) / npix */
void ky_cpu_bce_logits_bwd(ky_pool *pool, float *dx, const float *x, const float *t, float dloss, size_t npix, int c, int ch);
/* Binary focal loss with logits (losses/focal_cpu.c), same layout and mean as BCE above; p = sigmoid(x):
 * loss = mean(alpha t (1-p)^gamma (-log p) + (1-alpha)(1-t) p^gamma (-log(1-p))), gamma >= 0, alpha in
 * [0, 1]; gamma = 0, alpha = 0.5 gives BCE / 2. bwd: dx[p, ch] += dloss * dl/dx / npix. */
void ky_cpu_focal_logits_fwd(float *loss, const float *x, const float *t, size_t npix, int c, int ch, float gamma,
                             float alpha);
void ky_cpu_focal_logits_bwd(ky_pool *pool, float *dx, const float *x, const float *t, float dloss, size_t npix, int c, int ch,
                             float gamma, float alpha);

/* Softmax cross-entropy from logits x (npix x c) and class indices cls (npix, values < c;
 * 255 = ignore). Optional per-class weights w (NULL = 1). loss = sum_p w[y_p]*nll_p / sum_p w[y_p]
 * (PyTorch's weighted mean). Decided: when no pixel counts (all ignored, or zero total weight)
 * the loss and its gradient are 0, where PyTorch gives NaN; a class >= c other than 255 is skipped
 * like 255 (the tensor-level op rejects it first). */
/* terms: [npix] doubles of scratch for the per-pixel terms, computed on the pool (NULL: all on
 * the calling thread); the sum runs in pixel order either way, so the bits are the same. */
void ky_cpu_softmax_ce_fwd(ky_pool *pool, float *loss, double *terms, const float *x, const uint8_t *cls,
                           const float *w, size_t npix, int c);
void ky_cpu_softmax_ce_bwd(ky_pool *pool, float *dx, const float *x, const uint8_t *cls, const float *w, float dloss,
                           size_t npix, int c);

/* Soft dice between channel pch of p (n images x hw pixels x pc channels) and channel tch of t
 * (n x hw x tc). per_image != 0: one dice per image; else one over the whole batch.
 * sums[g*3 + {0,1,2}] = (sum p*t, sum p, sum t) per group g (n groups or 1), saved for backward.
 * dice[g] = clamp((2*sum_pt + eps) / (sum_p + sum_t + eps), 0, 1). */
void ky_cpu_dice_fwd(float *dice, double *sums, const float *p, int pc, int pch, const float *t, int tc, int tch,
                     int n, size_t hw, float eps, int per_image);
/* dp[.., pch] += ddice[g] * d dice[g] / dp  (zero where the clamp is active).
 * Decided: "active" means the raw value is strictly outside [0, 1]; at exactly 0 or 1 the gradient
 * passes (torch.clamp's backward), e.g. dice = 1 for p == t binary still has a gradient. */
void ky_cpu_dice_bwd(ky_pool *pool, float *dp, const float *ddice, const double *sums, const float *p, int pc, int pch,
                     const float *t, int tc, int tch, int n, size_t hw, float eps, int per_image);

/* One-hot float map from class indices: y[p, k] = (cls[p] == k), k < c. */
void ky_cpu_onehot(ky_pool *pool, float *y, const uint8_t *cls, size_t npix, int c);

/* ---- optimisers over flat blocks (optim/ *_cpu.c) ----------------------------------------- */
typedef struct {
  float lr;            /* learning rate for this step (schedules applied by the caller) */
  float beta1, beta2, eps;
  float weight_decay;  /* decoupled (AdamW-style): p -= lr * wd * p */
  int amsgrad;         /* vmax must be non-NULL when set */
  int64_t step;        /* 1-based step count, for bias correction (decided: step < 1 acts as 1) */
} ky_adam_args;
/* Decided: amsgrad set with vmax == NULL runs plain Adam. Scalars (bias corrections, lr / bc1) are
 * formed in double and applied in float, as PyTorch 1.13's single-tensor Adam / AdamW. */
void ky_cpu_adam(ky_pool *pool, float *p, float *m, float *v, float *vmax, const float *g, size_t n, const ky_adam_args *a);

typedef struct {
  float lr, momentum, dampening, weight_decay;  /* PyTorch SGD semantics; wd is L2 (added to g) */
  int nesterov;
  int64_t step;        /* first step initialises the momentum buffer to g */
} ky_sgd_args;
/* Decided: step <= 1 is the first step (buf = d, no dampening); with momentum 0, buf may be NULL. */
void ky_cpu_sgd(ky_pool *pool, float *p, float *buf, const float *g, size_t n, const ky_sgd_args *a);

/* Sum of squares in double (for global-norm clipping); scaling uses ky_cpu_scale_fwd in place. */
double ky_cpu_sumsq(const float *x, size_t n);

#ifdef __cplusplus
}
#endif
#endif

/* Losses as autograd ops producing a one-element f32 tensor: BCE and focal with logits, softmax
 * cross-entropy, soft dice, weighted sums, and the reference solution's two combinations.
 * Tested by tests/optable_cases.c (gradient checks, CPU-vs-CUDA), tests/test_parity_ops.c (PyTorch)
 * and tests/test_losses_focal.c. */
#ifndef KY_LOSSES_H
#define KY_LOSSES_H

#include "core/ctx.h"

/* mean over pixels of BCE(sigmoid(x[..., ch]), t[..., ch]); x, t: [n,h,w,c] f32, t soft in [0,1]. */
ky_status ky_loss_bce_logits(ky_ctx *ctx, ky_tensor **loss, ky_tensor *x, ky_tensor *t, int ch);
/* Binary focal loss (Lin et al. 2017) on channel ch, mean over pixels, p = sigmoid(x), soft targets t:
 * mean(alpha t (1-p)^gamma (-log p) + (1-alpha)(1-t) p^gamma (-log(1-p))); gamma >= 0, alpha in [0, 1].
 * The defaults below are the paper's. No gradient flows to t. */
#define KY_FOCAL_GAMMA 2.0f
#define KY_FOCAL_ALPHA 0.25f
ky_status ky_loss_focal_logits(ky_ctx *ctx, ky_tensor **loss, ky_tensor *x, ky_tensor *t, int ch, float gamma,
                               float alpha);
/* Softmax cross-entropy: logits [n,h,w,c], cls [n,h,w] u8 (255 = ignore), class_w: c host floats
 * or NULL. Weighted mean as PyTorch. */
ky_status ky_loss_softmax_ce(ky_ctx *ctx, ky_tensor **loss, ky_tensor *logits, ky_tensor *cls,
                             const float *class_w);
/* 1 - dice(p[..., pch], t[..., tch]), dice = clamp((2 sum pt + eps)/(sum p + sum t + eps), 0, 1),
 * per image then averaged over the batch (per_image = 1) or over the whole batch (0). */
ky_status ky_loss_dice(ky_ctx *ctx, ky_tensor **loss, ky_tensor *p, int pch, ky_tensor *t, int tch,
                       float eps, int per_image);
/* loss = sum_i w[i] * terms[i] (k <= 8 one-element tensors). */
ky_status ky_loss_weighted_sum(ky_ctx *ctx, ky_tensor **loss, ky_tensor *const *terms, const float *w, int k);
/* One-hot f32 [n,h,w,c] from a u8 class map [n,h,w] (no gradient). */
ky_status ky_onehot(ky_ctx *ctx, ky_tensor **y, ky_tensor *cls, int c);

/* The reference's softmax loss (Albu): 0.6*CE + 0.2*(1 - dice(p2, y==2)) + 0.2*(1 - dice(p1, y==1)),
 * per-image dice, eps 1e-3. parts (may be NULL) receives the three terms' tensors for logging. */
ky_status ky_loss_softmax_dice(ky_ctx *ctx, ky_tensor **loss, ky_tensor *parts[3], ky_tensor *logits,
                               ky_tensor *cls);
/* The reference's sigmoid loss (Selim): sum over channels of w*BCE + (1-w)*(1 - dice(sigmoid)),
 * batch dice, eps 1e-3; t: [n,h,w,c] soft targets; w = 0.5 in the reference. */
ky_status ky_loss_sigmoid_dice(ky_ctx *ctx, ky_tensor **loss, ky_tensor *logits, ky_tensor *t, float w);
/* As ky_loss_sigmoid_dice with focal loss (KY_FOCAL_GAMMA, KY_FOCAL_ALPHA) in place of BCE:
 * sum over channels of w*focal + (1-w)*(1 - batch dice(sigmoid)), eps 1e-3 (losses/focal.c). */
ky_status ky_loss_focal_dice(ky_ctx *ctx, ky_tensor **loss, ky_tensor *logits, ky_tensor *t, float w);

#endif

/* The op-case table and the machinery shared by its three modes: input generation, upload, and
 * the central-difference gradient check. Used by tests/test_ops_gradcheck.c,
 * tests/test_cuda_optable.c and bench/bench_ops.c. */
#include "tests/optable.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "losses/losses.h"
#include "ops/ops.h"
#include "ops/op_util.h"

/* ---- build functions: in[] are the case inputs in table order ----------------------------- */
static ky_status b_conv(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) {
  /* iparam: stride, pad, dil, relu, has_bias */
  return ky_conv2d(ctx, out, in[0], in[1], c->iparam[4] ? in[2] : NULL, c->iparam[0], c->iparam[1], c->iparam[2],
                   c->iparam[3]);
}
static ky_status b_bn(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) {
  /* iparam[0]: training; in = x, gamma, beta, running mean, running var */
  int old = ctx->training;
  ctx->training = c->iparam[0];
  ky_status s = ky_batchnorm2d(ctx, out, in[0], in[1], in[2], in[3], in[4], 1e-5f, 0.1f);
  ctx->training = old;
  return s;
}
static ky_status b_relu(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) { return ky_relu(ctx, out, in[0]); }
static ky_status b_sigmoid(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) { return ky_sigmoid(ctx, out, in[0]); }
static ky_status b_softmax(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) { return ky_softmax(ctx, out, in[0]); }
static ky_status b_add(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) { return ky_add(ctx, out, in[0], in[1]); }
static ky_status b_scale(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) { return ky_scale(ctx, out, in[0], c->fparam[0]); }
static ky_status b_affine(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) {
  return ky_affine(ctx, out, in[0], c->fparam[0], c->fparam[1]);
}
static ky_status b_mean(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) { return ky_mean(ctx, out, in[0]); }
static ky_status b_maxpool(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) {
  return ky_maxpool2d(ctx, out, in[0], c->iparam[0], c->iparam[1], c->iparam[2]);
}
static ky_status b_gap(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) { return ky_global_avgpool(ctx, out, in[0]); }
static ky_status b_concat(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) { return ky_concat(ctx, out, in, c->n_in); }
static ky_status b_nearest(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) {
  return ky_upsample_nearest(ctx, out, in[0], c->iparam[0]);
}
static ky_status b_bilinear(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) {
  return ky_upsample_bilinear2(ctx, out, in[0]);
}
static ky_status b_reshape(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) {
  return ky_reshape(ctx, out, in[0], 2, c->iparam);
}
static ky_status b_bce(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) {
  return ky_loss_bce_logits(ctx, out, in[0], in[1], c->iparam[0]);
}
static ky_status b_ce(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) {
  static const float w[4] = {0.5f, 2.0f, 1.5f, 0.25f};
  return ky_loss_softmax_ce(ctx, out, in[0], in[1], c->iparam[0] ? w : NULL);
}
static ky_status b_dice(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) {
  /* iparam: pch, tch, per_image */
  return ky_loss_dice(ctx, out, in[0], c->iparam[0], in[1], c->iparam[1], 1e-3f, c->iparam[2]);
}
static ky_status b_softmax_dice(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) {
  return ky_loss_softmax_dice(ctx, out, NULL, in[0], in[1]);
}
static ky_status b_sigmoid_dice(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) {
  return ky_loss_sigmoid_dice(ctx, out, in[0], in[1], 0.5f);
}
static ky_status b_focal(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) {
  /* iparam[0]: channel; fparam: gamma, alpha */
  return ky_loss_focal_logits(ctx, out, in[0], in[1], c->iparam[0], c->fparam[0], c->fparam[1]);
}
static ky_status b_focal_dice(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) {
  return ky_loss_focal_dice(ctx, out, in[0], in[1], c->fparam[0]);
}
static ky_status b_wsum(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) {
  /* Sum of two means, weighted: exercises weighted_sum's backward. */
  ky_tensor *m[2];
  KY_TRY(ky_mean(ctx, &m[0], in[0]));
  KY_TRY(ky_mean(ctx, &m[1], in[1]));
  static const float w[2] = {0.3f, -1.7f};
  return ky_loss_weighted_sum(ctx, out, m, w, 2);
}
/* conv -> BN -> ReLU -> conv: a tiny composite, the way models chain ops. */
static ky_status b_block(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) {
  ky_tensor *a, *b, *r;
  KY_TRY(ky_conv2d(ctx, &a, in[0], in[1], NULL, 1, 1, 1, 0));
  KY_TRY(ky_batchnorm2d(ctx, &b, a, in[2], in[3], in[4], in[5], 1e-5f, 0.1f));
  KY_TRY(ky_relu(ctx, &r, b));
  return ky_conv2d(ctx, out, r, in[1], NULL, 2, 1, 1, 0);
}

/* Planted bug: relu forward whose backward doubles the gradient. */
static ky_status bad_relu_backward(ky_ctx *ctx, ky_node *n) {
  KY_TRY(ky_relu_backward_node(ctx, n));
  return ky_relu_backward_node(ctx, n);
}
static ky_status b_bad_relu(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) {
  KY_TRY(ky_relu(ctx, out, in[0]));
  if ((*out)->node) (*out)->node->backward = bad_relu_backward;
  return KY_OK;
}

#define F32x1 {KY_F32}
#define X4(n, h, w, c) {n, h, w, c}
#define V1(c) {c}

const ky_opcase ky_opcases[] = {
    /* conv2d: x, w (OHWI), b. iparam = stride, pad, dil, relu, bias */
    {"conv2d 3x3 s1 p1 bias [2,5,7,3]->4", 3, {KY_F32, KY_F32, KY_F32}, {4, 4, 1},
     {X4(2, 5, 7, 3), X4(4, 3, 3, 3), V1(4)}, {-1, -1, -1}, {1, 1, 1}, 7, {1, 1, 1, 0, 1}, {0}, 0, 0, 0, b_conv},
    {"conv2d 3x3 s2 p1 nobias [1,9,6,5]->3", 2, {KY_F32, KY_F32}, {4, 4},
     {X4(1, 9, 6, 5), X4(3, 3, 3, 5)}, {-1, -1}, {1, 1}, 3, {2, 1, 1, 0, 0}, {0}, 0, 0, 0, b_conv},
    {"conv2d 7x7 s2 p3 stem [1,13,11,3]->4", 2, {KY_F32, KY_F32}, {4, 4},
     {X4(1, 13, 11, 3), X4(4, 7, 7, 3)}, {-1, -1}, {1, 1}, 3, {2, 3, 1, 0, 0}, {0}, 0, 0, 0, b_conv},
    {"conv2d 1x1 s1 p0 bias [2,4,3,6]->5", 3, {KY_F32, KY_F32, KY_F32}, {4, 4, 1},
     {X4(2, 4, 3, 6), X4(5, 1, 1, 6), V1(5)}, {-1, -1, -1}, {1, 1, 1}, 7, {1, 0, 1, 0, 1}, {0}, 0, 0, 0, b_conv},
    {"conv2d 1x1 s2 p0 downsample [1,7,5,4]->6", 2, {KY_F32, KY_F32}, {4, 4},
     {X4(1, 7, 5, 4), X4(6, 1, 1, 4)}, {-1, -1}, {1, 1}, 3, {2, 0, 1, 0, 0}, {0}, 0, 0, 0, b_conv},
    {"conv2d 3x3 dil2 p2 [1,8,9,2]->3", 3, {KY_F32, KY_F32, KY_F32}, {4, 4, 1},
     {X4(1, 8, 9, 2), X4(3, 3, 3, 2), V1(3)}, {-1, -1, -1}, {1, 1, 1}, 7, {1, 2, 2, 0, 1}, {0}, 0, 0, 0, b_conv},
    {"conv2d 3x3 s2 dil2 p2 bias [2,11,9,3]->4", 3, {KY_F32, KY_F32, KY_F32}, {4, 4, 1},
     {X4(2, 11, 9, 3), X4(4, 3, 3, 3), V1(4)}, {-1, -1, -1}, {1, 1, 1}, 7, {2, 2, 2, 0, 1}, {0}, 0, 0, 0, b_conv},
    {"conv2d 3x3 p1 fused relu [2,6,5,3]->4", 3, {KY_F32, KY_F32, KY_F32}, {4, 4, 1},
     {X4(2, 6, 5, 3), X4(4, 3, 3, 3), V1(4)}, {-1, -1, -1}, {1, 1, 1}, 7, {1, 1, 1, 1, 1}, {0}, 0, 0, 0, b_conv},
    {"conv2d 3x3 s1 p1 C16 (in-place wgrad) [1,5,4,16]->7", 3, {KY_F32, KY_F32, KY_F32}, {4, 4, 1},
     {X4(1, 5, 4, 16), X4(7, 3, 3, 16), V1(7)}, {-1, -1, -1}, {1, 1, 1}, 7, {1, 1, 1, 0, 1}, {0}, 0, 0, 0, b_conv},
    {"conv2d 5x3-free 2x2 s1 p0 [1,5,4,3]->2", 2, {KY_F32, KY_F32}, {4, 4},
     {X4(1, 5, 4, 3), X4(2, 2, 2, 3)}, {-1, -1}, {1, 1}, 3, {1, 0, 1, 0, 0}, {0}, 0, 0, 0, b_conv},
    /* batchnorm: x, gamma, beta, running mean, running var; iparam[0] = training */
    {"batchnorm2d train [2,5,3,7]", 5, {KY_F32, KY_F32, KY_F32, KY_F32, KY_F32}, {4, 1, 1, 1, 1},
     {X4(2, 5, 3, 7), V1(7), V1(7), V1(7), V1(7)}, {-2, 0.5f, -1, -1, 0.5f}, {3, 1.5f, 1, 1, 2}, 7, {1}, {0}, 0, 0, 0, b_bn},
    {"batchnorm2d train batch1 [1,3,4,5]", 5, {KY_F32, KY_F32, KY_F32, KY_F32, KY_F32}, {4, 1, 1, 1, 1},
     {X4(1, 3, 4, 5), V1(5), V1(5), V1(5), V1(5)}, {-1, 0.5f, -1, -1, 0.5f}, {1, 1.5f, 1, 1, 2}, 7, {1}, {0}, 0, 0, 0, b_bn},
    {"batchnorm2d eval [2,3,5,6]", 5, {KY_F32, KY_F32, KY_F32, KY_F32, KY_F32}, {4, 1, 1, 1, 1},
     {X4(2, 3, 5, 6), V1(6), V1(6), V1(6), V1(6)}, {-2, 0.5f, -1, -1, 0.5f}, {2, 1.5f, 1, 1, 2}, 7, {0}, {0}, 0, 0, 0, b_bn},
    /* elementwise */
    {"relu [2,5,3,7]", 1, {KY_F32}, {4}, {X4(2, 5, 3, 7)}, {-2}, {2}, 1, {0}, {0}, 1, 0, 0, b_relu},
    {"sigmoid [1,4,7,3]", 1, {KY_F32}, {4}, {X4(1, 4, 7, 3)}, {-4}, {4}, 1, {0}, {0}, 0, 0, 0, b_sigmoid},
    {"softmax c3 [2,5,3,3]", 1, {KY_F32}, {4}, {X4(2, 5, 3, 3)}, {-3}, {3}, 1, {0}, {0}, 0, 0, 0, b_softmax},
    {"softmax c37 [1,3,2,37]", 1, {KY_F32}, {4}, {X4(1, 3, 2, 37)}, {-3}, {3}, 1, {0}, {0}, 0, 0, 0, b_softmax},
    {"add [2,3,5,7]", 2, {KY_F32, KY_F32}, {4, 4}, {X4(2, 3, 5, 7), X4(2, 3, 5, 7)}, {-1, -1}, {1, 1}, 3, {0}, {0}, 0, 0, 0, b_add},
    {"scale -1.5 [1,3,5,2]", 1, {KY_F32}, {4}, {X4(1, 3, 5, 2)}, {-1}, {1}, 1, {0}, {-1.5f}, 0, 0, 0, b_scale},
    {"affine 0.7x+2 [19]", 1, {KY_F32}, {1}, {V1(19)}, {-1}, {1}, 1, {0}, {0.7f, 2.0f}, 0, 0, 0, b_affine},
    {"mean [3,5,2,3]", 1, {KY_F32}, {4}, {X4(3, 5, 2, 3)}, {-1}, {1}, 1, {0}, {0}, 0, 0, 0, b_mean},
    {"reshape [2,3,4,5]->[6,20]", 1, {KY_F32}, {4}, {X4(2, 3, 4, 5)}, {-1}, {1}, 1, {6, 20}, {0}, 0, 0, 0, b_reshape},
    /* pooling */
    {"maxpool 3/2/1 [2,9,7,3]", 1, {KY_F32}, {4}, {X4(2, 9, 7, 3)}, {-1}, {1}, 1, {3, 2, 1}, {0}, 2, 0, 0, b_maxpool},
    {"maxpool 2/2/0 [1,6,5,4]", 1, {KY_F32}, {4}, {X4(1, 6, 5, 4)}, {-1}, {1}, 1, {2, 2, 0}, {0}, 2, 0, 0, b_maxpool},
    {"global_avgpool [2,5,3,6]", 1, {KY_F32}, {4}, {X4(2, 5, 3, 6)}, {-1}, {1}, 1, {0}, {0}, 0, 0, 0, b_gap},
    /* concat and upsampling */
    {"concat 3+5 [2,3,4,*]", 2, {KY_F32, KY_F32}, {4, 4}, {X4(2, 3, 4, 3), X4(2, 3, 4, 5)}, {-1, -1}, {1, 1}, 3, {0}, {0}, 0, 0, 0, b_concat},
    {"concat 1+2+4 [1,5,3,*]", 3, {KY_F32, KY_F32, KY_F32}, {4, 4, 4}, {X4(1, 5, 3, 1), X4(1, 5, 3, 2), X4(1, 5, 3, 4)},
     {-1, -1, -1}, {1, 1, 1}, 7, {0}, {0}, 0, 0, 0, b_concat},
    {"upsample nearest x2 [2,3,5,3]", 1, {KY_F32}, {4}, {X4(2, 3, 5, 3)}, {-1}, {1}, 1, {2}, {0}, 0, 0, 0, b_nearest},
    {"upsample nearest x3 [1,2,3,3]", 1, {KY_F32}, {4}, {X4(1, 2, 3, 3)}, {-1}, {1}, 1, {3}, {0}, 0, 0, 0, b_nearest},
    {"upsample bilinear x2 [2,3,5,3]", 1, {KY_F32}, {4}, {X4(2, 3, 5, 3)}, {-1}, {1}, 1, {0}, {0}, 0, 0, 0, b_bilinear},
    {"upsample bilinear x2 [1,1,8,3]", 1, {KY_F32}, {4}, {X4(1, 1, 8, 3)}, {-1}, {1}, 1, {0}, {0}, 0, 0, 0, b_bilinear},
    /* losses */
    {"bce_logits ch1 [2,5,3,3]", 2, {KY_F32, KY_F32}, {4, 4}, {X4(2, 5, 3, 3), X4(2, 5, 3, 3)}, {-4, 0}, {4, 1}, 1, {1},
     {0}, 0, 0, 0, b_bce},
    {"softmax_ce c3 [2,5,4]", 2, {KY_F32, KY_U8}, {4, 3}, {X4(2, 5, 4, 3), X4(2, 5, 4, 0)}, {-3, 0}, {3, 2}, 1, {0},
     {0}, 0, 0, 0, b_ce},
    {"softmax_ce c4 weighted+ignore [1,3,7]", 2, {KY_F32, KY_U8}, {4, 3}, {X4(1, 3, 7, 4), X4(1, 3, 7, 0)}, {-3, 0},
     {3, 4}, 1, {1}, {0}, 0, 0, 0, b_ce},
    {"dice per-image [2,5,3,3]", 2, {KY_F32, KY_F32}, {4, 4}, {X4(2, 5, 3, 3), X4(2, 5, 3, 2)}, {0.05f, 0}, {0.95f, 1}, 1,
     {2, 1, 1}, {0}, 0, 0, 0, b_dice},
    {"dice batch [3,4,3,2]", 2, {KY_F32, KY_F32}, {4, 4}, {X4(3, 4, 3, 2), X4(3, 4, 3, 2)}, {0.05f, 0}, {0.95f, 1}, 1,
     {0, 0, 0}, {0}, 0, 0, 0, b_dice},
    {"weighted_sum of means", 2, {KY_F32, KY_F32}, {1, 2}, {V1(5), {3, 4}}, {-1, -1}, {1, 1}, 3, {0}, {0}, 0, 0, 0, b_wsum},
    {"loss softmax+dice (Albu) [2,6,5,3]", 2, {KY_F32, KY_U8}, {4, 3}, {X4(2, 6, 5, 3), X4(2, 6, 5, 0)}, {-3, 0}, {3, 2},
     1, {0}, {0}, 0, 0, 0, b_softmax_dice},
    {"loss sigmoid+dice (Selim) [2,4,5,2]", 2, {KY_F32, KY_F32}, {4, 4}, {X4(2, 4, 5, 2), X4(2, 4, 5, 2)}, {-3, 0},
     {3, 1}, 1, {0}, {0}, 0, 0, 0, b_sigmoid_dice},
    /* composite */
    {"block conv-bn-relu-conv [2,6,5,3]", 6, {KY_F32, KY_F32, KY_F32, KY_F32, KY_F32, KY_F32}, {4, 4, 1, 1, 1, 1},
     {X4(2, 6, 5, 3), X4(3, 3, 3, 3), V1(3), V1(3), V1(3), V1(3)}, {-1, -1, 0.5f, -1, -1, 0.5f}, {1, 1, 1.5f, 1, 1, 2},
     15, {0}, {0}, 0, 0, 0, b_block},
    /* focal loss: logits, soft targets in [0, 1]; iparam[0] = channel, fparam = gamma, alpha */
    {"focal_logits ch0 soft [2,5,3,1]", 2, {KY_F32, KY_F32}, {4, 4}, {X4(2, 5, 3, 1), X4(2, 5, 3, 1)}, {-4, 0}, {4, 1}, 1,
     {0}, {2.0f, 0.25f}, 0, 0, 0, b_focal},
    {"focal_logits ch2 g1.5 a0.6 [1,7,5,3]", 2, {KY_F32, KY_F32}, {4, 4}, {X4(1, 7, 5, 3), X4(1, 7, 5, 3)}, {-6, 0},
     {6, 1}, 1, {2}, {1.5f, 0.6f}, 0, 0, 0, b_focal},
    {"focal_logits ch1 g0 a0.5 [3,1,9,2]", 2, {KY_F32, KY_F32}, {4, 4}, {X4(3, 1, 9, 2), X4(3, 1, 9, 2)}, {-3, 0}, {3, 1},
     1, {1}, {0.0f, 0.5f}, 0, 0, 0, b_focal},
    {"loss focal+dice w0.5 [2,4,5,2]", 2, {KY_F32, KY_F32}, {4, 4}, {X4(2, 4, 5, 2), X4(2, 4, 5, 2)}, {-3, 0}, {3, 1}, 1,
     {0}, {0.5f}, 0, 0, 0, b_focal_dice},
    /* Benchmark rows (bench = 1): the ResNet34 U-Net's layers at batch 2, 256x256
     * (../shared/spec/benchmark_model.md); timed by bench/bench_ops.c, too big for the gradient check. */
    {"bench conv 7x7/2 stem 3->64 [2,256,256,3]", 2, {KY_F32, KY_F32}, {4, 4}, {X4(2, 256, 256, 3), X4(64, 7, 7, 3)},
     {-1, -1}, {1, 1}, 3, {2, 3, 1, 0, 0}, {0}, 0, 1, 0, b_conv},
    {"bench conv 3x3 64->64 [2,64,64,64]", 2, {KY_F32, KY_F32}, {4, 4}, {X4(2, 64, 64, 64), X4(64, 3, 3, 64)},
     {-1, -1}, {1, 1}, 3, {1, 1, 1, 0, 0}, {0}, 0, 1, 0, b_conv},
    {"bench conv 3x3 128->128 [2,32,32,128]", 2, {KY_F32, KY_F32}, {4, 4}, {X4(2, 32, 32, 128), X4(128, 3, 3, 128)},
     {-1, -1}, {1, 1}, 3, {1, 1, 1, 0, 0}, {0}, 0, 1, 0, b_conv},
    {"bench conv 3x3 256->256 [2,16,16,256]", 2, {KY_F32, KY_F32}, {4, 4}, {X4(2, 16, 16, 256), X4(256, 3, 3, 256)},
     {-1, -1}, {1, 1}, 3, {1, 1, 1, 0, 0}, {0}, 0, 1, 0, b_conv},
    {"bench conv 3x3 512->512 [2,8,8,512]", 2, {KY_F32, KY_F32}, {4, 4}, {X4(2, 8, 8, 512), X4(512, 3, 3, 512)},
     {-1, -1}, {1, 1}, 3, {1, 1, 1, 0, 0}, {0}, 0, 1, 0, b_conv},
    {"bench conv 3x3 128->64 dec [2,128,128,128]", 3, {KY_F32, KY_F32, KY_F32}, {4, 4, 1},
     {X4(2, 128, 128, 128), X4(64, 3, 3, 128), V1(64)}, {-1, -1, -1}, {1, 1, 1}, 7, {1, 1, 1, 1, 1}, {0}, 0, 1, 0, b_conv},
    {"bench conv 3x3 64->64 dec [2,256,256,64]", 3, {KY_F32, KY_F32, KY_F32}, {4, 4, 1},
     {X4(2, 256, 256, 64), X4(64, 3, 3, 64), V1(64)}, {-1, -1, -1}, {1, 1, 1}, 7, {1, 1, 1, 1, 1}, {0}, 0, 1, 0, b_conv},
    {"bench batchnorm2d train [2,128,128,64]", 5, {KY_F32, KY_F32, KY_F32, KY_F32, KY_F32}, {4, 1, 1, 1, 1},
     {X4(2, 128, 128, 64), V1(64), V1(64), V1(64), V1(64)}, {-2, 0.5f, -1, -1, 0.5f}, {3, 1.5f, 1, 1, 2}, 7, {1}, {0},
     0, 1, 0, b_bn},
    {"bench relu [2,128,128,64]", 1, {KY_F32}, {4}, {X4(2, 128, 128, 64)}, {-1}, {1}, 1, {0}, {0}, 0, 1, 0, b_relu},
    {"bench maxpool 3/2/1 [2,128,128,64]", 1, {KY_F32}, {4}, {X4(2, 128, 128, 64)}, {-1}, {1}, 1, {3, 2, 1}, {0}, 0, 1, 0,
     b_maxpool},
    {"bench add [2,64,64,64]", 2, {KY_F32, KY_F32}, {4, 4}, {X4(2, 64, 64, 64), X4(2, 64, 64, 64)}, {-1, -1}, {1, 1}, 3,
     {0}, {0}, 0, 1, 0, b_add},
    {"bench upsample nearest x2 [2,128,128,64]", 1, {KY_F32}, {4}, {X4(2, 128, 128, 64)}, {-1}, {1}, 1, {2}, {0}, 0, 1, 0,
     b_nearest},
    {"bench concat 64+64 [2,128,128,*]", 2, {KY_F32, KY_F32}, {4, 4}, {X4(2, 128, 128, 64), X4(2, 128, 128, 64)},
     {-1, -1}, {1, 1}, 3, {0}, {0}, 0, 1, 0, b_concat},
    {"bench loss softmax+dice [2,256,256,3]", 2, {KY_F32, KY_U8}, {4, 3}, {X4(2, 256, 256, 3), X4(2, 256, 256, 0)},
     {-3, 0}, {3, 2}, 1, {0}, {0}, 0, 1, 0, b_softmax_dice},
    {NULL},
};

const ky_opcase ky_opcase_planted_bug = {
    "relu with a doubled backward (planted bug)", 1, {KY_F32}, {4}, {X4(1, 3, 4, 2)}, {0.1f}, {2}, 1, {0}, {0}, 1, 0, 0,
    b_bad_relu};

/* ---- inputs -------------------------------------------------------------------------------- */
ky_status ky_opcase_make_inputs(ky_opcase_inputs *in, const ky_opcase *c, uint64_t seed) {
  memset(in, 0, sizeof *in);
  ky_rng r = ky_rng_make(seed, KY_RNG_STREAM_TEST);
  for (int i = 0; i < c->n_in; i++) {
    size_t n = 1;
    for (int d = 0; d < c->ndim[i]; d++) n *= (size_t)c->shape[i][d];
    in->numel[i] = n;
    if (c->dtype[i] == KY_U8) {
      uint8_t *u = malloc(n ? n : 1);
      if (!u) return ky_error(KY_ERR_NOMEM, "opcase inputs: out of memory");
      int lo = (int)c->lo[i], hi = (int)c->hi[i];
      for (size_t k = 0; k < n; k++) {
        int v = (int)ky_rng_int(&r, lo, hi + 1);
        /* A class index of c_logits or above in the table means "ignore" (255). */
        if (c->ndim[0] == 4 && v >= c->shape[0][3]) v = 255;
        u[k] = (uint8_t)v;
      }
      in->data[i] = u;
      continue;
    }
    float *f = malloc((n ? n : 1) * sizeof(float));
    if (!f) return ky_error(KY_ERR_NOMEM, "opcase inputs: out of memory");
    for (size_t k = 0; k < n; k++) f[k] = ky_rng_uniform_range(&r, c->lo[i], c->hi[i]);
    if (c->kink == 1 && i == 0)
      for (size_t k = 0; k < n; k++) if (fabsf(f[k]) < 0.05f) f[k] = f[k] < 0 ? -0.05f - f[k] : 0.05f + f[k];
    if (c->kink == 2 && i == 0) {
      /* Distinct values 0.02 apart in random order: no two window members within the step. */
      int *perm = malloc(n * sizeof(int));
      if (!perm) { free(f); return ky_error(KY_ERR_NOMEM, "opcase inputs: out of memory"); }
      for (size_t k = 0; k < n; k++) perm[k] = (int)k;
      ky_rng_shuffle_int(&r, perm, n);
      for (size_t k = 0; k < n; k++) f[k] = c->lo[i] + 0.02f * (float)perm[k];
      free(perm);
    }
    in->data[i] = f;
  }
  return KY_OK;
}

void ky_opcase_free_inputs(ky_opcase_inputs *in) {
  for (int i = 0; i < KY_CASE_MAX_IN; i++) free(in->data[i]);
  memset(in, 0, sizeof *in);
}

ky_status ky_opcase_upload(ky_ctx *ctx, ky_tensor **t, const ky_opcase *c, const ky_opcase_inputs *in, int grad) {
  for (int i = 0; i < c->n_in; i++) {
    KY_TRY(ky_tensor_from_host(ctx, &t[i], c->dtype[i], c->ndim[i], c->shape[i], in->data[i]));
    t[i]->requires_grad = grad && ((c->diff >> i) & 1);
  }
  return KY_OK;
}

/* ---- gradient check ------------------------------------------------------------------------ */
/* L = sum(y * r) in double for the inputs in `in` (host). */
static ky_status eval_loss(ky_ctx *ctx, const ky_opcase *c, const ky_opcase_inputs *in, const float *r, size_t ny,
                           double *L, double *S) {
  ky_ctx_reset(ctx);
  ky_tensor *t[KY_CASE_MAX_IN], *y;
  KY_TRY(ky_opcase_upload(ctx, t, c, in, 0));
  KY_TRY(c->build(ctx, c, t, &y));
  KY_CHECK(ky_tensor_numel(y) == ny, KY_ERR_STATE, "gradcheck: output size changed");
  float *yh = malloc(ny * sizeof(float));
  if (!yh) return ky_error(KY_ERR_NOMEM, "gradcheck: out of memory");
  ky_status s = ky_tensor_to_host(ctx, yh, y);
  double l = 0, sa = 0;
  for (size_t i = 0; i < ny; i++) { l += (double)yh[i] * r[i]; sa += fabs((double)yh[i] * r[i]); }
  free(yh);
  *L = l;
  if (S) *S = sa;
  return s;
}

ky_status ky_gradcheck(ky_gradcheck_report *rep, const ky_opcase *c, uint64_t seed) {
  memset(rep, 0, sizeof *rep);
  ky_ctx ctx;
  KY_TRY(ky_ctx_init(&ctx, KY_DEV_CPU, 0));
  ky_opcase_inputs in;
  ky_status s = ky_opcase_make_inputs(&in, c, seed);
  float *r = NULL, *ana[KY_CASE_MAX_IN] = {0};
  if (s != KY_OK) goto done;
  /* Analytic gradients: one backward pass with dy = r. */
  ky_tensor *t[KY_CASE_MAX_IN], *y, *dy;
  if ((s = ky_opcase_upload(&ctx, t, c, &in, 1)) != KY_OK) goto done;
  if ((s = c->build(&ctx, c, t, &y)) != KY_OK) goto done;
  size_t ny = ky_tensor_numel(y);
  r = malloc(ny * sizeof(float));
  if (!r) { s = ky_error(KY_ERR_NOMEM, "gradcheck: out of memory"); goto done; }
  ky_rng rr = ky_rng_make(seed + 1, KY_RNG_STREAM_TEST);
  for (size_t i = 0; i < ny; i++) r[i] = ky_rng_uniform_range(&rr, -1, 1);
  if ((s = ky_tensor_from_host(&ctx, &dy, KY_F32, y->ndim, y->shape, r)) != KY_OK) goto done;
  if ((s = ky_backward_from(&ctx, y, dy)) != KY_OK) goto done;
  for (int i = 0; i < c->n_in; i++) {
    if (!((c->diff >> i) & 1)) continue;
    ana[i] = calloc(in.numel[i] ? in.numel[i] : 1, sizeof(float));
    if (!ana[i]) { s = ky_error(KY_ERR_NOMEM, "gradcheck: out of memory"); goto done; }
    if (t[i]->grad && (s = ky_tensor_to_host(&ctx, ana[i], t[i]->grad)) != KY_OK) goto done;
  }
  /* Numerical gradients on a sample of elements; a step of h and of h/2 must agree, otherwise the
   * point sits on a kink (ReLU, max) and is skipped rather than judged. */
  const double h = 4e-3;
  ky_rng pick = ky_rng_make(seed + 2, KY_RNG_STREAM_TEST);
  for (int i = 0; i < c->n_in; i++) {
    if (!ana[i]) continue;
    float *x = in.data[i];
    double amax = 0;
    for (size_t k = 0; k < in.numel[i]; k++) amax = fmax(amax, fabs(ana[i][k]));
    /* Distinct elements: 24 anywhere (a wrongly zero gradient shows there), then up to 24 more
     * among those whose analytic gradient is non-zero: for max-pool or a one-channel loss most of
     * the tensor has a zero gradient, and a uniform sample alone would check little that matters.
     * Small inputs are checked whole. */
    size_t n = in.numel[i], *pick_k = malloc(n * sizeof *pick_k), n_pick = 0, n_nz = 0;
    unsigned char *taken = calloc(n, 1);
    if (!pick_k || !taken) { free(pick_k); free(taken); s = ky_error(KY_ERR_NOMEM, "gradcheck: out of memory"); goto done; }
    for (size_t k = 0; k < n; k++) n_nz += ana[i][k] != 0;
    rep->nonzero += (int)n_nz;
    if (n <= 48) {
      for (size_t k = 0; k < n; k++) pick_k[n_pick++] = k;
    } else {
      while (n_pick < 24) {
        size_t k = (size_t)ky_rng_int(&pick, 0, (int64_t)n);
        if (!taken[k]) { taken[k] = 1; pick_k[n_pick++] = k; }
      }
      size_t left = 0;
      for (size_t k = 0; k < n; k++) left += ana[i][k] != 0 && !taken[k];
      for (size_t want = left < 24 ? left : 24, got = 0; got < want;) {
        size_t k = (size_t)ky_rng_int(&pick, 0, (int64_t)n);
        if (ana[i][k] != 0 && !taken[k]) { taken[k] = 1; pick_k[n_pick++] = k; got++; }
      }
    }
    free(taken);
    for (size_t q = 0; q < n_pick; q++) {
      size_t k = pick_k[q];
      float x0 = x[k];
      double num[2], S = 0;
      for (int pass = 0; pass < 2; pass++) {
        double hh = pass ? h / 2 : h, Lp, Lm;
        x[k] = (float)(x0 + hh);
        double dp = (double)x[k] - x0;
        if ((s = eval_loss(&ctx, c, &in, r, ny, &Lp, &S)) != KY_OK) { free(pick_k); goto done; }
        x[k] = (float)(x0 - hh);
        double dm = x0 - (double)x[k];
        if ((s = eval_loss(&ctx, c, &in, r, ny, &Lm, NULL)) != KY_OK) { free(pick_k); goto done; }
        num[pass] = (Lp - Lm) / (dp + dm);
      }
      x[k] = x0;
      double a = ana[i][k];
      /* fp32 rounding of the affected outputs, divided by the step, sets the absolute floor;
       * the relative part covers the O(h^2) truncation error. */
      double atol = 1e-4 * fmax(1.0, amax) + 2e-7 * S / h;
      double tol = atol + 1e-2 * fabs(a);
      if (fabs(num[0] - num[1]) > tol) { rep->skipped++; continue; }
      rep->checked++;
      /* Meaningful: a gradient well above the rounding floor, so agreement says something. */
      if (fmax(fabs(num[0]), fabs(a)) > 10 * atol) rep->meaningful++;
      double ratio = fabs(num[0] - a) / tol;
      if (ratio > rep->worst_ratio) rep->worst_ratio = ratio;
      if (ratio > 1) {
        if (!rep->failed)
          snprintf(rep->first_failure, sizeof rep->first_failure,
                   "input %d element %zu: numerical %.6g, analytic %.6g (tolerance %.3g)", i, k, num[0], a, tol);
        rep->failed++;
      }
    }
    free(pick_k);
  }
done:
  for (int i = 0; i < KY_CASE_MAX_IN; i++) free(ana[i]);
  free(r);
  ky_opcase_free_inputs(&in);
  ky_ctx_free(&ctx);
  return s;
}

#define CONV(name, X, W, K, s, p, d, relu)                                                                         \
  {name, 3, {KY_F32, KY_F32, KY_F32}, {4, 4, 1}, {X, W, V1(K)}, {-1, -1, -1}, {1, 1, 1}, 7, {s, p, d, relu, 1},     \
   {0}, 0, 0, 0, b_conv}

/* Rows too large for finite differences but sized to cross every split of the threaded CPU
 * kernels (several tiles, rounds, column blocks, bands, channel blocks): tests/test_ops_threads.c
 * runs them at 1, 2, 3 and 7 threads. Same build functions as the table above. */
const ky_opcase ky_opcases_large[] = {
    CONV("conv 3x3 s1 p1 relu 12 tiles [2,40,36,24]->40", X4(2, 40, 36, 24), X4(40, 3, 3, 24), 40, 1, 1, 1, 1),
    CONV("conv 3x3 s2 p1 [2,33,31,20]->70", X4(2, 33, 31, 20), X4(70, 3, 3, 20), 70, 2, 1, 1, 0),
    CONV("conv 1x1 pointwise [2,30,30,48]->20", X4(2, 30, 30, 48), X4(20, 1, 1, 48), 20, 1, 0, 1, 0),
    CONV("conv 1x1 s2 downsample [2,30,30,24]->64", X4(2, 30, 30, 24), X4(64, 1, 1, 24), 64, 2, 0, 1, 0),
    CONV("conv 7x7 s2 p3 stem [1,60,50,3]->16", X4(1, 60, 50, 3), X4(16, 7, 7, 3), 16, 2, 3, 1, 0),
    CONV("conv 3x3 dil2 p2 [1,40,30,16]->32", X4(1, 40, 30, 16), X4(32, 3, 3, 16), 32, 1, 2, 2, 0),
    CONV("conv direct 1x1 K3 [2,40,40,37]->3", X4(2, 40, 40, 37), X4(3, 1, 1, 37), 3, 1, 0, 1, 0),
    CONV("conv direct 3x3 K2 [1,30,30,51]->2", X4(1, 30, 30, 51), X4(2, 3, 3, 51), 2, 1, 1, 1, 1),
    CONV("conv transposed-forward 3x3 K6 [1,40,40,10]->6", X4(1, 40, 40, 10), X4(6, 3, 3, 10), 6, 1, 1, 1, 0),
    CONV("conv in-place wgrad two rounds [1,50,47,16]->130", X4(1, 50, 47, 16), X4(130, 3, 3, 16), 130, 1, 2, 2, 0),
    CONV("conv deep one tile 3x3 [2,4,4,128]->256", X4(2, 4, 4, 128), X4(256, 3, 3, 128), 256, 1, 1, 1, 0),
    CONV("conv dgrad-as-forward 18 tiles [2,48,44,12]->20", X4(2, 48, 44, 12), X4(20, 3, 3, 12), 20, 1, 1, 1, 1),
    CONV("conv dgrad-as-forward C6 flipped [1,64,62,6]->24", X4(1, 64, 62, 6), X4(24, 3, 3, 6), 24, 1, 1, 1, 0),
    {"bn train two channel blocks [1,12,10,600]", 5, {KY_F32, KY_F32, KY_F32, KY_F32, KY_F32}, {4, 1, 1, 1, 1},
     {X4(1, 12, 10, 600), V1(600), V1(600), V1(600), V1(600)}, {-2, 0.5f, -1, -1, 0.5f}, {3, 1.5f, 1, 1, 2}, 7, {1},
     {0}, 0, 0, 0, b_bn},
    {"bn train [2,30,20,40]", 5, {KY_F32, KY_F32, KY_F32, KY_F32, KY_F32}, {4, 1, 1, 1, 1},
     {X4(2, 30, 20, 40), V1(40), V1(40), V1(40), V1(40)}, {-2, 0.5f, -1, -1, 0.5f}, {3, 1.5f, 1, 1, 2}, 7, {1}, {0}, 0,
     0, 0, b_bn},
    {"bn eval [2,30,20,40]", 5, {KY_F32, KY_F32, KY_F32, KY_F32, KY_F32}, {4, 1, 1, 1, 1},
     {X4(2, 30, 20, 40), V1(40), V1(40), V1(40), V1(40)}, {-2, 0.5f, -1, -1, 0.5f}, {3, 1.5f, 1, 1, 2}, 7, {0}, {0}, 0,
     0, 0, b_bn},
    {"maxpool 3/2/1 [2,40,36,40]", 1, {KY_F32}, {4}, {X4(2, 40, 36, 40)}, {-1}, {1}, 1, {3, 2, 1}, {0}, 0, 0, 0,
     b_maxpool},
    {"upsample bilinear x2 [2,21,18,24]", 1, {KY_F32}, {4}, {X4(2, 21, 18, 24)}, {-1}, {1}, 1, {0}, {0}, 0, 0, 0,
     b_bilinear},
    {"upsample nearest x2 [2,21,18,24]", 1, {KY_F32}, {4}, {X4(2, 21, 18, 24)}, {-1}, {1}, 1, {2}, {0}, 0, 0, 0, b_nearest},
    {"global_avgpool [3,20,20,40]", 1, {KY_F32}, {4}, {X4(3, 20, 20, 40)}, {-1}, {1}, 1, {0}, {0}, 0, 0, 0, b_gap},
    {"concat 24+40 [2,40,36,*]", 2, {KY_F32, KY_F32}, {4, 4}, {X4(2, 40, 36, 24), X4(2, 40, 36, 40)}, {-1, -1}, {1, 1}, 3,
     {0}, {0}, 0, 0, 0, b_concat},
    {"sigmoid [2,64,64,20]", 1, {KY_F32}, {4}, {X4(2, 64, 64, 20)}, {-4}, {4}, 1, {0}, {0}, 0, 0, 0, b_sigmoid},
    {"softmax_ce c4 weighted+ignore [2,60,50]", 2, {KY_F32, KY_U8}, {4, 3}, {X4(2, 60, 50, 4), X4(2, 60, 50, 0)},
     {-3, 0}, {3, 4}, 1, {1}, {0}, 0, 0, 0, b_ce},
    {"loss softmax+dice [2,96,96,3]", 2, {KY_F32, KY_U8}, {4, 3}, {X4(2, 96, 96, 3), X4(2, 96, 96, 0)}, {-3, 0}, {3, 2}, 1,
     {0}, {0}, 0, 0, 0, b_softmax_dice},
    {"loss sigmoid+dice [2,96,96,2]", 2, {KY_F32, KY_F32}, {4, 4}, {X4(2, 96, 96, 2), X4(2, 96, 96, 2)}, {-3, 0}, {3, 1}, 1,
     {0}, {0}, 0, 0, 0, b_sigmoid_dice},
    {"focal_logits [2,96,96,3]", 2, {KY_F32, KY_F32}, {4, 4}, {X4(2, 96, 96, 3), X4(2, 96, 96, 3)}, {-6, 0}, {6, 1}, 1,
     {2}, {1.5f, 0.6f}, 0, 0, 0, b_focal},
    {NULL},
};
#undef CONV

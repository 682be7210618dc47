/* Upsampling ops: nearest by an integer factor, bilinear x2 (align_corners = false).
 * Tested by the upsample rows of tests/optable_cases.c and tests/test_parity_ops.c. */
#include "ops/ops.h"
#include "ops/op_util.h"

typedef struct { int f; } up_saved;

static ky_status nearest_backward(ky_ctx *ctx, ky_node *n) {
  ky_tensor *x = n->in[0], *dx;
  KY_TRY(ky_tensor_grad(ctx, &dx, x));
  int f = ((up_saved *)n->saved)->f;
  KY_IF_CUDA(ctx, ky_cuda_upsample_nearest_bwd(ctx->cu, dx->data, n->out->grad->data, x->shape[0], x->shape[1],
                                               x->shape[2], x->shape[3], f))
  else ky_cpu_upsample_nearest_bwd(ctx->pool, dx->data, n->out->grad->data, x->shape[0], x->shape[1], x->shape[2], x->shape[3], f);
  return KY_OK;
}

ky_status ky_upsample_nearest(ky_ctx *ctx, ky_tensor **y, ky_tensor *x, int f) {
  KY_OP_ENTRY(ctx, y);
  KY_TRY(ky_tensor_check(x, "upsample_nearest", "x", KY_F32, 4));
  KY_TRY(ky_op_device(ctx, "upsample_nearest", "x", x));
  KY_CHECK(f >= 1 && f <= 64, KY_ERR_ARG, "upsample_nearest: factor %d, expected 1..64", f);
  ky_tensor *out;
  KY_TRY(ky_tensor_new4(ctx, &out, KY_F32, x->shape[0], x->shape[1] * f, x->shape[2] * f, x->shape[3]));
  KY_IF_CUDA(ctx, ky_cuda_upsample_nearest_fwd(ctx->cu, out->data, x->data, x->shape[0], x->shape[1], x->shape[2],
                                               x->shape[3], f))
  else ky_cpu_upsample_nearest_fwd(ctx->pool, out->data, x->data, x->shape[0], x->shape[1], x->shape[2], x->shape[3], f);
  ky_node *node;
  KY_TRY(ky_tape_record(ctx, &node, "upsample_nearest", nearest_backward, out, &x, 1, sizeof(up_saved)));
  if (node) ((up_saved *)node->saved)->f = f;
  *y = out;
  return KY_OK;
}

static ky_status bilinear_backward(ky_ctx *ctx, ky_node *n) {
  ky_tensor *x = n->in[0], *dx;
  KY_TRY(ky_tensor_grad(ctx, &dx, x));
  KY_IF_CUDA(ctx, ky_cuda_upsample_bilinear2_bwd(ctx->cu, dx->data, n->out->grad->data, x->shape[0], x->shape[1],
                                                 x->shape[2], x->shape[3]))
  else ky_cpu_upsample_bilinear2_bwd(ctx->pool, dx->data, n->out->grad->data, x->shape[0], x->shape[1], x->shape[2], x->shape[3]);
  return KY_OK;
}

ky_status ky_upsample_bilinear2(ky_ctx *ctx, ky_tensor **y, ky_tensor *x) {
  KY_OP_ENTRY(ctx, y);
  KY_TRY(ky_tensor_check(x, "upsample_bilinear2", "x", KY_F32, 4));
  KY_TRY(ky_op_device(ctx, "upsample_bilinear2", "x", x));
  ky_tensor *out;
  KY_TRY(ky_tensor_new4(ctx, &out, KY_F32, x->shape[0], x->shape[1] * 2, x->shape[2] * 2, x->shape[3]));
  KY_IF_CUDA(ctx, ky_cuda_upsample_bilinear2_fwd(ctx->cu, out->data, x->data, x->shape[0], x->shape[1], x->shape[2],
                                                 x->shape[3]))
  else ky_cpu_upsample_bilinear2_fwd(ctx->pool, out->data, x->data, x->shape[0], x->shape[1], x->shape[2], x->shape[3]);
  ky_node *node;
  KY_TRY(ky_tape_record(ctx, &node, "upsample_bilinear2", bilinear_backward, out, &x, 1, 0));
  *y = out;
  return KY_OK;
}

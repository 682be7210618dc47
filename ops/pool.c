/* Pooling ops: max pooling (argmax saved for backward) and global average pooling.
 * Tested by the pool rows of tests/optable_cases.c and tests/test_parity_ops.c. */
#include "ops/ops.h"
#include "ops/op_util.h"

typedef struct { ky_pool_shape s; int32_t *argmax; } maxpool_saved;

static ky_status maxpool_backward(ky_ctx *ctx, ky_node *n) {
  maxpool_saved *sv = n->saved;
  ky_tensor *dx;
  KY_TRY(ky_tensor_grad(ctx, &dx, n->in[0]));
  KY_IF_CUDA(ctx, ky_cuda_maxpool_bwd(ctx->cu, dx->data, n->out->grad->data, sv->argmax, &sv->s))
  else ky_cpu_maxpool_bwd(ctx->pool, dx->data, n->out->grad->data, sv->argmax, &sv->s);
  return KY_OK;
}

ky_status ky_maxpool2d(ky_ctx *ctx, ky_tensor **y, ky_tensor *x, int k, int stride, int pad) {
  KY_OP_ENTRY(ctx, y);
  KY_TRY(ky_tensor_check(x, "maxpool2d", "x", KY_F32, 4));
  KY_TRY(ky_op_device(ctx, "maxpool2d", "x", x));
  KY_CHECK(k >= 1 && stride >= 1 && pad >= 0 && 2 * pad <= k, KY_ERR_ARG,
           "maxpool2d: window %d, stride %d, padding %d invalid (padding must be at most half the window)", k, stride, pad);
  ky_pool_shape s = {x->shape[0], x->shape[1], x->shape[2], x->shape[3], k, stride, pad, 0, 0};
  KY_CHECK(ky_pool_shape_finish(&s), KY_ERR_SHAPE, "maxpool2d: input %dx%d too small for window %d", s.h, s.w, k);
  ky_tensor *out;
  KY_TRY(ky_tensor_new4(ctx, &out, KY_F32, s.n, s.oh, s.ow, s.c));
  int32_t *argmax;
  KY_TRY(ky_ctx_alloc(ctx, (void **)&argmax, ky_tensor_numel(out) * sizeof(int32_t)));
  KY_IF_CUDA(ctx, ky_cuda_maxpool_fwd(ctx->cu, out->data, argmax, x->data, &s))
  else ky_cpu_maxpool_fwd(ctx->pool, out->data, argmax, x->data, &s);
  ky_node *node;
  KY_TRY(ky_tape_record(ctx, &node, "maxpool2d", maxpool_backward, out, &x, 1, sizeof(maxpool_saved)));
  if (node) {
    ((maxpool_saved *)node->saved)->s = s;
    ((maxpool_saved *)node->saved)->argmax = argmax;
  }
  *y = out;
  return KY_OK;
}

static ky_status gap_backward(ky_ctx *ctx, ky_node *n) {
  ky_tensor *x = n->in[0], *dx;
  KY_TRY(ky_tensor_grad(ctx, &dx, x));
  int hw = x->shape[1] * x->shape[2];
  KY_IF_CUDA(ctx, ky_cuda_gap_bwd(ctx->cu, dx->data, n->out->grad->data, x->shape[0], hw, x->shape[3]))
  else ky_cpu_gap_bwd(ctx->pool, dx->data, n->out->grad->data, x->shape[0], hw, x->shape[3]);
  return KY_OK;
}

ky_status ky_global_avgpool(ky_ctx *ctx, ky_tensor **y, ky_tensor *x) {
  KY_OP_ENTRY(ctx, y);
  KY_TRY(ky_tensor_check(x, "global_avgpool", "x", KY_F32, 4));
  KY_TRY(ky_op_device(ctx, "global_avgpool", "x", x));
  KY_CHECK(x->shape[1] * x->shape[2] > 0, KY_ERR_SHAPE, "global_avgpool: empty image");
  ky_tensor *out;
  KY_TRY(ky_tensor_new4(ctx, &out, KY_F32, x->shape[0], 1, 1, x->shape[3]));
  int hw = x->shape[1] * x->shape[2];
  KY_IF_CUDA(ctx, ky_cuda_gap_fwd(ctx->cu, out->data, x->data, x->shape[0], hw, x->shape[3]))
  else ky_cpu_gap_fwd(ctx->pool, out->data, x->data, x->shape[0], hw, x->shape[3]);
  ky_node *node;
  KY_TRY(ky_tape_record(ctx, &node, "global_avgpool", gap_backward, out, &x, 1, 0));
  *y = out;
  return KY_OK;
}

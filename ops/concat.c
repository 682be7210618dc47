/* Channel concat of NHWC tensors and its backward split.
 * Tested by the concat rows of tests/optable_cases.c. */
#include "ops/ops.h"
#include "ops/op_util.h"

#include <stdio.h>

static ky_status concat_backward(ky_ctx *ctx, ky_node *n) {
  float *dxs[KY_NODE_MAX_IN];
  int cs[KY_NODE_MAX_IN];
  float *scratch = NULL;
  ky_tensor *y = n->out;
  size_t npix = ky_tensor_numel(y) / (size_t)y->shape[3];
  for (int i = 0; i < n->n_in; i++) {
    ky_tensor *x = n->in[i];
    cs[i] = x->shape[3];
    if (x->requires_grad) {
      ky_tensor *dx;
      KY_TRY(ky_tensor_grad(ctx, &dx, x));
      dxs[i] = dx->data;
    } else {
      /* Inputs without gradients (e.g. a frozen encoder tap) still need a place to write. */
      if (!scratch) KY_TRY(ky_ctx_alloc(ctx, (void **)&scratch, ky_tensor_bytes(y)));
      dxs[i] = scratch;
    }
  }
  KY_IF_CUDA(ctx, ky_cuda_concat_bwd(ctx->cu, dxs, y->grad->data, cs, n->n_in, npix))
  else ky_cpu_concat_bwd(ctx->pool, dxs, y->grad->data, cs, n->n_in, npix);
  return KY_OK;
}

ky_status ky_concat(ky_ctx *ctx, ky_tensor **y, ky_tensor *const *xs, int k) {
  KY_OP_ENTRY(ctx, y);
  KY_CHECK(xs && k >= 1 && k <= KY_NODE_MAX_IN, KY_ERR_ARG, "concat: %d inputs, expected 1..%d", k, KY_NODE_MAX_IN);
  const float *ptr[KY_NODE_MAX_IN];
  int cs[KY_NODE_MAX_IN], ctot = 0;
  for (int i = 0; i < k; i++) {
    char arg[16];
    snprintf(arg, sizeof arg, "xs[%d]", i);
    KY_TRY(ky_tensor_check(xs[i], "concat", arg, KY_F32, 4));
    KY_TRY(ky_op_device(ctx, "concat", arg, xs[i]));
    char d0[96], di[96];
    KY_CHECK(xs[i]->shape[0] == xs[0]->shape[0] && xs[i]->shape[1] == xs[0]->shape[1] &&
                 xs[i]->shape[2] == xs[0]->shape[2],
             KY_ERR_SHAPE, "concat: xs[0] %s and xs[%d] %s differ in N, H or W", ky_tensor_desc(xs[0], d0, sizeof d0),
             i, ky_tensor_desc(xs[i], di, sizeof di));
    ptr[i] = xs[i]->data;
    cs[i] = xs[i]->shape[3];
    ctot += cs[i];
  }
  ky_tensor *out;
  KY_TRY(ky_tensor_new4(ctx, &out, KY_F32, xs[0]->shape[0], xs[0]->shape[1], xs[0]->shape[2], ctot));
  size_t npix = (size_t)xs[0]->shape[0] * xs[0]->shape[1] * xs[0]->shape[2];
  KY_IF_CUDA(ctx, ky_cuda_concat_fwd(ctx->cu, out->data, ptr, cs, k, npix))
  else ky_cpu_concat_fwd(ctx->pool, out->data, ptr, cs, k, npix);
  ky_node *node;
  KY_TRY(ky_tape_record(ctx, &node, "concat", concat_backward, out, xs, k, 0));
  *y = out;
  return KY_OK;
}

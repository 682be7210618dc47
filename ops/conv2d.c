/* conv2d op: shape checks, autograd node, dispatch to ky_cpu_conv2d_* / ky_cuda_conv2d_*.
 * Tested by the conv rows of tests/optable_cases.c (gradient check, CPU-vs-CUDA) and
 * tests/test_parity_ops.c (PyTorch). */
#include "ops/ops.h"
#include "ops/op_util.h"

typedef struct { ky_conv_shape s; } conv_saved;

static ky_status conv2d_backward(ky_ctx *ctx, ky_node *n) {
  conv_saved *sv = n->saved;
  ky_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2], *dy = n->out->grad;
  ky_tensor *dx = NULL, *dw = NULL, *db = NULL;
  if (x->requires_grad) KY_TRY(ky_tensor_grad(ctx, &dx, x));
  if (w->requires_grad) KY_TRY(ky_tensor_grad(ctx, &dw, w));
  if (b && b->requires_grad) KY_TRY(ky_tensor_grad(ctx, &db, b));
  if (dx) {
    KY_IF_CUDA(ctx, ky_cuda_conv2d_dgrad(ctx->cu, dx->data, dy->data, w->data, &sv->s, KY_CONV_ALGO_AUTO)) else {
      float *work;
      KY_TRY(ky_ctx_alloc_host(ctx, (void **)&work, ky_cpu_conv2d_work_floats(&sv->s, ky_ctx_threads(ctx)) * sizeof(float)));
      ky_cpu_conv2d_dgrad(ctx->pool, dx->data, dy->data, w->data, &sv->s, work);
    }
  }
  if (dw || db) {
    /* wgrad computes dw and db together; a frozen weight with a trainable bias still needs a dw
     * buffer, so use a scratch one. */
    float *dwp = dw ? dw->data : NULL;
    if (!dwp) KY_TRY(ky_ctx_alloc(ctx, (void **)&dwp, ky_tensor_bytes(w)));
    KY_IF_CUDA(ctx, ky_cuda_conv2d_wgrad(ctx->cu, dwp, db ? db->data : NULL, dy->data, x->data, &sv->s,
                                         KY_CONV_ALGO_AUTO)) else {
      float *work;
      KY_TRY(ky_ctx_alloc_host(ctx, (void **)&work, ky_cpu_conv2d_work_floats(&sv->s, ky_ctx_threads(ctx)) * sizeof(float)));
      ky_cpu_conv2d_wgrad(ctx->pool, dwp, db ? db->data : NULL, dy->data, x->data, &sv->s, work);
    }
  }
  return KY_OK;
}

ky_status ky_conv2d(ky_ctx *ctx, ky_tensor **y, ky_tensor *x, ky_tensor *w, ky_tensor *b,
                    int stride, int pad, int dil, int relu) {
  KY_OP_ENTRY(ctx, y);
  KY_TRY(ky_tensor_check(x, "conv2d", "x", KY_F32, 4));
  KY_TRY(ky_tensor_check(w, "conv2d", "w", KY_F32, 4));
  if (b) KY_TRY(ky_tensor_check(b, "conv2d", "b", KY_F32, 1));
  KY_TRY(ky_op_device(ctx, "conv2d", "x", x));
  KY_TRY(ky_op_device(ctx, "conv2d", "w", w));
  KY_TRY(ky_op_device(ctx, "conv2d", "b", b));
  char dx[96], dw[96];
  KY_CHECK(w->shape[3] == x->shape[3], KY_ERR_SHAPE, "conv2d %s: x %s has %d channels, w %s expects %d",
           w->name ? w->name : "", ky_tensor_desc(x, dx, sizeof dx), x->shape[3], ky_tensor_desc(w, dw, sizeof dw),
           w->shape[3]);
  KY_CHECK(!b || b->shape[0] == w->shape[0], KY_ERR_SHAPE, "conv2d %s: bias has %d entries, w has %d outputs",
           w->name ? w->name : "", b ? b->shape[0] : 0, w->shape[0]);
  KY_CHECK(stride >= 1 && dil >= 1 && pad >= 0, KY_ERR_ARG, "conv2d: stride %d, dilation %d, padding %d invalid",
           stride, dil, pad);
  ky_conv_shape s = {x->shape[0], x->shape[1], x->shape[2], x->shape[3], w->shape[0], w->shape[1], w->shape[2],
                     stride, pad, dil, 0, 0};
  KY_CHECK(ky_conv_shape_finish(&s), KY_ERR_SHAPE,
           "conv2d %s: input %dx%d with a %dx%d kernel (stride %d, pad %d, dilation %d) gives an empty output",
           w->name ? w->name : "", s.h, s.w, s.kh, s.kw, stride, pad, dil);
  ky_tensor *out;
  KY_TRY(ky_tensor_new4(ctx, &out, KY_F32, s.n, s.oh, s.ow, s.k));
  KY_IF_CUDA(ctx, ky_cuda_conv2d_fwd(ctx->cu, out->data, x->data, w->data, b ? b->data : NULL, &s, relu,
                                     KY_CONV_ALGO_AUTO)) else {
    float *work;
    KY_TRY(ky_ctx_alloc_host(ctx, (void **)&work, ky_cpu_conv2d_work_floats(&s, ky_ctx_threads(ctx)) * sizeof(float)));
    ky_cpu_conv2d_fwd(ctx->pool, out->data, x->data, w->data, b ? b->data : NULL, &s, relu, work);
  }
  ky_node *node;
  ky_tensor *in[3] = {x, w, b};
  if (relu) {
    /* Fused ReLU: backward masks dy by y > 0 first (a separate relu node on the same output). */
    ky_tensor *pre = out;
    KY_TRY(ky_tape_record(ctx, &node, "conv2d", conv2d_backward, pre, in, 3, sizeof(conv_saved)));
    if (node) {
      ((conv_saved *)node->saved)->s = s;
      /* post shares pre's (already rectified) data; its node turns dpost into dpre. */
      ky_tensor *post;
      KY_TRY(ky_op_alias(ctx, &post, pre));
      ky_node *rn;
      KY_TRY(ky_tape_record(ctx, &rn, "relu", ky_relu_backward_node, post, &pre, 1, 0));
      *y = post;
      return KY_OK;
    }
  } else {
    KY_TRY(ky_tape_record(ctx, &node, "conv2d", conv2d_backward, out, in, 3, sizeof(conv_saved)));
    if (node) ((conv_saved *)node->saved)->s = s;
  }
  *y = out;
  return KY_OK;
}

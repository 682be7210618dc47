/* BCE-with-logits loss op on one channel of an NHWC tensor against soft targets.
 * Tested by the bce rows of tests/optable_cases.c and tests/test_parity_ops.c (PyTorch). */
#include "losses/losses.h"
#include "ops/op_util.h"

typedef struct { int ch; } bce_saved;

static ky_status bce_backward(ky_ctx *ctx, ky_node *n) {
  ky_tensor *x = n->in[0], *t = n->in[1], *dx;
  KY_TRY(ky_tensor_grad(ctx, &dx, x));
  int c = x->shape[x->ndim - 1], ch = ((bce_saved *)n->saved)->ch;
  size_t npix = ky_tensor_numel(x) / (size_t)c;
  KY_IF_CUDA(ctx, ky_cuda_bce_logits_bwd(ctx->cu, dx->data, x->data, t->data, n->out->grad->data, npix, c, ch))
  else ky_cpu_bce_logits_bwd(ctx->pool, dx->data, x->data, t->data, *(float *)n->out->grad->data, npix, c, ch);
  return KY_OK;
}

ky_status ky_loss_bce_logits(ky_ctx *ctx, ky_tensor **loss, ky_tensor *x, ky_tensor *t, int ch) {
  KY_OP_ENTRY(ctx, loss);
  KY_TRY(ky_tensor_check(x, "bce_logits", "logits", KY_F32, 4));
  KY_TRY(ky_tensor_check(t, "bce_logits", "targets", KY_F32, 4));
  KY_TRY(ky_op_device(ctx, "bce_logits", "logits", x));
  KY_TRY(ky_op_device(ctx, "bce_logits", "targets", t));
  char dx[96], dt[96];
  KY_CHECK(ky_tensor_same_shape(x, t), KY_ERR_SHAPE, "bce_logits: logits %s and targets %s differ in shape",
           ky_tensor_desc(x, dx, sizeof dx), ky_tensor_desc(t, dt, sizeof dt));
  int c = x->shape[3];
  KY_CHECK(ch >= 0 && ch < c, KY_ERR_ARG, "bce_logits: channel %d, logits have %d", ch, c);
  size_t npix = ky_tensor_numel(x) / (size_t)c;
  KY_CHECK(npix > 0, KY_ERR_SHAPE, "bce_logits: empty input");
  int one = 1;
  ky_tensor *out;
  KY_TRY(ky_tensor_new(ctx, &out, KY_F32, 1, &one));
  KY_IF_CUDA(ctx, ky_cuda_bce_logits_fwd(ctx->cu, out->data, x->data, t->data, npix, c, ch))
  else ky_cpu_bce_logits_fwd(out->data, x->data, t->data, npix, c, ch);
  ky_node *node;
  ky_tensor *in[2] = {x, t};
  KY_TRY(ky_tape_record(ctx, &node, "bce_logits", bce_backward, out, in, 2, sizeof(bce_saved)));
  if (node) ((bce_saved *)node->saved)->ch = ch;
  *loss = out;
  return KY_OK;
}

/* Softmax cross-entropy loss op from logits and a u8 class map (255 = ignore), optional class
 * weights. Tested by the softmax_ce rows of tests/optable_cases.c and tests/test_parity_ops.c. */
#include "losses/losses.h"
#include "ops/op_util.h"

#include <string.h>

typedef struct { float *w; } ce_saved;   /* class weights on the op's device, or NULL */

static ky_status ce_backward(ky_ctx *ctx, ky_node *n) {
  ky_tensor *x = n->in[0], *cls = n->in[1], *dx;
  KY_TRY(ky_tensor_grad(ctx, &dx, x));
  int c = x->shape[3];
  size_t npix = ky_tensor_numel(x) / (size_t)c;
  float *w = ((ce_saved *)n->saved)->w;
  KY_IF_CUDA(ctx, ky_cuda_softmax_ce_bwd(ctx->cu, dx->data, x->data, cls->data, w, n->out->grad->data, npix, c))
  else ky_cpu_softmax_ce_bwd(ctx->pool, dx->data, x->data, cls->data, w, *(float *)n->out->grad->data, npix, c);
  return KY_OK;
}

ky_status ky_loss_softmax_ce(ky_ctx *ctx, ky_tensor **loss, ky_tensor *logits, ky_tensor *cls,
                             const float *class_w) {
  KY_OP_ENTRY(ctx, loss);
  KY_TRY(ky_tensor_check(logits, "softmax_ce", "logits", KY_F32, 4));
  KY_TRY(ky_tensor_check(cls, "softmax_ce", "classes", KY_U8, 3));
  KY_TRY(ky_op_device(ctx, "softmax_ce", "logits", logits));
  KY_TRY(ky_op_device(ctx, "softmax_ce", "classes", cls));
  char dl[96], dc[96];
  KY_CHECK(cls->shape[0] == logits->shape[0] && cls->shape[1] == logits->shape[1] && cls->shape[2] == logits->shape[2],
           KY_ERR_SHAPE, "softmax_ce: logits %s and classes %s differ in N, H or W",
           ky_tensor_desc(logits, dl, sizeof dl), ky_tensor_desc(cls, dc, sizeof dc));
  int c = logits->shape[3];
  KY_CHECK(c >= 2 && c < 255, KY_ERR_SHAPE, "softmax_ce: %d classes, expected 2..254", c);
  size_t npix = ky_tensor_numel(cls);
  float *w = NULL;
  if (class_w) {
    for (int i = 0; i < c; i++)
      KY_CHECK(class_w[i] >= 0, KY_ERR_ARG, "softmax_ce: class weight %d is %g (negative)", i, class_w[i]);
    KY_TRY(ky_ctx_alloc(ctx, (void **)&w, (size_t)c * sizeof(float)));
    KY_IF_CUDA(ctx, ky_cuda_h2d(ctx->cu, w, class_w, (size_t)c * sizeof(float))) else memcpy(w, class_w, (size_t)c * sizeof(float));
  }
  /* Class indices >= c (other than 255) would read out of bounds in every kernel: check on the host. */
  if (!KY_ON_CUDA(ctx)) {
    const uint8_t *y = cls->data;
    for (size_t p = 0; p < npix; p++)
      KY_CHECK(y[p] < c || y[p] == 255, KY_ERR_ARG, "softmax_ce: class map holds %d at pixel %zu, logits have %d classes",
               y[p], p, c);
  }
  int one = 1;
  ky_tensor *out;
  KY_TRY(ky_tensor_new(ctx, &out, KY_F32, 1, &one));
  KY_IF_CUDA(ctx, ky_cuda_softmax_ce_fwd(ctx->cu, out->data, logits->data, cls->data, w, npix, c))
  else {
    double *terms; /* [npix] */
    KY_TRY(ky_ctx_alloc(ctx, (void **)&terms, npix * sizeof *terms));
    ky_cpu_softmax_ce_fwd(ctx->pool, out->data, terms, logits->data, cls->data, w, npix, c);
  }
  ky_node *node;
  ky_tensor *in[2] = {logits, cls};
  KY_TRY(ky_tape_record(ctx, &node, "softmax_ce", ce_backward, out, in, 2, sizeof(ce_saved)));
  if (node) ((ce_saved *)node->saved)->w = w;
  *loss = out;
  return KY_OK;
}

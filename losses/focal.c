/* Binary focal loss with logits as an autograd op (one channel of an NHWC tensor, soft targets),
 * and its combination with batch soft dice, shaped like the reference's sigmoid loss.
 * Tested by the focal rows of tests/optable_cases.c (gradient checks; CPU-vs-CUDA with a GPU). */
#include <math.h>

#include "losses/losses.h"
#include "ops/ops.h"
#include "ops/op_util.h"

typedef struct { int ch; float gamma, alpha; } focal_saved;

static ky_status focal_backward(ky_ctx *ctx, ky_node *n) {
  ky_tensor *x = n->in[0], *t = n->in[1], *dx;
  KY_TRY(ky_tensor_grad(ctx, &dx, x));
  const focal_saved *sv = n->saved;
  int c = x->shape[x->ndim - 1];
  size_t npix = ky_tensor_numel(x) / (size_t)c;
  KY_IF_CUDA(ctx, ky_cuda_focal_logits_bwd(ctx->cu, dx->data, x->data, t->data, n->out->grad->data, npix, c, sv->ch,
                                           sv->gamma, sv->alpha))
  else ky_cpu_focal_logits_bwd(ctx->pool, dx->data, x->data, t->data, *(float *)n->out->grad->data, npix, c, sv->ch, sv->gamma,
                               sv->alpha);
  return KY_OK;
}

ky_status ky_loss_focal_logits(ky_ctx *ctx, ky_tensor **loss, ky_tensor *x, ky_tensor *t, int ch, float gamma,
                               float alpha) {
  KY_OP_ENTRY(ctx, loss);
  KY_TRY(ky_tensor_check(x, "focal_logits", "logits", KY_F32, 4));
  KY_TRY(ky_tensor_check(t, "focal_logits", "targets", KY_F32, 4));
  KY_TRY(ky_op_device(ctx, "focal_logits", "logits", x));
  KY_TRY(ky_op_device(ctx, "focal_logits", "targets", t));
  char dx[96], dt[96];
  KY_CHECK(ky_tensor_same_shape(x, t), KY_ERR_SHAPE, "focal_logits: logits %s and targets %s differ in shape",
           ky_tensor_desc(x, dx, sizeof dx), ky_tensor_desc(t, dt, sizeof dt));
  int c = x->shape[3];
  KY_CHECK(ch >= 0 && ch < c, KY_ERR_ARG, "focal_logits: channel %d, logits have %d", ch, c);
  /* !(a >= b) also rejects NaN. */
  KY_CHECK(isfinite(gamma) && gamma >= 0, KY_ERR_ARG, "focal_logits: gamma %g, expected a finite value >= 0",
           (double)gamma);
  KY_CHECK(alpha >= 0 && alpha <= 1, KY_ERR_ARG, "focal_logits: alpha %g, expected a value in [0, 1]", (double)alpha);
  size_t npix = ky_tensor_numel(x) / (size_t)c;
  KY_CHECK(npix > 0, KY_ERR_SHAPE, "focal_logits: empty input");
  int one = 1;
  ky_tensor *out;
  KY_TRY(ky_tensor_new(ctx, &out, KY_F32, 1, &one));
  KY_IF_CUDA(ctx, ky_cuda_focal_logits_fwd(ctx->cu, out->data, x->data, t->data, npix, c, ch, gamma, alpha))
  else ky_cpu_focal_logits_fwd(out->data, x->data, t->data, npix, c, ch, gamma, alpha);
  ky_node *node;
  ky_tensor *in[2] = {x, t};
  KY_TRY(ky_tape_record(ctx, &node, "focal_logits", focal_backward, out, in, 2, sizeof(focal_saved)));
  if (node) {
    focal_saved *sv = node->saved;
    sv->ch = ch;
    sv->gamma = gamma;
    sv->alpha = alpha;
  }
  *loss = out;
  return KY_OK;
}

ky_status ky_loss_focal_dice(ky_ctx *ctx, ky_tensor **loss, ky_tensor *logits, ky_tensor *t, float w) {
  KY_OP_ENTRY(ctx, loss);
  KY_TRY(ky_tensor_check(logits, "focal_dice", "logits", KY_F32, 4));
  KY_TRY(ky_tensor_check(t, "focal_dice", "targets", KY_F32, 4));
  KY_CHECK(w >= 0 && w <= 1, KY_ERR_ARG, "focal_dice: focal weight %g outside [0, 1]", (double)w);
  int c = logits->shape[3];
  KY_CHECK(c >= 1 && c <= 4, KY_ERR_SHAPE, "focal_dice: %d channels, expected 1..4", c);
  ky_tensor *p;
  KY_TRY(ky_sigmoid(ctx, &p, logits));
  ky_tensor *terms[8];
  float ws[8];
  for (int ch = 0; ch < c; ch++) {
    KY_TRY(ky_loss_focal_logits(ctx, &terms[2 * ch], logits, t, ch, KY_FOCAL_GAMMA, KY_FOCAL_ALPHA));
    KY_TRY(ky_loss_dice(ctx, &terms[2 * ch + 1], p, ch, t, ch, 1e-3f, 0));
    ws[2 * ch] = w;
    ws[2 * ch + 1] = 1 - w;
  }
  return ky_loss_weighted_sum(ctx, loss, terms, ws, 2 * c);
}

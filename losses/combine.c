/* Loss combinations: weighted sums of one-element losses, one-hot targets, and the reference
 * solution's softmax (Albu) and sigmoid (Selim) losses.
 * Tested by tests/optable_cases.c (gradient rows) and tests/test_parity_ops.c (PyTorch values). */
#include "losses/losses.h"
#include "ops/ops.h"
#include "ops/op_util.h"

#include <stdio.h>

ky_status ky_loss_weighted_sum(ky_ctx *ctx, ky_tensor **loss, ky_tensor *const *terms, const float *w, int k) {
  KY_OP_ENTRY(ctx, loss);
  KY_CHECK(terms && w && k >= 1 && k <= 8, KY_ERR_ARG, "weighted_sum: %d terms, expected 1..8", k);
  ky_tensor *acc = NULL;
  for (int i = 0; i < k; i++) {
    char arg[16];
    snprintf(arg, sizeof arg, "terms[%d]", i);
    KY_TRY(ky_tensor_check(terms[i], "weighted_sum", arg, KY_F32, 0));
    KY_CHECK(ky_tensor_numel(terms[i]) == 1, KY_ERR_SHAPE, "weighted_sum: %s has %zu elements, expected 1", arg,
             ky_tensor_numel(terms[i]));
    ky_tensor *s;
    KY_TRY(ky_scale(ctx, &s, terms[i], w[i]));
    if (acc) KY_TRY(ky_add(ctx, &acc, acc, s));
    else acc = s;
  }
  *loss = acc;
  return KY_OK;
}

ky_status ky_onehot(ky_ctx *ctx, ky_tensor **y, ky_tensor *cls, int c) {
  KY_OP_ENTRY(ctx, y);
  KY_TRY(ky_tensor_check(cls, "onehot", "classes", KY_U8, 3));
  KY_TRY(ky_op_device(ctx, "onehot", "classes", cls));
  KY_CHECK(c >= 1 && c < 255, KY_ERR_ARG, "onehot: %d classes", c);
  ky_tensor *out;
  KY_TRY(ky_tensor_new4(ctx, &out, KY_F32, cls->shape[0], cls->shape[1], cls->shape[2], c));
  size_t npix = ky_tensor_numel(cls);
  KY_IF_CUDA(ctx, ky_cuda_onehot(ctx->cu, out->data, cls->data, npix, c)) else ky_cpu_onehot(ctx->pool, out->data, cls->data, npix, c);
  *y = out;
  return KY_OK;
}

ky_status ky_loss_softmax_dice(ky_ctx *ctx, ky_tensor **loss, ky_tensor *parts[3], ky_tensor *logits,
                               ky_tensor *cls) {
  KY_OP_ENTRY(ctx, loss);
  KY_TRY(ky_tensor_check(logits, "softmax_dice", "logits", KY_F32, 4));
  KY_CHECK(logits->shape[3] == 3, KY_ERR_SHAPE, "softmax_dice: logits have %d channels, expected 3 (bg, border, body)",
           logits->shape[3]);
  ky_tensor *ce, *p, *oh, *d_body, *d_border;
  KY_TRY(ky_loss_softmax_ce(ctx, &ce, logits, cls, NULL));
  KY_TRY(ky_softmax(ctx, &p, logits));
  KY_TRY(ky_onehot(ctx, &oh, cls, 3));
  KY_TRY(ky_loss_dice(ctx, &d_body, p, 2, oh, 2, 1e-3f, 1));
  KY_TRY(ky_loss_dice(ctx, &d_border, p, 1, oh, 1, 1e-3f, 1));
  ky_tensor *terms[3] = {ce, d_body, d_border};
  static const float w[3] = {0.6f, 0.2f, 0.2f};
  if (parts) { parts[0] = ce; parts[1] = d_body; parts[2] = d_border; }
  return ky_loss_weighted_sum(ctx, loss, terms, w, 3);
}

ky_status ky_loss_sigmoid_dice(ky_ctx *ctx, ky_tensor **loss, ky_tensor *logits, ky_tensor *t, float w) {
  KY_OP_ENTRY(ctx, loss);
  KY_TRY(ky_tensor_check(logits, "sigmoid_dice", "logits", KY_F32, 4));
  KY_TRY(ky_tensor_check(t, "sigmoid_dice", "targets", KY_F32, 4));
  KY_CHECK(w >= 0 && w <= 1, KY_ERR_ARG, "sigmoid_dice: bce weight %g outside [0, 1]", w);
  int c = logits->shape[3];
  KY_CHECK(c >= 1 && c <= 4, KY_ERR_SHAPE, "sigmoid_dice: %d channels, expected 1..4", c);
  ky_tensor *p;
  KY_TRY(ky_sigmoid(ctx, &p, logits));
  ky_tensor *terms[8];
  float ws[8];
  for (int ch = 0; ch < c; ch++) {
    KY_TRY(ky_loss_bce_logits(ctx, &terms[2 * ch], logits, t, ch));
    KY_TRY(ky_loss_dice(ctx, &terms[2 * ch + 1], p, ch, t, ch, 1e-3f, 0));
    ws[2 * ch] = w;
    ws[2 * ch + 1] = 1 - w;
  }
  return ky_loss_weighted_sum(ctx, loss, terms, ws, 2 * c);
}

/* Soft dice loss op: 1 - mean over groups (images, or the whole batch) of the clamped dice of one
 * probability channel against one target channel. Built as dice (own backward) -> mean -> 1 - x.
 * Tested by the dice rows of tests/optable_cases.c and tests/test_parity_ops.c. */
#include "losses/losses.h"
#include "ops/ops.h"
#include "ops/op_util.h"

typedef struct { double *sums; int pch, tch, per_image; float eps; } dice_saved;

static ky_status dice_backward(ky_ctx *ctx, ky_node *n) {
  dice_saved *sv = n->saved;
  ky_tensor *p = n->in[0], *t = n->in[1], *dp;
  KY_TRY(ky_tensor_grad(ctx, &dp, p));
  int nb = p->shape[0], pc = p->shape[3], tc = t->shape[3];
  size_t hw = (size_t)p->shape[1] * p->shape[2];
  KY_IF_CUDA(ctx, ky_cuda_dice_bwd(ctx->cu, dp->data, n->out->grad->data, sv->sums, p->data, pc, sv->pch, t->data, tc,
                                   sv->tch, nb, hw, sv->eps, sv->per_image))
  else ky_cpu_dice_bwd(ctx->pool, dp->data, n->out->grad->data, sv->sums, p->data, pc, sv->pch, t->data, tc, sv->tch, nb, hw,
                       sv->eps, sv->per_image);
  return KY_OK;
}

/* dice values [groups] as a tensor with its own backward. */
static ky_status dice_values(ky_ctx *ctx, ky_tensor **d, ky_tensor *p, int pch, ky_tensor *t, int tch, float eps,
                             int per_image) {
  int nb = p->shape[0], pc = p->shape[3], tc = t->shape[3];
  size_t hw = (size_t)p->shape[1] * p->shape[2];
  int groups = per_image ? nb : 1;
  double *sums;
  KY_TRY(ky_ctx_alloc(ctx, (void **)&sums, (size_t)groups * 3 * sizeof(double)));
  ky_tensor *out;
  KY_TRY(ky_tensor_new(ctx, &out, KY_F32, 1, &groups));
  KY_IF_CUDA(ctx, ky_cuda_dice_fwd(ctx->cu, out->data, sums, p->data, pc, pch, t->data, tc, tch, nb, hw, eps, per_image))
  else ky_cpu_dice_fwd(out->data, sums, p->data, pc, pch, t->data, tc, tch, nb, hw, eps, per_image);
  ky_node *node;
  ky_tensor *in[2] = {p, t};
  KY_TRY(ky_tape_record(ctx, &node, "dice", dice_backward, out, in, 2, sizeof(dice_saved)));
  if (node) {
    dice_saved *sv = node->saved;
    sv->sums = sums; sv->pch = pch; sv->tch = tch; sv->per_image = per_image; sv->eps = eps;
  }
  *d = out;
  return KY_OK;
}

ky_status ky_loss_dice(ky_ctx *ctx, ky_tensor **loss, ky_tensor *p, int pch, ky_tensor *t, int tch,
                       float eps, int per_image) {
  KY_OP_ENTRY(ctx, loss);
  KY_TRY(ky_tensor_check(p, "dice", "probabilities", KY_F32, 4));
  KY_TRY(ky_tensor_check(t, "dice", "targets", KY_F32, 4));
  KY_TRY(ky_op_device(ctx, "dice", "probabilities", p));
  KY_TRY(ky_op_device(ctx, "dice", "targets", t));
  char dp[96], dt[96];
  KY_CHECK(p->shape[0] == t->shape[0] && p->shape[1] == t->shape[1] && p->shape[2] == t->shape[2], KY_ERR_SHAPE,
           "dice: probabilities %s and targets %s differ in N, H or W", ky_tensor_desc(p, dp, sizeof dp),
           ky_tensor_desc(t, dt, sizeof dt));
  KY_CHECK(pch >= 0 && pch < p->shape[3] && tch >= 0 && tch < t->shape[3], KY_ERR_ARG,
           "dice: channels %d / %d outside %d / %d", pch, tch, p->shape[3], t->shape[3]);
  KY_CHECK(eps > 0, KY_ERR_ARG, "dice: smoothing eps must be > 0, got %g", eps);
  ky_tensor *d, *m;
  KY_TRY(dice_values(ctx, &d, p, pch, t, tch, eps, per_image));
  KY_TRY(ky_mean(ctx, &m, d));
  return ky_affine(ctx, loss, m, -1.0f, 1.0f);
}

/* batchnorm2d op over NHWC channels: training (batch statistics, running-average update) and
 * evaluation (running statistics) forms, with their backward passes.
 * Tested by the batchnorm rows of tests/optable_cases.c and tests/test_parity_ops.c (PyTorch). */
#include "ops/ops.h"
#include "ops/op_util.h"
#include "ops/batchnorm_sync.h"

typedef struct {
  float *mean, *invstd;   /* [c] on the op's device (training form) */
  float eps;
  int training;
  int sync;               /* statistics over every rank (ops/batchnorm_sync.c) */
  double count;           /* their N*H*W */
} bn_saved;

static ky_status bn_backward(ky_ctx *ctx, ky_node *n) {
  bn_saved *sv = n->saved;
  ky_tensor *x = n->in[0], *g = n->in[1], *b = n->in[2], *rm = n->in[3], *rv = n->in[4], *dy = n->out->grad;
  ky_tensor *dx = NULL, *dg = NULL, *db = NULL;
  if (x->requires_grad) KY_TRY(ky_tensor_grad(ctx, &dx, x));
  if (g->requires_grad) KY_TRY(ky_tensor_grad(ctx, &dg, g));
  if (b->requires_grad) KY_TRY(ky_tensor_grad(ctx, &db, b));
  int c = x->shape[3];
  size_t npix = ky_tensor_numel(x) / (size_t)c;
  float *pdx = dx ? dx->data : NULL, *pdg = dg ? dg->data : NULL, *pdb = db ? db->data : NULL;
  if (sv->training && sv->sync) {
    KY_TRY(ky_bn_sync_bwd(ctx, pdx, pdg, pdb, dy->data, x->data, g->data, sv->mean, sv->invstd, sv->count, npix, c));
  } else if (sv->training) {
    KY_IF_CUDA(ctx, ky_cuda_bn_bwd_train(ctx->cu, pdx, pdg, pdb, dy->data, x->data, g->data, sv->mean, sv->invstd, npix, c))
    else ky_cpu_bn_bwd_train(ctx->pool, pdx, pdg, pdb, dy->data, x->data, g->data, sv->mean, sv->invstd, npix, c);
  } else {
    KY_IF_CUDA(ctx, ky_cuda_bn_bwd_eval(ctx->cu, pdx, pdg, pdb, dy->data, x->data, g->data, rm->data, rv->data, npix, c, sv->eps))
    else ky_cpu_bn_bwd_eval(ctx->pool, pdx, pdg, pdb, dy->data, x->data, g->data, rm->data, rv->data, npix, c, sv->eps);
  }
  return KY_OK;
}

ky_status ky_batchnorm2d(ky_ctx *ctx, ky_tensor **y, ky_tensor *x, ky_tensor *gamma, ky_tensor *beta,
                         ky_tensor *run_mean, ky_tensor *run_var, float eps, float momentum) {
  KY_OP_ENTRY(ctx, y);
  KY_TRY(ky_tensor_check(x, "batchnorm2d", "x", KY_F32, 4));
  ky_tensor *vec[4] = {gamma, beta, run_mean, run_var};
  static const char *names[4] = {"weight", "bias", "running_mean", "running_var"};
  int c = x->shape[3];
  for (int i = 0; i < 4; i++) {
    KY_TRY(ky_tensor_check(vec[i], "batchnorm2d", names[i], KY_F32, 1));
    KY_TRY(ky_op_device(ctx, "batchnorm2d", names[i], vec[i]));
    KY_CHECK(vec[i]->shape[0] == c, KY_ERR_SHAPE, "batchnorm2d %s: %s has %d entries, x has %d channels",
             gamma->name ? gamma->name : "", names[i], vec[i]->shape[0], c);
  }
  KY_TRY(ky_op_device(ctx, "batchnorm2d", "x", x));
  KY_CHECK(eps > 0 && momentum >= 0 && momentum <= 1, KY_ERR_ARG, "batchnorm2d: eps %g / momentum %g invalid", eps, momentum);
  size_t npix = ky_tensor_numel(x) / (size_t)(c ? c : 1);
  KY_CHECK(!ctx->training || npix > 1, KY_ERR_SHAPE,
           "batchnorm2d %s: training needs more than one value per channel (x has N*H*W = %zu)",
           gamma->name ? gamma->name : "", npix);
  ky_tensor *out;
  KY_TRY(ky_tensor_new(ctx, &out, KY_F32, 4, x->shape));
  float *mean = NULL, *invstd = NULL;
  double count = 0;
  int sync = ctx->training && ky_bn_sync_on(ctx);
  if (sync) {
    KY_TRY(ky_ctx_alloc(ctx, (void **)&mean, (size_t)c * sizeof(float)));
    KY_TRY(ky_ctx_alloc(ctx, (void **)&invstd, (size_t)c * sizeof(float)));
    KY_TRY(ky_bn_sync_fwd(ctx, out->data, mean, invstd, &count, run_mean->data, run_var->data, x->data, gamma->data,
                          beta->data, npix, c, eps, momentum));
  } else if (ctx->training) {
    KY_TRY(ky_ctx_alloc(ctx, (void **)&mean, (size_t)c * sizeof(float)));
    KY_TRY(ky_ctx_alloc(ctx, (void **)&invstd, (size_t)c * sizeof(float)));
    KY_IF_CUDA(ctx, ky_cuda_bn_fwd_train(ctx->cu, out->data, mean, invstd, run_mean->data, run_var->data, x->data,
                                         gamma->data, beta->data, npix, c, eps, momentum))
    else ky_cpu_bn_fwd_train(ctx->pool, out->data, mean, invstd, run_mean->data, run_var->data, x->data, gamma->data, beta->data,
                             npix, c, eps, momentum);
  } else {
    KY_IF_CUDA(ctx, ky_cuda_bn_fwd_eval(ctx->cu, out->data, x->data, gamma->data, beta->data, run_mean->data,
                                        run_var->data, npix, c, eps))
    else ky_cpu_bn_fwd_eval(ctx->pool, out->data, x->data, gamma->data, beta->data, run_mean->data, run_var->data, npix, c, eps);
  }
  ky_node *node;
  ky_tensor *in[5] = {x, gamma, beta, run_mean, run_var};
  KY_TRY(ky_tape_record(ctx, &node, "batchnorm2d", bn_backward, out, in, 5, sizeof(bn_saved)));
  if (node) {
    bn_saved *sv = node->saved;
    sv->mean = mean;
    sv->invstd = invstd;
    sv->eps = eps;
    sv->training = ctx->training;
    sv->sync = sync;
    sv->count = count;
  }
  *y = out;
  return KY_OK;
}

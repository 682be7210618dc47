/* Elementwise activations and arithmetic ops: relu, sigmoid, channel softmax, add, scale, affine,
 * mean, reshape. Tested by tests/optable_cases.c and tests/test_parity_ops.c. */
#include "ops/ops.h"
#include "ops/op_util.h"

ky_status ky_relu_backward_node(ky_ctx *ctx, ky_node *n) {
  ky_tensor *x = n->in[0], *dx;
  if (!x->requires_grad) return KY_OK;
  KY_TRY(ky_tensor_grad(ctx, &dx, x));
  size_t m = ky_tensor_numel(x);
  KY_IF_CUDA(ctx, ky_cuda_relu_bwd(ctx->cu, dx->data, n->out->grad->data, n->out->data, m))
  else ky_cpu_relu_bwd(ctx->pool, dx->data, n->out->grad->data, n->out->data, m);
  return KY_OK;
}

static ky_status unary_new(ky_ctx *ctx, ky_tensor **y, ky_tensor *x, const char *op) {
  KY_TRY(ky_tensor_check(x, op, "x", KY_F32, 0));
  KY_TRY(ky_op_device(ctx, op, "x", x));
  return ky_tensor_new(ctx, y, KY_F32, x->ndim, x->shape);
}

ky_status ky_relu(ky_ctx *ctx, ky_tensor **y, ky_tensor *x) {
  KY_OP_ENTRY(ctx, y);
  ky_tensor *out;
  KY_TRY(unary_new(ctx, &out, x, "relu"));
  size_t m = ky_tensor_numel(x);
  KY_IF_CUDA(ctx, ky_cuda_relu_fwd(ctx->cu, out->data, x->data, m)) else ky_cpu_relu_fwd(ctx->pool, out->data, x->data, m);
  ky_node *node;
  KY_TRY(ky_tape_record(ctx, &node, "relu", ky_relu_backward_node, out, &x, 1, 0));
  *y = out;
  return KY_OK;
}

static ky_status sigmoid_backward(ky_ctx *ctx, ky_node *n) {
  ky_tensor *x = n->in[0], *dx;
  KY_TRY(ky_tensor_grad(ctx, &dx, x));
  size_t m = ky_tensor_numel(x);
  KY_IF_CUDA(ctx, ky_cuda_sigmoid_bwd(ctx->cu, dx->data, n->out->grad->data, n->out->data, m))
  else ky_cpu_sigmoid_bwd(ctx->pool, dx->data, n->out->grad->data, n->out->data, m);
  return KY_OK;
}

ky_status ky_sigmoid(ky_ctx *ctx, ky_tensor **y, ky_tensor *x) {
  KY_OP_ENTRY(ctx, y);
  ky_tensor *out;
  KY_TRY(unary_new(ctx, &out, x, "sigmoid"));
  size_t m = ky_tensor_numel(x);
  KY_IF_CUDA(ctx, ky_cuda_sigmoid_fwd(ctx->cu, out->data, x->data, m)) else ky_cpu_sigmoid_fwd(ctx->pool, out->data, x->data, m);
  ky_node *node;
  KY_TRY(ky_tape_record(ctx, &node, "sigmoid", sigmoid_backward, out, &x, 1, 0));
  *y = out;
  return KY_OK;
}

static ky_status softmax_backward(ky_ctx *ctx, ky_node *n) {
  ky_tensor *x = n->in[0], *dx;
  KY_TRY(ky_tensor_grad(ctx, &dx, x));
  int c = x->shape[x->ndim - 1];
  size_t npix = ky_tensor_numel(x) / (size_t)c;
  KY_IF_CUDA(ctx, ky_cuda_softmax_bwd(ctx->cu, dx->data, n->out->grad->data, n->out->data, npix, c))
  else ky_cpu_softmax_bwd(ctx->pool, dx->data, n->out->grad->data, n->out->data, npix, c);
  return KY_OK;
}

ky_status ky_softmax(ky_ctx *ctx, ky_tensor **y, ky_tensor *x) {
  KY_OP_ENTRY(ctx, y);
  ky_tensor *out;
  KY_TRY(unary_new(ctx, &out, x, "softmax"));
  KY_CHECK(x->ndim >= 1, KY_ERR_SHAPE, "softmax: x is 0-D");
  int c = x->shape[x->ndim - 1];
  size_t npix = c ? ky_tensor_numel(x) / (size_t)c : 0;
  KY_IF_CUDA(ctx, ky_cuda_softmax_fwd(ctx->cu, out->data, x->data, npix, c))
  else ky_cpu_softmax_fwd(ctx->pool, out->data, x->data, npix, c);
  ky_node *node;
  KY_TRY(ky_tape_record(ctx, &node, "softmax", softmax_backward, out, &x, 1, 0));
  *y = out;
  return KY_OK;
}

/* dx += alpha * dy for the inputs of add / scale / affine / reshape. */
static ky_status acc_grad(ky_ctx *ctx, ky_tensor *x, const ky_tensor *dy, float alpha) {
  if (!x->requires_grad) return KY_OK;
  ky_tensor *dx;
  KY_TRY(ky_tensor_grad(ctx, &dx, x));
  size_t m = ky_tensor_numel(x);
  KY_IF_CUDA(ctx, ky_cuda_axpy(ctx->cu, dx->data, dy->data, alpha, m)) else ky_cpu_axpy(ctx->pool, dx->data, dy->data, alpha, m);
  return KY_OK;
}

static ky_status add_backward(ky_ctx *ctx, ky_node *n) {
  KY_TRY(acc_grad(ctx, n->in[0], n->out->grad, 1.0f));
  return acc_grad(ctx, n->in[1], n->out->grad, 1.0f);
}

ky_status ky_add(ky_ctx *ctx, ky_tensor **y, ky_tensor *a, ky_tensor *b) {
  KY_OP_ENTRY(ctx, y);
  KY_TRY(ky_tensor_check(a, "add", "a", KY_F32, 0));
  KY_TRY(ky_tensor_check(b, "add", "b", KY_F32, 0));
  KY_TRY(ky_op_device(ctx, "add", "a", a));
  KY_TRY(ky_op_device(ctx, "add", "b", b));
  char da[96], db[96];
  KY_CHECK(ky_tensor_same_shape(a, b), KY_ERR_SHAPE, "add: a %s and b %s differ in shape",
           ky_tensor_desc(a, da, sizeof da), ky_tensor_desc(b, db, sizeof db));
  ky_tensor *out;
  KY_TRY(ky_tensor_new(ctx, &out, KY_F32, a->ndim, a->shape));
  size_t m = ky_tensor_numel(a);
  KY_IF_CUDA(ctx, ky_cuda_add_fwd(ctx->cu, out->data, a->data, b->data, m)) else ky_cpu_add_fwd(ctx->pool, out->data, a->data, b->data, m);
  ky_node *node;
  ky_tensor *in[2] = {a, b};
  KY_TRY(ky_tape_record(ctx, &node, "add", add_backward, out, in, 2, 0));
  *y = out;
  return KY_OK;
}

typedef struct { float a; } affine_saved;

static ky_status affine_backward(ky_ctx *ctx, ky_node *n) {
  return acc_grad(ctx, n->in[0], n->out->grad, ((affine_saved *)n->saved)->a);
}

ky_status ky_affine(ky_ctx *ctx, ky_tensor **y, ky_tensor *x, float a, float b) {
  KY_OP_ENTRY(ctx, y);
  ky_tensor *out;
  KY_TRY(unary_new(ctx, &out, x, "affine"));
  size_t m = ky_tensor_numel(x);
  KY_IF_CUDA(ctx, ky_cuda_fill(ctx->cu, out->data, b, m)) else ky_cpu_fill(ctx->pool, out->data, b, m);
  KY_IF_CUDA(ctx, ky_cuda_axpy(ctx->cu, out->data, x->data, a, m)) else ky_cpu_axpy(ctx->pool, out->data, x->data, a, m);
  ky_node *node;
  KY_TRY(ky_tape_record(ctx, &node, "affine", affine_backward, out, &x, 1, sizeof(affine_saved)));
  if (node) ((affine_saved *)node->saved)->a = a;
  *y = out;
  return KY_OK;
}

ky_status ky_scale(ky_ctx *ctx, ky_tensor **y, ky_tensor *x, float alpha) {
  KY_OP_ENTRY(ctx, y);
  ky_tensor *out;
  KY_TRY(unary_new(ctx, &out, x, "scale"));
  size_t m = ky_tensor_numel(x);
  KY_IF_CUDA(ctx, ky_cuda_scale_fwd(ctx->cu, out->data, x->data, alpha, m)) else ky_cpu_scale_fwd(ctx->pool, out->data, x->data, alpha, m);
  ky_node *node;
  KY_TRY(ky_tape_record(ctx, &node, "scale", affine_backward, out, &x, 1, sizeof(affine_saved)));
  if (node) ((affine_saved *)node->saved)->a = alpha;
  *y = out;
  return KY_OK;
}

static ky_status mean_backward(ky_ctx *ctx, ky_node *n) {
  ky_tensor *x = n->in[0], *dx;
  KY_TRY(ky_tensor_grad(ctx, &dx, x));
  int m = (int)ky_tensor_numel(x);
  KY_IF_CUDA(ctx, ky_cuda_gap_bwd(ctx->cu, dx->data, n->out->grad->data, 1, m, 1))
  else ky_cpu_gap_bwd(ctx->pool, dx->data, n->out->grad->data, 1, m, 1);
  return KY_OK;
}

ky_status ky_mean(ky_ctx *ctx, ky_tensor **y, ky_tensor *x) {
  KY_OP_ENTRY(ctx, y);
  KY_TRY(ky_tensor_check(x, "mean", "x", KY_F32, 0));
  KY_TRY(ky_op_device(ctx, "mean", "x", x));
  size_t m = ky_tensor_numel(x);
  KY_CHECK(m > 0 && m < (size_t)1 << 31, KY_ERR_SHAPE, "mean: x has %zu elements", m);
  int one = 1;
  ky_tensor *out;
  KY_TRY(ky_tensor_new(ctx, &out, KY_F32, 1, &one));
  KY_IF_CUDA(ctx, ky_cuda_gap_fwd(ctx->cu, out->data, x->data, 1, (int)m, 1))
  else ky_cpu_gap_fwd(ctx->pool, out->data, x->data, 1, (int)m, 1);
  ky_node *node;
  KY_TRY(ky_tape_record(ctx, &node, "mean", mean_backward, out, &x, 1, 0));
  *y = out;
  return KY_OK;
}

static ky_status reshape_backward(ky_ctx *ctx, ky_node *n) { return acc_grad(ctx, n->in[0], n->out->grad, 1.0f); }

ky_status ky_reshape(ky_ctx *ctx, ky_tensor **y, ky_tensor *x, int ndim, const int *shape) {
  KY_OP_ENTRY(ctx, y);
  KY_CHECK_NULL(x, "x");
  KY_CHECK(ndim >= 1 && ndim <= KY_MAX_DIMS && shape, KY_ERR_ARG, "reshape: %d dimensions", ndim);
  size_t m = 1;
  for (int i = 0; i < ndim; i++) {
    KY_CHECK(shape[i] >= 0, KY_ERR_ARG, "reshape: negative dimension");
    m *= (size_t)shape[i];
  }
  char d[96];
  KY_CHECK(m == ky_tensor_numel(x), KY_ERR_SHAPE, "reshape: %s has %zu elements, the new shape %zu",
           ky_tensor_desc(x, d, sizeof d), ky_tensor_numel(x), m);
  ky_tensor *out;
  KY_TRY(ky_op_alias(ctx, &out, x));
  out->ndim = ndim;
  for (int i = 0; i < KY_MAX_DIMS; i++) out->shape[i] = i < ndim ? shape[i] : 0;
  ky_node *node;
  KY_TRY(ky_tape_record(ctx, &node, "reshape", reshape_backward, out, &x, 1, 0));
  *y = out;
  return KY_OK;
}

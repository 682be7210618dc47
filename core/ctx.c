/* Device context, tensor creation in the step arena, host<->device copies, the tape and
 * ky_backward. Tested by tests/test_core_tensor.c and tests/test_core_autograd.c. */
#include "core/ctx.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/device.h"
#include "core/pool.h"


ky_status ky_ctx_init(ky_ctx *ctx, ky_device dev, int gpu) {
  KY_CHECK_NULL(ctx, "ctx");
  memset(ctx, 0, sizeof *ctx);
  ctx->dev = dev;
  ctx->grad_enabled = 1;
  ctx->training = 1;
  if (dev != KY_DEV_CPU) {
    ctx->fns = ky_device_fns(dev);
    KY_CHECK(ctx->fns, KY_ERR_CUDA, "device cuda asked for, but this build has no CUDA backend (built with CUDA=0 or without nvcc)");
    KY_TRY(ctx->fns->open(&ctx->cu, gpu));
  }
  int threads;
  ky_status s = ky_pool_default_threads(&threads);
  if (s == KY_OK) s = ky_pool_create(&ctx->pool, threads);
  if (s != KY_OK) {
    if (ctx->cu && ctx->fns) ctx->fns->close(ctx->cu);
    ctx->cu = NULL;
    return s;
  }
  ky_arena_init(&ctx->host, KY_DEV_CPU, NULL, (size_t)16 << 20);
  ky_arena_init(&ctx->devmem, dev, ctx->cu, (size_t)256 << 20);
  return KY_OK;
}

ky_status ky_ctx_set_threads(ky_ctx *ctx, int threads) {
  KY_CHECK_NULL(ctx, "ctx");
  if (ctx->pool && ky_pool_threads(ctx->pool) == threads) return KY_OK;
  ky_pool *p;
  KY_TRY(ky_pool_create(&p, threads)); /* validates first: a bad count keeps the old pool */
  ky_pool_free(ctx->pool);
  ctx->pool = p;
  return KY_OK;
}

int ky_ctx_threads(const ky_ctx *ctx) { return ctx ? ky_pool_threads(ctx->pool) : 1; }

void ky_ctx_free(ky_ctx *ctx) {
  if (!ctx) return;
  ky_pool_free(ctx->pool);
  ctx->pool = NULL;
  ky_arena_free(&ctx->host);
  ky_arena_free(&ctx->devmem);
  if (ctx->cu && ctx->fns) ctx->fns->close(ctx->cu);
  ctx->cu = NULL;
}

void ky_ctx_reset(ky_ctx *ctx) {
  ky_arena_reset(&ctx->host);
  ky_arena_reset(&ctx->devmem);
  ctx->tape.last = NULL;
  ctx->tape.count = 0;
}

ky_status ky_ctx_alloc(ky_ctx *ctx, void **p, size_t bytes) {
  return ky_arena_alloc(ctx->dev == KY_DEV_CUDA ? &ctx->devmem : &ctx->host, p, bytes);
}

ky_status ky_ctx_alloc_host(ky_ctx *ctx, void **p, size_t bytes) { return ky_arena_alloc(&ctx->host, p, bytes); }

int ky_ctx_set_grad(ky_ctx *ctx, int on) {
  int old = ctx->grad_enabled;
  ctx->grad_enabled = on;
  return old;
}

/* ---- tensors ------------------------------------------------------------------------------ */
ky_status ky_tensor_new(ky_ctx *ctx, ky_tensor **t, ky_dtype dtype, int ndim, const int *shape) {
  KY_CHECK_NULL(ctx, "ctx");
  KY_CHECK_NULL(t, "t");
  KY_CHECK(ndim >= 0 && ndim <= KY_MAX_DIMS, KY_ERR_ARG, "tensor: %d dimensions, at most %d supported", ndim, KY_MAX_DIMS);
  KY_CHECK(ndim == 0 || shape, KY_ERR_ARG, "tensor: shape is NULL");
  ky_tensor *x;
  KY_TRY(ky_ctx_alloc_host(ctx, (void **)&x, sizeof *x));
  memset(x, 0, sizeof *x);
  x->ndim = ndim;
  for (int i = 0; i < ndim; i++) {
    KY_CHECK(shape[i] >= 0, KY_ERR_ARG, "tensor: dimension %d is %d (negative)", i, shape[i]);
    x->shape[i] = shape[i];
  }
  x->dtype = dtype;
  x->dev = ctx->dev;
  KY_TRY(ky_ctx_alloc(ctx, &x->data, ky_tensor_bytes(x)));
  *t = x;
  return KY_OK;
}

ky_status ky_tensor_new4(ky_ctx *ctx, ky_tensor **t, ky_dtype dtype, int n, int h, int w, int c) {
  int s[4] = {n, h, w, c};
  return ky_tensor_new(ctx, t, dtype, 4, s);
}

static ky_status memset0(ky_ctx *ctx, void *p, size_t bytes) {
  if (ctx->dev != KY_DEV_CPU) return ctx->fns->memset(ctx->cu, p, 0, bytes);
  if (bytes % sizeof(float) == 0) ky_pool_fill(ctx->pool, p, 0.0f, bytes / sizeof(float)); /* gradients: on the pool */
  else memset(p, 0, bytes);
  return KY_OK;
}

ky_status ky_tensor_zeros(ky_ctx *ctx, ky_tensor **t, ky_dtype dtype, int ndim, const int *shape) {
  KY_TRY(ky_tensor_new(ctx, t, dtype, ndim, shape));
  return memset0(ctx, (*t)->data, ky_tensor_bytes(*t));
}

ky_status ky_tensor_set(ky_ctx *ctx, ky_tensor *t, const void *src) {
  KY_CHECK_NULL(t, "t");
  KY_CHECK_NULL(src, "src");
  if (t->dev != KY_DEV_CPU) {
    KY_CHECK(ctx && ctx->fns, KY_ERR_STATE, "tensor_set: CUDA tensor but the context has no GPU");
    return ctx->fns->h2d(ctx->cu, t->data, src, ky_tensor_bytes(t));
  }
  memcpy(t->data, src, ky_tensor_bytes(t));
  return KY_OK;
}

ky_status ky_tensor_from_host(ky_ctx *ctx, ky_tensor **t, ky_dtype dtype, int ndim, const int *shape,
                              const void *src) {
  KY_TRY(ky_tensor_new(ctx, t, dtype, ndim, shape));
  return ky_tensor_set(ctx, *t, src);
}

ky_status ky_tensor_to_host(ky_ctx *ctx, void *dst, const ky_tensor *t) {
  KY_CHECK_NULL(t, "t");
  KY_CHECK_NULL(dst, "dst");
  if (t->dev != KY_DEV_CPU) {
    KY_CHECK(ctx && ctx->fns, KY_ERR_STATE, "tensor_to_host: CUDA tensor but the context has no GPU");
    return ctx->fns->d2h(ctx->cu, dst, t->data, ky_tensor_bytes(t));
  }
  memcpy(dst, t->data, ky_tensor_bytes(t));
  return KY_OK;
}

ky_status ky_tensor_fill(ky_ctx *ctx, ky_tensor *t, float v) {
  KY_TRY(ky_tensor_check(t, "fill", "t", KY_F32, 0));
  if (t->dev != KY_DEV_CPU) {
    KY_CHECK(ctx && ctx->fns, KY_ERR_STATE, "fill: CUDA tensor but the context has no GPU");
    return ctx->fns->fill(ctx->cu, t->data, v, ky_tensor_numel(t));
  }
  ky_pool_fill(ctx->pool, t->data, v, ky_tensor_numel(t));
  return KY_OK;
}

ky_status ky_tensor_item(ky_ctx *ctx, float *v, const ky_tensor *t) {
  KY_TRY(ky_tensor_check(t, "item", "t", KY_F32, 0));
  KY_CHECK(ky_tensor_numel(t) == 1, KY_ERR_SHAPE, "item: tensor has %zu elements, expected 1", ky_tensor_numel(t));
  return ky_tensor_to_host(ctx, v, t);
}

/* ---- tape --------------------------------------------------------------------------------- */
ky_status ky_tape_record(ky_ctx *ctx, ky_node **node, const char *op,
                         ky_status (*backward)(ky_ctx *, ky_node *), ky_tensor *out,
                         ky_tensor *const *in, int n_in, size_t saved_bytes) {
  *node = NULL;
  KY_ASSERT(n_in <= KY_NODE_MAX_IN);
  int need = 0;
  for (int i = 0; i < n_in; i++) if (in[i] && in[i]->requires_grad) need = 1;
  out->requires_grad = need && ctx->grad_enabled;
  if (!out->requires_grad) return KY_OK;
  ky_node *n;
  KY_TRY(ky_ctx_alloc_host(ctx, (void **)&n, sizeof *n));
  memset(n, 0, sizeof *n);
  n->op = op;
  n->backward = backward;
  n->out = out;
  n->n_in = n_in;
  for (int i = 0; i < n_in; i++) n->in[i] = in[i];
  if (saved_bytes) {
    KY_TRY(ky_ctx_alloc_host(ctx, &n->saved, saved_bytes));
    memset(n->saved, 0, saved_bytes);
  }
  n->prev = ctx->tape.last;
  ctx->tape.last = n;
  ctx->tape.count++;
  out->node = n;
  if (!out->name) out->name = op;
  *node = n;
  return KY_OK;
}

ky_status ky_tensor_grad(ky_ctx *ctx, ky_tensor **g, ky_tensor *t) {
  if (!t->grad) {
    ky_tensor *gt = NULL;
    KY_TRY(ky_tensor_new(ctx, &gt, KY_F32, t->ndim, t->shape));
    KY_TRY(memset0(ctx, gt->data, ky_tensor_bytes(gt)));
    t->grad = gt;
  }
  *g = t->grad;
  return KY_OK;
}

static ky_status run_tape(ky_ctx *ctx) {
  for (ky_node *n = ctx->tape.last; n; n = n->prev) {
    if (n->out->grad) {   /* else it does not lead to the output */
      ky_status s = n->backward(ctx, n);
      if (s != KY_OK) return ky_error_context(s, "backward of %s: ", n->op);
    }
    if (ctx->after_node) KY_TRY(ctx->after_node(ctx->after_node_ud, n));
  }
  return KY_OK;
}

ky_status ky_backward_from(ky_ctx *ctx, ky_tensor *y, const ky_tensor *dy) {
  KY_CHECK_NULL(ctx, "ctx");
  KY_TRY(ky_tensor_check(y, "backward", "y", KY_F32, 0));
  KY_TRY(ky_tensor_check(dy, "backward", "dy", KY_F32, 0));
  char a[96], b[96];
  KY_CHECK(ky_tensor_numel(y) == ky_tensor_numel(dy) && y->dev == dy->dev, KY_ERR_SHAPE,
           "backward: y %s and dy %s differ", ky_tensor_desc(y, a, sizeof a), ky_tensor_desc(dy, b, sizeof b));
  KY_CHECK(y->requires_grad && y->node, KY_ERR_STATE,
           "backward: y was computed without a tape (grad disabled, or nothing requires grad)");
  ky_tensor *g = NULL;
  KY_TRY(ky_tensor_grad(ctx, &g, y));
  if (y->dev != KY_DEV_CPU) {
    KY_CHECK(ctx->fns, KY_ERR_STATE, "backward: CUDA tensor but the context has no GPU");
    KY_TRY(ctx->fns->d2d(ctx->cu, g->data, dy->data, ky_tensor_bytes(g)));
  } else {
    memcpy(g->data, dy->data, ky_tensor_bytes(g));
  }
  return run_tape(ctx);
}

ky_status ky_backward(ky_ctx *ctx, ky_tensor *loss) {
  KY_CHECK_NULL(ctx, "ctx");
  KY_TRY(ky_tensor_check(loss, "backward", "loss", KY_F32, 0));
  KY_CHECK(ky_tensor_numel(loss) == 1, KY_ERR_SHAPE, "backward: loss has %zu elements, expected 1",
           ky_tensor_numel(loss));
  KY_CHECK(loss->requires_grad && loss->node, KY_ERR_STATE,
           "backward: the loss was computed without a tape (grad disabled, or nothing requires grad)");
  ky_tensor *g = NULL;
  KY_TRY(ky_tensor_grad(ctx, &g, loss));
  KY_TRY(ky_tensor_fill(ctx, g, 1.0f));
  return run_tape(ctx);
}

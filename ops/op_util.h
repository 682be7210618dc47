/* Private helpers for ops/ and losses/: device checks and the CPU/CUDA dispatch switch.
 * Exercised by every op test. */
#ifndef KY_OP_UTIL_H
#define KY_OP_UTIL_H

#include "core/ctx.h"
#include "ops/kernels.h"
#ifdef KY_HAVE_CUDA
#include "cuda/kernels.h"
#define KY_ON_CUDA(ctx) ((ctx)->dev == KY_DEV_CUDA)
#else
#define KY_ON_CUDA(ctx) 0
#endif

/* Every tensor an op touches must live on the context's device. */
static inline ky_status ky_op_device(ky_ctx *ctx, const char *op, const char *arg, const ky_tensor *t) {
  if (t && t->dev != ctx->dev)
    return ky_error(KY_ERR_ARG, "%s: %s is on the %s but the context runs on the %s", op, arg,
                    t->dev == KY_DEV_CUDA ? "GPU" : "CPU", ctx->dev == KY_DEV_CUDA ? "GPU" : "CPU");
  return KY_OK;
}

/* A second tensor header over the same data (no autograd link by itself). */
static inline ky_status ky_op_alias(ky_ctx *ctx, ky_tensor **y, const ky_tensor *x) {
  KY_TRY(ky_ctx_alloc_host(ctx, (void **)y, sizeof **y));
  **y = *x;
  (*y)->grad = NULL;
  (*y)->node = NULL;
  (*y)->name = NULL;
  return KY_OK;
}

/* Backward of a relu node (input in[0], output out): shared by ky_relu and fused conv+ReLU. */
ky_status ky_relu_backward_node(ky_ctx *ctx, ky_node *n);

#define KY_OP_ENTRY(ctx, out) do { KY_CHECK_NULL(ctx, "ctx"); KY_CHECK_NULL(out, "output pointer"); *(out) = NULL; } while (0)

/* Dispatch pattern used by every op (one place per op where CUDA plugs in):
 *   KY_IF_CUDA(ctx, ky_cuda_relu_fwd(ctx->cu, y, x, n)) else ky_cpu_relu_fwd(ctx->pool, y, x, n);
 * On a CPU-only build the CUDA branch disappears and the CPU call always runs. */
#ifdef KY_HAVE_CUDA
#define KY_IF_CUDA(ctx, call) if (KY_ON_CUDA(ctx)) { KY_TRY(call); }
#else
#define KY_IF_CUDA(ctx, call) if (0) { }
#endif

#endif

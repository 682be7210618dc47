/* The device context: which device runs the ops, its CUDA state, the per-step arenas, the tape,
 * and the grad / training switches. The one piece of state every op takes; nothing global.
 * Tested by tests/test_core_tensor.c and tests/test_core_autograd.c. */
#ifndef KY_CTX_H
#define KY_CTX_H

#include "core/arena.h"
#include "core/tape.h"
#include "core/tensor.h"

struct ky_cuda;
struct ky_devfns;
struct ky_pool;
struct ky_dist;

struct ky_ctx {
  ky_device dev;
  struct ky_cuda *cu;      /* NULL on the CPU */
  const struct ky_devfns *fns; /* the device's function table (core/device.h); NULL on the CPU */
  ky_arena host;           /* tensor structs, tape nodes, saved host state, CPU activations */
  ky_arena devmem;         /* CUDA activations (dev == KY_DEV_CUDA); unused on the CPU */
  ky_tape tape;
  int grad_enabled;        /* record the tape (training) or not (inference) */
  int training;            /* batch-norm batch statistics vs running statistics */
  struct ky_pool *pool;    /* CPU threads for the kernels and per-image work (core/pool.h) */
  struct ky_dist *dist;    /* data-parallel job (dist/dist.h), or NULL: one process */
  /* Called after every tape node in a backward pass, run or skipped (dist/: starts gradient
   * all-reduces while the rest of the backward pass runs); NULL: none. */
  ky_status (*after_node)(void *ud, ky_node *n);
  void *after_node_ud;
};

/* dev = KY_DEV_CUDA needs a CUDA build and a GPU (else KY_ERR_CUDA with the reason). Starts the
 * CPU thread pool with ky_pool_default_threads (KY_THREADS, else every CPU the process may use). */
ky_status ky_ctx_init(ky_ctx *ctx, ky_device dev, int gpu);
/* Restarts the thread pool with `threads` threads (1 .. KY_POOL_MAX_THREADS). Results do not
 * depend on it: every CPU kernel is bitwise identical whatever the thread count. */
ky_status ky_ctx_set_threads(ky_ctx *ctx, int threads);
int ky_ctx_threads(const ky_ctx *ctx);
void ky_ctx_free(ky_ctx *ctx);
/* Starts a step: rewinds both arenas and clears the tape (tensors of the last step die). */
void ky_ctx_reset(ky_ctx *ctx);
/* Memory from the context's arena on its device (activations), or host arena. */
ky_status ky_ctx_alloc(ky_ctx *ctx, void **p, size_t bytes);
ky_status ky_ctx_alloc_host(ky_ctx *ctx, void **p, size_t bytes);

/* Tensor creation in the step arena (contents uninitialised unless stated). */
ky_status ky_tensor_new(ky_ctx *ctx, ky_tensor **t, ky_dtype dtype, int ndim, const int *shape);
ky_status ky_tensor_new4(ky_ctx *ctx, ky_tensor **t, ky_dtype dtype, int n, int h, int w, int c);
ky_status ky_tensor_zeros(ky_ctx *ctx, ky_tensor **t, ky_dtype dtype, int ndim, const int *shape);
/* Copies host memory into a new tensor on the context's device. */
ky_status ky_tensor_from_host(ky_ctx *ctx, ky_tensor **t, ky_dtype dtype, int ndim, const int *shape,
                              const void *src);
/* Copies a tensor (any device) to host memory of ky_tensor_bytes(t). */
ky_status ky_tensor_to_host(ky_ctx *ctx, void *dst, const ky_tensor *t);
/* Copies host memory into an existing tensor. */
ky_status ky_tensor_set(ky_ctx *ctx, ky_tensor *t, const void *src);
ky_status ky_tensor_fill(ky_ctx *ctx, ky_tensor *t, float v);
/* Reads a one-element f32 tensor. */
ky_status ky_tensor_item(ky_ctx *ctx, float *v, const ky_tensor *t);

/* Autograd. */
/* Records a node for `out` when grad is enabled and an input requires grad; `saved_bytes` of
 * zeroed arena memory become node->saved. Returns NULL in *node when nothing is recorded. */
ky_status ky_tape_record(ky_ctx *ctx, ky_node **node, const char *op,
                         ky_status (*backward)(ky_ctx *, ky_node *), ky_tensor *out,
                         ky_tensor *const *in, int n_in, size_t saved_bytes);
/* Gradient buffer of t, allocated (zeroed) in the arena on first use. */
ky_status ky_tensor_grad(ky_ctx *ctx, ky_tensor **g, ky_tensor *t);
/* Seeds d loss / d loss = 1 and runs every recorded node in reverse. loss: one element. */
ky_status ky_backward(ky_ctx *ctx, ky_tensor *loss);
/* Backward from any output y with a given upstream gradient dy (same shape, same device):
 * what gradient checks and partial backward passes use. */
ky_status ky_backward_from(ky_ctx *ctx, ky_tensor *y, const ky_tensor *dy);
/* Convenience: grad_enabled = on; returns the previous setting. */
int ky_ctx_set_grad(ky_ctx *ctx, int on);

#endif

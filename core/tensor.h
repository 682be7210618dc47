/* Tensors: shape (up to 4-D, activations NHWC), dtype, device, data pointer, optional gradient
 * and the tape node that produced it. Tested by tests/test_core_tensor.c. */
#ifndef KY_TENSOR_H
#define KY_TENSOR_H

#include <stddef.h>
#include <stdint.h>
#include "core/status.h"

typedef enum {
  KY_F32 = 0,
  KY_U8,        /* class maps, images */
  KY_I32,       /* indices (max-pool argmax) */
  KY_I64,       /* only at the file boundary (PyTorch's num_batches_tracked) */
  KY_F64,
  KY_F16,       /* room for mixed precision; no kernels yet */
  KY_BF16,
} ky_dtype;

typedef enum { KY_DEV_CPU = 0, KY_DEV_CUDA } ky_device;

#define KY_MAX_DIMS 4

typedef struct ky_node ky_node;

typedef struct ky_tensor {
  int ndim;
  int shape[KY_MAX_DIMS];   /* activations: [n, h, w, c]; weights: [k, kh, kw, c] (OHWI) */
  ky_dtype dtype;
  ky_device dev;
  void *data;               /* host or device pointer; not owned (arena or flat block) */
  struct ky_tensor *grad;   /* same shape, f32; NULL until backward reaches it */
  ky_node *node;            /* producer on the tape; NULL for leaves */
  int requires_grad;        /* leaves: set by the owner; results: any input requires it */
  const char *name;         /* for messages: parameter name or op name */
} ky_tensor;

size_t ky_dtype_size(ky_dtype t);
const char *ky_dtype_name(ky_dtype t);
size_t ky_tensor_numel(const ky_tensor *t);
size_t ky_tensor_bytes(const ky_tensor *t);
/* "[2, 64, 96, 3] f32 cpu" into buf, for error messages. */
const char *ky_tensor_desc(const ky_tensor *t, char *buf, size_t len);
int ky_tensor_same_shape(const ky_tensor *a, const ky_tensor *b);

/* Checks used at op entry points: non-NULL, f32 (or given dtype), ndim, device. The message
 * names the op and the argument: "conv2d: x: expected 4-D f32, got [3, 4] f32 cpu". */
ky_status ky_tensor_check(const ky_tensor *t, const char *op, const char *arg, ky_dtype dtype, int ndim);

#endif

/* The function table through which core/ reaches a device backend (memory, copies, fill), so that
 * core/ names no backend: the tables live a floor up, in ops/device.c, which links them.
 * Host memory (KY_DEV_CPU) is core's own (malloc / memcpy) and has no table.
 * Tested by tests/test_core_tensor.c (the CPU path and the "build without CUDA" errors) and, on a
 * GPU, tests/test_cuda_memory.c and tests/test_cuda_optable.c (the CUDA table). */
#ifndef KY_DEVICE_H
#define KY_DEVICE_H

#include <stddef.h>
#include "core/status.h"
#include "core/tensor.h"

struct ky_cuda;   /* the backend's opaque handle, as ctx->cu, arena->cu and params->cu carry it */

typedef struct ky_devfns {
  const char *name;
  ky_status (*open)(struct ky_cuda **state, int gpu);
  void (*close)(struct ky_cuda *state);
  ky_status (*malloc)(struct ky_cuda *state, void **p, size_t bytes);
  void (*release)(struct ky_cuda *state, void *p);
  ky_status (*memset)(struct ky_cuda *state, void *dst, int byte, size_t bytes);
  ky_status (*h2d)(struct ky_cuda *state, void *dst, const void *src, size_t bytes);
  ky_status (*d2h)(struct ky_cuda *state, void *dst, const void *src, size_t bytes);
  ky_status (*d2d)(struct ky_cuda *state, void *dst, const void *src, size_t bytes);
  ky_status (*fill)(struct ky_cuda *state, float *y, float v, size_t n);   /* y[n] = v */
} ky_devfns;

/* The table of a non-host device; NULL for KY_DEV_CPU and for a device this build lacks (e.g. CUDA
 * in a CUDA=0 build). Defined in ops/device.c. */
const ky_devfns *ky_device_fns(ky_device dev);

#endif

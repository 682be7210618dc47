/* The CUDA backend's public face: device context (stream, cuBLAS handle, caching allocator,
 * workspace, flags) and explicit host<->device copies. No CUDA types appear here, so C code can
 * include it; it exists only when the build has KY_HAVE_CUDA.
 * Tested by tests/test_cuda_memory.c (skips with one line when no GPU is present). */
#ifndef KY_CUDA_H
#define KY_CUDA_H

#include <stddef.h>
#include <stdint.h>
#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ky_cuda ky_cuda;   /* opaque; defined in cuda/context.cu */

/* Number of usable GPUs; 0 (and no error) when the driver or a device is missing.
 * `why` (may be NULL) receives a one-line reason when the answer is 0. */
int ky_cuda_device_count(char *why, size_t why_len);

/* Creates a context on `device`: one stream, one cuBLAS handle, a caching allocator.
 * Honors KY_CUDA_SYNC=1 (synchronise and check after every launch). */
ky_status ky_cuda_init(ky_cuda **cu, int device);
void ky_cuda_free(ky_cuda *cu);

/* Flags. tf32: convolution / GEMM may use TF32 tensor cores (sm_80+). deterministic (on by
 * default): the convolution's AUTO algorithm follows a fixed rule (ops/conv_choice.h) instead of
 * timing the candidates, so repeated runs on one card and build give the same bits (no kernel uses
 * float atomics either way); off: AUTO times once per shape and keeps the fastest. */
void ky_cuda_set_tf32(ky_cuda *cu, int on);
int ky_cuda_tf32(const ky_cuda *cu);
void ky_cuda_set_deterministic(ky_cuda *cu, int on);
int ky_cuda_deterministic(const ky_cuda *cu);

/* Caching allocator: size-class free lists; memory returns to the cache, not to the driver.
 * Out of memory gives KY_ERR_NOMEM naming the bytes asked and the bytes free. */
ky_status ky_cuda_malloc(ky_cuda *cu, void **p, size_t bytes);
void ky_cuda_release(ky_cuda *cu, void *p);
/* Returns cached blocks to the driver. */
void ky_cuda_trim(ky_cuda *cu);
/* Bytes in use / reserved by the cache / peak in use since init. */
void ky_cuda_mem_stats(const ky_cuda *cu, size_t *in_use, size_t *reserved, size_t *peak);

/* Explicit copies, ordered on the context's stream. h2d/d2h are synchronous with respect to the
 * host buffer (the call returns when the host buffer may be reused / read). */
ky_status ky_cuda_h2d(ky_cuda *cu, void *dst, const void *src, size_t bytes);
ky_status ky_cuda_d2h(ky_cuda *cu, void *dst, const void *src, size_t bytes);
ky_status ky_cuda_d2d(ky_cuda *cu, void *dst, const void *src, size_t bytes);
ky_status ky_cuda_memset(ky_cuda *cu, void *dst, int byte, size_t bytes);
ky_status ky_cuda_sync(ky_cuda *cu);

/* Scratch memory for kernels (grows on demand, owned by the context; valid until the next call
 * that asks for workspace). */
ky_status ky_cuda_workspace(ky_cuda *cu, void **p, size_t bytes);

/* Event timing for benchmarks: returns milliseconds between two points on the stream. */
typedef struct ky_cuda_timer ky_cuda_timer;
ky_status ky_cuda_timer_start(ky_cuda *cu, ky_cuda_timer **t);
ky_status ky_cuda_timer_stop(ky_cuda *cu, ky_cuda_timer *t, float *ms);

/* Device facts for bench tables. */
ky_status ky_cuda_device_name(ky_cuda *cu, char *name, size_t len, int *sm);

#ifdef __cplusplus
}
#endif
#endif

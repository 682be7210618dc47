/* Private header of the CUDA backend (cuda/*.cu only): the context struct, KY_CUDA_CHECK /
 * KY_CUDA_LAUNCH_CHECK error macros, launch helpers. Tested through tests/test_cuda_*.c. */
#ifndef KY_CUDA_CHECK_CUH
#define KY_CUDA_CHECK_CUH

#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "cuda/cuda.h"
#include "cuda/kernels.h"

typedef struct ky_cuda_cache ky_cuda_cache;  /* caching allocator state, cuda/memory.cu */

struct ky_cuda {
  int device;
  int sm;                  /* compute capability, major*10 + minor */
  int num_sms;
  cudaStream_t stream;     /* every launch and copy of this context is ordered on it */
  cublasHandle_t cublas;   /* created on first use (ky_cuda_cublas) */
  int tf32, deterministic;
  int sync_each;           /* KY_CUDA_SYNC=1: synchronise and check after every launch */
  ky_cuda_cache *cache;
  struct ky_conv_cache *conv_cache;  /* AUTO's per-shape choices (cuda/conv2d.cu; calloc'ed, freed here) */
  void *ws;                /* workspace block from the cache */
  size_t ws_bytes;
  char name[128];
};

/* Runs a CUDA runtime call; on failure records statement, error, file and line and returns
 * KY_ERR_CUDA from the enclosing function. */
#define KY_CUDA_CHECK(call)                                                                    \
  do {                                                                                         \
    cudaError_t ky_e_ = (call);                                                                \
    if (ky_e_ != cudaSuccess)                                                                  \
      return ky_error(KY_ERR_CUDA, "%s failed: %s (%s) at %s:%d", #call, cudaGetErrorName(ky_e_), \
                      cudaGetErrorString(ky_e_), __FILE__, __LINE__);                          \
  } while (0)

#define KY_CUBLAS_CHECK(call)                                                                  \
  do {                                                                                         \
    cublasStatus_t ky_b_ = (call);                                                             \
    if (ky_b_ != CUBLAS_STATUS_SUCCESS)                                                        \
      return ky_error(KY_ERR_CUDA, "%s failed: cuBLAS status %d (%s) at %s:%d", #call, (int)ky_b_, \
                      cublasGetStatusString(ky_b_), __FILE__, __LINE__);                       \
  } while (0)

/* After every kernel launch: the launch error (bad configuration, missing kernel image), and with
 * KY_CUDA_SYNC=1 the kernel's own execution error, reported with the launcher's name and line. */
ky_status ky_cuda_launch_check_(ky_cuda *cu, const char *fn, const char *file, int line);
#define KY_CUDA_LAUNCH_CHECK(cu) KY_TRY(ky_cuda_launch_check_((cu), __func__, __FILE__, __LINE__))

/* The context's cuBLAS handle (created on first call, bound to the stream, math mode per tf32). */
ky_status ky_cuda_cublas(ky_cuda *cu, cublasHandle_t *h);

/* Common argument check for launchers. */
#define KY_CUDA_CHECK_CTX(cu) KY_CHECK((cu) != NULL, KY_ERR_ARG, "%s: CUDA context is NULL", __func__)

/* Grid size for a grid-stride loop over n items with `threads` per block: enough blocks to fill
 * the card several times over, never more than needed. */
static inline unsigned ky_cuda_grid(const ky_cuda *cu, size_t n, int threads) {
  size_t want = (n + (size_t)threads - 1) / (size_t)threads;
  size_t cap = (size_t)(cu->num_sms > 0 ? cu->num_sms : 80) * 16;
  if (want > cap) want = cap;
  if (want < 1) want = 1;
  return (unsigned)want;
}

static inline int ky_cuda_aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

#endif

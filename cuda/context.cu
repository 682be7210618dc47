/* CUDA context: device selection, one stream, lazy cuBLAS handle, flags, copies, timers, launch
 * checks. Tested by tests/test_cuda_memory.c and tests/test_cuda_ops.c (skip without a GPU).
 * One context drives one device from one host thread; every launch and copy goes on its stream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/check.cuh"

extern "C" ky_status ky_cuda_cache_init_(ky_cuda *cu);
extern "C" void ky_cuda_cache_destroy_(ky_cuda *cu);

/* Launched never; its attributes tell whether this build carries code the device can run. */
__global__ void ky_cuda_probe_kernel(int *p) {
  if (p) *p = 1;
}

extern "C" int ky_cuda_device_count(char *why, size_t why_len) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    const char *hint = e == cudaErrorInsufficientDriver ? "; no NVIDIA driver loaded, or one older than this runtime"
                       : e == cudaErrorNoDevice          ? "; no device visible"
                                                         : "";
    if (why && why_len)
      snprintf(why, why_len, "cudaGetDeviceCount: %s: %s%s", cudaGetErrorName(e), cudaGetErrorString(e), hint);
    return 0;
  }
  if (n <= 0) {
    if (why && why_len) snprintf(why, why_len, "the CUDA driver reports no device");
    return 0;
  }
  if (why && why_len) why[0] = '\0';
  return n;
}

extern "C" ky_status ky_cuda_init(ky_cuda **out, int device) {
  KY_CHECK_NULL(out, "cu");
  *out = NULL;
  char why[256];
  int n = ky_cuda_device_count(why, sizeof why);
  KY_CHECK(n > 0, KY_ERR_CUDA, "ky_cuda_init: no CUDA GPU (%s)", why);
  KY_CHECK(device >= 0 && device < n, KY_ERR_ARG, "ky_cuda_init: device %d asked, %d present", device, n);
  KY_CUDA_CHECK(cudaSetDevice(device));
  cudaDeviceProp prop;
  KY_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  cudaFuncAttributes fa;
  cudaError_t e = cudaFuncGetAttributes(&fa, ky_cuda_probe_kernel);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return ky_error(KY_ERR_CUDA, "ky_cuda_init: device %d (%s, sm_%d%d) cannot run this build's kernels: %s "
                    "(rebuild with CUDA_ARCH including %d%d)", device, prop.name, prop.major, prop.minor,
                    cudaGetErrorString(e), prop.major, prop.minor);
  }

  ky_cuda *cu = (ky_cuda *)calloc(1, sizeof *cu);
  KY_CHECK(cu != NULL, KY_ERR_NOMEM, "ky_cuda_init: no host memory for the context");
  cu->device = device;
  cu->sm = prop.major * 10 + prop.minor;
  cu->num_sms = prop.multiProcessorCount;
  snprintf(cu->name, sizeof cu->name, "%s", prop.name);
  cu->tf32 = 0;
  cu->deterministic = 1;
  const char *env = getenv("KY_CUDA_SYNC");
  cu->sync_each = env && env[0] == '1';
  ky_status s = ky_cuda_cache_init_(cu);
  if (s != KY_OK) {
    free(cu);
    return s;
  }
  e = cudaStreamCreateWithFlags(&cu->stream, cudaStreamNonBlocking);
  if (e != cudaSuccess) {
    ky_cuda_cache_destroy_(cu);
    free(cu);
    return ky_error(KY_ERR_CUDA, "ky_cuda_init: cudaStreamCreate failed: %s", cudaGetErrorString(e));
  }
  *out = cu;
  return KY_OK;
}

extern "C" void ky_cuda_free(ky_cuda *cu) {
  if (!cu) return;
  cudaSetDevice(cu->device);
  cudaStreamSynchronize(cu->stream);
  if (cu->cublas) cublasDestroy(cu->cublas);
  cu->ws = NULL;
  free(cu->conv_cache);   /* plain calloc'ed table: no destructor needed */
  ky_cuda_cache_destroy_(cu);
  cudaStreamDestroy(cu->stream);
  free(cu);
}

static ky_status apply_math_mode(ky_cuda *cu) {
  if (!cu->cublas) return KY_OK;
  /* Pedantic keeps fp32 GEMMs in IEEE fp32 (no TF32, no reduced-precision split). */
  KY_CUBLAS_CHECK(cublasSetMathMode(cu->cublas, cu->tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_PEDANTIC_MATH));
  return KY_OK;
}

ky_status ky_cuda_cublas(ky_cuda *cu, cublasHandle_t *h) {
  KY_CUDA_CHECK_CTX(cu);
  if (!cu->cublas) {
    KY_CUBLAS_CHECK(cublasCreate(&cu->cublas));
    KY_CUBLAS_CHECK(cublasSetStream(cu->cublas, cu->stream));
    KY_TRY(apply_math_mode(cu));
  }
  *h = cu->cublas;
  return KY_OK;
}

extern "C" void ky_cuda_set_tf32(ky_cuda *cu, int on) {
  if (!cu) return;
  cu->tf32 = on && cu->sm >= 80;  /* TF32 tensor cores exist from sm_80 */
  apply_math_mode(cu);
}
extern "C" int ky_cuda_tf32(const ky_cuda *cu) { return cu ? cu->tf32 : 0; }
extern "C" void ky_cuda_set_deterministic(ky_cuda *cu, int on) {
  if (cu) cu->deterministic = on != 0;
}
extern "C" int ky_cuda_deterministic(const ky_cuda *cu) { return cu ? cu->deterministic : 0; }

ky_status ky_cuda_launch_check_(ky_cuda *cu, const char *fn, const char *file, int line) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    return ky_error(KY_ERR_CUDA, "%s: kernel launch failed: %s (%s) at %s:%d", fn, cudaGetErrorName(e),
                    cudaGetErrorString(e), file, line);
  if (cu && cu->sync_each) {
    e = cudaStreamSynchronize(cu->stream);
    if (e != cudaSuccess)
      return ky_error(KY_ERR_CUDA, "%s: kernel failed (KY_CUDA_SYNC=1): %s (%s) at %s:%d", fn,
                      cudaGetErrorName(e), cudaGetErrorString(e), file, line);
  }
  return KY_OK;
}

/* ---- copies --------------------------------------------------------------------------------- */

static ky_status copy(ky_cuda *cu, void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                      int sync, const char *fn) {
  KY_CHECK(cu != NULL, KY_ERR_ARG, "%s: CUDA context is NULL", fn);
  if (bytes == 0) return KY_OK;
  KY_CHECK(dst != NULL && src != NULL, KY_ERR_ARG, "%s: %s pointer is NULL (%zu bytes)", fn,
           dst ? "source" : "destination", bytes);
  KY_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, cu->stream));
  if (sync) KY_CUDA_CHECK(cudaStreamSynchronize(cu->stream));
  return KY_OK;
}

extern "C" ky_status ky_cuda_h2d(ky_cuda *cu, void *dst, const void *src, size_t bytes) {
  return copy(cu, dst, src, bytes, cudaMemcpyHostToDevice, 1, __func__);
}
extern "C" ky_status ky_cuda_d2h(ky_cuda *cu, void *dst, const void *src, size_t bytes) {
  return copy(cu, dst, src, bytes, cudaMemcpyDeviceToHost, 1, __func__);
}
extern "C" ky_status ky_cuda_d2d(ky_cuda *cu, void *dst, const void *src, size_t bytes) {
  return copy(cu, dst, src, bytes, cudaMemcpyDeviceToDevice, 0, __func__);
}

extern "C" ky_status ky_cuda_memset(ky_cuda *cu, void *dst, int byte, size_t bytes) {
  KY_CUDA_CHECK_CTX(cu);
  if (bytes == 0) return KY_OK;
  KY_CHECK_NULL(dst, "dst");
  KY_CUDA_CHECK(cudaMemsetAsync(dst, byte, bytes, cu->stream));
  return KY_OK;
}

extern "C" ky_status ky_cuda_sync(ky_cuda *cu) {
  KY_CUDA_CHECK_CTX(cu);
  KY_CUDA_CHECK(cudaStreamSynchronize(cu->stream));
  return KY_OK;
}

/* ---- timers (one-shot: stop frees the timer) -------------------------------------------------- */

struct ky_cuda_timer {
  cudaEvent_t a, b;
};

extern "C" ky_status ky_cuda_timer_start(ky_cuda *cu, ky_cuda_timer **t) {
  KY_CUDA_CHECK_CTX(cu);
  KY_CHECK_NULL(t, "t");
  ky_cuda_timer *r = (ky_cuda_timer *)calloc(1, sizeof *r);
  KY_CHECK(r != NULL, KY_ERR_NOMEM, "ky_cuda_timer_start: no host memory");
  cudaError_t e = cudaEventCreate(&r->a);
  if (e == cudaSuccess) {
    e = cudaEventCreate(&r->b);
    if (e != cudaSuccess) cudaEventDestroy(r->a);
  }
  if (e != cudaSuccess) {
    free(r);
    return ky_error(KY_ERR_CUDA, "ky_cuda_timer_start: cudaEventCreate failed: %s", cudaGetErrorString(e));
  }
  e = cudaEventRecord(r->a, cu->stream);
  if (e != cudaSuccess) {
    cudaEventDestroy(r->a);
    cudaEventDestroy(r->b);
    free(r);
    return ky_error(KY_ERR_CUDA, "ky_cuda_timer_start: cudaEventRecord failed: %s", cudaGetErrorString(e));
  }
  *t = r;
  return KY_OK;
}

extern "C" ky_status ky_cuda_timer_stop(ky_cuda *cu, ky_cuda_timer *t, float *ms) {
  KY_CUDA_CHECK_CTX(cu);
  KY_CHECK_NULL(t, "t");
  KY_CHECK_NULL(ms, "ms");
  cudaError_t e = cudaEventRecord(t->b, cu->stream);
  if (e == cudaSuccess) e = cudaEventSynchronize(t->b);
  if (e == cudaSuccess) e = cudaEventElapsedTime(ms, t->a, t->b);
  cudaEventDestroy(t->a);
  cudaEventDestroy(t->b);
  free(t);
  if (e != cudaSuccess)
    return ky_error(KY_ERR_CUDA, "ky_cuda_timer_stop: %s (%s)", cudaGetErrorName(e), cudaGetErrorString(e));
  return KY_OK;
}

extern "C" ky_status ky_cuda_device_name(ky_cuda *cu, char *name, size_t len, int *sm) {
  KY_CUDA_CHECK_CTX(cu);
  if (name && len) snprintf(name, len, "%s", cu->name);
  if (sm) *sm = cu->sm;
  return KY_OK;
}

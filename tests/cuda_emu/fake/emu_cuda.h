// Minimal CPU emulation of the CUDA runtime + device model for checking kernel logic (fibers).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstddef>
#include <cstring>
#include <cstdlib>
#include <cstdio>
#include <functional>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#define __restrict__

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct uint3e { unsigned x, y, z; };
extern uint3e threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

struct float4 { float x, y, z, w; };
static inline float4 make_float4(float a, float b, float c, float d) { float4 r = {a, b, c, d}; return r; }

static inline float __fmul_rn(float a, float b) { volatile float r = a * b; return r; }
static inline float __fadd_rn(float a, float b) { volatile float r = a + b; return r; }
static inline float __fsub_rn(float a, float b) { volatile float r = a - b; return r; }
using std::isnan;

void __syncthreads();
uint64_t emu_shfl_down(uint64_t bits, unsigned delta);
template <class T> T __shfl_down_sync(unsigned, T v, unsigned delta) {
  static_assert(sizeof(T) <= 8, "shfl");
  uint64_t b = 0; memcpy(&b, &v, sizeof v);
  b = emu_shfl_down(b, delta);
  T r; memcpy(&r, &b, sizeof r); return r;
}

typedef enum { cudaSuccess = 0, cudaErrorMemoryAllocation = 2, cudaErrorInsufficientDriver = 35, cudaErrorNoDevice = 100 } cudaError_t;
typedef void *cudaStream_t;
typedef struct emu_event *cudaEvent_t;
typedef enum { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice } cudaMemcpyKind;
#define cudaStreamNonBlocking 1
struct cudaDeviceProp { char name[256]; int major, minor, multiProcessorCount; };
struct cudaFuncAttributes { int x; };
template <class T> cudaError_t cudaFuncGetAttributes(cudaFuncAttributes *, T) { return cudaSuccess; }

cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, int);
cudaError_t cudaStreamSynchronize(cudaStream_t);
cudaError_t cudaStreamDestroy(cudaStream_t);
cudaError_t cudaMalloc(void **p, size_t n);
template <class T> cudaError_t cudaMalloc(T **p, size_t n) { return cudaMalloc((void **)p, n); }
cudaError_t cudaFree(void *p);
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind, cudaStream_t);
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t);
cudaError_t cudaGetLastError();
const char *cudaGetErrorName(cudaError_t);
const char *cudaGetErrorString(cudaError_t);
cudaError_t cudaMemGetInfo(size_t *f, size_t *t);
cudaError_t cudaEventCreate(cudaEvent_t *);
cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t);
cudaError_t cudaEventSynchronize(cudaEvent_t);
cudaError_t cudaEventElapsedTime(float *, cudaEvent_t, cudaEvent_t);
cudaError_t cudaEventDestroy(cudaEvent_t);

typedef void *cublasHandle_t;
typedef enum { CUBLAS_STATUS_SUCCESS = 0 } cublasStatus_t;
typedef enum { CUBLAS_DEFAULT_MATH, CUBLAS_PEDANTIC_MATH, CUBLAS_TF32_TENSOR_OP_MATH } cublasMath_t;
static inline cublasStatus_t cublasCreate(cublasHandle_t *h) { *h = (void *)1; return CUBLAS_STATUS_SUCCESS; }
static inline cublasStatus_t cublasDestroy(cublasHandle_t) { return CUBLAS_STATUS_SUCCESS; }
static inline cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }
static inline cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }
static inline const char *cublasGetStatusString(cublasStatus_t) { return "ok"; }

struct emu_cfg { dim3 g, b; };
static inline emu_cfg emu_make_cfg(dim3 g, dim3 b, size_t = 0, cudaStream_t = 0) { emu_cfg c = {g, b}; return c; }
void emu_launch(emu_cfg c, const std::function<void()> &f);
#ifdef EMU_ULP_NOISE
// CUDA's expf/logf/log1pf are within 1-2 ulps of the true value, glibc's are nearly exact:
// perturb by up to 2 ulps to check that the tests' tolerances hold for a real GPU.
static inline float emu_noise(float r) {
  static unsigned s = 12345u;
  s = s * 1103515245u + 12345u;
  int k = (int)((s >> 16) % 5u) - 2;
  for (; k > 0; k--) r = nextafterf(r, INFINITY);
  for (; k < 0; k++) r = nextafterf(r, -INFINITY);
  return r;
}
static inline float emu_expf(float x) { return emu_noise(::expf(x)); }
static inline float emu_logf(float x) { return emu_noise(::logf(x)); }
static inline float emu_log1pf(float x) { return emu_noise(::log1pf(x)); }
#define expf emu_expf
#define logf emu_logf
#define log1pf emu_log1pf
#endif

// Minimal CPU emulation of the CUDA runtime + device model for checking kernel logic (fibers).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstddef>
#include <cstring>
#include <cstdlib>
#include <cstdio>
#include <algorithm>
#include <functional>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#define __restrict__
#define __align__(n) __attribute__((aligned(n)))

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct uint3e { unsigned x, y, z; };
extern uint3e threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

// CUDA's alignment: a float4 / float2 access at a misaligned address faults on the GPU, and here
// -fsanitize=alignment (run_conv.sh) reports it.
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) float2 { float x, y; };
static inline float4 make_float4(float a, float b, float c, float d) { float4 r = {a, b, c, d}; return r; }
static inline float2 make_float2(float a, float b) { float2 r = {a, b}; return r; }
using std::min;
using std::max;

static inline float __fmul_rn(float a, float b) { volatile float r = a * b; return r; }
static inline float __fadd_rn(float a, float b) { volatile float r = a + b; return r; }
static inline float __fsub_rn(float a, float b) { volatile float r = a - b; return r; }
using std::isnan;

void __syncthreads();
// Called by xform.pl after every __shared__ declaration: the first thread of each block to reach
// it fills the array with 0xff bytes (NaN), as shared memory holds garbage when a block starts,
// so a read before the write that should precede it (a missing barrier, a wrong index) is seen.
void emu_shared_fresh(void *p, size_t bytes);
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

// cuBLAS: a plain host SGEMM stands in (emu_cublas.cpp), so the im2col path's own kernels run on
// the emulator; it says nothing about cuBLAS itself.
typedef struct emu_cublas *cublasHandle_t;
typedef enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_NOT_INITIALIZED = 1, CUBLAS_STATUS_INVALID_VALUE = 7 } cublasStatus_t;
typedef enum { CUBLAS_DEFAULT_MATH, CUBLAS_PEDANTIC_MATH, CUBLAS_TF32_TENSOR_OP_MATH } cublasMath_t;
typedef enum { CUBLAS_OP_N, CUBLAS_OP_T } cublasOperation_t;
cublasStatus_t cublasCreate(cublasHandle_t *h);
cublasStatus_t cublasDestroy(cublasHandle_t h);
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s);
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m);
cublasStatus_t cublasGetMathMode(cublasHandle_t h, cublasMath_t *m);
cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const float *alpha, const float *A, int lda, const float *B, int ldb, const float *beta,
                           float *C, int ldc);
static inline const char *cublasGetStatusString(cublasStatus_t s) { return s == 0 ? "success" : "emulated cuBLAS error"; }

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

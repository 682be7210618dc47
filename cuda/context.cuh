/* Private accessors into the CUDA context (cuda/context.cu) for kernels in other cuda/*.cu files
 * that need the raw stream or cuBLAS handle. C++ only (CUDA types); never included from C.
 * Tested through every tests/test_cuda_*.c suite that launches work on the context. */
#ifndef KY_CUDA_CONTEXT_CUH
#define KY_CUDA_CONTEXT_CUH

#include <cuda_runtime.h>
#include <cublas_v2.h>
#include "cuda/cuda.h"

cudaStream_t ky_cuda_stream(ky_cuda *cu);
cublasHandle_t ky_cuda_cublas(ky_cuda *cu);

#endif

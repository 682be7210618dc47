// Host stand-in for the few cuBLAS calls the backend makes (handle, stream, math mode, SGEMM), for
// tests/cuda_emu/run.sh: lets the im2col + GEMM convolution's own kernels (im2col, col2im,
// bias_relu, the bias gradient) run on the fiber emulator. Column-major like cuBLAS; TF32 math
// mode rounds both operands to TF32 (cvt.rna) and sums in double. It checks how karyon calls
// SGEMM (operations, leading dimensions, beta), never cuBLAS's own kernels or bits.
#include "emu_cuda.h"

struct emu_cublas { cublasMath_t mode; };

namespace {
float tf32_round(float x) {
  uint32_t u; memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0x7f800000u) return x;
  u += 0x1000u; u &= 0xffffe000u;
  float r; memcpy(&r, &u, 4); return r;
}
}  // namespace

cublasStatus_t cublasCreate(cublasHandle_t *h) { *h = new emu_cublas{CUBLAS_DEFAULT_MATH}; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasDestroy(cublasHandle_t h) { delete h; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t) { return h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED; }
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  h->mode = m; return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGetMathMode(cublasHandle_t h, cublasMath_t *m) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  *m = h->mode; return CUBLAS_STATUS_SUCCESS;
}

// C[m x n] = alpha * op(A)[m x k] * op(B)[k x n] + beta * C, column-major; beta == 0 ignores C
// (which may be garbage), as cuBLAS does.
cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const float *alpha, const float *A, int lda, const float *B, int ldb, const float *beta,
                           float *C, int ldc) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (m < 0 || n < 0 || k < 0 || lda < (ta == CUBLAS_OP_N ? m : k) || ldb < (tb == CUBLAS_OP_N ? k : n) || ldc < m ||
      lda < 1 || ldb < 1 || ldc < 1)
    return CUBLAS_STATUS_INVALID_VALUE;
  const bool tf = h->mode == CUBLAS_TF32_TENSOR_OP_MATH;
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) {
      double s = 0;
      for (int l = 0; l < k; ++l) {
        float a = ta == CUBLAS_OP_N ? A[i + (size_t)l * lda] : A[l + (size_t)i * lda];
        float b = tb == CUBLAS_OP_N ? B[l + (size_t)j * ldb] : B[j + (size_t)l * ldb];
        if (tf) { a = tf32_round(a); b = tf32_round(b); }
        s += (double)a * b;
      }
      float &c = C[i + (size_t)j * ldc];
      c = *beta == 0.f ? (float)(*alpha * s) : (float)(*alpha * s + (double)*beta * c);
    }
  return CUBLAS_STATUS_SUCCESS;
}

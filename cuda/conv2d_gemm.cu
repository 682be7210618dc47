/* Convolution as im2col + cuBLAS SGEMM (the second algorithm, and the 1x1 stride-1 case as one
 * plain GEMM). Tested by tests/test_cuda_conv.c.
 *
 * The column buffer [pixels][KH*KW*C] lives in the context workspace and is built a few whole
 * images at a time (at most ~256 MB, at least one image), so that col2im for dgrad can gather
 * every tap of an input pixel from the same chunk: dx is written by a gather (one thread per dx
 * element, taps in a fixed order), never by atomics, and wgrad accumulates chunk after chunk
 * with beta = 1, so both are deterministic. The cuBLAS math mode is set explicitly for each call
 * (CUBLAS_DEFAULT_MATH, or CUBLAS_TF32_TENSOR_OP_MATH when the context's tf32 flag is on) and
 * restored afterwards, since the handle is shared with the rest of the backend. */
#include "cuda/conv2d_tiles.cuh"

namespace {

constexpr size_t COL_BUDGET_FLOATS = (size_t)64 << 20;   /* 256 MB of column buffer */

/* col[p][r] for the pixels of images n0 .. n0+nimg-1 (p counted from the chunk's first pixel). */
__global__ void im2col_kernel(float *col, const float *x, ky_conv_shape s, int n0, size_t total) {
  const int R = s.kh * s.kw * s.c;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
    const size_t p = i / R;
    const int r = (int)(i - p * R);
    const int ohw = s.oh * s.ow;
    const int nl = (int)(p / ohw), rem = (int)(p - (size_t)nl * ohw);
    const int oy = rem / s.ow, ox = rem - oy * s.ow;
    const int t = r / s.c, c = r - t * s.c, ky = t / s.kw, kx = t - ky * s.kw;
    const int ih = oy * s.stride - s.pad + ky * s.dil, iw = ox * s.stride - s.pad + kx * s.dil;
    float v = 0.f;
    if ((unsigned)ih < (unsigned)s.h && (unsigned)iw < (unsigned)s.w)
      v = x[(((size_t)(n0 + nl) * s.h + ih) * s.w + iw) * s.c + c];
    col[i] = v;
  }
}

/* dx[n, ih, iw, c] += sum over taps of dcol[output pixel of the tap][tap, c], taps in order. */
__global__ void col2im_kernel(float *dx, const float *dcol, ky_conv_shape s, int n0, size_t total) {
  const int R = s.kh * s.kw * s.c;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
    const size_t pix = i / s.c;
    const int c = (int)(i - pix * s.c);
    const int hw = s.h * s.w;
    const int nl = (int)(pix / hw), rem = (int)(pix - (size_t)nl * hw);
    const int iy = rem / s.w, ix = rem - iy * s.w;
    float acc = 0.f;
    for (int ky = 0; ky < s.kh; ++ky) {
      int yy = iy + s.pad - ky * s.dil;
      if (yy < 0 || yy % s.stride) continue;
      yy /= s.stride;
      if (yy >= s.oh) continue;
      for (int kx = 0; kx < s.kw; ++kx) {
        int xx = ix + s.pad - kx * s.dil;
        if (xx < 0 || xx % s.stride) continue;
        xx /= s.stride;
        if (xx >= s.ow) continue;
        acc += dcol[((size_t)nl * s.oh * s.ow + (size_t)yy * s.ow + xx) * R + (ky * s.kw + kx) * s.c + c];
      }
    }
    dx[(size_t)n0 * hw * s.c + i] += acc;
  }
}

__global__ void bias_relu_kernel(float *y, const float *b, size_t total, int k, int relu) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
    float v = y[i];
    if (b) v += b[i % (size_t)k];
    if (relu) v = fmaxf(v, 0.f);
    y[i] = v;
  }
}

/* Sets the math mode for one convolution and puts the previous one back on every exit path. */
struct math_guard {
  cublasHandle_t h = nullptr;
  cublasMath_t prev = CUBLAS_DEFAULT_MATH;
  bool set = false;
  ky_status begin(ky_cuda *cu) {
    KY_TRY(ky_cuda_cublas(cu, &h));
    KY_CUBLAS_CHECK(cublasGetMathMode(h, &prev));
    KY_CUBLAS_CHECK(cublasSetMathMode(h, cu->tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    set = true;
    return KY_OK;
  }
  ~math_guard() {
    if (set) cublasSetMathMode(h, prev);
  }
};

ky_status sgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
  const float one = 1.f;
  KY_CUBLAS_CHECK(cublasSgemm(h, ta, tb, m, n, k, &one, A, lda, B, ldb, &beta, C, ldc));
  return KY_OK;
}

}  // namespace

ky_status ky_conv_im2col_run(ky_cuda *cu, int dir, float *out, const float *a, const float *b,
                             const float *bias, float *db, const ky_conv_shape *s, int relu) {
  math_guard mg;
  KY_TRY(mg.begin(cu));
  cublasHandle_t h = mg.h;
  const int R = s->kh * s->kw * s->c;
  const int ohw = s->oh * s->ow, hw = s->h * s->w;
  const int npix = s->n * ohw;
  const bool plain = s->kh == 1 && s->kw == 1 && s->stride == 1 && s->pad == 0;

  int per = plain ? s->n : (int)(COL_BUDGET_FLOATS / ((size_t)ohw * R));
  if (per < 1) per = 1;
  if (per > s->n) per = s->n;
  const size_t col_floats = plain ? 0 : (size_t)per * ohw * R;
  const size_t col_pad = (col_floats + 63) / 64 * 64;
  const size_t db_floats = db ? ky_conv_bias_grad_ws_floats(cu, npix, s->k) : 0;
  float *col = NULL;
  if (col_pad + db_floats > 0) {
    void *p = NULL;
    KY_TRY(ky_cuda_workspace(cu, &p, (col_pad + db_floats) * sizeof(float)));
    col = (float *)p;
  }
  if (db) KY_TRY(ky_conv_bias_grad(cu, db, a, npix, s->k, col + col_pad));

  for (int n0 = 0; n0 < s->n; n0 += per) {
    const int nimg = s->n - n0 < per ? s->n - n0 : per;
    const int rows = nimg * ohw;
    if (dir == KY_CONV_DIR_FWD) {
      /* y[rows][K] = col[rows][R] * w[K][R]^T */
      const float *A = a + (size_t)n0 * hw * s->c;
      if (!plain) {
        const size_t total = (size_t)rows * R;
        im2col_kernel<<<ky_cuda_grid(cu, total, 256), 256, 0, cu->stream>>>(col, a, *s, n0, total);
        KY_CUDA_LAUNCH_CHECK(cu);
        A = col;
      }
      KY_TRY(sgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, s->k, rows, R, b, R, A, R, 0.f, out + (size_t)n0 * ohw * s->k, s->k));
    } else if (dir == KY_CONV_DIR_DGRAD) {
      const float *dy = a + (size_t)n0 * ohw * s->k;
      if (plain) {
        /* dx[rows][C] += dy[rows][K] * w[K][C] */
        KY_TRY(sgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, s->c, rows, s->k, b, s->c, dy, s->k, 1.f,
                     out + (size_t)n0 * hw * s->c, s->c));
      } else {
        /* dcol[rows][R] = dy[rows][K] * w[K][R], then gathered back onto dx */
        KY_TRY(sgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, R, rows, s->k, b, R, dy, s->k, 0.f, col, R));
        const size_t total = (size_t)nimg * hw * s->c;
        col2im_kernel<<<ky_cuda_grid(cu, total, 256), 256, 0, cu->stream>>>(out, col, *s, n0, total);
        KY_CUDA_LAUNCH_CHECK(cu);
      }
    } else {
      /* dw[K][R] += dy[rows][K]^T * col[rows][R] */
      const float *dy = a + (size_t)n0 * ohw * s->k;
      const float *B = b + (size_t)n0 * hw * s->c;
      if (!plain) {
        const size_t total = (size_t)rows * R;
        im2col_kernel<<<ky_cuda_grid(cu, total, 256), 256, 0, cu->stream>>>(col, b, *s, n0, total);
        KY_CUDA_LAUNCH_CHECK(cu);
        B = col;
      }
      KY_TRY(sgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, R, s->k, rows, B, R, dy, s->k, 1.f, out, R));
    }
  }
  if (dir == KY_CONV_DIR_FWD && (bias || relu)) {
    const size_t total = (size_t)npix * s->k;
    bias_relu_kernel<<<ky_cuda_grid(cu, total, 256), 256, 0, cu->stream>>>(out, bias, total, s->k, relu);
    KY_CUDA_LAUNCH_CHECK(cu);
  }
  return KY_OK;
}

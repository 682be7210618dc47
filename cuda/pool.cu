/* CUDA pooling over NHWC: max pooling (forward records the argmax; backward is a gather) and
 * global average pooling. Tested by tests/test_cuda_ops.c against the CPU reference (skips
 * without a GPU).
 * Determinism: maxpool backward gives each input element one thread that sums, in window order,
 * the gradients of the output windows covering it whose argmax points at it: no atomics.
 * GAP forward sums each (image, channel) in one block with a fixed order. */
#include <math.h>

#include "cuda/check.cuh"

namespace {

/* One thread per output element (n, oh, ow, c); consecutive threads take consecutive channels. */
__global__ void maxpool_fwd(float *y, int32_t *argmax, const float *x, ky_pool_shape s, size_t total) {
  size_t stride = (size_t)gridDim.x * blockDim.x;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
    int ch = (int)(i % s.c);
    size_t t = i / s.c;
    int ow = (int)(t % s.ow);
    t /= s.ow;
    int oh = (int)(t % s.oh);
    size_t n = t / s.oh;
    const float *xn = x + n * (size_t)s.h * s.w * s.c + ch;
    int h0 = oh * s.stride - s.pad, w0 = ow * s.stride - s.pad;
    float best = -INFINITY;
    int bi = -1;
    for (int a = 0; a < s.k; a++) {
      int ih = h0 + a;
      if (ih < 0 || ih >= s.h) continue;
      for (int b = 0; b < s.k; b++) {
        int iw = w0 + b;
        if (iw < 0 || iw >= s.w) continue;
        float v = xn[((size_t)ih * s.w + iw) * s.c];
        /* First maximum in row-major window order wins; NaN propagates (as PyTorch). */
        if (bi < 0 || v > best || isnan(v)) {
          best = v;
          bi = ih * s.w + iw;
        }
      }
    }
    y[i] = best;
    if (argmax) argmax[i] = bi;
  }
}

/* One thread per input element: add dy of every covering window whose argmax is this pixel. */
__global__ void maxpool_bwd(float *dx, const float *dy, const int32_t *argmax, ky_pool_shape s, size_t total) {
  size_t stride = (size_t)gridDim.x * blockDim.x;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
    int ch = (int)(i % s.c);
    size_t t = i / s.c;
    int iw = (int)(t % s.w);
    t /= s.w;
    int ih = (int)(t % s.h);
    size_t n = t / s.h;
    /* Windows oh with oh*stride - pad <= ih <= oh*stride - pad + k - 1. */
    int lo_h = ih + s.pad - s.k + 1, lo_w = iw + s.pad - s.k + 1;
    int oh0 = lo_h <= 0 ? 0 : (lo_h + s.stride - 1) / s.stride;
    int ow0 = lo_w <= 0 ? 0 : (lo_w + s.stride - 1) / s.stride;
    int oh1 = (ih + s.pad) / s.stride, ow1 = (iw + s.pad) / s.stride;
    if (oh1 > s.oh - 1) oh1 = s.oh - 1;
    if (ow1 > s.ow - 1) ow1 = s.ow - 1;
    int self = ih * s.w + iw;
    size_t base = n * (size_t)s.oh * s.ow;
    float acc = 0.f;
    for (int oh = oh0; oh <= oh1; oh++)
      for (int ow = ow0; ow <= ow1; ow++) {
        size_t o = (base + (size_t)oh * s.ow + ow) * s.c + ch;
        if (argmax[o] == self) acc += dy[o];
      }
    dx[i] += acc;
  }
}

const int GX = 32, GY = 8;

/* grid (ceil(c/32), n); each thread sums pixels ty, ty+8, ...; rows combined in a fixed order. */
__global__ void gap_fwd(float *y, const float *x, int hw, int c) {
  __shared__ double sh[GY][GX + 1];
  int ch = blockIdx.x * GX + threadIdx.x;
  int n = blockIdx.y;
  float s = 0.f;
  if (ch < c) {
    const float *xn = x + (size_t)n * hw * c + ch;
    for (int p = threadIdx.y; p < hw; p += GY) s += xn[(size_t)p * c];
  }
  sh[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && ch < c) {
    double t = 0.0;
    for (int r = 0; r < GY; r++) t += sh[r][threadIdx.x];
    y[(size_t)n * c + ch] = (float)(t / hw);
  }
}

__global__ void gap_bwd(float *dx, const float *dy, int hw, int c, size_t total) {
  size_t stride = (size_t)gridDim.x * blockDim.x;
  float fhw = (float)hw;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
    int ch = (int)(i % c);
    size_t n = i / ((size_t)hw * c);
    dx[i] += dy[n * c + ch] / fhw;
  }
}

ky_status check_pool(ky_cuda *cu, const ky_pool_shape *s, const char *fn) {
  KY_CHECK(cu != NULL, KY_ERR_ARG, "%s: CUDA context is NULL", fn);
  KY_CHECK(s != NULL, KY_ERR_ARG, "%s: shape is NULL", fn);
  KY_CHECK(s->n > 0 && s->h > 0 && s->w > 0 && s->c > 0, KY_ERR_SHAPE,
           "%s: input %dx%dx%dx%d must be positive", fn, s->n, s->h, s->w, s->c);
  KY_CHECK(s->k > 0 && s->stride > 0 && s->pad >= 0 && s->pad <= s->k / 2, KY_ERR_SHAPE,
           "%s: window %d stride %d pad %d invalid (need k > 0, stride > 0, 0 <= pad <= k/2)", fn, s->k,
           s->stride, s->pad);
  int oh = (s->h + 2 * s->pad - s->k) / s->stride + 1, ow = (s->w + 2 * s->pad - s->k) / s->stride + 1;
  KY_CHECK(s->h + 2 * s->pad >= s->k && s->w + 2 * s->pad >= s->k && s->oh == oh && s->ow == ow, KY_ERR_SHAPE,
           "%s: output %dx%d, expected %dx%d from input %dx%d (k %d, stride %d, pad %d)", fn, s->oh, s->ow, oh,
           ow, s->h, s->w, s->k, s->stride, s->pad);
  return KY_OK;
}

}  // namespace

extern "C" ky_status ky_cuda_maxpool_fwd(ky_cuda *cu, float *y, int32_t *argmax, const float *x,
                                         const ky_pool_shape *s) {
  KY_TRY(check_pool(cu, s, __func__));
  KY_CHECK(y != NULL && x != NULL, KY_ERR_ARG, "%s: %s is NULL", __func__, y ? "x" : "y");
  size_t total = (size_t)s->n * s->oh * s->ow * s->c;
  maxpool_fwd<<<ky_cuda_grid(cu, total, 256), 256, 0, cu->stream>>>(y, argmax, x, *s, total);
  KY_CUDA_LAUNCH_CHECK(cu);
  return KY_OK;
}

extern "C" ky_status ky_cuda_maxpool_bwd(ky_cuda *cu, float *dx, const float *dy, const int32_t *argmax,
                                         const ky_pool_shape *s) {
  KY_TRY(check_pool(cu, s, __func__));
  KY_CHECK(dx != NULL && dy != NULL && argmax != NULL, KY_ERR_ARG, "%s: %s is NULL", __func__,
           !dx ? "dx" : !dy ? "dy" : "argmax");
  size_t total = (size_t)s->n * s->h * s->w * s->c;
  maxpool_bwd<<<ky_cuda_grid(cu, total, 256), 256, 0, cu->stream>>>(dx, dy, argmax, *s, total);
  KY_CUDA_LAUNCH_CHECK(cu);
  return KY_OK;
}

extern "C" ky_status ky_cuda_gap_fwd(ky_cuda *cu, float *y, const float *x, int n, int hw, int c) {
  KY_CUDA_CHECK_CTX(cu);
  KY_CHECK(n > 0 && hw > 0 && c > 0, KY_ERR_SHAPE, "%s: n %d, hw %d, c %d must be positive", __func__, n, hw, c);
  KY_CHECK(n <= 65535, KY_ERR_SHAPE, "%s: batch %d above 65535", __func__, n);
  KY_CHECK(y != NULL && x != NULL, KY_ERR_ARG, "%s: %s is NULL", __func__, y ? "x" : "y");
  dim3 grid((unsigned)((c + GX - 1) / GX), (unsigned)n), block(GX, GY);
  gap_fwd<<<grid, block, 0, cu->stream>>>(y, x, hw, c);
  KY_CUDA_LAUNCH_CHECK(cu);
  return KY_OK;
}

extern "C" ky_status ky_cuda_gap_bwd(ky_cuda *cu, float *dx, const float *dy, int n, int hw, int c) {
  KY_CUDA_CHECK_CTX(cu);
  KY_CHECK(n > 0 && hw > 0 && c > 0, KY_ERR_SHAPE, "%s: n %d, hw %d, c %d must be positive", __func__, n, hw, c);
  KY_CHECK(dx != NULL && dy != NULL, KY_ERR_ARG, "%s: %s is NULL", __func__, dx ? "dy" : "dx");
  size_t total = (size_t)n * hw * c;
  gap_bwd<<<ky_cuda_grid(cu, total, 256), 256, 0, cu->stream>>>(dx, dy, hw, c, total);
  KY_CUDA_LAUNCH_CHECK(cu);
  return KY_OK;
}

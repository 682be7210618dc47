/* CUDA channel softmax over the last (channel) axis of NHWC, forward and backward. Tested by
 * tests/test_cuda_ops.c against the CPU reference (skips without a GPU).
 * Determinism: one thread per pixel, channels in order, no atomics. Made for the few-class heads
 * of the segmentation nets (c = 2..8); a thread per pixel stays correct for any c, but large c
 * would want a warp per pixel. */
#include <math.h>

#include "cuda/check.cuh"

namespace {

__global__ void softmax_fwd(float *y, const float *x, size_t npix, int c) {
  size_t stride = (size_t)gridDim.x * blockDim.x;
  for (size_t p = (size_t)blockIdx.x * blockDim.x + threadIdx.x; p < npix; p += stride) {
    const float *xp = x + p * c;
    float *yp = y + p * c;
    float m = xp[0];
    for (int k = 1; k < c; k++) m = fmaxf(m, xp[k]);
    double s = 0.0;
    for (int k = 0; k < c; k++) s += expf(xp[k] - m);
    float inv = (float)(1.0 / s);
    for (int k = 0; k < c; k++) yp[k] = expf(xp[k] - m) * inv;
  }
}

/* dx += y * (dy - sum_k dy_k y_k) */
__global__ void softmax_bwd(float *dx, const float *dy, const float *y, size_t npix, int c) {
  size_t stride = (size_t)gridDim.x * blockDim.x;
  for (size_t p = (size_t)blockIdx.x * blockDim.x + threadIdx.x; p < npix; p += stride) {
    const float *g = dy + p * c, *yp = y + p * c;
    double dot = 0.0;
    for (int k = 0; k < c; k++) dot += (double)g[k] * yp[k];
    float d = (float)dot;
    for (int k = 0; k < c; k++) dx[p * c + k] += __fmul_rn(yp[k], g[k] - d);
  }
}

}  // namespace

extern "C" ky_status ky_cuda_softmax_fwd(ky_cuda *cu, float *y, const float *x, size_t npix, int c) {
  KY_CUDA_CHECK_CTX(cu);
  KY_CHECK(c > 0, KY_ERR_SHAPE, "%s: channel count must be positive, got %d", __func__, c);
  if (npix == 0) return KY_OK;
  KY_CHECK(y != NULL && x != NULL, KY_ERR_ARG, "%s: %s is NULL", __func__, y ? "x" : "y");
  softmax_fwd<<<ky_cuda_grid(cu, npix, 128), 128, 0, cu->stream>>>(y, x, npix, c);
  KY_CUDA_LAUNCH_CHECK(cu);
  return KY_OK;
}

extern "C" ky_status ky_cuda_softmax_bwd(ky_cuda *cu, float *dx, const float *dy, const float *y, size_t npix, int c) {
  KY_CUDA_CHECK_CTX(cu);
  KY_CHECK(c > 0, KY_ERR_SHAPE, "%s: channel count must be positive, got %d", __func__, c);
  if (npix == 0) return KY_OK;
  KY_CHECK(dx != NULL && dy != NULL && y != NULL, KY_ERR_ARG, "%s: %s is NULL", __func__,
           !dx ? "dx" : !dy ? "dy" : "y");
  softmax_bwd<<<ky_cuda_grid(cu, npix, 128), 128, 0, cu->stream>>>(dx, dy, y, npix, c);
  KY_CUDA_LAUNCH_CHECK(cu);
  return KY_OK;
}

/* CUDA upsampling over NHWC: nearest (integer factor f) and bilinear x2 with align_corners=false
 * (PyTorch), forward and backward. Tested by tests/test_cuda_ops.c against the CPU reference
 * (skips without a GPU).
 * Determinism: backward is a gather: one thread per input element sums, in a fixed order, the
 * output gradients that the forward drew from it. No atomics. */
#include "cuda/check.cuh"

namespace {

/* Nearest forward: one thread per output element, float4 when c % 4 == 0 (V = 4). */
template <int V>
__global__ void nearest_fwd(float *y, const float *x, int h, int w, int c, int f, size_t total) {
  int cv = c / V, W = w * f, H = h * f;
  size_t stride = (size_t)gridDim.x * blockDim.x;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
    int q = (int)(i % cv);
    size_t t = i / cv;
    int ox = (int)(t % W);
    t /= W;
    int oy = (int)(t % H);
    size_t n = t / H;
    size_t src = ((n * h + oy / f) * w + ox / f) * cv + q;
    if (V == 4) reinterpret_cast<float4 *>(y)[i] = reinterpret_cast<const float4 *>(x)[src];
    else y[i] = x[src];
  }
}

/* Nearest backward: one thread per input element sums its f x f block in row-major order. */
__global__ void nearest_bwd(float *dx, const float *dy, int h, int w, int c, int f, size_t total) {
  int W = w * f, H = h * f;
  size_t stride = (size_t)gridDim.x * blockDim.x;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
    int ch = (int)(i % c);
    size_t t = i / c;
    int ix = (int)(t % w);
    t /= w;
    int iy = (int)(t % h);
    size_t n = t / h;
    const float *g = dy + ((n * H + (size_t)iy * f) * W + (size_t)ix * f) * c + ch;
    float acc = 0.f;
    for (int a = 0; a < f; a++)
      for (int b = 0; b < f; b++) acc += g[((size_t)a * W + b) * c];
    dx[i] += acc;
  }
}

/* Source row for output row o of a x2 bilinear (align_corners=false): src = (o + 0.5)/2 - 0.5
 * clamped at 0, so i0 = floor(src), lambda = src - i0 is 0, 0.25 or 0.75, all exact in float. */
__device__ __forceinline__ void bil_src(int o, int in, int *i0, int *i1, float *l1) {
  int i = o >> 1;
  if (o & 1) {
    *i0 = i;
    *l1 = 0.25f;
  } else if (i == 0) {
    *i0 = 0;
    *l1 = 0.f;
  } else {
    *i0 = i - 1;
    *l1 = 0.75f;
  }
  *i1 = *i0 + 1 < in ? *i0 + 1 : in - 1;
}

__global__ void bilinear_fwd(float *y, const float *x, int h, int w, int c, size_t total) {
  int W = 2 * w, H = 2 * h;
  size_t stride = (size_t)gridDim.x * blockDim.x;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
    int ch = (int)(i % c);
    size_t t = i / c;
    int ox = (int)(t % W);
    t /= W;
    int oy = (int)(t % H);
    size_t n = t / H;
    int y0, y1, x0, x1;
    float ly, lx;
    bil_src(oy, h, &y0, &y1, &ly);
    bil_src(ox, w, &x0, &x1, &lx);
    float hy = 1.f - ly, hx = 1.f - lx;
    const float *xn = x + n * (size_t)h * w * c + ch;
    float v00 = xn[((size_t)y0 * w + x0) * c], v01 = xn[((size_t)y0 * w + x1) * c];
    float v10 = xn[((size_t)y1 * w + x0) * c], v11 = xn[((size_t)y1 * w + x1) * c];
    y[i] = hy * (hx * v00 + lx * v01) + ly * (hx * v10 + lx * v11);
  }
}

/* Weight with which output row o draws on input row r. */
__device__ __forceinline__ float bil_weight(int o, int in, int r) {
  int i0, i1;
  float l1;
  bil_src(o, in, &i0, &i1, &l1);
  return (i0 == r ? 1.f - l1 : 0.f) + (i1 == r ? l1 : 0.f);
}

/* Backward: input row r is read by output rows 2r-1 .. 2r+2 only. */
__global__ void bilinear_bwd(float *dx, const float *dy, int h, int w, int c, size_t total) {
  int W = 2 * w, H = 2 * h;
  size_t stride = (size_t)gridDim.x * blockDim.x;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
    int ch = (int)(i % c);
    size_t t = i / c;
    int ix = (int)(t % w);
    t /= w;
    int iy = (int)(t % h);
    size_t n = t / h;
    const float *g = dy + n * (size_t)H * W * c + ch;
    float acc = 0.f;
    for (int oy = 2 * iy - 1; oy <= 2 * iy + 2; oy++) {
      if (oy < 0 || oy >= H) continue;
      float wy = bil_weight(oy, h, iy);
      if (wy == 0.f) continue;
      for (int ox = 2 * ix - 1; ox <= 2 * ix + 2; ox++) {
        if (ox < 0 || ox >= W) continue;
        float wx = bil_weight(ox, w, ix);
        if (wx == 0.f) continue;
        acc += wy * wx * g[((size_t)oy * W + ox) * c];
      }
    }
    dx[i] += acc;
  }
}

ky_status check_dims(ky_cuda *cu, const void *a, const void *b, int n, int h, int w, int c, int f, const char *fn) {
  KY_CHECK(cu != NULL, KY_ERR_ARG, "%s: CUDA context is NULL", fn);
  KY_CHECK(n > 0 && h > 0 && w > 0 && c > 0, KY_ERR_SHAPE, "%s: input %dx%dx%dx%d must be positive", fn, n, h, w, c);
  KY_CHECK(f >= 1, KY_ERR_ARG, "%s: factor %d, expected >= 1", fn, f);
  KY_CHECK((long long)h * f <= 0x7fffffff && (long long)w * f <= 0x7fffffff, KY_ERR_SHAPE, "%s: output too large", fn);
  KY_CHECK(a != NULL && b != NULL, KY_ERR_ARG, "%s: %s is NULL", fn, a ? "input" : "output");
  return KY_OK;
}

}  // namespace

extern "C" ky_status ky_cuda_upsample_nearest_fwd(ky_cuda *cu, float *y, const float *x, int n, int h, int w, int c,
                                                  int f) {
  KY_TRY(check_dims(cu, y, x, n, h, w, c, f, __func__));
  size_t total = (size_t)n * h * f * w * f * c;
  if (c % 4 == 0 && ky_cuda_aligned16(y) && ky_cuda_aligned16(x))
    nearest_fwd<4><<<ky_cuda_grid(cu, total / 4, 256), 256, 0, cu->stream>>>(y, x, h, w, c, f, total / 4);
  else
    nearest_fwd<1><<<ky_cuda_grid(cu, total, 256), 256, 0, cu->stream>>>(y, x, h, w, c, f, total);
  KY_CUDA_LAUNCH_CHECK(cu);
  return KY_OK;
}

extern "C" ky_status ky_cuda_upsample_nearest_bwd(ky_cuda *cu, float *dx, const float *dy, int n, int h, int w, int c,
                                                  int f) {
  KY_TRY(check_dims(cu, dx, dy, n, h, w, c, f, __func__));
  size_t total = (size_t)n * h * w * c;
  nearest_bwd<<<ky_cuda_grid(cu, total, 256), 256, 0, cu->stream>>>(dx, dy, h, w, c, f, total);
  KY_CUDA_LAUNCH_CHECK(cu);
  return KY_OK;
}

extern "C" ky_status ky_cuda_upsample_bilinear2_fwd(ky_cuda *cu, float *y, const float *x, int n, int h, int w, int c) {
  KY_TRY(check_dims(cu, y, x, n, h, w, c, 2, __func__));
  size_t total = (size_t)n * 2 * h * 2 * w * c;
  bilinear_fwd<<<ky_cuda_grid(cu, total, 256), 256, 0, cu->stream>>>(y, x, h, w, c, total);
  KY_CUDA_LAUNCH_CHECK(cu);
  return KY_OK;
}

extern "C" ky_status ky_cuda_upsample_bilinear2_bwd(ky_cuda *cu, float *dx, const float *dy, int n, int h, int w,
                                                    int c) {
  KY_TRY(check_dims(cu, dx, dy, n, h, w, c, 2, __func__));
  size_t total = (size_t)n * h * w * c;
  bilinear_bwd<<<ky_cuda_grid(cu, total, 256), 256, 0, cu->stream>>>(dx, dy, h, w, c, total);
  KY_CUDA_LAUNCH_CHECK(cu);
  return KY_OK;
}

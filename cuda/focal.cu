/* CUDA binary focal loss with logits on one channel of an NHWC map (the CPU reference and the formulas
 * are in losses/focal_cpu.c). Forward: two-stage fixed-order reduction like BCE in cuda/losses.cu
 * (one double partial per shape-determined chunk, then one block adds them in order; no atomics).
 * Backward: elementwise, dloss read from device memory. fp32 math only (valid for sm_61).
 * Tested by the focal rows of tests/optable_cases.c through tests/test_cuda_optable.c (skips
 * without a GPU). */
#include <math.h>

#include "cuda/check.cuh"
#include "cuda/reduce.cuh"

namespace {

const int RT = 256;            /* threads per reduction block */
const size_t PER = 16;         /* items per thread in a chunk */
const size_t MAX_CHUNKS = 4096;

struct focal_terms { float p, q, sp_pos, sp_neg; };  /* p, 1-p, softplus(x), softplus(-x) */

__device__ __forceinline__ focal_terms focal_parts(float v) {
  float e = expf(-fabsf(v)), l = log1pf(e), r = 1.f / (1.f + e);
  focal_terms f;
  f.p = v >= 0.f ? r : e * r;
  f.q = v >= 0.f ? e * r : r;
  f.sp_pos = fmaxf(v, 0.f) + l;
  f.sp_neg = fmaxf(-v, 0.f) + l;
  return f;
}

__global__ void focal_partial(double *part, const float *x, const float *t, size_t npix, int c, int ch, float gamma,
                              float alpha, size_t len) {
  __shared__ double sh[32];
  size_t p0 = (size_t)blockIdx.x * len, p1 = p0 + len < npix ? p0 + len : npix;
  double s = 0.0;
  for (size_t p = p0 + threadIdx.x; p < p1; p += RT) {
    focal_terms f = focal_parts(x[p * c + ch]);
    float tv = t[p * c + ch];
    s += alpha * tv * powf(f.q, gamma) * f.sp_neg + (1.f - alpha) * (1.f - tv) * powf(f.p, gamma) * f.sp_pos;
  }
  s = ky_block_sum(s, sh);
  if (threadIdx.x == 0) part[blockIdx.x] = s;
}

/* One block adds the nb partials in a fixed order: *loss = sum / npix. */
__global__ void focal_final(float *loss, const double *part, size_t nb, double npix) {
  __shared__ double sh[32];
  double s = 0.0;
  for (size_t j = threadIdx.x; j < nb; j += blockDim.x) s += part[j];
  s = ky_block_sum(s, sh);
  if (threadIdx.x == 0) *loss = (float)(s / npix);
}

__global__ void focal_grad(float *dx, const float *x, const float *t, const float *dloss, size_t npix, int c, int ch,
                           float gamma, float alpha) {
  size_t stride = (size_t)gridDim.x * blockDim.x;
  float scale = (float)((double)*dloss / (double)npix);
  for (size_t p = (size_t)blockIdx.x * blockDim.x + threadIdx.x; p < npix; p += stride) {
    focal_terms f = focal_parts(x[p * c + ch]);
    float tv = t[p * c + ch];
    float d = -alpha * tv * powf(f.q, gamma) * (gamma * f.p * f.sp_neg + f.q) +
              (1.f - alpha) * (1.f - tv) * powf(f.p, gamma) * (gamma * f.q * f.sp_pos + f.p);
    dx[p * c + ch] += scale * d;
  }
}

ky_status check_args(ky_cuda *cu, size_t npix, int c, int ch, float gamma, float alpha, const char *fn) {
  KY_CHECK(cu != NULL, KY_ERR_ARG, "%s: CUDA context is NULL", fn);
  KY_CHECK(npix > 0, KY_ERR_SHAPE, "%s: npix must be positive, got 0", fn);
  KY_CHECK(c > 0, KY_ERR_SHAPE, "%s: channel count must be positive, got %d", fn, c);
  KY_CHECK(ch >= 0 && ch < c, KY_ERR_ARG, "%s: channel %d outside 0..%d", fn, ch, c - 1);
  KY_CHECK(isfinite(gamma) && gamma >= 0.f, KY_ERR_ARG, "%s: gamma %g, expected a finite value >= 0", fn,
           (double)gamma);
  KY_CHECK(alpha >= 0.f && alpha <= 1.f, KY_ERR_ARG, "%s: alpha %g, expected a value in [0, 1]", fn, (double)alpha);
  return KY_OK;
}

}  // namespace

extern "C" ky_status ky_cuda_focal_logits_fwd(ky_cuda *cu, float *loss, const float *x, const float *t, size_t npix,
                                              int c, int ch, float gamma, float alpha) {
  KY_TRY(check_args(cu, npix, c, ch, gamma, alpha, __func__));
  KY_CHECK(loss && x && t, KY_ERR_ARG, "%s: %s is NULL", __func__, !loss ? "loss" : !x ? "x" : "t");
  size_t len = ky_chunk_len(npix, RT, PER, MAX_CHUNKS), nb = (npix + len - 1) / len;
  void *ws;
  KY_TRY(ky_cuda_workspace(cu, &ws, nb * sizeof(double)));
  double *part = (double *)ws;
  focal_partial<<<(unsigned)nb, RT, 0, cu->stream>>>(part, x, t, npix, c, ch, gamma, alpha, len);
  KY_CUDA_LAUNCH_CHECK(cu);
  focal_final<<<1, RT, 0, cu->stream>>>(loss, part, nb, (double)npix);
  KY_CUDA_LAUNCH_CHECK(cu);
  return KY_OK;
}

extern "C" ky_status ky_cuda_focal_logits_bwd(ky_cuda *cu, float *dx, const float *x, const float *t,
                                              const float *dloss, size_t npix, int c, int ch, float gamma,
                                              float alpha) {
  KY_TRY(check_args(cu, npix, c, ch, gamma, alpha, __func__));
  KY_CHECK(dx && x && t && dloss, KY_ERR_ARG, "%s: %s is NULL", __func__,
           !dx ? "dx" : !x ? "x" : !t ? "t" : "dloss");
  focal_grad<<<ky_cuda_grid(cu, npix, 256), 256, 0, cu->stream>>>(dx, x, t, dloss, npix, c, ch, gamma, alpha);
  KY_CUDA_LAUNCH_CHECK(cu);
  return KY_OK;
}

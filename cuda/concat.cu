/* CUDA channel concatenation over NHWC (k <= 8 inputs) and its backward (a split that
 * accumulates). Tested by tests/test_cuda_ops.c against the CPU reference (skips without a GPU).
 * Determinism: pure copies / one add per element, no atomics. One launch for all inputs:
 * blockIdx.y picks the input; float4 accesses when every channel count and offset is a multiple
 * of 4 and every pointer is 16-byte aligned. */
#include "cuda/check.cuh"

namespace {

const int KMAX = 8;

struct cat_args {
  const float *x[KMAX];  /* forward inputs, or backward dy source unused */
  float *dx[KMAX];       /* backward outputs (NULL: that input takes no gradient) */
  int cs[KMAX];
  int off[KMAX];
  int ctot;
};

/* V = 1 (floats) or 4 (float4 units; all counts divided by 4). */
template <int V, bool BWD>
__global__ void concat_kernel(float *y, const float *dy, cat_args a, size_t npix) {
  int j = blockIdx.y;
  int cj = a.cs[j] / V, off = a.off[j] / V, ct = a.ctot / V;
  size_t total = npix * (size_t)cj;
  size_t stride = (size_t)gridDim.x * blockDim.x;
  if (BWD && a.dx[j] == NULL) return;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
    size_t p = i / cj;
    size_t q = p * ct + off + (i - p * cj);
    if (V == 4) {
      if (BWD) {
        float4 g = reinterpret_cast<const float4 *>(dy)[q];
        float4 *d = reinterpret_cast<float4 *>(a.dx[j]) + i;
        float4 o = *d;
        o.x += g.x; o.y += g.y; o.z += g.z; o.w += g.w;
        *d = o;
      } else {
        reinterpret_cast<float4 *>(y)[q] = reinterpret_cast<const float4 *>(a.x[j])[i];
      }
    } else {
      if (BWD) a.dx[j][i] += dy[q];
      else y[q] = a.x[j][i];
    }
  }
}

ky_status run(ky_cuda *cu, float *y, const float *dy, const float *const *xs, float *const *dxs, const int *cs,
              int k, size_t npix, const char *fn) {
  KY_CHECK(cu != NULL, KY_ERR_ARG, "%s: CUDA context is NULL", fn);
  KY_CHECK(k >= 1 && k <= KMAX, KY_ERR_ARG, "%s: %d inputs, expected 1..%d", fn, k, KMAX);
  KY_CHECK(cs != NULL, KY_ERR_ARG, "%s: channel counts are NULL", fn);
  KY_CHECK((dy ? (const void *)dxs : (const void *)xs) != NULL && (dy ? (const void *)dy : (const void *)y) != NULL,
           KY_ERR_ARG, "%s: a tensor argument is NULL", fn);
  cat_args a = {};
  int aligned = ky_cuda_aligned16(dy ? dy : y), ctot = 0;
  size_t maxc = 0;
  for (int j = 0; j < k; j++) {
    KY_CHECK(cs[j] > 0, KY_ERR_SHAPE, "%s: input %d has %d channels, expected > 0", fn, j, cs[j]);
    if (dy) {
      a.dx[j] = dxs[j];
      aligned = aligned && ky_cuda_aligned16(dxs[j]);
    } else {
      KY_CHECK(xs[j] != NULL, KY_ERR_ARG, "%s: input %d is NULL", fn, j);
      a.x[j] = xs[j];
      aligned = aligned && ky_cuda_aligned16(xs[j]);
    }
    a.cs[j] = cs[j];
    a.off[j] = ctot;
    aligned = aligned && cs[j] % 4 == 0;
    ctot += cs[j];
    if ((size_t)cs[j] > maxc) maxc = (size_t)cs[j];
  }
  a.ctot = ctot;
  if (npix == 0) return KY_OK;
  int v = aligned ? 4 : 1;
  dim3 grid(ky_cuda_grid(cu, npix * maxc / v, 256), (unsigned)k);
  if (dy) {
    if (v == 4) concat_kernel<4, true><<<grid, 256, 0, cu->stream>>>(NULL, dy, a, npix);
    else concat_kernel<1, true><<<grid, 256, 0, cu->stream>>>(NULL, dy, a, npix);
  } else {
    if (v == 4) concat_kernel<4, false><<<grid, 256, 0, cu->stream>>>(y, NULL, a, npix);
    else concat_kernel<1, false><<<grid, 256, 0, cu->stream>>>(y, NULL, a, npix);
  }
  return ky_cuda_launch_check_(cu, fn, __FILE__, __LINE__);
}

}  // namespace

extern "C" ky_status ky_cuda_concat_fwd(ky_cuda *cu, float *y, const float *const *xs, const int *cs, int k,
                                        size_t npix) {
  return run(cu, y, NULL, xs, NULL, cs, k, npix, __func__);
}

extern "C" ky_status ky_cuda_concat_bwd(ky_cuda *cu, float *const *dxs, const float *dy, const int *cs, int k,
                                        size_t npix) {
  return run(cu, NULL, dy, NULL, dxs, cs, k, npix, __func__);
}

/* CUDA batch normalisation over NHWC (per-channel statistics over npix = N*H*W): training and
 * evaluation forward, both backwards, and the passes of synchronised batch norm (double sums for
 * ops/batchnorm_sync.c, which adds them over the ranks). Tested by tests/test_cuda_ops.c and
 * tests/test_cuda_bn_sync.c against the CPU reference (skip without a GPU; both also run on the
 * emulation of tests/cuda_emu/run_ops.sh).
 * Determinism: reductions are two-stage with a partition that depends only on (npix, c): stage 1
 * gives one partial per (pixel chunk, channel), each thread going through its pixels in a fixed
 * order in float, the 8 rows of a block combined in double; stage 2 (one warp per channel)
 * combines the chunk partials in a fixed shuffle tree. No atomics anywhere, so runs are bitwise
 * identical.
 * Variance: Welford per thread (count, mean, sum of squared deviations), partials merged with
 * Chan's pairwise formula in double: no E[x^2] - E[x]^2 cancellation when the mean is large
 * against the spread. */
#include <math.h>

#include <type_traits>

#include "cuda/check.cuh"
#include "cuda/reduce.cuh"

namespace {

const int TX = 32;  /* channels per block (one warp across channels: coalesced NHWC rows) */
const int TY = 8;   /* pixel rows per block */

size_t bn_chunk(size_t npix) {
  size_t r = 512;  /* 64 pixels per thread */
  const size_t max_chunks = 2048;
  if ((npix + r - 1) / r > max_chunks) r = ((npix + max_chunks - 1) / max_chunks + TY - 1) / TY * TY;
  return r;
}

/* Chan et al.: (n, m, M2) += (nb, mb, Mb), the statistics of two disjoint sets. */
__device__ __forceinline__ void chan_merge(double &n, double &m, double &M, double nb, double mb, double Mb) {
  if (nb == 0.0) return;
  if (n == 0.0) {
    n = nb;
    m = mb;
    M = Mb;
    return;
  }
  double nn = n + nb, d = mb - m;
  m += d * (nb / nn);
  M += Mb + d * d * (n * nb / nn);
  n = nn;
}

/* part[(chunk * c + ch) * 3 + {0,1,2}]:
 * MODE 0: (count, mean, sum of squared deviations) of x;
 * MODE 1: (sum dy, sum dy * xhat, 0) with xhat = (x - mean[c]) * invstd[c].
 * Synchronised batch norm (ops/batchnorm_sync.c adds these over the ranks): each thread sums in
 * double from the float inputs, with the CPU path's formulas, so one GPU stays within float
 * rounding of the CPU sync path: MODE 2: (sum x, 0, 0); MODE 3: (sum (x - dmean[c])^2, 0, 0),
 * dmean the global mean in double; MODE 4: MODE 1 in double. */
template <int MODE>
__global__ void bn_partial(double *part, const float *x, const float *dy, const float *mean,
                           const float *invstd, const double *dmean, size_t npix, int c, size_t rows) {
  typedef typename std::conditional<(MODE >= 2), double, float>::type acc;
  __shared__ double sh[3][TY][TX + 1];
  int tx = threadIdx.x, ty = threadIdx.y;
  int ch = blockIdx.x * TX + tx;
  size_t p0 = (size_t)blockIdx.y * rows, p1 = p0 + rows < npix ? p0 + rows : npix;
  acc s0 = 0, s1 = 0;
  int cnt = 0;
  if (ch < c) {
    if constexpr (MODE == 0) {
#pragma unroll 4
      for (size_t p = p0 + ty; p < p1; p += TY) {
        float v = x[p * c + ch];
        cnt++;
        float d = v - s0;
        s0 += d / (float)cnt;   /* running mean */
        s1 += d * (v - s0);     /* running sum of squared deviations */
      }
    } else if constexpr (MODE == 2) {
      for (size_t p = p0 + ty; p < p1; p += TY) s0 += x[p * c + ch];
    } else if constexpr (MODE == 3) {
      double mu = dmean[ch];
      for (size_t p = p0 + ty; p < p1; p += TY) {
        double d = x[p * c + ch] - mu;
        s0 += d * d;
      }
    } else {
      acc m = mean[ch], is = invstd[ch];
#pragma unroll 4
      for (size_t p = p0 + ty; p < p1; p += TY) {
        acc g = dy[p * c + ch];
        s0 += g;
        s1 += g * ((x[p * c + ch] - m) * is);
      }
    }
  }
  sh[0][ty][tx] = s0;
  sh[1][ty][tx] = s1;
  sh[2][ty][tx] = cnt;
  __syncthreads();
  if (ty == 0 && ch < c) {
    double a = 0.0, b = 0.0, n = 0.0;
    for (int r = 0; r < TY; r++) {
      if (MODE == 0) {
        chan_merge(n, a, b, sh[2][r][tx], sh[0][r][tx], sh[1][r][tx]);
      } else {
        a += sh[0][r][tx];
        b += sh[1][r][tx];
      }
    }
    size_t o = ((size_t)blockIdx.y * c + ch) * 3;
    part[o] = MODE == 0 ? n : a;
    part[o + 1] = MODE == 0 ? a : b;
    part[o + 2] = MODE == 0 ? b : 0.0;
  }
}

/* One warp per channel: lanes take chunks lane, lane+32, ... then a fixed shuffle tree. */
__device__ void chunk_sums(double *a, double *b, const double *part, size_t nchunks, int c, int ch) {
  int lane = threadIdx.x & 31;
  double sa = 0.0, sb = 0.0;
  for (size_t j = lane; j < nchunks; j += 32) {
    sa += part[(j * c + ch) * 3];
    sb += part[(j * c + ch) * 3 + 1];
  }
  *a = ky_warp_sum(sa);
  *b = ky_warp_sum(sb);
}

/* The same for the Welford partials; the result (count, mean, M2) is valid in lane 0. */
__device__ void chunk_welford(double *n, double *m, double *M, const double *part, size_t nchunks, int c, int ch) {
  int lane = threadIdx.x & 31;
  double cn = 0.0, cm = 0.0, cM = 0.0;
  for (size_t j = lane; j < nchunks; j += 32) {
    const double *q = part + (j * c + ch) * 3;
    chan_merge(cn, cm, cM, q[0], q[1], q[2]);
  }
  for (int o = 16; o > 0; o >>= 1) {
    double nb = __shfl_down_sync(0xffffffffu, cn, o);
    double mb = __shfl_down_sync(0xffffffffu, cm, o);
    double Mb = __shfl_down_sync(0xffffffffu, cM, o);
    if (lane + o < 32) chan_merge(cn, cm, cM, nb, mb, Mb);
  }
  *n = cn;
  *m = cm;
  *M = cM;
}

/* One channel's training statistics (n values, their mean, M2 = sum of squared deviations) ->
 * save_mean/invstd, the running statistics (unbiased variance) and the normalisation coefficients
 * coef[0..c) = mean, coef[c..2c) = gamma * invstd, coef[2c..3c) = beta. */
__device__ void stats_out(float *coef, float *save_mean, float *save_invstd, float *run_mean, float *run_var,
                          const float *gamma, const float *beta, double n, double mean, double m2, int c, int ch,
                          float eps, float momentum) {
  double var = m2 / n;
  if (var < 0.0) var = 0.0;
  double invstd = 1.0 / sqrt(var + (double)eps);
  if (save_mean) save_mean[ch] = (float)mean;
  if (save_invstd) save_invstd[ch] = (float)invstd;
  if (run_mean) run_mean[ch] = (float)((1.0 - momentum) * run_mean[ch] + momentum * mean);
  if (run_var) {
    double unbiased = n > 1 ? m2 / (n - 1.0) : var;
    run_var[ch] = (float)((1.0 - momentum) * run_var[ch] + momentum * unbiased);
  }
  coef[ch] = (float)mean;
  coef[c + ch] = (float)((gamma ? gamma[ch] : 1.0f) * invstd);
  coef[2 * c + ch] = beta ? beta[ch] : 0.f;
}

/* Training statistics -> save_mean/invstd, running stats, and the normalisation coefficients
 * coef[0..c) = mean, coef[c..2c) = gamma * invstd, coef[2c..3c) = beta. */
__global__ void bn_stats_final(float *coef, float *save_mean, float *save_invstd, float *run_mean,
                               float *run_var, const double *part, size_t nchunks, const float *gamma, const float *beta, int c, float eps,
                               float momentum) {
  int ch = blockIdx.x * (blockDim.x / 32) + (threadIdx.x >> 5);
  if (ch >= c) return;  /* whole warps leave together */
  double n, mean, m2;
  chunk_welford(&n, &mean, &m2, part, nchunks, c, ch);
  if ((threadIdx.x & 31) != 0) return;
  stats_out(coef, save_mean, save_invstd, run_mean, run_var, gamma, beta, n, mean, m2, c, ch, eps, momentum);
}

/* Evaluation coefficients: mean = run_mean, scale = gamma / sqrt(run_var + eps), shift = beta. */
__global__ void bn_eval_coef(float *coef, const float *gamma, const float *beta, const float *run_mean,
                             const float *run_var, int c, float eps) {
  int ch = blockIdx.x * blockDim.x + threadIdx.x;
  if (ch >= c) return;
  double invstd = 1.0 / sqrt((double)run_var[ch] + (double)eps);
  coef[ch] = run_mean[ch];
  coef[c + ch] = (float)((gamma ? gamma[ch] : 1.0f) * invstd);
  coef[2 * c + ch] = beta ? beta[ch] : 0.f;
}

/* y = (x - m[c]) * s[c] + b[c] over npix x c; channel tracked incrementally (no division per item). */
__global__ void bn_apply(float *y, const float *x, const float *coef, size_t n, int c) {
  const float *m = coef, *s = coef + c, *b = coef + 2 * c;
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  size_t stride = (size_t)gridDim.x * blockDim.x;
  int ch = (int)(i % (size_t)c), step = (int)(stride % (size_t)c);
  for (; i < n; i += stride) {
    y[i] = (x[i] - m[ch]) * s[ch] + b[ch];
    ch += step;
    if (ch >= c) ch -= c;
  }
}

/* Same with 16-byte accesses; c % 4 == 0 so a float4 never straddles a pixel. */
__global__ void bn_apply4(float4 *y, const float4 *x, const float *coef, size_t n4, int c) {
  const float *m = coef, *s = coef + c, *b = coef + 2 * c;
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  size_t stride = (size_t)gridDim.x * blockDim.x;
  int c4 = c / 4;
  int q = (int)(i % (size_t)c4), step = (int)(stride % (size_t)c4);
  for (; i < n4; i += stride) {
    int ch = q * 4;
    float4 v = x[i], r;
    r.x = (v.x - m[ch]) * s[ch] + b[ch];
    r.y = (v.y - m[ch + 1]) * s[ch + 1] + b[ch + 1];
    r.z = (v.z - m[ch + 2]) * s[ch + 2] + b[ch + 2];
    r.w = (v.w - m[ch + 3]) * s[ch + 3] + b[ch + 3];
    y[i] = r;
    q += step;
    if (q >= c4) q -= c4;
  }
}

/* Backward coefficients from the stage-1 partials. coef layout (5 arrays of c): mean, invstd
 * (both filled before), A, Bh, D with dx += A*dy + Bh*xhat + D. Train: A = g*is,
 * Bh = -g*is*S(dy*xhat)/n, D = -g*is*S(dy)/n. Eval: the map is affine, Bh = D = 0. */
__global__ void bn_bwd_final(float *coef, float *dgamma, float *dbeta, const double *part, size_t nchunks,
                             const float *gamma, size_t npix, int c, int train) {
  int ch = blockIdx.x * (blockDim.x / 32) + (threadIdx.x >> 5);
  if (ch >= c) return;
  double sdy, sdyx;
  chunk_sums(&sdy, &sdyx, part, nchunks, c, ch);
  if ((threadIdx.x & 31) != 0) return;
  if (dgamma) dgamma[ch] += (float)sdyx;
  if (dbeta) dbeta[ch] += (float)sdy;
  double g = gamma ? gamma[ch] : 1.0, is = coef[c + ch], n = (double)npix;
  coef[2 * c + ch] = (float)(g * is);
  coef[3 * c + ch] = train ? (float)(-g * is * sdyx / n) : 0.f;
  coef[4 * c + ch] = train ? (float)(-g * is * sdy / n) : 0.f;
}

__global__ void bn_dx(float *dx, const float *dy, const float *x, const float *coef, size_t n, int c) {
  const float *m = coef, *is = coef + c, *A = coef + 2 * c, *Bh = coef + 3 * c, *D = coef + 4 * c;
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  size_t stride = (size_t)gridDim.x * blockDim.x;
  int ch = (int)(i % (size_t)c), step = (int)(stride % (size_t)c);
  for (; i < n; i += stride) {
    float xh = (x[i] - m[ch]) * is[ch];
    dx[i] += A[ch] * dy[i] + Bh[ch] * xh + D[ch];
    ch += step;
    if (ch >= c) ch -= c;
  }
}

/* Evaluation backward: coef[0..c) = run_mean, coef[c..2c) = 1 / sqrt(run_var + eps). */
__global__ void bn_eval_stats(float *coef, const float *run_mean, const float *run_var, int c, float eps) {
  int ch = blockIdx.x * blockDim.x + threadIdx.x;
  if (ch >= c) return;
  coef[ch] = run_mean[ch];
  coef[c + ch] = (float)(1.0 / sqrt((double)run_var[ch] + (double)eps));
}

/* bn_dx with 16-byte accesses (c % 4 == 0). */
__global__ void bn_dx4(float4 *dx, const float4 *dy, const float4 *x, const float *coef, size_t n4, int c) {
  const float *m = coef, *is = coef + c, *A = coef + 2 * c, *Bh = coef + 3 * c, *D = coef + 4 * c;
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  size_t stride = (size_t)gridDim.x * blockDim.x;
  int c4 = c / 4;
  int q = (int)(i % (size_t)c4), step = (int)(stride % (size_t)c4);
  for (; i < n4; i += stride) {
    int ch = q * 4;
    float4 g = dy[i], v = x[i], o = dx[i];
    o.x += A[ch] * g.x + Bh[ch] * ((v.x - m[ch]) * is[ch]) + D[ch];
    o.y += A[ch + 1] * g.y + Bh[ch + 1] * ((v.y - m[ch + 1]) * is[ch + 1]) + D[ch + 1];
    o.z += A[ch + 2] * g.z + Bh[ch + 2] * ((v.z - m[ch + 2]) * is[ch + 2]) + D[ch + 2];
    o.w += A[ch + 3] * g.w + Bh[ch + 3] * ((v.w - m[ch + 3]) * is[ch + 3]) + D[ch + 3];
    dx[i] = o;
    q += step;
    if (q >= c4) q -= c4;
  }
}

ky_status launch_dx(ky_cuda *cu, float *dx, const float *dy, const float *x, const float *coef, size_t npix, int c) {
  size_t n = npix * (size_t)c;
  if (c % 4 == 0 && ky_cuda_aligned16(dx) && ky_cuda_aligned16(dy) && ky_cuda_aligned16(x))
    bn_dx4<<<ky_cuda_grid(cu, n / 4, 256), 256, 0, cu->stream>>>((float4 *)dx, (const float4 *)dy, (const float4 *)x,
                                                                coef, n / 4, c);
  else
    bn_dx<<<ky_cuda_grid(cu, n, 256), 256, 0, cu->stream>>>(dx, dy, x, coef, n, c);
  return KY_OK;
}

/* Copies mean/invstd into the coefficient block (so train and eval share bn_partial / bn_dx). */
__global__ void bn_copy_stats(float *coef, const float *mean, const float *invstd, int c) {
  int ch = blockIdx.x * blockDim.x + threadIdx.x;
  if (ch >= c) return;
  coef[ch] = mean[ch];
  coef[c + ch] = invstd[ch];
}

ky_status check_common(ky_cuda *cu, const void *out, const float *x, size_t npix, int c, const char *fn) {
  KY_CHECK(cu != NULL, KY_ERR_ARG, "%s: CUDA context is NULL", fn);
  KY_CHECK(c > 0, KY_ERR_SHAPE, "%s: channel count must be positive, got %d", fn, c);
  KY_CHECK(npix > 0, KY_ERR_SHAPE, "%s: npix must be positive, got 0", fn);
  KY_CHECK(out != NULL && x != NULL, KY_ERR_ARG, "%s: %s is NULL", fn, out ? "x" : "output");
  return KY_OK;
}

/* Stage 1 + workspace for the partials (after `coef_floats` floats of coefficients). */
template <int MODE>
ky_status partials(ky_cuda *cu, double **part, size_t *nchunks, float **coef, size_t coef_floats,
                   const float *x, const float *dy, size_t npix, int c, const float *mean,
                   const float *invstd) {
  size_t rows = bn_chunk(npix);
  *nchunks = (npix + rows - 1) / rows;
  size_t coef_bytes = (coef_floats * sizeof(float) + 255) / 256 * 256;
  void *ws;
  KY_TRY(ky_cuda_workspace(cu, &ws, coef_bytes + *nchunks * (size_t)c * 3 * sizeof(double)));
  *coef = (float *)ws;
  *part = (double *)((char *)ws + coef_bytes);
  dim3 grid((unsigned)((c + TX - 1) / TX), (unsigned)*nchunks), block(TX, TY);
  bn_partial<MODE><<<grid, block, 0, cu->stream>>>(*part, x, dy, mean, invstd, NULL, npix, c, rows);
  return KY_OK;
}

ky_status apply(ky_cuda *cu, float *y, const float *x, const float *coef, size_t npix, int c) {
  size_t n = npix * (size_t)c;
  if (c % 4 == 0 && ky_cuda_aligned16(y) && ky_cuda_aligned16(x))
    bn_apply4<<<ky_cuda_grid(cu, n / 4, 256), 256, 0, cu->stream>>>((float4 *)y, (const float4 *)x, coef, n / 4, c);
  else
    bn_apply<<<ky_cuda_grid(cu, n, 256), 256, 0, cu->stream>>>(y, x, coef, n, c);
  return KY_OK;
}


/* ---- synchronised batch norm (ops/batchnorm_sync.c): bn_partial's MODEs 2-4, then these --- */

/* One warp per channel (chunk_sums): out[ch], out[c + ch] = this rank's two sums; dgamma / dbeta
 * (MODE 4) += them rounded to float before any all-reduce, as the CPU path does (the gradient
 * all-reduce adds the ranks' parameter gradients later). */
__global__ void sync_final(double *out, float *dgamma, float *dbeta, const double *part, size_t nchunks, int c) {
  int ch = blockIdx.x * (blockDim.x / 32) + (threadIdx.x >> 5);
  if (ch >= c) return;  /* whole warps leave together */
  double a, b;
  chunk_sums(&a, &b, part, nchunks, c, ch);
  if ((threadIdx.x & 31) != 0) return;
  out[ch] = a;
  out[c + ch] = b;
  if (dgamma) dgamma[ch] += (float)b;
  if (dbeta) dbeta[ch] += (float)a;
}

/* Global statistics (st[0..c) mean, st[c..2c) sum of centred squares, n pixels) -> saved
 * statistics, running statistics and bn_apply's coefficients (the CPU path's formulas). */
__global__ void sync_fwd_coef(float *coef, float *save_mean, float *save_invstd, float *run_mean, float *run_var,
                              const double *st, double n, const float *gamma, const float *beta, int c, float eps,
                              float momentum) {
  int ch = blockIdx.x * blockDim.x + threadIdx.x;
  if (ch >= c) return;
  stats_out(coef, save_mean, save_invstd, run_mean, run_var, gamma, beta, n, st[ch], st[c + ch], c, ch, eps, momentum);
}

/* Global sums (sd[0..c) sum dy, sd[c..2c) sum dy * xhat) -> bn_dx's coefficients over count
 * pixels: dx += g*is*dy - g*is*S(dy xhat)/n * xhat - g*is*S(dy)/n, bn_bwd_final's formula. */
__global__ void sync_bwd_coef(float *coef, const float *gamma, const float *mean, const float *invstd,
                              const double *sd, double count, int c) {
  int ch = blockIdx.x * blockDim.x + threadIdx.x;
  if (ch >= c) return;
  double g = gamma ? gamma[ch] : 1.0, is = invstd[ch];
  coef[ch] = mean[ch];
  coef[c + ch] = invstd[ch];
  coef[2 * c + ch] = (float)(g * is);
  coef[3 * c + ch] = (float)(-g * is * sd[c + ch] / count);
  coef[4 * c + ch] = (float)(-g * is * sd[ch] / count);
}

/* bn_partial<MODE> + sync_final into `out` (device, [2c]), then out -> host sums[nout]. The workspace
 * holds the partials, `up` (host doubles uploaded first, [nup]) and out. */
template <int MODE>
ky_status sync_sums(ky_cuda *cu, double *sums, size_t nout, float *dgamma, float *dbeta, const float *x,
                    const float *dy, const double *up, size_t nup, const float *m, const float *is, size_t npix,
                    int c) {
  size_t rows = bn_chunk(npix), nchunks = (npix + rows - 1) / rows;
  size_t npart = nchunks * (size_t)c * 3;
  void *ws;
  KY_TRY(ky_cuda_workspace(cu, &ws, (npart + nup + 2 * (size_t)c) * sizeof(double)));
  double *part = (double *)ws, *dup = part + npart, *out = dup + nup;
  if (nup) KY_TRY(ky_cuda_h2d(cu, dup, up, nup * sizeof(double)));
  dim3 grid((unsigned)((c + TX - 1) / TX), (unsigned)nchunks), block(TX, TY);
  bn_partial<MODE><<<grid, block, 0, cu->stream>>>(part, x, dy, m, is, dup, npix, c, rows);
  KY_CUDA_LAUNCH_CHECK(cu);
  sync_final<<<(c + 7) / 8, 256, 0, cu->stream>>>(out, dgamma, dbeta, part, nchunks, c);
  KY_CUDA_LAUNCH_CHECK(cu);
  return ky_cuda_d2h(cu, sums, out, nout * sizeof(double));
}

/* Uploads the host doubles st[2c] after `coef_floats` floats of coefficient space. */
ky_status sync_upload(ky_cuda *cu, float **coef, double **dst, size_t coef_floats, const double *st, int c) {
  size_t coef_bytes = (coef_floats * sizeof(float) + 255) / 256 * 256;
  void *ws;
  KY_TRY(ky_cuda_workspace(cu, &ws, coef_bytes + 2 * (size_t)c * sizeof(double)));
  *coef = (float *)ws;
  *dst = (double *)((char *)ws + coef_bytes);
  return ky_cuda_h2d(cu, *dst, st, 2 * (size_t)c * sizeof(double));
}

}  // namespace

extern "C" ky_status ky_cuda_bn_fwd_train(ky_cuda *cu, float *y, float *save_mean, float *save_invstd,
                                          float *run_mean, float *run_var, const float *x, const float *gamma,
                                          const float *beta, size_t npix, int c, float eps, float momentum) {
  KY_TRY(check_common(cu, y, x, npix, c, __func__));
  KY_CHECK(eps >= 0.f, KY_ERR_ARG, "%s: eps must be >= 0, got %g", __func__, eps);
  double *part;
  size_t nchunks;
  float *coef;
  KY_TRY(partials<0>(cu, &part, &nchunks, &coef, 3 * (size_t)c, x, NULL, npix, c, NULL, NULL));
  KY_CUDA_LAUNCH_CHECK(cu);
  bn_stats_final<<<(c + 7) / 8, 256, 0, cu->stream>>>(coef, save_mean, save_invstd, run_mean, run_var, part,
                                                      nchunks, gamma, beta, c, eps, momentum);
  KY_CUDA_LAUNCH_CHECK(cu);
  apply(cu, y, x, coef, npix, c);
  KY_CUDA_LAUNCH_CHECK(cu);
  return KY_OK;
}

extern "C" ky_status ky_cuda_bn_fwd_eval(ky_cuda *cu, float *y, const float *x, const float *gamma, const float *beta,
                                         const float *run_mean, const float *run_var, size_t npix, int c, float eps) {
  KY_TRY(check_common(cu, y, x, npix, c, __func__));
  KY_CHECK(run_mean != NULL && run_var != NULL, KY_ERR_ARG, "%s: running statistics are NULL", __func__);
  void *ws;
  KY_TRY(ky_cuda_workspace(cu, &ws, 3 * (size_t)c * sizeof(float)));
  float *coef = (float *)ws;
  bn_eval_coef<<<(c + 255) / 256, 256, 0, cu->stream>>>(coef, gamma, beta, run_mean, run_var, c, eps);
  KY_CUDA_LAUNCH_CHECK(cu);
  apply(cu, y, x, coef, npix, c);
  KY_CUDA_LAUNCH_CHECK(cu);
  return KY_OK;
}

extern "C" ky_status ky_cuda_bn_bwd_train(ky_cuda *cu, float *dx, float *dgamma, float *dbeta, const float *dy,
                                          const float *x, const float *gamma, const float *save_mean,
                                          const float *save_invstd, size_t npix, int c) {
  KY_TRY(check_common(cu, dy, x, npix, c, __func__));
  KY_CHECK(save_mean != NULL && save_invstd != NULL, KY_ERR_ARG, "%s: saved statistics are NULL", __func__);
  if (!dx && !dgamma && !dbeta) return KY_OK;
  double *part;
  size_t nchunks;
  float *coef;
  KY_TRY(partials<1>(cu, &part, &nchunks, &coef, 5 * (size_t)c, x, dy, npix, c, save_mean, save_invstd));
  KY_CUDA_LAUNCH_CHECK(cu);
  bn_copy_stats<<<(c + 255) / 256, 256, 0, cu->stream>>>(coef, save_mean, save_invstd, c);
  KY_CUDA_LAUNCH_CHECK(cu);
  bn_bwd_final<<<(c + 7) / 8, 256, 0, cu->stream>>>(coef, dgamma, dbeta, part, nchunks, gamma, npix, c, 1);
  KY_CUDA_LAUNCH_CHECK(cu);
  if (dx) {
    launch_dx(cu, dx, dy, x, coef, npix, c);
    KY_CUDA_LAUNCH_CHECK(cu);
  }
  return KY_OK;
}

extern "C" ky_status ky_cuda_bn_bwd_eval(ky_cuda *cu, float *dx, float *dgamma, float *dbeta, const float *dy,
                                         const float *x, const float *gamma, const float *run_mean,
                                         const float *run_var, size_t npix, int c, float eps) {
  KY_TRY(check_common(cu, dy, x, npix, c, __func__));
  KY_CHECK(run_mean != NULL && run_var != NULL, KY_ERR_ARG, "%s: running statistics are NULL", __func__);
  if (!dx && !dgamma && !dbeta) return KY_OK;
  size_t rows = bn_chunk(npix), nchunks = (npix + rows - 1) / rows;
  size_t coef_bytes = (5 * (size_t)c * sizeof(float) + 255) / 256 * 256;
  void *ws;
  KY_TRY(ky_cuda_workspace(cu, &ws, coef_bytes + nchunks * (size_t)c * 3 * sizeof(double)));
  float *coef = (float *)ws;
  double *part = (double *)((char *)ws + coef_bytes);
  bn_eval_stats<<<(c + 255) / 256, 256, 0, cu->stream>>>(coef, run_mean, run_var, c, eps);
  KY_CUDA_LAUNCH_CHECK(cu);
  dim3 grid((unsigned)((c + TX - 1) / TX), (unsigned)nchunks), block(TX, TY);
  bn_partial<1><<<grid, block, 0, cu->stream>>>(part, x, dy, coef, coef + c, NULL, npix, c, rows);
  KY_CUDA_LAUNCH_CHECK(cu);
  bn_bwd_final<<<(c + 7) / 8, 256, 0, cu->stream>>>(coef, dgamma, dbeta, part, nchunks, gamma, npix, c, 0);
  KY_CUDA_LAUNCH_CHECK(cu);
  if (dx) {
    launch_dx(cu, dx, dy, x, coef, npix, c);
    KY_CUDA_LAUNCH_CHECK(cu);
  }
  return KY_OK;
}

extern "C" ky_status ky_cuda_bn_sync_stats(ky_cuda *cu, double *sums, const float *x, const double *mean, size_t npix,
                                           int c) {
  KY_TRY(check_common(cu, sums, x, npix, c, __func__));
  if (mean) return sync_sums<3>(cu, sums, (size_t)c, NULL, NULL, x, NULL, mean, (size_t)c, NULL, NULL, npix, c);
  return sync_sums<2>(cu, sums, (size_t)c, NULL, NULL, x, NULL, NULL, 0, NULL, NULL, npix, c);
}

extern "C" ky_status ky_cuda_bn_sync_grad_sums(ky_cuda *cu, double *sums, float *dgamma, float *dbeta, const float *dy,
                                               const float *x, const float *save_mean, const float *save_invstd,
                                               size_t npix, int c) {
  KY_TRY(check_common(cu, sums, x, npix, c, __func__));
  KY_CHECK(dy != NULL && save_mean != NULL && save_invstd != NULL, KY_ERR_ARG, "%s: %s is NULL", __func__,
           !dy ? "dy" : "a saved statistic");
  return sync_sums<4>(cu, sums, 2 * (size_t)c, dgamma, dbeta, x, dy, NULL, 0, save_mean, save_invstd, npix, c);
}

extern "C" ky_status ky_cuda_bn_sync_fwd_apply(ky_cuda *cu, float *y, float *save_mean, float *save_invstd,
                                               float *run_mean, float *run_var, const float *x, const float *gamma,
                                               const float *beta, const double *stats, double n, size_t npix, int c,
                                               float eps, float momentum) {
  KY_TRY(check_common(cu, y, x, npix, c, __func__));
  KY_CHECK(stats != NULL && save_mean != NULL && save_invstd != NULL, KY_ERR_ARG, "%s: statistics are NULL", __func__);
  KY_CHECK(n >= 1, KY_ERR_ARG, "%s: global pixel count must be >= 1, got %g", __func__, n);
  float *coef;
  double *st;
  KY_TRY(sync_upload(cu, &coef, &st, 3 * (size_t)c, stats, c));
  sync_fwd_coef<<<(c + 255) / 256, 256, 0, cu->stream>>>(coef, save_mean, save_invstd, run_mean, run_var, st, n,
                                                          gamma, beta, c, eps, momentum);
  KY_CUDA_LAUNCH_CHECK(cu);
  apply(cu, y, x, coef, npix, c);
  KY_CUDA_LAUNCH_CHECK(cu);
  return KY_OK;
}

extern "C" ky_status ky_cuda_bn_sync_bwd_apply(ky_cuda *cu, float *dx, const float *dy, const float *x,
                                               const float *gamma, const float *save_mean, const float *save_invstd,
                                               const double *sums, double count, size_t npix, int c) {
  KY_TRY(check_common(cu, dx, x, npix, c, __func__));
  KY_CHECK(dy != NULL && sums != NULL && save_mean != NULL && save_invstd != NULL, KY_ERR_ARG,
           "%s: dy, sums or a saved statistic is NULL", __func__);
  KY_CHECK(count >= 1, KY_ERR_ARG, "%s: global pixel count must be >= 1, got %g", __func__, count);
  float *coef;
  double *sd;
  KY_TRY(sync_upload(cu, &coef, &sd, 5 * (size_t)c, sums, c));
  sync_bwd_coef<<<(c + 255) / 256, 256, 0, cu->stream>>>(coef, gamma, save_mean, save_invstd, sd, count, c);
  KY_CUDA_LAUNCH_CHECK(cu);
  launch_dx(cu, dx, dy, x, coef, npix, c);
  KY_CUDA_LAUNCH_CHECK(cu);
  return KY_OK;
}

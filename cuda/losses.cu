/* CUDA losses: BCE with logits, softmax cross-entropy (ignore 255, class weights), soft dice
 * (per image / per batch, clamped), one-hot maps. Scalars live in device memory: the forward
 * writes them there and the backward reads dloss / ddice there, so a training step needs no host
 * round trip. Tested by tests/test_cuda_ops.c against the CPU reference (skips without a GPU).
 * Determinism: every reduction is two-stage with a partition fixed by the problem size (never the
 * card): stage 1 gives one double partial per chunk (per-thread double sums in a fixed stride, a
 * fixed shuffle tree per block), stage 2 adds the partials in one block in a fixed order. No
 * atomics. Class indices >= c other than 255 are treated as ignored (a kernel cannot report). */
#include <math.h>

#include "cuda/check.cuh"
#include "cuda/reduce.cuh"

namespace {

const int RT = 256;            /* threads per reduction block */
const size_t PER = 16;         /* items per thread in a chunk */
const size_t MAX_CHUNKS = 4096;

__device__ __forceinline__ float bce_elem(float x, float t) {
  return fmaxf(x, 0.f) - x * t + log1pf(expf(-fabsf(x)));
}

__global__ void bce_partial(double *part, const float *x, const float *t, size_t npix, int c, int ch, size_t len) {
  __shared__ double sh[32];
  size_t p0 = (size_t)blockIdx.x * len, p1 = p0 + len < npix ? p0 + len : npix;
  double s = 0.0;
  for (size_t p = p0 + threadIdx.x; p < p1; p += RT) s += bce_elem(x[p * c + ch], t[p * c + ch]);
  s = ky_block_sum(s, sh);
  if (threadIdx.x == 0) part[blockIdx.x] = s;
}

/* part[2b] = sum w[y] * nll (when nll), part[2b+1] = sum w[y]. */
__global__ void ce_partial(double *part, const float *x, const uint8_t *cls, const float *w, size_t npix, int c,
                           size_t len, int nll) {
  __shared__ double sh[32];
  size_t p0 = (size_t)blockIdx.x * len, p1 = p0 + len < npix ? p0 + len : npix;
  double s = 0.0, sw = 0.0;
  for (size_t p = p0 + threadIdx.x; p < p1; p += RT) {
    int y = cls[p];
    if (y >= c) continue;  /* 255 = ignore */
    float wy = w ? w[y] : 1.f;
    sw += wy;
    if (nll) {
      const float *xp = x + p * c;
      float m = xp[0];
      for (int k = 1; k < c; k++) m = fmaxf(m, xp[k]);
      float e = 0.f;
      for (int k = 0; k < c; k++) e += expf(xp[k] - m);
      s += (double)wy * (double)(m + logf(e) - xp[y]);
    }
  }
  s = ky_block_sum(s, sh);
  sw = ky_block_sum(sw, sh);
  if (threadIdx.x == 0) {
    part[2 * blockIdx.x] = s;
    part[2 * blockIdx.x + 1] = sw;
  }
}

enum { FIN_MEAN = 0, FIN_RATIO = 1, FIN_STORE = 2 };

/* One block adds nb partials of `ncomp` components in a fixed order, then:
 * FIN_MEAN: *out = s0 / denom;  FIN_RATIO: *out = s0 / s1;  FIN_STORE: res[k] = s_k. */
__global__ void sum_parts(float *out, double *res, const double *part, size_t nb, int ncomp, double denom, int mode) {
  __shared__ double sh[32];
  double s[2] = {0.0, 0.0};
  /* constant bounds keep s[] in registers; ncomp (1 or 2) is uniform over the block */
  for (size_t j = threadIdx.x; j < nb; j += blockDim.x)
    for (int k = 0; k < 2; k++)
      if (k < ncomp) s[k] += part[j * ncomp + k];
  for (int k = 0; k < 2; k++)
    if (k < ncomp) s[k] = ky_block_sum(s[k], sh);
  if (threadIdx.x != 0) return;
  if (mode == FIN_MEAN) *out = (float)(s[0] / denom);
  else if (mode == FIN_RATIO) *out = s[1] > 0.0 ? (float)(s[0] / s[1]) : 0.f;
  else
    for (int k = 0; k < 2; k++)
      if (k < ncomp) res[k] = s[k];
}

/* dx[p, ch] += dloss * (sigmoid(x) - t) / npix */
__global__ void bce_grad(float *dx, const float *x, const float *t, const float *dloss, size_t npix, int c, int ch) {
  size_t stride = (size_t)gridDim.x * blockDim.x;
  float scale = (float)((double)*dloss / (double)npix);
  for (size_t p = (size_t)blockIdx.x * blockDim.x + threadIdx.x; p < npix; p += stride) {
    float v = x[p * c + ch], sg;
    if (v >= 0.f) sg = 1.f / (1.f + expf(-v));
    else {
      float e = expf(v);
      sg = e / (1.f + e);
    }
    dx[p * c + ch] += __fmul_rn(scale, sg - t[p * c + ch]);
  }
}

/* dx[p, k] += dloss * w[y] / sum_w * (softmax_k - [k == y]) for labelled pixels. */
__global__ void ce_grad(float *dx, const float *x, const uint8_t *cls, const float *w, const float *dloss,
                        const double *res, size_t npix, int c) {
  size_t stride = (size_t)gridDim.x * blockDim.x;
  double sw = res[1];
  float dl = *dloss;
  if (!(sw > 0.0)) return;  /* nothing labelled: zero gradient */
  for (size_t p = (size_t)blockIdx.x * blockDim.x + threadIdx.x; p < npix; p += stride) {
    int y = cls[p];
    if (y >= c) continue;
    float coef = (float)((double)dl * (double)(w ? w[y] : 1.f) / sw);
    const float *xp = x + p * c;
    float m = xp[0];
    for (int k = 1; k < c; k++) m = fmaxf(m, xp[k]);
    float e = 0.f;
    for (int k = 0; k < c; k++) e += expf(xp[k] - m);
    float inv = 1.f / e;
    for (int k = 0; k < c; k++) {
      float sm = expf(xp[k] - m) * inv;
      dx[p * c + k] += coef * (sm - (k == y ? 1.f : 0.f));
    }
  }
}

/* grid (chunks, n): part[(img * nch + j) * 3 + {0,1,2}] = (sum p*t, sum p, sum t) over the chunk. */
__global__ void dice_partial(double *part, const float *p, int pc, int pch, const float *t, int tc, int tch,
                             size_t hw, size_t len) {
  __shared__ double sh[32];
  size_t img = blockIdx.y, nch = gridDim.x;
  size_t q0 = (size_t)blockIdx.x * len, q1 = q0 + len < hw ? q0 + len : hw;
  double spt = 0.0, sp = 0.0, st = 0.0;
  for (size_t q = q0 + threadIdx.x; q < q1; q += RT) {
    double a = p[(img * hw + q) * pc + pch], b = t[(img * hw + q) * tc + tch];
    spt += a * b;
    sp += a;
    st += b;
  }
  spt = ky_block_sum(spt, sh);
  sp = ky_block_sum(sp, sh);
  st = ky_block_sum(st, sh);
  if (threadIdx.x == 0) {
    size_t o = (img * nch + blockIdx.x) * 3;
    part[o] = spt;
    part[o + 1] = sp;
    part[o + 2] = st;
  }
}

/* Block g adds partials [g*per, (g+1)*per) (per = nch per image, or all of them per batch). */
__global__ void dice_final(float *dice, double *sums, const double *part, size_t per, float eps) {
  __shared__ double sh[32];
  size_t g = blockIdx.x, j0 = g * per;
  double s[3] = {0.0, 0.0, 0.0};
  for (size_t j = j0 + threadIdx.x; j < j0 + per; j += blockDim.x)
    for (int k = 0; k < 3; k++) s[k] += part[j * 3 + k];
  for (int k = 0; k < 3; k++) s[k] = ky_block_sum(s[k], sh);
  if (threadIdx.x != 0) return;
  for (int k = 0; k < 3; k++) sums[g * 3 + k] = s[k];
  double d = (2.0 * s[0] + eps) / (s[1] + s[2] + eps);
  dice[g] = (float)(d < 0.0 ? 0.0 : d > 1.0 ? 1.0 : d);
}

/* dp += ddice[g] * (2 t - dice_g) / (sum_p + sum_t + eps), zero where the clamp is active. */
__global__ void dice_grad(float *dp, const float *ddice, const double *sums, const float *t, int pc, int pch, int tc,
                          int tch, size_t hw, size_t total, float eps, int per_image) {
  size_t stride = (size_t)gridDim.x * blockDim.x;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
    size_t img = i / hw;
    size_t g = per_image ? img : 0;
    double den = sums[g * 3 + 1] + sums[g * 3 + 2] + eps;
    double d = (2.0 * sums[g * 3] + eps) / den;
    if (d < 0.0 || d > 1.0) continue;
    double tv = t[i * tc + tch];
    dp[i * pc + pch] += (float)((double)ddice[g] / den * (2.0 * tv - d));
  }
}

__global__ void onehot_kernel(float *y, const uint8_t *cls, size_t total, int c) {
  size_t stride = (size_t)gridDim.x * blockDim.x;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride)
    y[i] = (int)cls[i / c] == (int)(i % c) ? 1.f : 0.f;
}

ky_status check_pix(ky_cuda *cu, size_t npix, int c, const char *fn) {
  KY_CHECK(cu != NULL, KY_ERR_ARG, "%s: CUDA context is NULL", fn);
  KY_CHECK(npix > 0, KY_ERR_SHAPE, "%s: npix must be positive, got 0", fn);
  KY_CHECK(c > 0, KY_ERR_SHAPE, "%s: channel count must be positive, got %d", fn, c);
  return KY_OK;
}

/* Workspace for nb partials of ncomp doubles plus `extra` result doubles (results first). */
ky_status parts_ws(ky_cuda *cu, double **res, double **part, size_t nb, int ncomp, size_t extra) {
  void *ws;
  KY_TRY(ky_cuda_workspace(cu, &ws, (extra + nb * ncomp) * sizeof(double)));
  *res = (double *)ws;
  *part = *res + extra;
  return KY_OK;
}

}  // namespace

extern "C" ky_status ky_cuda_bce_logits_fwd(ky_cuda *cu, float *loss, const float *x, const float *t, size_t npix,
                                            int c, int ch) {
  KY_TRY(check_pix(cu, npix, c, __func__));
  KY_CHECK(ch >= 0 && ch < c, KY_ERR_ARG, "%s: channel %d outside 0..%d", __func__, ch, c - 1);
  KY_CHECK(loss && x && t, KY_ERR_ARG, "%s: %s is NULL", __func__, !loss ? "loss" : !x ? "x" : "t");
  size_t len = ky_chunk_len(npix, RT, PER, MAX_CHUNKS), nb = (npix + len - 1) / len;
  double *res, *part;
  KY_TRY(parts_ws(cu, &res, &part, nb, 1, 0));
  bce_partial<<<(unsigned)nb, RT, 0, cu->stream>>>(part, x, t, npix, c, ch, len);
  KY_CUDA_LAUNCH_CHECK(cu);
  sum_parts<<<1, RT, 0, cu->stream>>>(loss, NULL, part, nb, 1, (double)npix, FIN_MEAN);
  KY_CUDA_LAUNCH_CHECK(cu);
  return KY_OK;
}

extern "C" ky_status ky_cuda_bce_logits_bwd(ky_cuda *cu, float *dx, const float *x, const float *t, const float *dloss,
                                            size_t npix, int c, int ch) {
  KY_TRY(check_pix(cu, npix, c, __func__));
  KY_CHECK(ch >= 0 && ch < c, KY_ERR_ARG, "%s: channel %d outside 0..%d", __func__, ch, c - 1);
  KY_CHECK(dx && x && t && dloss, KY_ERR_ARG, "%s: %s is NULL", __func__,
           !dx ? "dx" : !x ? "x" : !t ? "t" : "dloss");
  bce_grad<<<ky_cuda_grid(cu, npix, 256), 256, 0, cu->stream>>>(dx, x, t, dloss, npix, c, ch);
  KY_CUDA_LAUNCH_CHECK(cu);
  return KY_OK;
}

extern "C" ky_status ky_cuda_softmax_ce_fwd(ky_cuda *cu, float *loss, const float *x, const uint8_t *cls,
                                            const float *w, size_t npix, int c) {
  KY_TRY(check_pix(cu, npix, c, __func__));
  KY_CHECK(c <= 255, KY_ERR_SHAPE, "%s: %d classes, at most 255 (255 marks ignored pixels)", __func__, c);
  KY_CHECK(loss && x && cls, KY_ERR_ARG, "%s: %s is NULL", __func__, !loss ? "loss" : !x ? "x" : "cls");
  size_t len = ky_chunk_len(npix, RT, PER, MAX_CHUNKS), nb = (npix + len - 1) / len;
  double *res, *part;
  KY_TRY(parts_ws(cu, &res, &part, nb, 2, 0));
  ce_partial<<<(unsigned)nb, RT, 0, cu->stream>>>(part, x, cls, w, npix, c, len, 1);
  KY_CUDA_LAUNCH_CHECK(cu);
  /* No labelled pixel (or zero total weight): loss 0, not PyTorch's NaN, as the CPU reference. */
  sum_parts<<<1, RT, 0, cu->stream>>>(loss, NULL, part, nb, 2, 0.0, FIN_RATIO);
  KY_CUDA_LAUNCH_CHECK(cu);
  return KY_OK;
}

extern "C" ky_status ky_cuda_softmax_ce_bwd(ky_cuda *cu, float *dx, const float *x, const uint8_t *cls, const float *w,
                                            const float *dloss, size_t npix, int c) {
  KY_TRY(check_pix(cu, npix, c, __func__));
  KY_CHECK(c <= 255, KY_ERR_SHAPE, "%s: %d classes, at most 255 (255 marks ignored pixels)", __func__, c);
  KY_CHECK(dx && x && cls && dloss, KY_ERR_ARG, "%s: %s is NULL", __func__,
           !dx ? "dx" : !x ? "x" : !cls ? "cls" : "dloss");
  size_t len = ky_chunk_len(npix, RT, PER, MAX_CHUNKS), nb = (npix + len - 1) / len;
  double *res, *part;
  KY_TRY(parts_ws(cu, &res, &part, nb, 2, 2));
  ce_partial<<<(unsigned)nb, RT, 0, cu->stream>>>(part, x, cls, w, npix, c, len, 0);
  KY_CUDA_LAUNCH_CHECK(cu);
  sum_parts<<<1, RT, 0, cu->stream>>>(NULL, res, part, nb, 2, 0.0, FIN_STORE);
  KY_CUDA_LAUNCH_CHECK(cu);
  ce_grad<<<ky_cuda_grid(cu, npix, 256), 256, 0, cu->stream>>>(dx, x, cls, w, dloss, res, npix, c);
  KY_CUDA_LAUNCH_CHECK(cu);
  return KY_OK;
}

static ky_status check_dice(ky_cuda *cu, const void *out, const float *p, int pc, int pch, const float *t, int tc,
                            int tch, int n, size_t hw, const char *fn) {
  KY_CHECK(cu != NULL, KY_ERR_ARG, "%s: CUDA context is NULL", fn);
  KY_CHECK(n > 0 && hw > 0, KY_ERR_SHAPE, "%s: n %d and hw %zu must be positive", fn, n, hw);
  KY_CHECK(pch >= 0 && pch < pc, KY_ERR_ARG, "%s: prediction channel %d outside 0..%d", fn, pch, pc - 1);
  KY_CHECK(tch >= 0 && tch < tc, KY_ERR_ARG, "%s: target channel %d outside 0..%d", fn, tch, tc - 1);
  KY_CHECK(out && p && t, KY_ERR_ARG, "%s: %s is NULL", fn, !out ? "output" : !p ? "p" : "t");
  return KY_OK;
}

extern "C" ky_status ky_cuda_dice_fwd(ky_cuda *cu, float *dice, double *sums, const float *p, int pc, int pch,
                                      const float *t, int tc, int tch, int n, size_t hw, float eps, int per_image) {
  KY_TRY(check_dice(cu, dice, p, pc, pch, t, tc, tch, n, hw, __func__));
  KY_CHECK_NULL(sums, "sums");
  KY_CHECK(n <= 65535, KY_ERR_SHAPE, "%s: batch %d above 65535", __func__, n);
  size_t len = ky_chunk_len(hw, RT, PER, MAX_CHUNKS / (size_t)n + 1), nch = (hw + len - 1) / len;
  double *res, *part;
  KY_TRY(parts_ws(cu, &res, &part, nch * (size_t)n, 3, 0));
  dice_partial<<<dim3((unsigned)nch, (unsigned)n), RT, 0, cu->stream>>>(part, p, pc, pch, t, tc, tch, hw, len);
  KY_CUDA_LAUNCH_CHECK(cu);
  unsigned groups = per_image ? (unsigned)n : 1u;
  dice_final<<<groups, RT, 0, cu->stream>>>(dice, sums, part, per_image ? nch : nch * (size_t)n, eps);
  KY_CUDA_LAUNCH_CHECK(cu);
  return KY_OK;
}

extern "C" ky_status ky_cuda_dice_bwd(ky_cuda *cu, float *dp, const float *ddice, const double *sums, const float *p,
                                      int pc, int pch, const float *t, int tc, int tch, int n, size_t hw, float eps,
                                      int per_image) {
  KY_TRY(check_dice(cu, dp, p, pc, pch, t, tc, tch, n, hw, __func__));
  KY_CHECK(ddice && sums, KY_ERR_ARG, "%s: %s is NULL", __func__, ddice ? "sums" : "ddice");
  size_t total = (size_t)n * hw;
  dice_grad<<<ky_cuda_grid(cu, total, 256), 256, 0, cu->stream>>>(dp, ddice, sums, t, pc, pch, tc, tch, hw, total,
                                                                   eps, per_image);
  KY_CUDA_LAUNCH_CHECK(cu);
  return KY_OK;
}

extern "C" ky_status ky_cuda_onehot(ky_cuda *cu, float *y, const uint8_t *cls, size_t npix, int c) {
  KY_CUDA_CHECK_CTX(cu);
  KY_CHECK(c > 0, KY_ERR_SHAPE, "%s: channel count must be positive, got %d", __func__, c);
  if (npix == 0) return KY_OK;
  KY_CHECK(y && cls, KY_ERR_ARG, "%s: %s is NULL", __func__, y ? "cls" : "y");
  size_t total = npix * (size_t)c;
  onehot_kernel<<<ky_cuda_grid(cu, total, 256), 256, 0, cu->stream>>>(y, cls, total, c);
  KY_CUDA_LAUNCH_CHECK(cu);
  return KY_OK;
}

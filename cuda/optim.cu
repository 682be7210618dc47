/* CUDA optimiser steps over flat parameter blocks: fused Adam / AMSGrad / AdamW, SGD with
 * momentum (PyTorch semantics), and the sum of squares for global-norm clipping. Tested by
 * tests/test_cuda_ops.c against optim/ CPU reference (skips without a GPU).
 * Determinism: updates are per element; sumsq is two-stage (double partials per fixed-size chunk,
 * then one block in a fixed order), no atomics. Bias corrections are computed on the host in
 * double, once per call. */
#include <math.h>

#include "cuda/check.cuh"
#include "cuda/reduce.cuh"

namespace {

struct adam_k {
  float b1, one_b1, b2, one_b2, eps, decay;
  int wd;                 /* weight decay on: p *= decay */
  float step_size;  /* lr / (1 - b1^t) */
  float bc2_sqrt;   /* sqrt(1 - b2^t) */
};

template <bool AMS>
__global__ void adam_kernel(float *p, float *m, float *v, float *vmax, const float *g, size_t n, adam_k a) {
  size_t stride = (size_t)gridDim.x * blockDim.x;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    float gi = g[i], pi = p[i];
    if (a.wd) pi = __fmul_rn(pi, a.decay);  /* decoupled weight decay (AdamW) */
    float mi = __fadd_rn(__fmul_rn(m[i], a.b1), __fmul_rn(a.one_b1, gi));
    float vi = __fadd_rn(__fmul_rn(v[i], a.b2), __fmul_rn(__fmul_rn(a.one_b2, gi), gi));
    m[i] = mi;
    v[i] = vi;
    float vv = vi;
    if (AMS) {
      vv = fmaxf(vmax[i], vi);
      vmax[i] = vv;
    }
    float denom = __fadd_rn(sqrtf(vv) / a.bc2_sqrt, a.eps);
    p[i] = pi - __fmul_rn(a.step_size, mi) / denom;
  }
}

struct sgd_k {
  float lr, momentum, damp, wd;   /* damp = 1 - dampening */
  int nesterov, first;
};

__global__ void sgd_kernel(float *p, float *buf, const float *g, size_t n, sgd_k a) {
  size_t stride = (size_t)gridDim.x * blockDim.x;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    float d = g[i];
    if (a.wd != 0.f) d = __fadd_rn(d, __fmul_rn(a.wd, p[i]));
    if (a.momentum != 0.f) {
      float b = a.first ? d : __fadd_rn(__fmul_rn(a.momentum, buf[i]), __fmul_rn(a.damp, d));
      buf[i] = b;
      d = a.nesterov ? __fadd_rn(d, __fmul_rn(a.momentum, b)) : b;
    }
    p[i] = __fsub_rn(p[i], __fmul_rn(a.lr, d));
  }
}

const int RT = 256;

__global__ void sumsq_partial(double *part, const float *x, size_t n, size_t len) {
  __shared__ double sh[32];
  size_t i0 = (size_t)blockIdx.x * len, i1 = i0 + len < n ? i0 + len : n;
  double s = 0.0;
  for (size_t i = i0 + threadIdx.x; i < i1; i += RT) {
    double v = x[i];
    s += v * v;
  }
  s = ky_block_sum(s, sh);
  if (threadIdx.x == 0) part[blockIdx.x] = s;
}

__global__ void sumsq_final(double *out, const double *part, size_t nb) {
  __shared__ double sh[32];
  double s = 0.0;
  for (size_t j = threadIdx.x; j < nb; j += blockDim.x) s += part[j];
  s = ky_block_sum(s, sh);
  if (threadIdx.x == 0) *out = s;
}

}  // namespace

extern "C" ky_status ky_cuda_adam(ky_cuda *cu, float *p, float *m, float *v, float *vmax, const float *g, size_t n,
                                  const ky_adam_args *a) {
  KY_CUDA_CHECK_CTX(cu);
  KY_CHECK_NULL(a, "args");
  KY_CHECK(a->step >= 1, KY_ERR_ARG, "%s: step is %lld, expected >= 1 (1-based)", __func__, (long long)a->step);
  KY_CHECK(!a->amsgrad || vmax != NULL, KY_ERR_ARG, "%s: amsgrad is set but vmax is NULL", __func__);
  if (n == 0) return KY_OK;
  KY_CHECK(p && m && v && g, KY_ERR_ARG, "%s: %s is NULL", __func__, !p ? "p" : !m ? "m" : !v ? "v" : "g");
  adam_k k;
  /* The same float constants as the CPU reference (optim/adam_cpu.c), so results agree closely. */
  k.b1 = a->beta1;
  k.one_b1 = (float)(1.0 - a->beta1);
  k.b2 = a->beta2;
  k.one_b2 = (float)(1.0 - a->beta2);
  k.eps = a->eps;
  k.wd = a->weight_decay != 0.f;
  k.decay = (float)(1.0 - (double)a->lr * a->weight_decay);
  double bc1 = 1.0 - pow((double)a->beta1, (double)a->step);
  double bc2 = 1.0 - pow((double)a->beta2, (double)a->step);
  k.step_size = (float)((double)a->lr / bc1);
  k.bc2_sqrt = (float)sqrt(bc2);
  unsigned grid = ky_cuda_grid(cu, n, 256);
  if (a->amsgrad) adam_kernel<true><<<grid, 256, 0, cu->stream>>>(p, m, v, vmax, g, n, k);
  else adam_kernel<false><<<grid, 256, 0, cu->stream>>>(p, m, v, NULL, g, n, k);
  KY_CUDA_LAUNCH_CHECK(cu);
  return KY_OK;
}

extern "C" ky_status ky_cuda_sgd(ky_cuda *cu, float *p, float *buf, const float *g, size_t n, const ky_sgd_args *a) {
  KY_CUDA_CHECK_CTX(cu);
  KY_CHECK_NULL(a, "args");
  KY_CHECK(a->momentum == 0.f || buf != NULL, KY_ERR_ARG, "%s: momentum %g needs a buffer, buf is NULL", __func__,
           a->momentum);
  if (n == 0) return KY_OK;
  KY_CHECK(p && g, KY_ERR_ARG, "%s: %s is NULL", __func__, p ? "g" : "p");
  sgd_k k;
  k.lr = a->lr;
  k.momentum = a->momentum;
  k.damp = (float)(1.0 - a->dampening);
  k.wd = a->weight_decay;
  k.nesterov = a->nesterov;
  k.first = a->step <= 1;
  sgd_kernel<<<ky_cuda_grid(cu, n, 256), 256, 0, cu->stream>>>(p, buf, g, n, k);
  KY_CUDA_LAUNCH_CHECK(cu);
  return KY_OK;
}

extern "C" ky_status ky_cuda_sumsq(ky_cuda *cu, double *out, const float *x, size_t n) {
  KY_CUDA_CHECK_CTX(cu);
  KY_CHECK_NULL(out, "out");
  KY_CHECK(n == 0 || x != NULL, KY_ERR_ARG, "%s: x is NULL", __func__);
  size_t len = ky_chunk_len(n ? n : 1, RT, 16, 4096), nb = n ? (n + len - 1) / len : 0;
  void *ws;
  KY_TRY(ky_cuda_workspace(cu, &ws, (nb ? nb : 1) * sizeof(double)));
  double *part = (double *)ws;
  if (nb) {
    sumsq_partial<<<(unsigned)nb, RT, 0, cu->stream>>>(part, x, n, len);
    KY_CUDA_LAUNCH_CHECK(cu);
  }
  sumsq_final<<<1, RT, 0, cu->stream>>>(out, part, nb);
  KY_CUDA_LAUNCH_CHECK(cu);
  return KY_OK;
}

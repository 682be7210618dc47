/* CPU reference Adam / AdamW step over a flat block (PyTorch 1.13 single-tensor semantics).
 * Tested by tests/test_ops_kernels.c (a hand-worked first step, amsgrad maximum) and
 * tests/test_parity_ops.c (three torch.optim.Adam / AdamW steps: plain, amsgrad, weight decay). */
#include <math.h>

#include "ops/kernels.h"

/* Per element, as torch.optim.Adam(W) with step t (scalars in double, then used as float):
 *   p *= 1 - lr*wd                                   (decoupled decay, AdamW; skipped when wd = 0)
 *   m = beta1*m + (1-beta1)*g;  v = beta2*v + (1-beta2)*g*g
 *   vmax = max(vmax, v) when amsgrad;  denom = sqrt(v or vmax) / sqrt(1 - beta2^t) + eps
 *   p -= lr / (1 - beta1^t) * m / denom */
typedef struct {
  float *p, *m, *v, *vmax;
  const float *g;
  const ky_adam_args *a;
} adam_job;

/* Elements [lo, hi); lo is a multiple of 8 and hi == n or a multiple of 8, so every element takes
 * the vector or the scalar path exactly as in one call over the whole block. */
static void adam_range(void *arg, size_t lo, size_t n) {
  adam_job *j = arg;
  const ky_adam_args *a = j->a;
  float *p = j->p, *m = j->m, *v = j->v, *vmax = j->vmax;
  const float *g = j->g;
  double t = (double)(a->step > 0 ? a->step : 1);
  double bc1 = 1.0 - pow((double)a->beta1, t), bc2 = 1.0 - pow((double)a->beta2, t);
  float decay = (float)(1.0 - (double)a->lr * a->weight_decay);
  float b1 = a->beta1, one_b1 = (float)(1.0 - a->beta1);
  float b2 = a->beta2, one_b2 = (float)(1.0 - a->beta2);
  float step_size = (float)((double)a->lr / bc1), bc2_sqrt = (float)sqrt(bc2), eps = a->eps;
  int ams = a->amsgrad && vmax, decoupled = a->weight_decay != 0.0f;
  size_t i = lo;
#ifdef __AVX__
  /* Eight at a time, the same operations in the same order as the scalar loop below (so the same
   * bits): GCC will not vectorise sqrtf itself, since it must keep errno for negative inputs. */
  typedef float v8f __attribute__((vector_size(32), aligned(4)));
#define SPLAT(x) ((v8f){(x), (x), (x), (x), (x), (x), (x), (x)})
  const v8f vdecay = SPLAT(decay), vb1 = SPLAT(b1), vob1 = SPLAT(one_b1), vb2 = SPLAT(b2), vob2 = SPLAT(one_b2);
  const v8f vstep = SPLAT(step_size), vbc2 = SPLAT(bc2_sqrt), veps = SPLAT(eps);
#undef SPLAT
  for (; i + 8 <= n; i += 8) {
    v8f gi = *(const v8f *)(g + i), pi = *(v8f *)(p + i);
    if (decoupled) pi = pi * vdecay;
    v8f mi = *(v8f *)(m + i) * vb1 + vob1 * gi;
    v8f vi = *(v8f *)(v + i) * vb2 + vob2 * gi * gi;
    *(v8f *)(m + i) = mi;
    *(v8f *)(v + i) = vi;
    v8f vd = vi;
    if (ams) {
      vd = __builtin_ia32_maxps256(*(v8f *)(vmax + i), vi); /* vmax > v ? vmax : v */
      *(v8f *)(vmax + i) = vd;
    }
    v8f denom = __builtin_ia32_sqrtps256(vd) / vbc2 + veps;
    *(v8f *)(p + i) = pi - vstep * mi / denom;
  }
#endif
  for (; i < n; i++) {
    float gi = g[i];
    float pi = decoupled ? p[i] * decay : p[i];
    float mi = m[i] * b1 + one_b1 * gi;
    float vi = v[i] * b2 + one_b2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    float vd = vi;
    if (ams) {
      vd = vmax[i] > vi ? vmax[i] : vi;
      vmax[i] = vd;
    }
    float denom = sqrtf(vd) / bc2_sqrt + eps;
    p[i] = pi - step_size * mi / denom;
  }
}

void ky_cpu_adam(ky_pool *pool, float *p, float *m, float *v, float *vmax, const float *g, size_t n,
                 const ky_adam_args *a) {
  adam_job j = {p, m, v, vmax, g, a};
  ky_pool_for(pool, n, (size_t)1 << 15, adam_range, &j);
}

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
void ky_cpu_adam(float *p, float *m, float *v, float *vmax, const float *g, size_t n, const ky_adam_args *a) {
  double t = (double)(a->step > 0 ? a->step : 1);
  double bc1 = 1.0 - pow((double)a->beta1, t), bc2 = 1.0 - pow((double)a->beta2, t);
  float decay = (float)(1.0 - (double)a->lr * a->weight_decay);
  float b1 = a->beta1, one_b1 = (float)(1.0 - a->beta1);
  float b2 = a->beta2, one_b2 = (float)(1.0 - a->beta2);
  float step_size = (float)((double)a->lr / bc1), bc2_sqrt = (float)sqrt(bc2), eps = a->eps;
  int ams = a->amsgrad && vmax, decoupled = a->weight_decay != 0.0f;
  for (size_t i = 0; i < n; i++) {
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

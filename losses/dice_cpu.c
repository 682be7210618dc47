/* CPU reference soft dice (per image or per batch, clamped to [0, 1]) and the one-hot map.
 * Tested by tests/test_ops_kernels.c (hand-worked values, clamp with zero gradient, accumulation)
 * and tests/test_parity_ops.c (the dice formula written in torch, per image and per batch). */
#include "ops/kernels.h"

/* Group g covers images [g*ipg, (g+1)*ipg): one image per group, or the whole batch. */
void ky_cpu_dice_fwd(float *dice, double *sums, const float *p, int pc, int pch, const float *t, int tc, int tch,
                     int n, size_t hw, float eps, int per_image) {
  int groups = per_image ? n : 1, ipg = per_image ? 1 : n;
  for (int g = 0; g < groups; g++) {
    double spt = 0.0, sp = 0.0, st = 0.0;
    for (size_t q = (size_t)g * ipg * hw; q < (size_t)(g + 1) * ipg * hw; q++) {
      double pv = p[q * pc + pch], tv = t[q * tc + tch];
      spt += pv * tv;
      sp += pv;
      st += tv;
    }
    sums[g * 3 + 0] = spt;
    sums[g * 3 + 1] = sp;
    sums[g * 3 + 2] = st;
    double d = (2.0 * spt + eps) / (sp + st + eps);
    dice[g] = (float)(d < 0.0 ? 0.0 : d > 1.0 ? 1.0 : d);
  }
}

/* d dice / d p_q = (2 t_q - dice_raw) / (sum_p + sum_t + eps). The clamp passes the gradient only
 * where 0 <= dice_raw <= 1 (inclusive, as torch.clamp's backward). */
void ky_cpu_dice_bwd(float *dp, const float *ddice, const double *sums, const float *p, int pc, int pch,
                     const float *t, int tc, int tch, int n, size_t hw, float eps, int per_image) {
  int groups = per_image ? n : 1, ipg = per_image ? 1 : n;
  for (int g = 0; g < groups; g++) {
    double spt = sums[g * 3 + 0], sp = sums[g * 3 + 1], st = sums[g * 3 + 2];
    double den = sp + st + eps, raw = (2.0 * spt + eps) / den;
    if (raw < 0.0 || raw > 1.0) continue;
    double k = (double)ddice[g] / den;
    for (size_t q = (size_t)g * ipg * hw; q < (size_t)(g + 1) * ipg * hw; q++)
      dp[q * pc + pch] += (float)(k * (2.0 * t[q * tc + tch] - raw));
  }
}

void ky_cpu_onehot(float *y, const uint8_t *cls, size_t npix, int c) {
  for (size_t q = 0; q < npix; q++)
    for (int k = 0; k < c; k++) y[q * c + k] = cls[q] == k ? 1.0f : 0.0f;
}

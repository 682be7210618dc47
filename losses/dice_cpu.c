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
typedef struct {
  float *dp;
  const float *ddice, *p, *t;
  const double *sums;
  size_t hw, pc, pch, tc, tch;
  int per_image, n;
  float eps;
} dice_job;

/* Pixels [lo, hi) over n * hw: each takes its group's factor (the sums are done), computed once
 * per group run, with the job's fields in locals (the stores to dp could otherwise alias them). */
static void dice_bwd(void *arg, size_t lo, size_t hi) {
  const dice_job *j = arg;
  size_t gsz = (j->per_image ? 1 : (size_t)j->n) * j->hw, pc = j->pc, tc = j->tc;
  float *dp = j->dp + j->pch;
  const float *t = j->t + j->tch;
  for (size_t q0 = lo; q0 < hi;) {
    size_t g = q0 / gsz, q1 = (g + 1) * gsz < hi ? (g + 1) * gsz : hi;
    double spt = j->sums[g * 3 + 0], sp = j->sums[g * 3 + 1], st = j->sums[g * 3 + 2];
    double den = sp + st + j->eps, raw = (2.0 * spt + j->eps) / den, k = (double)j->ddice[g] / den;
    if (raw >= 0.0 && raw <= 1.0)
      for (size_t q = q0; q < q1; q++) dp[q * pc] += (float)(k * (2.0 * t[q * tc] - raw));
    q0 = q1;
  }
}

void ky_cpu_dice_bwd(ky_pool *pool, float *dp, const float *ddice, const double *sums, const float *p, int pc, int pch,
                     const float *t, int tc, int tch, int n, size_t hw, float eps, int per_image) {
  dice_job j = {dp, ddice, p, t, sums, hw, (size_t)pc, (size_t)pch, (size_t)tc, (size_t)tch, per_image, n, eps};
  ky_pool_for(pool, (size_t)n * hw, 4096, dice_bwd, &j);
}

typedef struct {
  float *y;
  const uint8_t *cls;
  int c;
} onehot_job;

static void onehot(void *arg, size_t lo, size_t hi) {
  onehot_job *j = arg;
  for (size_t q = lo; q < hi; q++)
    for (int k = 0; k < j->c; k++) j->y[q * j->c + k] = j->cls[q] == k ? 1.0f : 0.0f;
}

void ky_cpu_onehot(ky_pool *pool, float *y, const uint8_t *cls, size_t npix, int c) {
  onehot_job j = {y, cls, c};
  ky_pool_for(pool, npix, 4096, onehot, &j);
}

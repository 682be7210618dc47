/* CPU reference binary focal loss with logits (Lin et al. 2017) on one channel of an NHWC map.
 * Tested by the focal rows of tests/optable_cases.c (finite differences; CPU-vs-CUDA on a GPU).
 *
 * With p = sigmoid(x) and soft targets t in [0, 1], per pixel:
 *   l = alpha t (1-p)^gamma softplus(-x) + (1-alpha)(1-t) p^gamma softplus(x)
 * since -log p = softplus(-x) and -log(1-p) = softplus(x). Both p and 1-p come from exp(-|x|),
 * so neither is formed as 1 minus a number close to 1. Derivative (no (gamma-1) power appears,
 * so gamma = 0 and gamma < 1 are safe at p = 0 or 1):
 *   dl/dx = -alpha t (1-p)^gamma (gamma p softplus(-x) + (1-p))
 *           + (1-alpha)(1-t) p^gamma (gamma (1-p) softplus(x) + p) */
#include <math.h>

#include "ops/kernels.h"

/* p, 1 - p, softplus(x), softplus(-x) for one logit, in double. */
static void focal_parts(double v, double *p, double *q, double *sp_pos, double *sp_neg) {
  double e = exp(-fabs(v)), l = log1p(e);
  if (v >= 0) {
    *p = 1.0 / (1.0 + e);
    *q = e / (1.0 + e);
  } else {
    *p = e / (1.0 + e);
    *q = 1.0 / (1.0 + e);
  }
  *sp_pos = (v > 0 ? v : 0.0) + l;   /* softplus(x)  = -log(1-p) */
  *sp_neg = (v < 0 ? -v : 0.0) + l;  /* softplus(-x) = -log p */
}

void ky_cpu_focal_logits_fwd(float *loss, const float *x, const float *t, size_t npix, int c, int ch, float gamma,
                             float alpha) {
  double sum = 0.0, g = gamma, a = alpha;
  for (size_t i = 0; i < npix; i++) {
    double p, q, spp, spn, tv = t[i * c + ch];
    focal_parts(x[i * c + ch], &p, &q, &spp, &spn);
    sum += a * tv * pow(q, g) * spn + (1.0 - a) * (1.0 - tv) * pow(p, g) * spp;
  }
  *loss = npix ? (float)(sum / (double)npix) : 0.0f;
}

typedef struct {
  float *dx;
  const float *x, *t;
  double k, g, a;
  size_t c, ch;
} focal_job;

static void focal_bwd(void *arg, size_t lo, size_t hi) {
  focal_job *j = arg;
  double k = j->k, g = j->g, a = j->a;
  size_t c = j->c, ch = j->ch;
  for (size_t i = lo; i < hi; i++) {
    double p, q, spp, spn, tv = j->t[i * c + ch];
    focal_parts(j->x[i * c + ch], &p, &q, &spp, &spn);
    double d = -a * tv * pow(q, g) * (g * p * spn + q) + (1.0 - a) * (1.0 - tv) * pow(p, g) * (g * q * spp + p);
    j->dx[i * c + ch] += (float)(k * d);
  }
}

/* Pixels are independent: fixed runs on the pool. */
void ky_cpu_focal_logits_bwd(ky_pool *pool, float *dx, const float *x, const float *t, float dloss, size_t npix, int c, int ch,
                             float gamma, float alpha) {
  if (!npix) return;
  focal_job j = {dx, x, t, (double)dloss / (double)npix, gamma, alpha, (size_t)c, (size_t)ch};
  ky_pool_for(pool, npix, 4096, focal_bwd, &j);
}

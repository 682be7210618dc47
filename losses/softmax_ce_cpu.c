/* CPU reference softmax cross-entropy from NHWC logits and uint8 class maps (255 = ignore), with
 * optional class weights and PyTorch's weighted mean. Tested by tests/test_ops_kernels.c
 * (hand-worked values, ignore pixels, accumulation) and tests/test_parity_ops.c (F.cross_entropy). */
#include <math.h>

#include "ops/kernels.h"

/* A pixel takes part when its class is a real one: 255 (ignore) and, defensively, any other value
 * >= c are skipped (the tensor-level op rejects those before calling). */
static int counted(uint8_t k, int c) { return k != 255 && k < c; }

/* Total weight of the counted pixels, summed in double in pixel order. */
static double total_weight(const uint8_t *cls, const float *w, size_t npix, int c) {
  double tw = 0.0;
  for (size_t p = 0; p < npix; p++)
    if (counted(cls[p], c)) tw += w ? w[cls[p]] : 1.0;
  return tw;
}

/* w[y_p] * nll_p of a counted pixel. */
static double pixel_term(const float *xp, uint8_t k, const float *w, int c) {
  float m = xp[0];
  for (int j = 1; j < c; j++) m = xp[j] > m ? xp[j] : m;
  double se = 0.0;
  for (int j = 0; j < c; j++) se += exp((double)xp[j] - m);
  double nll = log(se) + m - xp[k];
  return (w ? w[k] : 1.0) * nll;
}

typedef struct {
  double *terms;
  const float *x, *w;
  const uint8_t *cls;
  int c;
} terms_job;

static void terms_range(void *arg, size_t lo, size_t hi) {
  const terms_job *j = arg;
  for (size_t p = lo; p < hi; p++)
    if (counted(j->cls[p], j->c)) j->terms[p] = pixel_term(j->x + p * j->c, j->cls[p], j->w, j->c);
}

/* When no pixel counts (all ignored, or zero total weight) the loss is 0 and the gradient 0, where
 * PyTorch would give NaN: a crop without labels must not poison a training run.
 * The exp / log of each pixel run on the pool into terms; the sum then runs in pixel order on the
 * caller, so every thread count gives the bits of the loop without terms. */
void ky_cpu_softmax_ce_fwd(ky_pool *pool, float *loss, double *terms, const float *x, const uint8_t *cls,
                           const float *w, size_t npix, int c) {
  double sum = 0.0, tw = total_weight(cls, w, npix, c);
  if (terms) {
    terms_job j = {terms, x, w, cls, c};
    ky_pool_for(pool, npix, 4096, terms_range, &j);
  }
  for (size_t p = 0; p < npix; p++)
    if (counted(cls[p], c)) sum += terms ? terms[p] : pixel_term(x + p * c, cls[p], w, c);
  *loss = tw > 0.0 ? (float)(sum / tw) : 0.0f;
}

/* dx[p, j] += dloss * w[y_p] / W * (softmax(x_p)_j - [j == y_p]) */
typedef struct {
  float *dx;
  const float *x, *w;
  const uint8_t *cls;
  double tw;
  float dloss;
  int c;
} ce_job;

static void ce_bwd(void *arg, size_t lo, size_t hi) {
  ce_job *jb = arg;
  float *dx = jb->dx, dloss = jb->dloss;
  const float *x = jb->x, *w = jb->w;
  const uint8_t *cls = jb->cls;
  double tw = jb->tw;
  int c = jb->c;
  for (size_t p = lo; p < hi; p++) {
    if (!counted(cls[p], c)) continue;
    const float *xp = x + p * c;
    float *o = dx + p * c;
    float m = xp[0];
    for (int j = 1; j < c; j++) m = xp[j] > m ? xp[j] : m;
    double se = 0.0;
    for (int j = 0; j < c; j++) se += exp((double)xp[j] - m);
    double k = (double)dloss * (w ? w[cls[p]] : 1.0) / tw;
    for (int j = 0; j < c; j++) {
      double sm = exp((double)xp[j] - m) / se;
      o[j] += (float)(k * (sm - (j == cls[p] ? 1.0 : 0.0)));
    }
  }
}

/* The total weight is one sum in pixel order on the caller; then pixels are independent. */
void ky_cpu_softmax_ce_bwd(ky_pool *pool, float *dx, const float *x, const uint8_t *cls, const float *w, float dloss,
                           size_t npix, int c) {
  double tw = total_weight(cls, w, npix, c);
  if (!(tw > 0.0)) return;
  ce_job j = {dx, x, w, cls, tw, dloss, c};
  ky_pool_for(pool, npix, 1024, ce_bwd, &j);
}

/* CPU reference channel concatenation over NHWC (forward copy, backward split-accumulate).
 * Tested by tests/test_ops_kernels.c (hand-worked values, NULL gradient slots, accumulation). */
#include <string.h>

#include "ops/kernels.h"

void ky_cpu_concat_fwd(float *y, const float *const *xs, const int *cs, int k, size_t npix) {
  size_t cy = 0;
  for (int i = 0; i < k; i++) cy += (size_t)cs[i];
  for (size_t p = 0; p < npix; p++) {
    float *o = y + p * cy;
    for (int i = 0; i < k; i++) {
      memcpy(o, xs[i] + p * cs[i], (size_t)cs[i] * sizeof *o);
      o += cs[i];
    }
  }
}

/* A NULL dxs[i] means that input needs no gradient: its channels are skipped. */
void ky_cpu_concat_bwd(float *const *dxs, const float *dy, const int *cs, int k, size_t npix) {
  size_t cy = 0;
  for (int i = 0; i < k; i++) cy += (size_t)cs[i];
  for (size_t p = 0; p < npix; p++) {
    const float *g = dy + p * cy;
    for (int i = 0; i < k; i++) {
      if (dxs[i]) {
        float *o = dxs[i] + p * cs[i];
        for (int j = 0; j < cs[i]; j++) o[j] += g[j];
      }
      g += cs[i];
    }
  }
}

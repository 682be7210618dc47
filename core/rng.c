/* Integer, normal and shuffle helpers over the Philox sequence. Tested by tests/test_core_rng.c. */
#include "core/rng.h"

#include <math.h>

int64_t ky_rng_int(ky_rng *r, int64_t lo, int64_t hi) {
  if (hi <= lo) return lo;
  uint64_t span = (uint64_t)(hi - lo);
  if (span <= 0xffffffffull) {
    uint32_t s = (uint32_t)span, lim = (uint32_t)(0x100000000ull - (0x100000000ull % s));
    for (;;) {
      uint32_t x = ky_rng_u32(r);
      if (lim == 0 || x < lim) return lo + (int64_t)(x % s);
    }
  }
  uint64_t lim = UINT64_MAX - (UINT64_MAX % span);
  for (;;) {
    uint64_t x = ky_rng_u64(r);
    if (x < lim) return lo + (int64_t)(x % span);
  }
}

float ky_rng_normal(ky_rng *r) {
  /* u1 in (0, 1] so the log is finite. */
  double u1 = 1.0 - ky_rng_uniform_f64(r), u2 = ky_rng_uniform_f64(r);
  return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void ky_rng_shuffle_int(ky_rng *r, int *a, size_t n) {
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)ky_rng_int(r, 0, (int64_t)i);
    int t = a[i - 1]; a[i - 1] = a[j]; a[j] = t;
  }
}

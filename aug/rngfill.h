/* Bulk draws for the augmentations: the same words as successive ky_rng_u32 calls, computed a
 * Philox block (4 words) at a time. Internal to aug/; tested through tests/test_aug_pixel.c and
 * tests/test_aug_chain.c (noise statistics, determinism). */
#ifndef KY_AUG_RNGFILL_H
#define KY_AUG_RNGFILL_H

#include <stddef.h>
#include <stdint.h>
#include "core/rng.h"

static inline void ky_aug_fill_u32(ky_rng *r, uint32_t *out, size_t n) {
  size_t i = 0;
  while (i < n) {
    if ((r->index & 3) == 0 && n - i >= 4) {
      uint64_t off = r->index >> 2;
      uint32_t key[2] = {(uint32_t)r->seed, (uint32_t)(r->seed >> 32)};
      uint32_t ctr[4] = {(uint32_t)off, (uint32_t)(off >> 32), (uint32_t)r->stream, (uint32_t)(r->stream >> 32)};
      ky_philox4x32(out + i, ctr, key);
      r->index += 4;
      i += 4;
    } else {
      out[i++] = ky_rng_u32(r);
    }
  }
}

/* n uniforms in [lo, hi), equal to n successive ky_rng_uniform_range calls. */
static inline void ky_aug_fill_uniform(ky_rng *r, float *out, size_t n, float lo, float hi) {
  uint32_t u[256];
  for (size_t i = 0; i < n; i += 256) {
    size_t m = n - i < 256 ? n - i : 256;
    ky_aug_fill_u32(r, u, m);
    for (size_t j = 0; j < m; j++) out[i + j] = lo + (hi - lo) * ky_u32_to_unit(u[j]);
  }
}

#endif

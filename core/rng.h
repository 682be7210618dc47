/* Seeded sequential random numbers on top of Philox (core/philox.h): uniform, normal, integer,
 * shuffles. A ky_rng is a small value: (seed, stream) names a sequence, `index` is the position.
 * Tested by tests/test_core_rng.c. */
#ifndef KY_RNG_H
#define KY_RNG_H

#include <stddef.h>
#include <stdint.h>
#include "core/philox.h"

typedef struct {
  uint64_t seed, stream, index;  /* next word is ky_philox_word(seed, stream, index) */
  /* Cache of the last Philox block (4 words): one block serves four draws. `cached` is the block
   * number + 1 (0 = nothing cached), so a zeroed or field-by-field-filled ky_rng is valid. Code
   * that changes seed or stream in place must zero `cached`. */
  uint64_t cached;
  uint32_t blk[4];
} ky_rng;

/* Stream ids used by the library, so that different consumers never share a sequence. */
enum {
  KY_RNG_STREAM_INIT = 1,       /* parameter initialisation */
  KY_RNG_STREAM_SAMPLER = 2,    /* epoch shuffles, oversampling */
  KY_RNG_STREAM_AUG = 3,        /* augmentation: stream is KY_RNG_STREAM_AUG + (sample << 8) */
  KY_RNG_STREAM_GBT = 4,        /* boosting: bagging, feature fraction, hyperparameters */
  KY_RNG_STREAM_TEST = 5,       /* test inputs */
};

static inline ky_rng ky_rng_make(uint64_t seed, uint64_t stream) { ky_rng r = {seed, stream, 0, 0, {0, 0, 0, 0}}; return r; }
static inline uint32_t ky_rng_u32(ky_rng *r) {
  uint64_t b = r->index >> 2;
  if (r->cached != b + 1) {
    uint32_t key[2] = {(uint32_t)r->seed, (uint32_t)(r->seed >> 32)};
    uint32_t ctr[4] = {(uint32_t)b, (uint32_t)(b >> 32), (uint32_t)r->stream, (uint32_t)(r->stream >> 32)};
    ky_philox4x32(r->blk, ctr, key);
    r->cached = b + 1;
  }
  return r->blk[r->index++ & 3];
}
static inline uint64_t ky_rng_u64(ky_rng *r) { uint64_t hi = ky_rng_u32(r); return (hi << 32) | ky_rng_u32(r); }
/* [0, 1) */
static inline float ky_rng_uniform(ky_rng *r) { return ky_u32_to_unit(ky_rng_u32(r)); }
/* [lo, hi) */
static inline float ky_rng_uniform_range(ky_rng *r, float lo, float hi) { return lo + (hi - lo) * ky_rng_uniform(r); }
/* Double precision uniform in [0, 1) from 53 bits. */
static inline double ky_rng_uniform_f64(ky_rng *r) { return (double)(ky_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }
/* Integer in [lo, hi) (hi > lo), unbiased by rejection. */
int64_t ky_rng_int(ky_rng *r, int64_t lo, int64_t hi);
/* Standard normal (Box-Muller on two 53-bit uniforms; consumes four words). */
float ky_rng_normal(ky_rng *r);
/* Fisher-Yates shuffle of n ints. */
void ky_rng_shuffle_int(ky_rng *r, int *a, size_t n);
/* Bernoulli(p). */
static inline int ky_rng_bernoulli(ky_rng *r, float p) { return ky_rng_uniform(r) < p; }

#endif

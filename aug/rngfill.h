/* Bulk draws for the augmentations: the same words as successive ky_rng_u32 calls, computed a
 * Philox block (4 words) at a time, and standard normals by Marsaglia & Tsang's ziggurat.
 * Internal to aug/; tested by tests/test_aug_pixel.c (normal moments and tails, determinism). */
#ifndef KY_AUG_RNGFILL_H
#define KY_AUG_RNGFILL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include "core/rng.h"
#include "core/status.h"
#ifdef __AVX2__
#include <immintrin.h>
#endif

/* Philox4x32-10 (core/philox.h) on 8 consecutive counters at once, written so that the compiler
 * can vectorise the lanes: out[4 j + i] is word i of block off0 + j. */
static inline void ky_aug_philox8(uint32_t out[32], const ky_rng *r, uint64_t off0) {
#ifdef __AVX2__
  /* 8 blocks in 32-bit lanes; _mm256_mul_epu32 multiplies the even lanes, so the products of the
   * odd lanes come from a 32-bit shift. */
  const __m256i M0 = _mm256_set1_epi32((int)0xD2511F53u), M1 = _mm256_set1_epi32((int)0xCD9E8D57u);
  __m256i c0 = _mm256_add_epi32(_mm256_set1_epi32((int)(uint32_t)off0), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  /* the low word may wrap inside the 8 blocks: carry into the high word per lane */
  __m256i carry = _mm256_cmpgt_epi32(_mm256_xor_si256(_mm256_set1_epi32((int)(uint32_t)off0), _mm256_set1_epi32((int)0x80000000u)),
                                     _mm256_xor_si256(c0, _mm256_set1_epi32((int)0x80000000u)));
  __m256i c1 = _mm256_sub_epi32(_mm256_set1_epi32((int)(uint32_t)(off0 >> 32)), carry);
  __m256i c2 = _mm256_set1_epi32((int)(uint32_t)r->stream), c3 = _mm256_set1_epi32((int)(uint32_t)(r->stream >> 32));
  uint32_t k0 = (uint32_t)r->seed, k1 = (uint32_t)(r->seed >> 32);
  for (int round = 0; round < 10; round++) {
    __m256i p0e = _mm256_mul_epu32(c0, M0), p0o = _mm256_mul_epu32(_mm256_srli_epi64(c0, 32), M0);
    __m256i p1e = _mm256_mul_epu32(c2, M1), p1o = _mm256_mul_epu32(_mm256_srli_epi64(c2, 32), M1);
    /* lo words: even lanes from p?e low halves, odd lanes from p?o low halves */
    __m256i lo0 = _mm256_blend_epi32(p0e, _mm256_slli_epi64(p0o, 32), 0xAA);
    __m256i hi0 = _mm256_blend_epi32(_mm256_srli_epi64(p0e, 32), p0o, 0xAA);
    __m256i lo1 = _mm256_blend_epi32(p1e, _mm256_slli_epi64(p1o, 32), 0xAA);
    __m256i hi1 = _mm256_blend_epi32(_mm256_srli_epi64(p1e, 32), p1o, 0xAA);
    __m256i n0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32((int)k0));
    __m256i n2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32((int)k1));
    c1 = lo1;
    c3 = lo0;
    c0 = n0;
    c2 = n2;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  uint32_t a0[8], a1[8], a2[8], a3[8];
  _mm256_storeu_si256((__m256i *)a0, c0);
  _mm256_storeu_si256((__m256i *)a1, c1);
  _mm256_storeu_si256((__m256i *)a2, c2);
  _mm256_storeu_si256((__m256i *)a3, c3);
  for (int j = 0; j < 8; j++) {
    out[4 * j] = a0[j];
    out[4 * j + 1] = a1[j];
    out[4 * j + 2] = a2[j];
    out[4 * j + 3] = a3[j];
  }
#else
  uint32_t c0[8], c1[8], c2[8], c3[8];
  for (int j = 0; j < 8; j++) {
    uint64_t off = off0 + (uint64_t)j;
    c0[j] = (uint32_t)off;
    c1[j] = (uint32_t)(off >> 32);
    c2[j] = (uint32_t)r->stream;
    c3[j] = (uint32_t)(r->stream >> 32);
  }
  uint32_t k0 = (uint32_t)r->seed, k1 = (uint32_t)(r->seed >> 32);
  for (int round = 0; round < 10; round++) {
    for (int j = 0; j < 8; j++) {
      uint64_t p0 = (uint64_t)0xD2511F53u * c0[j], p1 = (uint64_t)0xCD9E8D57u * c2[j];
      uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[j] ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3[j] ^ k1;
      c1[j] = (uint32_t)p1;
      c3[j] = (uint32_t)p0;
      c0[j] = n0;
      c2[j] = n2;
    }
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  for (int j = 0; j < 8; j++) {
    out[4 * j] = c0[j];
    out[4 * j + 1] = c1[j];
    out[4 * j + 2] = c2[j];
    out[4 * j + 3] = c3[j];
  }
#endif
}

static inline void ky_aug_fill_u32(ky_rng *r, uint32_t *out, size_t n) {
  size_t i = 0;
  while (i < n) {
    if ((r->index & 3) == 0 && n - i >= 32) {
      ky_aug_philox8(out + i, r, r->index >> 2);
      r->index += 32;
      i += 32;
    } else if ((r->index & 3) == 0 && n - i >= 4) {
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

/* Words of r read one by one, refilled 256 at a time. */
typedef struct {
  ky_rng *r;
  uint32_t buf[256];
  int pos;
} ky_aug_words;

static inline uint32_t ky_aug_word(ky_aug_words *w) {
  if (w->pos == 256) {
    ky_aug_fill_u32(w->r, w->buf, 256);
    w->pos = 0;
  }
  return w->buf[w->pos++];
}

/* (0, 1] from one word */
static inline double ky_aug_word_unit(ky_aug_words *w) { return ((ky_aug_word(w) >> 8) + 1) * (1.0 / 16777216.0); }

/* n standard normals: 128-layer ziggurat (Marsaglia & Tsang 2000), one 32-bit word per value in
 * ~99% of cases. Consumes whole blocks of 256 words from r, so the stream position after the call
 * depends only on the values drawn. */
static inline ky_status ky_aug_fill_normal(float *z, size_t n, ky_rng *r) {
  double kn[128], wn[128], fn[128];
  double dn = 3.442619855899, tn = dn, vn = 9.91256303526217e-3;
  const double m1 = 2147483648.0;
  double q = vn / exp(-.5 * dn * dn);
  kn[0] = (dn / q) * m1;
  kn[1] = 0;
  wn[0] = q / m1;
  wn[127] = dn / m1;
  fn[0] = 1.0;
  fn[127] = exp(-.5 * dn * dn);
  for (int i = 126; i >= 1; i--) {
    dn = sqrt(-2.0 * log(vn / dn + exp(-.5 * dn * dn)));
    kn[i + 1] = (dn / tn) * m1;
    tn = dn;
    fn[i] = exp(-.5 * dn * dn);
    wn[i] = dn / m1;
  }
  ky_aug_words *w = malloc(sizeof *w);
  if (!w) return ky_error(KY_ERR_NOMEM, "augmentation noise: no memory");
  w->r = r;
  w->pos = 256;
  for (size_t k = 0; k < n; k++) {
    for (;;) {
      int32_t hz = (int32_t)ky_aug_word(w);
      int iz = hz & 127;
      double ahz = fabs((double)hz);
      if (ahz < kn[iz]) { z[k] = (float)(hz * wn[iz]); break; }
      if (iz == 0) { /* the tail beyond 3.44 */
        double x, y;
        do {
          x = -log(ky_aug_word_unit(w)) / 3.442619855899;
          y = -log(ky_aug_word_unit(w));
        } while (y + y < x * x);
        z[k] = (float)(hz > 0 ? 3.442619855899 + x : -3.442619855899 - x);
        break;
      }
      double x = hz * wn[iz];
      if (fn[iz] + ky_aug_word_unit(w) * (fn[iz - 1] - fn[iz]) < exp(-.5 * x * x)) { z[k] = (float)x; break; }
    }
  }
  free(w);
  return KY_OK;
}

#endif

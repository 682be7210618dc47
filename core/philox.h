/* Philox4x32-10 counter-based generator as one inline function, shared by C and CUDA code so
 * that (seed, stream, offset) gives the same numbers on the CPU and on the GPU.
 * Tested by tests/test_core_rng.c (published known-answer vectors, CPU/CUDA equality on a GPU). */
#ifndef KY_PHILOX_H
#define KY_PHILOX_H

#include <stdint.h>

#ifdef __CUDACC__
#define KY_HD __host__ __device__ __forceinline__
#else
#define KY_HD static inline
#endif

/* One Philox4x32-10 block: 4 random 32-bit words for counter ctr[4] under key key[2]. */
KY_HD void ky_philox4x32(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3], k0 = key[0], k1 = key[1];
  for (int r = 0; r < 10; r++) {
    uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    c1 = (uint32_t)p1; c3 = (uint32_t)p0; c0 = n0; c2 = n2;
    k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
  }
  out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/* The karyon mapping: key = seed, counter = (offset lo, offset hi, stream lo, stream hi).
 * Word i of block `offset` is number 4*offset+i of the (seed, stream) sequence. */
KY_HD uint32_t ky_philox_word(uint64_t seed, uint64_t stream, uint64_t index) {
  uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  uint64_t off = index >> 2;
  uint32_t ctr[4] = {(uint32_t)off, (uint32_t)(off >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)};
  uint32_t out[4];
  ky_philox4x32(out, ctr, key);
  return out[index & 3];
}

/* Uniform float in [0, 1) from the top 24 bits (exact in fp32, same on both devices). */
KY_HD float ky_u32_to_unit(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

#endif

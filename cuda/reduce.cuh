/* Deterministic block reductions for the CUDA kernels: a fixed shuffle tree inside each warp, then
 * warp 0 combines the warp results in warp order. No atomics, so a given launch shape always adds
 * in the same order. Tested through the reductions of tests/test_cuda_ops.c. */
#ifndef KY_CUDA_REDUCE_CUH
#define KY_CUDA_REDUCE_CUH

#include <cuda_runtime.h>

/* Sum of v over the block; the result is valid in thread 0. blockDim.x must be a multiple of 32,
 * at most 1024; `sh` holds 32 doubles of shared memory. Every thread of the block must call it. */
__device__ __forceinline__ double ky_block_sum(double v, double *sh) {
  const unsigned full = 0xffffffffu;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(full, v, o);
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  __syncthreads();  /* sh may still be read by a previous call */
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < nw ? sh[lane] : 0.0;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(full, v, o);
  }
  return v;
}

/* Sum of v over one warp, fixed tree; valid in lane 0. */
__device__ __forceinline__ double ky_warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

/* Shape-only partition of n items into chunks of `threads * per` (per grows so that there are at most
 * max_chunks chunks): the order of additions depends on the problem size, never on the card. */
static inline size_t ky_chunk_len(size_t n, int threads, size_t per, size_t max_chunks) {
  size_t len = (size_t)threads * per;
  if ((n + len - 1) / len > max_chunks) {
    len = (n + max_chunks - 1) / max_chunks;
    len = (len + threads - 1) / threads * threads;
  }
  return len;
}

#endif

/* CUDA caching allocator: size-class free lists so that a warm training step never calls
 * cudaMalloc/cudaFree. Tested by tests/test_cuda_memory.c (reuse, stats, OOM message; skips without a GPU).
 *
 * Sizes round up to 512 B below 1 MiB and to 2 MiB above, so the same request sizes step after
 * step map to the same blocks. A free block is reused for a request of rounded size r when its
 * size lies in [r, 2r] (best fit). All work of a context runs on its one stream, so a block
 * released here may be handed out again at once: the stream orders the old use before the new.
 * Out of memory: the cache is returned to the driver and the cudaMalloc tried once more; then
 * KY_ERR_NOMEM names the bytes asked and the bytes free.
 * KY_CUDA_NO_CACHE=1 turns the cache off (exact sizes, cudaFree on release) so that
 * compute-sanitizer memcheck sees every out-of-bounds access and every use after release. */
#include <stdlib.h>
#include <string.h>

#include "cuda/check.cuh"

typedef struct {
  void *p;
  size_t size;   /* rounded size actually allocated */
  int used;
} ky_cuda_block;

struct ky_cuda_cache {
  ky_cuda_block *b;
  size_t n, cap;
  size_t in_use, reserved, peak;
  int off;   /* KY_CUDA_NO_CACHE=1 */
};

static const size_t KY_SMALL_LIMIT = (size_t)1 << 20;
static const size_t KY_SMALL_ROUND = 512;
static const size_t KY_LARGE_ROUND = (size_t)2 << 20;

static size_t round_size(const ky_cuda_cache *c, size_t bytes) {
  if (c->off) return bytes ? bytes : 1;
  if (bytes == 0) bytes = 1;
  size_t r = bytes <= KY_SMALL_LIMIT ? KY_SMALL_ROUND : KY_LARGE_ROUND;
  return (bytes + r - 1) / r * r;
}

extern "C" ky_status ky_cuda_cache_init_(ky_cuda *cu) {
  cu->cache = (ky_cuda_cache *)calloc(1, sizeof(ky_cuda_cache));
  KY_CHECK(cu->cache != NULL, KY_ERR_NOMEM, "ky_cuda_init: no host memory for the allocator");
  const char *env = getenv("KY_CUDA_NO_CACHE");
  cu->cache->off = env && env[0] == '1';
  return KY_OK;
}

/* Frees every block (used or not); only at context teardown. */
extern "C" void ky_cuda_cache_destroy_(ky_cuda *cu) {
  ky_cuda_cache *c = cu->cache;
  if (!c) return;
  for (size_t i = 0; i < c->n; i++) cudaFree(c->b[i].p);
  free(c->b);
  free(c);
  cu->cache = NULL;
}

static ky_status push_block(ky_cuda_cache *c, void *p, size_t size) {
  if (c->n == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 64;
    ky_cuda_block *nb = (ky_cuda_block *)realloc(c->b, cap * sizeof *nb);
    if (!nb) return ky_error(KY_ERR_NOMEM, "ky_cuda_malloc: no host memory for the block table");
    c->b = nb;
    c->cap = cap;
  }
  c->b[c->n].p = p;
  c->b[c->n].size = size;
  c->b[c->n].used = 1;
  c->n++;
  return KY_OK;
}

static void mark_used(ky_cuda_cache *c, ky_cuda_block *b) {
  b->used = 1;
  c->in_use += b->size;
  if (c->in_use > c->peak) c->peak = c->in_use;
}

extern "C" ky_status ky_cuda_malloc(ky_cuda *cu, void **p, size_t bytes) {
  KY_CUDA_CHECK_CTX(cu);
  KY_CHECK_NULL(p, "p");
  *p = NULL;
  ky_cuda_cache *c = cu->cache;
  size_t r = round_size(c, bytes);
  KY_CHECK(r >= bytes, KY_ERR_NOMEM, "ky_cuda_malloc: %zu bytes is too large", bytes);

  ky_cuda_block *best = NULL;
  for (size_t i = 0; i < c->n; i++) {
    ky_cuda_block *b = &c->b[i];
    if (c->off || b->used || b->size < r || b->size / 2 > r) continue;
    if (!best || b->size < best->size) best = b;
    if (best->size == r) break;
  }
  if (best) {
    mark_used(c, best);
    *p = best->p;
    return KY_OK;
  }

  void *q = NULL;
  cudaError_t e = cudaMalloc(&q, r);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();  /* not sticky; clear it before retrying */
    ky_cuda_trim(cu);
    e = cudaMalloc(&q, r);
  }
  if (e != cudaSuccess) {
    cudaGetLastError();
    size_t fr = 0, tot = 0;
    cudaMemGetInfo(&fr, &tot);
    if (e == cudaErrorMemoryAllocation)
      return ky_error(KY_ERR_NOMEM,
                      "ky_cuda_malloc: out of device memory: asked %zu bytes (%zu rounded), %zu bytes free "
                      "of %zu on device %d, %zu in use by karyon",
                      bytes, r, fr, tot, cu->device, c->in_use);
    return ky_error(KY_ERR_CUDA, "ky_cuda_malloc: cudaMalloc(%zu) failed: %s (%s)", r, cudaGetErrorName(e),
                    cudaGetErrorString(e));
  }
  ky_status s = push_block(c, q, r);
  if (s != KY_OK) {
    cudaFree(q);
    return s;
  }
  c->reserved += r;
  c->in_use += r;
  if (c->in_use > c->peak) c->peak = c->in_use;
  *p = q;
  return KY_OK;
}

extern "C" void ky_cuda_release(ky_cuda *cu, void *p) {
  if (!cu || !p) return;
  ky_cuda_cache *c = cu->cache;
  for (size_t i = c->n; i-- > 0;) {
    if (c->b[i].p == p) {
      if (c->b[i].used) {
        c->b[i].used = 0;
        c->in_use -= c->b[i].size;
      }
      if (c->off) {
        cudaFree(p);
        c->reserved -= c->b[i].size;
        c->b[i] = c->b[--c->n];
      }
      return;
    }
  }
  /* Not ours: ignored (a void function cannot report it; the memcheck tool would). */
}

extern "C" void ky_cuda_trim(ky_cuda *cu) {
  if (!cu || !cu->cache) return;
  ky_cuda_cache *c = cu->cache;
  size_t j = 0;
  for (size_t i = 0; i < c->n; i++) {
    if (c->b[i].used) {
      c->b[j++] = c->b[i];
    } else {
      cudaFree(c->b[i].p);  /* synchronises the device: work still using the block has finished */
      c->reserved -= c->b[i].size;
    }
  }
  c->n = j;
}

extern "C" void ky_cuda_mem_stats(const ky_cuda *cu, size_t *in_use, size_t *reserved, size_t *peak) {
  const ky_cuda_cache *c = cu ? cu->cache : NULL;
  if (in_use) *in_use = c ? c->in_use : 0;
  if (reserved) *reserved = c ? c->reserved : 0;
  if (peak) *peak = c ? c->peak : 0;
}

extern "C" ky_status ky_cuda_workspace(ky_cuda *cu, void **p, size_t bytes) {
  KY_CUDA_CHECK_CTX(cu);
  KY_CHECK_NULL(p, "p");
  if (cu->ws && cu->ws_bytes >= bytes) {
    *p = cu->ws;
    return KY_OK;
  }
  /* Stream order makes it safe to hand the old block back while kernels may still read it. */
  if (cu->ws) ky_cuda_release(cu, cu->ws);
  cu->ws = NULL;
  cu->ws_bytes = 0;
  KY_TRY(ky_cuda_malloc(cu, &cu->ws, bytes));
  cu->ws_bytes = round_size(cu->cache, bytes);
  *p = cu->ws;
  return KY_OK;
}

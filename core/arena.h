/* Bump allocator for per-step memory (activations, saved tensors, tape nodes): chunks are kept
 * across steps and rewound by ky_arena_reset, so a training step allocates nothing once warm.
 * Host arenas use malloc; device arenas take their chunks from the device's allocator (through its
 * function table, core/device.h; the CUDA caching allocator).
 * Tested by tests/test_core_tensor.c (alignment, growth, reset, peak). */
#ifndef KY_ARENA_H
#define KY_ARENA_H

#include <stddef.h>
#include "core/status.h"
#include "core/tensor.h"

typedef struct ky_arena_chunk ky_arena_chunk;
struct ky_cuda;
struct ky_devfns;

typedef struct {
  ky_device dev;
  struct ky_cuda *cu;        /* device arenas only */
  const struct ky_devfns *fns; /* device arenas only; NULL when this build lacks the device */
  ky_arena_chunk *chunks;    /* list, newest first */
  ky_arena_chunk *cur;
  size_t chunk_size;         /* default chunk size; larger requests get their own chunk */
  size_t used, peak;         /* bytes handed out since the last reset / ever */
} ky_arena;

void ky_arena_init(ky_arena *a, ky_device dev, struct ky_cuda *cu, size_t chunk_size);
/* 256-byte aligned (vector loads, coalescing). Memory is uninitialised. */
ky_status ky_arena_alloc(ky_arena *a, void **p, size_t bytes);
void ky_arena_reset(ky_arena *a);
void ky_arena_free(ky_arena *a);

#endif

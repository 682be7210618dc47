/* Chunked bump allocator; device chunks come from the device's allocator through its function
 * table (core/device.h). Tested by tests/test_core_tensor.c. */
#include "core/arena.h"

#include <stdlib.h>
#include "core/device.h"

struct ky_arena_chunk {
  ky_arena_chunk *next;
  char *base;      /* host or device memory */
  size_t size, off;
};

#define KY_ARENA_ALIGN 256

void ky_arena_init(ky_arena *a, ky_device dev, struct ky_cuda *cu, size_t chunk_size) {
  a->dev = dev;
  a->cu = cu;
  a->fns = dev == KY_DEV_CPU ? NULL : ky_device_fns(dev);
  a->chunks = a->cur = NULL;
  a->chunk_size = chunk_size ? chunk_size : ((size_t)64 << 20);
  a->used = a->peak = 0;
}

static ky_status chunk_new(ky_arena *a, ky_arena_chunk **out, size_t size) {
  ky_arena_chunk *c = calloc(1, sizeof *c);
  if (!c) return ky_error(KY_ERR_NOMEM, "arena: out of host memory");
  if (a->dev != KY_DEV_CPU) {
    if (!a->fns) {
      free(c);
      return ky_error(KY_ERR_CUDA, "arena: CUDA memory asked for in a build without CUDA");
    }
    void *p;
    ky_status s = a->fns->malloc(a->cu, &p, size);
    if (s != KY_OK) { free(c); return s; }
    c->base = p;
  } else {
    c->base = aligned_alloc(KY_ARENA_ALIGN, (size + KY_ARENA_ALIGN - 1) / KY_ARENA_ALIGN * KY_ARENA_ALIGN);
    if (!c->base) { free(c); return ky_error(KY_ERR_NOMEM, "arena: cannot allocate %zu bytes of host memory", size); }
  }
  c->size = size;
  *out = c;
  return KY_OK;
}

ky_status ky_arena_alloc(ky_arena *a, void **p, size_t bytes) {
  bytes = (bytes + KY_ARENA_ALIGN - 1) / KY_ARENA_ALIGN * KY_ARENA_ALIGN;
  if (bytes == 0) bytes = KY_ARENA_ALIGN;
  /* Walk forward through chunks kept from earlier steps before making a new one. */
  while (a->cur && a->cur->off + bytes > a->cur->size) {
    ky_arena_chunk *nx = NULL;
    for (ky_arena_chunk *c = a->chunks; c; c = c->next)
      if (c->next == a->cur) nx = c;   /* list is newest-first; "next in use order" is the predecessor */
    if (!nx) break;
    a->cur = nx;
    a->cur->off = 0;
  }
  if (!a->cur || a->cur->off + bytes > a->cur->size) {
    ky_arena_chunk *c = NULL;
    KY_TRY(chunk_new(a, &c, bytes > a->chunk_size ? bytes : a->chunk_size));
    c->next = a->chunks;
    a->chunks = c;
    a->cur = c;
  }
  *p = a->cur->base + a->cur->off;
  a->cur->off += bytes;
  a->used += bytes;
  if (a->used > a->peak) a->peak = a->used;
  return KY_OK;
}

void ky_arena_reset(ky_arena *a) {
  /* Restart from the oldest chunk (the tail of the newest-first list). */
  ky_arena_chunk *c = a->chunks;
  while (c && c->next) c = c->next;
  a->cur = c;
  if (c) c->off = 0;
  a->used = 0;
}

void ky_arena_free(ky_arena *a) {
  ky_arena_chunk *c = a->chunks;
  while (c) {
    ky_arena_chunk *n = c->next;
    if (a->dev != KY_DEV_CPU) {
      if (a->fns) a->fns->release(a->cu, c->base);
    } else {
      free(c->base);
    }
    free(c);
    c = n;
  }
  a->chunks = a->cur = NULL;
  a->used = 0;
}

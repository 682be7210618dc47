/* The CPU thread pool: one per context (ky_ctx.pool), shared by every CPU kernel and by the
 * per-image post-processing. A job is `nchunks` independent calls fn(arg, chunk, slot); the
 * calling thread works too, so a pool of N threads starts N - 1 workers. Chunks are handed out in
 * index order from a shared counter: which thread runs a chunk varies, what a chunk computes does
 * not, so callers that fix their chunk boundaries independently of the thread count (and never
 * reduce across chunks in arrival order) get bitwise identical results for any thread count.
 * `slot` (0 .. ky_pool_threads - 1) names the running thread, for per-thread scratch.
 * Tested by tests/test_core_pool.c; the kernels on it by tests/test_ops_threads.c. */
#ifndef KY_POOL_H
#define KY_POOL_H

#include <stddef.h>

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ky_pool ky_pool;
typedef ky_status (*ky_pool_fn)(void *arg, size_t chunk, int slot);

enum { KY_POOL_MAX_THREADS = 256 };

/* threads: 1 .. KY_POOL_MAX_THREADS (1 starts no worker: every job runs on the caller). */
ky_status ky_pool_create(ky_pool **pool, int threads);
void ky_pool_free(ky_pool *pool);
/* Threads a job may use, the caller included; 1 for a NULL pool. */
int ky_pool_threads(const ky_pool *pool);

/* Runs fn for every chunk in 0 .. nchunks-1 and returns when all are done. A NULL pool, one
 * thread, one chunk, or a call made while the pool is already running a job (a chunk calling back
 * in, or a second thread) runs the chunks on the caller, in order. A failing chunk's status is
 * returned, with its message moved to the caller's thread; chunks after a failed one may be
 * skipped, chunks before it always run, so the error reported is that of the lowest failing chunk
 * whatever the thread count. */
ky_status ky_pool_run(ky_pool *pool, size_t nchunks, ky_pool_fn fn, void *arg);

/* The thread count a context starts with: KY_THREADS when set (1 .. KY_POOL_MAX_THREADS, anything
 * else is an error naming the value), else the CPUs this process may run on (sched_getaffinity). */
ky_status ky_pool_default_threads(int *threads);

/* Splits [0, n) into runs of `per` items (the last one shorter) and calls fn(arg, lo, hi) for each
 * on the pool (fn never sees more than `per` items, whatever the thread count): for work that
 * cannot fail. */
typedef void (*ky_pool_range_fn)(void *arg, size_t lo, size_t hi);
void ky_pool_for(ky_pool *pool, size_t n, size_t per, ky_pool_range_fn fn, void *arg);

/* y[0, n) = v on the pool: the one fill that core/ (gradient buffers, zero_grad) and ops/
 * (ky_cpu_fill) share. */
void ky_pool_fill(ky_pool *pool, float *y, float v, size_t n);

/* Chunk helper: [*lo, *hi) = the chunk-th run of `per` items out of n (the last one shorter). */
static inline void ky_pool_range(size_t *lo, size_t *hi, size_t chunk, size_t per, size_t n) {
  *lo = chunk * per;
  *hi = *lo + per < n ? *lo + per : n;
}
static inline size_t ky_pool_chunks(size_t n, size_t per) { return (n + per - 1) / per; }

/* Items per chunk for work whose chunk width never changes a result (e.g. runs of channels, each
 * channel's sum one sequence whatever chunk holds it): n split evenly over the pool's threads,
 * rounded up to a multiple of `unit`. One thread then takes everything in one pass over memory
 * instead of n / unit strided passes. */
static inline size_t ky_pool_share(const ky_pool *pool, size_t n, size_t unit) {
  size_t t = (size_t)ky_pool_threads(pool), per = (n + t - 1) / t;
  return per ? (per + unit - 1) / unit * unit : unit;
}

#ifdef __cplusplus
}
#endif
#endif

/* The CPU thread pool (see core/pool.h): N - 1 pthread workers parked on a condition variable,
 * woken per job by a generation counter; chunks come from one atomic counter. Workers and the
 * caller spin briefly before sleeping, because kernels run back to back and a futex wake-up costs
 * more than many small jobs. Tested by tests/test_core_pool.c (and under ThreadSanitizer by
 * `make TSAN=1 test`); ky_pool_fill also by tests/test_core_params.c (a block of several chunks
 * zeroed on three threads). */
#include "core/pool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SPIN = 4000 }; /* polls before a thread sleeps: tens of microseconds */

typedef struct {
  ky_pool *pool;
  int slot;
  pthread_t th;
} worker;

struct ky_pool {
  int n;                      /* threads, caller included */
  worker *w;                  /* n - 1 workers */
  pthread_mutex_t mu;
  pthread_cond_t wake, done;
  atomic_uint_fast64_t gen;   /* bumped (under mu) to publish a job */
  atomic_int left;            /* workers still inside the current job */
  atomic_int busy;            /* a job is running: nested or concurrent calls run inline */
  int stop;                   /* under mu */
  /* the job, written before gen is bumped */
  ky_pool_fn fn;
  void *arg;
  size_t nchunks;
  atomic_size_t next;
  /* the lowest failing chunk (under mu) */
  atomic_size_t err_chunk;    /* SIZE_MAX: none */
  ky_status err;
  char errmsg[1024];
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static void record_error(ky_pool *p, size_t chunk, ky_status s) {
  pthread_mutex_lock(&p->mu);
  if (chunk < atomic_load(&p->err_chunk)) {
    atomic_store(&p->err_chunk, chunk);
    p->err = s;
    snprintf(p->errmsg, sizeof p->errmsg, "%s", ky_last_error());
  }
  pthread_mutex_unlock(&p->mu);
}

/* Takes chunks until none is left; chunks above a recorded failure are skipped. */
static void work(ky_pool *p, int slot) {
  size_t n = p->nchunks;
  for (;;) {
    size_t c = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
    if (c >= n) break;
    if (c > atomic_load_explicit(&p->err_chunk, memory_order_relaxed)) continue;
    ky_status s = p->fn(p->arg, c, slot);
    if (s != KY_OK) record_error(p, c, s);
  }
}

static void *worker_main(void *a) {
  worker *w = a;
  ky_pool *p = w->pool;
  uint_fast64_t seen = 0;
  for (;;) {
    uint_fast64_t g = atomic_load_explicit(&p->gen, memory_order_acquire);
    for (int i = 0; i < SPIN && g == seen; i++) {
      cpu_relax();
      g = atomic_load_explicit(&p->gen, memory_order_acquire);
    }
    if (g == seen) {
      pthread_mutex_lock(&p->mu);
      while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen && !p->stop)
        pthread_cond_wait(&p->wake, &p->mu);
      int stop = p->stop;
      pthread_mutex_unlock(&p->mu);
      if (stop && g == seen) return NULL;
    }
    seen = g;
    work(p, w->slot);
    if (atomic_fetch_sub_explicit(&p->left, 1, memory_order_acq_rel) == 1) {
      pthread_mutex_lock(&p->mu);
      pthread_cond_signal(&p->done);
      pthread_mutex_unlock(&p->mu);
    }
  }
}

static ky_status run_inline(size_t nchunks, ky_pool_fn fn, void *arg) {
  for (size_t c = 0; c < nchunks; c++) KY_TRY(fn(arg, c, 0));
  return KY_OK;
}

ky_status ky_pool_run(ky_pool *p, size_t nchunks, ky_pool_fn fn, void *arg) {
  KY_CHECK_NULL(fn, "fn");
  if (!p || p->n == 1 || nchunks <= 1) return run_inline(nchunks, fn, arg);
  int idle = 0;
  if (!atomic_compare_exchange_strong(&p->busy, &idle, 1)) return run_inline(nchunks, fn, arg);
  pthread_mutex_lock(&p->mu);
  p->fn = fn;
  p->arg = arg;
  p->nchunks = nchunks;
  atomic_store(&p->next, 0);
  atomic_store(&p->err_chunk, SIZE_MAX);
  atomic_store(&p->left, p->n - 1);
  atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  work(p, 0);
  for (int i = 0; i < SPIN && atomic_load_explicit(&p->left, memory_order_acquire) > 0; i++) cpu_relax();
  pthread_mutex_lock(&p->mu);
  while (atomic_load_explicit(&p->left, memory_order_acquire) > 0) pthread_cond_wait(&p->done, &p->mu);
  ky_status s = atomic_load(&p->err_chunk) == SIZE_MAX ? KY_OK : p->err;
  pthread_mutex_unlock(&p->mu);
  if (s != KY_OK) ky_error(s, "%s", p->errmsg);
  atomic_store(&p->busy, 0);
  return s;
}

typedef struct {
  ky_pool_range_fn fn;
  void *arg;
  size_t n, per;
} range_job;

static ky_status range_chunk(void *a, size_t c, int slot) {
  range_job *j = a;
  size_t lo, hi;
  ky_pool_range(&lo, &hi, c, j->per, j->n);
  j->fn(j->arg, lo, hi);
  return KY_OK;
}

void ky_pool_for(ky_pool *p, size_t n, size_t per, ky_pool_range_fn fn, void *arg) {
  if (!n) return;
  if (!per) per = 1;
  range_job j = {fn, arg, n, per};
  (void)ky_pool_run(p, ky_pool_chunks(n, per), range_chunk, &j); /* range_chunk never fails */
}

typedef struct {
  float *y;
  float v;
} fill_job;

static void fill_range(void *arg, size_t lo, size_t hi) {
  const fill_job *f = arg;
  float *y = f->y; /* in locals: stores to y[i] could otherwise alias f->v */
  const float v = f->v;
  for (size_t i = lo; i < hi; i++) y[i] = v;
}

void ky_pool_fill(ky_pool *pool, float *y, float v, size_t n) {
  fill_job f = {y, v};
  ky_pool_for(pool, n, (size_t)1 << 16, fill_range, &f);
}

int ky_pool_threads(const ky_pool *p) { return p ? p->n : 1; }

ky_status ky_pool_create(ky_pool **out, int threads) {
  KY_CHECK_NULL(out, "pool");
  *out = NULL;
  KY_CHECK(threads >= 1 && threads <= KY_POOL_MAX_THREADS, KY_ERR_ARG, "thread pool: %d threads, expected 1..%d",
           threads, KY_POOL_MAX_THREADS);
  ky_pool *p = calloc(1, sizeof *p);
  if (!p) return ky_error(KY_ERR_NOMEM, "thread pool: out of memory");
  p->n = threads;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->wake, NULL);
  pthread_cond_init(&p->done, NULL);
  atomic_init(&p->gen, 0);
  atomic_init(&p->left, 0);
  atomic_init(&p->busy, 0);
  atomic_init(&p->next, 0);
  atomic_init(&p->err_chunk, SIZE_MAX);
  if (threads > 1) {
    p->w = calloc((size_t)threads - 1, sizeof *p->w);
    if (!p->w) {
      ky_pool_free(p);
      return ky_error(KY_ERR_NOMEM, "thread pool: out of memory");
    }
  }
  for (int i = 0; i < threads - 1; i++) {
    p->w[i].pool = p;
    p->w[i].slot = i + 1;
    int e = pthread_create(&p->w[i].th, NULL, worker_main, &p->w[i]);
    if (e) {
      p->n = i + 1; /* the workers started so far are joined by free */
      ky_pool_free(p);
      return ky_error(KY_ERR_STATE, "thread pool: starting thread %d of %d failed: %s", i + 2, threads, strerror(e));
    }
  }
  *out = p;
  return KY_OK;
}

void ky_pool_free(ky_pool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->stop = 1;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->n - 1; i++) pthread_join(p->w[i].th, NULL);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->wake);
  pthread_cond_destroy(&p->done);
  free(p->w);
  free(p);
}

ky_status ky_pool_default_threads(int *threads) {
  KY_CHECK_NULL(threads, "threads");
  const char *e = getenv("KY_THREADS");
  if (e && *e) {
    char *end;
    errno = 0;
    long v = strtol(e, &end, 10);
    KY_CHECK(!errno && *end == 0 && v >= 1 && v <= KY_POOL_MAX_THREADS, KY_ERR_ARG,
             "KY_THREADS='%s': expected a thread count in 1..%d", e, KY_POOL_MAX_THREADS);
    *threads = (int)v;
    return KY_OK;
  }
  cpu_set_t set;
  int n = 1;
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
  *threads = n < 1 ? 1 : n > KY_POOL_MAX_THREADS ? KY_POOL_MAX_THREADS : n;
  return KY_OK;
}

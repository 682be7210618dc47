/* The CPU thread pool (core/pool.c): every chunk runs exactly once for odd chunk counts, zero
 * chunks, more threads than chunks; per-slot indices stay in range; the lowest failing chunk's
 * status and message reach the caller whatever the thread count; nested and concurrent calls run
 * inline; KY_THREADS and ky_ctx_set_threads validate their values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/pool.h"

typedef struct {
  atomic_int *hits;   /* per chunk */
  atomic_int bad_slot;
  int threads;
  size_t fail_from;   /* chunks >= fail_from with (chunk % 3 == 0) fail */
  ky_pool *pool;      /* for nested calls */
  atomic_int nested_ok;
} job;

static ky_status count_chunk(void *a, size_t c, int slot) {
  job *j = a;
  if (slot < 0 || slot >= j->threads) atomic_store(&j->bad_slot, 1);
  atomic_fetch_add(&j->hits[c], 1);
  if (c >= j->fail_from && c % 3 == 0) return ky_error(KY_ERR_NUMERIC, "chunk %zu failed", c);
  return KY_OK;
}

static void check_counts(int threads, size_t nchunks) {
  ky_pool *p;
  assert_int_equal(ky_pool_create(&p, threads), KY_OK);
  assert_int_equal(ky_pool_threads(p), threads);
  job j = {calloc(nchunks + 1, sizeof(atomic_int)), 0, threads, SIZE_MAX, NULL, 0};
  for (int rep = 0; rep < 3; rep++) /* the same pool, job after job */
    assert_int_equal(ky_pool_run(p, nchunks, count_chunk, &j), KY_OK);
  for (size_t c = 0; c < nchunks; c++) assert_int_equal(atomic_load(&j.hits[c]), 3);
  assert_int_equal(atomic_load(&j.bad_slot), 0);
  free(j.hits);
  ky_pool_free(p);
}

static void test_every_chunk_once(void **state) {
  static const int threads[] = {1, 2, 3, 7};
  static const size_t chunks[] = {0, 1, 2, 3, 5, 7, 13, 1000};
  for (size_t t = 0; t < 4; t++)
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) check_counts(threads[t], chunks[c]);
}

static void test_null_pool_runs_inline(void **state) {
  job j = {calloc(9, sizeof(atomic_int)), 0, 1, SIZE_MAX, NULL, 0};
  assert_int_equal(ky_pool_threads(NULL), 1);
  assert_int_equal(ky_pool_run(NULL, 9, count_chunk, &j), KY_OK);
  for (int c = 0; c < 9; c++) assert_int_equal(atomic_load(&j.hits[c]), 1);
  free(j.hits);
  assert_int_equal(ky_pool_run(NULL, 3, NULL, &j), KY_ERR_ARG);
}

static void test_error_is_lowest_failing_chunk(void **state) {
  static const int threads[] = {1, 2, 3, 7};
  for (size_t t = 0; t < 4; t++) {
    ky_pool *p;
    assert_int_equal(ky_pool_create(&p, threads[t]), KY_OK);
    for (size_t from = 0; from < 40; from += 7) {
      job j = {calloc(64, sizeof(atomic_int)), 0, threads[t], from, NULL, 0};
      ky_error_clear();
      assert_int_equal(ky_pool_run(p, 64, count_chunk, &j), KY_ERR_NUMERIC);
      size_t first = (from + 2) / 3 * 3; /* the lowest chunk >= from divisible by 3 */
      char want[64];
      snprintf(want, sizeof want, "chunk %zu failed", first);
      assert_string_equal(ky_last_error(), want);
      for (size_t c = 0; c <= first; c++) assert_int_equal(atomic_load(&j.hits[c]), 1); /* all before it ran */
      free(j.hits);
    }
    /* the pool still works after errors */
    job ok = {calloc(5, sizeof(atomic_int)), 0, threads[t], SIZE_MAX, NULL, 0};
    assert_int_equal(ky_pool_run(p, 5, count_chunk, &ok), KY_OK);
    free(ok.hits);
    ky_pool_free(p);
  }
}

/* A chunk that runs a job on the same pool: the inner job runs inline on that thread. */
static ky_status nested_chunk(void *a, size_t c, int slot) {
  job *j = a;
  atomic_int hits[4] = {0};
  job inner = {hits, 0, j->threads, SIZE_MAX, NULL, 0};
  KY_TRY(ky_pool_run(j->pool, 4, count_chunk, &inner));
  for (int i = 0; i < 4; i++)
    if (atomic_load(&hits[i]) != 1) return ky_error(KY_ERR_STATE, "nested chunk %d ran %d times", i, atomic_load(&hits[i]));
  atomic_fetch_add(&j->nested_ok, 1);
  return KY_OK;
}

static void test_nested_runs_inline(void **state) {
  ky_pool *p;
  assert_int_equal(ky_pool_create(&p, 3), KY_OK);
  job j = {NULL, 0, 3, SIZE_MAX, p, 0};
  assert_int_equal(ky_pool_run(p, 11, nested_chunk, &j), KY_OK);
  assert_int_equal(atomic_load(&j.nested_ok), 11);
  ky_pool_free(p);
}

/* Two threads sharing one pool: one gets the workers, the other runs inline; both complete. */
typedef struct { ky_pool *p; atomic_int *hits; ky_status s; } caller;
static void *call_many(void *a) {
  caller *c = a;
  job j = {c->hits, 0, ky_pool_threads(c->p), SIZE_MAX, NULL, 0};
  for (int rep = 0; rep < 50 && c->s == KY_OK; rep++) c->s = ky_pool_run(c->p, 17, count_chunk, &j);
  return NULL;
}

static void test_concurrent_callers(void **state) {
  ky_pool *p;
  assert_int_equal(ky_pool_create(&p, 2), KY_OK);
  atomic_int h1[17] = {0}, h2[17] = {0};
  caller a = {p, h1, KY_OK}, b = {p, h2, KY_OK};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, call_many, &a), 0);
  call_many(&b);
  pthread_join(t, NULL);
  assert_int_equal(a.s, KY_OK);
  assert_int_equal(b.s, KY_OK);
  for (int i = 0; i < 17; i++) {
    assert_int_equal(atomic_load(&h1[i]), 50);
    assert_int_equal(atomic_load(&h2[i]), 50);
  }
  ky_pool_free(p);
}

typedef struct { size_t n; atomic_int *hits; atomic_int too_big; size_t per; } range_job;
static void range_fn(void *a, size_t lo, size_t hi) {
  range_job *r = a;
  if (hi - lo > r->per || lo % r->per) atomic_store(&r->too_big, 1);
  for (size_t i = lo; i < hi; i++) atomic_fetch_add(&r->hits[i], 1);
}

static void test_for_splits_in_fixed_runs(void **state) {
  static const int threads[] = {1, 2, 7};
  for (size_t t = 0; t < 3; t++) {
    ky_pool *p;
    assert_int_equal(ky_pool_create(&p, threads[t]), KY_OK);
    static const size_t ns[] = {0, 1, 5, 64, 100, 1001};
    for (size_t k = 0; k < 6; k++) {
      range_job r = {ns[k], calloc(ns[k] + 1, sizeof(atomic_int)), 0, 16};
      ky_pool_for(p, ns[k], 16, range_fn, &r);
      for (size_t i = 0; i < ns[k]; i++) assert_int_equal(atomic_load(&r.hits[i]), 1);
      assert_int_equal(atomic_load(&r.too_big), 0);
      free(r.hits);
    }
    ky_pool_free(p);
  }
}

static void test_bad_thread_counts(void **state) {
  ky_pool *p = (ky_pool *)1;
  assert_int_equal(ky_pool_create(&p, 0), KY_ERR_ARG);
  assert_null(p);
  assert_int_equal(ky_pool_create(&p, KY_POOL_MAX_THREADS + 1), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "257 threads"));
  ky_ctx ctx;
  assert_int_equal(ky_ctx_init(&ctx, KY_DEV_CPU, 0), KY_OK);
  assert_true(ky_ctx_threads(&ctx) >= 1);
  assert_int_equal(ky_ctx_set_threads(&ctx, 3), KY_OK);
  assert_int_equal(ky_ctx_threads(&ctx), 3);
  assert_int_equal(ky_ctx_set_threads(&ctx, -2), KY_ERR_ARG);
  assert_int_equal(ky_ctx_threads(&ctx), 3); /* a bad count keeps the pool */
  ky_ctx_free(&ctx);
}

static void test_env_threads(void **state) {
  int n = 0;
  setenv("KY_THREADS", "5", 1);
  assert_int_equal(ky_pool_default_threads(&n), KY_OK);
  assert_int_equal(n, 5);
  ky_ctx ctx;
  assert_int_equal(ky_ctx_init(&ctx, KY_DEV_CPU, 0), KY_OK);
  assert_int_equal(ky_ctx_threads(&ctx), 5);
  ky_ctx_free(&ctx);
  static const char *bad[] = {"0", "-1", "two", "3x", "100000"};
  for (int i = 0; i < 5; i++) {
    setenv("KY_THREADS", bad[i], 1);
    assert_int_equal(ky_pool_default_threads(&n), KY_ERR_ARG);
    assert_non_null(strstr(ky_last_error(), "KY_THREADS"));
    assert_non_null(strstr(ky_last_error(), bad[i]));
    assert_int_equal(ky_ctx_init(&ctx, KY_DEV_CPU, 0), KY_ERR_ARG);
  }
  unsetenv("KY_THREADS");
  assert_int_equal(ky_pool_default_threads(&n), KY_OK);
  assert_true(n >= 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_chunk_once),
      cmocka_unit_test(test_null_pool_runs_inline),
      cmocka_unit_test(test_error_is_lowest_failing_chunk),
      cmocka_unit_test(test_nested_runs_inline),
      cmocka_unit_test(test_concurrent_callers),
      cmocka_unit_test(test_for_splits_in_fixed_runs),
      cmocka_unit_test(test_bad_thread_counts),
      cmocka_unit_test(test_env_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

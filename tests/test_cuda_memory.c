/* CUDA context and caching allocator: block reuse by size class, no new device memory once a
 * step's pattern is warm, trim, out-of-memory message, copies / memset, workspace, timers, device
 * facts, bad arguments. Prints one SKIPPED line and exits 0 when no GPU is present. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "cuda/cuda.h"
#include "cuda/kernels.h"

#define OK(call)                                                                        \
  do {                                                                                  \
    ky_status ok_s_ = (call);                                                           \
    if (ok_s_ != KY_OK) fail_msg("%s -> %s: %s", #call, ky_status_name(ok_s_), ky_last_error()); \
  } while (0)

static int setup(void **st) {
  ky_cuda *cu;
  if (ky_cuda_init(&cu, 0) != KY_OK) {
    fprintf(stderr, "ky_cuda_init: %s\n", ky_last_error());
    return -1;
  }
  *st = cu;
  return 0;
}
static int teardown(void **st) {
  ky_cuda_free((ky_cuda *)*st);
  return 0;
}

static void test_reuse_small(void **st) {
  ky_cuda *cu = (ky_cuda *)*st;
  size_t use, res, peak;
  void *a, *b, *c;
  OK(ky_cuda_malloc(cu, &a, 1000));
  ky_cuda_mem_stats(cu, &use, &res, &peak);
  assert_int_equal(use, 1024);  /* rounded up to 512 B */
  assert_int_equal(res, 1024);
  ky_cuda_release(cu, a);
  ky_cuda_mem_stats(cu, &use, &res, NULL);
  assert_int_equal(use, 0);
  assert_int_equal(res, 1024);  /* kept in the cache */
  OK(ky_cuda_malloc(cu, &b, 900)); /* same class */
  assert_ptr_equal(a, b);
  OK(ky_cuda_malloc(cu, &c, 900)); /* a is taken: a new block */
  assert_ptr_not_equal(b, c);
  ky_cuda_mem_stats(cu, &use, &res, &peak);
  assert_int_equal(use, 2048);
  assert_int_equal(peak, 2048);
  ky_cuda_release(cu, b);
  ky_cuda_release(cu, c);
  ky_cuda_release(cu, NULL);  /* ignored */
  ky_cuda_trim(cu);
  ky_cuda_mem_stats(cu, &use, &res, &peak);
  assert_int_equal(use, 0);
  assert_int_equal(res, 0);
  assert_int_equal(peak, 2048);
}

static void test_reuse_large(void **st) {
  ky_cuda *cu = (ky_cuda *)*st;
  const size_t MiB = (size_t)1 << 20;
  void *a, *b, *c;
  size_t use, res;
  OK(ky_cuda_malloc(cu, &a, 3 * MiB));
  ky_cuda_mem_stats(cu, &use, NULL, NULL);
  assert_int_equal(use, 4 * MiB);  /* 2 MiB granularity */
  ky_cuda_release(cu, a);
  OK(ky_cuda_malloc(cu, &b, 3 * MiB + MiB / 2));
  assert_ptr_equal(a, b);
  ky_cuda_release(cu, b);
  /* a 4 MiB block is not handed out for 9 MiB, nor wasted on a 1 MiB request (more than 2x) */
  OK(ky_cuda_malloc(cu, &c, 9 * MiB));
  assert_ptr_not_equal(c, a);
  ky_cuda_release(cu, c);
  OK(ky_cuda_malloc(cu, &b, MiB / 2));
  assert_ptr_not_equal(b, a);
  ky_cuda_release(cu, b);
  ky_cuda_trim(cu);
  ky_cuda_mem_stats(cu, &use, &res, NULL);
  assert_int_equal(use, 0);
  assert_int_equal(res, 0);
}

/* A "training step" that allocates the same sizes each time: after the first step the cache holds
 * them all and the reserved total stays put. */
static void test_warm_steps_do_not_grow(void **st) {
  ky_cuda *cu = (ky_cuda *)*st;
  const size_t sizes[] = {4, 1000, 4096, 65536, 1 << 20, (1 << 20) + 1, 5u << 20, 777, 33 << 20};
  enum { NS = sizeof sizes / sizeof *sizes };
  void *p[NS];
  size_t res_after_first = 0;
  for (int step = 0; step < 50; step++) {
    for (int i = 0; i < NS; i++) OK(ky_cuda_malloc(cu, &p[i], sizes[i]));
    for (int i = NS - 1; i >= 0; i--) ky_cuda_release(cu, p[i]);
    size_t res;
    ky_cuda_mem_stats(cu, NULL, &res, NULL);
    if (step == 0) res_after_first = res;
    else assert_int_equal(res, res_after_first);
  }
  ky_cuda_trim(cu);
}

static void test_out_of_memory(void **st) {
  ky_cuda *cu = (ky_cuda *)*st;
  void *p = (void *)0x1;
  const size_t huge = (size_t)1 << 50;  /* 1 PiB */
  assert_int_equal(ky_cuda_malloc(cu, &p, huge), KY_ERR_NOMEM);
  assert_null(p);
  const char *msg = ky_last_error();
  assert_non_null(strstr(msg, "asked 1125899906842624 bytes"));
  assert_non_null(strstr(msg, "bytes free"));
  /* the allocator keeps working afterwards */
  OK(ky_cuda_malloc(cu, &p, 100));
  ky_cuda_release(cu, p);
}

static void test_copies(void **st) {
  ky_cuda *cu = (ky_cuda *)*st;
  const size_t sizes[] = {1, 13, (1 << 20) + 3};
  for (int k = 0; k < 3; k++) {
    size_t n = sizes[k];
    unsigned char *h = (unsigned char *)malloc(n), *back = (unsigned char *)malloc(n);
    assert_non_null(h);
    assert_non_null(back);
    for (size_t i = 0; i < n; i++) h[i] = (unsigned char)(i * 131 + 7);
    void *d1, *d2;
    OK(ky_cuda_malloc(cu, &d1, n));
    OK(ky_cuda_malloc(cu, &d2, n));
    OK(ky_cuda_h2d(cu, d1, h, n));
    OK(ky_cuda_d2d(cu, d2, d1, n));
    memset(back, 0, n);
    OK(ky_cuda_d2h(cu, back, d2, n));
    assert_memory_equal(back, h, n);
    OK(ky_cuda_memset(cu, d2, 0x5a, n));
    OK(ky_cuda_d2h(cu, back, d2, n));
    for (size_t i = 0; i < n; i++)
      if (back[i] != 0x5a) fail_msg("memset: byte %zu is 0x%02x", i, back[i]);
    OK(ky_cuda_sync(cu));
    ky_cuda_release(cu, d1);
    ky_cuda_release(cu, d2);
    free(h);
    free(back);
  }
  /* zero bytes: nothing to do, even with NULL pointers */
  OK(ky_cuda_h2d(cu, NULL, NULL, 0));
  assert_int_equal(ky_cuda_d2h(cu, NULL, (void *)&sizes, 4), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "destination pointer is NULL"));
}

static void test_workspace(void **st) {
  ky_cuda *cu = (ky_cuda *)*st;
  void *a, *b, *c;
  OK(ky_cuda_workspace(cu, &a, 1000));
  OK(ky_cuda_workspace(cu, &b, 10));
  assert_ptr_equal(a, b);  /* a smaller request reuses the block */
  OK(ky_cuda_workspace(cu, &c, 10 << 20));
  unsigned char z[16] = {0};
  OK(ky_cuda_h2d(cu, (char *)c + (10 << 20) - 16, z, 16));  /* the whole size is usable */
}

static void test_timer_and_device(void **st) {
  ky_cuda *cu = (ky_cuda *)*st;
  char name[128] = "";
  int sm = 0;
  OK(ky_cuda_device_name(cu, name, sizeof name, &sm));
  assert_true(strlen(name) > 0);
  assert_true(sm >= 75);
  ky_cuda_timer *t;
  float ms = -1.f;
  OK(ky_cuda_timer_start(cu, &t));
  void *d;
  OK(ky_cuda_malloc(cu, &d, 64 << 20));
  OK(ky_cuda_memset(cu, d, 0, 64 << 20));
  OK(ky_cuda_timer_stop(cu, t, &ms));
  assert_true(ms >= 0.f);
  ky_cuda_release(cu, d);
  ky_cuda_set_tf32(cu, 1);
  assert_int_equal(ky_cuda_tf32(cu), sm >= 80);
  ky_cuda_set_tf32(cu, 0);
  assert_int_equal(ky_cuda_tf32(cu), 0);
  /* Deterministic (the convolution's fixed-rule AUTO) is the default; it reads back as set. */
  assert_int_equal(ky_cuda_deterministic(cu), 1);
  ky_cuda_set_deterministic(cu, 0);
  assert_int_equal(ky_cuda_deterministic(cu), 0);
  ky_cuda_set_deterministic(cu, 7);
  assert_int_equal(ky_cuda_deterministic(cu), 1);
  assert_int_equal(ky_cuda_deterministic(NULL), 0);
}

static void test_bad_device(void **st) {
  ky_cuda *cu2 = (ky_cuda *)0x1;
  char why[128];
  int n = ky_cuda_device_count(why, sizeof why);
  assert_int_equal(ky_cuda_init(&cu2, n + 3), KY_ERR_ARG);
  assert_null(cu2);
  assert_non_null(strstr(ky_last_error(), "present"));
  assert_int_equal(ky_cuda_malloc(NULL, (void **)&cu2, 4), KY_ERR_ARG);
}

/* KY_CUDA_SYNC=1: every launcher synchronises and checks; results are unchanged. */
static void test_sync_mode(void **st) {
  (void)st;
  setenv("KY_CUDA_SYNC", "1", 1);
  ky_cuda *cu;
  ky_status s = ky_cuda_init(&cu, 0);
  unsetenv("KY_CUDA_SYNC");
  OK(s);
  void *d;
  OK(ky_cuda_malloc(cu, &d, 1001 * sizeof(float)));
  OK(ky_cuda_fill(cu, (float *)d, 0.25f, 1001));
  OK(ky_cuda_scale_fwd(cu, (float *)d, (const float *)d, 4.f, 1001));
  float h[1001];
  OK(ky_cuda_d2h(cu, h, d, sizeof h));
  for (int i = 0; i < 1001; i++)
    if (h[i] != 1.f) fail_msg("sync mode: element %d is %g, expected 1", i, h[i]);
  ky_cuda_release(cu, d);
  ky_cuda_free(cu);
}

int main(void) {
  char why[256];
  if (ky_cuda_device_count(why, sizeof why) == 0) {
    printf("test_cuda_memory: SKIPPED: no CUDA GPU (%s)\n", why);
    return 0;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reuse_small),        cmocka_unit_test(test_reuse_large),
      cmocka_unit_test(test_warm_steps_do_not_grow), cmocka_unit_test(test_out_of_memory),
      cmocka_unit_test(test_copies),             cmocka_unit_test(test_workspace),
      cmocka_unit_test(test_timer_and_device),   cmocka_unit_test(test_bad_device),
      cmocka_unit_test(test_sync_mode),
  };
  return cmocka_run_group_tests_name("cuda_memory", tests, setup, teardown);
}

/* Tests for core/tensor, core/arena, core/ctx tensor creation and core/params (flat blocks,
 * views, ranges), including the error messages for bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/ctx.h"
#include "core/device.h"
#include "core/params.h"
#include "ops/ops.h"

static void test_arena_reuses_chunks(void **st) {
  ky_arena a;
  ky_arena_init(&a, KY_DEV_CPU, NULL, 4096);
  void *p1, *p2, *p3;
  assert_int_equal(ky_arena_alloc(&a, &p1, 100), KY_OK);
  assert_int_equal((uintptr_t)p1 % 256, 0);
  assert_int_equal(ky_arena_alloc(&a, &p2, 5000), KY_OK);   /* larger than a chunk: its own */
  assert_int_equal(ky_arena_alloc(&a, &p3, 3000), KY_OK);
  size_t peak = a.peak;
  ky_arena_reset(&a);
  void *q1, *q2, *q3;
  assert_int_equal(ky_arena_alloc(&a, &q1, 100), KY_OK);
  assert_ptr_equal(q1, p1);                                   /* same memory after a reset */
  assert_int_equal(ky_arena_alloc(&a, &q2, 5000), KY_OK);
  assert_int_equal(ky_arena_alloc(&a, &q3, 3000), KY_OK);
  assert_int_equal(a.peak, peak);
  memset(q2, 1, 5000);
  memset(q3, 2, 3000);
  ky_arena_free(&a);
}

static void test_tensor_basics(void **st) {
  ky_ctx ctx;
  assert_int_equal(ky_ctx_init(&ctx, KY_DEV_CPU, 0), KY_OK);
  float v[6] = {1, 2, 3, 4, 5, 6};
  int shape[2] = {2, 3};
  ky_tensor *t, *r;
  assert_int_equal(ky_tensor_from_host(&ctx, &t, KY_F32, 2, shape, v), KY_OK);
  assert_int_equal(ky_tensor_numel(t), 6);
  assert_int_equal(ky_tensor_bytes(t), 24);
  char d[64];
  assert_string_equal(ky_tensor_desc(t, d, sizeof d), "[2, 3] f32 cpu");
  int s2[2] = {3, 2};
  assert_int_equal(ky_reshape(&ctx, &r, t, 2, s2), KY_OK);
  assert_ptr_equal(r->data, t->data);                          /* a view, no copy */
  int bad[2] = {4, 2};
  assert_int_equal(ky_reshape(&ctx, &r, t, 2, bad), KY_ERR_SHAPE);
  assert_non_null(strstr(ky_last_error(), "6 elements"));
  float out[6];
  assert_int_equal(ky_tensor_to_host(&ctx, out, t), KY_OK);
  assert_memory_equal(out, v, sizeof v);
  float item;
  assert_int_equal(ky_tensor_item(&ctx, &item, t), KY_ERR_SHAPE);
  assert_int_equal(ky_tensor_new(&ctx, &t, KY_F32, 5, shape), KY_ERR_ARG);
  ky_ctx_free(&ctx);
}

static void test_cuda_context_without_gpu(void **st) {
  ky_ctx ctx;
  ky_status s = ky_ctx_init(&ctx, KY_DEV_CUDA, 0);
#ifndef KY_HAVE_CUDA
  assert_int_equal(s, KY_ERR_CUDA);
  assert_non_null(strstr(ky_last_error(), "no CUDA backend"));
#else
  /* With the CUDA backend compiled in, init works on a GPU host and fails cleanly elsewhere. */
  if (s == KY_OK) ky_ctx_free(&ctx);
  else assert_int_equal(s, KY_ERR_CUDA);
#endif
}

/* core/ reaches devices only through ky_device_fns: the host has no table, and a device this build
 * lacks gives a clear KY_ERR_CUDA from the arena and the parameter block instead of a wild pointer. */
static void test_device_table(void **st) {
  assert_null(ky_device_fns(KY_DEV_CPU));
  const ky_devfns *f = ky_device_fns(KY_DEV_CUDA);
#ifdef KY_HAVE_CUDA
  assert_non_null(f);
  assert_string_equal(f->name, "cuda");
  assert_non_null(f->open);
  assert_non_null(f->fill);
#else
  assert_null(f);
  ky_arena a;
  void *p = NULL;
  ky_arena_init(&a, KY_DEV_CUDA, NULL, 1024);
  assert_int_equal(ky_arena_alloc(&a, &p, 64), KY_ERR_CUDA);
  assert_non_null(strstr(ky_last_error(), "without CUDA"));
  ky_arena_free(&a);
  ky_params ps;
  ky_params_init(&ps, 1);
  int shape[1] = {8};
  assert_int_equal(ky_params_add(&ps, NULL, "w", 1, shape), KY_OK);
  assert_int_equal(ky_params_alloc(&ps, KY_DEV_CUDA, NULL), KY_ERR_CUDA);
  assert_non_null(strstr(ky_last_error(), "without CUDA"));
  ky_params_free(&ps);
#endif
}

static void test_params_flat_block(void **st) {
  ky_params ps;
  ky_params_init(&ps, 1);
  ky_tensor *w, *b;
  int ws[4] = {4, 3, 3, 2}, bs[1] = {4};
  assert_int_equal(ky_params_add(&ps, &w, "conv.weight", 4, ws), KY_OK);
  assert_int_equal(ky_params_add(&ps, &b, "conv.bias", 1, bs), KY_OK);
  assert_int_equal(ky_params_add(&ps, NULL, "conv.bias", 1, bs), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "duplicate name 'conv.bias'"));
  assert_int_equal(ky_params_alloc(&ps, KY_DEV_CPU, NULL), KY_OK);
  assert_int_equal(ky_params_add(&ps, NULL, "late", 1, bs), KY_ERR_STATE);
  assert_ptr_equal(w->data, ps.data);
  assert_int_equal((float *)b->data - ps.data, 128);           /* 72 floats rounded up to 64-float alignment */
  assert_ptr_equal(w->grad->data, ps.grad);
  assert_true(w->requires_grad);
  size_t f, e;
  ky_params_range(&ps, 1, 2, &f, &e);
  assert_int_equal(f, 128);
  assert_int_equal(e, ps.total);
  ((float *)w->grad->data)[3] = 5;
  assert_int_equal(ky_params_zero_grad(&ps, NULL), KY_OK);
  assert_true(((float *)w->grad->data)[3] == 0);
  assert_non_null(ky_params_find(&ps, "conv.weight"));
  assert_null(ky_params_find(&ps, "nope"));
  ky_params_free(&ps);
}

static void test_op_bad_inputs(void **st) {
  ky_ctx ctx;
  assert_int_equal(ky_ctx_init(&ctx, KY_DEV_CPU, 0), KY_OK);
  ky_tensor *x, *w, *y;
  assert_int_equal(ky_tensor_new4(&ctx, &x, KY_F32, 1, 8, 8, 3), KY_OK);
  assert_int_equal(ky_tensor_new4(&ctx, &w, KY_F32, 4, 3, 3, 5), KY_OK);
  w->name = "enc.conv1.weight";
  assert_int_equal(ky_conv2d(&ctx, &y, x, w, NULL, 1, 1, 1, 0), KY_ERR_SHAPE);
  assert_non_null(strstr(ky_last_error(), "enc.conv1.weight"));
  assert_non_null(strstr(ky_last_error(), "3 channels"));
  assert_int_equal(ky_conv2d(&ctx, &y, NULL, w, NULL, 1, 1, 1, 0), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "x is NULL"));
  assert_int_equal(ky_conv2d(&ctx, NULL, x, w, NULL, 1, 1, 1, 0), KY_ERR_ARG);
  assert_int_equal(ky_conv2d(NULL, &y, x, w, NULL, 1, 1, 1, 0), KY_ERR_ARG);
  assert_int_equal(ky_maxpool2d(&ctx, &y, x, 3, 0, 1), KY_ERR_ARG);
  ky_tensor *a, *b;
  assert_int_equal(ky_tensor_new4(&ctx, &a, KY_F32, 1, 2, 2, 3), KY_OK);
  assert_int_equal(ky_tensor_new4(&ctx, &b, KY_F32, 1, 2, 3, 3), KY_OK);
  assert_int_equal(ky_add(&ctx, &y, a, b), KY_ERR_SHAPE);
  assert_non_null(strstr(ky_last_error(), "[1, 2, 3, 3]"));
  ky_tensor *xs[2] = {a, b};
  assert_int_equal(ky_concat(&ctx, &y, xs, 2), KY_ERR_SHAPE);
  ky_tensor *u8;
  assert_int_equal(ky_tensor_new4(&ctx, &u8, KY_U8, 1, 2, 2, 3), KY_OK);
  assert_int_equal(ky_relu(&ctx, &y, u8), KY_ERR_SHAPE);
  assert_non_null(strstr(ky_last_error(), "expected f32"));
  ky_ctx_free(&ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_arena_reuses_chunks),
      cmocka_unit_test(test_tensor_basics),
      cmocka_unit_test(test_cuda_context_without_gpu),
      cmocka_unit_test(test_device_table),
      cmocka_unit_test(test_params_flat_block),
      cmocka_unit_test(test_op_bad_inputs),
  };
  return cmocka_run_group_tests_name("core_tensor", tests, NULL, NULL);
}

/* Tests for core/params on the CPU: views into one flat block (64-float aligned offsets, shapes,
 * names), gradient views into the gradient block, zeroing, get/set of whole blocks and the moments,
 * ranges over consecutive parameters, zeroing a large block on a thread pool, a buffer set without
 * gradients, and the errors (duplicate
 * name, bad shape, adding after allocation, moments before allocation). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "core/params.h"

static void test_block_and_views(void **st) {
  ky_params ps;
  ky_params_init(&ps, 1);
  ky_tensor *w, *b, *g;
  const int sw[4] = {4, 3, 3, 2}, sb[1] = {4}, sg[1] = {100};
  assert_int_equal(ky_params_add(&ps, &w, "conv.weight", 4, sw), KY_OK);
  assert_int_equal(ky_params_add(&ps, &b, "conv.bias", 1, sb), KY_OK);
  assert_int_equal(ky_params_add(&ps, &g, "bn.weight", 1, sg), KY_OK);
  assert_null(w->data);
  /* 72 floats -> 128, 4 -> 64, 100 -> 128 */
  assert_int_equal(ps.n, 3);
  assert_int_equal(ps.p[0].offset, 0);
  assert_int_equal(ps.p[1].offset, 128);
  assert_int_equal(ps.p[2].offset, 192);
  assert_int_equal(ps.total, 320);
  assert_int_equal(ps.p[0].numel, 72);
  assert_ptr_equal(ky_params_find(&ps, "conv.bias")->t, b);
  assert_null(ky_params_find(&ps, "conv.bia"));
  assert_int_equal(ky_params_alloc(&ps, KY_DEV_CPU, NULL), KY_OK);
  assert_ptr_equal(w->data, ps.data);
  assert_ptr_equal(b->data, ps.data + 128);
  assert_ptr_equal(g->data, ps.data + 192);
  assert_non_null(b->grad);
  assert_ptr_equal(b->grad->data, ps.grad + 128);
  assert_int_equal(b->grad->shape[0], 4);
  assert_true(w->requires_grad);
  for (size_t i = 0; i < ps.total; i++) { assert_true(ps.data[i] == 0); assert_true(ps.grad[i] == 0); }

  /* set / get whole blocks; the views see the values */
  float *h = malloc(ps.total * sizeof *h), *back = malloc(ps.total * sizeof *back);
  for (size_t i = 0; i < ps.total; i++) h[i] = (float)i * 0.5f;
  assert_int_equal(ky_params_set(&ps, ps.data, h), KY_OK);
  assert_true(((float *)b->data)[3] == 131 * 0.5f);
  assert_int_equal(ky_params_set(&ps, ps.grad, h), KY_OK);
  assert_int_equal(ky_params_zero_grad(&ps, NULL), KY_OK);
  assert_int_equal(ky_params_get(&ps, back, ps.grad), KY_OK);
  for (size_t i = 0; i < ps.total; i++) assert_true(back[i] == 0);
  assert_int_equal(ky_params_get(&ps, back, ps.data), KY_OK);
  assert_memory_equal(back, h, ps.total * sizeof *h);

  /* moments: m and v, vmax only with amsgrad; zeroed */
  assert_null(ps.m);
  assert_int_equal(ky_params_alloc_moments(&ps, 0), KY_OK);
  assert_non_null(ps.m);
  assert_non_null(ps.v);
  assert_null(ps.vmax);
  assert_int_equal(ky_params_alloc_moments(&ps, 1), KY_OK);
  assert_non_null(ps.vmax);
  assert_int_equal(ky_params_get(&ps, back, ps.v), KY_OK);
  for (size_t i = 0; i < ps.total; i++) assert_true(back[i] == 0);

  /* ranges: [first, end) of registered params i0..i1-1 */
  size_t first, end;
  ky_params_range(&ps, 1, 3, &first, &end);
  assert_int_equal(first, 128);
  assert_int_equal(end, 320);
  ky_params_range(&ps, 0, 1, &first, &end);
  assert_int_equal(end, 128);
  ky_params_range(&ps, 2, 2, &first, &end);
  assert_int_equal(first, end);

  /* no adding once the block exists */
  ky_tensor *x;
  assert_int_equal(ky_params_add(&ps, &x, "late", 1, sb), KY_ERR_STATE);
  assert_non_null(strstr(ky_last_error(), "'late'"));
  free(h);
  free(back);
  ky_params_free(&ps);
}

/* A block of several pool chunks (65536 floats each, the last one short), zeroed on 3 threads:
 * every float, the chunk edges included, is 0 and nothing past the block is written. */
static void test_zero_grad_on_pool(void **st) {
  ky_params ps;
  ky_params_init(&ps, 1);
  const int shape[2] = {3, 70001};
  assert_int_equal(ky_params_add(&ps, NULL, "big", 2, shape), KY_OK);
  assert_int_equal(ky_params_alloc(&ps, KY_DEV_CPU, NULL), KY_OK);
  for (size_t i = 0; i < ps.total; i++) ps.grad[i] = 1.0f + (float)(i % 7);
  ky_pool *pool;
  assert_int_equal(ky_pool_create(&pool, 3), KY_OK);
  assert_int_equal(ky_params_zero_grad(&ps, pool), KY_OK);
  for (size_t i = 0; i < ps.total; i++) assert_true(ps.grad[i] == 0.0f);
  ky_pool_free(pool);
  ky_params_free(&ps);
}

static void test_buffers_and_errors(void **st) {
  ky_params bs;
  ky_params_init(&bs, 0);
  ky_tensor *rm;
  const int s4[1] = {4}, bad[2] = {3, 0};
  assert_int_equal(ky_params_add(&bs, &rm, "bn.running_mean", 1, s4), KY_OK);
  assert_int_equal(ky_params_add(&bs, NULL, "bn.running_mean", 1, s4), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "duplicate name 'bn.running_mean'"));
  assert_int_equal(ky_params_add(&bs, NULL, "w", 2, bad), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "'w' dimension 1 is 0"));
  assert_int_equal(ky_params_add(&bs, NULL, "w", 0, bad), KY_ERR_ARG);
  assert_int_equal(ky_params_alloc_moments(&bs, 0), KY_ERR_STATE);
  assert_int_equal(ky_params_alloc(&bs, KY_DEV_CPU, NULL), KY_OK);
  assert_null(bs.grad);
  assert_null(rm->grad);
  assert_false(rm->requires_grad);
  assert_int_equal(ky_params_zero_grad(&bs, NULL), KY_ERR_STATE);
  assert_int_equal(ky_params_alloc_moments(&bs, 0), KY_ERR_STATE);
  assert_int_equal(ky_params_alloc(&bs, KY_DEV_CPU, NULL), KY_ERR_STATE);
  ky_params_free(&bs);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_block_and_views),
      cmocka_unit_test(test_zero_grad_on_pool),
      cmocka_unit_test(test_buffers_and_errors),
  };
  return cmocka_run_group_tests_name("core_params", tests, NULL, NULL);
}

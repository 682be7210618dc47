/* Tests for optim/: schedules (values and parsing errors), Keras-style decay, global-norm clipping,
 * optimiser range handling (a frozen prefix is not updated). Adam/SGD numerics against PyTorch are
 * in tests/test_parity_ops.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "core/params.h"
#include "optim/optim.h"

static void test_schedules(void **st) {
  ky_schedule s;
  assert_int_equal(ky_schedule_parse(&s, "exp:0.85"), KY_OK);
  assert_float_equal(ky_schedule_lr(&s, 5e-5f, 16, 0), 5e-5 * pow(0.85, 16), 1e-10);
  assert_int_equal(ky_schedule_parse(&s, "inverse:1e-4"), KY_OK);
  assert_float_equal(ky_schedule_lr(&s, 1e-4f, 0, 35000), 1e-4 / 4.5, 1e-10);
  assert_int_equal(ky_schedule_parse(&s, "steps:5e-6@2,2e-4@10,1e-4@40"), KY_OK);
  assert_float_equal(ky_schedule_lr(&s, 1, 0, 0), 5e-6, 1e-12);
  assert_float_equal(ky_schedule_lr(&s, 1, 2, 0), 2e-4, 1e-12);
  assert_float_equal(ky_schedule_lr(&s, 1, 39, 0), 1e-4, 1e-12);
  assert_float_equal(ky_schedule_lr(&s, 1, 100, 0), 1e-4, 1e-12);
  assert_int_equal(ky_schedule_parse(&s, "const"), KY_OK);
  assert_float_equal(ky_schedule_lr(&s, 3e-4f, 7, 9), 3e-4, 1e-12);
  assert_int_equal(ky_schedule_parse(&s, "exp:1.5"), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "exp:1.5"));
  assert_int_equal(ky_schedule_parse(&s, "steps:1e-4@10,2e-4@5"), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "must increase"));
  assert_int_equal(ky_schedule_parse(&s, "cosine"), KY_ERR_ARG);
}

static void make_params(ky_params *ps, ky_tensor **a, ky_tensor **b) {
  ky_params_init(ps, 1);
  int s[1] = {3};
  assert_int_equal(ky_params_add(ps, a, "enc.w", 1, s), KY_OK);
  assert_int_equal(ky_params_add(ps, b, "dec.w", 1, s), KY_OK);
  assert_int_equal(ky_params_alloc(ps, KY_DEV_CPU, NULL), KY_OK);
}

static void test_clipping(void **st) {
  ky_params ps;
  ky_tensor *a, *b;
  make_params(&ps, &a, &b);
  float *ga = a->grad->data, *gb = b->grad->data;
  ga[0] = 3; gb[0] = 4;                  /* norm 5 */
  float norm;
  assert_int_equal(ky_clip_grad_norm(&ps, 1.0f, &norm), KY_OK);
  assert_float_equal(norm, 5, 1e-6);
  assert_float_equal(ga[0], 3.0 / (5 + 1e-6), 1e-6);
  assert_float_equal(gb[0], 4.0 / (5 + 1e-6), 1e-6);
  assert_int_equal(ky_clip_grad_norm(&ps, 10.0f, &norm), KY_OK);   /* below the bound: unchanged */
  assert_float_equal(gb[0], 4.0 / (5 + 1e-6), 1e-6);
  gb[1] = NAN;
  assert_int_equal(ky_clip_grad_norm(&ps, 1.0f, &norm), KY_ERR_NUMERIC);
  assert_non_null(strstr(ky_last_error(), "NaN or Inf"));
  ky_params_free(&ps);
}

static void test_frozen_prefix_and_decay(void **st) {
  ky_params ps;
  ky_tensor *a, *b;
  make_params(&ps, &a, &b);
  for (int i = 0; i < 3; i++) {
    ((float *)a->grad->data)[i] = 1;
    ((float *)b->grad->data)[i] = 1;
  }
  size_t first, end;
  ky_params_range(&ps, 1, 2, &first, &end);   /* decoder only: the encoder is frozen */
  ky_optim o = ky_optim_sgd(0.5f, 0);
  o.keras_decay = 1.0f;
  assert_int_equal(ky_optim_step(&o, &ps, o.lr, first, end), KY_OK);
  assert_float_equal(((float *)a->data)[0], 0, 0);
  assert_float_equal(((float *)b->data)[0], -0.5, 1e-7);       /* step 1: lr / (1 + 0) */
  assert_int_equal(ky_optim_step(&o, &ps, o.lr, first, end), KY_OK);
  assert_float_equal(((float *)b->data)[0], -0.75, 1e-7);      /* step 2: lr / (1 + 1) */
  assert_int_equal(ky_optim_step(&o, &ps, o.lr, 5, 2), KY_ERR_ARG);
  assert_int_equal(ky_optim_step(&o, &ps, NAN, 0, 1), KY_ERR_ARG);
  ky_params_free(&ps);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_schedules),
      cmocka_unit_test(test_clipping),
      cmocka_unit_test(test_frozen_prefix_and_decay),
  };
  return cmocka_run_group_tests_name("optim", tests, NULL, NULL);
}

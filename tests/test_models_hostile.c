/* Hostile weight and checkpoint files: NaN or Inf weights are refused naming the tensor (they
 * used to load and predict nothing), an optimiser step that is negative or past 2^63 is refused
 * (10^20 resumed as "done", a negative step cut the logs), and a weights file without a training
 * config given to the predictor without --model fails without leaking (LeakSanitizer in
 * `make DEBUG=1 test`). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "models/checkpoint.h"
#include "models/model.h"
#include "optim/optim.h"
#include "pipeline/predict.h"
#include "tests/util_test.h"

static char *dir;

static ky_model *tiny(void) {
  ky_model_config cfg = ky_model_config_default();
  cfg.width = 0.125f;
  ky_model *m = NULL;
  if (ky_model_create(&m, "unet_resnet18", &cfg) != KY_OK) fail_msg("create: %s", ky_last_error());
  return m;
}

static void expect_err(ky_status s, const char *needle) {
  if (s == KY_OK) fail_msg("accepted; expected an error with '%s'", needle);
  if (!strstr(ky_last_error(), needle)) fail_msg("message '%s' lacks '%s'", ky_last_error(), needle);
}

/* Replaces the first occurrence of `from` in the file by `to` (same length). */
static void patch(const char *path, const char *from, const char *to) {
  char *b;
  size_t n;
  assert_int_equal(ky_file_read_all(path, &b, &n), KY_OK);
  char *at = memmem(b, n, from, strlen(from));
  assert_non_null(at);
  assert_int_equal(strlen(from), strlen(to));
  memcpy(at, to, strlen(to));
  assert_int_equal(ky_file_write_atomic(path, b, n), KY_OK);
  free(b);
}

static void test_non_finite_weights_refused(void **st) {
  char p[512];
  snprintf(p, sizeof p, "%s/w.safetensors", dir);
  ky_model *a = tiny(), *b = tiny();
  ky_params *ps = ky_model_params(a);
  float *h = malloc(ps->total * sizeof *h);
  assert_int_equal(ky_params_get(ps, h, ps->data), KY_OK);
  /* One element of the last parameter tensor becomes NaN, then (second round) -Inf. */
  const ky_param *last = &ps->p[ps->n - 1];
  for (int round = 0; round < 2; round++) {
    h[last->offset + last->numel / 2] = round ? -INFINITY : NAN;
    assert_int_equal(ky_params_set(ps, ps->data, h), KY_OK);
    assert_int_equal(ky_model_save(a, p), KY_OK);
    char want[300];
    snprintf(want, sizeof want, "tensor '%s' holds %s at element %zu", last->name, round ? "Inf" : "NaN", last->numel / 2);
    expect_err(ky_model_load(b, p, 0, NULL), want);
  }
  free(h);
  ky_model_free(a);
  ky_model_free(b);
}

static void test_optimiser_step_range(void **st) {
  char p[512];
  snprintf(p, sizeof p, "%s/c.safetensors", dir);
  ky_model *m = tiny();
  ky_optim o = ky_optim_adam(1e-3f);
  o.step = 1000000000000000000LL;   /* 19 digits, patched below */
  assert_int_equal(ky_checkpoint_save(p, m, &o, NULL), KY_OK);
  ky_optim r = ky_optim_adam(1e-3f);
  assert_int_equal(ky_checkpoint_load(p, m, &r, NULL), KY_OK);
  assert_true(r.step == o.step);
  patch(p, "1000000000000000000", "9999999999999999999");   /* past 2^63 - 1 */
  expect_err(ky_checkpoint_load(p, m, &r, NULL), "'optim.step' = '9999999999999999999', expected an integer in 0..2^63-1");
  patch(p, "9999999999999999999", "-999999999999999999");
  expect_err(ky_checkpoint_load(p, m, &r, NULL), "'optim.step' = '-999999999999999999'");
  ky_model_free(m);
}

static void test_weights_without_config_no_leak(void **st) {
  char p[512];
  snprintf(p, sizeof p, "%s/plain.safetensors", dir);
  ky_model *m = tiny();
  assert_int_equal(ky_model_save(m, p), KY_OK);
  ky_model_free(m);
  ky_predictor pr;
  memset(&pr, 0, sizeof pr);
  expect_err(ky_predictor_add(&pr, p, 1.0f, KY_DEV_CPU, NULL, NULL, NULL), "holds weights without a training config");
  assert_int_equal(pr.n, 0);
  ky_predictor_free(&pr);
}

KY_TEST_TMPDIR_FIXTURES("hostile_models")

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_non_finite_weights_refused),
      cmocka_unit_test(test_optimiser_step_range),
      cmocka_unit_test(test_weights_without_config_no_leak),
  };
  return cmocka_run_group_tests_name("models_hostile", tests, setup, teardown);
}

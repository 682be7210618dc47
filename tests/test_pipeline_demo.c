/* Tests for pipeline/demo: a shortened `karyon demo` (ky_demo_run with 60 steps instead of 600, on
 * the CPU) trains (the mean loss of its last 10 steps is below 0.9 times that of its first 10, and the
 * held-out loss falls), scores its held-out fold and the untrained network (DSB scores in [0, 1]
 * on the 2 fold-0 images), and writes what the README points people at. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/demo.h"
#include "tests/util_test.h"

enum { STEPS = 60 };

typedef struct { float loss[STEPS], val[8]; int n, n_val; } record;

static void on_step(void *ud, const ky_train_progress *p) {
  record *r = ud;
  if (r->n < STEPS) r->loss[r->n++] = p->loss;
}

static void on_epoch(void *ud, const ky_train_epoch *e) {
  record *r = ud;
  if (r->n_val < 8) r->val[r->n_val++] = e->val_loss;
}

static void test_short_demo(void **st) {
  char *dir = ky_test_tmpdir("demo"), p[700];
  record rec;
  memset(&rec, 0, sizeof rec);
  ky_demo_opts o = {"tests/fixtures/dsb_sample", dir, "cpu", STEPS, 1};
  ky_train_hooks hooks = {on_step, on_epoch, NULL, &rec, 0};
  ky_demo_result r;
  if (ky_demo_run(&o, &hooks, &r) != KY_OK) fail_msg("demo: %s", ky_last_error());
  assert_int_equal(rec.n, STEPS);
  double first = 0, last = 0;
  for (int i = 0; i < 10; i++) { first += rec.loss[i] / 10; last += rec.loss[STEPS - 10 + i] / 10; }
  print_message("demo, %d steps: loss %.4f -> %.4f, held-out loss %.4f -> %.4f, score %.4f (untrained %.4f)\n", STEPS,
                first, last, rec.val[0], rec.val[rec.n_val - 1], r.score, r.untrained_score);
  if (!(last < 0.9 * first)) fail_msg("the loss did not fall: %.4f over the first 10 steps, %.4f over the last 10", first, last);
  assert_int_equal(rec.n_val, 6);   /* an epoch every STEPS / 6 steps */
  if (!(rec.val[rec.n_val - 1] < rec.val[0])) fail_msg("held-out loss %.4f -> %.4f", rec.val[0], rec.val[rec.n_val - 1]);
  assert_int_equal(r.n_val, 2);
  assert_true(r.score >= 0 && r.score <= 1);
  assert_true(r.untrained_score >= 0 && r.untrained_score <= 1);
  assert_string_equal(r.device, "cpu");
  assert_non_null(strstr(r.model, "unet_resnet18"));
  const char *files[] = {"train/curve.png", "train/last.safetensors", "train/epochs.csv", "predict/submission.csv",
                         "predict/overlay/13c8ff1f49886e91c98ce795c93648ad8634c782ff57eb928ce29496b0425057.png",
                         "untrained/submission.csv"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, files[i]);
    if (access(p, R_OK) != 0) fail_msg("demo did not write %s", files[i]);
  }
  /* A device it cannot have is refused by name. */
  ky_demo_opts bad = o;
  bad.device = "cuda";
#ifndef KY_HAVE_CUDA
  assert_int_equal(ky_demo_run(&bad, NULL, &r), KY_ERR_CUDA);
  assert_non_null(strstr(ky_last_error(), "cuda"));
#endif
  ky_test_rmdir(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_short_demo)};
  return cmocka_run_group_tests_name("pipeline_demo", tests, NULL, NULL);
}

/* Finite-difference gradient checks of every op and loss in the op-case table (tests/optable_cases.c),
 * one named cmocka test per row, plus proof that the check catches a planted wrong backward. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>

#include "tests/optable.h"

static void run_case(void **state) {
  const ky_opcase *c = *state;
  ky_gradcheck_report rep;
  ky_status s = ky_gradcheck(&rep, c, 1234);
  if (s != KY_OK) fail_msg("%s: %s", c->name, ky_last_error());
  if (rep.failed) fail_msg("%s: %d of %d elements wrong; first: %s", c->name, rep.failed, rep.checked, rep.first_failure);
  /* Kink skips must stay rare, or the check would be vacuous. */
  if (rep.checked == 0 || rep.skipped * 4 > rep.checked)
    fail_msg("%s: only %d elements checked, %d skipped near kinks", c->name, rep.checked, rep.skipped);
  /* At least 16 checked elements with a gradient well above the noise floor (mostly-zero
   * gradients such as max-pool's are sampled where they are non-zero). */
  print_message("%s: %d checked, %d meaningful, %d non-zero\n", c->name, rep.checked, rep.meaningful, rep.nonzero);
  if (rep.meaningful < 16)
    fail_msg("%s: only %d meaningful elements checked (%d checked, %d with a non-zero gradient)", c->name, rep.meaningful,
             rep.checked, rep.nonzero);
}

static void test_planted_bug_is_caught(void **state) {
  ky_gradcheck_report rep;
  assert_int_equal(ky_gradcheck(&rep, &ky_opcase_planted_bug, 1234), KY_OK);
  assert_true(rep.checked > 0);
  /* Inputs are positive, so every element's gradient is doubled and every one must be flagged. */
  assert_int_equal(rep.failed, rep.checked);
  assert_true(rep.worst_ratio > 10);
}

int main(void) {
  int n = 0;
  while (ky_opcases[n].name) n++;
  struct CMUnitTest *tests = calloc((size_t)n + 1, sizeof *tests);
  int k = 0;
  for (int i = 0; i < n; i++) {
    if (ky_opcases[i].bench) continue;
    tests[k].name = ky_opcases[i].name;
    tests[k].test_func = run_case;
    tests[k].initial_state = (void *)&ky_opcases[i];
    k++;
  }
  tests[k].name = "planted wrong backward is caught";
  tests[k].test_func = test_planted_bug_is_caught;
  k++;
  int rc = _cmocka_run_group_tests("ops_gradcheck", tests, (size_t)k, NULL, NULL);
  free(tests);
  return rc;
}

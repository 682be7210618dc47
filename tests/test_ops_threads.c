/* Thread-count invariance of the CPU backend: every op-table row (tests/optable_cases.c) and a set
 * of larger rows that reach the multi-tile, multi-round, multi-band and multi-block paths of the
 * kernels run forward and backward at 1, 2, 3 and 7 threads; outputs, input gradients and in-place
 * updates (batch-norm running statistics) must be bitwise equal to the one-thread run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/pool.h"
#include "losses/losses.h"
#include "ops/ops.h"
#include "tests/optable.h"

/* One run: the output, then per input its gradient (or nothing) and its data after the run. */
typedef struct {
  void *buf[1 + 2 * KY_CASE_MAX_IN];
  size_t bytes[1 + 2 * KY_CASE_MAX_IN];
} run_result;

static void result_free(run_result *r) {
  for (int i = 0; i < 1 + 2 * KY_CASE_MAX_IN; i++) free(r->buf[i]);
  memset(r, 0, sizeof *r);
}

static ky_status grab(run_result *r, int slot, ky_ctx *ctx, const ky_tensor *t) {
  r->bytes[slot] = ky_tensor_bytes(t);
  r->buf[slot] = malloc(r->bytes[slot] ? r->bytes[slot] : 1);
  if (!r->buf[slot]) return ky_error(KY_ERR_NOMEM, "threads test: out of memory");
  return ky_tensor_to_host(ctx, r->buf[slot], t);
}

static ky_status run_at(run_result *res, const ky_opcase *c, int threads) {
  memset(res, 0, sizeof *res);
  ky_ctx ctx;
  KY_TRY(ky_ctx_init(&ctx, KY_DEV_CPU, 0));
  ky_opcase_inputs in;
  float *r = NULL;
  ky_status s = ky_ctx_set_threads(&ctx, threads);
  if (s == KY_OK) s = ky_opcase_make_inputs(&in, c, 4321);
  if (s != KY_OK) {
    ky_ctx_free(&ctx);
    return s;
  }
  ky_tensor *t[KY_CASE_MAX_IN], *y, *dy;
  if ((s = ky_opcase_upload(&ctx, t, c, &in, 1)) != KY_OK) goto done;
  if ((s = c->build(&ctx, c, t, &y)) != KY_OK) goto done;
  if ((s = grab(res, 0, &ctx, y)) != KY_OK) goto done;
  if (y->requires_grad) {
    size_t ny = ky_tensor_numel(y);
    r = malloc(ny * sizeof *r);
    if (!r) { s = ky_error(KY_ERR_NOMEM, "threads test: out of memory"); goto done; }
    ky_rng rr = ky_rng_make(99, KY_RNG_STREAM_TEST);
    for (size_t i = 0; i < ny; i++) r[i] = ky_rng_uniform_range(&rr, -1, 1);
    if ((s = ky_tensor_from_host(&ctx, &dy, KY_F32, y->ndim, y->shape, r)) != KY_OK) goto done;
    if ((s = ky_backward_from(&ctx, y, dy)) != KY_OK) goto done;
  }
  for (int i = 0; i < c->n_in; i++) {
    if (t[i]->grad && (s = grab(res, 1 + 2 * i, &ctx, t[i]->grad)) != KY_OK) goto done;
    if ((s = grab(res, 2 + 2 * i, &ctx, t[i])) != KY_OK) goto done;
  }
done:
  free(r);
  ky_opcase_free_inputs(&in);
  ky_ctx_free(&ctx);
  return s;
}

static const char *slot_name(int slot, char *b, size_t n) {
  if (slot == 0) snprintf(b, n, "output");
  else snprintf(b, n, "%s of input %d", slot % 2 ? "gradient" : "data after the run", (slot - 1) / 2);
  return b;
}

static void run_case(void **state) {
  const ky_opcase *c = *state;
  static const int counts[] = {2, 3, 7};
  run_result ref, got;
  if (run_at(&ref, c, 1) != KY_OK) fail_msg("%s at 1 thread: %s", c->name, ky_last_error());
  assert_non_null(ref.buf[0]);
  int grads = 0;
  for (int i = 0; i < c->n_in; i++) grads += ref.buf[1 + 2 * i] != NULL;
  if (c->diff && !grads) fail_msg("%s: no gradient reached any input", c->name);
  for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
    if (run_at(&got, c, counts[k]) != KY_OK) fail_msg("%s at %d threads: %s", c->name, counts[k], ky_last_error());
    for (int slot = 0; slot < 1 + 2 * KY_CASE_MAX_IN; slot++) {
      char nm[64];
      if ((ref.buf[slot] == NULL) != (got.buf[slot] == NULL) || ref.bytes[slot] != got.bytes[slot])
        fail_msg("%s: %s present at 1 thread but not at %d (or sizes differ)", c->name, slot_name(slot, nm, sizeof nm),
                 counts[k]);
      if (!ref.buf[slot] || !memcmp(ref.buf[slot], got.buf[slot], ref.bytes[slot])) continue;
      size_t i = 0;
      while (((unsigned char *)ref.buf[slot])[i] == ((unsigned char *)got.buf[slot])[i]) i++;
      fail_msg("%s: %s differs at %d threads from 1 thread (first at byte %zu of %zu)", c->name,
               slot_name(slot, nm, sizeof nm), counts[k], i, ref.bytes[slot]);
    }
    result_free(&got);
  }
  result_free(&ref);
}

int main(void) {
  int n = 0;
  while (ky_opcases[n].name) n++;
  size_t nbig = 0;
  while (ky_opcases_large[nbig].name) nbig++;
  struct CMUnitTest *tests = calloc((size_t)n + nbig, sizeof *tests);
  if (!tests) return 1;
  int k = 0;
  for (int i = 0; i < n; i++, k++) {
    tests[k].name = ky_opcases[i].name;
    tests[k].test_func = run_case;
    tests[k].initial_state = (void *)&ky_opcases[i];
  }
  for (size_t i = 0; i < nbig; i++, k++) {
    tests[k].name = ky_opcases_large[i].name;
    tests[k].test_func = run_case;
    tests[k].initial_state = (void *)&ky_opcases_large[i];
  }
  int rc = _cmocka_run_group_tests("ops_threads", tests, (size_t)k, NULL, NULL);
  free(tests);
  return rc;
}

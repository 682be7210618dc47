/* CPU-vs-CUDA mode of the op-case table (tests/optable_cases.c): every row runs forward and
 * backward on the CPU reference and on the GPU from the same inputs and upstream gradient; the
 * GPU's step arena is poisoned with NaN first, so an element a kernel forgets to write fails.
 * Outputs, input gradients and in-place updates (batch-norm running statistics) are compared.
 * Skips with one line when no GPU is present. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda.h"
#include "tests/optable.h"
#include "tests/util_test.h"

typedef struct {
  float *y;                    /* output */
  float *g[KY_CASE_MAX_IN];    /* gradients of differentiable inputs */
  float *after[KY_CASE_MAX_IN];/* f32 inputs after the call (in-place updates) */
  size_t ny;
} run_result;

static void free_result(run_result *r) {
  free(r->y);
  for (int i = 0; i < KY_CASE_MAX_IN; i++) { free(r->g[i]); free(r->after[i]); }
}

static ky_status run_on(ky_device dev, const ky_opcase *c, const ky_opcase_inputs *in, uint64_t seed, run_result *res) {
  memset(res, 0, sizeof *res);
  ky_ctx ctx;
  KY_TRY(ky_ctx_init(&ctx, dev, 0));
  ky_status s;
  if (dev == KY_DEV_CUDA) {
    ky_cuda_set_tf32(ctx.cu, 0);
    /* Poison: fill a large arena chunk with 0xFF bytes (a NaN pattern), then rewind. */
    void *p;
    size_t poison = (size_t)256 << 20;
    if ((s = ky_ctx_alloc(&ctx, &p, poison)) != KY_OK) goto out;
    if ((s = ky_cuda_memset(ctx.cu, p, 0xFF, poison)) != KY_OK) goto out;
    ky_ctx_reset(&ctx);
  }
  ky_tensor *t[KY_CASE_MAX_IN], *y, *dy;
  if ((s = ky_opcase_upload(&ctx, t, c, in, 1)) != KY_OK) goto out;
  if ((s = c->build(&ctx, c, t, &y)) != KY_OK) goto out;
  res->ny = ky_tensor_numel(y);
  float *r = malloc(res->ny * sizeof(float));
  res->y = malloc(res->ny * sizeof(float));
  ky_rng rr = ky_rng_make(seed + 1, KY_RNG_STREAM_TEST);
  for (size_t i = 0; i < res->ny; i++) r[i] = ky_rng_uniform_range(&rr, -1, 1);
  s = ky_tensor_to_host(&ctx, res->y, y);
  if (s == KY_OK) s = ky_tensor_from_host(&ctx, &dy, KY_F32, y->ndim, y->shape, r);
  free(r);
  if (s == KY_OK && y->requires_grad) s = ky_backward_from(&ctx, y, dy);
  for (int i = 0; s == KY_OK && i < c->n_in; i++) {
    if (c->dtype[i] != KY_F32) continue;
    res->after[i] = malloc(in->numel[i] * sizeof(float));
    s = ky_tensor_to_host(&ctx, res->after[i], t[i]);
    if (s == KY_OK && ((c->diff >> i) & 1) && t[i]->grad) {
      res->g[i] = malloc(in->numel[i] * sizeof(float));
      s = ky_tensor_to_host(&ctx, res->g[i], t[i]->grad);
    }
  }
out:
  ky_ctx_free(&ctx);
  return s;
}

static void compare(const char *what, const char *name, const float *gpu, const float *cpu, size_t n, double rtol) {
  double amax = 0;
  for (size_t i = 0; i < n; i++) amax = fmax(amax, fabs(cpu[i]));
  size_t w;
  double e = ky_test_max_err(gpu, cpu, n, rtol * fmax(amax, 1e-3), rtol, &w);
  if (e > 1) fail_msg("%s: %s differs at %zu: gpu %.9g cpu %.9g (tolerance %.2g relative)", name, what, w, gpu[w], cpu[w], rtol);
}

static void run_case(void **state) {
  const ky_opcase *c = *state;
  ky_opcase_inputs in;
  assert_int_equal(ky_opcase_make_inputs(&in, c, 4321), KY_OK);
  run_result cpu, gpu;
  if (run_on(KY_DEV_CPU, c, &in, 4321, &cpu) != KY_OK) fail_msg("%s on the CPU: %s", c->name, ky_last_error());
  if (run_on(KY_DEV_CUDA, c, &in, 4321, &gpu) != KY_OK) fail_msg("%s on the GPU: %s", c->name, ky_last_error());
  /* fp32 with a different summation order: relative 1e-4 of the largest value (reductions up to
   * a few thousand terms), unless the row states its own. */
  double rtol = c->tol > 0 ? c->tol : 1e-4;
  assert_int_equal(gpu.ny, cpu.ny);
  compare("output", c->name, gpu.y, cpu.y, cpu.ny, rtol);
  for (int i = 0; i < c->n_in; i++) {
    char what[64];
    if (cpu.g[i]) {
      if (!gpu.g[i]) fail_msg("%s: no GPU gradient for input %d", c->name, i);
      snprintf(what, sizeof what, "gradient of input %d", i);
      compare(what, c->name, gpu.g[i], cpu.g[i], in.numel[i], rtol);
    }
    if (cpu.after[i]) {
      snprintf(what, sizeof what, "input %d after the call", i);
      compare(what, c->name, gpu.after[i], cpu.after[i], in.numel[i], rtol);
    }
  }
  free_result(&cpu);
  free_result(&gpu);
  ky_opcase_free_inputs(&in);
}

int main(void) {
  char why[256] = "";
  if (ky_cuda_device_count(why, sizeof why) <= 0) {
    printf("test_cuda_optable: SKIPPED: no CUDA GPU (%s)\n", why);
    return 0;
  }
  int n = 0;
  while (ky_opcases[n].name) n++;
  struct CMUnitTest *tests = calloc((size_t)n, sizeof *tests);
  int k = 0;
  for (int i = 0; i < n; i++) {
    if (ky_opcases[i].bench) continue;
    tests[k].name = ky_opcases[i].name;
    tests[k].test_func = run_case;
    tests[k].initial_state = (void *)&ky_opcases[i];
    k++;
  }
  int rc = _cmocka_run_group_tests("cuda_optable", tests, (size_t)k, NULL, NULL);
  free(tests);
  return rc;
}

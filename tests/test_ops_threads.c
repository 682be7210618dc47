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

/* ---- larger rows: several tiles, rounds, column blocks, bands, channel blocks ---------------- */
static ky_status b_conv(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) {
  /* iparam: stride, pad, dil, relu, has_bias */
  return ky_conv2d(ctx, out, in[0], in[1], c->iparam[4] ? in[2] : NULL, c->iparam[0], c->iparam[1], c->iparam[2],
                   c->iparam[3]);
}
static ky_status b_bn(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) {
  int old = ctx->training;
  ctx->training = c->iparam[0];
  ky_status s = ky_batchnorm2d(ctx, out, in[0], in[1], in[2], in[3], in[4], 1e-5f, 0.1f);
  ctx->training = old;
  return s;
}
static ky_status b_maxpool(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) {
  return ky_maxpool2d(ctx, out, in[0], c->iparam[0], c->iparam[1], c->iparam[2]);
}
static ky_status b_bilinear(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) {
  return ky_upsample_bilinear2(ctx, out, in[0]);
}
static ky_status b_nearest(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) {
  return ky_upsample_nearest(ctx, out, in[0], c->iparam[0]);
}
static ky_status b_softmax_dice(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) {
  return ky_loss_softmax_dice(ctx, out, NULL, in[0], in[1]);
}
static ky_status b_sigmoid_dice(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) {
  return ky_loss_sigmoid_dice(ctx, out, in[0], in[1], 0.5f);
}
static ky_status b_focal(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) {
  return ky_loss_focal_logits(ctx, out, in[0], in[1], c->iparam[0], c->fparam[0], c->fparam[1]);
}
static ky_status b_gap(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) { return ky_global_avgpool(ctx, out, in[0]); }
static ky_status b_concat(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) { return ky_concat(ctx, out, in, c->n_in); }
static ky_status b_sigmoid(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out) { return ky_sigmoid(ctx, out, in[0]); }

#define X4(n, h, w, c) {n, h, w, c}
#define V1(c) {c}
#define CONV(name, X, W, K, s, p, d, relu)                                                                         \
  {name, 3, {KY_F32, KY_F32, KY_F32}, {4, 4, 1}, {X, W, V1(K)}, {-1, -1, -1}, {1, 1, 1}, 7, {s, p, d, relu, 1},     \
   {0}, 0, 0, 0, b_conv}

static const ky_opcase big[] = {
    CONV("conv 3x3 s1 p1 relu 12 tiles [2,40,36,24]->40", X4(2, 40, 36, 24), X4(40, 3, 3, 24), 40, 1, 1, 1, 1),
    CONV("conv 3x3 s2 p1 [2,33,31,20]->70", X4(2, 33, 31, 20), X4(70, 3, 3, 20), 70, 2, 1, 1, 0),
    CONV("conv 1x1 pointwise [2,30,30,48]->20", X4(2, 30, 30, 48), X4(20, 1, 1, 48), 20, 1, 0, 1, 0),
    CONV("conv 1x1 s2 downsample [2,30,30,24]->64", X4(2, 30, 30, 24), X4(64, 1, 1, 24), 64, 2, 0, 1, 0),
    CONV("conv 7x7 s2 p3 stem [1,60,50,3]->16", X4(1, 60, 50, 3), X4(16, 7, 7, 3), 16, 2, 3, 1, 0),
    CONV("conv 3x3 dil2 p2 [1,40,30,16]->32", X4(1, 40, 30, 16), X4(32, 3, 3, 16), 32, 1, 2, 2, 0),
    CONV("conv direct 1x1 K3 [2,40,40,37]->3", X4(2, 40, 40, 37), X4(3, 1, 1, 37), 3, 1, 0, 1, 0),
    CONV("conv direct 3x3 K2 [1,30,30,51]->2", X4(1, 30, 30, 51), X4(2, 3, 3, 51), 2, 1, 1, 1, 1),
    CONV("conv transposed-forward 3x3 K6 [1,40,40,10]->6", X4(1, 40, 40, 10), X4(6, 3, 3, 10), 6, 1, 1, 1, 0),
    CONV("conv deep one tile 3x3 [2,4,4,128]->256", X4(2, 4, 4, 128), X4(256, 3, 3, 128), 256, 1, 1, 1, 0),
    {"bn train two channel blocks [1,12,10,600]", 5, {KY_F32, KY_F32, KY_F32, KY_F32, KY_F32}, {4, 1, 1, 1, 1},
     {X4(1, 12, 10, 600), V1(600), V1(600), V1(600), V1(600)}, {-2, 0.5f, -1, -1, 0.5f}, {3, 1.5f, 1, 1, 2}, 7, {1},
     {0}, 0, 0, 0, b_bn},
    {"bn train [2,30,20,40]", 5, {KY_F32, KY_F32, KY_F32, KY_F32, KY_F32}, {4, 1, 1, 1, 1},
     {X4(2, 30, 20, 40), V1(40), V1(40), V1(40), V1(40)}, {-2, 0.5f, -1, -1, 0.5f}, {3, 1.5f, 1, 1, 2}, 7, {1}, {0}, 0,
     0, 0, b_bn},
    {"bn eval [2,30,20,40]", 5, {KY_F32, KY_F32, KY_F32, KY_F32, KY_F32}, {4, 1, 1, 1, 1},
     {X4(2, 30, 20, 40), V1(40), V1(40), V1(40), V1(40)}, {-2, 0.5f, -1, -1, 0.5f}, {3, 1.5f, 1, 1, 2}, 7, {0}, {0}, 0,
     0, 0, b_bn},
    {"maxpool 3/2/1 [2,40,36,40]", 1, {KY_F32}, {4}, {X4(2, 40, 36, 40)}, {-1}, {1}, 1, {3, 2, 1}, {0}, 0, 0, 0,
     b_maxpool},
    {"upsample bilinear x2 [2,21,18,24]", 1, {KY_F32}, {4}, {X4(2, 21, 18, 24)}, {-1}, {1}, 1, {0}, {0}, 0, 0, 0,
     b_bilinear},
    {"upsample nearest x2 [2,21,18,24]", 1, {KY_F32}, {4}, {X4(2, 21, 18, 24)}, {-1}, {1}, 1, {2}, {0}, 0, 0, 0, b_nearest},
    {"global_avgpool [3,20,20,40]", 1, {KY_F32}, {4}, {X4(3, 20, 20, 40)}, {-1}, {1}, 1, {0}, {0}, 0, 0, 0, b_gap},
    {"concat 24+40 [2,40,36,*]", 2, {KY_F32, KY_F32}, {4, 4}, {X4(2, 40, 36, 24), X4(2, 40, 36, 40)}, {-1, -1}, {1, 1}, 3,
     {0}, {0}, 0, 0, 0, b_concat},
    {"sigmoid [2,64,64,20]", 1, {KY_F32}, {4}, {X4(2, 64, 64, 20)}, {-4}, {4}, 1, {0}, {0}, 0, 0, 0, b_sigmoid},
    {"loss softmax+dice [2,96,96,3]", 2, {KY_F32, KY_U8}, {4, 3}, {X4(2, 96, 96, 3), X4(2, 96, 96, 0)}, {-3, 0}, {3, 2}, 1,
     {0}, {0}, 0, 0, 0, b_softmax_dice},
    {"loss sigmoid+dice [2,96,96,2]", 2, {KY_F32, KY_F32}, {4, 4}, {X4(2, 96, 96, 2), X4(2, 96, 96, 2)}, {-3, 0}, {3, 1}, 1,
     {0}, {0}, 0, 0, 0, b_sigmoid_dice},
    {"focal_logits [2,96,96,3]", 2, {KY_F32, KY_F32}, {4, 4}, {X4(2, 96, 96, 3), X4(2, 96, 96, 3)}, {-6, 0}, {6, 1}, 1,
     {2}, {1.5f, 0.6f}, 0, 0, 0, b_focal},
};

int main(void) {
  int n = 0;
  while (ky_opcases[n].name) n++;
  size_t nbig = sizeof big / sizeof big[0];
  struct CMUnitTest *tests = calloc((size_t)n + nbig, sizeof *tests);
  if (!tests) return 1;
  int k = 0;
  for (int i = 0; i < n; i++, k++) {
    tests[k].name = ky_opcases[i].name;
    tests[k].test_func = run_case;
    tests[k].initial_state = (void *)&ky_opcases[i];
  }
  for (size_t i = 0; i < nbig; i++, k++) {
    tests[k].name = big[i].name;
    tests[k].test_func = run_case;
    tests[k].initial_state = (void *)&big[i];
  }
  int rc = _cmocka_run_group_tests("ops_threads", tests, (size_t)k, NULL, NULL);
  free(tests);
  return rc;
}

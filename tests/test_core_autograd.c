/* Tests for the tape and ky_backward: a tiny network (conv -> BN -> ReLU -> conv -> softmax+dice
 * loss) trained 50 steps with Adam on the CPU lowers the loss and is bitwise reproducible;
 * no-grad mode records nothing; gradients accumulate across backward passes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/params.h"
#include "core/rng.h"
#include "losses/losses.h"
#include "ops/ops.h"
#include "optim/optim.h"

typedef struct {
  ky_params ps, bufs;
  ky_tensor *w1, *b1, *g, *be, *rm, *rv, *w2, *b2;
} tiny_net;

static void tiny_init(tiny_net *n, uint64_t seed) {
  ky_params_init(&n->ps, 1);
  ky_params_init(&n->bufs, 0);
  int w1s[4] = {8, 3, 3, 3}, c8[1] = {8}, w2s[4] = {3, 3, 3, 8}, c3[1] = {3};
  assert_int_equal(ky_params_add(&n->ps, &n->w1, "conv1.weight", 4, w1s), KY_OK);
  assert_int_equal(ky_params_add(&n->ps, &n->b1, "conv1.bias", 1, c8), KY_OK);
  assert_int_equal(ky_params_add(&n->ps, &n->g, "bn.weight", 1, c8), KY_OK);
  assert_int_equal(ky_params_add(&n->ps, &n->be, "bn.bias", 1, c8), KY_OK);
  assert_int_equal(ky_params_add(&n->ps, &n->w2, "conv2.weight", 4, w2s), KY_OK);
  assert_int_equal(ky_params_add(&n->ps, &n->b2, "conv2.bias", 1, c3), KY_OK);
  assert_int_equal(ky_params_add(&n->bufs, &n->rm, "bn.running_mean", 1, c8), KY_OK);
  assert_int_equal(ky_params_add(&n->bufs, &n->rv, "bn.running_var", 1, c8), KY_OK);
  assert_int_equal(ky_params_alloc(&n->ps, KY_DEV_CPU, NULL), KY_OK);
  assert_int_equal(ky_params_alloc(&n->bufs, KY_DEV_CPU, NULL), KY_OK);
  ky_rng r = ky_rng_make(seed, KY_RNG_STREAM_INIT);
  float *w1 = n->w1->data, *w2 = n->w2->data, *g = n->g->data, *rv = n->rv->data;
  for (int i = 0; i < 8 * 27; i++) w1[i] = 0.3f * ky_rng_normal(&r);
  for (int i = 0; i < 3 * 72; i++) w2[i] = 0.2f * ky_rng_normal(&r);
  for (int i = 0; i < 8; i++) { g[i] = 1; rv[i] = 1; }
}

/* A fixed batch: the class of a pixel is decided by its colour, so the net can learn it. */
static void make_batch(float *x, uint8_t *cls, int n, int h, int w) {
  ky_rng r = ky_rng_make(99, KY_RNG_STREAM_TEST);
  for (int i = 0; i < n * h * w; i++) {
    int k = (int)ky_rng_int(&r, 0, 3);
    cls[i] = (uint8_t)k;
    for (int c = 0; c < 3; c++) x[i * 3 + c] = (c == k ? 1.0f : 0.0f) + 0.3f * ky_rng_uniform_range(&r, -1, 1);
  }
}

static float train(tiny_net *n, int steps, float *first_loss) {
  ky_ctx ctx;
  assert_int_equal(ky_ctx_init(&ctx, KY_DEV_CPU, 0), KY_OK);
  enum { N = 2, H = 6, W = 7 };
  float x[N * H * W * 3];
  uint8_t cls[N * H * W];
  make_batch(x, cls, N, H, W);
  ky_optim opt = ky_optim_adam(1e-2f);
  float loss_v = 0;
  for (int s = 0; s < steps; s++) {
    ky_ctx_reset(&ctx);
    assert_int_equal(ky_params_zero_grad(&n->ps, NULL), KY_OK);
    ky_tensor *xt, *ct, *a, *b, *r, *logits, *loss;
    int xs[4] = {N, H, W, 3}, cs[3] = {N, H, W};
    assert_int_equal(ky_tensor_from_host(&ctx, &xt, KY_F32, 4, xs, x), KY_OK);
    assert_int_equal(ky_tensor_from_host(&ctx, &ct, KY_U8, 3, cs, cls), KY_OK);
    assert_int_equal(ky_conv2d(&ctx, &a, xt, n->w1, n->b1, 1, 1, 1, 0), KY_OK);
    assert_int_equal(ky_batchnorm2d(&ctx, &b, a, n->g, n->be, n->rm, n->rv, 1e-5f, 0.1f), KY_OK);
    assert_int_equal(ky_relu(&ctx, &r, b), KY_OK);
    assert_int_equal(ky_conv2d(&ctx, &logits, r, n->w2, n->b2, 1, 1, 1, 0), KY_OK);
    assert_int_equal(ky_loss_softmax_dice(&ctx, &loss, NULL, logits, ct), KY_OK);
    assert_int_equal(ky_tensor_item(&ctx, &loss_v, loss), KY_OK);
    if (s == 0 && first_loss) *first_loss = loss_v;
    assert_int_equal(ky_backward(&ctx, loss), KY_OK);
    assert_int_equal(ky_optim_step(&opt, &n->ps, opt.lr, 0, n->ps.total), KY_OK);
  }
  ky_ctx_free(&ctx);
  return loss_v;
}

static void test_tiny_net_learns_and_is_reproducible(void **st) {
  tiny_net a, b;
  tiny_init(&a, 5);
  tiny_init(&b, 5);
  float first, last_a = train(&a, 50, &first), last_b = train(&b, 50, NULL);
  assert_true(isfinite(first) && isfinite(last_a));
  if (!(last_a < 0.5f * first)) fail_msg("loss went from %g to %g in 50 steps", first, last_a);
  assert_true(last_a == last_b);
  assert_memory_equal(a.ps.data, b.ps.data, a.ps.total * sizeof(float));
  assert_memory_equal(a.bufs.data, b.bufs.data, a.bufs.total * sizeof(float));
  ky_params_free(&a.ps); ky_params_free(&a.bufs);
  ky_params_free(&b.ps); ky_params_free(&b.bufs);
}

static void test_no_grad_and_accumulation(void **st) {
  ky_ctx ctx;
  assert_int_equal(ky_ctx_init(&ctx, KY_DEV_CPU, 0), KY_OK);
  ky_params ps;
  ky_params_init(&ps, 1);
  ky_tensor *p;
  int s1[1] = {4};
  assert_int_equal(ky_params_add(&ps, &p, "p", 1, s1), KY_OK);
  assert_int_equal(ky_params_alloc(&ps, KY_DEV_CPU, NULL), KY_OK);
  float *pv = p->data;
  for (int i = 0; i < 4; i++) pv[i] = (float)i;
  ky_tensor *y, *m;
  /* No-grad: nothing recorded, backward refuses with a clear message. */
  ky_ctx_set_grad(&ctx, 0);
  assert_int_equal(ky_scale(&ctx, &y, p, 3.0f), KY_OK);
  assert_int_equal(ky_mean(&ctx, &m, y), KY_OK);
  assert_int_equal(ctx.tape.count, 0);
  assert_int_equal(ky_backward(&ctx, m), KY_ERR_STATE);
  assert_non_null(strstr(ky_last_error(), "without a tape"));
  ky_ctx_set_grad(&ctx, 1);
  /* Two backward passes accumulate into the same gradient until it is zeroed. */
  for (int pass = 0; pass < 2; pass++) {
    ky_ctx_reset(&ctx);
    assert_int_equal(ky_scale(&ctx, &y, p, 3.0f), KY_OK);
    assert_int_equal(ky_mean(&ctx, &m, y), KY_OK);
    assert_int_equal(ky_backward(&ctx, m), KY_OK);
  }
  for (int i = 0; i < 4; i++) assert_float_equal(((float *)p->grad->data)[i], 2 * 0.75f, 1e-7);
  assert_int_equal(ky_params_zero_grad(&ps, NULL), KY_OK);
  assert_float_equal(((float *)p->grad->data)[0], 0, 0);
  /* A non-scalar loss is refused. */
  assert_int_equal(ky_backward(&ctx, y), KY_ERR_SHAPE);
  ky_params_free(&ps);
  ky_ctx_free(&ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tiny_net_learns_and_is_reproducible),
      cmocka_unit_test(test_no_grad_and_accumulation),
  };
  return cmocka_run_group_tests_name("core_autograd", tests, NULL, NULL);
}

/* Checkpoints and encoder freezing: 3 steps + save + load into a fresh model + 3 steps is bitwise
 * identical to 6 steps on the CPU (weights, running statistics, AMSGrad moments, step, RNG);
 * mismatched models and weight-only files fail clearly; a frozen encoder does not move.
 * Run by `make test`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ctx.h"
#include "core/rng.h"
#include "losses/losses.h"
#include "models/checkpoint.h"
#include "models/model.h"
#include "optim/optim.h"

static ky_model *tiny(uint64_t seed, float width) {
  ky_model_config cfg = ky_model_config_default();
  cfg.width = width;
  cfg.seed = seed;
  ky_model *m = NULL;
  if (ky_model_create(&m, "unet_resnet18", &cfg) != KY_OK) fail_msg("create: %s", ky_last_error());
  return m;
}

/* zero grad -> forward -> loss -> backward -> clip -> Adam, on a 2x32x32 batch drawn from rng */
static void train_step(ky_ctx *ctx, ky_model *m, ky_optim *o, ky_rng *rng) {
  enum { N = 2, H = 32, W = 32 };
  static float x[N * H * W * 3];
  static uint8_t c[N * H * W];
  for (int i = 0; i < N * H * W * 3; i++) x[i] = ky_rng_uniform_range(rng, -1.f, 1.f);
  for (int i = 0; i < N * H * W; i++) c[i] = (uint8_t)ky_rng_int(rng, 0, 3);
  ky_ctx_reset(ctx);
  ctx->training = 1;
  ky_ctx_set_grad(ctx, 1);
  ky_params *ps = ky_model_params(m);
  assert_int_equal(ky_params_zero_grad(ps, NULL), KY_OK);
  ky_tensor *xt, *ct, *y, *loss;
  assert_int_equal(ky_tensor_from_host(ctx, &xt, KY_F32, 4, (int[]){N, H, W, 3}, x), KY_OK);
  assert_int_equal(ky_tensor_from_host(ctx, &ct, KY_U8, 3, (int[]){N, H, W}, c), KY_OK);
  if (ky_model_forward(ctx, m, xt, &y) != KY_OK) fail_msg("forward: %s", ky_last_error());
  assert_int_equal(ky_loss_softmax_dice(ctx, &loss, NULL, y, ct), KY_OK);
  assert_int_equal(ky_backward(ctx, loss), KY_OK);
  assert_int_equal(ky_clip_grad_norm(ps, 1.0f, NULL), KY_OK);
  size_t first, end;
  ky_model_trainable_range(m, &first, &end);
  assert_int_equal(ky_optim_step(o, ps, o->lr, first, end), KY_OK);
}

static float *copy_block(ky_params *ps, const float *blk) {
  float *h = malloc(ps->total * sizeof *h);
  assert_int_equal(ky_params_get(ps, h, blk), KY_OK);
  return h;
}

static void same_block(ky_params *a, const float *ba, ky_params *b, const float *bb, const char *what) {
  assert_int_equal(a->total, b->total);
  float *ha = copy_block(a, ba), *hb = copy_block(b, bb);
  if (memcmp(ha, hb, a->total * sizeof *ha)) {
    size_t i = 0;
    while (ha[i] == hb[i]) i++;
    fail_msg("%s differs at float %zu: %.9g vs %.9g", what, i, ha[i], hb[i]);
  }
  free(ha);
  free(hb);
}

static void test_resume_is_bitwise(void **st) {
  char dir[] = "/tmp/ky_ckpt_XXXXXX", path[256];
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
  ky_ctx ctx;
  assert_int_equal(ky_ctx_init(&ctx, KY_DEV_CPU, 0), KY_OK);

  /* reference: 6 steps */
  ky_model *a = tiny(7, 0.0625f);
  ky_optim oa = ky_optim_adam(1e-3f);
  oa.amsgrad = 1;
  ky_rng ra = ky_rng_make(11, KY_RNG_STREAM_SAMPLER);
  for (int i = 0; i < 6; i++) train_step(&ctx, a, &oa, &ra);

  /* 3 steps, checkpoint, a fresh model with another init, load, 3 steps */
  ky_model *b = tiny(7, 0.0625f);
  ky_optim ob = ky_optim_adam(1e-3f);
  ob.amsgrad = 1;
  ky_rng rb = ky_rng_make(11, KY_RNG_STREAM_SAMPLER);
  for (int i = 0; i < 3; i++) train_step(&ctx, b, &ob, &rb);
  ky_ckpt_state cs = {.epoch = 4, .n_rng = 2, .rng = {rb, ky_rng_make(5, KY_RNG_STREAM_AUG)}};
  cs.config = "model = unet_resnet18\nlr = 1e-3\t# \"amsgrad\" \\ ok\n";
  assert_int_equal(ky_checkpoint_save(path, b, &ob, &cs), KY_OK);
  ky_model_free(b);

  ky_model *c = tiny(99, 0.0625f);
  ky_optim oc = ky_optim_adam(1e-3f);
  oc.amsgrad = 1;
  ky_ckpt_state ls;
  if (ky_checkpoint_load(path, c, &oc, &ls) != KY_OK) fail_msg("load: %s", ky_last_error());
  assert_int_equal(oc.step, 3);
  assert_int_equal(ls.epoch, 4);
  assert_int_equal(ls.n_rng, 2);
  assert_int_equal(ls.rng[1].stream, KY_RNG_STREAM_AUG);
  assert_string_equal(ls.config, "model = unet_resnet18\nlr = 1e-3\t# \"amsgrad\" \\ ok\n");
  ky_rng rc = ls.rng[0];
  ky_ckpt_state_free(&ls);
  for (int i = 0; i < 3; i++) train_step(&ctx, c, &oc, &rc);

  assert_int_equal(oc.step, oa.step);
  assert_int_equal(rc.index, ra.index);
  assert_int_equal(ky_model_bn_steps(c), ky_model_bn_steps(a));
  ky_params *pa = ky_model_params(a), *pc = ky_model_params(c);
  same_block(pa, pa->data, pc, pc->data, "weights");
  same_block(ky_model_buffers(a), ky_model_buffers(a)->data, ky_model_buffers(c), ky_model_buffers(c)->data,
             "running statistics");
  same_block(pa, pa->m, pc, pc->m, "Adam m");
  same_block(pa, pa->v, pc, pc->v, "Adam v");
  assert_non_null(pc->vmax);
  same_block(pa, pa->vmax, pc, pc->vmax, "AMSGrad vmax");

  /* the checkpoint is for another model: error naming both */
  ky_model *d = tiny(7, 0.125f);
  assert_int_equal(ky_checkpoint_load(path, d, &oc, NULL), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "width=0.0625"));
  assert_non_null(strstr(ky_last_error(), "width=0.125"));
  assert_non_null(strstr(ky_last_error(), path));
  ky_model_free(d);

  /* a plain weights file has no optimiser state; without an optimiser it loads */
  assert_int_equal(ky_model_save(a, path), KY_OK);
  assert_int_equal(ky_checkpoint_load(path, c, &oc, NULL), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "optimiser"));
  assert_int_equal(ky_checkpoint_load(path, c, NULL, NULL), KY_OK);

  /* SGD state in the file, Adam in the caller */
  ky_optim sgd = ky_optim_sgd(0.1f, 0.9f);
  train_step(&ctx, c, &sgd, &rc);
  assert_int_equal(ky_checkpoint_save(path, c, &sgd, NULL), KY_OK);
  assert_int_equal(ky_checkpoint_load(path, c, &oc, NULL), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "sgd"));

  remove(path);
  rmdir(dir);
  ky_model_free(a);
  ky_model_free(c);
  ky_ctx_free(&ctx);
}

static void test_freeze_encoder(void **st) {
  ky_ctx ctx;
  assert_int_equal(ky_ctx_init(&ctx, KY_DEV_CPU, 0), KY_OK);
  ky_model *m = tiny(3, 0.0625f);
  ky_params *ps = ky_model_params(m);
  size_t ef, ee, first, end;
  int n_enc;
  ky_model_encoder_range(m, &ef, &ee, &n_enc);
  assert_int_equal(ef, 0);
  assert_string_equal(ps->p[n_enc - 1].name, "layer4.1.bn2.bias");
  assert_string_equal(ps->p[n_enc].name, "decoder.0.up.weight");
  ky_model_trainable_range(m, &first, &end);
  assert_int_equal(first, 0);
  ky_model_freeze_encoder(m, 1);
  assert_true(ky_model_encoder_frozen(m));
  ky_model_trainable_range(m, &first, &end);
  assert_int_equal(first, ee);
  assert_int_equal(end, ps->total);
  assert_int_equal(ps->p[0].t->requires_grad, 0);
  assert_int_equal(ps->p[n_enc].t->requires_grad, 1);

  float *w0 = copy_block(ps, ps->data), *b0 = copy_block(ky_model_buffers(m), ky_model_buffers(m)->data);
  ky_optim o = ky_optim_adam(1e-2f);
  ky_rng r = ky_rng_make(1, KY_RNG_STREAM_SAMPLER);
  train_step(&ctx, m, &o, &r);
  float *w1 = copy_block(ps, ps->data), *b1 = copy_block(ky_model_buffers(m), ky_model_buffers(m)->data);
  assert_memory_equal(w0, w1, ee * sizeof *w0);                        /* encoder fixed */
  assert_true(memcmp(w0 + ee, w1 + ee, (end - ee) * sizeof *w0) != 0); /* decoder trained */
  assert_true(memcmp(b0, b1, ky_model_buffers(m)->total * sizeof *b0) != 0);  /* BN stats still track */
  ky_model_freeze_encoder(m, 0);
  assert_int_equal(ps->p[0].t->requires_grad, 1);
  free(w0); free(w1); free(b0); free(b1);
  ky_model_free(m);
  ky_ctx_free(&ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_resume_is_bitwise),
      cmocka_unit_test(test_freeze_encoder),
  };
  return cmocka_run_group_tests_name("models_checkpoint", tests, NULL, NULL);
}

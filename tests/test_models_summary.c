/* Model summary and structure: the benchmark ResNet34 U-Net has exactly 24,531,523 parameters and
 * 21.88 GFLOP of forward convolutions at 256x256; every model's parameter, buffer and FLOP counts
 * equal PyTorch's (tests/fixtures/models/model_counts.txt from gen_models.py); bad arguments give
 * clear errors. Run by `make test`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/model.h"
#include "models/summary.h"
#include "test_models_util.h"

static ky_model *create(const char *name, float width, int dbn, int no_alloc) {
  ky_model_config cfg = ky_model_config_default();
  cfg.width = width;
  cfg.decoder_bn = dbn;
  cfg.no_alloc = no_alloc;
  ky_model *m = NULL;
  ky_status s = ky_model_create(&m, name, &cfg);
  if (s != KY_OK) fail_msg("create %s: %s", name, ky_last_error());
  return m;
}

static void test_benchmark_unet(void **st) {
  ky_model *m = create("unet_resnet34", 1.0f, 0, 1);
  ky_model_summary s;
  assert_int_equal(ky_model_summarize(&s, m, 1, 256, 256), KY_OK);
  assert_int_equal(s.params, 24531523);
  int64_t rows = 0;
  for (int i = 0; i < s.n; i++) rows += s.rows[i].params;
  assert_int_equal(rows, s.params);
  assert_int_equal(s.flops, 21875392512LL);  /* PyTorch conv hooks, model_counts.txt */
  assert_int_equal(s.enc_params, 21284672);  /* torchvision resnet34 without fc */
  /* first row: the 7x7 stem, 2 * 128*128*64 * 7*7*3 FLOPs */
  assert_string_equal(s.rows[0].name, "conv1");
  assert_string_equal(s.rows[0].kind, "conv7x7");
  assert_int_equal(s.rows[0].shape[1], 128);
  assert_int_equal(s.rows[0].shape[3], 64);
  assert_int_equal(s.rows[0].flops, 2LL * 128 * 128 * 64 * 7 * 7 * 3);
  assert_int_equal(s.rows[0].params, 64 * 7 * 7 * 3);
  const ky_summary_row *last = &s.rows[s.n - 1];
  assert_string_equal(last->name, "head");
  int want[4] = {1, 256, 256, 3};
  assert_memory_equal(last->shape, want, sizeof want);
  /* the E4 tap: the last row named layer4.* is 8x8x512 */
  int e4 = -1;
  for (int i = 0; i < s.n; i++)
    if (!strncmp(s.rows[i].name, "layer4.", 7)) e4 = i;
  assert_true(e4 > 0);
  assert_int_equal(s.rows[e4].shape[1], 8);
  assert_int_equal(s.rows[e4].shape[3], 512);
  ky_model_summary_free(&s);
  int ch[5];
  ky_model_tap_channels(m, ch);
  assert_int_equal(ch[0], 64);
  assert_int_equal(ch[4], 512);
  ky_model_free(m);
}

static void test_counts_match_pytorch(void **st) {
  FILE *f = fopen(KY_FIXTURES "model_counts.txt", "r");
  assert_non_null(f);
  char name[64];
  double width;
  int dbn, checked = 0;
  long long params, bufs, flops;
  while (fscanf(f, "%63s %lf %d %lld %lld %lld", name, &width, &dbn, &params, &bufs, &flops) == 6) {
    ky_model *m = create(name, (float)width, dbn, 1);
    ky_model_summary s;
    assert_int_equal(ky_model_summarize(&s, m, 1, 64, 96), KY_OK);
    if (s.params != params || s.buffers != bufs || s.flops != flops)
      fail_msg("%s width %g bn %d: params %lld buffers %lld flops %lld, PyTorch %lld %lld %lld", name, width, dbn,
               (long long)s.params, (long long)s.buffers, (long long)s.flops, params, bufs, flops);
    ky_model_summary_free(&s);
    ky_model_free(m);
    checked++;
  }
  fclose(f);
  assert_int_equal(checked, 30);
}

static void test_in_channels_and_classes(void **st) {
  ky_model_config cfg = ky_model_config_default();
  cfg.in_channels = 4;
  cfg.classes = 2;
  cfg.no_alloc = 1;
  ky_model *m;
  assert_int_equal(ky_model_create(&m, "fpn_resnet50", &cfg), KY_OK);
  ky_model_summary s;
  assert_int_equal(ky_model_summarize(&s, m, 2, 64, 64), KY_OK);
  assert_int_equal(s.rows[0].params, 64 * 7 * 7 * 4);
  assert_int_equal(s.rows[s.n - 1].shape[0], 2);
  assert_int_equal(s.rows[s.n - 1].shape[3], 2);
  ky_model_summary_free(&s);
  /* a no_alloc model cannot run */
  ky_ctx ctx;
  assert_int_equal(ky_ctx_init(&ctx, KY_DEV_CPU, 0), KY_OK);
  ky_tensor *x, *y;
  assert_int_equal(ky_tensor_zeros(&ctx, &x, KY_F32, 4, (int[]){1, 32, 32, 4}), KY_OK);
  assert_int_equal(ky_model_forward(&ctx, m, x, &y), KY_ERR_STATE);
  assert_non_null(strstr(ky_last_error(), "no_alloc"));
  ky_ctx_free(&ctx);
  ky_model_free(m);
}

static void test_bad_arguments(void **st) {
  ky_model_config cfg = ky_model_config_default();
  ky_model *m = (ky_model *)1;
  assert_int_equal(ky_model_create(&m, "unet_vgg16", &cfg), KY_ERR_ARG);
  assert_null(m);
  assert_non_null(strstr(ky_last_error(), "unet_vgg16"));
  assert_non_null(strstr(ky_last_error(), "unet_resnet34"));
  cfg.width = 0;
  assert_int_equal(ky_model_create(&m, "unet_resnet34", &cfg), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "width"));
  cfg = ky_model_config_default();
  cfg.decoder_bn = 1;
  assert_int_equal(ky_model_create(&m, "fpn_resnet34", &cfg), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "decoder_bn"));
  cfg = ky_model_config_default();
  cfg.no_alloc = 1;
  assert_int_equal(ky_model_create(&m, "unet_resnet18", &cfg), KY_OK);
  ky_model_summary s;
  assert_int_equal(ky_model_summarize(&s, m, 1, 100, 96), KY_ERR_SHAPE);
  assert_non_null(strstr(ky_last_error(), "multiples of 32"));
  ky_model_free(m);

  /* forward rejects wrong channels and sizes with the shape in the message */
  cfg = ky_model_config_default();
  cfg.width = 0.125f;
  assert_int_equal(ky_model_create(&m, "unet_resnet18", &cfg), KY_OK);
  ky_ctx ctx;
  assert_int_equal(ky_ctx_init(&ctx, KY_DEV_CPU, 0), KY_OK);
  ky_tensor *x, *y;
  assert_int_equal(ky_tensor_zeros(&ctx, &x, KY_F32, 4, (int[]){1, 32, 32, 4}), KY_OK);
  assert_int_equal(ky_model_forward(&ctx, m, x, &y), KY_ERR_SHAPE);
  assert_non_null(strstr(ky_last_error(), "[1, 32, 32, 4]"));
  assert_int_equal(ky_tensor_zeros(&ctx, &x, KY_F32, 4, (int[]){1, 48, 32, 3}), KY_OK);
  assert_int_equal(ky_model_forward(&ctx, m, x, &y), KY_ERR_SHAPE);
  assert_non_null(strstr(ky_last_error(), "multiples of 32"));
  ky_ctx_free(&ctx);
  ky_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_benchmark_unet),
      cmocka_unit_test(test_counts_match_pytorch),
      cmocka_unit_test(test_in_channels_and_classes),
      cmocka_unit_test(test_bad_arguments),
  };
  return cmocka_run_group_tests_name("models_summary", tests, NULL, NULL);
}

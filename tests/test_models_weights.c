/* Weight import/export: encoder names and shapes equal torchvision's resnet34 / resnet50
 * state_dict (fixture lists from gen_models.py), save -> load gives bitwise identical outputs,
 * ImageNet-style encoder files (fc.*, num_batches_tracked) load with a report, and missing keys,
 * wrong shapes, wrong dtypes and malformed files fail with messages naming the tensor / file;
 * initialisation follows torchvision / PyTorch (Kaiming normal fan_out / fan_in, BN 1 / 0).
 * Run by `make test`. */
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

#include "core/ctx.h"
#include "core/fileio.h"
#include "models/model.h"
#include "test_models_util.h"

static char g_dir[] = "/tmp/ky_models_w_XXXXXX";

static const char *tmp_path(const char *leaf) {
  static char p[4][256];
  static int k;
  k = (k + 1) % 4;
  snprintf(p[k], sizeof p[k], "%s/%s", g_dir, leaf);
  return p[k];
}

static ky_model *create(const char *name, float width, int in_ch, int dbn, uint64_t seed, int no_alloc) {
  ky_model_config cfg = ky_model_config_default();
  cfg.width = width;
  cfg.in_channels = in_ch;
  cfg.decoder_bn = dbn;
  cfg.seed = seed;
  cfg.no_alloc = no_alloc;
  ky_model *m = NULL;
  if (ky_model_create(&m, name, &cfg) != KY_OK) fail_msg("create %s: %s", name, ky_last_error());
  return m;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* "name dtype d0,d1" lines of the model's encoder state, sorted */
static int encoder_lines(const ky_model *m, char ***out) {
  int n = ky_model_state_count(m), k = 0;
  char **l = calloc((size_t)n, sizeof *l);
  for (int i = 0; i < n; i++) {
    const char *name;
    ky_dtype dt;
    int nd;
    int64_t sh[4];
    assert_int_equal(ky_model_state_entry(m, i, &name, &dt, &nd, sh), KY_OK);
    if (!tm_is_encoder(name)) continue;
    char buf[256], shp[64] = "-";
    size_t o = 0;
    for (int d = 0; d < nd; d++) o += (size_t)snprintf(shp + o, sizeof shp - o, d ? ",%lld" : "%lld", (long long)sh[d]);
    snprintf(buf, sizeof buf, "%s %s %s", name, dt == KY_I64 ? "I64" : "F32", shp);
    l[k++] = strdup(buf);
  }
  qsort(l, (size_t)k, sizeof *l, cmp_str);
  *out = l;
  return k;
}

static void check_names(const char *model, const char *fixture) {
  ky_model *m = create(model, 1.0f, 3, 0, 0, 1);
  char **ours;
  int n_ours = encoder_lines(m, &ours);
  char path[256], line[256];
  snprintf(path, sizeof path, KY_FIXTURES "%s", fixture);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char **ref = NULL;
  int n_ref = 0;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    if (!line[0] || !strncmp(line, "fc.", 3)) continue;
    char **grown = realloc(ref, (size_t)(n_ref + 1) * sizeof *ref);
    assert_non_null(grown);
    ref = grown;
    ref[n_ref++] = strdup(line);
  }
  fclose(f);
  assert_true(n_ref > 100);   /* before qsort, which must not get the NULL of an empty fixture */
  qsort(ref, (size_t)n_ref, sizeof *ref, cmp_str);
  for (int i = 0; i < n_ref && i < n_ours; i++)
    if (strcmp(ref[i], ours[i])) fail_msg("%s vs %s: torchvision has '%s', karyon '%s'", model, fixture, ref[i], ours[i]);
  assert_int_equal(n_ours, n_ref);
  for (int i = 0; i < n_ref; i++) free(ref[i]);
  for (int i = 0; i < n_ours; i++) free(ours[i]);
  free(ref);
  free(ours);
  ky_model_free(m);
}

static void test_torchvision_names(void **st) {
  check_names("unet_resnet34", "torchvision_resnet34_keys.txt");
  check_names("fpn_resnet50", "torchvision_resnet50_keys.txt");
}

/* Eval-mode logits of a 1x64x64x3 hash input. */
static float *logits_of(ky_model *m, size_t *n) {
  ky_ctx ctx;
  assert_int_equal(ky_ctx_init(&ctx, KY_DEV_CPU, 0), KY_OK);
  ctx.training = 0;
  ky_ctx_set_grad(&ctx, 0);
  float *xh = malloc(64 * 64 * 3 * sizeof *xh);
  tm_input(xh, NULL, 1, 64, 64, 3);
  ky_tensor *x, *y;
  assert_int_equal(ky_tensor_from_host(&ctx, &x, KY_F32, 4, (int[]){1, 64, 64, 3}, xh), KY_OK);
  if (ky_model_forward(&ctx, m, x, &y) != KY_OK) fail_msg("forward: %s", ky_last_error());
  *n = ky_tensor_numel(y);
  float *out = malloc(*n * sizeof *out);
  assert_int_equal(ky_tensor_to_host(&ctx, out, y), KY_OK);
  free(xh);
  ky_ctx_free(&ctx);
  return out;
}

static void one_training_forward(ky_model *m) {
  ky_ctx ctx;
  assert_int_equal(ky_ctx_init(&ctx, KY_DEV_CPU, 0), KY_OK);
  ctx.training = 1;
  ky_ctx_set_grad(&ctx, 0);
  float *xh = malloc(2 * 64 * 64 * 3 * sizeof *xh);
  tm_input(xh, NULL, 2, 64, 64, 3);
  ky_tensor *x, *y;
  assert_int_equal(ky_tensor_from_host(&ctx, &x, KY_F32, 4, (int[]){2, 64, 64, 3}, xh), KY_OK);
  assert_int_equal(ky_model_forward(&ctx, m, x, &y), KY_OK);
  free(xh);
  ky_ctx_free(&ctx);
}

static void test_round_trip(void **st) {
  ky_model *a = create("unet_resnet18", 0.25f, 3, 1, 1, 0);
  one_training_forward(a);  /* running statistics move away from 0 / 1 */
  assert_int_equal(ky_model_bn_steps(a), 1);
  size_t na, nb;
  float *la = logits_of(a, &na);
  const char *p = tmp_path("rt.safetensors");
  assert_int_equal(ky_model_save(a, p), KY_OK);

  /* the file is PyTorch layout: conv1.weight [16, 3, 7, 7] with w[o][i][y][x] = ours[o][y][x][i] */
  ky_st_file f;
  assert_int_equal(ky_st_read(&f, p), KY_OK);
  const ky_st_entry *e = ky_st_find(&f, "conv1.weight");
  assert_non_null(e);
  assert_int_equal(e->ndim, 4);
  assert_int_equal(e->shape[0], 16);
  assert_int_equal(e->shape[1], 3);
  assert_int_equal(e->shape[2], 7);
  ky_param *pc = ky_params_find(ky_model_params(a), "conv1.weight");
  const float *fw = ky_st_data(&f, e), *mw = ky_model_params(a)->data + pc->offset;
  assert_true(fw[((5 * 3 + 2) * 7 + 1) * 7 + 4] == mw[((5 * 7 + 1) * 7 + 4) * 3 + 2]);
  e = ky_st_find(&f, "decoder.1.fuse_bn.num_batches_tracked");
  assert_non_null(e);
  assert_int_equal(e->dtype, KY_I64);
  int64_t nbt;
  memcpy(&nbt, ky_st_data(&f, e), sizeof nbt);  /* I64 data need not be 8-byte aligned */
  assert_int_equal(nbt, 1);
  assert_non_null(ky_st_find(&f, "layer3.1.bn2.running_var"));
  ky_st_free(&f);

  ky_model *b = create("unet_resnet18", 0.25f, 3, 1, 2, 0);
  float *lb = logits_of(b, &nb);
  assert_int_equal(na, nb);
  assert_true(memcmp(la, lb, na * sizeof *la) != 0);  /* different seeds differ */
  free(lb);
  ky_load_report rep;
  assert_int_equal(ky_model_load(b, p, KY_LOAD_STRICT, &rep), KY_OK);
  assert_int_equal(rep.n_missing + rep.n_unexpected, 0);
  assert_int_equal(rep.n_loaded, ky_model_params(b)->n + ky_model_buffers(b)->n);
  ky_load_report_free(&rep);
  lb = logits_of(b, &nb);
  assert_memory_equal(la, lb, na * sizeof *la);
  assert_int_equal(ky_model_bn_steps(b), 1);
  free(lb);
  /* the file describes its model: open re-creates it */
  ky_model *c;
  if (ky_model_open(&c, p, KY_DEV_CPU, NULL) != KY_OK) fail_msg("open: %s", ky_last_error());
  assert_string_equal(ky_model_name(c), "unet_resnet18");
  assert_true(ky_model_get_config(c)->width == 0.25f);
  assert_int_equal(ky_model_get_config(c)->decoder_bn, 1);
  lb = logits_of(c, &nb);
  assert_memory_equal(la, lb, na * sizeof *la);
  ky_model_free(c);
  free(la);
  free(lb);
  ky_model_free(a);
  ky_model_free(b);
  remove(p);
}

static float *host_params(ky_model *m) {
  ky_params *ps = ky_model_params(m);
  float *h = malloc(ps->total * sizeof *h);
  assert_int_equal(ky_params_get(ps, h, ps->data), KY_OK);
  return h;
}

static void test_imagenet_encoder_file(void **st) {
  ky_model *m = create("unet_resnet18", 0.25f, 3, 0, 3, 0);
  const char *p = tmp_path("enc.safetensors");
  tm_state_opts o = {.with_fc = 1, .encoder_only = 1};
  assert_int_equal(tm_write_state(m, p, &o), KY_OK);
  float *before = host_params(m);

  /* default flags: the decoder is missing -> error naming it, nothing changes */
  assert_int_equal(ky_model_load(m, p, 0, NULL), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "missing"));
  assert_non_null(strstr(ky_last_error(), "decoder.0.up.weight"));
  assert_non_null(strstr(ky_last_error(), p));
  float *after = host_params(m);
  assert_memory_equal(before, after, ky_model_params(m)->total * sizeof *after);
  free(after);

  /* strict: fc.* is an error */
  assert_int_equal(ky_model_load(m, p, KY_LOAD_ENCODER_ONLY | KY_LOAD_STRICT, NULL), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "fc.weight"));

  ky_load_report rep;
  assert_int_equal(ky_model_load(m, p, KY_LOAD_ENCODER_ONLY, &rep), KY_OK);
  assert_int_equal(rep.n_unexpected, 2);
  assert_string_equal(rep.unexpected[0], "fc.weight");
  int n_enc;
  ky_model_encoder_range(m, NULL, NULL, &n_enc);
  int n_dec = ky_model_params(m)->n - n_enc;
  assert_int_equal(rep.n_missing, n_dec);  /* this U-Net's decoder has no BN buffers */
  assert_int_equal(rep.n_loaded, n_enc + ky_model_buffers(m)->n);
  ky_load_report_free(&rep);
  after = host_params(m);
  ky_param *pp = ky_params_find(ky_model_params(m), "layer2.0.bn1.bias");
  assert_true(after[pp->offset + 3] == tm_hash_value("layer2.0.bn1.bias", 3, 0.1f, 0.0));
  pp = ky_params_find(ky_model_params(m), "head.weight");  /* decoder keeps its init */
  assert_memory_equal(after + pp->offset, before + pp->offset, pp->numel * sizeof *after);
  free(before);
  free(after);

  /* an encoder tensor missing from an encoder file is an error naming it */
  o.drop = "layer2.0.downsample.0.weight";
  assert_int_equal(tm_write_state(m, p, &o), KY_OK);
  assert_int_equal(ky_model_load(m, p, KY_LOAD_ENCODER_ONLY, NULL), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "layer2.0.downsample.0.weight"));
  /* ... unless missing tensors are allowed */
  assert_int_equal(ky_model_load(m, p, KY_LOAD_ALLOW_MISSING, &rep), KY_OK);
  assert_int_equal(rep.n_missing, n_dec + 1);
  ky_load_report_free(&rep);
  ky_model_free(m);
  remove(p);
}

static void test_bad_shape_and_dtype(void **st) {
  ky_model *m3 = create("fpn_resnet18", 0.25f, 3, 0, 0, 0), *m4 = create("fpn_resnet18", 0.25f, 4, 0, 0, 0);
  const char *p = tmp_path("bad.safetensors");
  assert_int_equal(tm_write_hash_state(m3, p, 0), KY_OK);
  assert_int_equal(ky_model_load(m4, p, 0, NULL), KY_ERR_SHAPE);
  assert_non_null(strstr(ky_last_error(), "conv1.weight"));
  assert_non_null(strstr(ky_last_error(), "[16, 3, 7, 7]"));
  assert_non_null(strstr(ky_last_error(), "[16, 4, 7, 7]"));

  tm_state_opts o = {.as_f64 = "levels.2.conv1.bias"};
  assert_int_equal(tm_write_state(m3, p, &o), KY_OK);
  assert_int_equal(ky_model_load(m3, p, 0, NULL), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "levels.2.conv1.bias"));

  tm_state_opts o2 = {.nbt_as_f32 = "layer1.0.bn2.num_batches_tracked"};
  assert_int_equal(tm_write_state(m3, p, &o2), KY_OK);
  assert_int_equal(ky_model_load(m3, p, 0, NULL), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "layer1.0.bn2.num_batches_tracked"));
  ky_model_free(m3);
  ky_model_free(m4);
  remove(p);
}

/* 3-channel ImageNet stem into a 4-channel model: 0.9 x RGB, 0.1 x G for channel 4. */
static void test_adapt_stem(void **st) {
  ky_model *m3 = create("unet_resnet34", 0.25f, 3, 0, 0, 0), *m4 = create("unet_resnet34", 0.25f, 4, 0, 0, 0);
  const char *p = tmp_path("stem.safetensors");
  tm_state_opts o = {.with_fc = 1, .encoder_only = 1};
  assert_int_equal(tm_write_state(m3, p, &o), KY_OK);
  assert_int_equal(ky_model_load(m4, p, KY_LOAD_ENCODER_ONLY, NULL), KY_ERR_SHAPE);
  assert_int_equal(ky_model_load(m4, p, KY_LOAD_ENCODER_ONLY | KY_LOAD_ADAPT_STEM, NULL), KY_OK);
  ky_param *pp = ky_params_find(ky_model_params(m4), "conv1.weight");
  const float *w = ky_model_params(m4)->data + pp->offset;  /* OHWI [16, 7, 7, 4] */
  int64_t shape[4] = {16, 3, 7, 7};
  float sc;
  double off;
  tm_rule("conv1.weight", 4, shape, &sc, &off);
  for (int a = 0; a < 16; a += 5)
    for (int y = 0; y < 7; y += 3)
      for (int x = 0; x < 7; x += 2) {
        const float *d = w + ((a * 7 + y) * 7 + x) * 4;
        for (int c = 0; c < 3; c++)
          assert_true(d[c] == 0.9f * tm_hash_value("conv1.weight", ((a * 3 + c) * 7 + y) * 7 + x, sc, off));
        assert_true(d[3] == 0.1f * tm_hash_value("conv1.weight", ((a * 3 + 1) * 7 + y) * 7 + x, sc, off));
      }
  /* only the stem adapts: a 3-channel model still rejects a wrong layer shape */
  ky_model *w2 = create("unet_resnet34", 0.5f, 4, 0, 0, 0);
  assert_int_equal(ky_model_load(w2, p, KY_LOAD_ENCODER_ONLY | KY_LOAD_ADAPT_STEM, NULL), KY_ERR_SHAPE);
  assert_non_null(strstr(ky_last_error(), "conv1.weight"));
  ky_model_free(w2);
  ky_model_free(m3);
  ky_model_free(m4);
  remove(p);
}

static void test_malformed_files(void **st) {
  ky_model *m = create("unet_resnet18", 0.125f, 3, 0, 0, 0);
  const char *p = tmp_path("trunc.safetensors");
  assert_int_equal(tm_write_hash_state(m, p, 0), KY_OK);
  char *buf;
  size_t n;
  assert_int_equal(ky_file_read_all(p, &buf, &n), KY_OK);
  assert_int_equal(ky_file_write_atomic(p, buf, n / 2), KY_OK);  /* data cut off */
  ky_status s = ky_model_load(m, p, 0, NULL);
  assert_int_not_equal(s, KY_OK);
  assert_non_null(strstr(ky_last_error(), p));
  /* a weights file without karyon's description cannot be opened */
  assert_int_equal(tm_write_hash_state(m, p, 0), KY_OK);
  ky_model *o;
  assert_int_equal(ky_model_open(&o, p, KY_DEV_CPU, NULL), KY_ERR_FORMAT);
  assert_null(o);
  assert_non_null(strstr(ky_last_error(), "karyon.model"));
  assert_int_equal(ky_file_write_atomic(p, "garbage, not a safetensors file", 31), KY_OK);
  assert_int_not_equal(ky_model_load(m, p, 0, NULL), KY_OK);
  assert_non_null(strstr(ky_last_error(), p));
  free(buf);
  remove(p);
  assert_int_equal(ky_model_load(m, tmp_path("nope.safetensors"), 0, NULL), KY_ERR_IO);
  assert_non_null(strstr(ky_last_error(), "nope.safetensors"));
  /* save to a folder that does not exist */
  assert_int_not_equal(ky_model_save(m, "/nonexistent_dir_ky/x.safetensors"), KY_OK);
  assert_non_null(strstr(ky_last_error(), "/nonexistent_dir_ky/x.safetensors"));
  ky_model_free(m);
}

/* mean and standard deviation of a parameter's values */
static void stats(ky_model *m, const char *name, double *mean, double *sd) {
  ky_param *p = ky_params_find(ky_model_params(m), name);
  if (!p) fail_msg("no parameter %s", name);
  const float *d = ky_model_params(m)->data + p->offset;
  double s = 0, s2 = 0;
  for (size_t i = 0; i < p->numel; i++) { s += d[i]; s2 += (double)d[i] * d[i]; }
  *mean = s / p->numel;
  *sd = sqrt(s2 / p->numel - *mean * *mean);
}

/* torchvision's encoder init (Kaiming normal, fan_out, ReLU gain), PyTorch's kaiming_normal_
 * default for the decoder (fan_in), zero biases, BN 1 / 0, running statistics 0 / 1; seeded. */
static void test_init(void **st) {
  ky_model *m = create("unet_resnet34", 0.5f, 3, 0, 5, 0);
  double mu, sd;
  stats(m, "layer3.0.conv2.weight", &mu, &sd);  /* fan_out = 128 * 9, 147456 values */
  assert_true(fabs(mu) < 0.02 * sqrt(2.0 / 1152));
  assert_true(fabs(sd / sqrt(2.0 / 1152) - 1) < 0.01);
  stats(m, "conv1.weight", &mu, &sd);  /* fan_out = 32 * 49, 4704 values */
  assert_true(fabs(sd / sqrt(2.0 / 1568) - 1) < 0.05);
  stats(m, "decoder.0.fuse.weight", &mu, &sd);  /* fan_in = 256 * 9 */
  assert_true(fabs(sd / sqrt(2.0 / 2304) - 1) < 0.01);
  stats(m, "decoder.0.fuse.bias", &mu, &sd);
  assert_true(mu == 0 && sd == 0);
  stats(m, "layer2.1.bn1.weight", &mu, &sd);
  assert_true(mu == 1 && sd == 0);
  stats(m, "layer2.1.bn1.bias", &mu, &sd);
  assert_true(mu == 0 && sd == 0);
  ky_params *bs = ky_model_buffers(m);
  ky_param *rv = ky_params_find(bs, "layer4.2.bn2.running_var"), *rm = ky_params_find(bs, "layer4.2.bn2.running_mean");
  assert_true(bs->data[rv->offset] == 1.0f && bs->data[rv->offset + rv->numel - 1] == 1.0f);
  assert_true(bs->data[rm->offset] == 0.0f);
  /* same seed, same weights; another seed, other weights */
  ky_model *m2 = create("unet_resnet34", 0.5f, 3, 0, 5, 0), *m3 = create("unet_resnet34", 0.5f, 3, 0, 6, 0);
  size_t bytes = ky_model_params(m)->total * sizeof(float);
  assert_memory_equal(ky_model_params(m)->data, ky_model_params(m2)->data, bytes);
  assert_true(memcmp(ky_model_params(m)->data, ky_model_params(m3)->data, bytes) != 0);
  ky_model_free(m);
  ky_model_free(m2);
  ky_model_free(m3);
}

static int setup(void **st) { return mkdtemp(g_dir) ? 0 : -1; }
static int teardown(void **st) { return rmdir(g_dir); }

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_torchvision_names),     cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_imagenet_encoder_file), cmocka_unit_test(test_bad_shape_and_dtype),
      cmocka_unit_test(test_malformed_files),       cmocka_unit_test(test_init),
      cmocka_unit_test(test_adapt_stem),
  };
  return cmocka_run_group_tests_name("models_weights", tests, setup, teardown);
}

/* `karyon summary`: per-layer table of a model (name, kind, output shape, parameters, forward
 * FLOPs) and totals; the last line is "params: N". Library side tested by tests/test_models_summary.c. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/cli.h"
#include "models/model.h"
#include "models/summary.h"

const char ky_cmd_summary_summary[] = "print a model's layers, output shapes, parameters and FLOPs";

static void usage(void) {
  printf("usage: karyon summary --model NAME [--classes C] [--in-channels K] [--width W] [--size HxW]\n"
         "                      [--batch N] [--decoder-bn]\n"
         "  Prints one row per layer (output shape NHWC, parameters, forward FLOPs = 2 x MACs for\n"
         "  convolutions) and the totals; the last line is 'params: N'.\n"
         "  --model        one of:");
  for (const char *const *n = ky_model_names(); *n; n++) printf(" %s", *n);
  printf("\n  --classes      output channels (default 3)\n"
         "  --in-channels  input channels (default 3)\n"
         "  --width        channel multiplier (default 1 = the reference widths)\n"
         "  --size         input size HxW, multiples of 32 (default 256x256)\n"
         "  --batch        batch size for shapes and FLOPs (default 1)\n"
         "  --decoder-bn   U-Net with batch norm after each decoder conv\n");
}

static int parse_int(const char *s, int lo, int hi, int *v) {
  char *end;
  if (!isdigit((unsigned char)*s)) return 0;   /* strtol also takes " 8" and "+8" */
  long x = strtol(s, &end, 10);
  if (end == s || *end || x < lo || x > hi) return 0;
  *v = (int)x;
  return 1;
}

int ky_cmd_summary(int argc, char **argv) {
  static const char *const known[] = {"model", "classes", "in-channels", "width", "size", "batch", "decoder-bn!",
                                      "help!", NULL};
  if (ky_cli_wants_help(argc, argv)) {
    usage();
    return 0;
  }
  if (!ky_cli_check(argc, argv, "summary", known)) return 2;
  const char *name = ky_cli_opt(argc, argv, "model"), *v;
  if (!name) {
    fprintf(stderr, "karyon summary: --model is required (karyon summary --help lists the names)\n");
    return 2;
  }
  ky_model_config cfg = ky_model_config_default();
  cfg.no_alloc = 1;
  cfg.decoder_bn = ky_cli_flag(argc, argv, "decoder-bn");
  int h = 256, w = 256, n = 1;
  if ((v = ky_cli_opt(argc, argv, "classes")) && !parse_int(v, 1, 256, &cfg.classes)) {
    fprintf(stderr, "karyon summary: --classes '%s': expected an integer in 1..256\n", v);
    return 2;
  }
  if ((v = ky_cli_opt(argc, argv, "in-channels")) && !parse_int(v, 1, 64, &cfg.in_channels)) {
    fprintf(stderr, "karyon summary: --in-channels '%s': expected an integer in 1..64\n", v);
    return 2;
  }
  if ((v = ky_cli_opt(argc, argv, "batch")) && !parse_int(v, 1, 4096, &n)) {
    fprintf(stderr, "karyon summary: --batch '%s': expected an integer in 1..4096\n", v);
    return 2;
  }
  if ((v = ky_cli_opt(argc, argv, "width"))) {
    char *end;
    cfg.width = strtof(v, &end);
    if (end == v || *end) {
      fprintf(stderr, "karyon summary: --width '%s': expected a number\n", v);
      return 2;
    }
  }
  if ((v = ky_cli_opt(argc, argv, "size"))) {
    /* Bounded so that every shape and FLOP count below stays far inside int64 (sscanf's %d on a
     * huge number, and the products after it, were undefined behaviour). */
    char hs[16] = "", *x = strchr(v, 'x');
    size_t hl = x ? (size_t)(x - v) : 0;
    if (hl && hl < sizeof hs) memcpy(hs, v, hl);
    if (!x || !hl || hl >= sizeof hs || !parse_int(hs, 32, 32768, &h) || !parse_int(x + 1, 32, 32768, &w) || h % 32 ||
        w % 32) {
      fprintf(stderr, "karyon summary: --size '%s': expected HxW, each a multiple of 32 in 32..32768, e.g. 256x256\n", v);
      return 2;
    }
  }
  ky_model *m;
  ky_status s = ky_model_create(&m, name, &cfg);
  if (s != KY_OK) return ky_cli_fail("summary", s);
  ky_model_summary sum;
  s = ky_model_summarize(&sum, m, n, h, w);
  if (s != KY_OK) {
    ky_model_free(m);
    return ky_cli_fail("summary", s);
  }
  char desc[256];
  ky_model_describe(m, desc, sizeof desc);
  printf("# %s, input %dx%dx%dx%d (NHWC)\n", desc, n, h, w, cfg.in_channels);
  printf("%-30s %-9s %-22s %12s %12s\n", "layer", "kind", "output [n,h,w,c]", "params", "MFLOP");
  for (int i = 0; i < sum.n; i++) {
    const ky_summary_row *r = &sum.rows[i];
    char shp[48];
    snprintf(shp, sizeof shp, "[%d, %d, %d, %d]", r->shape[0], r->shape[1], r->shape[2], r->shape[3]);
    printf("%-30s %-9s %-22s %12lld %12.1f\n", r->name, r->kind, shp, (long long)r->params, (double)r->flops / 1e6);
  }
  printf("encoder params: %lld, decoder params: %lld, buffers: %lld floats\n", (long long)sum.enc_params,
         (long long)(sum.params - sum.enc_params), (long long)sum.buffers);
  printf("forward: %.3f GFLOP (convolutions, 2 x MACs); training step about %.3f GFLOP\n", (double)sum.flops / 1e9,
         3.0 * (double)sum.flops / 1e9);
  printf("params: %lld\n", (long long)sum.params);
  ky_model_summary_free(&sum);
  ky_model_free(m);
  return 0;
}

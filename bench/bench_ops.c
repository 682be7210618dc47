/* Times every benchmark row of the op-case table (tests/optable_cases.c): forward and
 * forward+backward, on the CPU and, when a GPU is present, on CUDA; prints a table with medians
 * and GFLOP/s (convolutions) or GB/s (the rest). Usage: bench_ops [--cpu|--cuda] [--reps N]. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/optable.h"
#include "tests/util_test.h"
#ifdef KY_HAVE_CUDA
#include "cuda/cuda.h"
#endif

/* Forward FLOPs of a conv row (2 per multiply-add), 0 for other ops. */
static double conv_flops(const ky_opcase *c) {
  if (strncmp(c->name, "bench conv", 10) != 0) return 0;
  int stride = c->iparam[0], pad = c->iparam[1], dil = c->iparam[2];
  int kh = c->shape[1][1], kw = c->shape[1][2];
  int oh = (c->shape[0][1] + 2 * pad - dil * (kh - 1) - 1) / stride + 1;
  int ow = (c->shape[0][2] + 2 * pad - dil * (kw - 1) - 1) / stride + 1;
  return 2.0 * c->shape[0][0] * oh * ow * c->shape[1][0] * kh * kw * c->shape[0][3];
}

static ky_status time_case(ky_device dev, const ky_opcase *c, int reps, double *fwd_ms, double *fb_ms, double *bytes) {
  ky_ctx ctx;
  KY_TRY(ky_ctx_init(&ctx, dev, 0));
  ky_opcase_inputs in;
  ky_status s = ky_opcase_make_inputs(&in, c, 7);
  double tf[32] = {0}, tb[32] = {0};
  for (int r = 0; r < reps + 1 && s == KY_OK; r++) {
    for (int pass = 0; pass < 2 && s == KY_OK; pass++) {
      ky_ctx_reset(&ctx);
      ky_tensor *t[KY_CASE_MAX_IN], *y;
      if ((s = ky_opcase_upload(&ctx, t, c, &in, pass)) != KY_OK) break;
#ifdef KY_HAVE_CUDA
      if (dev == KY_DEV_CUDA) ky_cuda_sync(ctx.cu);
#endif
      double t0 = ky_test_now_ms();
      if ((s = c->build(&ctx, c, t, &y)) != KY_OK) break;
      if (pass) {
        ky_tensor *dy;
        if ((s = ky_tensor_new(&ctx, &dy, KY_F32, y->ndim, y->shape)) != KY_OK) break;
        if ((s = ky_tensor_fill(&ctx, dy, 0.5f)) != KY_OK) break;
        if ((s = ky_backward_from(&ctx, y, dy)) != KY_OK) break;
      }
#ifdef KY_HAVE_CUDA
      if (dev == KY_DEV_CUDA) ky_cuda_sync(ctx.cu);
#endif
      double dt = ky_test_now_ms() - t0;
      if (r > 0) (pass ? tb : tf)[r - 1] = dt;   /* the first round warms caches and allocators */
      if (!pass && r == 0) {
        *bytes = (double)ky_tensor_bytes(y);
        for (int i = 0; i < c->n_in; i++) *bytes += (double)in.numel[i] * (c->dtype[i] == KY_U8 ? 1 : 4);
      }
    }
  }
  ky_opcase_free_inputs(&in);
  ky_ctx_free(&ctx);
  if (s != KY_OK) return s;
  qsort(tf, (size_t)reps, sizeof(double), ky_test_cmp_double);
  qsort(tb, (size_t)reps, sizeof(double), ky_test_cmp_double);
  *fwd_ms = tf[reps / 2];
  *fb_ms = tb[reps / 2];
  return KY_OK;
}

int main(int argc, char **argv) {
  int reps = 3, want_cpu = 1, want_cuda = 1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--cpu")) want_cuda = 0;
    else if (!strcmp(argv[i], "--cuda")) want_cpu = 0;
    else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
    else { fprintf(stderr, "usage: bench_ops [--cpu|--cuda] [--reps N]\n"); return 2; }
  }
  if (reps < 1 || reps > 31) reps = 3;
#ifdef KY_HAVE_CUDA
  char why[256] = "";
  if (want_cuda && ky_cuda_device_count(why, sizeof why) <= 0) {
    printf("bench_ops: CUDA rows SKIPPED: no CUDA GPU (%s)\n", why);
    want_cuda = 0;
  }
#else
  if (want_cuda) printf("bench_ops: CUDA rows SKIPPED: built without CUDA (CUDA=0)\n");
  want_cuda = 0;
#endif
  printf("%-46s %-4s %10s %10s %12s\n", "op (batch 2, 256^2 model shapes)", "dev", "fwd ms", "fwd+bwd ms", "fwd rate");
  for (int d = 0; d < 2; d++) {
    if ((d == 0 && !want_cpu) || (d == 1 && !want_cuda)) continue;
    for (const ky_opcase *c = ky_opcases; c->name; c++) {
      if (!c->bench) continue;
      double f, fb, bytes = 0;
      if (time_case(d ? KY_DEV_CUDA : KY_DEV_CPU, c, reps, &f, &fb, &bytes) != KY_OK) {
        printf("%-46s %-4s failed: %s\n", c->name + 6, d ? "cuda" : "cpu", ky_last_error());
        return 1;
      }
      double fl = conv_flops(c);
      char rate[32];
      if (fl > 0) snprintf(rate, sizeof rate, "%.1f GFLOP/s", fl / (f * 1e6));
      else snprintf(rate, sizeof rate, "%.2f GB/s", bytes / (f * 1e6));
      printf("%-46s %-4s %10.3f %10.3f %12s\n", c->name + 6, d ? "cuda" : "cpu", f, fb, rate);
    }
  }
  return 0;
}

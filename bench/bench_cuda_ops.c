/* Benchmark of the CUDA kernels other than convolution: the card's device-to-device copy
 * bandwidth first, then every kernel on the benchmark model's shapes (batch 16 at 256x256, see
 * docs and shared/spec/benchmark_model.md) and on >= 64 MiB tensors; prints median time, GB/s of
 * nominal traffic (each tensor read or written once) and the % of the measured copy bandwidth.
 * Checked by running it (bench/gpu_check.sh); without a GPU it prints one line and exits 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/status.h"
#include "cuda/cuda.h"
#include "cuda/kernels.h"

enum { WARM = 3, REPS = 15 };

typedef struct {
  ky_cuda *cu;
  float *pattern;       /* PATTERN random floats on the device, copied into every input */
  double copy_gbs;      /* measured device copy bandwidth (read + write), GB/s */
  int failures;
} bench;

#define PATTERN ((size_t)16 << 20)

static int cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return x < y ? -1 : x > y;
}

static void die_on(ky_status s, const char *what) {
  if (s != KY_OK) {
    fprintf(stderr, "bench_cuda_ops: %s: %s\n", what, ky_last_error());
    exit(1);
  }
}

static void *dalloc(bench *b, size_t bytes) {
  void *p;
  die_on(ky_cuda_malloc(b->cu, &p, bytes), "allocation");
  return p;
}

/* Device floats filled from the random pattern (values in [-1, 1)). */
static float *dinput(bench *b, size_t n) {
  float *d = (float *)dalloc(b, n * sizeof(float));
  for (size_t i = 0; i < n; i += PATTERN) {
    size_t k = n - i < PATTERN ? n - i : PATTERN;
    die_on(ky_cuda_d2d(b->cu, d + i, b->pattern, k * sizeof(float)), "d2d");
  }
  return d;
}

static uint8_t *dclasses(bench *b, size_t npix, int c) {
  uint8_t *h = (uint8_t *)malloc(npix);
  ky_rng r = ky_rng_make(7, KY_RNG_STREAM_TEST);
  for (size_t i = 0; i < npix; i++) h[i] = (uint8_t)(ky_rng_u32(&r) % (uint32_t)c);
  uint8_t *d = (uint8_t *)dalloc(b, npix);
  die_on(ky_cuda_h2d(b->cu, d, h, npix), "h2d");
  free(h);
  return d;
}

static void row(bench *b, const char *op, const char *shape, double bytes, float *ms, int n) {
  qsort(ms, n, sizeof *ms, cmp_float);
  double med = ms[n / 2];
  double gbs = med > 0 ? bytes / (med * 1e-3) / 1e9 : 0.0;
  printf("| %-26s | %-26s | %9.4f | %8.1f | %5.1f%% |\n", op, shape, med, gbs,
         b->copy_gbs > 0 ? 100.0 * gbs / b->copy_gbs : 0.0);
  fflush(stdout);
}

/* Times CALL (a ky_status expression): WARM untimed runs, then REPS runs each between events. */
#define TIME(b, op, shape, bytes, CALL)                                     \
  do {                                                                      \
    float ms_[REPS];                                                        \
    int bad_ = 0;                                                           \
    for (int r_ = 0; r_ < WARM + REPS && !bad_; r_++) {                     \
      ky_cuda_timer *t_ = NULL;                                             \
      if (r_ >= WARM) die_on(ky_cuda_timer_start((b)->cu, &t_), "timer");   \
      ky_status s_ = (CALL);                                                \
      if (s_ != KY_OK) {                                                    \
        fprintf(stderr, "%s: %s\n", op, ky_last_error());                   \
        bad_ = 1;                                                           \
        (b)->failures++;                                                    \
      }                                                                     \
      if (t_) die_on(ky_cuda_timer_stop((b)->cu, t_, &ms_[r_ - WARM]), "timer"); \
    }                                                                       \
    if (!bad_) row((b), (op), (shape), (double)(bytes), ms_, REPS);         \
  } while (0)

static void copy_bandwidth(bench *b) {
  size_t bytes = (size_t)256 << 20;
  void *x = dalloc(b, bytes), *y = dalloc(b, bytes);
  die_on(ky_cuda_memset(b->cu, x, 1, bytes), "memset");
  float ms[REPS] = {0};
  for (int r = 0; r < WARM + REPS; r++) {
    ky_cuda_timer *t = NULL;
    if (r >= WARM) die_on(ky_cuda_timer_start(b->cu, &t), "timer");
    die_on(ky_cuda_d2d(b->cu, y, x, bytes), "d2d");
    if (t) die_on(ky_cuda_timer_stop(b->cu, t, &ms[r - WARM]), "timer");
  }
  qsort(ms, REPS, sizeof *ms, cmp_float);
  b->copy_gbs = 2.0 * bytes / (ms[REPS / 2] * 1e-3) / 1e9;
  printf("device copy (cudaMemcpyAsync d2d, 256 MiB): %.3f ms, %.1f GB/s (read + write)\n\n", ms[REPS / 2],
         b->copy_gbs);
  ky_cuda_release(b->cu, x);
  ky_cuda_release(b->cu, y);
}

static void bench_elementwise(bench *b, size_t n, const char *shape) {
  ky_cuda *cu = b->cu;
  float *x = dinput(b, n), *y = dinput(b, n), *g = dinput(b, n), *d = dinput(b, n);
  double B = (double)n * 4;
  TIME(b, "relu_fwd", shape, 2 * B, ky_cuda_relu_fwd(cu, y, x, n));
  TIME(b, "relu_bwd", shape, 4 * B, ky_cuda_relu_bwd(cu, d, g, y, n));
  TIME(b, "sigmoid_fwd", shape, 2 * B, ky_cuda_sigmoid_fwd(cu, y, x, n));
  TIME(b, "sigmoid_bwd", shape, 4 * B, ky_cuda_sigmoid_bwd(cu, d, g, y, n));
  TIME(b, "add_fwd", shape, 3 * B, ky_cuda_add_fwd(cu, y, x, g, n));
  TIME(b, "scale_fwd", shape, 2 * B, ky_cuda_scale_fwd(cu, y, x, 0.5f, n));
  TIME(b, "axpy", shape, 3 * B, ky_cuda_axpy(cu, d, x, 1e-3f, n));
  TIME(b, "fill", shape, B, ky_cuda_fill(cu, y, 0.f, n));
  ky_cuda_release(cu, x);
  ky_cuda_release(cu, y);
  ky_cuda_release(cu, g);
  ky_cuda_release(cu, d);
}

static void bench_bn(bench *b, int n, int h, int w, int c) {
  ky_cuda *cu = b->cu;
  size_t npix = (size_t)n * h * w, N = npix * c;
  char shape[64];
  snprintf(shape, sizeof shape, "%dx%dx%dx%d", n, h, w, c);
  float *x = dinput(b, N), *y = dinput(b, N), *dy = dinput(b, N), *dx = dinput(b, N);
  float *gam = dinput(b, c), *bet = dinput(b, c), *sm = dinput(b, c), *si = dinput(b, c);
  float *rm = dinput(b, c), *rv = (float *)dalloc(b, c * sizeof(float)), *dg = dinput(b, c), *db = dinput(b, c);
  die_on(ky_cuda_fill(cu, rv, 1.f, c), "fill");
  double B = (double)N * 4;
  TIME(b, "bn_fwd_train", shape, 3 * B, ky_cuda_bn_fwd_train(cu, y, sm, si, rm, rv, x, gam, bet, npix, c, 1e-5f, 0.1f));
  TIME(b, "bn_fwd_eval", shape, 2 * B, ky_cuda_bn_fwd_eval(cu, y, x, gam, bet, rm, rv, npix, c, 1e-5f));
  TIME(b, "bn_bwd_train", shape, 6 * B, ky_cuda_bn_bwd_train(cu, dx, dg, db, dy, x, gam, sm, si, npix, c));
  TIME(b, "bn_bwd_eval", shape, 6 * B, ky_cuda_bn_bwd_eval(cu, dx, dg, db, dy, x, gam, rm, rv, npix, c, 1e-5f));
  void *all[] = {x, y, dy, dx, gam, bet, sm, si, rm, rv, dg, db};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) ky_cuda_release(cu, all[i]);
}

static void bench_pool(bench *b, int n, int h, int w, int c) {
  ky_cuda *cu = b->cu;
  ky_pool_shape s = {n, h, w, c, 3, 2, 1, (h + 2 - 3) / 2 + 1, (w + 2 - 3) / 2 + 1};
  size_t nin = (size_t)n * h * w * c, nout = (size_t)n * s.oh * s.ow * c;
  char shape[64];
  snprintf(shape, sizeof shape, "%dx%dx%dx%d k3s2p1", n, h, w, c);
  float *x = dinput(b, nin), *dx = dinput(b, nin), *y = dinput(b, nout), *dy = dinput(b, nout);
  int32_t *am = (int32_t *)dalloc(b, nout * sizeof(int32_t));
  TIME(b, "maxpool_fwd", shape, 4.0 * (nin + 2 * nout), ky_cuda_maxpool_fwd(cu, y, am, x, &s));
  TIME(b, "maxpool_bwd", shape, 4.0 * (2 * nin + 2 * nout), ky_cuda_maxpool_bwd(cu, dx, dy, am, &s));
  void *all[] = {x, dx, y, dy, am};
  for (size_t i = 0; i < 5; i++) ky_cuda_release(cu, all[i]);
}

static void bench_gap(bench *b, int n, int hw, int c) {
  ky_cuda *cu = b->cu;
  size_t nin = (size_t)n * hw * c, nout = (size_t)n * c;
  char shape[64];
  snprintf(shape, sizeof shape, "%dx%dx%d", n, hw, c);
  float *x = dinput(b, nin), *dx = dinput(b, nin), *y = dinput(b, nout);
  TIME(b, "gap_fwd", shape, 4.0 * (nin + nout), ky_cuda_gap_fwd(cu, y, x, n, hw, c));
  TIME(b, "gap_bwd", shape, 4.0 * (2 * nin + nout), ky_cuda_gap_bwd(cu, dx, y, n, hw, c));
  ky_cuda_release(cu, x);
  ky_cuda_release(cu, dx);
  ky_cuda_release(cu, y);
}

static void bench_concat(bench *b, int n, int h, int w, int c0, int c1) {
  ky_cuda *cu = b->cu;
  size_t npix = (size_t)n * h * w, ny = npix * (c0 + c1);
  char shape[64];
  snprintf(shape, sizeof shape, "%dx%dx%dx[%d+%d]", n, h, w, c0, c1);
  float *a = dinput(b, npix * c0), *c = dinput(b, npix * c1), *y = dinput(b, ny);
  const float *xs[2] = {a, c};
  float *dxs[2] = {a, c};
  int cs[2] = {c0, c1};
  TIME(b, "concat_fwd", shape, 4.0 * 2 * ny, ky_cuda_concat_fwd(cu, y, xs, cs, 2, npix));
  TIME(b, "concat_bwd", shape, 4.0 * 3 * ny, ky_cuda_concat_bwd(cu, dxs, y, cs, 2, npix));
  ky_cuda_release(cu, a);
  ky_cuda_release(cu, c);
  ky_cuda_release(cu, y);
}

static void bench_upsample(bench *b, int n, int h, int w, int c) {
  ky_cuda *cu = b->cu;
  size_t nin = (size_t)n * h * w * c, nout = nin * 4;
  char shape[64];
  snprintf(shape, sizeof shape, "%dx%dx%dx%d x2", n, h, w, c);
  float *x = dinput(b, nin), *dx = dinput(b, nin), *y = dinput(b, nout);
  TIME(b, "upsample_nearest_fwd", shape, 4.0 * (nin + nout), ky_cuda_upsample_nearest_fwd(cu, y, x, n, h, w, c, 2));
  TIME(b, "upsample_nearest_bwd", shape, 4.0 * (2 * nin + nout), ky_cuda_upsample_nearest_bwd(cu, dx, y, n, h, w, c, 2));
  TIME(b, "upsample_bilinear2_fwd", shape, 4.0 * (nin + nout), ky_cuda_upsample_bilinear2_fwd(cu, y, x, n, h, w, c));
  TIME(b, "upsample_bilinear2_bwd", shape, 4.0 * (2 * nin + nout), ky_cuda_upsample_bilinear2_bwd(cu, dx, y, n, h, w, c));
  ky_cuda_release(cu, x);
  ky_cuda_release(cu, dx);
  ky_cuda_release(cu, y);
}

static void bench_head(bench *b, int n, int h, int w, int c) {
  ky_cuda *cu = b->cu;
  size_t npix = (size_t)n * h * w, N = npix * c;
  char shape[64];
  snprintf(shape, sizeof shape, "%dx%dx%dx%d", n, h, w, c);
  float *x = dinput(b, N), *p = dinput(b, N), *g = dinput(b, N), *dx = dinput(b, N), *t = dinput(b, N);
  uint8_t *cls = dclasses(b, npix, c);
  float *scal = dinput(b, 64);
  double *sums = (double *)dalloc(b, (size_t)n * 3 * sizeof(double));
  double B = (double)N * 4;
  TIME(b, "softmax_fwd", shape, 2 * B, ky_cuda_softmax_fwd(cu, p, x, npix, c));
  TIME(b, "softmax_bwd", shape, 4 * B, ky_cuda_softmax_bwd(cu, dx, g, p, npix, c));
  TIME(b, "softmax_ce_fwd", shape, B + npix, ky_cuda_softmax_ce_fwd(cu, scal, x, cls, NULL, npix, c));
  TIME(b, "softmax_ce_bwd", shape, 3 * B + 2.0 * npix, ky_cuda_softmax_ce_bwd(cu, dx, x, cls, NULL, scal + 1, npix, c));
  TIME(b, "onehot", shape, B + npix, ky_cuda_onehot(cu, t, cls, npix, c));
  TIME(b, "dice_fwd (per image)", shape, 2 * B, ky_cuda_dice_fwd(cu, scal + 2, sums, p, c, 2, t, c, 2, n, (size_t)h * w, 1e-3f, 1));
  TIME(b, "dice_bwd (per image)", shape, 3 * B, ky_cuda_dice_bwd(cu, dx, scal + 2, sums, p, c, 2, t, c, 2, n, (size_t)h * w, 1e-3f, 1));
  TIME(b, "bce_logits_fwd (ch 0)", shape, 2 * B, ky_cuda_bce_logits_fwd(cu, scal + 20, x, t, npix, c, 0));
  TIME(b, "bce_logits_bwd (ch 0)", shape, 3 * B, ky_cuda_bce_logits_bwd(cu, dx, x, t, scal + 1, npix, c, 0));
  void *all[] = {x, p, g, dx, t, cls, scal, sums};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) ky_cuda_release(cu, all[i]);
}

static void bench_optim(bench *b, size_t n) {
  ky_cuda *cu = b->cu;
  char shape[64];
  snprintf(shape, sizeof shape, "%.1fM params", n / 1e6);
  float *p = dinput(b, n), *m = dinput(b, n), *v = dinput(b, n), *vm = dinput(b, n), *g = dinput(b, n);
  die_on(ky_cuda_fill(cu, v, 0.01f, n), "fill");
  die_on(ky_cuda_fill(cu, vm, 0.01f, n), "fill");
  double *out = (double *)dalloc(b, sizeof(double));
  ky_adam_args a = {1e-4f, 0.9f, 0.999f, 1e-8f, 0.f, 0, 10};
  ky_sgd_args s = {1e-2f, 0.9f, 0.f, 1e-4f, 0, 10};
  double B = (double)n * 4;
  TIME(b, "adam", shape, 7 * B, ky_cuda_adam(cu, p, m, v, NULL, g, n, &a));
  a.amsgrad = 1;
  TIME(b, "adam (amsgrad)", shape, 9 * B, ky_cuda_adam(cu, p, m, v, vm, g, n, &a));
  TIME(b, "sgd (momentum, wd)", shape, 5 * B, ky_cuda_sgd(cu, p, m, g, n, &s));
  TIME(b, "sumsq", shape, B, ky_cuda_sumsq(cu, out, g, n));
  void *all[] = {p, m, v, vm, g, out};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) ky_cuda_release(cu, all[i]);
}

int main(void) {
  char why[256];
  if (ky_cuda_device_count(why, sizeof why) == 0) {
    printf("bench_cuda_ops: SKIPPED: no CUDA GPU (%s)\n", why);
    return 0;
  }
  bench b = {0};
  die_on(ky_cuda_init(&b.cu, 0), "init");
  char name[128];
  int sm;
  die_on(ky_cuda_device_name(b.cu, name, sizeof name, &sm), "device");
  printf("bench_cuda_ops: %s (sm_%d); median of %d runs after %d warm-up; GB/s counts each tensor read or "
         "written once\n",
         name, sm, REPS, WARM);
  {
    float *h = (float *)malloc(PATTERN * sizeof(float));
    ky_rng r = ky_rng_make(1, KY_RNG_STREAM_TEST);
    for (size_t i = 0; i < PATTERN; i++) h[i] = 2.f * ky_rng_uniform(&r) - 1.f;
    b.pattern = (float *)dalloc(&b, PATTERN * sizeof(float));
    die_on(ky_cuda_h2d(b.cu, b.pattern, h, PATTERN * sizeof(float)), "h2d");
    free(h);
  }
  copy_bandwidth(&b);
  printf("| %-26s | %-26s | %9s | %8s | %6s |\n", "kernel", "shape", "ms", "GB/s", "% copy");
  printf("|%.28s|%.28s|%.11s|%.10s|%.8s|\n", "----------------------------", "----------------------------",
         "-----------", "----------", "--------");
  /* benchmark model, batch 16 at 256x256 (E0 = 64 ch at 1/2, E1 = 64 at 1/4, E4 = 512 at 1/32) */
  bench_elementwise(&b, (size_t)16 * 128 * 128 * 64, "16x128x128x64 (64 MiB)");
  bench_elementwise(&b, (size_t)64 << 20, "64M floats (256 MiB)");
  bench_bn(&b, 16, 128, 128, 64);
  bench_bn(&b, 16, 64, 64, 64);
  bench_bn(&b, 16, 16, 16, 256);
  bench_bn(&b, 16, 8, 8, 512);
  bench_pool(&b, 16, 128, 128, 64);
  bench_gap(&b, 16, 8 * 8, 512);
  bench_gap(&b, 16, 128 * 128, 64);
  bench_concat(&b, 16, 128, 128, 64, 64);
  bench_concat(&b, 16, 16, 16, 256, 256);
  bench_upsample(&b, 16, 128, 128, 64);
  bench_upsample(&b, 16, 8, 8, 512);
  bench_head(&b, 16, 256, 256, 3);
  bench_optim(&b, 24500000);
  size_t in_use, reserved, peak;
  ky_cuda_mem_stats(b.cu, &in_use, &reserved, &peak);
  printf("\nallocator: peak %.1f MiB in use, %.1f MiB reserved\n", peak / 1048576.0, reserved / 1048576.0);
  ky_cuda_release(b.cu, b.pattern);
  ky_cuda_free(b.cu);
  if (b.failures) {
    printf("bench_cuda_ops: %d kernel(s) failed\n", b.failures);
    return 1;
  }
  return 0;
}

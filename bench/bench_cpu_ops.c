/* Benchmark of the CPU reference kernels on the shapes of the benchmark model (ResNet34 U-Net,
 * batch 2, 256 x 256; /work/shared/spec/benchmark_model.md). Prints one table: op, shape, median ms
 * (thread CPU time, and wall clock), GFLOP/s (conv) or GB/s (read + write), then the model-weighted
 * conv GFLOP/s.
 * Each conv is spot-checked against a direct dot product before it is timed.
 * Usage: bench_cpu_ops [reps] [--threads N | --threads A,B]   (default 3 reps, 1 thread; under a
 * minute on 1 core). With N the kernels run on a pool of N threads (the CPU-time column then
 * counts the calling thread only); with A,B each op is timed at both counts, interleaved, and the
 * row adds the wall-clock median at B and the speed-up of B over A. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/pool.h"
#include "ops/kernels.h"

static double clock_s(clockid_t id) {
  struct timespec t;
  clock_gettime(id, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}
static double now(void) { return clock_s(CLOCK_MONOTONIC); }
static double cpu_now(void) { return clock_s(CLOCK_THREAD_CPUTIME_ID); }

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static float *buf(size_t n, uint32_t seed) {
  float *a = malloc(n * sizeof *a);
  if (!a) {
    fprintf(stderr, "bench_cpu_ops: out of memory (%zu floats)\n", n);
    exit(1);
  }
  uint32_t s = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    a[i] = (float)(s >> 8) * (1.0f / 16777216.0f) - 0.5f;
  }
  return a;
}

static int g_reps = 3;
static ky_pool *g_pool;  /* the pool the timed statement runs on (NULL: the caller alone) */
static int g_threads = 1; /* --threads N, or the first of --threads A,B */
/* --threads A,B: every statement is timed at A and at B threads, the two interleaved run by run,
 * so that a slow moment of a shared host hits both alike; the row then adds B's wall-clock median
 * and the speed-up A / B. */
static int g_ncfg = 1;
static ky_pool *g_pools[2];
static int g_counts[2] = {1, 1};
static double g_wall_ms;     /* wall-clock median of the last TIME_MS at the first count */
static double g_wall2_ms;    /* ... at the second count (--threads A,B) */

/* Median milliseconds of g_reps runs of the statement, in this thread's CPU time (the machine is
 * shared: CPU time does not count the slices other processes take), and the wall-clock medians. */
#define TIME_MS(out, stmt)                                                                           \
  do {                                                                                               \
    double t_[32] = {0}, w_[2][32] = {{0}};                                                          \
    int r_ = g_reps < 32 ? g_reps : 32;                                                              \
    for (int i_ = 0; i_ < r_; i_++)                                                                  \
      for (int k_ = 0; k_ < g_ncfg; k_++) {                                                          \
        g_pool = g_pools[k_];                                                                        \
        double t0_ = cpu_now(), w0_ = now();                                                         \
        stmt;                                                                                        \
        if (k_ == 0) t_[i_] = (cpu_now() - t0_) * 1e3;                                               \
        w_[k_][i_] = (now() - w0_) * 1e3;                                                            \
      }                                                                                              \
    g_pool = g_pools[0];                                                                             \
    qsort(t_, r_, sizeof *t_, cmp_double);                                                           \
    qsort(w_[0], r_, sizeof *w_[0], cmp_double);                                                     \
    qsort(w_[1], r_, sizeof *w_[1], cmp_double);                                                     \
    (out) = t_[r_ / 2];                                                                              \
    g_wall_ms = w_[0][r_ / 2];                                                                       \
    g_wall2_ms = w_[1][r_ / 2];                                                                      \
  } while (0)

/* The second count's columns of a row (nothing with one count). */
static void tail2(double wall1, double wall2) {
  if (g_ncfg == 2) printf(" %9.2f %7.2fx", wall2, wall1 / wall2);
  printf("\n");
}

static void row_rate(const char *op, const char *shape, double ms, double gbytes) {
  printf("%-26s %-22s %9.2f %9.2f %9.1f GB/s", op, shape, ms, g_wall_ms, gbytes / (ms * 1e-3));
  tail2(g_wall_ms, g_wall2_ms);
}

/* ---- convolutions ------------------------------------------------------------------------- */

typedef struct {
  const char *name;
  int hin, c, k, ksz, stride, pad;
  int count; /* how many convs of this shape one forward pass of the model runs */
} conv_row;

static const conv_row convs[] = {
    {"stem 7x7/2", 256, 3, 64, 7, 2, 3, 1},
    {"enc1 3x3", 64, 64, 64, 3, 1, 1, 6},
    {"enc2 3x3/2", 64, 64, 128, 3, 2, 1, 1},
    {"enc2 3x3", 32, 128, 128, 3, 1, 1, 7},
    {"enc2 down 1x1/2", 64, 64, 128, 1, 2, 0, 1},
    {"enc3 3x3/2", 32, 128, 256, 3, 2, 1, 1},
    {"enc3 3x3", 16, 256, 256, 3, 1, 1, 11},
    {"enc3 down 1x1/2", 32, 128, 256, 1, 2, 0, 1},
    {"enc4 3x3/2", 16, 256, 512, 3, 2, 1, 1},
    {"enc4 3x3", 8, 512, 512, 3, 1, 1, 5},
    {"enc4 down 1x1/2", 16, 256, 512, 1, 2, 0, 1},
    {"dec4 3x3", 16, 512, 256, 3, 1, 1, 2},
    {"dec3 3x3", 32, 256, 128, 3, 1, 1, 2},
    {"dec2 3x3", 64, 128, 64, 3, 1, 1, 2},
    {"dec1a 3x3", 128, 64, 64, 3, 1, 1, 1},
    {"dec1b 3x3", 128, 128, 64, 3, 1, 1, 1},
    {"final 3x3", 256, 64, 64, 3, 1, 1, 1},
    {"logits 3x3", 256, 64, 3, 3, 1, 1, 1},
};

/* Spot check of a few elements of y, dx and dw against direct sums in double; returns the worst
 * error relative to the magnitude of the terms. */
static double conv_spot_check(const ky_conv_shape *s, const float *x, const float *w, const float *y,
                              const float *dy, const float *dx, const float *dw) {
  double worst = 0;
  uint32_t r = 12345;
  /* An empty layer: nothing to check. From here every dimension is >= 1, so no size below is 0. */
  if (s->n < 1 || s->c < 1 || s->h < 1 || s->w < 1 || s->k < 1 || s->kh < 1 || s->kw < 1 || s->oh < 1 ||
      s->ow < 1)
    return 0;
  size_t ny = (size_t)s->n * s->oh * s->ow * s->k, nx = (size_t)s->n * s->h * s->w * s->c;
  size_t nw = (size_t)s->k * s->kh * s->kw * s->c;
  for (int t = 0; t < 6; t++) {
    r = r * 1664525u + 1013904223u;
    /* The sizes are >= 1 (checked above); the `?:` only tells the static analyser, which loses the
     * products' constraints over this loop's iterations. */
    size_t oi = r % (ny ? ny : 1), xi = (r >> 3) % (nx ? nx : 1), wi = (r >> 5) % (nw ? nw : 1);
    /* y[oi] */
    {
      int k = (int)(oi % s->k);
      size_t p = oi / s->k;
      int ox = (int)(p % s->ow), oy = (int)(p / s->ow % s->oh), n = (int)(p / ((size_t)s->ow * s->oh));
      double acc = 0, mag = 1e-30;
      for (int i = 0; i < s->kh; i++)
        for (int j = 0; j < s->kw; j++) {
          int iy = oy * s->stride - s->pad + i, ix = ox * s->stride - s->pad + j;
          if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w) continue;
          for (int c = 0; c < s->c; c++) {
            double v = (double)x[(((size_t)n * s->h + iy) * s->w + ix) * s->c + c] *
                       w[(((size_t)k * s->kh + i) * s->kw + j) * s->c + c];
            acc += v;
            mag += fabs(v);
          }
        }
      worst = fmax(worst, fabs(acc - y[oi]) / mag);
    }
    /* dx[xi] (dx started at zero) */
    {
      int c = (int)(xi % s->c);
      size_t p = xi / s->c;
      int ix = (int)(p % s->w), iy = (int)(p / s->w % s->h), n = (int)(p / ((size_t)s->w * s->h));
      double acc = 0, mag = 1e-30;
      for (int oy = 0; oy < s->oh; oy++)
        for (int i = 0; i < s->kh; i++) {
          if (oy * s->stride - s->pad + i != iy) continue;
          for (int ox = 0; ox < s->ow; ox++)
            for (int j = 0; j < s->kw; j++) {
              if (ox * s->stride - s->pad + j != ix) continue;
              for (int k = 0; k < s->k; k++) {
                double v = (double)dy[(((size_t)n * s->oh + oy) * s->ow + ox) * s->k + k] *
                           w[(((size_t)k * s->kh + i) * s->kw + j) * s->c + c];
                acc += v;
                mag += fabs(v);
              }
            }
        }
      worst = fmax(worst, fabs(acc - dx[xi]) / mag);
    }
    /* dw[wi] (dw started at zero) */
    {
      int c = (int)(wi % s->c), j = (int)(wi / s->c % s->kw), i = (int)(wi / ((size_t)s->c * s->kw) % s->kh);
      int k = (int)(wi / ((size_t)s->c * s->kw * s->kh));
      double acc = 0, mag = 1e-30;
      for (int n = 0; n < s->n; n++)
        for (int oy = 0; oy < s->oh; oy++)
          for (int ox = 0; ox < s->ow; ox++) {
            int iy = oy * s->stride - s->pad + i, ix = ox * s->stride - s->pad + j;
            if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w) continue;
            double v = (double)dy[(((size_t)n * s->oh + oy) * s->ow + ox) * s->k + k] *
                       x[(((size_t)n * s->h + iy) * s->w + ix) * s->c + c];
            acc += v;
            mag += fabs(v);
          }
      worst = fmax(worst, fabs(acc - dw[wi]) / mag);
    }
  }
  return worst;
}

static int bench_convs(int batch) {
  double tot_flop = 0, tot_ms = 0, pass_flop[3] = {0}, pass_ms[3] = {0};
  int bad = 0;
  for (size_t ci = 0; ci < sizeof convs / sizeof *convs; ci++) {
    const conv_row *cr = &convs[ci];
    ky_conv_shape s = {.n = batch, .h = cr->hin, .w = cr->hin, .c = cr->c, .k = cr->k, .kh = cr->ksz,
                       .kw = cr->ksz, .stride = cr->stride, .pad = cr->pad, .dil = 1};
    if (!ky_conv_shape_finish(&s)) return 1;
    size_t nx = (size_t)s.n * s.h * s.w * s.c, ny = (size_t)s.n * s.oh * s.ow * s.k;
    size_t nw = (size_t)s.k * s.kh * s.kw * s.c;
    float *x = buf(nx, 1), *w = buf(nw, 2), *b = buf(s.k, 3), *dy = buf(ny, 4), *y = buf(ny, 5);
    float *dx = calloc(nx, sizeof *dx), *dw = calloc(nw, sizeof *dw), *db = calloc(s.k, sizeof *db);
    float *work = malloc(ky_cpu_conv2d_work_floats(&s, g_counts[0] > g_counts[1] ? g_counts[0] : g_counts[1]) * sizeof *work);
    /* correctness first: one untimed run of each pass, spot-checked */
    ky_cpu_conv2d_fwd(g_pool, y, x, w, NULL, &s, 0, work);
    ky_cpu_conv2d_dgrad(g_pool, dx, dy, w, &s, work);
    ky_cpu_conv2d_wgrad(g_pool, dw, db, dy, x, &s, work);
    double err = conv_spot_check(&s, x, w, y, dy, dx, dw);
    if (err > 1e-4) {
      printf("%-26s spot check FAILED (relative error %.2g)\n", cr->name, err);
      bad = 1;
    }
    double flop = 2.0 * ny * s.kh * s.kw * s.c, ms[3];
    double wall[3], wall2[3];
    TIME_MS(ms[0], ky_cpu_conv2d_fwd(g_pool, y, x, w, b, &s, 1, work));
    wall[0] = g_wall_ms, wall2[0] = g_wall2_ms;
    TIME_MS(ms[1], ky_cpu_conv2d_dgrad(g_pool, dx, dy, w, &s, work));
    wall[1] = g_wall_ms, wall2[1] = g_wall2_ms;
    TIME_MS(ms[2], ky_cpu_conv2d_wgrad(g_pool, dw, db, dy, x, &s, work));
    wall[2] = g_wall_ms, wall2[2] = g_wall2_ms;
    char shape[64];
    snprintf(shape, sizeof shape, "%dx%d^2x%d->%d x%d", batch, cr->hin, cr->c, cr->k, cr->count);
    const char *pass[3] = {"fwd", "dgrad", "wgrad"};
    for (int p = 0; p < 3; p++) {
      char op[48];
      snprintf(op, sizeof op, "conv %s %s", cr->name, pass[p]);
      printf("%-26s %-22s %9.2f %9.2f %9.1f GFLOP/s", op, shape, ms[p], wall[p], flop / (ms[p] * 1e6));
      tail2(wall[p], wall2[p]);
      pass_flop[p] += flop * cr->count;
      pass_ms[p] += ms[p] * cr->count;
      tot_flop += flop * cr->count;
      tot_ms += ms[p] * cr->count;
    }
    free(x); free(w); free(b); free(dy); free(y); free(dx); free(dw); free(db); free(work);
  }
  printf("\nCONV GFLOP/s (model-weighted, batch %d, 256^2: every conv of the ResNet34 U-Net, fwd+dgrad+wgrad):"
         " %.1f GFLOP/s  [fwd %.1f, dgrad %.1f, wgrad %.1f]; %.1f GFLOP in %.0f ms per training step\n\n",
         batch, tot_flop / (tot_ms * 1e6), pass_flop[0] / (pass_ms[0] * 1e6), pass_flop[1] / (pass_ms[1] * 1e6),
         pass_flop[2] / (pass_ms[2] * 1e6), tot_flop * 1e-9, tot_ms);
  return bad;
}

/* ---- everything else: memory-bound, reported in GB/s (bytes read + written) ---------------- */

static void bench_others(int batch) {
  char shape[64];
  double ms;
  /* BN + ReLU after the stem: 2 x 128 x 128 x 64 */
  {
    size_t npix = (size_t)batch * 128 * 128;
    int c = 64;
    size_t n = npix * c;
    float *x = buf(n, 1), *y = buf(n, 2), *dy = buf(n, 3), *dx = calloc(n, sizeof *dx);
    float *g = buf(c, 4), *b = buf(c, 5), sm[64], si[64], rm[64] = {0}, rv[64], dg[64] = {0}, dbt[64] = {0};
    for (int i = 0; i < c; i++) rv[i] = 1;
    snprintf(shape, sizeof shape, "%dx128^2x64", batch);
    TIME_MS(ms, ky_cpu_bn_fwd_train(g_pool, y, sm, si, rm, rv, x, g, b, npix, c, 1e-5f, 0.1f));
    row_rate("bn fwd train", shape, ms, 4.0 * 3 * n * 1e-9); /* two reads for stats, one read + write */
    TIME_MS(ms, ky_cpu_bn_bwd_train(g_pool, dx, dg, dbt, dy, x, g, sm, si, npix, c));
    row_rate("bn bwd train", shape, ms, 4.0 * 5 * n * 1e-9);
    TIME_MS(ms, ky_cpu_bn_fwd_eval(g_pool, y, x, g, b, rm, rv, npix, c, 1e-5f));
    row_rate("bn fwd eval", shape, ms, 4.0 * 2 * n * 1e-9);
    TIME_MS(ms, ky_cpu_relu_fwd(g_pool, y, x, n));
    row_rate("relu fwd", shape, ms, 4.0 * 2 * n * 1e-9);
    TIME_MS(ms, ky_cpu_relu_bwd(g_pool, dx, dy, y, n));
    row_rate("relu bwd", shape, ms, 4.0 * 4 * n * 1e-9);
    TIME_MS(ms, ky_cpu_add_fwd(g_pool, dx, x, y, n));
    row_rate("add fwd", shape, ms, 4.0 * 3 * n * 1e-9);
    TIME_MS(ms, ky_cpu_axpy(g_pool, dx, x, 0.5f, n));
    row_rate("axpy", shape, ms, 4.0 * 3 * n * 1e-9);
    TIME_MS(ms, ky_cpu_sigmoid_fwd(g_pool, y, x, n));
    row_rate("sigmoid fwd", shape, ms, 4.0 * 2 * n * 1e-9);

    /* maxpool 3/2/1 */
    ky_pool_shape ps = {.n = batch, .h = 128, .w = 128, .c = 64, .k = 3, .stride = 2, .pad = 1};
    ky_pool_shape_finish(&ps);
    size_t no = (size_t)batch * ps.oh * ps.ow * c;
    int32_t *am = malloc(no * sizeof *am);
    TIME_MS(ms, ky_cpu_maxpool_fwd(g_pool, y, am, x, &ps));
    row_rate("maxpool 3/2/1 fwd", shape, ms, (4.0 * n + 8.0 * no) * 1e-9);
    TIME_MS(ms, ky_cpu_maxpool_bwd(g_pool, dx, dy, am, &ps));
    row_rate("maxpool 3/2/1 bwd", shape, ms, (8.0 * no + 8.0 * no) * 1e-9);
    free(am);

    /* concat of two 64-channel maps at 128^2 (dec1b input) */
    float *cat = malloc(2 * n * sizeof *cat);
    const float *xs[2] = {x, y};
    float *dxs[2] = {dx, dy};
    const int cs[2] = {64, 64};
    TIME_MS(ms, ky_cpu_concat_fwd(g_pool, cat, xs, cs, 2, npix));
    row_rate("concat 64+64 fwd", shape, ms, 4.0 * 4 * n * 1e-9);
    TIME_MS(ms, ky_cpu_concat_bwd(g_pool, dxs, cat, cs, 2, npix));
    row_rate("concat 64+64 bwd", shape, ms, 4.0 * 6 * n * 1e-9);

    /* upsampling 128^2 -> 256^2, 64 channels (the final decoder stage) */
    float *up = malloc(4 * n * sizeof *up);
    TIME_MS(ms, ky_cpu_upsample_nearest_fwd(g_pool, up, x, batch, 128, 128, c, 2));
    row_rate("upsample nearest x2 fwd", shape, ms, 4.0 * 5 * n * 1e-9);
    TIME_MS(ms, ky_cpu_upsample_nearest_bwd(g_pool, dx, up, batch, 128, 128, c, 2));
    row_rate("upsample nearest x2 bwd", shape, ms, 4.0 * 6 * n * 1e-9);
    TIME_MS(ms, ky_cpu_upsample_bilinear2_fwd(g_pool, up, x, batch, 128, 128, c));
    row_rate("upsample bilinear x2 fwd", shape, ms, 4.0 * 5 * n * 1e-9);
    TIME_MS(ms, ky_cpu_upsample_bilinear2_bwd(g_pool, dx, up, batch, 128, 128, c));
    row_rate("upsample bilinear x2 bwd", shape, ms, 4.0 * 6 * n * 1e-9);
    free(up);
    free(cat);
    free(x); free(y); free(dy); free(dx); free(g); free(b);
  }
  /* softmax and the losses on the logits: 2 x 256 x 256 x 3 */
  {
    size_t npix = (size_t)batch * 256 * 256;
    int c = 3;
    size_t n = npix * c;
    float *x = buf(n, 7), *y = buf(n, 8), *dy = buf(n, 9), *dx = calloc(n, sizeof *dx), *t = malloc(n * sizeof *t);
    uint8_t *cls = malloc(npix);
    for (size_t i = 0; i < npix; i++) cls[i] = (uint8_t)(i * 7 % 3);
    ky_cpu_onehot(g_pool, t, cls, npix, c);
    snprintf(shape, sizeof shape, "%dx256^2x3", batch);
    TIME_MS(ms, ky_cpu_softmax_fwd(g_pool, y, x, npix, c));
    row_rate("softmax fwd", shape, ms, 4.0 * 2 * n * 1e-9);
    TIME_MS(ms, ky_cpu_softmax_bwd(g_pool, dx, dy, y, npix, c));
    row_rate("softmax bwd", shape, ms, 4.0 * 4 * n * 1e-9);
    float loss, dice[2], dd[2] = {1, 1};
    double sums[6];
    double *terms = malloc(npix * sizeof *terms);
    TIME_MS(ms, ky_cpu_softmax_ce_fwd(g_pool, &loss, terms, x, cls, NULL, npix, c));
    row_rate("softmax CE fwd", shape, ms, (4.0 * n + npix) * 1e-9);
    TIME_MS(ms, ky_cpu_softmax_ce_bwd(g_pool, dx, x, cls, NULL, 1.0f, npix, c));
    row_rate("softmax CE bwd", shape, ms, (4.0 * 3 * n + npix) * 1e-9);
    TIME_MS(ms, ky_cpu_bce_logits_fwd(&loss, x, t, npix, c, 1));
    row_rate("BCE logits fwd (1 ch)", shape, ms, 4.0 * 2 * npix * 1e-9);
    TIME_MS(ms, ky_cpu_bce_logits_bwd(g_pool, dx, x, t, 1.0f, npix, c, 1));
    row_rate("BCE logits bwd (1 ch)", shape, ms, 4.0 * 4 * npix * 1e-9);
    TIME_MS(ms, ky_cpu_dice_fwd(dice, sums, y, c, 2, t, c, 2, batch, 256 * 256, 1e-3f, 1));
    row_rate("dice fwd per image (1 ch)", shape, ms, 4.0 * 2 * npix * 1e-9);
    TIME_MS(ms, ky_cpu_dice_bwd(g_pool, dx, dd, sums, y, c, 2, t, c, 2, batch, 256 * 256, 1e-3f, 1));
    row_rate("dice bwd per image (1 ch)", shape, ms, 4.0 * 3 * npix * 1e-9);
    TIME_MS(ms, ky_cpu_onehot(g_pool, t, cls, npix, c));
    row_rate("onehot", shape, ms, (4.0 * n + npix) * 1e-9);
    free(x); free(y); free(dy); free(dx); free(t); free(cls);
  }
  /* optimisers over the model's 24.5 M parameters */
  {
    size_t n = 24500000;
    float *p = buf(n, 10), *g = buf(n, 11), *m = calloc(n, sizeof *m), *v = calloc(n, sizeof *v);
    ky_adam_args a = {.lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .step = 1};
    snprintf(shape, sizeof shape, "24.5M params");
    TIME_MS(ms, (ky_cpu_adam(g_pool, p, m, v, NULL, g, n, &a), a.step++));
    row_rate("adam", shape, ms, 4.0 * 7 * n * 1e-9);
    ky_sgd_args sa = {.lr = 1e-2f, .momentum = 0.9f, .step = 1};
    TIME_MS(ms, (ky_cpu_sgd(g_pool, p, m, g, n, &sa), sa.step++));
    row_rate("sgd momentum", shape, ms, 4.0 * 5 * n * 1e-9);
    volatile double sink = 0;
    TIME_MS(ms, sink += ky_cpu_sumsq(g, n));
    row_rate("sumsq", shape, ms, 4.0 * n * 1e-9);
    (void)sink;
    free(p); free(g); free(m); free(v);
  }
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
      char *end;
      const char *arg = argv[++i];
      long a = strtol(arg, &end, 10), b = a;
      if (*end == ',') b = strtol(end + 1, &end, 10), g_ncfg = 2;
      if (*end || a < 1 || b < 1 || a > KY_POOL_MAX_THREADS || b > KY_POOL_MAX_THREADS) {
        fprintf(stderr, "bench_cpu_ops: --threads '%s': expected N or A,B (each 1..%d)\n", arg, KY_POOL_MAX_THREADS);
        return 2;
      }
      g_counts[0] = (int)a, g_counts[1] = (int)b;
    } else if (atoi(argv[i]) > 0) {
      g_reps = atoi(argv[i]);
    } else {
      fprintf(stderr, "usage: bench_cpu_ops [reps] [--threads N | --threads A,B]\n");
      return 2;
    }
  }
  for (int k = 0; k < g_ncfg; k++)
    if (g_counts[k] > 1 && ky_pool_create(&g_pools[k], g_counts[k]) != KY_OK) {
      fprintf(stderr, "bench_cpu_ops: %s\n", ky_last_error());
      return 1;
    }
  g_pool = g_pools[0];
  g_threads = g_counts[0];
  int batch = 2;
  printf("karyon CPU reference kernels, %d thread(s), batch %d, 256 x 256 (ResNet34 U-Net shapes), median of %d\n",
         g_threads, batch, g_reps);
  printf("rates use the CPU-time median (ms cpu); the wall-clock median is shown beside it\n");
  printf("%-26s %-22s %9s %9s %14s", "op", "shape", "ms cpu", "ms wall", "rate");
  if (g_ncfg == 2) printf(" %6s%-3d %8s", "wall@", g_counts[1], "speed-up");
  printf("\n");
  double t0 = now();
  int bad = bench_convs(batch);
  bench_others(batch);
  printf("\ntotal bench time %.1f s\n", now() - t0);
  ky_pool_free(g_pools[0]);
  ky_pool_free(g_pools[1]);
  return bad;
}

/* What this machine lets threads gain: a register-only FMA loop with ten independent chains (bound
 * by the FMA pipes), the same with one dependent chain (bound by FMA latency: it leaves the pipes
 * idle), a streaming read-modify-write over a buffer much larger than the caches (memory bound),
 * and karyon's own one-thread convolution (the GEMM path: FMA pipes fed from L1 and L2, plus the
 * im2col copies), each run by 1 .. N threads at once, every thread doing the same work on its own
 * data with no synchronisation. The last is the ceiling for a threaded step made of such
 * convolutions: no split of one job across threads can beat independent copies of it. The
 * speed-ups are the ceilings for karyon's compute-bound kernels (the convolution GEMMs) and for its
 * memory-bound ones (elementwise, batch norm, Adam, im2col packing): a kernel cannot scale better
 * than the resource it is bound by. Two vCPUs that are hyperthreads (SMT siblings) of one physical
 * core show a pipe-bound speed-up near 1x but a latency-bound one near 2x (the second thread fills
 * the idle issue slots); a CPU-time quota of one core shows 1x for both; two real cores show 2x for
 * both. Virtual machines often present siblings as separate cores (lscpu cannot tell).
 * Usage: bench_scaling [max_threads] [reps]   (defaults: the CPUs this process may use, 5)
 * Tested by running it (bench/bench_threads.sh prints it beside the model figures). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/pool.h"
#include "ops/kernels.h"

typedef float v8f __attribute__((vector_size(32)));

#ifdef __FMA__
#define MADD8(a, b, acc) __builtin_ia32_vfmaddps256((a), (b), (acc))
#else
#define MADD8(a, b, acc) ((a) * (b) + (acc))
#endif

enum { CHAINS = 10, MAXT = 64 };          /* 10 independent FMA chains: enough to fill two pipes */
static const long FMA_ITERS = 20000000;   /* x 10 chains x 16 flops: 3.2 GFLOP per thread */
static const size_t MEM_FLOATS = 32u << 20; /* 128 MB per thread: far beyond any cache */

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

typedef struct {
  float *buf;
  float *x, *w, *y, *work; /* conv_loop's own input, weights, output, scratch */
  float sink;
} arg_t;

/* The conv: the benchmark model's dec1b forward (2 x 64^2 x 128 -> 64, 3x3), 2.4 GFLOP a run. */
static ky_conv_shape conv_shape(void) {
  ky_conv_shape s = {.n = 2, .h = 64, .w = 64, .c = 128, .k = 64, .kh = 3, .kw = 3, .stride = 1, .pad = 1, .dil = 1};
  if (!ky_conv_shape_finish(&s)) abort();
  return s;
}
enum { CONV_RUNS = 2 };

static void *fma_loop(void *p) {
  arg_t *a = p;
  v8f acc[CHAINS], m = {0}, b = {0};
  for (int k = 0; k < 8; k++) {
    m[k] = 0.9999f;
    b[k] = 1e-4f;
  }
  for (int i = 0; i < CHAINS; i++) acc[i] = b * (float)i;
  for (long n = 0; n < FMA_ITERS; n++)
    for (int i = 0; i < CHAINS; i++) acc[i] = MADD8(acc[i], m, b);
  float s = 0;
  for (int i = 0; i < CHAINS; i++) s += acc[i][0];
  a->sink = s; /* keeps the loop alive */
  return NULL;
}

static void *chain_loop(void *p) { /* one dependent chain: bound by FMA latency, not by the pipes */
  arg_t *a = p;
  v8f acc = {0}, m = {0}, b = {0};
  for (int k = 0; k < 8; k++) {
    m[k] = 0.9999f;
    b[k] = 1e-4f;
  }
  for (long n = 0; n < FMA_ITERS; n++) acc = MADD8(acc, m, b);
  a->sink = acc[0];
  return NULL;
}

static void *mem_loop(void *p) { /* y = 0.5 y + 1: one read and one write of every element */
  arg_t *a = p;
  float *x = a->buf;
  for (size_t i = 0; i < MEM_FLOATS; i++) x[i] = 0.5f * x[i] + 1.0f;
  a->sink = x[MEM_FLOATS / 2];
  return NULL;
}

static void *conv_loop(void *p) {
  arg_t *a = p;
  ky_conv_shape s = conv_shape();
  for (int i = 0; i < CONV_RUNS; i++) ky_cpu_conv2d_fwd(NULL, a->y, a->x, a->w, NULL, &s, 0, a->work);
  a->sink = a->y[0];
  return NULL;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Median wall time of `reps` runs of fn on t threads at once. */
static double run(int t, int reps, void *(*fn)(void *), arg_t *args) {
  double ts[32];
  if (reps < 1 || reps > 32) abort();   /* main keeps reps in 1..32: ts[reps / 2] is always written */
  for (int r = 0; r < reps; r++) {
    pthread_t th[MAXT];
    double t0 = now();
    for (int i = 1; i < t; i++)
      if (pthread_create(&th[i], NULL, fn, &args[i])) {
        fprintf(stderr, "bench_scaling: cannot start thread %d\n", i + 1);
        exit(1);
      }
    fn(&args[0]);
    for (int i = 1; i < t; i++) pthread_join(th[i], NULL);
    ts[r] = now() - t0;
  }
  qsort(ts, (size_t)reps, sizeof *ts, cmp_double);
  return ts[reps / 2];
}

int main(int argc, char **argv) {
  int maxt = 0, reps = 5;
  if (argc > 1) maxt = atoi(argv[1]);
  if (argc > 2) reps = atoi(argv[2]);
  if (maxt <= 0 && ky_pool_default_threads(&maxt) != KY_OK) maxt = 1;
  if (maxt > MAXT) maxt = MAXT;
  if (reps < 1 || reps > 32) {
    fprintf(stderr, "usage: bench_scaling [max_threads 1..%d] [reps 1..32]\n", MAXT);
    return 2;
  }
  arg_t args[MAXT] = {{0}};
  for (int i = 0; i < maxt; i++) {
    args[i].buf = malloc(MEM_FLOATS * sizeof(float));
    if (!args[i].buf) {
      fprintf(stderr, "bench_scaling: out of memory (%zu MB per thread)\n", MEM_FLOATS * sizeof(float) >> 20);
      return 1;
    }
    for (size_t k = 0; k < MEM_FLOATS; k++) args[i].buf[k] = 1.0f; /* touch every page first */
    ky_conv_shape s = conv_shape();
    size_t nx = (size_t)s.n * s.h * s.w * s.c, nw = (size_t)s.k * s.kh * s.kw * s.c;
    size_t ny = (size_t)s.n * s.oh * s.ow * s.k, nwork = ky_cpu_conv2d_work_floats(&s, 1);
    args[i].x = malloc(nx * sizeof(float));
    args[i].w = malloc(nw * sizeof(float));
    args[i].y = malloc(ny * sizeof(float));
    args[i].work = malloc(nwork * sizeof(float));
    if (!args[i].x || !args[i].w || !args[i].y || !args[i].work) {
      fprintf(stderr, "bench_scaling: out of memory (conv buffers)\n");
      return 1;
    }
    for (size_t k = 0; k < nx; k++) args[i].x[k] = (float)(k % 13) * 0.1f - 0.6f;
    for (size_t k = 0; k < nw; k++) args[i].w[k] = (float)(k % 7) * 0.01f - 0.03f;
    for (size_t k = 0; k < ny; k++) args[i].y[k] = 0.0f;
    for (size_t k = 0; k < nwork; k++) args[i].work[k] = 0.0f;
  }
  printf("# machine scaling: every thread does the same work; speed-up = t x time(1) / time(t); medians of %d\n",
         reps);
  printf("| threads | FMA GFLOP/s (pipes) | speed-up | 1-chain GFLOP/s (latency) | speed-up | stream GB/s | speed-up "
         "| conv GFLOP/s | speed-up |\n");
  printf("|---------|---------------------|----------|---------------------------|----------|-------------|----------"
         "|--------------|----------|\n");
  ky_conv_shape cs = conv_shape();
  double conv_gflop = 2.0 * cs.n * cs.oh * cs.ow * cs.k * cs.kh * cs.kw * cs.c * CONV_RUNS * 1e-9;
  double f1 = 0, c1 = 0, m1 = 0, v1 = 0;
  for (int t = 1; t <= maxt; t++) {
    double f = run(t, reps, fma_loop, args), c = run(t, reps, chain_loop, args), m = run(t, reps, mem_loop, args);
    double v = run(t, reps, conv_loop, args);
    if (t == 1) f1 = f, c1 = c, m1 = m, v1 = v;
    double gflop = (double)t * FMA_ITERS * CHAINS * 16 * 1e-9, gb = (double)t * MEM_FLOATS * 8 * 1e-9;
    printf("| %7d | %19.1f | %7.2fx | %25.1f | %7.2fx | %11.1f | %7.2fx | %12.1f | %7.2fx |\n", t, gflop / f,
           t * f1 / f, gflop / CHAINS / c, t * c1 / c, gb / m, t * m1 / m, t * conv_gflop / v, t * v1 / v);
  }
  for (int i = 0; i < maxt; i++) {
    free(args[i].buf);
    free(args[i].x);
    free(args[i].w);
    free(args[i].y);
    free(args[i].work);
  }
  return 0;
}

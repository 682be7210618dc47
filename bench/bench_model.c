/* Benchmark of the benchmark model (shared/spec/benchmark_model.md): the ResNet34 U-Net training
 * step (zero grad -> forward -> softmax-dice loss -> backward -> Adam) on the CPU at batch 2, 256x256,
 * and on a CUDA GPU (when present) at batch 16 in fp32, plus inference at 1x512x512; median times,
 * img/s and peak memory (arena peak + flat parameter / gradient / moment blocks). With
 * --anchor FILE (torch_anchor.py --json output) it prints PyTorch's figure and the ratio.
 * --threads 1,2 times the CPU figures at each thread count (one model, one run) and prints the
 * speed-up per thread count; --anchor-at N FILE gives PyTorch's figures at N threads
 * (torch_anchor.py --cpu --json FILE run with OMP_NUM_THREADS=N) for that table.
 * bench/bench_threads.sh runs all of it as one command.
 * Correctness of what it times is covered by tests/test_models_parity.c (and thread-count
 * invariance by tests/test_ops_threads.c). Checked by running it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/ctx.h"
#include "core/fileio.h"
#include "core/pool.h"
#include "core/rng.h"
#include "losses/losses.h"
#include "models/model.h"
#include "optim/optim.h"
#include "tests/util_test.h"
#ifdef KY_HAVE_CUDA
#include "cuda/cuda.h"
#endif

enum { MAX_COUNTS = 8 };

typedef struct {
  const char *anchor_json;   /* torch_anchor.py --json contents, or NULL */
  int cpu_steps;
  int gpu_steps;
  int skip_cpu;
  int n_counts, counts[MAX_COUNTS];       /* --threads: CPU thread counts to time (0: default only) */
  char *anchor_at[MAX_COUNTS];            /* --anchor-at: PyTorch's figures at counts[i] threads */
  double train_ms[MAX_COUNTS], infer_ms[MAX_COUNTS];
} opts;

static void die_on(ky_status s, const char *what) {
  if (s != KY_OK) {
    fprintf(stderr, "bench_model: %s: %s\n", what, ky_last_error());
    exit(1);
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* A number from the flat JSON object of torch_anchor.py ("key": value); < 0 when absent. */
static double json_number(const char *json, const char *key) {
  if (!json) return -1;
  char pat[160];
  snprintf(pat, sizeof pat, "\"%s\":", key);
  const char *p = strstr(json, pat);
  if (!p) return -1;
  return strtod(p + strlen(pat), NULL);
}
static double anchor(const opts *o, const char *key) { return json_number(o->anchor_json, key); }

static void sync_dev(ky_ctx *ctx) {
#ifdef KY_HAVE_CUDA
  if (ctx->dev == KY_DEV_CUDA) die_on(ky_cuda_sync(ctx->cu), "sync");
#else
  (void)ctx;
#endif
}

/* Device buffer outside the step arena, so that inputs survive ky_ctx_reset. */
static void *dev_copy(ky_ctx *ctx, const void *src, size_t bytes) {
#ifdef KY_HAVE_CUDA
  if (ctx->dev == KY_DEV_CUDA) {
    void *d;
    die_on(ky_cuda_malloc(ctx->cu, &d, bytes), "input allocation");
    die_on(ky_cuda_h2d(ctx->cu, d, src, bytes), "input copy");
    return d;
  }
#endif
  void *d = malloc(bytes);
  die_on(d ? KY_OK : ky_error(KY_ERR_NOMEM, "%zu bytes", bytes), "input allocation");
  memcpy(d, src, bytes);
  return d;
}

static void dev_release(ky_ctx *ctx, void *p) {
#ifdef KY_HAVE_CUDA
  if (ctx->dev == KY_DEV_CUDA) { ky_cuda_release(ctx->cu, p); return; }
#endif
  free(p);
}

static ky_tensor make_tensor(ky_ctx *ctx, ky_dtype dt, int ndim, const int *shape, void *data) {
  ky_tensor t;
  memset(&t, 0, sizeof t);
  t.ndim = ndim;
  for (int i = 0; i < ndim; i++) t.shape[i] = shape[i];
  t.dtype = dt;
  t.dev = ctx->dev;
  t.data = data;
  t.name = dt == KY_U8 ? "classes" : "images";
  return t;
}

static void print_row(const char *fig, const char *dev, int n, int hw, double ms, double peak_mib, double torch_ms) {
  char tm[32] = "-", ratio[32] = "-";
  if (torch_ms > 0) {
    snprintf(tm, sizeof tm, "%.1f", torch_ms);
    snprintf(ratio, sizeof ratio, "%.2fx", ms / torch_ms);
  }
  printf("| %-22s | %-4s | %5d | %4d² | %10.1f | %8.2f | %9.0f | %9s | %7s |\n", fig, dev, n, hw, ms, n / ms * 1e3,
         peak_mib, tm, ratio);
  fflush(stdout);
}

/* Times `steps` training steps (after one warm-up) and one-image 512x512 inference, at each of
 * --threads' counts on the CPU. */
static void run_device(opts *o, ky_device dev, int n, int steps) {
  const int H = 256;
  ky_ctx ctx;
  ky_status s = ky_ctx_init(&ctx, dev, 0);
  if (s != KY_OK) {
    printf("| (gpu skipped: %s)\n", ky_last_error());
    return;
  }
  ky_model_config cfg = ky_model_config_default();
  cfg.dev = dev;
  cfg.cu = ctx.cu;
  cfg.seed = 1;
  ky_model *m;
  die_on(ky_model_create(&m, "unet_resnet34", &cfg), "model");
  ky_params *ps = ky_model_params(m);
  ky_optim opt = ky_optim_adam(1e-4f);

  size_t npix = (size_t)n * H * H;
  float *xh = malloc(npix * 3 * sizeof *xh);
  uint8_t *ch = malloc(npix);
  ky_rng r = ky_rng_make(3, KY_RNG_STREAM_TEST);
  for (size_t i = 0; i < npix * 3; i++) xh[i] = ky_rng_normal(&r);
  for (size_t i = 0; i < npix; i++) ch[i] = (uint8_t)ky_rng_int(&r, 0, 3);
  void *xd = dev_copy(&ctx, xh, npix * 3 * sizeof *xh), *cd = dev_copy(&ctx, ch, npix);
  ky_tensor x = make_tensor(&ctx, KY_F32, 4, (int[]){n, H, H, 3}, xd);
  ky_tensor c = make_tensor(&ctx, KY_U8, 3, (int[]){n, H, H}, cd);
  free(xh);
  free(ch);

  float loss0 = 0, loss1 = 0;
  const int HI = 512;
  float *xi = malloc((size_t)HI * HI * 3 * sizeof *xi);
  for (size_t i = 0; i < (size_t)HI * HI * 3; i++) xi[i] = ky_rng_normal(&r);
  void *xid = dev_copy(&ctx, xi, (size_t)HI * HI * 3 * sizeof *xi);
  free(xi);
  ky_tensor xin = make_tensor(&ctx, KY_F32, 4, (int[]){1, HI, HI, 3}, xid);
  /* With several thread counts the steps are interleaved (step i at every count, then step i + 1),
   * so that a slow minute on a shared host slows every count alike and the speed-ups stay fair. */
  int passes = dev == KY_DEV_CPU && o->n_counts ? o->n_counts : 1;
  double *ms = calloc((size_t)steps * passes, sizeof *ms);       /* [pass][step] */
  double *peak_host = calloc((size_t)passes, sizeof *peak_host); /* per pass: the largest step */
  for (int i = -1; i < steps; i++)
    for (int pass = 0; pass < passes; pass++) {
      if (dev == KY_DEV_CPU && o->n_counts) die_on(ky_ctx_set_threads(&ctx, o->counts[pass]), "threads");
      ctx.host.peak = ctx.devmem.peak = 0;
      sync_dev(&ctx);
      double t0 = ky_test_now_ms();
      ky_ctx_reset(&ctx);
      ctx.training = 1;
      ky_ctx_set_grad(&ctx, 1);
      opt.pool = ctx.pool; /* as `karyon train`: Adam on the step's threads (set_threads replaced the pool) */
      die_on(ky_params_zero_grad(ps, ctx.pool), "zero grad");
      ky_tensor *y, *loss;
      die_on(ky_model_forward(&ctx, m, &x, &y), "forward");
      die_on(ky_loss_softmax_dice(&ctx, &loss, NULL, y, &c), "loss");
      die_on(ky_backward(&ctx, loss), "backward");
      size_t first, end;
      ky_model_trainable_range(m, &first, &end);
      die_on(ky_optim_step(&opt, ps, opt.lr, first, end), "adam");
      sync_dev(&ctx);
      if (i >= 0) ms[(size_t)pass * steps + i] = ky_test_now_ms() - t0;
      double pk = (double)(ctx.host.peak + ctx.devmem.peak);
      if (pk > peak_host[pass]) peak_host[pass] = pk;
      die_on(ky_tensor_item(&ctx, i < 0 && pass == 0 ? &loss0 : &loss1, loss), "loss value");
    }
  double flat = (double)ps->total * sizeof(float) * (2 + (ps->m ? 1 : 0) + (ps->v ? 1 : 0)) +
                (double)ky_model_buffers(m)->total * sizeof(float);
  const char *dn = dev == KY_DEV_CPU ? "cpu" : "cuda";
  char fig[64], key[64];
  snprintf(key, sizeof key, "unet_train_b%d_256_fp32", n);
  int same_dev = o->anchor_json && (dev == KY_DEV_CPU) == (strstr(o->anchor_json, "\"device\": \"cpu\"") != NULL);
  for (int pass = 0; pass < passes; pass++) {
    double *mp = ms + (size_t)pass * steps;
    qsort(mp, (size_t)steps, sizeof *mp, cmp_double);
    snprintf(fig, sizeof fig, "train step fp32 (%dt)", dev == KY_DEV_CPU && o->n_counts ? o->counts[pass] : ky_ctx_threads(&ctx));
    print_row(fig, dn, n, H, mp[steps / 2], (peak_host[pass] + flat) / 1048576.0, same_dev ? anchor(o, key) : -1);
    if (dev == KY_DEV_CPU) o->train_ms[pass] = mp[steps / 2];
    peak_host[pass] = 0;
  }

  /* inference, 1 x 512 x 512, interleaved the same way */
  for (int i = -1; i < steps; i++)
    for (int pass = 0; pass < passes; pass++) {
      if (dev == KY_DEV_CPU && o->n_counts) die_on(ky_ctx_set_threads(&ctx, o->counts[pass]), "threads");
      ctx.host.peak = ctx.devmem.peak = 0;  /* inference peak on its own */
      sync_dev(&ctx);
      double t0 = ky_test_now_ms();
      ky_ctx_reset(&ctx);
      ctx.training = 0;
      ky_ctx_set_grad(&ctx, 0);
      ky_tensor *y;
      die_on(ky_model_forward(&ctx, m, &xin, &y), "inference");
      sync_dev(&ctx);
      if (i >= 0) ms[(size_t)pass * steps + i] = ky_test_now_ms() - t0;
      double pk = (double)(ctx.host.peak + ctx.devmem.peak);
      if (pk > peak_host[pass]) peak_host[pass] = pk;
    }
  for (int pass = 0; pass < passes; pass++) {
    double *mp = ms + (size_t)pass * steps;
    qsort(mp, (size_t)steps, sizeof *mp, cmp_double);
    double peak = peak_host[pass] + (double)(ps->total + ky_model_buffers(m)->total) * sizeof(float);
    snprintf(fig, sizeof fig, "inference fp32 (%dt)", dev == KY_DEV_CPU && o->n_counts ? o->counts[pass] : ky_ctx_threads(&ctx));
    print_row(fig, dn, 1, HI, mp[steps / 2], peak / 1048576.0, same_dev ? anchor(o, "unet_infer_1x512_fp32") : -1);
    if (dev == KY_DEV_CPU) o->infer_ms[pass] = mp[steps / 2];
  }
  free(peak_host);
  printf("|   (%s: loss %.4f after warm-up step, %.4f after the last; %d timed steps)\n", dev == KY_DEV_CPU ? "cpu" : "cuda", loss0, loss1, steps);
#ifdef KY_HAVE_CUDA
  if (dev == KY_DEV_CUDA) {
    size_t in_use, reserved, cpeak;
    ky_cuda_mem_stats(ctx.cu, &in_use, &reserved, &cpeak);
    printf("|   (cuda allocator peak %.0f MiB, reserved %.0f MiB)\n", cpeak / 1048576.0, reserved / 1048576.0);
  }
#endif
  dev_release(&ctx, xd);
  dev_release(&ctx, cd);
  dev_release(&ctx, xid);
  free(ms);
  ky_model_free(m);
  ky_ctx_free(&ctx);
}

/* Speed-up per thread count, karyon beside PyTorch (from --anchor-at files), same run. */
static void print_threads(const opts *o) {
  printf("\n# CPU threads: medians of %d steps; speed-up = time at the first count / time at this count;\n"
         "# ratio = karyon / PyTorch (< 1: karyon faster)\n", o->cpu_steps);
  printf("| %-26s | %7s | %10s | %8s | %10s | %8s | %6s |\n", "figure", "threads", "karyon ms", "speed-up", "torch ms",
         "speed-up", "ratio");
  printf("|----------------------------|---------|------------|----------|------------|----------|--------|\n");
  static const char *const figs[2] = {"train step b2 256² fp32", "inference 1x512² fp32"};
  static const char *const keys[2] = {"unet_train_b2_256_fp32", "unet_infer_1x512_fp32"};
  for (int f = 0; f < 2; f++) {
    const double *ms = f ? o->infer_ms : o->train_ms;
    double t0 = json_number(o->anchor_at[0], keys[f]);
    for (int k = 0; k < o->n_counts; k++) {
      double t = json_number(o->anchor_at[k], keys[f]);
      char tm[32] = "-", tsp[32] = "-", ratio[32] = "-";
      if (t > 0) {
        snprintf(tm, sizeof tm, "%.1f", t);
        snprintf(ratio, sizeof ratio, "%.2f", ms[k] / t);
        if (t0 > 0) snprintf(tsp, sizeof tsp, "%.2fx", t0 / t);
      }
      printf("| %-26s | %7d | %10.1f | %7.2fx | %10s | %8s | %6s |\n", figs[f], o->counts[k], ms[k], ms[0] / ms[k], tm, tsp,
             ratio);
    }
  }
  fflush(stdout);
}

int main(int argc, char **argv) {
  opts o = {NULL, 3, 10, 0};
  char *json = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--anchor") && i + 1 < argc) {
      size_t n;
      die_on(ky_file_read_all(argv[++i], &json, &n), "reading the anchor file");
      o.anchor_json = json;
    } else if (!strcmp(argv[i], "--cpu-steps") && i + 1 < argc) {
      o.cpu_steps = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--gpu-steps") && i + 1 < argc) {
      o.gpu_steps = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--gpu-only")) {
      o.skip_cpu = 1;
    } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
      for (char *p = argv[++i], *end; *p && o.n_counts < MAX_COUNTS; p = *end ? end + 1 : end) {
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > KY_POOL_MAX_THREADS || (*end && *end != ',')) {
          fprintf(stderr, "bench_model: --threads '%s': expected counts like 1,2 (each 1..%d)\n", argv[i], KY_POOL_MAX_THREADS);
          return 2;
        }
        o.counts[o.n_counts++] = (int)v;
      }
    } else if (!strcmp(argv[i], "--anchor-at") && i + 2 < argc) {
      int t = atoi(argv[++i]);
      size_t n;
      int k = 0;
      while (k < o.n_counts && o.counts[k] != t) k++;
      if (k == o.n_counts) {
        fprintf(stderr, "bench_model: --anchor-at %d: give --threads with %d first\n", t, t);
        return 2;
      }
      die_on(ky_file_read_all(argv[++i], &o.anchor_at[k], &n), "reading an --anchor-at file");
    } else {
      fprintf(stderr, "usage: bench_model [--anchor torch_anchor.json] [--cpu-steps N] [--gpu-steps N] [--gpu-only]\n"
                      "                   [--threads 1,2 [--anchor-at N torch_anchor_N.json ...]]\n");
      return 2;
    }
  }
  if (o.cpu_steps < 1) o.cpu_steps = 1;
  if (o.gpu_steps < 1) o.gpu_steps = 1;
  printf("# benchmark model: ResNet34 U-Net (24,531,523 params), softmax-dice loss, Adam; medians\n");
  printf("| %-22s | %-4s | %5s | %5s | %10s | %8s | %9s | %9s | %7s |\n", "figure", "dev", "batch", "size",
         "ms", "img/s", "peak MiB", "torch ms", "ratio");
  printf("|------------------------|------|-------|-------|------------|----------|-----------|-----------|---------|\n");
  if (!o.skip_cpu) run_device(&o, KY_DEV_CPU, 2, o.cpu_steps);
  if (!o.skip_cpu && o.n_counts) print_threads(&o);
#ifdef KY_HAVE_CUDA
  char why[256] = "";
  if (ky_cuda_device_count(why, sizeof why) > 0) run_device(&o, KY_DEV_CUDA, 16, o.gpu_steps);
  else printf("| gpu: skipped (%s)\n", why);
#else
  printf("| gpu: skipped (built without the CUDA backend)\n");
#endif
  free(json);
  for (int k = 0; k < MAX_COUNTS; k++) free(o.anchor_at[k]);
  return 0;
}

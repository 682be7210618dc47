/* Benchmark of the CUDA convolution: the seven conv layers that bench/torch_anchor.py times
 * (batch 16), forward / dgrad / wgrad for every algorithm (AUTO twice: "auto", the deterministic
 * fixed rule, and "auto_timed", the timed choice of --deterministic 0), fp32 and TF32, median of 15
 * event-timed runs after 3 warm-ups. Prints one line and exits 0 without a GPU. Checked by running it.
 *
 *   bench_cuda_conv [torch_anchor.json | torch_anchor.txt]
 * With a file of torch_anchor.py figures (its --json output, or its printed table), the table also
 * shows PyTorch's fwd+bwd time for the layer and the ratio ours / PyTorch (< 1: we are faster).
 * Only compare figures measured on the same card in the same run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/rng.h"
#include "cuda/cuda.h"
#include "cuda/kernels.h"

#define WARM 3
#define ITERS 15

typedef struct {
  const char *name;
  int n, c, k, h, ks, stride;
} layer;

/* Exactly torch_anchor.py's LAYERS: (name, N, Cin, Cout, H, k, stride), padding k // 2. */
static const layer kLayers[] = {
    {"stem7x7s2", 16, 3, 64, 256, 7, 2},     {"enc3x3_64", 16, 64, 64, 64, 3, 1},
    {"enc3x3_128", 16, 128, 128, 32, 3, 1},  {"enc3x3_256", 16, 256, 256, 16, 3, 1},
    {"enc3x3_512", 16, 512, 512, 8, 3, 1},   {"dec3x3_128to64", 16, 128, 64, 128, 3, 1},
    {"dec3x3_64full", 16, 64, 64, 256, 3, 1},
};
#define NLAYERS ((int)(sizeof kLayers / sizeof kLayers[0]))

static int cmp_float(const void *a, const void *b) {
  const float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

/* PyTorch's fwd+bwd milliseconds for a layer and mode from torch_anchor output; < 0 if absent. */
static double torch_ms(const char *text, const char *lname, const char *mode) {
  if (!text) return -1;
  char key[128];
  snprintf(key, sizeof key, "\"conv_%s_fwdbwd_%s\":", lname, mode);          /* --json */
  const char *p = strstr(text, key);
  if (p) return strtod(p + strlen(key), NULL);
  snprintf(key, sizeof key, "conv_%s_fwdbwd_%s ", lname, mode);              /* printed table */
  for (p = strstr(text, key); p; p = strstr(p + 1, key))
    if (p == text || p[-1] == '\n') return strtod(p + strlen(key), NULL);
  return -1;
}

typedef struct {
  ky_cuda *cu;
  float *x, *w, *b, *y, *dx, *dw, *db;
} bufs;

static ky_status run_dir(bufs *B, int dir, const ky_conv_shape *s, ky_conv_algo algo) {
  switch (dir) {
    case 0: return ky_cuda_conv2d_fwd(B->cu, B->y, B->x, B->w, B->b, s, 0, algo);
    case 1: return ky_cuda_conv2d_dgrad(B->cu, B->dx, B->y, B->w, s, algo);
    default: return ky_cuda_conv2d_wgrad(B->cu, B->dw, B->db, B->y, B->x, s, algo);
  }
}

/* Median milliseconds of one direction; < 0 when the algorithm cannot run it. */
static float time_dir(bufs *B, int dir, const ky_conv_shape *s, ky_conv_algo algo) {
  for (int i = 0; i < WARM; ++i)
    if (run_dir(B, dir, s, algo) != KY_OK) return -1.f;
  float t[ITERS];
  for (int i = 0; i < ITERS; ++i) {
    ky_cuda_timer *tm = NULL;
    if (ky_cuda_timer_start(B->cu, &tm) != KY_OK) return -1.f;
    ky_status st = run_dir(B, dir, s, algo);
    if (ky_cuda_timer_stop(B->cu, tm, &t[i]) != KY_OK || st != KY_OK) return -1.f;
  }
  qsort(t, ITERS, sizeof t[0], cmp_float);
  return t[ITERS / 2];
}

static ky_status upload_random(ky_cuda *cu, float *d, size_t n, const float *pool, size_t pool_n) {
  return ky_cuda_h2d(cu, d, pool, (n < pool_n ? n : pool_n) * sizeof(float));
}

int main(int argc, char **argv) {
  char why[256];
  if (ky_cuda_device_count(why, sizeof why) == 0) {
    printf("bench_cuda_conv: SKIPPED: no CUDA GPU (%s); nothing timed\n", why);
    return 0;
  }
  char *anchor = NULL;
  size_t anchor_len = 0;
  if (argc > 1 && ky_file_read_all(argv[1], &anchor, &anchor_len) != KY_OK) {
    fprintf(stderr, "bench_cuda_conv: %s\n", ky_last_error());
    return 1;
  }
  ky_cuda *cu = NULL;
  if (ky_cuda_init(&cu, 0) != KY_OK) {
    fprintf(stderr, "bench_cuda_conv: %s\n", ky_last_error());
    return 1;
  }
  char dev[128];
  int sm = 0;
  ky_cuda_device_name(cu, dev, sizeof dev, &sm);

  /* Largest tensors over all layers, one random pool reused for every upload. */
  size_t mx = 0, my = 0, mw = 0;
  for (int li = 0; li < NLAYERS; ++li) {
    const layer *L = &kLayers[li];
    const size_t ho = L->h / L->stride;
    size_t v = (size_t)L->n * L->h * L->h * L->c; if (v > mx) mx = v;
    v = (size_t)L->n * ho * ho * L->k; if (v > my) my = v;
    v = (size_t)L->k * L->ks * L->ks * L->c; if (v > mw) mw = v;
  }
  size_t pool_n = mx > my ? mx : my;
  float *pool = malloc(pool_n * sizeof *pool);
  if (!pool) { fprintf(stderr, "bench_cuda_conv: no host memory\n"); return 1; }
  ky_rng rng = ky_rng_make(7, KY_RNG_STREAM_TEST);
  for (size_t i = 0; i < pool_n; ++i) pool[i] = ky_rng_uniform_range(&rng, -1.f, 1.f);

  bufs B = {cu, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
  if (ky_cuda_malloc(cu, (void **)&B.x, mx * 4) || ky_cuda_malloc(cu, (void **)&B.dx, mx * 4) ||
      ky_cuda_malloc(cu, (void **)&B.y, my * 4) || ky_cuda_malloc(cu, (void **)&B.w, mw * 4) ||
      ky_cuda_malloc(cu, (void **)&B.dw, mw * 4) || ky_cuda_malloc(cu, (void **)&B.b, 4096) ||
      ky_cuda_malloc(cu, (void **)&B.db, 4096)) {
    fprintf(stderr, "bench_cuda_conv: %s\n", ky_last_error());
    return 1;
  }
  /* Gradients accumulate over every timed run: start them from zeros, not leftover bits. */
  if (ky_cuda_memset(cu, B.dx, 0, mx * 4) || ky_cuda_memset(cu, B.dw, 0, mw * 4) ||
      ky_cuda_memset(cu, B.db, 0, 4096)) {
    fprintf(stderr, "bench_cuda_conv: %s\n", ky_last_error());
    return 1;
  }

  printf("# %s (sm_%d); batch 16; median of %d; TFLOP/s counts 2*N*K*C*kh*kw*OH*OW per direction\n", dev, sm,
         ITERS);
  printf("%-15s %-5s %-12s %9s %9s %9s %9s %8s %9s %7s\n", "layer", "mode", "algo", "fwd_ms", "dgrad_ms",
         "wgrad_ms", "sum_ms", "TFLOP/s", "torch_ms", "ratio");
  struct { ky_conv_algo algo; const char *name; int needs_tf32, timed; } algos[] = {
      {KY_CONV_ALGO_IMPLICIT_GEMM, "igemm_fp32", 0, 0}, {KY_CONV_ALGO_IM2COL_GEMM, "im2col_gemm", 0, 0},
      {KY_CONV_ALGO_IMPLICIT_TF32, "igemm_tf32", 1, 0}, {KY_CONV_ALGO_AUTO, "auto", 0, 0},
      {KY_CONV_ALGO_AUTO, "auto_timed", 0, 1}};
  const int nmodes = sm >= 80 ? 2 : 1;
  for (int li = 0; li < NLAYERS; ++li) {
    const layer *L = &kLayers[li];
    ky_conv_shape s = {L->n, L->h, L->h, L->c, L->k, L->ks, L->ks, L->stride, L->ks / 2, 1, 0, 0};
    s.oh = (s.h + 2 * s.pad - (s.kh - 1) - 1) / s.stride + 1;
    s.ow = s.oh;
    const double flop = 2.0 * s.n * s.k * s.c * s.kh * s.kw * s.oh * s.ow;
    if (upload_random(cu, B.x, (size_t)s.n * s.h * s.w * s.c, pool, pool_n) ||
        upload_random(cu, B.y, (size_t)s.n * s.oh * s.ow * s.k, pool, pool_n) ||
        upload_random(cu, B.w, (size_t)s.k * s.kh * s.kw * s.c, pool, pool_n) ||
        upload_random(cu, B.b, (size_t)s.k, pool, pool_n)) {
      fprintf(stderr, "bench_cuda_conv: %s\n", ky_last_error());
      return 1;
    }
    for (int mode = 0; mode < nmodes; ++mode) {
      ky_cuda_set_tf32(cu, mode);
      const char *mname = mode ? "tf32" : "fp32";
      const double tms = torch_ms(anchor, L->name, mname);
      for (size_t ai = 0; ai < sizeof algos / sizeof algos[0]; ++ai) {
        if (algos[ai].needs_tf32 && !mode) continue;   /* the TF32 kernel belongs to the tf32 rows */
        ky_cuda_set_deterministic(cu, !algos[ai].timed);
        float ms[3];
        for (int d = 0; d < 3; ++d) {
          /* The forward overwrites y with its output; restore random dy for the backward passes. */
          if (d == 1 && upload_random(cu, B.y, (size_t)s.n * s.oh * s.ow * s.k, pool, pool_n)) return 1;
          ms[d] = time_dir(&B, d, &s, algos[ai].algo);
        }
        if (ms[0] < 0 || ms[1] < 0 || ms[2] < 0) {
          printf("%-15s %-5s %-12s  failed: %s\n", L->name, mname, algos[ai].name, ky_last_error());
          continue;
        }
        const double sum = ms[0] + ms[1] + ms[2];
        printf("%-15s %-5s %-12s %9.3f %9.3f %9.3f %9.3f %8.2f", L->name, mname, algos[ai].name, ms[0], ms[1],
               ms[2], sum, 3.0 * flop / sum / 1e9);
        if (tms > 0)
          printf(" %9.3f %7.2f\n", tms, sum / tms);
        else
          printf(" %9s %7s\n", "-", "-");
      }
    }
  }
  ky_cuda_set_tf32(cu, 0);
  ky_cuda_set_deterministic(cu, 1);
  ky_cuda_release(cu, B.x); ky_cuda_release(cu, B.dx); ky_cuda_release(cu, B.y); ky_cuda_release(cu, B.w);
  ky_cuda_release(cu, B.dw); ky_cuda_release(cu, B.b); ky_cuda_release(cu, B.db);
  ky_cuda_free(cu);
  free(pool);
  free(anchor);
  return 0;
}

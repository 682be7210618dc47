/* `karyon train` on the emulated GPU (built and run by tests/cuda_emu/run.sh --train): a slim
 * ResNet18 U-Net on the bundled sample with --device cuda, every kernel running on the fiber
 * emulation. Checks that the --deterministic option reaches the CUDA context (the log line
 * pipeline/train.c reads back from it, both values), and that with --deterministic 1 a run of 6
 * steps and a run killed after 3 then resumed for 3 end with the same weights, bit for bit; and
 * that the first step's loss and gradient norm on the emulated GPU match the CPU backend's (same
 * weights, same batch: the whole forward and backward through every CUDA kernel against the CPU
 * reference). Exits non-zero on failure. On a GPU the same comparison is the resume test of
 * tests/test_pipeline_train.c run with --device cuda (docs/gpu.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "pipeline/config.h"
#include "pipeline/train.h"

#define SAMPLE "tests/fixtures/dsb_sample"

static char last_info[4][400];
static int n_info;
static void on_info(void *ud, const char *line) {
  (void)ud;
  if (strstr(line, "cuda: ") && n_info < 4) snprintf(last_info[n_info++], sizeof last_info[0], "%s", line);
}

static void tiny(ky_train_config *c, const char *out, const char *device, int det, int iters, int crop) {
  ky_train_config_default(c);
  snprintf(c->data, sizeof c->data, "%s", SAMPLE);
  snprintf(c->folds, sizeof c->folds, "%s/folds.csv", SAMPLE);
  snprintf(c->model, sizeof c->model, "unet_resnet18");
  snprintf(c->out, sizeof c->out, "%s", out);
  snprintf(c->device, sizeof c->device, "%s", device);
  c->width = 0.125f;
  c->crop = crop;
  c->batch = 2;
  c->iters = iters;
  c->epoch_size = 100;  /* no epoch end, so no validation pass inside the 6 steps */
  c->lr = 1e-3f;
  c->threads = 1;
  c->quiet = 1;
  c->deterministic = det;
}

/* The tensors' bytes of a checkpoint (its header names the output folder, which differs). */
static char *tensors(const char *dir, size_t *n) {
  char p[400];
  snprintf(p, sizeof p, "%s/last.safetensors", dir);
  char *d = NULL;
  size_t nd = 0;
  if (ky_file_read_all(p, &d, &nd) != KY_OK) { fprintf(stderr, "emu_train: %s\n", ky_last_error()); exit(1); }
  unsigned long long h = 0;
  memcpy(&h, d, 8);
  *n = nd - 8 - h;
  char *t = malloc(*n);
  memcpy(t, d + 8 + h, *n);
  free(d);
  return t;
}

/* Loss and gradient norm of step 1 from a run's log.csv (step,epoch,loss,...,grad_norm). */
static void step1(const char *dir, double *loss, double *gnorm) {
  char p[400], line[512] = "";
  snprintf(p, sizeof p, "%s/log.csv", dir);
  FILE *f = fopen(p, "r");
  if (!f || !fgets(line, sizeof line, f) || !fgets(line, sizeof line, f)) { fprintf(stderr, "emu_train: no step in %s\n", p); exit(1); }
  fclose(f);
  double v[8];
  if (sscanf(line, "%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) != 8 || v[0] != 1) {
    fprintf(stderr, "emu_train: bad first step line in %s: %s", p, line);
    exit(1);
  }
  *loss = v[2];
  *gnorm = v[7];
}

static void run(const ky_train_config *c, int resume, int64_t stop_after) {
  ky_train_hooks h;
  memset(&h, 0, sizeof h);
  h.on_info = on_info;
  h.stop_after = stop_after;
  ky_train_result r;
  if (ky_train_run(c, resume, &h, &r) != KY_OK) { fprintf(stderr, "emu_train: %s\n", ky_last_error()); exit(1); }
  if (strcmp(r.device, c->device) != 0) { fprintf(stderr, "emu_train: ran on %s, not %s\n", r.device, c->device); exit(1); }
}

int main(int argc, char **argv) {
  const char *root = argc > 1 ? argv[1] : "build-emu-conv/train";
  char a[300], b[300], t[300], p[300];
  snprintf(a, sizeof a, "%s/full", root);
  snprintf(b, sizeof b, "%s/split", root);
  snprintf(t, sizeof t, "%s/timed", root);
  snprintf(p, sizeof p, "%s/cpu", root);
  ky_train_config c;
  int fail = 0;
  /* Timing every candidate of every layer is slow on the emulation: the smallest crop here. */
  tiny(&c, t, "cuda", 0, 1, 32);
  run(&c, 0, 0);
  /* Crop 64, not less: at 32 the deepest batch norm sees 2 values per channel, and the gradient
   * is too ill-conditioned to compare GPU and CPU sums of different order. */
  tiny(&c, a, "cuda", 1, 6, 64);
  run(&c, 0, 0);
  tiny(&c, p, "cpu", 1, 1, 64);
  run(&c, 0, 0);
  tiny(&c, b, "cuda", 1, 6, 64);
  run(&c, 0, 3);
  run(&c, 1, 0);
  if (n_info != 4 || !strstr(last_info[0], "by timing") || !strstr(last_info[1], "by a fixed rule") ||
      !strstr(last_info[3], "by a fixed rule")) {
    fprintf(stderr, "emu_train: the --deterministic value did not reach the context as set (%d lines)\n", n_info);
    for (int i = 0; i < n_info; i++) fprintf(stderr, "  %s\n", last_info[i]);
    fail = 1;
  } else {
    printf("emu_train: context flag as set: \"%s\" / \"%s\"\n", last_info[0], last_info[1]);
  }
  double lg, gg, lc, gc;
  step1(a, &lg, &gg);
  step1(p, &lc, &gc);
  if (!(fabs(lg - lc) <= 1e-4 * fabs(lc)) || !(fabs(gg - gc) <= 1e-3 * fabs(gc))) {
    fprintf(stderr, "emu_train: step 1 on the emulated GPU: loss %.7g, grad norm %.7g; on the CPU: %.7g, %.7g\n", lg, gg, lc, gc);
    fail = 1;
  } else {
    printf("emu_train: step 1 loss %.7g / %.7g, grad norm %.7g / %.7g (emulated GPU / CPU)\n", lg, lc, gg, gc);
  }
  size_t na, nb;
  char *ta = tensors(a, &na), *tb = tensors(b, &nb);
  if (na != nb || memcmp(ta, tb, na) != 0) {
    fprintf(stderr, "emu_train: 6 steps and 3 + resume + 3 differ (%zu vs %zu bytes of tensors)\n", na, nb);
    fail = 1;
  } else {
    printf("emu_train: 6 steps == 3 + kill + resume 3, bitwise (%zu bytes of tensors)\n", na);
  }
  free(ta);
  free(tb);
  return fail;
}

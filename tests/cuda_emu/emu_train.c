/* `karyon train` on the emulated GPU (built and run by tests/cuda_emu/run.sh --train): a slim
 * ResNet18 U-Net on the bundled sample with --device cuda, every kernel running on the fiber
 * emulation. Checks that the --deterministic option reaches the CUDA context (the log line
 * pipeline/train.c reads back from it, both values), and that with --deterministic 1 a run of 6
 * steps and a run killed after 3 then resumed for 3 end with the same weights, bit for bit.
 * Exits non-zero on failure. On a GPU the same comparison is the resume test of
 * tests/test_pipeline_train.c run with --device cuda (docs/gpu.md). */
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

static void tiny(ky_train_config *c, const char *out, int det, int iters) {
  ky_train_config_default(c);
  snprintf(c->data, sizeof c->data, "%s", SAMPLE);
  snprintf(c->folds, sizeof c->folds, "%s/folds.csv", SAMPLE);
  snprintf(c->model, sizeof c->model, "unet_resnet18");
  snprintf(c->out, sizeof c->out, "%s", out);
  snprintf(c->device, sizeof c->device, "cuda");
  c->width = 0.125f;
  c->crop = 32;
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

static void run(const ky_train_config *c, int resume, int64_t stop_after) {
  ky_train_hooks h;
  memset(&h, 0, sizeof h);
  h.on_info = on_info;
  h.stop_after = stop_after;
  ky_train_result r;
  if (ky_train_run(c, resume, &h, &r) != KY_OK) { fprintf(stderr, "emu_train: %s\n", ky_last_error()); exit(1); }
  if (strcmp(r.device, "cuda") != 0) { fprintf(stderr, "emu_train: ran on %s, not cuda\n", r.device); exit(1); }
}

int main(int argc, char **argv) {
  const char *root = argc > 1 ? argv[1] : "build-emu-conv/train";
  char a[300], b[300], t[300];
  snprintf(a, sizeof a, "%s/full", root);
  snprintf(b, sizeof b, "%s/split", root);
  snprintf(t, sizeof t, "%s/timed", root);
  ky_train_config c;
  int fail = 0;
  tiny(&c, t, 0, 1);
  run(&c, 0, 0);
  tiny(&c, a, 1, 6);
  run(&c, 0, 0);
  tiny(&c, b, 1, 6);
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

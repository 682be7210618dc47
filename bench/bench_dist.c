/* Data-parallel scaling on this machine's CPUs: `karyon train` on the demo's CPU model (ResNet18
 * U-Net x0.25, crop 128, global batch 8) on the bundled sample with 1 rank, 2 ranks (gradient
 * buckets all-reduced during the backward pass) and 2 ranks with one bucket after the backward
 * pass (the whole all-reduce exposed), through mpirun. Prints a table: median step, images/s,
 * speed-up, compute per step and the time blocked waiting for the gradient all-reduce. Each rank
 * runs one compute thread. Usage: bench_dist [STEPS (20)] [KARYON (beside this program: ../karyon)].
 * Correctness of what it runs is covered by tests/test_dist_train.c. Checked by running it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "tests/util_test.h"

typedef struct {
  double step_ms, img_s, compute_ms, wait_ms, mb;
  int buckets;
} row;

static int run_one(row *r, const char *karyon, const char *dir, int np, int steps, const char *bucket_mb) {
  char cmd[4096], out[600];
  snprintf(out, sizeof out, "%s/out_%d_%s.txt", dir, np, bucket_mb);
  snprintf(cmd, sizeof cmd,
           "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np %d --bind-to none %s train "
           "--data tests/fixtures/dsb_sample --folds tests/fixtures/dsb_sample/folds.csv --model unet_resnet18 "
           "--width 0.25 --crop 128 --batch 8 --lr 2e-3 --fold -1 --device cpu --threads 1 --quiet 1 --iters %d "
           "--epoch_size 1000 --bucket_mb %s --out %s/run_%d_%s > %s 2>&1",
           np, karyon, steps, bucket_mb, dir, np, bucket_mb, out);
  int rc = system(cmd);
  char *buf;
  size_t n;
  if (ky_file_read_all(out, &buf, &n) != KY_OK) return -1;
  const char *t = strstr(buf, "timing: ");
  int ok = rc == 0 && t;
  if (ok) {
    const char *p = strstr(t, "median step ");
    ok = p && sscanf(p, "median step %lf ms (%lf img/s)", &r->step_ms, &r->img_s) == 2;
    p = ok ? strstr(t, "per step ") : NULL;
    ok = p && sscanf(p, "per step %lf ms compute", &r->compute_ms) == 1;
    p = ok ? strstr(t, "of which ") : NULL;
    ok = p && sscanf(p, "of which %lf ms waiting", &r->wait_ms) == 1;
    p = ok ? strstr(t, "pass; ") : NULL;
    ok = p && sscanf(p, "pass; %lf MB all-reduced per step in %d", &r->mb, &r->buckets) == 2;
  }
  if (!ok) fprintf(stderr, "bench_dist: %d rank(s) failed (exit %d):\n%s\n", np, rc, buf);
  free(buf);
  return ok ? 0 : -1;
}

int main(int argc, char **argv) {
  int steps = argc > 1 ? atoi(argv[1]) : 20;
  char karyon[600];
  if (argc > 2) snprintf(karyon, sizeof karyon, "%s", argv[2]);
  else {
    char self[512];
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    if (k <= 0) return 1;
    self[k] = 0;
    char *slash = strrchr(self, '/');
    if (slash) *slash = 0;
    snprintf(karyon, sizeof karyon, "%s/../karyon", self);
  }
  if (access(karyon, X_OK) != 0 || system("command -v mpirun >/dev/null 2>&1") != 0) {
    printf("bench_dist: SKIPPED: needs %s and mpirun (an MPI build: `make deps`)\n", karyon);
    return 0;
  }
  char *dir = ky_test_tmpdir("bench_dist");
  if (!dir) return 1;
  struct { int np; const char *mb; const char *what; } cfg[] = {
      {1, "4", "1 rank"},
      {2, "0.25", "2 ranks, buckets of 0.25 MB during backward"},
      {2, "1000", "2 ranks, one bucket after backward"},
  };
  row rows[3];
  int fail = 0;
  for (int i = 0; i < 3 && !fail; i++) fail = run_one(&rows[i], karyon, dir, cfg[i].np, steps, cfg[i].mb) != 0;
  if (!fail) {
    printf("karyon train, unet_resnet18 x0.25, crop 128, global batch 8, %d steps, CPU, one thread per rank\n", steps);
    printf("%-46s %10s %8s %8s %12s %12s %8s %8s\n", "run", "step ms", "img/s", "speedup", "compute ms", "ar wait ms",
           "MB/step", "buckets");
    for (int i = 0; i < 3; i++)
      printf("%-46s %10.1f %8.2f %8.2f %12.1f %12.2f %8.2f %8d\n", cfg[i].what, rows[i].step_ms, rows[i].img_s,
             rows[i].img_s / rows[0].img_s, rows[i].compute_ms, rows[i].wait_ms, rows[i].mb, rows[i].buckets);
  }
  ky_test_rmdir(dir);
  free(dir);
  return fail;
}

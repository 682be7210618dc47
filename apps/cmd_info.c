/* `karyon info`: what this build contains (backends, CUDA targets) and which GPUs it sees.
 * Tested by tests/test_apps_cli.c. */
#include <stdio.h>
#include <stdlib.h>

#include "apps/cli.h"
#include "dist/dist.h"
#ifdef KY_HAVE_CUDA
#include "cuda/cuda.h"
#endif

const char ky_cmd_info_summary[] = "show the build's backends and the GPUs it can use";

int ky_cmd_info(int argc, char **argv) {
  static const char *const known[] = {"threads", "help!", NULL};
  if (ky_cli_wants_help(argc, argv)) {
    printf("usage: karyon info [--threads N]\n  Prints the backends compiled in (CPU, CUDA, MPI, NCCL), the CPU threads the kernels would use\n"
           "  (--threads N, else KY_THREADS, else every core this process may use) and the GPUs visible to CUDA.\n");
    return 0;
  }
  if (!ky_cli_check(argc, argv, "info", known)) return 2;
  int threads;
  ky_status s = ky_cli_threads(&threads, argc, argv);
  if (s != KY_OK) return ky_cli_fail("info", s);
  printf("cpu threads: %d (%s)\n", threads,
         ky_cli_opt(argc, argv, "threads") ? "--threads" : getenv("KY_THREADS") ? "KY_THREADS" : "cores this process may use");
  printf("karyon backends: cpu");
#ifdef KY_HAVE_CUDA
  printf(" cuda\n");
  char why[256] = "";
  int n = ky_cuda_device_count(why, sizeof why);
  if (n > 0) printf("gpus: %d\n", n);
  else printf("gpus: none (%s)\n", why);
#else
  printf("\ngpus: CUDA backend not compiled (built with CUDA=0 or without nvcc)\n");
#endif
  printf("mpi: %s%s\n", ky_dist_mpi_version(),
#ifdef KY_HAVE_MPI
         " (mpirun -np N karyon train ...)"
#else
         " (built without libopenmpi-dev: one process only)"
#endif
  );
  printf("nccl: %s\n", ky_dist_nccl_version());
  return 0;
}

/* The op-case table: one row per (op, shape, parameters). The same rows drive the finite-
 * difference gradient checks (tests/test_ops_gradcheck.c), the CPU-vs-CUDA checks
 * (tests/test_cuda_optable.c) and the op benchmarks (bench/bench_ops.c). Adding an op means
 * adding its rows here; the three modes follow. */
#ifndef KY_TESTS_OPTABLE_H
#define KY_TESTS_OPTABLE_H

#include "core/ctx.h"
#include "core/rng.h"

#define KY_CASE_MAX_IN 6

typedef struct ky_opcase ky_opcase;
struct ky_opcase {
  const char *name;                   /* "conv2d 3x3 s2 p1 [1,9,7,5]->4": names the cmocka test */
  int n_in;
  ky_dtype dtype[KY_CASE_MAX_IN];     /* F32 or U8 (class maps) */
  int ndim[KY_CASE_MAX_IN];
  int shape[KY_CASE_MAX_IN][4];
  float lo[KY_CASE_MAX_IN], hi[KY_CASE_MAX_IN];  /* uniform range (U8: classes in [lo, hi]) */
  unsigned diff;                      /* bitmask of inputs that are differentiable */
  int iparam[6];                      /* op parameters (meaning per build function) */
  float fparam[4];
  int kink;                           /* 1: keep f32 inputs away from 0 (ReLU); 2: distinct values (max) */
  int bench;                          /* 1: benchmark-size row (skipped by the gradient check) */
  double tol;                         /* CPU-vs-CUDA relative tolerance (0 = default by op kind) */
  /* Builds the op on ctx from inputs in[] (already on ctx's device) and returns its output. */
  ky_status (*build)(ky_ctx *ctx, const ky_opcase *c, ky_tensor **in, ky_tensor **out);
  /* Nominal FLOPs (or 0) and bytes moved, for the benchmark table. */
  double flops, bytes;
};

/* The table (terminated by a row with name == NULL). */
extern const ky_opcase ky_opcases[];
/* Larger rows (also NULL-terminated) for the thread-count checks: too big for finite differences. */
extern const ky_opcase ky_opcases_large[];
/* A row whose backward is deliberately wrong (relu backward doubled): the gradient check must
 * report it, which proves the check can fail. */
extern const ky_opcase ky_opcase_planted_bug;

/* Host input buffers for a case, filled from (seed, case index); caller frees with
 * ky_opcase_free_inputs. Values respect the ranges and keep ReLU / max-pool inputs away from kinks
 * where the op needs it. */
typedef struct { void *data[KY_CASE_MAX_IN]; size_t numel[KY_CASE_MAX_IN]; } ky_opcase_inputs;
ky_status ky_opcase_make_inputs(ky_opcase_inputs *in, const ky_opcase *c, uint64_t seed);
void ky_opcase_free_inputs(ky_opcase_inputs *in);
/* Uploads host inputs to tensors on ctx (requires_grad per c->diff when grad is wanted). */
ky_status ky_opcase_upload(ky_ctx *ctx, ky_tensor **t, const ky_opcase *c, const ky_opcase_inputs *in, int grad);

/* Result of a gradient check. */
typedef struct {
  int checked, skipped, failed;
  int meaningful;                     /* checked elements whose gradient is well above the noise floor */
  int nonzero;                        /* elements with a non-zero analytic gradient, all inputs */
  double worst_ratio;                 /* max |num - ana| / tolerance over the checked elements */
  char first_failure[256];
} ky_gradcheck_report;
/* Central differences on the CPU against the op's backward, for a sample of elements of every
 * differentiable input: 24 anywhere plus up to 24 where the analytic gradient is non-zero.
 * L = sum(y * r) with a fixed random r. */
ky_status ky_gradcheck(ky_gradcheck_report *rep, const ky_opcase *c, uint64_t seed);

#endif

/* Which CUDA convolution algorithm KY_CONV_ALGO_AUTO runs: a pure function of the direction, the
 * shape, the card's architecture and the context's flags, so that it can be reasoned about (and
 * tested) without a GPU. Used by cuda/conv2d.cu. Tested by tests/test_pipeline_determinism.c and, on a
 * GPU or the CPU emulation, tests/test_cuda_conv.c. */
#ifndef KY_OPS_CONV_CHOICE_H
#define KY_OPS_CONV_CHOICE_H

#include "cuda/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  ky_conv_algo algo;  /* KY_CONV_ALGO_AUTO: time the candidates (only when not deterministic) */
  int cfg;            /* tile configuration; -1: the kernel's own tile rule (M, N, SM count) */
} ky_conv_choice;

/* deterministic != 0 (the context's default, and `karyon train`'s): a fixed rule, no timing,
 * nothing remembered between calls, so two processes on the same card and build run the same
 * kernels and sum in the same order: the implicit GEMM on TF32 tensor cores when tf32 is on and
 * sm >= 80, the fp32 SIMT implicit GEMM otherwise, each with its fixed tile rule; never cuBLAS,
 * whose choices depend on its version. deterministic == 0: {AUTO, -1}: the caller times every
 * candidate once per shape and keeps the fastest (may differ between processes). */
ky_conv_choice ky_conv_auto_choice(int dir, const ky_conv_shape *s, int sm, int tf32, int deterministic);

#ifdef __cplusplus
}
#endif

#endif

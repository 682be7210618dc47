/* The AUTO convolution algorithm rule (see ops/conv_choice.h). Tested by
 * tests/test_pipeline_determinism.c. */
#include "ops/conv_choice.h"

ky_conv_choice ky_conv_auto_choice(int dir, const ky_conv_shape *s, int sm, int tf32, int deterministic) {
  ky_conv_choice c = {KY_CONV_ALGO_AUTO, -1};
  if (!deterministic) return c;
  /* Both implicit GEMMs take every shape, so direction and shape only choose the tile (cfg = -1:
   * the kernel's rule from M, N and the SM count, cuda/conv2d_igemm.cu and conv2d_tf32.cu). */
  (void)dir;
  (void)s;
  c.algo = tf32 && sm >= 80 ? KY_CONV_ALGO_IMPLICIT_TF32 : KY_CONV_ALGO_IMPLICIT_GEMM;
  return c;
}

/* Output-shape arithmetic of the windowed ops (convolution, max pooling): the one copy, used by the
 * tensor-level ops (ops/conv2d.c, ops/pool.c), the CPU and CUDA kernels' callers, and the models'
 * shape walk (models/layers.c), so a summary and a forward pass can never disagree.
 * Tested by tests/test_ops_kernels.c (test_conv_shape_finish, test_pool_shape) and
 * tests/test_models_summary.c (the summary's shapes). */
#include "ops/kernels.h"

int ky_conv_shape_finish(ky_conv_shape *s) {
  if (!s || s->n < 1 || s->h < 1 || s->w < 1 || s->c < 1 || s->k < 1 || s->kh < 1 || s->kw < 1 ||
      s->stride < 1 || s->pad < 0 || s->dil < 1)
    return 0;
  long eh = (long)s->h + 2L * s->pad - (long)s->dil * (s->kh - 1) - 1;
  long ew = (long)s->w + 2L * s->pad - (long)s->dil * (s->kw - 1) - 1;
  if (eh < 0 || ew < 0) return 0;
  s->oh = (int)(eh / s->stride + 1);
  s->ow = (int)(ew / s->stride + 1);
  return 1;
}

int ky_pool_shape_finish(ky_pool_shape *s) {
  /* PyTorch's rule: padding at most half the window, so every window holds a real pixel. */
  if (!s || s->n < 1 || s->h < 1 || s->w < 1 || s->c < 1 || s->k < 1 || s->stride < 1 || s->pad < 0 ||
      s->pad > s->k / 2)
    return 0;
  long eh = (long)s->h + 2L * s->pad - s->k, ew = (long)s->w + 2L * s->pad - s->k;
  if (eh < 0 || ew < 0) return 0;
  s->oh = (int)(eh / s->stride + 1);
  s->ow = (int)(ew / s->stride + 1);
  return 1;
}

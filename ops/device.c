/* The device backends' function tables (core/device.h): the one place below the ops that links
 * core/ to a backend, so core/ itself names none. Tested by tests/test_core_tensor.c (the
 * CUDA=0 errors) and, on a GPU, tests/test_cuda_memory.c and tests/test_cuda_optable.c. */
#include "core/device.h"

#ifdef KY_HAVE_CUDA
#include "cuda/cuda.h"
#include "cuda/kernels.h"

static const ky_devfns cuda_fns = {
  .name = "cuda",
  .open = ky_cuda_init,
  .close = ky_cuda_free,
  .malloc = ky_cuda_malloc,
  .release = ky_cuda_release,
  .memset = ky_cuda_memset,
  .h2d = ky_cuda_h2d,
  .d2h = ky_cuda_d2h,
  .d2d = ky_cuda_d2d,
  .fill = ky_cuda_fill,
};
#endif

const ky_devfns *ky_device_fns(ky_device dev) {
#ifdef KY_HAVE_CUDA
  if (dev == KY_DEV_CUDA) return &cuda_fns;
#endif
  (void)dev;
  return NULL;
}

/* Parameters, gradients and optimiser moments, each in ONE flat block on the device, with named
 * tensor views (llm.c style): one fused optimiser launch, one memset to zero gradients, one write
 * for a checkpoint. Non-trainable buffers (batch-norm running statistics) live in a second
 * ky_params without gradient or moment blocks. Tested by tests/test_core_params.c. */
#ifndef KY_PARAMS_H
#define KY_PARAMS_H

#include <stddef.h>
#include "core/pool.h"
#include "core/status.h"
#include "core/tensor.h"

struct ky_cuda;
struct ky_devfns;

typedef struct {
  ky_tensor *t;        /* view into the flat block (data/grad set by ky_params_alloc) */
  char *name;          /* torchvision-style name, e.g. "layer2.0.downsample.0.weight" */
  size_t offset;       /* in floats from the start of the block */
  size_t numel;
} ky_param;

typedef struct {
  ky_param *p;
  int n, cap;
  size_t total;        /* floats */
  int trainable;       /* gradient (+ moment) blocks exist */
  ky_device dev;
  struct ky_cuda *cu;
  const struct ky_devfns *fns;   /* the device's function table (core/device.h); NULL on the CPU */
  float *data;         /* [total] */
  float *grad;         /* [total] trainable only */
  float *m, *v, *vmax; /* [total] optimiser state, allocated by the optimiser on first use */
} ky_params;

void ky_params_init(ky_params *ps, int trainable);
/* Registers a tensor (shape in karyon layout: OHWI weights); the returned tensor has no data until
 * ky_params_alloc. Names must be unique. */
ky_status ky_params_add(ky_params *ps, ky_tensor **t, const char *name, int ndim, const int *shape);
/* Allocates the flat blocks on `dev` (zeroed) and points every view into them. */
ky_status ky_params_alloc(ky_params *ps, ky_device dev, struct ky_cuda *cu);
/* Allocates m, v (and vmax when amsgrad) if missing, zeroed. */
ky_status ky_params_alloc_moments(ky_params *ps, int amsgrad);
void ky_params_free(ky_params *ps);
ky_param *ky_params_find(const ky_params *ps, const char *name);
/* Zeroes the gradient block; a CPU block is zeroed on `pool` (NULL: the calling thread). */
ky_status ky_params_zero_grad(ky_params *ps, ky_pool *pool);
/* Copies the whole block (or the moments) between host memory and the device block. */
ky_status ky_params_get(const ky_params *ps, float *dst_host, const float *block);
ky_status ky_params_set(ky_params *ps, float *block, const float *src_host);
/* Float range [first, end) covering params registered in [i0, i1) (they are contiguous). */
void ky_params_range(const ky_params *ps, int i0, int i1, size_t *first, size_t *end);

#endif

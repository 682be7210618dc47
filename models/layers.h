/* Model building blocks (internal to models/): conv and batch-norm layers over core/params.h views,
 * their initialisation rules, and one forward path that either computes (with a ky_ctx) or only
 * walks shapes for the summary. Tested through tests/test_models_*.c (parity, summary). */
#ifndef KY_MODELS_LAYERS_H
#define KY_MODELS_LAYERS_H

#include <stdint.h>
#include "core/arena.h"
#include "core/ctx.h"
#include "core/params.h"

#define KY_MNAME 64

/* How a registered tensor is initialised (parallel to the ky_params registration order). */
typedef enum { KY_INIT_ZERO = 0, KY_INIT_ONE, KY_INIT_NORMAL } ky_init_kind;
typedef struct {
  ky_init_kind kind;
  float std;
} ky_minit;

/* Registration state while a model is being built. */
typedef struct {
  ky_params *ps, *bufs;
  ky_minit *pinit;            /* [ps->n] */
  int pinit_cap;
  char (*bn)[KY_MNAME];       /* batch-norm prefixes, for num_batches_tracked */
  int n_bn, bn_cap;
} ky_mbuilder;

typedef enum { KY_FAN_IN = 0, KY_FAN_OUT } ky_fan_mode;

typedef struct {
  ky_tensor *w, *b;           /* w [cout, k, k, cin] OHWI; b [cout] or NULL */
  int cin, cout, k, stride, pad;
  char name[KY_MNAME];
} ky_mconv;

typedef struct {
  ky_tensor *gamma, *beta;    /* trainable [c] */
  ky_tensor *mean, *var;      /* buffers [c] */
  int c;
  char name[KY_MNAME];
} ky_mbn;

#define KY_BN_EPS 1e-5f
#define KY_BN_MOMENTUM 0.1f

ky_status ky_mconv_add(ky_mbuilder *b, ky_mconv *c, const char *name, int cin, int cout, int k, int stride,
                       int bias, ky_fan_mode fan);
ky_status ky_mbn_add(ky_mbuilder *b, ky_mbn *bn, const char *name, int c);
void ky_mbuilder_free(ky_mbuilder *b);

/* The shape walk's observer: called once per layer with its name, kind ("conv3x3", "bn", "maxpool",
 * "upsample", "concat"), output shape [n, h, w, c], trainable parameters and forward FLOPs. Owned
 * here so that the summary (models/summary.c) observes the layers without the layers calling it. */
typedef ky_status (*ky_mrow_fn)(void *obs, const char *name, const char *kind, const int shape[4],
                                int64_t params, int64_t flops);

/* One forward pass: ctx != NULL computes; ctx == NULL walks shapes (tensor structs from `shapes`,
 * no data) and reports each layer to on_row(obs, ...) when on_row is set. */
typedef struct {
  ky_ctx *ctx;
  ky_arena *shapes;
  ky_mrow_fn on_row;
  void *obs;
} ky_mrun;

ky_status ky_mconv_fwd(ky_mrun *r, ky_tensor **y, ky_tensor *x, const ky_mconv *c, int relu);
/* Batch norm, then ReLU when relu != 0. */
ky_status ky_mbn_fwd(ky_mrun *r, ky_tensor **y, ky_tensor *x, const ky_mbn *bn, int relu);
ky_status ky_mrelu_fwd(ky_mrun *r, ky_tensor **y, ky_tensor *x);
/* a + b, then ReLU when relu != 0. */
ky_status ky_madd_fwd(ky_mrun *r, ky_tensor **y, ky_tensor *a, ky_tensor *b, int relu);
ky_status ky_mmaxpool_fwd(ky_mrun *r, ky_tensor **y, ky_tensor *x, const char *name, int k, int stride, int pad);
ky_status ky_mconcat_fwd(ky_mrun *r, ky_tensor **y, ky_tensor *const *xs, int k, const char *name);
ky_status ky_mup_fwd(ky_mrun *r, ky_tensor **y, ky_tensor *x, int f, const char *name);

/* Width scaling shared with tests/fixtures/gen_models.py: max(1, floor(base * width + 0.5)). */
int ky_mwidth(int base, float width);

#endif

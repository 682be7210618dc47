/* Conv / batch-norm layer registration and the shared compute-or-shape-walk forward helpers.
 * Tested through tests/test_models_parity.c (PyTorch logits/gradients) and tests/test_models_summary.c. */
#include "models/layers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernels.h"
#include "ops/ops.h"

int ky_mwidth(int base, float width) {
  int v = (int)floor((double)base * (double)width + 0.5);
  return v < 1 ? 1 : v;
}

static ky_status push_init(ky_mbuilder *b, ky_init_kind kind, float std) {
  int n = b->ps->n;  /* the parameter just registered is index n - 1 */
  if (n > b->pinit_cap) {
    int cap = b->pinit_cap ? 2 * b->pinit_cap : 64;
    while (cap < n) cap *= 2;
    ky_minit *p = realloc(b->pinit, (size_t)cap * sizeof *p);
    if (!p) return ky_error(KY_ERR_NOMEM, "model: init table of %d entries", cap);
    b->pinit = p;
    b->pinit_cap = cap;
  }
  b->pinit[n - 1].kind = kind;
  b->pinit[n - 1].std = std;
  return KY_OK;
}

static ky_status add_param(ky_mbuilder *b, ky_tensor **t, const char *prefix, const char *leaf, int ndim,
                           const int *shape, ky_init_kind kind, float std) {
  char name[2 * KY_MNAME];
  snprintf(name, sizeof name, "%s.%s", prefix, leaf);
  KY_TRY(ky_params_add(b->ps, t, name, ndim, shape));
  return push_init(b, kind, std);
}

ky_status ky_mconv_add(ky_mbuilder *b, ky_mconv *c, const char *name, int cin, int cout, int k, int stride,
                       int bias, ky_fan_mode fan) {
  KY_CHECK(cin > 0 && cout > 0 && k > 0 && stride > 0, KY_ERR_ARG,
           "model: conv %s: bad sizes cin %d cout %d k %d stride %d", name, cin, cout, k, stride);
  KY_CHECK(strlen(name) < KY_MNAME - 16, KY_ERR_ARG, "model: layer name '%s' too long", name);
  memset(c, 0, sizeof *c);
  snprintf(c->name, sizeof c->name, "%s", name);
  c->cin = cin; c->cout = cout; c->k = k; c->stride = stride; c->pad = k / 2;
  /* Kaiming normal, ReLU gain: std = sqrt(2 / fan), fan_in = cin k k (PyTorch's kaiming_normal_
   * default, Albu's decoder) or fan_out = cout k k (torchvision's ResNet init). */
  double fanv = (double)(fan == KY_FAN_OUT ? cout : cin) * k * k;
  int shape[4] = {cout, k, k, cin};
  KY_TRY(add_param(b, &c->w, name, "weight", 4, shape, KY_INIT_NORMAL, (float)sqrt(2.0 / fanv)));
  if (bias) KY_TRY(add_param(b, &c->b, name, "bias", 1, &cout, KY_INIT_ZERO, 0.f));
  return KY_OK;
}

ky_status ky_mbn_add(ky_mbuilder *b, ky_mbn *bn, const char *name, int c) {
  KY_CHECK(c > 0, KY_ERR_ARG, "model: bn %s: %d channels", name, c);
  KY_CHECK(strlen(name) < KY_MNAME - 16, KY_ERR_ARG, "model: layer name '%s' too long", name);
  memset(bn, 0, sizeof *bn);
  snprintf(bn->name, sizeof bn->name, "%s", name);
  bn->c = c;
  KY_TRY(add_param(b, &bn->gamma, name, "weight", 1, &c, KY_INIT_ONE, 0.f));
  KY_TRY(add_param(b, &bn->beta, name, "bias", 1, &c, KY_INIT_ZERO, 0.f));
  char full[2 * KY_MNAME];
  snprintf(full, sizeof full, "%s.running_mean", name);
  KY_TRY(ky_params_add(b->bufs, &bn->mean, full, 1, &c));
  snprintf(full, sizeof full, "%s.running_var", name);
  KY_TRY(ky_params_add(b->bufs, &bn->var, full, 1, &c));
  if (b->n_bn == b->bn_cap) {
    int cap = b->bn_cap ? 2 * b->bn_cap : 32;
    char (*p)[KY_MNAME] = realloc(b->bn, (size_t)cap * sizeof *p);
    if (!p) return ky_error(KY_ERR_NOMEM, "model: bn table of %d entries", cap);
    b->bn = p;
    b->bn_cap = cap;
  }
  snprintf(b->bn[b->n_bn++], KY_MNAME, "%s", name);
  return KY_OK;
}

void ky_mbuilder_free(ky_mbuilder *b) {
  free(b->pinit);
  free(b->bn);
  memset(b, 0, sizeof *b);
}

/* ---- forward helpers ---------------------------------------------------------------------- */

static ky_status shape_tensor(ky_mrun *r, ky_tensor **y, int n, int h, int w, int c) {
  void *p;
  KY_TRY(ky_arena_alloc(r->shapes, &p, sizeof(ky_tensor)));
  ky_tensor *t = p;
  memset(t, 0, sizeof *t);
  t->ndim = 4;
  t->shape[0] = n; t->shape[1] = h; t->shape[2] = w; t->shape[3] = c;
  t->dtype = KY_F32;
  t->dev = KY_DEV_CPU;
  *y = t;
  return KY_OK;
}

static ky_status row(ky_mrun *r, const char *name, const char *kind, const ky_tensor *y, int64_t params,
                     int64_t flops) {
  if (!r->on_row) return KY_OK;
  return r->on_row(r->obs, name, kind, y->shape, params, flops);
}

ky_status ky_mconv_fwd(ky_mrun *r, ky_tensor **y, ky_tensor *x, const ky_mconv *c, int relu) {
  if (r->ctx) {
    ky_status s = ky_conv2d(r->ctx, y, x, c->w, c->b, c->stride, c->pad, 1, relu);
    if (s != KY_OK) return ky_error_context(s, "layer %s: ", c->name);
    return KY_OK;
  }
  KY_CHECK(x->shape[3] == c->cin, KY_ERR_SHAPE, "layer %s: input has %d channels, conv expects %d", c->name,
           x->shape[3], c->cin);
  ky_conv_shape s = {x->shape[0], x->shape[1], x->shape[2], c->cin, c->cout, c->k, c->k, c->stride, c->pad, 1, 0, 0};
  KY_CHECK(ky_conv_shape_finish(&s), KY_ERR_SHAPE, "layer %s: input %dx%d too small", c->name, x->shape[1],
           x->shape[2]);
  KY_TRY(shape_tensor(r, y, s.n, s.oh, s.ow, s.k));
  char kind[16];
  snprintf(kind, sizeof kind, "conv%dx%d", c->k, c->k);
  int64_t macs = (int64_t)s.n * s.oh * s.ow * s.k * s.kh * s.kw * s.c;
  int64_t np = (int64_t)c->cout * c->k * c->k * c->cin + (c->b ? c->cout : 0);
  return row(r, c->name, kind, *y, np, 2 * macs);
}

ky_status ky_mbn_fwd(ky_mrun *r, ky_tensor **y, ky_tensor *x, const ky_mbn *bn, int relu) {
  if (r->ctx) {
    ky_tensor *t;
    ky_status s = ky_batchnorm2d(r->ctx, &t, x, bn->gamma, bn->beta, bn->mean, bn->var, KY_BN_EPS, KY_BN_MOMENTUM);
    if (s != KY_OK) return ky_error_context(s, "layer %s: ", bn->name);
    if (!relu) { *y = t; return KY_OK; }
    return ky_relu(r->ctx, y, t);
  }
  KY_CHECK(x->shape[3] == bn->c, KY_ERR_SHAPE, "layer %s: input has %d channels, bn expects %d", bn->name,
           x->shape[3], bn->c);
  KY_TRY(shape_tensor(r, y, x->shape[0], x->shape[1], x->shape[2], x->shape[3]));
  return row(r, bn->name, "bn", *y, 2 * (int64_t)bn->c, 0);
}

ky_status ky_mrelu_fwd(ky_mrun *r, ky_tensor **y, ky_tensor *x) {
  if (r->ctx) return ky_relu(r->ctx, y, x);
  *y = x;  /* shape walk: same shape, no row */
  return KY_OK;
}

ky_status ky_madd_fwd(ky_mrun *r, ky_tensor **y, ky_tensor *a, ky_tensor *b, int relu) {
  if (r->ctx) {
    ky_tensor *t;
    KY_TRY(ky_add(r->ctx, &t, a, b));
    if (!relu) { *y = t; return KY_OK; }
    return ky_relu(r->ctx, y, t);
  }
  for (int i = 0; i < 4; i++)
    KY_CHECK(a->shape[i] == b->shape[i], KY_ERR_SHAPE, "model: add of [%d, %d, %d, %d] and [%d, %d, %d, %d]",
             a->shape[0], a->shape[1], a->shape[2], a->shape[3], b->shape[0], b->shape[1], b->shape[2], b->shape[3]);
  *y = a;
  return KY_OK;
}

ky_status ky_mmaxpool_fwd(ky_mrun *r, ky_tensor **y, ky_tensor *x, const char *name, int k, int stride, int pad) {
  if (r->ctx) return ky_maxpool2d(r->ctx, y, x, k, stride, pad);
  ky_pool_shape s = {x->shape[0], x->shape[1], x->shape[2], x->shape[3], k, stride, pad, 0, 0};
  KY_CHECK(ky_pool_shape_finish(&s), KY_ERR_SHAPE, "%s: input %dx%d too small for window %d", name, s.h, s.w, k);
  KY_TRY(shape_tensor(r, y, s.n, s.oh, s.ow, s.c));
  return row(r, name, "maxpool", *y, 0, 0);
}

ky_status ky_mconcat_fwd(ky_mrun *r, ky_tensor **y, ky_tensor *const *xs, int k, const char *name) {
  if (r->ctx) return ky_concat(r->ctx, y, xs, k);
  int c = 0;
  for (int i = 0; i < k; i++) {
    KY_CHECK(xs[i]->shape[1] == xs[0]->shape[1] && xs[i]->shape[2] == xs[0]->shape[2], KY_ERR_SHAPE,
             "%s: inputs of %dx%d and %dx%d", name, xs[0]->shape[1], xs[0]->shape[2], xs[i]->shape[1],
             xs[i]->shape[2]);
    c += xs[i]->shape[3];
  }
  KY_TRY(shape_tensor(r, y, xs[0]->shape[0], xs[0]->shape[1], xs[0]->shape[2], c));
  return row(r, name, "concat", *y, 0, 0);
}

ky_status ky_mup_fwd(ky_mrun *r, ky_tensor **y, ky_tensor *x, int f, const char *name) {
  if (f == 1) { *y = x; return KY_OK; }
  if (r->ctx) return ky_upsample_nearest(r->ctx, y, x, f);
  KY_TRY(shape_tensor(r, y, x->shape[0], x->shape[1] * f, x->shape[2] * f, x->shape[3]));
  return row(r, name, "upsample", *y, 0, 0);
}

/* Model summary: walks the forward pass on shapes only and collects per-layer rows and totals.
 * Tested by tests/test_models_summary.c. */
#include "models/summary.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/model_impl.h"

/* The layers' row hook (ky_mrow_fn, models/layers.h): appends one row. */
static ky_status add_row(void *obs, const char *name, const char *kind, const int shape[4], int64_t params,
                         int64_t flops) {
  ky_model_summary *s = obs;
  if (s->n == s->cap) {
    int cap = s->cap ? 2 * s->cap : 128;
    ky_summary_row *r = realloc(s->rows, (size_t)cap * sizeof *r);
    if (!r) return ky_error(KY_ERR_NOMEM, "summary: %d rows", cap);
    s->rows = r;
    s->cap = cap;
  }
  ky_summary_row *r = &s->rows[s->n++];
  memset(r, 0, sizeof *r);
  snprintf(r->name, sizeof r->name, "%s", name);
  snprintf(r->kind, sizeof r->kind, "%s", kind);
  memcpy(r->shape, shape, sizeof r->shape);
  r->params = params;
  r->flops = flops;
  s->flops += flops;
  return KY_OK;
}

void ky_model_summary_free(ky_model_summary *s) {
  if (!s) return;
  free(s->rows);
  memset(s, 0, sizeof *s);
}

ky_status ky_model_summarize(ky_model_summary *s, const ky_model *m, int n, int h, int w) {
  KY_CHECK_NULL(s, "s");
  memset(s, 0, sizeof *s);
  KY_CHECK_NULL(m, "m");
  KY_CHECK(n > 0 && h > 0 && w > 0 && h % 32 == 0 && w % 32 == 0, KY_ERR_SHAPE,
           "summary of %s: input %dx%dx%d, H and W must be positive multiples of 32", m->name, n, h, w);
  ky_arena shapes;
  ky_arena_init(&shapes, KY_DEV_CPU, NULL, 1 << 16);
  ky_tensor *x, *y;
  void *p;
  ky_status st = ky_arena_alloc(&shapes, &p, sizeof(ky_tensor));
  if (st == KY_OK) {
    x = p;
    memset(x, 0, sizeof *x);
    x->ndim = 4;
    x->shape[0] = n; x->shape[1] = h; x->shape[2] = w; x->shape[3] = m->cfg.in_channels;
    x->dtype = KY_F32;
    ky_mrun run = {NULL, &shapes, add_row, s};
    st = ky_model_run(&run, m, x, &y);
  }
  ky_arena_free(&shapes);
  if (st != KY_OK) {
    ky_model_summary_free(s);
    return ky_error_context(st, "summary of %s: ", m->name);
  }
  /* Sum of sizes: the flat blocks pad every view to 64 floats. */
  for (int i = 0; i < m->ps.n; i++) {
    s->params += (int64_t)m->ps.p[i].numel;
    if (i < m->n_enc_params) s->enc_params += (int64_t)m->ps.p[i].numel;
  }
  for (int i = 0; i < m->bufs.n; i++) s->buffers += (int64_t)m->bufs.p[i].numel;
  return KY_OK;
}

/* Model creation by name, initialisation (torchvision / PyTorch rules on the seeded Philox stream),
 * forward, encoder freezing, accessors and the PyTorch-layout state listing.
 * Tested by tests/test_models_parity.c, tests/test_models_weights.c, tests/test_models_summary.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "models/model_impl.h"

static const char *const kNames[] = {"unet_resnet18", "unet_resnet34", "unet_resnet50", "unet_resnet101",
                                     "unet_resnet152", "fpn_resnet18",  "fpn_resnet34",  "fpn_resnet50",
                                     "fpn_resnet101",  "fpn_resnet152", NULL};

const char *const *ky_model_names(void) { return kNames; }

ky_model_config ky_model_config_default(void) {
  ky_model_config c;
  memset(&c, 0, sizeof c);
  c.in_channels = 3;
  c.classes = 3;
  c.width = 1.0f;
  c.dev = KY_DEV_CPU;
  return c;
}

/* Fills the host copy of the parameter block by the init table, in registration order. */
static ky_status init_params(ky_model *m) {
  size_t total = m->ps.total;
  float *h = calloc(total ? total : 1, sizeof *h);  /* padding between views stays 0 */
  if (!h) return ky_error(KY_ERR_NOMEM, "model %s: %zu floats for initialisation", m->name, total);
  ky_rng rng = ky_rng_make(m->cfg.seed, KY_RNG_STREAM_INIT);
  for (int i = 0; i < m->ps.n; i++) {
    const ky_param *p = &m->ps.p[i];
    const ky_minit *in = &m->b.pinit[i];
    float *d = h + p->offset;
    for (size_t k = 0; k < p->numel; k++)
      d[k] = in->kind == KY_INIT_ONE ? 1.f : in->kind == KY_INIT_ZERO ? 0.f : in->std * ky_rng_normal(&rng);
  }
  ky_status s = ky_params_set(&m->ps, m->ps.data, h);
  free(h);
  KY_TRY(s);
  /* running_mean 0, running_var 1: buffers come in (mean, var) pairs */
  h = calloc(m->bufs.total ? m->bufs.total : 1, sizeof *h);
  if (!h) return ky_error(KY_ERR_NOMEM, "model %s: %zu buffer floats", m->name, m->bufs.total);
  for (int i = 0; i < m->bufs.n; i++) {
    const ky_param *p = &m->bufs.p[i];
    float v = (i & 1) ? 1.f : 0.f;
    for (size_t k = 0; k < p->numel; k++) h[p->offset + k] = v;
  }
  s = ky_params_set(&m->bufs, m->bufs.data, h);
  free(h);
  return s;
}

static ky_status build(ky_model *m, const char *name) {
  const char *dash = strchr(name, '_');
  int depth = 0;
  KY_CHECK(dash && sscanf(dash + 1, "resnet%d", &depth) == 1, KY_ERR_ARG, "model: cannot parse name '%s'", name);
  m->decoder = !strncmp(name, "fpn_", 4) ? KY_DEC_FPN : KY_DEC_UNET;
  const ky_model_config *c = &m->cfg;
  m->b.ps = &m->ps;
  m->b.bufs = &m->bufs;
  KY_TRY(ky_resnet_build(&m->enc, &m->b, depth, c->in_channels, c->width));
  m->n_enc_params = m->ps.n;
  if (m->decoder == KY_DEC_UNET)
    KY_TRY(ky_unet_build(&m->unet, &m->b, m->enc.tap_ch, c->classes, c->decoder_bn));
  else
    KY_TRY(ky_fpn_build(&m->fpn, &m->b, m->enc.tap_ch, c->classes, c->width));
  m->nbt_names = calloc((size_t)(m->b.n_bn ? m->b.n_bn : 1), sizeof *m->nbt_names);
  if (!m->nbt_names) return ky_error(KY_ERR_NOMEM, "model %s: names", name);
  for (int i = 0; i < m->b.n_bn; i++) {
    size_t len = strlen(m->b.bn[i]) + 32;
    m->nbt_names[i] = malloc(len);
    if (!m->nbt_names[i]) return ky_error(KY_ERR_NOMEM, "model %s: names", name);
    snprintf(m->nbt_names[i], len, "%s.num_batches_tracked", m->b.bn[i]);
  }
  for (int i = 0; i < m->ps.n; i++) m->ps.p[i].t->requires_grad = 1;
  if (c->no_alloc) return KY_OK;
  KY_TRY(ky_params_alloc(&m->ps, c->dev, c->cu));
  KY_TRY(ky_params_alloc(&m->bufs, c->dev, c->cu));
  m->allocated = 1;
  return init_params(m);
}

ky_status ky_model_create(ky_model **out, const char *name, const ky_model_config *cfg) {
  KY_CHECK_NULL(out, "m");
  *out = NULL;
  KY_CHECK_NULL(name, "name");
  KY_CHECK_NULL(cfg, "cfg");
  int known = 0;
  for (int i = 0; kNames[i]; i++) known |= !strcmp(kNames[i], name);
  if (!known) {
    char list[512] = "";
    for (int i = 0; kNames[i]; i++) {
      strncat(list, kNames[i], sizeof list - strlen(list) - 1);
      if (kNames[i + 1]) strncat(list, ", ", sizeof list - strlen(list) - 1);
    }
    return ky_error(KY_ERR_ARG, "model: unknown name '%s' (known: %s)", name, list);
  }
  KY_CHECK(cfg->in_channels >= 1 && cfg->in_channels <= 64, KY_ERR_ARG, "model %s: in_channels %d (expected 1..64)",
           name, cfg->in_channels);
  KY_CHECK(cfg->classes >= 1 && cfg->classes <= 256, KY_ERR_ARG, "model %s: classes %d (expected 1..256)", name,
           cfg->classes);
  KY_CHECK(cfg->width > 0.f && cfg->width <= 8.f, KY_ERR_ARG, "model %s: width %g (expected (0, 8])", name,
           (double)cfg->width);
  KY_CHECK(!cfg->decoder_bn || strncmp(name, "fpn_", 4), KY_ERR_ARG,
           "model %s: decoder_bn applies to U-Nets only (the FPN head has its fixed aggregation BN)", name);
  KY_CHECK(cfg->dev == KY_DEV_CPU || cfg->cu, KY_ERR_ARG, "model %s: CUDA device without a CUDA context", name);
  ky_model *m = calloc(1, sizeof *m);
  if (!m) return ky_error(KY_ERR_NOMEM, "model %s", name);
  snprintf(m->name, sizeof m->name, "%s", name);
  m->cfg = *cfg;
  ky_params_init(&m->ps, 1);
  ky_params_init(&m->bufs, 0);
  ky_status s = build(m, name);
  if (s != KY_OK) {
    ky_model_free(m);
    return ky_error_context(s, "creating %s: ", name);
  }
  *out = m;
  return KY_OK;
}

void ky_model_free(ky_model *m) {
  if (!m) return;
  ky_params_free(&m->ps);
  ky_params_free(&m->bufs);
  if (m->nbt_names)
    for (int i = 0; i < m->b.n_bn; i++) free(m->nbt_names[i]);
  free(m->nbt_names);
  ky_mbuilder_free(&m->b);
  ky_resnet_free(&m->enc);
  free(m);
}

ky_status ky_model_run(ky_mrun *run, const ky_model *m, ky_tensor *x, ky_tensor **logits) {
  ky_tensor *taps[5];
  KY_TRY(ky_resnet_fwd(run, taps, &m->enc, x));
  if (m->decoder == KY_DEC_UNET) return ky_unet_fwd(run, logits, &m->unet, taps);
  return ky_fpn_fwd(run, logits, &m->fpn, taps);
}

ky_status ky_model_forward(ky_ctx *ctx, ky_model *m, ky_tensor *x, ky_tensor **logits) {
  KY_CHECK_NULL(ctx, "ctx");
  KY_CHECK_NULL(m, "m");
  KY_CHECK_NULL(logits, "logits");
  KY_CHECK(m->allocated, KY_ERR_STATE, "model %s: created with no_alloc, it has no weights to run", m->name);
  KY_TRY(ky_tensor_check(x, m->name, "x", KY_F32, 4));
  char d[96];
  KY_CHECK(x->shape[3] == m->cfg.in_channels, KY_ERR_SHAPE, "model %s: x is %s, expected %d channels (NHWC)",
           m->name, ky_tensor_desc(x, d, sizeof d), m->cfg.in_channels);
  KY_CHECK(x->shape[1] % 32 == 0 && x->shape[2] % 32 == 0 && x->shape[1] > 0 && x->shape[2] > 0, KY_ERR_SHAPE,
           "model %s: x is %s, H and W must be multiples of 32", m->name, ky_tensor_desc(x, d, sizeof d));
  KY_CHECK(x->dev == m->cfg.dev, KY_ERR_ARG, "model %s: x is on %s, the weights on %s", m->name,
           x->dev == KY_DEV_CPU ? "cpu" : "cuda", m->cfg.dev == KY_DEV_CPU ? "cpu" : "cuda");
  ky_mrun run = {ctx, NULL, NULL, NULL};
  ky_status s = ky_model_run(&run, m, x, logits);
  if (s != KY_OK) return ky_error_context(s, "model %s: ", m->name);
  if (ctx->training) m->bn_steps++;
  return KY_OK;
}

void ky_model_freeze_encoder(ky_model *m, int on) {
  if (!m) return;
  m->frozen = !!on;
  for (int i = 0; i < m->n_enc_params; i++) m->ps.p[i].t->requires_grad = !on;
}

int ky_model_encoder_frozen(const ky_model *m) { return m ? m->frozen : 0; }

void ky_model_encoder_range(const ky_model *m, size_t *first, size_t *end, int *n_tensors) {
  size_t f = 0, e = 0;
  if (m) ky_params_range(&m->ps, 0, m->n_enc_params, &f, &e);
  if (first) *first = f;
  if (end) *end = e;
  if (n_tensors) *n_tensors = m ? m->n_enc_params : 0;
}

void ky_model_trainable_range(const ky_model *m, size_t *first, size_t *end) {
  size_t ef;
  ky_model_encoder_range(m, &ef, first, NULL);
  if (!m || !m->frozen) *first = 0;
  *end = m ? m->ps.total : 0;
}

ky_params *ky_model_params(ky_model *m) { return m ? &m->ps : NULL; }
ky_params *ky_model_buffers(ky_model *m) { return m ? &m->bufs : NULL; }
const ky_model_config *ky_model_get_config(const ky_model *m) { return m ? &m->cfg : NULL; }
const char *ky_model_name(const ky_model *m) { return m ? m->name : ""; }
int64_t ky_model_bn_steps(const ky_model *m) { return m ? m->bn_steps : 0; }

void ky_model_tap_channels(const ky_model *m, int ch[5]) {
  for (int i = 0; i < 5; i++) ch[i] = m ? m->enc.tap_ch[i] : 0;
}

void ky_model_describe(const ky_model *m, char *buf, size_t len) {
  if (!m) { snprintf(buf, len, "(null model)"); return; }
  snprintf(buf, len, "%s in=%d classes=%d width=%.9g decoder_bn=%d", m->name, m->cfg.in_channels, m->cfg.classes,
           (double)m->cfg.width, m->cfg.decoder_bn);
}

ky_status ky_model_parse_desc(char *name, size_t name_len, ky_model_config *cfg, const char *desc) {
  KY_CHECK_NULL(name, "name");
  KY_CHECK_NULL(cfg, "cfg");
  KY_CHECK_NULL(desc, "desc");
  char nm[64], tail;
  int in, classes, dbn;
  float width;
  int k = sscanf(desc, "%63s in=%d classes=%d width=%f decoder_bn=%d %c", nm, &in, &classes, &width, &dbn, &tail);
  KY_CHECK(k == 5, KY_ERR_FORMAT,
           "model description '%s': expected '<name> in=<k> classes=<c> width=<w> decoder_bn=<0|1>'", desc);
  KY_CHECK(strlen(nm) < name_len, KY_ERR_ARG, "model description '%s': name too long", desc);
  snprintf(name, name_len, "%s", nm);
  cfg->in_channels = in;
  cfg->classes = classes;
  cfg->width = width;
  cfg->decoder_bn = dbn;
  return KY_OK;
}

/* ---- exported state (PyTorch layout) ----------------------------------------------------- */

int ky_model_state_count(const ky_model *m) { return m ? m->ps.n + m->bufs.n + m->b.n_bn : 0; }

ky_status ky_model_state_entry(const ky_model *m, int i, const char **name, ky_dtype *dtype, int *ndim,
                               int64_t shape[4]) {
  KY_CHECK(m && i >= 0 && i < ky_model_state_count(m), KY_ERR_ARG, "model: state entry %d out of range", i);
  if (i >= m->ps.n + m->bufs.n) {
    *name = m->nbt_names[i - m->ps.n - m->bufs.n];
    *dtype = KY_I64;
    *ndim = 0;
    return KY_OK;
  }
  const ky_param *p = i < m->ps.n ? &m->ps.p[i] : &m->bufs.p[i - m->ps.n];
  const ky_tensor *t = p->t;
  *name = p->name;
  *dtype = KY_F32;
  *ndim = t->ndim;
  if (t->ndim == 4) {  /* OHWI -> OIHW */
    shape[0] = t->shape[0]; shape[1] = t->shape[3]; shape[2] = t->shape[1]; shape[3] = t->shape[2];
  } else {
    for (int d = 0; d < t->ndim; d++) shape[d] = t->shape[d];
  }
  return KY_OK;
}

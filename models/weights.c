/* Weight import/export as safetensors with torchvision names in PyTorch layout: conv weights are
 * OIHW in files and OHWI in karyon, converted only here. Tested by tests/test_models_weights.c
 * (round trip, torchvision files with fc.* and num_batches_tracked, bad shapes, missing keys). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/model_impl.h"

static void shape_str(char *buf, size_t len, int ndim, const int64_t *shape) {
  size_t o = (size_t)snprintf(buf, len, "[");
  for (int d = 0; d < ndim && o < len; d++) o += (size_t)snprintf(buf + o, len - o, d ? ", %lld" : "%lld", (long long)shape[d]);
  if (o < len) snprintf(buf + o, len - o, "]");
}

/* dst OHWI [o, kh, kw, i] <- src OIHW [o, i, kh, kw] */
static void oihw_to_ohwi(float *dst, const float *src, int o, int i, int kh, int kw) {
  for (int a = 0; a < o; a++)
    for (int c = 0; c < i; c++)
      for (int y = 0; y < kh; y++)
        for (int x = 0; x < kw; x++) dst[(((size_t)a * kh + y) * kw + x) * i + c] = src[(((size_t)a * i + c) * kh + y) * kw + x];
}

static void ohwi_to_oihw(float *dst, const float *src, int o, int kh, int kw, int i) {
  for (int a = 0; a < o; a++)
    for (int c = 0; c < i; c++)
      for (int y = 0; y < kh; y++)
        for (int x = 0; x < kw; x++) dst[(((size_t)a * i + c) * kh + y) * kw + x] = src[(((size_t)a * kh + y) * kw + x) * i + c];
}

static ky_status list_push(char ***list, int *n, const char *name) {
  char **p = realloc(*list, (size_t)(*n + 1) * sizeof *p);
  if (!p) return ky_error(KY_ERR_NOMEM, "load report");
  *list = p;
  p[*n] = strdup(name);
  if (!p[*n]) return ky_error(KY_ERR_NOMEM, "load report");
  (*n)++;
  return KY_OK;
}

void ky_load_report_free(ky_load_report *rep) {
  if (!rep) return;
  for (int i = 0; i < rep->n_missing; i++) free(rep->missing[i]);
  for (int i = 0; i < rep->n_unexpected; i++) free(rep->unexpected[i]);
  free(rep->missing);
  free(rep->unexpected);
  memset(rep, 0, sizeof *rep);
}

/* "a, b, c and 12 more" */
static void name_list(char *buf, size_t len, char **names, int n) {
  size_t o = 0;
  buf[0] = 0;
  for (int i = 0; i < n && o < len; i++) {
    if (i == 8) { snprintf(buf + o, len - o, " and %d more", n - 8); return; }
    o += (size_t)snprintf(buf + o, len - o, i ? ", %s" : "%s", names[i]);
  }
}

static int is_encoder_name(const ky_model *m, const char *name) {
  for (int i = 0; i < m->n_enc_params; i++)
    if (!strcmp(m->ps.p[i].name, name)) return 1;
  /* encoder buffers and BN counters: every encoder name starts with conv1/bn1/layerN */
  return !strncmp(name, "bn1.", 4) || !strncmp(name, "conv1.", 6) ||
         (!strncmp(name, "layer", 5) && name[5] >= '1' && name[5] <= '4' && name[6] == '.');
}

/* Victor's rule for a 4-channel stem from 3-channel ImageNet weights (reference section 2.3):
 * channels 0-2 get 0.9 x the RGB filters, channel 3 gets 0.1 x the G filter. src OIHW [o, 3, k, k]. */
static void adapt_stem(float *dst_ohwi, const float *src, int o, int kh, int kw) {
  for (int a = 0; a < o; a++)
    for (int y = 0; y < kh; y++)
      for (int x = 0; x < kw; x++) {
        float *d = dst_ohwi + (((size_t)a * kh + y) * kw + x) * 4;
        for (int c = 0; c < 3; c++) d[c] = 0.9f * src[(((size_t)a * 3 + c) * kh + y) * kw + x];
        d[3] = 0.1f * src[(((size_t)a * 3 + 1) * kh + y) * kw + x];
      }
}

/* A NaN or Inf weight predicts nothing (every probability NaN, no instance) without an error:
 * refuse it at load, naming the tensor. */
static ky_status check_finite(const float *v, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(v[i]))
      return ky_error(KY_ERR_FORMAT, "tensor '%s' holds %s at element %zu: the file is damaged or the run that wrote it "
                      "diverged", name, isnan(v[i]) ? "NaN" : "Inf", i);
  return KY_OK;
}

static ky_status copy_entry(float *dst, const ky_param *p, const ky_st_file *f, const ky_st_entry *e, int flags) {
  int64_t want[4];
  const ky_tensor *t = p->t;
  const char *nm = p->name;
  int nd = t->ndim;
  /* expected PyTorch shape */
  if (nd == 4) { want[0] = t->shape[0]; want[1] = t->shape[3]; want[2] = t->shape[1]; want[3] = t->shape[2]; }
  else for (int d = 0; d < nd; d++) want[d] = t->shape[d];
  int same = e->ndim == nd;
  for (int d = 0; same && d < nd; d++) same = e->shape[d] == want[d];
  int adapt = !same && (flags & KY_LOAD_ADAPT_STEM) && !strcmp(nm, "conv1.weight") && nd == 4 && e->ndim == 4 &&
              want[1] == 4 && e->shape[1] == 3 && e->shape[0] == want[0] && e->shape[2] == want[2] &&
              e->shape[3] == want[3];
  if (!same && !adapt) {
    char a[96], b[96];
    shape_str(a, sizeof a, e->ndim, e->shape);
    shape_str(b, sizeof b, nd, want);
    return ky_error(KY_ERR_SHAPE, "tensor '%s' has shape %s in the file, the model expects %s", nm, a, b);
  }
  KY_CHECK(e->dtype == KY_F32, KY_ERR_FORMAT, "tensor '%s' is %s in the file, expected F32", nm,
           ky_dtype_name(e->dtype));
  const void *src = ky_st_data(f, e);
  if (nd != 4) {
    memcpy(dst + p->offset, src, p->numel * sizeof(float));
    return check_finite(dst + p->offset, p->numel, nm);
  }
  /* Tensor data in a safetensors file need not be 4-byte aligned: convert from an aligned copy. */
  size_t n = ky_st_numel(e);
  float *tmp = malloc(n * sizeof *tmp);
  if (!tmp) return ky_error(KY_ERR_NOMEM, "tensor '%s': %zu floats", nm, n);
  memcpy(tmp, src, n * sizeof *tmp);
  ky_status s = check_finite(tmp, n, nm);
  if (s != KY_OK) { free(tmp); return s; }
  if (adapt) adapt_stem(dst + p->offset, tmp, t->shape[0], t->shape[1], t->shape[2]);
  else oihw_to_ohwi(dst + p->offset, tmp, t->shape[0], t->shape[3], t->shape[1], t->shape[2]);
  free(tmp);
  return KY_OK;
}

static ky_status load_impl(ky_model *m, const ky_st_file *f, int flags, ky_load_report *rep, const char *skip,
                           float *hp, float *hb) {
  size_t skip_len = skip ? strlen(skip) : 0;
  char *used = calloc((size_t)(f->n ? f->n : 1), 1);
  if (!used) return ky_error(KY_ERR_NOMEM, "load: %d entries", f->n);
  ky_status s = KY_OK;
  for (int i = 0; i < m->ps.n + m->bufs.n && s == KY_OK; i++) {
    const ky_param *p = i < m->ps.n ? &m->ps.p[i] : &m->bufs.p[i - m->ps.n];
    const ky_st_entry *e = ky_st_find(f, p->name);
    if (!e) {
      s = list_push(&rep->missing, &rep->n_missing, p->name);
      continue;
    }
    used[e - f->e] = 1;
    s = copy_entry(i < m->ps.n ? hp : hb, p, f, e, flags);
    if (s == KY_OK) rep->n_loaded++;
  }
  int64_t steps = -1;
  for (int i = 0; i < m->b.n_bn && s == KY_OK; i++) {
    const ky_st_entry *e = ky_st_find(f, m->nbt_names[i]);
    if (!e) continue;  /* optional: PyTorch fills in 0 as well */
    used[e - f->e] = 1;
    if (e->dtype != KY_I64 || ky_st_numel(e) != 1) {
      s = ky_error(KY_ERR_FORMAT, "tensor '%s': expected one I64, got %s with %zu elements", e->name,
                   ky_dtype_name(e->dtype), ky_st_numel(e));
      break;
    }
    int64_t v;
    memcpy(&v, ky_st_data(f, e), sizeof v);
    if (v > steps) steps = v;
  }
  for (int i = 0; i < f->n && s == KY_OK; i++)
    if (!used[i] && !(skip_len && !strncmp(f->e[i].name, skip, skip_len)))
      s = list_push(&rep->unexpected, &rep->n_unexpected, f->e[i].name);
  free(used);
  KY_TRY(s);
  if (steps >= 0) m->bn_steps = steps;

  char names[1024];
  if (rep->n_missing && !(flags & KY_LOAD_ALLOW_MISSING)) {
    if (flags & KY_LOAD_ENCODER_ONLY) {
      char **enc = NULL;
      int n_enc = 0;
      for (int i = 0; i < rep->n_missing && s == KY_OK; i++)
        if (is_encoder_name(m, rep->missing[i])) s = list_push(&enc, &n_enc, rep->missing[i]);
      if (s == KY_OK && n_enc) {
        name_list(names, sizeof names, enc, n_enc);
        s = ky_error(KY_ERR_FORMAT, "%d encoder tensors missing: %s", n_enc, names);
      }
      for (int i = 0; i < n_enc; i++) free(enc[i]);
      free(enc);
      KY_TRY(s);
    } else {
      name_list(names, sizeof names, rep->missing, rep->n_missing);
      return ky_error(KY_ERR_FORMAT, "%d tensors missing: %s", rep->n_missing, names);
    }
  }
  if (rep->n_unexpected && (flags & KY_LOAD_STRICT)) {
    name_list(names, sizeof names, rep->unexpected, rep->n_unexpected);
    return ky_error(KY_ERR_FORMAT, "%d unexpected tensors: %s", rep->n_unexpected, names);
  }
  return KY_OK;
}

ky_status ky_model_load_st(ky_model *m, const ky_st_file *f, int flags, ky_load_report *rep, const char *skip) {
  KY_CHECK(m->allocated, KY_ERR_STATE, "model %s: created with no_alloc, cannot load weights", m->name);
  ky_load_report local;
  memset(&local, 0, sizeof local);
  ky_load_report *r = rep ? rep : &local;
  memset(r, 0, sizeof *r);
  float *hp = malloc((m->ps.total ? m->ps.total : 1) * sizeof *hp);
  float *hb = malloc((m->bufs.total ? m->bufs.total : 1) * sizeof *hb);
  ky_status s = (hp && hb) ? KY_OK : ky_error(KY_ERR_NOMEM, "model %s: host copy of the weights", m->name);
  /* Start from the current values: allowed-missing tensors keep them. */
  if (s == KY_OK) s = ky_params_get(&m->ps, hp, m->ps.data);
  if (s == KY_OK) s = ky_params_get(&m->bufs, hb, m->bufs.data);
  int64_t steps = m->bn_steps;
  if (s == KY_OK) s = load_impl(m, f, flags, r, skip, hp, hb);
  /* All-or-nothing: the blocks change only when every check passed. */
  if (s == KY_OK) s = ky_params_set(&m->ps, m->ps.data, hp);
  if (s == KY_OK) s = ky_params_set(&m->bufs, m->bufs.data, hb);
  if (s != KY_OK) m->bn_steps = steps;
  free(hp);
  free(hb);
  ky_load_report_free(&local);
  return s;
}

ky_status ky_model_load(ky_model *m, const char *path, int flags, ky_load_report *rep) {
  KY_CHECK_NULL(m, "m");
  KY_CHECK_NULL(path, "path");
  if (rep) memset(rep, 0, sizeof *rep);
  ky_st_file f;
  memset(&f, 0, sizeof f);
  ky_status s = ky_st_read(&f, path);
  if (s == KY_OK) s = ky_model_load_st(m, &f, flags, rep, NULL);
  ky_st_free(&f);
  if (s != KY_OK) return ky_error_context(s, "loading %s into %s: ", path, m->name);
  return KY_OK;
}

ky_status ky_model_add_state(const ky_model *m, ky_st_writer *w, float **scratch, int64_t *nbt_value) {
  KY_CHECK(m->allocated, KY_ERR_STATE, "model %s: created with no_alloc, nothing to save", m->name);
  size_t total = m->ps.total + m->bufs.total;
  float *h = malloc((total ? total : 1) * sizeof *h), *conv = malloc((total ? total : 1) * sizeof *conv);
  *scratch = h;
  if (!h || !conv) {
    free(conv);
    return ky_error(KY_ERR_NOMEM, "model %s: host copy of %zu floats", m->name, total);
  }
  ky_status s = ky_params_get(&m->ps, conv, m->ps.data);
  if (s == KY_OK) s = ky_params_get(&m->bufs, conv + m->ps.total, m->bufs.data);
  *nbt_value = m->bn_steps;
  for (int i = 0; i < ky_model_state_count(m) && s == KY_OK; i++) {
    const char *name;
    ky_dtype dt;
    int nd;
    int64_t shape[4];
    s = ky_model_state_entry(m, i, &name, &dt, &nd, shape);
    if (s != KY_OK) break;
    if (dt == KY_I64) {
      s = ky_st_writer_add(w, name, KY_I64, 0, shape, nbt_value);
      continue;
    }
    const ky_param *p = i < m->ps.n ? &m->ps.p[i] : &m->bufs.p[i - m->ps.n];
    size_t off = p->offset + (i < m->ps.n ? 0 : m->ps.total);
    if (nd == 4)
      ohwi_to_oihw(h + off, conv + off, p->t->shape[0], p->t->shape[1], p->t->shape[2], p->t->shape[3]);
    else
      memcpy(h + off, conv + off, p->numel * sizeof(float));
    s = ky_st_writer_add(w, name, KY_F32, nd, shape, h + off);
  }
  free(conv);
  return s;
}

ky_status ky_model_save(const ky_model *m, const char *path) {
  KY_CHECK_NULL(m, "m");
  KY_CHECK_NULL(path, "path");
  ky_st_writer w;
  ky_st_writer_init(&w);
  float *scratch = NULL;
  int64_t nbt;
  char desc[256];
  ky_model_describe(m, desc, sizeof desc);
  ky_status s = ky_model_add_state(m, &w, &scratch, &nbt);
  if (s == KY_OK) s = ky_st_writer_meta(&w, "format", "pt");
  if (s == KY_OK) s = ky_st_writer_meta(&w, "karyon.model", desc);
  if (s == KY_OK) s = ky_st_writer_save(&w, path);
  ky_st_writer_free(&w);
  free(scratch);
  if (s != KY_OK) return ky_error_context(s, "saving %s to %s: ", m->name, path);
  return KY_OK;
}

ky_status ky_model_open(ky_model **out, const char *path, ky_device dev, struct ky_cuda *cu) {
  KY_CHECK_NULL(out, "m");
  *out = NULL;
  KY_CHECK_NULL(path, "path");
  ky_st_file f;
  memset(&f, 0, sizeof f);
  ky_status s = ky_st_read(&f, path);
  const char *desc = s == KY_OK ? ky_st_meta(&f, "karyon.model") : NULL;
  if (s == KY_OK && !desc) s = ky_error(KY_ERR_FORMAT, "no 'karyon.model' metadata (not written by karyon?)");
  char name[64];
  ky_model_config cfg = ky_model_config_default();
  cfg.dev = dev;
  cfg.cu = cu;
  ky_model *m = NULL;
  if (s == KY_OK) s = ky_model_parse_desc(name, sizeof name, &cfg, desc);
  if (s == KY_OK) s = ky_model_create(&m, name, &cfg);
  if (s == KY_OK) s = ky_model_load_st(m, &f, 0, NULL, "optim.");
  ky_st_free(&f);
  if (s != KY_OK) {
    ky_model_free(m);
    return ky_error_context(s, "opening model %s: ", path);
  }
  *out = m;
  return KY_OK;
}

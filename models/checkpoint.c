/* Checkpoint save/load: model state via models/weights.c, optimiser moments as flat F32 tensors
 * optim.m / optim.v / optim.vmax, scalars and the config string in the safetensors metadata.
 * Tested by tests/test_models_checkpoint.c. */
#include "models/checkpoint.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/model_impl.h"

void ky_ckpt_state_free(ky_ckpt_state *st) {
  if (!st) return;
  free(st->config);
  st->config = NULL;
}

static const char *const kMoment[3] = {"optim.m", "optim.v", "optim.vmax"};

static float *const *moment_ptr(const ky_params *ps, int k) {
  return k == 0 ? &ps->m : k == 1 ? &ps->v : &ps->vmax;
}

ky_status ky_checkpoint_save(const char *path, const ky_model *m, const ky_optim *o, const ky_ckpt_state *st) {
  KY_CHECK_NULL(path, "path");
  KY_CHECK_NULL(m, "m");
  KY_CHECK(!st || (st->n_rng >= 0 && st->n_rng <= KY_CKPT_MAX_RNG), KY_ERR_ARG, "checkpoint: %d RNG states (max %d)",
           st ? st->n_rng : 0, KY_CKPT_MAX_RNG);
  ky_st_writer w;
  ky_st_writer_init(&w);
  float *scratch = NULL, *mom[3] = {NULL, NULL, NULL};
  int64_t nbt;
  char buf[256], key[32];
  ky_status s = ky_model_add_state(m, &w, &scratch, &nbt);
  int64_t total = (int64_t)m->ps.total;
  for (int k = 0; k < 3 && s == KY_OK && o; k++) {
    if (!*moment_ptr(&m->ps, k)) continue;
    mom[k] = malloc((m->ps.total ? m->ps.total : 1) * sizeof(float));
    if (!mom[k]) { s = ky_error(KY_ERR_NOMEM, "checkpoint: moment block of %zu floats", m->ps.total); break; }
    s = ky_params_get(&m->ps, mom[k], *moment_ptr(&m->ps, k));
    if (s == KY_OK) s = ky_st_writer_add(&w, kMoment[k], KY_F32, 1, &total, mom[k]);
  }
  ky_model_describe(m, buf, sizeof buf);
  if (s == KY_OK) s = ky_st_writer_meta(&w, "format", "pt");
  if (s == KY_OK) s = ky_st_writer_meta(&w, "karyon.model", buf);
  if (s == KY_OK && o) {
    snprintf(buf, sizeof buf, "%" PRId64, o->step);
    s = ky_st_writer_meta(&w, "optim.step", buf);
    if (s == KY_OK) s = ky_st_writer_meta(&w, "optim.kind", o->kind == KY_OPTIM_ADAM ? "adam" : "sgd");
  }
  if (s == KY_OK && st) {
    snprintf(buf, sizeof buf, "%" PRId64, st->epoch);
    s = ky_st_writer_meta(&w, "epoch", buf);
    snprintf(buf, sizeof buf, "%d", st->n_rng);
    if (s == KY_OK) s = ky_st_writer_meta(&w, "rng.count", buf);
    for (int i = 0; i < st->n_rng && s == KY_OK; i++) {
      snprintf(key, sizeof key, "rng.%d", i);
      snprintf(buf, sizeof buf, "%" PRIu64 " %" PRIu64 " %" PRIu64, st->rng[i].seed, st->rng[i].stream, st->rng[i].index);
      s = ky_st_writer_meta(&w, key, buf);
    }
    if (s == KY_OK && st->config) s = ky_st_writer_meta(&w, "config", st->config);
  }
  if (s == KY_OK) s = ky_st_writer_save(&w, path);
  ky_st_writer_free(&w);
  free(scratch);
  for (int k = 0; k < 3; k++) free(mom[k]);
  if (s != KY_OK) return ky_error_context(s, "saving checkpoint %s: ", path);
  return KY_OK;
}

static ky_status parse_i64(int64_t *v, const ky_st_file *f, const char *key) {
  const char *t = ky_st_meta(f, key);
  KY_CHECK(t, KY_ERR_FORMAT, "metadata '%s' missing", key);
  char *end;
  errno = 0;
  long long x = strtoll(t, &end, 10);
  KY_CHECK(end != t && *end == 0, KY_ERR_FORMAT, "metadata '%s' = '%.40s' is not an integer", key, t);
  /* 10^20 used to clamp to LLONG_MAX and resume as "done"; a negative step cut the logs. */
  KY_CHECK(!errno && x >= 0, KY_ERR_FORMAT, "metadata '%s' = '%.40s', expected an integer in 0..2^63-1", key, t);
  *v = x;
  return KY_OK;
}

static ky_status load_optim(ky_model *m, ky_optim *o, const ky_st_file *f) {
  const ky_st_entry *e[3];
  for (int k = 0; k < 3; k++) {
    e[k] = ky_st_find(f, kMoment[k]);
    if (e[k]) {
      KY_CHECK(e[k]->dtype == KY_F32 && e[k]->ndim == 1 && (size_t)e[k]->shape[0] == m->ps.total, KY_ERR_SHAPE,
               "tensor '%s': expected F32 [%zu], got %s with %zu elements", kMoment[k], m->ps.total,
               ky_dtype_name(e[k]->dtype), ky_st_numel(e[k]));
    }
  }
  int64_t step = 0;
  KY_TRY(parse_i64(&step, f, "optim.step"));
  const char *kind = ky_st_meta(f, "optim.kind");
  const char *want = o->kind == KY_OPTIM_ADAM ? "adam" : "sgd";
  KY_CHECK(kind && !strcmp(kind, want), KY_ERR_FORMAT, "optimiser is '%s' in the file, the caller's is '%s'",
           kind ? kind : "(none)", want);
  if (e[0] || e[1] || e[2] || m->ps.m) {
    KY_TRY(ky_params_alloc_moments(&m->ps, e[2] != NULL || m->ps.vmax != NULL));
    float *zero = calloc(m->ps.total ? m->ps.total : 1, sizeof(float));
    if (!zero) return ky_error(KY_ERR_NOMEM, "checkpoint: %zu floats", m->ps.total);
    ky_status s = KY_OK;
    for (int k = 0; k < 3 && s == KY_OK; k++) {
      float *const *blk = moment_ptr(&m->ps, k);
      if (!*blk) continue;
      s = ky_params_set(&m->ps, *blk, e[k] ? (const float *)ky_st_data(f, e[k]) : zero);
    }
    free(zero);
    KY_TRY(s);
  }
  o->step = step;
  return KY_OK;
}

static ky_status load_state(ky_ckpt_state *st, const ky_st_file *f) {
  memset(st, 0, sizeof *st);
  if (ky_st_meta(f, "epoch")) KY_TRY(parse_i64(&st->epoch, f, "epoch"));
  if (ky_st_meta(f, "rng.count")) {
    int64_t n = 0;
    KY_TRY(parse_i64(&n, f, "rng.count"));
    KY_CHECK(n >= 0 && n <= KY_CKPT_MAX_RNG, KY_ERR_FORMAT, "metadata rng.count = %lld (max %d)", (long long)n,
             KY_CKPT_MAX_RNG);
    st->n_rng = (int)n;
    for (int i = 0; i < st->n_rng; i++) {
      char key[32];
      snprintf(key, sizeof key, "rng.%d", i);
      const char *t = ky_st_meta(f, key);
      unsigned long long a, b, c;
      char tail;
      KY_CHECK(t && sscanf(t, "%llu %llu %llu %c", &a, &b, &c, &tail) == 3, KY_ERR_FORMAT,
               "metadata '%s' = '%s': expected 'seed stream index'", key, t ? t : "(missing)");
      st->rng[i].seed = a; st->rng[i].stream = b; st->rng[i].index = c;
    }
  }
  const char *cfg = ky_st_meta(f, "config");
  if (cfg) {
    st->config = strdup(cfg);
    if (!st->config) return ky_error(KY_ERR_NOMEM, "checkpoint config");
  }
  return KY_OK;
}

ky_status ky_checkpoint_load(const char *path, ky_model *m, ky_optim *o, ky_ckpt_state *st) {
  KY_CHECK_NULL(path, "path");
  KY_CHECK_NULL(m, "m");
  ky_st_file f;
  memset(&f, 0, sizeof f);
  ky_ckpt_state tmp;
  memset(&tmp, 0, sizeof tmp);
  ky_status s = ky_st_read(&f, path);
  char desc[256];
  ky_model_describe(m, desc, sizeof desc);
  if (s == KY_OK) {
    const char *fm = ky_st_meta(&f, "karyon.model");
    if (!fm || strcmp(fm, desc))
      s = ky_error(KY_ERR_FORMAT, "checkpoint is for '%s', the model is '%s'", fm ? fm : "(no karyon.model)", desc);
  }
  /* Parse everything before changing anything. */
  if (s == KY_OK && st) s = load_state(&tmp, &f);
  if (s == KY_OK && o && !ky_st_meta(&f, "optim.step")) s = ky_error(KY_ERR_FORMAT, "no optimiser state in the file");
  if (s == KY_OK) s = ky_model_load_st(m, &f, KY_LOAD_STRICT, NULL, "optim.");
  if (s == KY_OK && o) s = load_optim(m, o, &f);
  ky_st_free(&f);
  if (s != KY_OK) {
    ky_ckpt_state_free(&tmp);
    return ky_error_context(s, "loading checkpoint %s: ", path);
  }
  if (st) *st = tmp;
  return KY_OK;
}

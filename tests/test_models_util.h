/* Helpers shared by the tests/test_models_*.c suites: the integer-hash weights / inputs of
 * tests/fixtures/gen_models.py (same rule, bit for bit), written as a PyTorch-layout safetensors
 * file that the model then loads. Used by test_models_parity.c, _weights.c, _checkpoint.c. */
#ifndef KY_TEST_MODELS_UTIL_H
#define KY_TEST_MODELS_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/safetensors.h"
#include "models/model.h"

#ifndef KY_FIXTURES
#define KY_FIXTURES "tests/fixtures/models/"
#endif

static inline uint32_t tm_fnv1a(const char *s) {
  uint32_t h = 0x811C9DC5u;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x01000193u;
  return h;
}

static inline uint32_t tm_hash_u32(const char *name, uint64_t j) {
  uint32_t x = (uint32_t)(j * 0x9E3779B9u + tm_fnv1a(name));
  x ^= x >> 16; x *= 0x7FEB352Du; x ^= x >> 15; x *= 0x846CA68Bu; x ^= x >> 16;
  return x;
}

/* value j of tensor `name`: float32(double(v) * scale + offset), v in [-1, 1) */
static inline float tm_hash_value(const char *name, uint64_t j, float scale, double offset) {
  float v = (float)(tm_hash_u32(name, j) >> 8) * (1.0f / 16777216.0f) * 2.0f - 1.0f;
  return (float)((double)v * (double)scale + offset);
}

static inline void tm_rule(const char *name, int ndim, const int64_t *shape, float *scale, double *offset) {
  const char *leaf = strrchr(name, '.');
  leaf = leaf ? leaf + 1 : name;
  if (ndim == 4) { *scale = (float)sqrt(6.0 / (double)(shape[1] * shape[2] * shape[3])); *offset = 0; }
  else if (!strcmp(leaf, "weight")) { *scale = 0.2f; *offset = 1.0; }
  else if (!strcmp(leaf, "running_var")) { *scale = 0.25f; *offset = 1.0; }
  else { *scale = 0.1f; *offset = 0; }  /* bias, running_mean */
}

/* Options for tm_write_state: which tensors go into the file and how. */
typedef struct {
  int with_fc;              /* add torchvision-like fc.weight / fc.bias */
  int encoder_only;         /* only conv1 / bn1 / layerN.* (an ImageNet encoder file) */
  const char *drop;         /* leave this tensor out */
  const char *as_f64;       /* store this tensor as F64 */
  const char *nbt_as_f32;   /* store this num_batches_tracked as F32 */
} tm_state_opts;

static inline int tm_is_encoder(const char *name) {
  return !strncmp(name, "conv1.", 6) || !strncmp(name, "bn1.", 4) ||
         (!strncmp(name, "layer", 5) && name[5] >= '1' && name[5] <= '4' && name[6] == '.');
}

/* Writes the model's state with hash values (PyTorch layout) to path. */
static inline ky_status tm_write_state(const ky_model *m, const char *path, const tm_state_opts *o) {
  int n = ky_model_state_count(m);
  ky_st_writer w;
  ky_st_writer_init(&w);
  void **bufs = calloc((size_t)n + 2, sizeof *bufs);
  static const int64_t zero = 0;
  static const float fzero = 0;
  ky_status s = KY_OK;
  for (int i = 0; i < n && s == KY_OK; i++) {
    const char *name;
    ky_dtype dt;
    int nd;
    int64_t shape[4];
    s = ky_model_state_entry(m, i, &name, &dt, &nd, shape);
    if (s != KY_OK) break;
    if (o && o->encoder_only && !tm_is_encoder(name)) continue;
    if (o && o->drop && !strcmp(o->drop, name)) continue;
    if (dt == KY_I64) {
      if (o && o->nbt_as_f32 && !strcmp(o->nbt_as_f32, name)) s = ky_st_writer_add(&w, name, KY_F32, 0, shape, &fzero);
      else s = ky_st_writer_add(&w, name, KY_I64, 0, shape, &zero);
      continue;
    }
    size_t numel = 1;
    for (int d = 0; d < nd; d++) numel *= (size_t)shape[d];
    float sc;
    double off;
    tm_rule(name, nd, shape, &sc, &off);
    if (o && o->as_f64 && !strcmp(o->as_f64, name)) {
      double *b = malloc(numel * sizeof *b);
      bufs[i] = b;
      for (size_t j = 0; j < numel; j++) b[j] = tm_hash_value(name, j, sc, off);
      s = ky_st_writer_add(&w, name, KY_F64, nd, shape, b);
      continue;
    }
    float *b = malloc(numel * sizeof *b);
    bufs[i] = b;
    for (size_t j = 0; j < numel; j++) b[j] = tm_hash_value(name, j, sc, off);
    s = ky_st_writer_add(&w, name, KY_F32, nd, shape, b);
  }
  if (s == KY_OK && o && o->with_fc) {
    int64_t fw[2] = {10, 8}, fb = 10;
    float *a = calloc(80, sizeof *a), *b = calloc(10, sizeof *b);
    bufs[n] = a; bufs[n + 1] = b;
    s = ky_st_writer_add(&w, "fc.weight", KY_F32, 2, fw, a);
    if (s == KY_OK) s = ky_st_writer_add(&w, "fc.bias", KY_F32, 1, &fb, b);
  }
  if (s == KY_OK) s = ky_st_writer_save(&w, path);
  ky_st_writer_free(&w);
  for (int i = 0; i < n + 2; i++) free(bufs[i]);
  free(bufs);
  return s;
}

static inline ky_status tm_write_hash_state(const ky_model *m, const char *path, int with_fc) {
  tm_state_opts o = {0};
  o.with_fc = with_fc;
  return tm_write_state(m, path, &o);
}

/* Hash input [n, h, w, c] (NHWC flat order, scale 1) and class map (u mod 3) on the host. */
static inline void tm_input(float *x, uint8_t *cls, int n, int h, int w, int c) {
  for (size_t j = 0; j < (size_t)n * h * w * c; j++) x[j] = tm_hash_value("input", j, 1.0f, 0.0);
  if (cls)
    for (size_t j = 0; j < (size_t)n * h * w; j++) cls[j] = (uint8_t)(tm_hash_u32("target", j) % 3);
}

/* max |a - b| / max |b| over n values with strides */
static inline double tm_rel_err(const float *a, size_t sa, const float *b, size_t sb, size_t n) {
  double md = 0, mb = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i * sa] - (double)b[i * sb]);
    if (d > md || d != d) md = d != d ? INFINITY : d;
    if (fabs((double)b[i * sb]) > mb) mb = fabs((double)b[i * sb]);
  }
  return mb > 0 ? md / mb : md;
}

#endif

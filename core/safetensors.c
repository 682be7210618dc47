/* safetensors reader (with a small strict JSON parser for its header) and atomic writer.
 * Tested by tests/test_core_safetensors.c. */
#include "core/safetensors.h"
#include "core/fileio.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct { const char *name; ky_dtype t; } dtypes[] = {
    {"F32", KY_F32}, {"U8", KY_U8}, {"I32", KY_I32}, {"I64", KY_I64},
    {"F64", KY_F64}, {"F16", KY_F16}, {"BF16", KY_BF16},
};

static const char *dtype_str(ky_dtype t) {
  for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++) if (dtypes[i].t == t) return dtypes[i].name;
  return NULL;
}

/* ---- JSON: just enough for the header (objects, arrays of integers, strings) --------------- */
typedef struct jp { const char *s, *end, *path, *start; } jp;

static ky_status jerr(jp *p, const char *what) {
  return ky_error(KY_ERR_FORMAT, "%s: malformed safetensors header at byte %ld: %s", p->path,
                  (long)(p->s - p->start) + 8, what);
}
static void ws(jp *p) { while (p->s < p->end && isspace((unsigned char)*p->s)) p->s++; }
static int peek(jp *p, char c) { ws(p); return p->s < p->end && *p->s == c; }
static ky_status expect(jp *p, char c) {
  ws(p);
  if (p->s >= p->end || *p->s != c) {
    char m[32];
    snprintf(m, sizeof m, "expected '%c'", c);
    return jerr(p, m);
  }
  p->s++;
  return KY_OK;
}
/* Parses a string into a malloc'ed buffer (escapes \" \\ \/ \n \t \uXXXX for ASCII only). */
static ky_status jstring(jp *p, char **out) {
  KY_TRY(expect(p, '"'));
  size_t cap = 32, n = 0;
  char *b = malloc(cap);
  if (!b) return ky_error(KY_ERR_NOMEM, "%s: out of memory", p->path);
  for (;;) {
    if (p->s >= p->end) { free(b); return jerr(p, "unterminated string"); }
    char c = *p->s++;
    if (c == '"') break;
    if ((unsigned char)c < 0x20) { free(b); return jerr(p, "control character in string"); }
    if (c == '\\') {
      if (p->s >= p->end) { free(b); return jerr(p, "bad escape"); }
      char e = *p->s++;
      switch (e) {
        case '"': case '\\': case '/': c = e; break;
        case 'n': c = '\n'; break;
        case 't': c = '\t'; break;
        case 'r': c = '\r'; break;
        case 'b': c = '\b'; break;
        case 'f': c = '\f'; break;
        case 'u': {
          if (p->end - p->s < 4) { free(b); return jerr(p, "bad \\u escape"); }
          unsigned v = 0;
          for (int i = 0; i < 4; i++) {
            char h = *p->s++;
            v = v * 16 + (unsigned)(isdigit((unsigned char)h) ? h - '0' : (tolower((unsigned char)h) - 'a' + 10));
            if (!isxdigit((unsigned char)h)) { free(b); return jerr(p, "bad \\u escape"); }
          }
          c = v < 128 ? (char)v : '?';
          break;
        }
        default: free(b); return jerr(p, "bad escape");
      }
    }
    if (n + 2 > cap) {
      char *nb = realloc(b, cap *= 2);
      if (!nb) { free(b); return ky_error(KY_ERR_NOMEM, "%s: out of memory", p->path); }
      b = nb;
    }
    b[n++] = c;
  }
  b[n] = 0;
  *out = b;
  return KY_OK;
}
static ky_status jint(jp *p, int64_t *v) {
  ws(p);
  const char *st = p->s;
  if (p->s < p->end && *p->s == '-') return jerr(p, "negative number");
  int64_t x = 0;
  while (p->s < p->end && isdigit((unsigned char)*p->s)) {
    if (x > (INT64_MAX - 9) / 10) return jerr(p, "number too large");
    x = x * 10 + (*p->s++ - '0');
  }
  if (p->s == st) return jerr(p, "expected a non-negative integer");
  *v = x;
  return KY_OK;
}
static ky_status jint_array(jp *p, int64_t *v, int max, int *n) {
  KY_TRY(expect(p, '['));
  *n = 0;
  if (peek(p, ']')) { p->s++; return KY_OK; }
  for (;;) {
    if (*n >= max) return jerr(p, "too many dimensions");
    KY_TRY(jint(p, &v[(*n)++]));
    if (peek(p, ',')) { p->s++; continue; }
    return expect(p, ']');
  }
}

static void free_entries(ky_st_file *f) {
  for (int i = 0; i < f->n; i++) free(f->e[i].name);
  free(f->e);
  for (int i = 0; i < f->n_meta; i++) { free(f->meta_k[i]); free(f->meta_v[i]); }
  free(f->meta_k);
  free(f->meta_v);
  f->e = NULL; f->n = 0; f->meta_k = f->meta_v = NULL; f->n_meta = 0;
}

static ky_status parse_meta(jp *p, ky_st_file *f) {
  KY_TRY(expect(p, '{'));
  if (peek(p, '}')) { p->s++; return KY_OK; }
  for (;;) {
    char *k, *v;
    KY_TRY(jstring(p, &k));
    ky_status s = expect(p, ':');
    if (s == KY_OK) s = jstring(p, &v);
    if (s != KY_OK) { free(k); return s; }
    char **nk = realloc(f->meta_k, (size_t)(f->n_meta + 1) * sizeof *nk);
    if (nk) f->meta_k = nk;
    char **nv = realloc(f->meta_v, (size_t)(f->n_meta + 1) * sizeof *nv);
    if (nv) f->meta_v = nv;
    if (!nk || !nv) { free(k); free(v); return ky_error(KY_ERR_NOMEM, "%s: out of memory", p->path); }
    f->meta_k[f->n_meta] = k;
    f->meta_v[f->n_meta++] = v;
    if (peek(p, ',')) { p->s++; continue; }
    return expect(p, '}');
  }
}

static ky_status parse_entry(jp *p, ky_st_entry *e) {
  KY_TRY(expect(p, '{'));
  int have_dt = 0, have_shape = 0, have_off = 0;
  for (;;) {
    char *k;
    KY_TRY(jstring(p, &k));
    ky_status s = expect(p, ':');
    if (s != KY_OK) { free(k); return s; }
    if (!strcmp(k, "dtype")) {
      char *v;
      s = jstring(p, &v);
      if (s == KY_OK) {
        int ok = 0;
        for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
          if (!strcmp(v, dtypes[i].name)) { e->dtype = dtypes[i].t; ok = 1; }
        if (!ok) s = ky_error(KY_ERR_FORMAT, "%s: tensor '%s' has unsupported dtype '%s'", p->path, e->name, v);
        free(v);
      }
      have_dt = 1;
    } else if (!strcmp(k, "shape")) {
      s = jint_array(p, e->shape, KY_ST_MAX_DIMS, &e->ndim);
      have_shape = 1;
    } else if (!strcmp(k, "data_offsets")) {
      int64_t o[3];
      int n;
      s = jint_array(p, o, 3, &n);
      if (s == KY_OK && n != 2) s = ky_error(KY_ERR_FORMAT, "%s: tensor '%s': data_offsets needs 2 numbers", p->path, e->name);
      if (s == KY_OK) { e->begin = (size_t)o[0]; e->end = (size_t)o[1]; }
      have_off = 1;
    } else {
      s = ky_error(KY_ERR_FORMAT, "%s: tensor '%s': unknown field '%s'", p->path, e->name, k);
    }
    free(k);
    if (s != KY_OK) return s;
    if (peek(p, ',')) { p->s++; continue; }
    KY_TRY(expect(p, '}'));
    break;
  }
  if (!have_dt || !have_shape || !have_off)
    return ky_error(KY_ERR_FORMAT, "%s: tensor '%s' lacks %s", p->path, e->name,
                    !have_dt ? "dtype" : !have_shape ? "shape" : "data_offsets");
  return KY_OK;
}

static int cmp_begin(const void *a, const void *b) {
  const ky_st_entry *x = *(const ky_st_entry *const *)a, *y = *(const ky_st_entry *const *)b;
  return x->begin < y->begin ? -1 : x->begin > y->begin;
}

size_t ky_st_numel(const ky_st_entry *e) {
  size_t n = 1;
  for (int i = 0; i < e->ndim; i++) n *= (size_t)e->shape[i];
  return n;
}

ky_status ky_st_read(ky_st_file *f, const char *path) {
  KY_CHECK_NULL(f, "f");
  KY_CHECK_NULL(path, "path");
  memset(f, 0, sizeof *f);
  char *buf;
  size_t len;
  KY_TRY(ky_file_read_all(path, &buf, &len));
  f->buf = (uint8_t *)buf;
  f->len = len;
  f->path = strdup(path);
  ky_status s = KY_OK;
  if (len < 8) { s = ky_error(KY_ERR_FORMAT, "%s: %zu bytes, too short for a safetensors file", path, len); goto fail; }
  uint64_t hl = 0;
  for (int i = 7; i >= 0; i--) hl = (hl << 8) | f->buf[i];
  if (hl > len - 8 || hl > ((uint64_t)100 << 20)) {
    s = ky_error(KY_ERR_FORMAT, "%s: header length %llu does not fit the %zu-byte file", path,
                 (unsigned long long)hl, len);
    goto fail;
  }
  f->data_start = 8 + (size_t)hl;
  jp p = {buf + 8, buf + 8 + hl, path, buf + 8};
  if ((s = expect(&p, '{')) != KY_OK) goto fail;
  int cap = 0;
  if (peek(&p, '}')) p.s++;
  else for (;;) {
    char *name;
    if ((s = jstring(&p, &name)) != KY_OK) goto fail;
    if ((s = expect(&p, ':')) != KY_OK) { free(name); goto fail; }
    if (!strcmp(name, "__metadata__")) {
      free(name);
      if ((s = parse_meta(&p, f)) != KY_OK) goto fail;
    } else {
      for (int i = 0; i < f->n; i++)
        if (!strcmp(f->e[i].name, name)) {
          s = ky_error(KY_ERR_FORMAT, "%s: tensor '%s' appears twice", path, name);
          free(name);
          goto fail;
        }
      if (f->n == cap) {
        cap = cap ? 2 * cap : 64;
        ky_st_entry *ne = realloc(f->e, (size_t)cap * sizeof *ne);
        if (!ne) { free(name); s = ky_error(KY_ERR_NOMEM, "%s: out of memory", path); goto fail; }
        f->e = ne;
      }
      ky_st_entry *e = &f->e[f->n++];
      memset(e, 0, sizeof *e);
      e->name = name;
      if ((s = parse_entry(&p, e)) != KY_OK) goto fail;
    }
    if (peek(&p, ',')) { p.s++; continue; }
    if ((s = expect(&p, '}')) != KY_OK) goto fail;
    break;
  }
  ws(&p);
  if (p.s != p.end) { s = ky_error(KY_ERR_FORMAT, "%s: trailing bytes after the JSON header", path); goto fail; }
  /* Offsets: inside the data section, sized by dtype x shape, no overlaps. */
  size_t data_len = len - f->data_start;
  ky_st_entry **order = malloc((size_t)(f->n ? f->n : 1) * sizeof *order);
  if (!order) { s = ky_error(KY_ERR_NOMEM, "%s: out of memory", path); goto fail; }
  for (int i = 0; i < f->n; i++) {
    ky_st_entry *e = &f->e[i];
    order[i] = e;
    size_t want = ky_st_numel(e) * ky_dtype_size(e->dtype);
    if (e->begin > e->end || e->end > data_len) {
      s = ky_error(KY_ERR_FORMAT, "%s: tensor '%s': data_offsets [%zu, %zu] outside the %zu-byte data section",
                   path, e->name, e->begin, e->end, data_len);
      free(order);
      goto fail;
    }
    if (e->end - e->begin != want) {
      s = ky_error(KY_ERR_FORMAT, "%s: tensor '%s': %zu bytes for a shape needing %zu", path, e->name,
                   e->end - e->begin, want);
      free(order);
      goto fail;
    }
  }
  qsort(order, (size_t)f->n, sizeof *order, cmp_begin);
  for (int i = 1; i < f->n; i++)
    if (order[i]->begin < order[i - 1]->end) {
      s = ky_error(KY_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", path, order[i - 1]->name, order[i]->name);
      free(order);
      goto fail;
    }
  free(order);
  return KY_OK;
fail:
  ky_st_free(f);
  return s;
}

void ky_st_free(ky_st_file *f) {
  if (!f) return;
  free_entries(f);
  free(f->buf);
  free(f->path);
  memset(f, 0, sizeof *f);
}

const ky_st_entry *ky_st_find(const ky_st_file *f, const char *name) {
  for (int i = 0; i < f->n; i++) if (!strcmp(f->e[i].name, name)) return &f->e[i];
  return NULL;
}

const void *ky_st_data(const ky_st_file *f, const ky_st_entry *e) { return f->buf + f->data_start + e->begin; }

const char *ky_st_meta(const ky_st_file *f, const char *key) {
  for (int i = 0; i < f->n_meta; i++) if (!strcmp(f->meta_k[i], key)) return f->meta_v[i];
  return NULL;
}

/* ---- writer --------------------------------------------------------------------------------- */
void ky_st_writer_init(ky_st_writer *w) { memset(w, 0, sizeof *w); }

ky_status ky_st_writer_add(ky_st_writer *w, const char *name, ky_dtype dtype, int ndim, const int64_t *shape,
                           const void *host_data) {
  KY_CHECK(w && name && (host_data || ndim >= 0), KY_ERR_ARG, "safetensors writer: NULL argument");
  KY_CHECK(ndim >= 0 && ndim <= KY_ST_MAX_DIMS, KY_ERR_ARG, "safetensors writer: '%s' has %d dims", name, ndim);
  KY_CHECK(dtype_str(dtype), KY_ERR_ARG, "safetensors writer: '%s' has an unsupported dtype", name);
  KY_CHECK(strcmp(name, "__metadata__") && !strpbrk(name, "\"\\"), KY_ERR_ARG,
           "safetensors writer: invalid tensor name '%s'", name);
  for (int i = 0; i < w->n; i++)
    KY_CHECK(strcmp(w->e[i].name, name), KY_ERR_ARG, "safetensors writer: duplicate tensor '%s'", name);
  if (w->n == w->cap) {
    int cap = w->cap ? 2 * w->cap : 64;
    ky_st_entry *ne = realloc(w->e, (size_t)cap * sizeof *ne);
    if (ne) w->e = ne;
    const void **ns = realloc(w->src, (size_t)cap * sizeof *ns);
    if (ns) w->src = ns;
    if (!ne || !ns) return ky_error(KY_ERR_NOMEM, "safetensors writer: out of memory");
    w->cap = cap;
  }
  ky_st_entry *e = &w->e[w->n];
  memset(e, 0, sizeof *e);
  e->name = strdup(name);
  if (!e->name) return ky_error(KY_ERR_NOMEM, "safetensors writer: out of memory");
  e->dtype = dtype;
  e->ndim = ndim;
  for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
  w->src[w->n++] = host_data;
  return KY_OK;
}

ky_status ky_st_writer_meta(ky_st_writer *w, const char *key, const char *value) {
  KY_CHECK(w && key && value, KY_ERR_ARG, "safetensors writer: NULL metadata");
  if (w->n_meta == w->cap_meta) {
    int cap = w->cap_meta ? 2 * w->cap_meta : 16;
    char **nk = realloc(w->meta_k, (size_t)cap * sizeof *nk);
    if (nk) w->meta_k = nk;
    char **nv = realloc(w->meta_v, (size_t)cap * sizeof *nv);
    if (nv) w->meta_v = nv;
    if (!nk || !nv) return ky_error(KY_ERR_NOMEM, "safetensors writer: out of memory");
    w->cap_meta = cap;
  }
  w->meta_k[w->n_meta] = strdup(key);
  w->meta_v[w->n_meta++] = strdup(value);
  return KY_OK;
}

/* Appends to a growable string. */
typedef struct { char *s; size_t n, cap; int oom; } sbuf;
static void sb_add(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sbuf *b, const char *fmt, ...) {
  if (b->oom) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
    va_end(ap);
    if (k < 0) { b->oom = 1; return; }
    if (b->s && b->n + (size_t)k < b->cap) { b->n += (size_t)k; return; }
    size_t cap = (b->cap ? b->cap : 1024) * 2 + (size_t)k;
    char *ns = realloc(b->s, cap);
    if (!ns) { b->oom = 1; return; }
    b->s = ns;
    b->cap = cap;
  }
}

/* A JSON string literal: quotes, backslashes and control characters escaped. */
static void sb_json_str(sbuf *b, const char *s) {
  sb_add(b, "\"");
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') sb_add(b, "\\%c", c);
    else if (c == '\n') sb_add(b, "\\n");
    else if (c == '\t') sb_add(b, "\\t");
    else if (c < 0x20) sb_add(b, "\\u%04x", c);
    else sb_add(b, "%c", c);
  }
  sb_add(b, "\"");
}

ky_status ky_st_writer_save(ky_st_writer *w, const char *path) {
  KY_CHECK(w && path, KY_ERR_ARG, "safetensors writer: NULL argument");
  sbuf h = {0};
  sb_add(&h, "{");
  if (w->n_meta) {
    sb_add(&h, "\"__metadata__\":{");
    for (int i = 0; i < w->n_meta; i++) {
      sb_add(&h, "%s", i ? "," : "");
      sb_json_str(&h, w->meta_k[i]);
      sb_add(&h, ":");
      sb_json_str(&h, w->meta_v[i]);
    }
    sb_add(&h, "}");
  }
  size_t off = 0;
  for (int i = 0; i < w->n; i++) {
    ky_st_entry *e = &w->e[i];
    size_t bytes = ky_st_numel(e) * ky_dtype_size(e->dtype);
    sb_add(&h, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", (i || w->n_meta) ? "," : "", e->name, dtype_str(e->dtype));
    for (int d = 0; d < e->ndim; d++) sb_add(&h, "%s%lld", d ? "," : "", (long long)e->shape[d]);
    sb_add(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + bytes);
    e->begin = off;
    e->end = off + bytes;
    off += bytes;
  }
  sb_add(&h, "}");
  /* Pad the header with spaces to a multiple of 8 so the data section stays aligned. */
  while (!h.oom && h.n % 8) sb_add(&h, " ");
  if (h.oom) { free(h.s); return ky_error(KY_ERR_NOMEM, "%s: out of memory writing the header", path); }
  ky_atomic_file af;
  ky_status s = ky_atomic_open(&af, path);
  if (s != KY_OK) { free(h.s); return s; }
  uint8_t len8[8];
  for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)h.n >> (8 * i));
  int bad = fwrite(len8, 1, 8, af.f) != 8 || fwrite(h.s, 1, h.n, af.f) != h.n;
  for (int i = 0; i < w->n && !bad; i++) {
    size_t bytes = w->e[i].end - w->e[i].begin;
    if (bytes && fwrite(w->src[i], 1, bytes, af.f) != bytes) bad = 1;
  }
  free(h.s);
  if (bad) {
    ky_atomic_abort(&af);
    return ky_error(KY_ERR_IO, "%s: write failed: %s (previous file kept)", path, strerror(errno));
  }
  return ky_atomic_commit(&af);
}

void ky_st_writer_free(ky_st_writer *w) {
  if (!w) return;
  for (int i = 0; i < w->n; i++) free(w->e[i].name);
  free(w->e);
  free(w->src);
  for (int i = 0; i < w->n_meta; i++) { free(w->meta_k[i]); free(w->meta_v[i]); }
  free(w->meta_k);
  free(w->meta_v);
  memset(w, 0, sizeof *w);
}

/* folds.csv parsing (RFC-4180-style quoting, CRLF), the hash fallback split, oversampling specs
 * and the train/validation lists per fold. Tested by tests/test_data_folds.c. */
#include "data/folds.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"

/* Spec section 0: the stripe-artefact image and the four "galaxy" images, matched by their
 * first 8 hex digits (the spec quotes them that way; no two DSB ids share one). */
static const char k_polosa[] = "193ffaa5272d5c421ae02130a64d98ad120ec70e4ed97a72cdcd4801ce93b066";
static const char *const k_galaxy[] = {"538b7673", "a102535b", "cb4df20a", "f29fd9c5"};

int ky_folds_is_polosa(const char *id) {
  return id && strncmp(id, k_polosa, 8) == 0;
}

int ky_folds_always_train(const ky_fold_row *row) {
  if (!row || !row->id) return 0;
  if (ky_folds_is_polosa(row->id)) return 1;
  for (size_t i = 0; i < sizeof k_galaxy / sizeof *k_galaxy; i++)
    if (strncmp(row->id, k_galaxy[i], 8) == 0) return 1;
  return row->source && strcmp(row->source, "wikimedia") == 0;
}

void ky_folds_free(ky_folds *f) {
  if (!f) return;
  for (int i = 0; i < f->n; i++) {
    free(f->rows[i].id);
    free(f->rows[i].cluster);
    free(f->rows[i].source);
  }
  free(f->rows);
  f->rows = NULL;
  f->n = 0;
}

int ky_folds_find(const ky_folds *f, const char *id) {
  if (!f || !id) return -1;
  for (int i = 0; i < f->n; i++)
    if (strcmp(f->rows[i].id, id) == 0) return i;
  return -1;
}

/* --- CSV: one record at a time from a NUL-terminated buffer. */
#define MAX_FIELDS 64

typedef struct {
  char *fields[MAX_FIELDS];  /* pointers into the record scratch */
  int n;
} csv_record;

/* Parses the record starting at *pos into `scratch` (large enough: the rest of the buffer),
 * advancing *pos and *line. Returns 0 at end of input, -1 on a malformed record, 1 otherwise. */
static int csv_next(csv_record *rec, char *scratch, const char *buf, size_t *pos, int *line, const char **why) {
  const char *p = buf + *pos;
  /* Skip blank lines. */
  while (*p == '\n' || *p == '\r') {
    if (*p == '\n') (*line)++;
    p++;
  }
  if (!*p) { *pos = (size_t)(p - buf); return 0; }
  rec->n = 0;
  char *o = scratch;
  for (;;) {
    if (rec->n == MAX_FIELDS) { *why = "too many fields"; return -1; }
    rec->fields[rec->n++] = o;
    if (*p == '"') {
      p++;
      for (;;) {
        if (!*p) { *why = "unterminated quoted field"; return -1; }
        if (*p == '"') {
          if (p[1] == '"') { *o++ = '"'; p += 2; continue; }
          p++;
          break;
        }
        if (*p == '\n') (*line)++;
        *o++ = *p++;
      }
      if (*p && *p != ',' && *p != '\n' && *p != '\r') { *why = "text after a closing quote"; return -1; }
    } else {
      while (*p && *p != ',' && *p != '\n' && *p != '\r') *o++ = *p++;
    }
    *o++ = '\0';
    if (*p == ',') { p++; continue; }
    break;
  }
  if (*p == '\r') p++;
  if (*p == '\n') { p++; (*line)++; }
  *pos = (size_t)(p - buf);
  return 1;
}

static void trim(char *s) {
  size_t n = strlen(s);
  while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
  size_t i = 0;
  while (s[i] && isspace((unsigned char)s[i])) i++;
  if (i) memmove(s, s + i, n - i + 1);
}

ky_status ky_folds_load(ky_folds *out, const char *path) {
  KY_CHECK_NULL(out, "out");
  memset(out, 0, sizeof *out);
  KY_CHECK_NULL(path, "path");
  char *buf;
  size_t n;
  KY_TRY(ky_file_read_text(path, &buf, &n));
  char *scratch = malloc(n + MAX_FIELDS + 1);
  if (!scratch) { free(buf); return ky_error(KY_ERR_NOMEM, "%s: out of memory", path); }
  ky_status s = KY_OK;
  size_t pos = 0;
  int line = 1, rec_line = 1, cap = 0;
  const char *why = "";
  csv_record rec;
  int c_id = -1, c_fold = -1, c_cluster = -1, c_source = -1, c_hold = -1, n_cols = 0;
  /* Skip a UTF-8 byte-order mark. */
  if (n >= 3 && (unsigned char)buf[0] == 0xef && (unsigned char)buf[1] == 0xbb && (unsigned char)buf[2] == 0xbf) pos = 3;
  int r = csv_next(&rec, scratch, buf, &pos, &line, &why);
  if (r == 0) { s = ky_error(KY_ERR_FORMAT, "%s: empty file, expected a header line with img_id and fold", path); goto done; }
  if (r < 0) { s = ky_error(KY_ERR_FORMAT, "%s:%d: %s", path, rec_line, why); goto done; }
  n_cols = rec.n;
  for (int i = 0; i < rec.n; i++) {
    trim(rec.fields[i]);
    if (!strcmp(rec.fields[i], "img_id")) c_id = i;
    else if (!strcmp(rec.fields[i], "fold")) c_fold = i;
    else if (!strcmp(rec.fields[i], "cluster")) c_cluster = i;
    else if (!strcmp(rec.fields[i], "source")) c_source = i;
    else if (!strcmp(rec.fields[i], "hold_out")) c_hold = i;
  }
  if (c_id < 0 || c_fold < 0) {
    s = ky_error(KY_ERR_FORMAT, "%s:1: header has no %s column (expected img_id and fold)", path, c_id < 0 ? "img_id" : "fold");
    goto done;
  }
  for (;;) {
    /* The record's first line, after blank lines. */
    {
      const char *p = buf + pos;
      rec_line = line;
      while (*p == '\n' || *p == '\r') { if (*p == '\n') rec_line++; p++; }
    }
    r = csv_next(&rec, scratch, buf, &pos, &line, &why);
    if (r == 0) break;
    if (r < 0) { s = ky_error(KY_ERR_FORMAT, "%s:%d: %s", path, rec_line, why); goto done; }
    if (rec.n != n_cols) {
      s = ky_error(KY_ERR_FORMAT, "%s:%d: %d fields, the header has %d", path, rec_line, rec.n, n_cols);
      goto done;
    }
    for (int i = 0; i < rec.n; i++) trim(rec.fields[i]);
    const char *id = rec.fields[c_id], *fs = rec.fields[c_fold];
    if (!*id) { s = ky_error(KY_ERR_FORMAT, "%s:%d: empty img_id", path, rec_line); goto done; }
    char *end;
    long fold = strtol(fs, &end, 10);
    if (!*fs || *end || fold < 0 || fold >= KY_FOLDS_K) {
      s = ky_error(KY_ERR_FORMAT, "%s:%d: fold '%s' is not an integer in 0..%d", path, rec_line, fs, KY_FOLDS_K - 1);
      goto done;
    }
    int hold = 0;
    if (c_hold >= 0) {
      const char *hv = rec.fields[c_hold];
      if (!strcmp(hv, "1") || !strcmp(hv, "True") || !strcmp(hv, "true")) hold = 1;
      else if (*hv && strcmp(hv, "0") && strcmp(hv, "False") && strcmp(hv, "false")) {
        s = ky_error(KY_ERR_FORMAT, "%s:%d: hold_out '%s' is not 0/1/True/False", path, rec_line, hv);
        goto done;
      }
    }
    if (ky_folds_find(out, id) >= 0) { s = ky_error(KY_ERR_FORMAT, "%s:%d: duplicate img_id %s", path, rec_line, id); goto done; }
    if (out->n == cap) {
      cap = cap ? cap * 2 : 256;
      ky_fold_row *t = realloc(out->rows, (size_t)cap * sizeof *t);
      if (!t) { s = ky_error(KY_ERR_NOMEM, "%s: out of memory", path); goto done; }
      out->rows = t;
    }
    ky_fold_row *row = &out->rows[out->n];
    row->id = strdup(id);
    row->cluster = strdup(c_cluster >= 0 ? rec.fields[c_cluster] : "");
    row->source = strdup(c_source >= 0 ? rec.fields[c_source] : "");
    row->fold = (int)fold;
    row->hold_out = hold;
    out->n++;
    if (!row->id || !row->cluster || !row->source) { s = ky_error(KY_ERR_NOMEM, "%s: out of memory", path); goto done; }
  }
  if (out->n == 0) s = ky_error(KY_ERR_FORMAT, "%s: no rows after the header", path);
done:
  free(buf);
  free(scratch);
  if (s != KY_OK) ky_folds_free(out);
  return s;
}

static uint64_t fnv1a(const char *s) {
  uint64_t h = 14695981039346656037ull;
  for (; *s; s++) { h ^= (unsigned char)*s; h *= 1099511628211ull; }
  return h;
}

ky_status ky_folds_fallback(ky_folds *out, const char *const *ids, int n) {
  KY_CHECK_NULL(out, "out");
  memset(out, 0, sizeof *out);
  KY_CHECK_NULL(ids, "ids");
  KY_CHECK(n > 0, KY_ERR_ARG, "ky_folds_fallback: %d ids, expected at least 1", n);
  out->rows = calloc((size_t)n, sizeof *out->rows);
  if (!out->rows) return ky_error(KY_ERR_NOMEM, "ky_folds_fallback: out of memory");
  for (int i = 0; i < n; i++) {
    if (!ids[i]) { ky_folds_free(out); return ky_error(KY_ERR_ARG, "ky_folds_fallback: ids[%d] is NULL", i); }
    ky_fold_row *r = &out->rows[i];
    out->n = i + 1;
    r->id = strdup(ids[i]);
    r->cluster = strdup("");
    r->source = strdup("");
    if (!r->id || !r->cluster || !r->source) { ky_folds_free(out); return ky_error(KY_ERR_NOMEM, "ky_folds_fallback: out of memory"); }
    r->fold = (int)(fnv1a(ids[i]) % KY_FOLDS_K);
  }
  return KY_OK;
}

ky_status ky_oversample_parse(ky_oversample *out, const char *spec) {
  KY_CHECK_NULL(out, "out");
  memset(out, 0, sizeof *out);
  if (!spec) return KY_OK;
  const char *p = spec;
  while (*p) {
    while (*p == ' ' || *p == ',') p++;
    if (!*p) break;
    const char *colon = strchr(p, ':');
    const char *comma = strchr(p, ',');
    if (!colon || (comma && comma < colon))
      return ky_error(KY_ERR_ARG, "oversampling '%s': expected key:count pairs like b:4,polosa:5", spec);
    size_t klen = (size_t)(colon - p);
    while (klen && p[klen - 1] == ' ') klen--;
    if (klen == 0 || klen >= sizeof out->key[0])
      return ky_error(KY_ERR_ARG, "oversampling '%s': bad key length %zu", spec, klen);
    char *end;
    long rep = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || rep < 1 || rep > 1000 || (*end && *end != ',' && *end != ' '))
      return ky_error(KY_ERR_ARG, "oversampling '%s': count for '%.*s' must be an integer in 1..1000", spec, (int)klen, p);
    if (out->n == KY_OVERSAMPLE_MAX)
      return ky_error(KY_ERR_ARG, "oversampling '%s': more than %d entries", spec, KY_OVERSAMPLE_MAX);
    memcpy(out->key[out->n], p, klen);
    out->key[out->n][klen] = '\0';
    out->rep[out->n++] = (int)rep;
    p = end;
  }
  return KY_OK;
}

int ky_oversample_repeats(const ky_oversample *o, const ky_fold_row *row) {
  if (!o || !row) return 1;
  int rep = 1;
  for (int i = 0; i < o->n; i++)
    if (row->cluster && !strcmp(o->key[i], row->cluster)) rep = o->rep[i];
  if (ky_folds_is_polosa(row->id))
    for (int i = 0; i < o->n; i++)
      if (!strcmp(o->key[i], "polosa")) rep = o->rep[i];
  return rep;
}

static ky_status push_rep(int **a, int *n, int *cap, int v, int rep) {
  for (int r = 0; r < rep; r++) {
    if (*n == *cap) {
      *cap = *cap ? *cap * 2 : 256;
      int *t = realloc(*a, (size_t)*cap * sizeof *t);
      if (!t) return ky_error(KY_ERR_NOMEM, "ky_folds_split: out of memory");
      *a = t;
    }
    (*a)[(*n)++] = v;
  }
  return KY_OK;
}

ky_status ky_folds_split(int **train, int *n_train, int **val, int *n_val, const ky_folds *f, int k,
                         const ky_oversample *train_os, const ky_oversample *val_os) {
  KY_CHECK_NULL(train, "train");
  KY_CHECK_NULL(n_train, "n_train");
  KY_CHECK_NULL(val, "val");
  KY_CHECK_NULL(n_val, "n_val");
  *train = *val = NULL;
  *n_train = *n_val = 0;
  KY_CHECK(f && f->n > 0, KY_ERR_ARG, "ky_folds_split: no folds loaded");
  KY_CHECK(k >= 0 && k < KY_FOLDS_K, KY_ERR_ARG, "ky_folds_split: fold %d not in 0..%d", k, KY_FOLDS_K - 1);
  int cap_t = 0, cap_v = 0;
  ky_status s = KY_OK;
  for (int i = 0; i < f->n && s == KY_OK; i++) {
    const ky_fold_row *r = &f->rows[i];
    if (r->fold != k || ky_folds_always_train(r))
      s = push_rep(train, n_train, &cap_t, i, train_os ? ky_oversample_repeats(train_os, r) : 1);
    if (s == KY_OK && r->fold == k)
      s = push_rep(val, n_val, &cap_v, i, val_os ? ky_oversample_repeats(val_os, r) : 1);
  }
  if (s == KY_OK && (*n_train == 0 || *n_val == 0))
    s = ky_error(KY_ERR_ARG, "ky_folds_split: fold %d gives %d training and %d validation rows; both must be non-empty",
                 k, *n_train, *n_val);
  if (s != KY_OK) {
    free(*train);
    free(*val);
    *train = *val = NULL;
    *n_train = *n_val = 0;
  }
  return s;
}

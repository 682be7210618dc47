/* Kaggle RLE encode/decode and the DSB solution/submission CSV reader and writer.
 * Tested by tests/test_post_rle.c. */
#include "post/rle.h"

#include "core/image.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct { int32_t id; int64_t start, len; } run;   /* start: 0-based column-major index */

/* Appends to a growing string. */
typedef struct { char *s; size_t n, cap; } sbuf;

static int sb_printf(sbuf *b, const char *fmt, long long x, long long y) {
  char tmp[64];
  int k = snprintf(tmp, sizeof tmp, fmt, x, y);
  if (b->n + (size_t)k + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap < b->n + (size_t)k + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) return 0;
    b->s = s;
    b->cap = cap;
  }
  memcpy(b->s + b->n, tmp, (size_t)k + 1);
  b->n += (size_t)k;
  return 1;
}

ky_status ky_rle_encode(char **out, const int32_t *labels, int h, int w, int32_t id) {
  KY_CHECK_NULL(out, "out");
  KY_CHECK_NULL(labels, "labels");
  KY_CHECK(h > 0 && w > 0, KY_ERR_ARG, "ky_rle_encode: labels are %dx%d, expected positive sizes", h, w);
  sbuf b = {calloc(1, 1), 0, 1};
  if (!b.s) return ky_error(KY_ERR_NOMEM, "ky_rle_encode");
  int64_t start = -1, len = 0, i = 0;
  for (int c = 0; c < w; c++)
    for (int r = 0; r < h; r++, i++) {
      if (labels[(size_t)r * w + c] == id) {
        if (len == 0) start = i;
        len++;
      } else if (len > 0) {
        if (!sb_printf(&b, b.n ? " %lld %lld" : "%lld %lld", start + 1, len)) { free(b.s); return ky_error(KY_ERR_NOMEM, "ky_rle_encode"); }
        len = 0;
      }
    }
  if (len > 0 && !sb_printf(&b, b.n ? " %lld %lld" : "%lld %lld", start + 1, len)) { free(b.s); return ky_error(KY_ERR_NOMEM, "ky_rle_encode"); }
  *out = b.s;
  return KY_OK;
}

/* Parses one non-negative decimal integer; returns the end or NULL. */
static const char *parse_int(const char *s, long long *v) {
  if (!isdigit((unsigned char)*s)) return NULL;
  errno = 0;
  char *end;
  *v = strtoll(s, &end, 10);
  if (errno) return NULL;
  return end;
}

/* Checks RLE syntax: numbers separated by spaces, an even count. Returns the count or -1. */
static long long rle_syntax(const char *rle, const char *where, ky_status *st) {
  long long count = 0, v;
  const char *s = rle;
  for (;;) {
    while (*s == ' ') s++;
    if (!*s) break;
    const char *e = parse_int(s, &v);
    if (!e || (*e && *e != ' ')) {
      int k = 0;
      while (s[k] && s[k] != ' ' && k < 20) k++;
      *st = ky_error(KY_ERR_FORMAT, "%s: EncodedPixels value %lld is \"%.*s\", expected a non-negative integer", where, count + 1, k, s);
      return -1;
    }
    count++;
    s = e;
  }
  if (count % 2) {
    *st = ky_error(KY_ERR_FORMAT, "%s: EncodedPixels has %lld values, expected start/length pairs (an even count)", where, count);
    return -1;
  }
  return count;
}

ky_status ky_rle_decode(int32_t *labels, int h, int w, const char *rle, int32_t id, const char *where) {
  KY_CHECK_NULL(labels, "labels");
  KY_CHECK_NULL(rle, "rle");
  if (!where) where = "rle";
  KY_CHECK(h > 0 && w > 0, KY_ERR_ARG, "%s: image is %dx%d, expected positive sizes", where, h, w);
  KY_CHECK(id > 0, KY_ERR_ARG, "%s: instance id %d, expected > 0", where, (int)id);
  ky_status st = KY_OK;
  if (rle_syntax(rle, where, &st) < 0) return st;
  int64_t npx = (int64_t)h * w, prev_end = 0;
  const char *s = rle;
  for (int pair = 1;; pair++) {
    long long start = 0, len = 0;
    while (*s == ' ') s++;
    if (!*s) break;
    s = parse_int(s, &start);
    while (*s == ' ') s++;
    s = parse_int(s, &len);
    if (start < 1 || start > npx)
      return ky_error(KY_ERR_FORMAT, "%s: run %d starts at %lld, expected 1..%lld (a %dx%d image)", where, pair, start, (long long)npx, h, w);
    if (len < 1)
      return ky_error(KY_ERR_FORMAT, "%s: run %d has length %lld, expected >= 1", where, pair, len);
    if (start - 1 + len > npx)
      return ky_error(KY_ERR_FORMAT, "%s: run %d (%lld %lld) ends at pixel %lld, past the %lld pixels of a %dx%d image", where, pair, start, len, start - 1 + len, (long long)npx, h, w);
    if (start - 1 < prev_end)
      return ky_error(KY_ERR_FORMAT, "%s: run %d starts at %lld, overlapping or before the previous run (which ended at %lld)", where, pair, start, (long long)prev_end);
    for (int64_t i = start - 1; i < start - 1 + len; i++) {
      int64_t c = i / h, r = i % h;
      int32_t *px = &labels[r * w + c];
      if (*px != 0 && *px != id)
        return ky_error(KY_ERR_FORMAT, "%s: run %d covers pixel %lld (row %lld, col %lld) already owned by instance %d", where, pair, (long long)i + 1, (long long)r, (long long)c, (int)*px);
      *px = id;
    }
    prev_end = start - 1 + len;
  }
  return KY_OK;
}

/* ---- CSV ---- */

static char *dupn(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d) { memcpy(d, s, n); d[n] = 0; }
  return d;
}

static int parse_dim(const char *s, size_t n, int *v) {
  if (n == 0 || n > 9) return 0;
  int x = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isdigit((unsigned char)s[i])) return 0;
    x = x * 10 + (s[i] - '0');
  }
  *v = x;
  return x > 0;
}

void ky_rle_csv_free(ky_rle_csv *csv) {
  if (!csv) return;
  for (int i = 0; i < csv->n; i++) { free(csv->rows[i].image_id); free(csv->rows[i].rle); }
  free(csv->rows);
  csv->rows = NULL;
  csv->n = 0;
}

ky_status ky_rle_csv_read(ky_rle_csv *out, const char *path) {
  KY_CHECK_NULL(out, "out");
  KY_CHECK_NULL(path, "path");
  memset(out, 0, sizeof *out);
  snprintf(out->path, sizeof out->path, "%s", path);
  char *text;
  size_t len;
  KY_TRY(ky_file_read_text(path, &text, &len));
  int cap = 0, lineno = 0;
  ky_status st = KY_OK;
  char *p = text;
  while (*p && st == KY_OK) {
    char *eol = strchr(p, '\n');
    size_t n = eol ? (size_t)(eol - p) : strlen(p);
    char *next = eol ? eol + 1 : p + n;
    if (n > 0 && p[n - 1] == '\r') n--;
    lineno++;
    /* Split on commas (the DSB files have no quoted fields). */
    const char *f[8];
    size_t fl[8];
    int nf = 0;
    size_t a = 0;
    for (size_t i = 0; i <= n && nf < 8; i++)
      if (i == n || p[i] == ',') { f[nf] = p + a; fl[nf] = i - a; nf++; a = i + 1; }
    if (lineno == 1) {
      if (nf < 2 || fl[0] != 7 || strncmp(f[0], "ImageId", 7) || fl[1] != 13 || strncmp(f[1], "EncodedPixels", 13)) {
        char shown[400], hd[96];
        snprintf(hd, sizeof hd, "%.*s", (int)(n > 80 ? 80 : n), p);
        st = ky_error(KY_ERR_FORMAT, "%s:1: header is \"%s\", expected \"ImageId,EncodedPixels[,Height,Width]\"", path,
                      ky_printable(shown, sizeof shown, hd, 80));
        break;
      }
      out->has_size = nf >= 4 && fl[2] == 6 && !strncmp(f[2], "Height", 6) && fl[3] == 5 && !strncmp(f[3], "Width", 5);
      p = next;
      continue;
    }
    if (n == 0) { p = next; continue; }
    int want = out->has_size ? 4 : 2;
    if (nf < want || (!out->has_size && nf != 2)) {
      st = ky_error(KY_ERR_FORMAT, "%s:%d: %d fields, expected %s", path, lineno, nf, out->has_size ? "ImageId,EncodedPixels,Height,Width" : "ImageId,EncodedPixels");
      break;
    }
    if (fl[0] == 0) { st = ky_error(KY_ERR_FORMAT, "%s:%d: empty ImageId", path, lineno); break; }
    ky_rle_row row = {0};
    row.line = lineno;
    if (out->has_size && (!parse_dim(f[2], fl[2], &row.height) || !parse_dim(f[3], fl[3], &row.width))) {
      st = ky_error(KY_ERR_FORMAT, "%s:%d: Height,Width are \"%.*s,%.*s\", expected positive integers", path, lineno, (int)fl[2], f[2], (int)fl[3], f[3]);
      break;
    }
    if (out->has_size && (long long)row.height * row.width > ky_image_max_pixels()) {
      /* Decoding a 65536 x 65536 mask per row would take minutes and gigabytes. */
      st = ky_error(KY_ERR_FORMAT, "%s:%d: Height x Width = %d x %d is above the image limit of %lld pixels (raise it with "
                    "KY_MAX_IMAGE_PIXELS or karyon --max-pixels)", path, lineno, row.height, row.width, ky_image_max_pixels());
      break;
    }
    row.image_id = dupn(f[0], fl[0]);
    row.rle = dupn(f[1], fl[1]);
    if (!row.image_id || !row.rle) { free(row.image_id); free(row.rle); st = ky_error(KY_ERR_NOMEM, "%s:%d", path, lineno); break; }
    char where[1100];
    snprintf(where, sizeof where, "%s:%d", path, lineno);
    if (rle_syntax(row.rle, where, &st) < 0) { free(row.image_id); free(row.rle); break; }
    if (out->n == cap) {
      cap = cap ? cap * 2 : 256;
      ky_rle_row *r2 = realloc(out->rows, sizeof *r2 * (size_t)cap);
      if (!r2) { free(row.image_id); free(row.rle); st = ky_error(KY_ERR_NOMEM, "%s:%d", path, lineno); break; }
      out->rows = r2;
    }
    out->rows[out->n++] = row;
    p = next;
  }
  if (st == KY_OK && lineno == 0) st = ky_error(KY_ERR_FORMAT, "%s: empty file, expected a header line", path);
  free(text);
  if (st != KY_OK) ky_rle_csv_free(out);
  return st;
}

ky_status ky_rle_csv_ids(const char ***ids, int *n, const ky_rle_csv *csv) {
  KY_CHECK_NULL(ids, "ids");
  KY_CHECK_NULL(n, "n");
  KY_CHECK_NULL(csv, "csv");
  const char **out = malloc(sizeof *out * (size_t)(csv->n ? csv->n : 1));
  if (!out) return ky_error(KY_ERR_NOMEM, "ky_rle_csv_ids: %d rows", csv->n);
  int k = 0;
  /* Rows of one image are usually adjacent; the linear check only runs on a change of id. */
  for (int i = 0; i < csv->n; i++) {
    const char *id = csv->rows[i].image_id;
    if (k > 0 && !strcmp(out[k - 1], id)) continue;
    int seen = 0;
    for (int j = 0; j < k && !seen; j++) seen = !strcmp(out[j], id);
    if (!seen) out[k++] = id;
  }
  *ids = out;
  *n = k;
  return KY_OK;
}

ky_status ky_rle_csv_labels(int32_t **labels, int *out_h, int *out_w, const ky_rle_csv *csv,
                            const char *image_id, int h, int w) {
  KY_CHECK_NULL(labels, "labels");
  KY_CHECK_NULL(csv, "csv");
  KY_CHECK_NULL(image_id, "image_id");
  *labels = NULL;
  int first = -1;
  for (int i = 0; i < csv->n && first < 0; i++) if (!strcmp(csv->rows[i].image_id, image_id)) first = i;
  KY_CHECK(first >= 0, KY_ERR_ARG, "%s: image id %s not found", csv->path, image_id);
  if (h <= 0 || w <= 0) {
    KY_CHECK(csv->has_size, KY_ERR_ARG, "%s: no Height/Width columns and no image size given for %s", csv->path, image_id);
    h = csv->rows[first].height;
    w = csv->rows[first].width;
  }
  int32_t *lab = calloc((size_t)h * w, sizeof *lab);
  if (!lab) return ky_error(KY_ERR_NOMEM, "%s: %dx%d labels for %s", csv->path, h, w, image_id);
  int32_t next = 1;
  for (int i = first; i < csv->n; i++) {
    const ky_rle_row *r = &csv->rows[i];
    if (strcmp(r->image_id, image_id)) continue;
    char where[1100];
    snprintf(where, sizeof where, "%s:%d", csv->path, r->line);
    if (csv->has_size && (r->height != h || r->width != w)) {
      free(lab);
      return ky_error(KY_ERR_FORMAT, "%s: image %s is %dx%d here but %dx%d elsewhere", where, image_id, r->height, r->width, h, w);
    }
    if (!r->rle[0]) continue;
    ky_status st = ky_rle_decode(lab, h, w, r->rle, next++, where);
    if (st != KY_OK) { free(lab); return st; }
  }
  *labels = lab;
  if (out_h) *out_h = h;
  if (out_w) *out_w = w;
  return KY_OK;
}

ky_status ky_rle_writer_open(ky_rle_writer *wr, const char *path, int with_size) {
  KY_CHECK_NULL(wr, "wr");
  KY_CHECK_NULL(path, "path");
  KY_TRY(ky_atomic_open(&wr->af, path));
  wr->with_size = with_size;
  fputs(with_size ? "ImageId,EncodedPixels,Height,Width\n" : "ImageId,EncodedPixels\n", wr->af.f);
  return KY_OK;
}

static int cmp_run(const void *a, const void *b) {
  const run *x = a, *y = b;
  if (x->id != y->id) return x->id < y->id ? -1 : 1;
  return (x->start > y->start) - (x->start < y->start);
}

ky_status ky_rle_writer_add(ky_rle_writer *wr, const char *image_id, const int32_t *labels, int h, int w) {
  KY_CHECK_NULL(wr, "wr");
  KY_CHECK_NULL(image_id, "image_id");
  KY_CHECK_NULL(labels, "labels");
  KY_CHECK(h > 0 && w > 0, KY_ERR_ARG, "ky_rle_writer_add: %s is %dx%d, expected positive sizes", image_id, h, w);
  KY_CHECK(image_id[0] && !strpbrk(image_id, ",\n\r"), KY_ERR_ARG, "ky_rle_writer_add: image id \"%s\" is empty or has a comma/newline", image_id);
  /* All runs of all instances in one column-major pass, then grouped by instance. */
  size_t cap = 1024, n = 0;
  run *runs = malloc(sizeof *runs * cap);
  if (!runs) return ky_error(KY_ERR_NOMEM, "ky_rle_writer_add: %s", image_id);
  int32_t cur = 0;
  int64_t i = 0;
  for (int c = 0; c < w; c++)
    for (int r = 0; r < h; r++, i++) {
      int32_t v = labels[(size_t)r * w + c];
      if (v < 0) { free(runs); return ky_error(KY_ERR_ARG, "ky_rle_writer_add: %s has label %d at row %d col %d, expected >= 0", image_id, (int)v, r, c); }
      if (v != 0 && v == cur) { runs[n - 1].len++; continue; }
      cur = v;
      if (v == 0) continue;
      if (n == cap) {
        cap *= 2;
        run *r2 = realloc(runs, sizeof *runs * cap);
        if (!r2) { free(runs); return ky_error(KY_ERR_NOMEM, "ky_rle_writer_add: %s", image_id); }
        runs = r2;
      }
      runs[n++] = (run){v, i, 1};
    }
  qsort(runs, n, sizeof *runs, cmp_run);
  FILE *f = wr->af.f;
  if (n == 0) {
    if (wr->with_size) fprintf(f, "%s,,%d,%d\n", image_id, h, w);
    else fprintf(f, "%s,\n", image_id);
  }
  for (size_t a = 0; a < n;) {
    fprintf(f, "%s,", image_id);
    size_t b = a;
    for (; b < n && runs[b].id == runs[a].id; b++)
      fprintf(f, b == a ? "%lld %lld" : " %lld %lld", (long long)runs[b].start + 1, (long long)runs[b].len);
    if (wr->with_size) fprintf(f, ",%d,%d", h, w);
    fputc('\n', f);
    a = b;
  }
  free(runs);
  if (ferror(f)) return ky_error(KY_ERR_IO, "ky_rle_writer_add: writing %s failed", wr->af.path);
  return KY_OK;
}

ky_status ky_rle_writer_commit(ky_rle_writer *wr) {
  KY_CHECK_NULL(wr, "wr");
  return ky_atomic_commit(&wr->af);
}

void ky_rle_writer_abort(ky_rle_writer *wr) {
  if (wr) ky_atomic_abort(&wr->af);
}

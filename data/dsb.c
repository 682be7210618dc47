/* DSB folder reader: id listing, image decoding to RGB 8-bit, label maps painted from per-nucleus
 * masks or read from the compact layout's labels.png, the compact writer, and the in-memory sample
 * cache. Tested by tests/test_data_dsb.c. */
#include "data/dsb.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fileio.h"
#include "core/image.h"

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_strs(char **s, int n) {
  if (!s) return;
  for (int i = 0; i < n; i++) free(s[i]);
  free(s);
}

static int ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Sorted names in `dir` accepted by `want` (called with the full path and the name). */
static ky_status list_sorted(char ***out, int *n_out, const char *dir,
                             int (*want)(const char *full, const char *name)) {
  *out = NULL;
  *n_out = 0;
  DIR *d = opendir(dir);
  if (!d) return ky_error(KY_ERR_IO, "%s: cannot open folder", dir);
  char **names = NULL;
  int n = 0, cap = 0;
  struct dirent *e;
  ky_status s = KY_OK;
  char full[4096];
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
    if (!want(full, e->d_name)) continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      char **t = realloc(names, (size_t)cap * sizeof *t);
      if (!t) { s = ky_error(KY_ERR_NOMEM, "%s: out of memory listing", dir); break; }
      names = t;
    }
    names[n] = strdup(e->d_name);
    if (!names[n]) { s = ky_error(KY_ERR_NOMEM, "%s: out of memory listing", dir); break; }
    n++;
  }
  closedir(d);
  if (s != KY_OK) { free_strs(names, n); return s; }
  if (n) qsort(names, (size_t)n, sizeof *names, cmp_str);
  *out = names;
  *n_out = n;
  return KY_OK;
}

static int want_sample_dir(const char *full, const char *name) {
  char p[4096];
  snprintf(p, sizeof p, "%s/images", full);
  return is_dir(full) && is_dir(p);
}

static int want_png_file(const char *full, const char *name) {
  return ends_with(name, ".png") && is_file(full);
}

ky_status ky_dsb_list_ids(ky_dsb_ids *out, const char *root) {
  KY_CHECK_NULL(out, "out");
  memset(out, 0, sizeof *out);
  KY_CHECK_NULL(root, "root");
  if (!is_dir(root)) return ky_error(KY_ERR_IO, "%s: not a folder (expected a DSB data folder)", root);
  KY_TRY(list_sorted(&out->ids, &out->n, root, want_sample_dir));
  if (out->n == 0)
    return ky_error(KY_ERR_FORMAT, "%s: empty folder: no <id>/images/ sub-folders found", root);
  return KY_OK;
}

void ky_dsb_ids_free(ky_dsb_ids *ids) {
  if (!ids) return;
  free_strs(ids->ids, ids->n);
  ids->ids = NULL;
  ids->n = 0;
}

static inline uint8_t u16_to_u8(uint16_t v) { return (uint8_t)(((uint32_t)v * 255u + 32767u) / 65535u); }

ky_status ky_dsb_read_rgb(uint8_t **rgb, int *h, int *w, const char *path) {
  KY_CHECK_NULL(rgb, "rgb");
  KY_CHECK_NULL(h, "h");
  KY_CHECK_NULL(w, "w");
  KY_CHECK_NULL(path, "path");
  *rgb = NULL;
  ky_image im;
  KY_TRY(ky_image_load(&im, path));
  size_t np = (size_t)im.w * im.h;
  uint8_t *o = malloc(np ? np * 3 : 1);
  if (!o) { ky_image_free(&im); return ky_error(KY_ERR_NOMEM, "%s: out of memory", path); }
  int c = im.c, grey = c < 3;
  for (size_t i = 0; i < np; i++) {
    for (int k = 0; k < 3; k++) {
      size_t src = i * c + (grey ? 0 : k);
      o[i * 3 + k] = im.depth == 16 ? u16_to_u8(((const uint16_t *)im.data)[src]) : ((const uint8_t *)im.data)[src];
    }
  }
  *h = im.h;
  *w = im.w;
  ky_image_free(&im);
  *rgb = o;
  return KY_OK;
}

ky_status ky_dsb_read_labels(uint16_t **labels, int *h, int *w, const char *path) {
  KY_CHECK_NULL(labels, "labels");
  KY_CHECK_NULL(h, "h");
  KY_CHECK_NULL(w, "w");
  KY_CHECK_NULL(path, "path");
  *labels = NULL;
  ky_image im;
  KY_TRY(ky_image_load_png(&im, path, "label map", 0));
  if (im.c != 1) {
    int c = im.c;
    ky_image_free(&im);
    return ky_error(KY_ERR_FORMAT, "%s: label map has %d channels, expected 1 (grey 8- or 16-bit)", path, c);
  }
  size_t np = (size_t)im.w * im.h;
  uint16_t *o = malloc(np ? np * 2 : 1);
  if (!o) { ky_image_free(&im); return ky_error(KY_ERR_NOMEM, "%s: out of memory", path); }
  for (size_t i = 0; i < np; i++)
    o[i] = im.depth == 16 ? ((const uint16_t *)im.data)[i] : ((const uint8_t *)im.data)[i];
  *h = im.h;
  *w = im.w;
  ky_image_free(&im);
  *labels = o;
  return KY_OK;
}

ky_status ky_dsb_write_labels(const char *path, const uint16_t *labels, int h, int w) {
  KY_CHECK_NULL(path, "path");
  KY_CHECK_NULL(labels, "labels");
  KY_CHECK(h > 0 && w > 0, KY_ERR_ARG, "%s: bad label map size %dx%d", path, w, h);
  return ky_png_save_u16(path, labels, w, h, 1);
}

/* Paints every mask of `dir` into labels [h, w] (already zeroed). */
static ky_status paint_masks(uint16_t *labels, int *n_painted, const char *dir, int h, int w) {
  char **names;
  int n;
  KY_TRY(list_sorted(&names, &n, dir, want_png_file));
  ky_status s = KY_OK;
  if (n == 0) s = ky_error(KY_ERR_FORMAT, "%s: empty folder: no mask PNGs", dir);
  else if (n > 65535) s = ky_error(KY_ERR_FORMAT, "%s: %d masks, at most 65535 fit a uint16 label map", dir, n);
  char path[4096];
  for (int i = 0; i < n && s == KY_OK; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    ky_image m;
    s = ky_image_load_png(&m, path, "mask", 1);   /* a palette mask is still a shape */
    if (s != KY_OK) break;
    if (m.w != w || m.h != h) {
      s = ky_error(KY_ERR_SHAPE, "%s: mask is %dx%d, the image is %dx%d", path, m.w, m.h, w, h);
      ky_image_free(&m);
      break;
    }
    int cc = m.c >= 3 ? 3 : 1;  /* colour samples; alpha is ignored */
    size_t np = (size_t)w * h;
    uint16_t v = (uint16_t)(i + 1);
    const uint8_t *d8 = m.data;
    const uint16_t *d16 = m.data;
    if (m.depth == 8 && m.c == 1) {   /* the DSB masks: a loop the compiler vectorises */
      for (size_t p = 0; p < np; p++) labels[p] = d8[p] ? v : labels[p];
    } else {
      size_t painted = 0, in_alpha = 0;
      for (size_t p = 0; p < np; p++) {
        int on = 0;
        for (int k = 0; k < cc; k++) on |= m.depth == 16 ? d16[p * m.c + k] != 0 : d8[p * m.c + k] != 0;
        if (on) labels[p] = v;
        painted += on;
        if (m.c == 2 || m.c == 4) in_alpha += m.depth == 16 ? d16[p * m.c + m.c - 1] != 0 : d8[p * m.c + m.c - 1] != 0;
      }
      /* The shape only in alpha (colour all zero, alpha not all opaque or empty) would paint nothing. */
      if (!painted && in_alpha && in_alpha < np) {
        s = ky_error(KY_ERR_FORMAT, "%s: mask's colour channels are all zero and its alpha channel holds the shape; "
                     "expected the mask in the grey or colour channels", path);
        ky_image_free(&m);
        break;
      }
    }
    ky_image_free(&m);
  }
  free_strs(names, n);
  if (s == KY_OK) *n_painted = n;
  return s;
}

/* The compact layout's <id>/labels.png in place of masks/; n_labels is its largest label. */
static ky_status load_label_map(ky_dsb_sample *out, const char *path) {
  int h = 0, w = 0;
  ky_status s = ky_dsb_read_labels(&out->labels, &h, &w, path);
  if (s == KY_OK && (h != out->h || w != out->w))
    s = ky_error(KY_ERR_SHAPE, "%s: label map is %dx%d, its image %dx%d", path, w, h, out->w, out->h);
  if (s != KY_OK) { ky_dsb_sample_free(out); return s; }
  /* w * h in ky_dsb_read_labels's order: the analyser then sees that this reads what it wrote. */
  for (size_t i = 0; i < (size_t)w * h; i++)
    if (out->labels[i] > out->n_labels) out->n_labels = out->labels[i];
  return KY_OK;
}

ky_status ky_dsb_load(ky_dsb_sample *out, const char *root, const char *id, ky_dsb_masks masks) {
  KY_CHECK_NULL(out, "out");
  memset(out, 0, sizeof *out);
  KY_CHECK_NULL(root, "root");
  KY_CHECK_NULL(id, "id");
  KY_CHECK(masks >= KY_DSB_MASKS_REQUIRED && masks <= KY_DSB_MASKS_SKIP, KY_ERR_ARG,
           "ky_dsb_load: bad masks mode %d", (int)masks);
  char dir[4096], path[4096];
  snprintf(dir, sizeof dir, "%s/%s/images", root, id);
  if (!is_dir(dir)) return ky_error(KY_ERR_IO, "%s: missing images/ folder", dir);
  snprintf(path, sizeof path, "%s/%s.png", dir, id);
  if (!is_file(path)) {
    /* Say why: a dangling or looping link, or a device, is not "missing". */
    struct stat st, lst;
    if (lstat(path, &lst) != 0) return ky_error(KY_ERR_IO, "%s: missing image file", path);
    if (stat(path, &st) != 0)
      return ky_error(KY_ERR_IO, "%s: cannot follow the link: %s", path, strerror(errno));
    return ky_error(KY_ERR_IO, "%s is %s, expected a regular image file", path,
                    S_ISDIR(st.st_mode) ? "a folder" : "not a regular file (a device, FIFO or socket)");
  }
  KY_TRY(ky_dsb_read_rgb(&out->rgb, &out->h, &out->w, path));
  if (masks == KY_DSB_MASKS_SKIP) return KY_OK;
  snprintf(path, sizeof path, "%s/%s/labels.png", root, id);
  if (is_file(path)) return load_label_map(out, path);
  snprintf(dir, sizeof dir, "%s/%s/masks", root, id);
  if (!is_dir(dir)) {
    if (masks == KY_DSB_MASKS_OPTIONAL) return KY_OK;
    ky_dsb_sample_free(out);
    return ky_error(KY_ERR_IO, "%s: missing masks/ folder", dir);
  }
  out->labels = calloc((size_t)out->h * out->w, sizeof *out->labels);
  if (!out->labels) { ky_dsb_sample_free(out); return ky_error(KY_ERR_NOMEM, "%s: out of memory", dir); }
  ky_status s = paint_masks(out->labels, &out->n_labels, dir, out->h, out->w);
  if (s != KY_OK) ky_dsb_sample_free(out);
  return s;
}

ky_status ky_dsb_save_compact(const ky_dsb_sample *s, const char *root, const char *id) {
  KY_CHECK_NULL(s, "sample");
  KY_CHECK_NULL(root, "root");
  KY_CHECK_NULL(id, "id");
  KY_CHECK(s->rgb && s->h > 0 && s->w > 0, KY_ERR_ARG, "ky_dsb_save_compact: sample %s has no image", id);
  char path[4096];
  snprintf(path, sizeof path, "%s/%s/images", root, id);
  KY_TRY(ky_mkdirs(path));
  size_t np = (size_t)s->h * s->w;
  int grey = 1;
  for (size_t i = 0; i < np && grey; i++) grey = s->rgb[3 * i] == s->rgb[3 * i + 1] && s->rgb[3 * i] == s->rgb[3 * i + 2];
  uint8_t *g = grey ? malloc(np) : NULL;
  if (grey && !g) return ky_error(KY_ERR_NOMEM, "%s: out of memory", id);
  for (size_t i = 0; g && i < np; i++) g[i] = s->rgb[3 * i];
  snprintf(path, sizeof path, "%s/%s/images/%s.png", root, id, id);
  ky_status st = ky_png_save_u8(path, grey ? g : s->rgb, s->w, s->h, grey ? 1 : 3);
  free(g);
  if (st == KY_OK && s->labels) {
    snprintf(path, sizeof path, "%s/%s/labels.png", root, id);
    st = ky_dsb_write_labels(path, s->labels, s->h, s->w);
  }
  return st;
}

void ky_dsb_sample_free(ky_dsb_sample *s) {
  if (!s) return;
  free(s->rgb);
  free(s->labels);
  memset(s, 0, sizeof *s);
}

typedef struct {
  ky_dsb_set *set;
  const char *root;
  ky_dsb_masks masks;
  int next;                 /* next index to claim */
  int fail_idx;             /* lowest failing index, or set->n */
  ky_status fail;
  char fail_msg[1024];
  pthread_mutex_t mu;
} set_job;

static void *set_worker(void *arg) {
  set_job *j = arg;
  for (;;) {
    pthread_mutex_lock(&j->mu);
    int i = j->next++;
    int stop = i >= j->set->n || i > j->fail_idx;
    pthread_mutex_unlock(&j->mu);
    if (stop) break;
    ky_status s = ky_dsb_load(&j->set->samples[i], j->root, j->set->ids[i], j->masks);
    if (s != KY_OK) {
      pthread_mutex_lock(&j->mu);
      if (i < j->fail_idx) {
        j->fail_idx = i;
        j->fail = s;
        snprintf(j->fail_msg, sizeof j->fail_msg, "%s", ky_last_error());
      }
      pthread_mutex_unlock(&j->mu);
    }
  }
  return NULL;
}

ky_status ky_dsb_set_load_mt(ky_dsb_set *out, const char *root, const char *const *ids, int n_ids,
                             ky_dsb_masks masks, int threads) {
  KY_CHECK_NULL(out, "out");
  memset(out, 0, sizeof *out);
  KY_CHECK_NULL(root, "root");
  KY_CHECK(threads >= 1 && threads <= 256, KY_ERR_ARG, "ky_dsb_set_load: threads %d, expected 1..256", threads);
  ky_dsb_ids all = {0, NULL};
  if (!ids) {
    KY_TRY(ky_dsb_list_ids(&all, root));
    ids = (const char *const *)all.ids;
    n_ids = all.n;
  }
  if (n_ids <= 0) {
    ky_dsb_ids_free(&all);
    return ky_error(KY_ERR_ARG, "%s: no ids to load", root);
  }
  ky_status s = KY_OK;
  out->ids = calloc((size_t)n_ids, sizeof *out->ids);
  out->samples = calloc((size_t)n_ids, sizeof *out->samples);
  if (!out->ids || !out->samples) s = ky_error(KY_ERR_NOMEM, "%s: out of memory for %d samples", root, n_ids);
  else out->n = n_ids;
  for (int i = 0; i < n_ids && s == KY_OK; i++) {
    if (!ids[i]) { s = ky_error(KY_ERR_ARG, "%s: ids[%d] is NULL", root, i); break; }
    out->ids[i] = strdup(ids[i]);
    if (!out->ids[i]) s = ky_error(KY_ERR_NOMEM, "out of memory");
  }
  ky_dsb_ids_free(&all);
  if (s == KY_OK) {
    set_job j;
    memset(&j, 0, sizeof j);
    j.set = out;
    j.root = root;
    j.masks = masks;
    j.fail_idx = n_ids;
    pthread_mutex_init(&j.mu, NULL);
    int n_th = threads > n_ids ? n_ids : threads, started = 0;
    pthread_t th[256];
    for (int t = 1; t < n_th; t++) {
      if (pthread_create(&th[t], NULL, set_worker, &j) != 0) break;
      started = t;
    }
    set_worker(&j);
    for (int t = 1; t <= started; t++) pthread_join(th[t], NULL);
    pthread_mutex_destroy(&j.mu);
    if (j.fail_idx < n_ids) s = ky_error(j.fail, "%s", j.fail_msg);
  }
  if (s != KY_OK) ky_dsb_set_free(out);
  return s;
}

ky_status ky_dsb_set_load(ky_dsb_set *out, const char *root, const char *const *ids, int n_ids,
                          ky_dsb_masks masks) {
  return ky_dsb_set_load_mt(out, root, ids, n_ids, masks, 1);
}

void ky_dsb_set_free(ky_dsb_set *set) {
  if (!set) return;
  for (int i = 0; i < set->n; i++) {
    if (set->ids) free(set->ids[i]);
    if (set->samples) ky_dsb_sample_free(&set->samples[i]);
  }
  free(set->ids);
  free(set->samples);
  memset(set, 0, sizeof *set);
}

int ky_dsb_set_find(const ky_dsb_set *set, const char *id) {
  if (!set || !id) return -1;
  for (int i = 0; i < set->n; i++)
    if (strcmp(set->ids[i], id) == 0) return i;
  return -1;
}

/* Folder inference (see pipeline/infer.h). Tested by tests/test_pipeline_train.c (folder outputs,
 * the same files at 1 and 3 threads) and tests/test_apps_cli.c. */
#include "pipeline/infer.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fileio.h"
#include "core/image.h"
#include "core/pool.h"
#include "data/dsb.h"
#include "dist/dist.h"
#include "pipeline/plot.h"
#include "pipeline/segment.h"
#include "post/rle.h"

typedef struct { char *id, *path; } id_path;
static int cmp_pair(const void *a, const void *b) { return strcmp(((const id_path *)a)->id, ((const id_path *)b)->id); }

void ky_infer_list_free(char **ids, char **paths, int n) {
  for (int i = 0; i < n; i++) { if (ids) free(ids[i]); if (paths) free(paths[i]); }
  free(ids);
  free(paths);
}

ky_status ky_infer_list(char ***ids_out, char ***paths_out, int *n_out, const char *folder) {
  KY_CHECK(ids_out && paths_out && n_out && folder, KY_ERR_ARG, "infer: NULL argument");
  *ids_out = *paths_out = NULL;
  *n_out = 0;
  ky_dsb_ids d;
  if (ky_dsb_list_ids(&d, folder) == KY_OK && d.n > 0) {
    char **ids = calloc((size_t)d.n, sizeof *ids), **paths = calloc((size_t)d.n, sizeof *paths);
    if (!ids || !paths) { free(ids); free(paths); ky_dsb_ids_free(&d); return ky_error(KY_ERR_NOMEM, "infer: out of memory"); }
    for (int i = 0; i < d.n; i++) {
      ids[i] = strdup(d.ids[i]);
      size_t L = strlen(folder) + 2 * strlen(d.ids[i]) + 32;
      paths[i] = malloc(L);
      if (paths[i]) snprintf(paths[i], L, "%s/%s/images/%s.png", folder, d.ids[i], d.ids[i]);
    }
    *n_out = d.n;
    ky_dsb_ids_free(&d);
    *ids_out = ids;
    *paths_out = paths;
    return KY_OK;
  }
  ky_error_clear();
  DIR *dir = opendir(folder);
  if (!dir) return ky_error(KY_ERR_IO, "cannot open image folder %s", folder);
  int cap = 0, n = 0;
  char **ids = NULL, **paths = NULL;
  struct dirent *e;
  while ((e = readdir(dir))) {
    const char *dot = strrchr(e->d_name, '.');
    if (!dot || e->d_name[0] == '.') continue;
    if (strcasecmp(dot, ".png") && strcasecmp(dot, ".jpg") && strcasecmp(dot, ".jpeg") && strcasecmp(dot, ".bmp")) continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      char **ni = realloc(ids, (size_t)cap * sizeof *ni);
      if (ni) ids = ni;
      char **np = realloc(paths, (size_t)cap * sizeof *np);
      if (np) paths = np;
      if (!ni || !np) { closedir(dir); ky_infer_list_free(ids, paths, n); return ky_error(KY_ERR_NOMEM, "infer: out of memory"); }
    }
    ids[n] = strndup(e->d_name, (size_t)(dot - e->d_name));
    size_t L = strlen(folder) + strlen(e->d_name) + 2;
    paths[n] = malloc(L);
    if (paths[n]) snprintf(paths[n], L, "%s/%s", folder, e->d_name);
    n++;
  }
  closedir(dir);
  if (!n) { free(ids); free(paths); return ky_error(KY_ERR_FORMAT, "%s holds no images (neither <id>/images/<id>.png nor image files)", folder); }
  /* Sort by id, keeping each path with its id. */
  id_path *pairs = malloc((size_t)n * sizeof *pairs);
  if (!pairs) { ky_infer_list_free(ids, paths, n); return ky_error(KY_ERR_NOMEM, "infer: out of memory"); }
  for (int i = 0; i < n; i++) { pairs[i].id = ids[i]; pairs[i].path = paths[i]; }
  qsort(pairs, (size_t)n, sizeof *pairs, cmp_pair);
  for (int i = 0; i < n; i++) { ids[i] = pairs[i].id; paths[i] = pairs[i].path; }
  free(pairs);
  /* x.png, x.jpg and x.PNG are one id: their outputs would overwrite each other. */
  for (int i = 1; i < n; i++)
    if (!strcmp(ids[i], ids[i - 1])) {
      ky_status s = ky_error(KY_ERR_FORMAT, "%s: %s and %s both give the image id '%s' (their outputs would overwrite "
                             "each other); rename one", folder, paths[i - 1], paths[i], ids[i]);
      ky_infer_list_free(ids, paths, n);
      return s;
    }
  *ids_out = ids;
  *paths_out = paths;
  *n_out = n;
  return KY_OK;
}

static ky_status export_dsb(const char *root, const char *id, const uint8_t *rgb, const uint16_t *lab, int n, int h, int w) {
  char p[4096];
  snprintf(p, sizeof p, "%s/%s/images", root, id);
  KY_TRY(ky_mkdirs(p));
  snprintf(p, sizeof p, "%s/%s/masks", root, id);
  KY_TRY(ky_mkdirs(p));
  snprintf(p, sizeof p, "%s/%s/images/%s.png", root, id, id);
  KY_TRY(ky_png_save_u8(p, rgb, w, h, 3));
  uint8_t *m = malloc((size_t)h * w);
  if (!m) return ky_error(KY_ERR_NOMEM, "export: out of memory");
  ky_status s = KY_OK;
  for (int k = 1; k <= n && s == KY_OK; k++) {
    for (size_t i = 0; i < (size_t)h * w; i++) m[i] = lab[i] == k ? 255 : 0;
    snprintf(p, sizeof p, "%s/%s/masks/%s_%05d.png", root, id, id, k);
    s = ky_png_save_u8(p, m, w, h, 1);
  }
  free(m);
  return s;
}

/* Images go in batches: the network's maps one image after the other (its kernels use every
 * thread), the instances one image per thread, then the outputs in image order, so the files and
 * the first error reported are those of a one-thread run. */
typedef struct {
  int idx;                 /* into ids / paths */
  uint8_t *rgb, *B, *S, *E;
  uint16_t *lab;
  int h, w, n_inst;
  ky_status s;
  char err[1024];
} infer_item;

static void item_fail(infer_item *it, ky_status s) {
  it->s = s;
  snprintf(it->err, sizeof it->err, "%s", ky_last_error());
}

static void item_free(infer_item *it) {
  free(it->rgb); free(it->B); free(it->S); free(it->E); free(it->lab);
  memset(it, 0, sizeof *it);
}

/* The maps of one image, written to prob/. */
static ky_status item_maps(ky_ctx *ctx, const ky_predictor *p, const ky_infer_opts *o, infer_item *it, const char *id,
                           const char *path) {
  char f[4096];
  float *pb = NULL, *psep = NULL, *pf = NULL;
  ky_status s = ky_dsb_read_rgb(&it->rgb, &it->h, &it->w, path);
  if (s != KY_OK) return s;
  size_t np = (size_t)it->h * it->w;
  pb = malloc(np * sizeof(float)); psep = malloc(np * sizeof(float)); pf = malloc(np * sizeof(float));
  it->B = malloc(np); it->S = malloc(np); it->E = malloc(np);
  it->lab = malloc(np * sizeof *it->lab);
  if (!pb || !psep || !pf || !it->B || !it->S || !it->E || !it->lab) s = ky_error(KY_ERR_NOMEM, "infer: out of memory");
  if (s == KY_OK) s = ky_predict_probs(ctx, p, it->rgb, it->h, it->w, pb, psep, pf);
  if (s == KY_OK) {
    ky_probs_to_u8(it->B, pb, (int64_t)np);
    ky_probs_to_u8(it->S, psep, (int64_t)np);
    ky_probs_to_u8(it->E, pf, (int64_t)np);
    snprintf(f, sizeof f, "%s/prob/%s_body.png", o->out, id);
    s = ky_png_save_u8(f, it->B, it->w, it->h, 1);
  }
  if (s == KY_OK) {
    snprintf(f, sizeof f, "%s/prob/%s_border.png", o->out, id);
    s = ky_png_save_u8(f, it->S, it->w, it->h, 1);
  }
  if (s == KY_OK) {
    snprintf(f, sizeof f, "%s/prob/%s_full.png", o->out, id);
    s = ky_png_save_u8(f, it->E, it->w, it->h, 1);
  }
  free(pb); free(psep); free(pf);
  return s;
}

typedef struct {
  infer_item *it;
  const ky_infer_opts *o;
} segment_job;

static ky_status segment_chunk(void *a, size_t i, int slot) {
  segment_job *j = a;
  infer_item *it = &j->it[i];
  if (it->s != KY_OK) return KY_OK;
  ky_status s = ky_pipeline_segment(it->lab, &it->n_inst, it->B, it->S, it->E, it->h, it->w, j->o->gbt, j->o->thr);
  if (s != KY_OK) item_fail(it, s);
  return KY_OK; /* kept per image, reported in image order */
}

/* labels/, overlay/, the submission row and the DSB export of one segmented image. */
static ky_status item_emit(const ky_infer_opts *o, const infer_item *it, const char *id, ky_rle_writer *wr) {
  char f[4096];
  size_t np = (size_t)it->h * it->w;
  snprintf(f, sizeof f, "%s/labels/%s.png", o->out, id);
  KY_TRY(ky_png_save_u16(f, it->lab, it->w, it->h, 1));
  if (o->overlays) {
    snprintf(f, sizeof f, "%s/overlay/%s.png", o->out, id);
    KY_TRY(ky_plot_overlay_png(f, it->rgb, it->lab, it->h, it->w));
  }
  int32_t *lab32 = malloc(np * sizeof *lab32);
  if (!lab32) return ky_error(KY_ERR_NOMEM, "infer: out of memory");
  for (size_t q = 0; q < np; q++) lab32[q] = it->lab[q];
  ky_status s = ky_rle_writer_add(wr, id, lab32, it->h, it->w);
  free(lab32);
  /* An image without instances would be a DSB folder with an empty masks/ (unreadable as
   * training data), so the export leaves it out. */
  if (s == KY_OK && o->export_dsb && it->n_inst > 0)
    s = export_dsb(o->export_dsb, id, it->rgb, it->lab, it->n_inst, it->h, it->w);
  return s;
}

ky_status ky_infer_merge_submission(const char *out, int size) {
  char p[4096];
  snprintf(p, sizeof p, "%s/submission.csv", out);
  ky_atomic_file af;
  KY_TRY(ky_atomic_open(&af, p));
  ky_status s = KY_OK;
  for (int r = 0; r < size && s == KY_OK; r++) {
    snprintf(p, sizeof p, "%s/submission.csv.rank%d", out, r);
    char *buf;
    size_t n;
    if ((s = ky_file_read_all(p, &buf, &n)) != KY_OK) break;
    const char *body = memchr(buf, '\n', n);
    size_t skip = r == 0 || !body ? 0 : (size_t)(body + 1 - buf);   /* one header line */
    if (fwrite(buf + skip, 1, n - skip, af.f) != n - skip) s = ky_error(KY_ERR_IO, "%s/submission.csv: write failed", out);
    free(buf);
  }
  if (s != KY_OK) { ky_atomic_abort(&af); return s; }
  KY_TRY(ky_atomic_commit(&af));
  for (int r = 0; r < size; r++) {
    snprintf(p, sizeof p, "%s/submission.csv.rank%d", out, r);
    remove(p);
  }
  return KY_OK;
}

ky_status ky_infer_folder(ky_ctx *ctx, const ky_predictor *p, const ky_infer_opts *o, ky_infer_result *r) {
  KY_CHECK(ctx && p && o && o->images && o->out, KY_ERR_ARG, "infer: NULL argument");
  char **ids, **paths;
  int n;
  KY_TRY(ky_infer_list(&ids, &paths, &n, o->images));
  char dir[4096];
  ky_status s = KY_OK;
  const char *subs[3] = {"prob", "labels", "overlay"};
  for (int i = 0; i < 3 && s == KY_OK; i++) {
    snprintf(dir, sizeof dir, "%s/%s", o->out, subs[i]);
    s = ky_mkdirs(dir);
  }
  if (s != KY_OK) { ky_infer_list_free(ids, paths, n); return s; }
  ky_rle_writer wr;
  int parts = o->shard_size > 1;
  if (parts) snprintf(dir, sizeof dir, "%s/submission.csv.rank%d", o->out, o->shard_rank);
  else snprintf(dir, sizeof dir, "%s/submission.csv", o->out);
  if ((s = ky_rle_writer_open(&wr, dir, 0)) != KY_OK) { ky_infer_list_free(ids, paths, n); return s; }
  if (r) memset(r, 0, sizeof *r);
  /* The images this process predicts: the kept ones, then this rank's contiguous part of them. */
  int n_kept = 0, lo = 0, hi;
  for (int i = 0; i < n; i++) {
    int keep = !o->only;
    for (int k = 0; o->only && k < o->n_only; k++) keep |= !strcmp(o->only[k], ids[i]);
    n_kept += keep;
  }
  hi = n_kept;
  if (parts) ky_dist_shard(&lo, &hi, n_kept, o->shard_rank, o->shard_size);
  int kept_i = -1;
  int batch = 2 * ky_ctx_threads(ctx);
  infer_item *items = calloc((size_t)batch, sizeof *items);
  if (!items) s = ky_error(KY_ERR_NOMEM, "infer: out of memory");
  for (int i = 0; i < n && s == KY_OK;) {
    int g = 0;
    for (; i < n && g < batch; i++) {
      if (o->only) {
        int keep = 0;
        for (int k = 0; k < o->n_only; k++) keep |= !strcmp(o->only[k], ids[i]);
        if (!keep) continue;
      }
      kept_i++;
      if (kept_i < lo || kept_i >= hi) continue;
      infer_item *it = &items[g++];
      it->idx = i;
      ky_status si = item_maps(ctx, p, o, it, ids[i], paths[i]);
      if (si != KY_OK) {
        item_fail(it, si);
        break; /* a one-thread run stops here: later images are not touched */
      }
    }
    segment_job sj = {items, o};
    (void)ky_pool_run(ctx->pool, (size_t)g, segment_chunk, &sj);
    for (int k = 0; k < g; k++) {
      infer_item *it = &items[k];
      if (s == KY_OK) {
        s = it->s != KY_OK ? ky_error(it->s, "%s", it->err) : item_emit(o, it, ids[it->idx], &wr);
        if (s != KY_OK) s = ky_error_context(s, "image %s: ", ids[it->idx]);
        else if (r) { r->n_images++; r->n_instances += it->n_inst; }
      }
      item_free(it);
    }
  }
  free(items);
  if (s == KY_OK) s = ky_rle_writer_commit(&wr);
  else ky_rle_writer_abort(&wr);
  ky_infer_list_free(ids, paths, n);
  return s;
}

/* Folder inference (see pipeline/infer.h). */
#include "pipeline/infer.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fileio.h"
#include "core/image.h"
#include "data/dsb.h"
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
  snprintf(dir, sizeof dir, "%s/submission.csv", o->out);
  if ((s = ky_rle_writer_open(&wr, dir, 0)) != KY_OK) { ky_infer_list_free(ids, paths, n); return s; }
  if (r) memset(r, 0, sizeof *r);
  for (int i = 0; i < n && s == KY_OK; i++) {
    if (o->only) {
      int keep = 0;
      for (int k = 0; k < o->n_only; k++) keep |= !strcmp(o->only[k], ids[i]);
      if (!keep) continue;
    }
    uint8_t *rgb = NULL, *B = NULL, *S = NULL, *E = NULL;
    float *pb = NULL, *psep = NULL, *pf = NULL;
    uint16_t *lab = NULL;
    int32_t *lab32 = NULL;
    int h, w, n_inst = 0;
    if ((s = ky_dsb_read_rgb(&rgb, &h, &w, paths[i])) != KY_OK) goto next;
    size_t np = (size_t)h * w;
    pb = malloc(np * sizeof(float)); psep = malloc(np * sizeof(float)); pf = malloc(np * sizeof(float));
    B = malloc(np); S = malloc(np); E = malloc(np);
    lab = malloc(np * sizeof *lab); lab32 = malloc(np * sizeof *lab32);
    if (!pb || !psep || !pf || !B || !S || !E || !lab || !lab32) { s = ky_error(KY_ERR_NOMEM, "infer: out of memory"); goto next; }
    if ((s = ky_predict_probs(ctx, p, rgb, h, w, pb, psep, pf)) != KY_OK) goto next;
    ky_probs_to_u8(B, pb, (int64_t)np);
    ky_probs_to_u8(S, psep, (int64_t)np);
    ky_probs_to_u8(E, pf, (int64_t)np);
    snprintf(dir, sizeof dir, "%s/prob/%s_body.png", o->out, ids[i]);
    if ((s = ky_png_save_u8(dir, B, w, h, 1)) != KY_OK) goto next;
    snprintf(dir, sizeof dir, "%s/prob/%s_border.png", o->out, ids[i]);
    if ((s = ky_png_save_u8(dir, S, w, h, 1)) != KY_OK) goto next;
    snprintf(dir, sizeof dir, "%s/prob/%s_full.png", o->out, ids[i]);
    if ((s = ky_png_save_u8(dir, E, w, h, 1)) != KY_OK) goto next;
    if ((s = ky_pipeline_segment(lab, &n_inst, B, S, E, h, w, o->gbt, o->thr)) != KY_OK) goto next;
    snprintf(dir, sizeof dir, "%s/labels/%s.png", o->out, ids[i]);
    if ((s = ky_png_save_u16(dir, lab, w, h, 1)) != KY_OK) goto next;
    if (o->overlays) {
      snprintf(dir, sizeof dir, "%s/overlay/%s.png", o->out, ids[i]);
      if ((s = ky_plot_overlay_png(dir, rgb, lab, h, w)) != KY_OK) goto next;
    }
    for (size_t q = 0; q < np; q++) lab32[q] = lab[q];
    if ((s = ky_rle_writer_add(&wr, ids[i], lab32, h, w)) != KY_OK) goto next;
    /* An image without instances would be a DSB folder with an empty masks/ (unreadable as
     * training data), so the export leaves it out. */
    if (o->export_dsb && n_inst > 0 && (s = export_dsb(o->export_dsb, ids[i], rgb, lab, n_inst, h, w)) != KY_OK) goto next;
    if (r) { r->n_images++; r->n_instances += n_inst; }
  next:
    if (s != KY_OK) s = ky_error_context(s, "image %s: ", ids[i]);
    free(rgb); free(B); free(S); free(E); free(pb); free(psep); free(pf); free(lab); free(lab32);
  }
  if (s == KY_OK) s = ky_rle_writer_commit(&wr);
  else ky_rle_writer_abort(&wr);
  ky_infer_list_free(ids, paths, n);
  return s;
}

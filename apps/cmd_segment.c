/* `karyon segment`: probability maps -> instance label PNGs and a submission CSV, through the
 * reference post-processing (candidates, optional GBT scoring and split selection). Optionally
 * writes the 41-feature table (with IoU targets when ground truth is given) for GBT training.
 * Tested by tests/test_post_{candidates,features}.c (the library calls) and tests/test_apps_cli.c
 * (the same files at 1 and 3 threads). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apps/cli.h"
#include "pipeline/segment.h"
#include "core/fileio.h"
#include "core/image.h"
#include "core/pool.h"
#include "post/candidates.h"
#include "post/features.h"
#include "post/gbt.h"
#include "post/rle.h"
#include "post/select.h"

const char ky_cmd_segment_summary[] = "probability maps -> instance labels and submission.csv";

static void usage(void) {
  printf("usage: karyon segment --prob DIR --out DIR [--gbt MODEL] [--thr 0.3] [--features FILE [--gt DIR]]\n"
         "                      [--ref-zeroing] [--fast-watershed] [--threads N]\n"
         "  DIR holds <id>_body.png and <id>_border.png, optionally <id>_full.png (8-bit, first channel).\n"
         "  Writes <out>/<id>.png (16-bit instance labels) and <out>/submission.csv (ImageId,EncodedPixels).\n"
         "  Without --gbt every main candidate (spec 7.1) is an instance. With --gbt (a karyon-gbt ensemble)\n"
         "  candidates and split pieces are scored and selected (spec 7.6) with threshold --thr.\n"
         "  --features FILE writes image,level,parent,piece,f0..f40 (+ target when --gt DIR has <id>.png\n"
         "  ground-truth label images). --ref-zeroing reproduces the reference's in-place bbox zeroing of\n"
         "  the body map (see post/candidates.h). --fast-watershed uses the bucket-queue watershed.\n"
         "  --threads N: images one per thread [KY_THREADS, else every core]; the outputs do not depend on it.\n");
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted ids of <id>_body.png files in dir. */
static ky_status list_ids(char ***ids, int *n, const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return ky_error(KY_ERR_IO, "cannot open probability folder %s", dir);
  char **v = NULL;
  int cnt = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name);
    if (l <= 9 || strcmp(e->d_name + l - 9, "_body.png")) continue;
    if (cnt == cap) {
      cap = cap ? cap * 2 : 64;
      char **nv = realloc(v, cap * sizeof *nv);
      if (!nv) { closedir(d); for (int i = 0; i < cnt; i++) free(v[i]); free(v); return ky_error(KY_ERR_NOMEM, "no memory"); }
      v = nv;
    }
    v[cnt] = strndup(e->d_name, l - 9);
    cnt++;
  }
  closedir(d);
  if (cnt > 1) qsort(v, cnt, sizeof *v, cmp_str);   /* v is NULL when the folder had none */
  *ids = v; *n = cnt;
  return KY_OK;
}

/* Channel 0 of an 8-bit PNG into a malloc'ed plane; missing_ok: *out = NULL when absent. */
static ky_status load_map(uint8_t **out, int *h, int *w, const char *path, int missing_ok) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return missing_ok ? KY_OK : ky_error(KY_ERR_IO, "cannot open %s", path);
  fclose(f);
  ky_image im;
  KY_TRY(ky_image_load(&im, path));
  if (im.depth != 8) { ky_image_free(&im); return ky_error(KY_ERR_FORMAT, "%s is %d-bit, expected an 8-bit map", path, im.depth); }
  if (*h && (im.h != *h || im.w != *w)) {
    ky_image_free(&im);
    return ky_error(KY_ERR_SHAPE, "%s is %dx%d, expected %dx%d like the body map", path, im.w, im.h, *w, *h);
  }
  *h = im.h; *w = im.w;
  uint8_t *p = malloc((size_t)im.h * im.w);
  if (!p) { ky_image_free(&im); return ky_error(KY_ERR_NOMEM, "no memory for %s", path); }
  for (size_t i = 0; i < (size_t)im.h * im.w; i++) p[i] = ((uint8_t *)im.data)[i * im.c];
  ky_image_free(&im);
  *out = p;
  return KY_OK;
}

static ky_status load_gt(int32_t **out, const char *path, int h, int w) {
  ky_image im;
  KY_TRY(ky_image_load(&im, path));
  if (im.h != h || im.w != w) { ky_image_free(&im); return ky_error(KY_ERR_SHAPE, "%s is %dx%d, expected %dx%d", path, im.w, im.h, w, h); }
  int32_t *g = malloc((size_t)h * w * sizeof *g);
  if (!g) { ky_image_free(&im); return ky_error(KY_ERR_NOMEM, "no memory for %s", path); }
  for (size_t i = 0; i < (size_t)h * w; i++)
    g[i] = im.depth == 16 ? ((uint16_t *)im.data)[i * im.c] : ((uint8_t *)im.data)[i * im.c];
  ky_image_free(&im);
  *out = g;
  return KY_OK;
}

typedef struct {
  const char *prob, *out, *gt_dir;
  double thr;
  ky_cand_opts copts;
  ky_gbt_ensemble *gbt;
  FILE *feat;
} seg_ctx;

/* One image: candidates -> (features, scores) -> label image, on its own thread; its feature rows,
 * label PNG and submission row are written afterwards in image order (segment_emit). */
typedef struct {
  const char *id;
  int h, w, n_inst;
  ky_candidates c;
  ky_features f;
  double *y;
  uint16_t *lab;
  ky_status s;
  char err[1024];
} seg_item;

static void seg_item_free(seg_item *it) {
  free(it->y);
  free(it->lab);
  ky_post_features_free(&it->f);
  ky_post_candidates_free(&it->c);
  memset(it, 0, sizeof *it);
}

static ky_status segment_compute(const seg_ctx *sc, seg_item *it) {
  char p[4200];
  const char *id = it->id;
  int h = 0, w = 0;
  uint8_t *B = NULL, *S = NULL, *E = NULL;
  int32_t *gt = NULL;
  ky_status s;
  snprintf(p, sizeof p, "%s/%s_body.png", sc->prob, id);
  if ((s = load_map(&B, &h, &w, p, 0)) != KY_OK) goto done;
  snprintf(p, sizeof p, "%s/%s_border.png", sc->prob, id);
  if ((s = load_map(&S, &h, &w, p, 0)) != KY_OK) goto done;
  snprintf(p, sizeof p, "%s/%s_full.png", sc->prob, id);
  if ((s = load_map(&E, &h, &w, p, 1)) != KY_OK) goto done;
  if ((s = ky_post_candidates(&it->c, B, S, E, h, w, &sc->copts)) != KY_OK) goto done;
  it->h = h;
  it->w = w;
  size_t n = (size_t)h * w;
  it->lab = calloc(n, sizeof *it->lab);
  if (!it->lab) { s = ky_error(KY_ERR_NOMEM, "no memory for %dx%d labels", w, h); goto done; }
  if (sc->gbt || sc->feat) {
    if ((s = ky_post_features(&it->f, &it->c)) != KY_OK) goto done;
  }
  if (sc->feat && sc->gt_dir) {
    snprintf(p, sizeof p, "%s/%s.png", sc->gt_dir, id);
    if ((s = load_gt(&gt, p, h, w)) != KY_OK) goto done;
    if (!(it->y = malloc((size_t)(it->f.rows ? it->f.rows : 1) * sizeof *it->y))) { s = ky_error(KY_ERR_NOMEM, "no memory"); goto done; }
    if ((s = ky_post_iou_targets(it->y, &it->c, &it->f, gt, h, w)) != KY_OK) goto done;
  }
  s = ky_pipeline_instances(it->lab, &it->n_inst, &it->c, sc->gbt ? &it->f : NULL, sc->gbt, sc->thr);
done:
  free(B); free(S); free(E); free(gt);
  return s;
}

static ky_status segment_emit(const seg_ctx *sc, const seg_item *it, ky_rle_writer *wr) {
  char p[4200];
  if (it->s != KY_OK) return ky_error(it->s, "%s", it->err);
  if (sc->feat) {
    const ky_features *f = &it->f;
    for (int r = 0; r < f->rows; r++) {
      fprintf(sc->feat, "%s,%d,%d,%d", it->id, f->meta[r].level, f->meta[r].parent, f->meta[r].piece);
      for (int q = 0; q < KY_POST_NFEAT; q++) fprintf(sc->feat, ",%.17g", f->x[(size_t)r * KY_POST_NFEAT + q]);
      if (it->y) fprintf(sc->feat, ",%.17g", it->y[r]);
      fputc('\n', sc->feat);
    }
  }
  snprintf(p, sizeof p, "%s/%s.png", sc->out, it->id);
  KY_TRY(ky_png_save_u16(p, it->lab, it->w, it->h, 1));
  size_t n = (size_t)it->h * it->w;
  int32_t *lab32 = malloc(n * sizeof *lab32);
  if (!lab32) return ky_error(KY_ERR_NOMEM, "no memory for %dx%d labels", it->w, it->h);
  for (size_t i = 0; i < n; i++) lab32[i] = it->lab[i];
  ky_status s = ky_rle_writer_add(wr, it->id, lab32, it->h, it->w);
  free(lab32);
  return s;
}

typedef struct {
  const seg_ctx *sc;
  seg_item *it;
} seg_job;

static ky_status segment_chunk(void *a, size_t i, int slot) {
  seg_job *j = a;
  seg_item *it = &j->it[i];
  it->s = segment_compute(j->sc, it);
  if (it->s != KY_OK) snprintf(it->err, sizeof it->err, "%s", ky_last_error());
  return KY_OK; /* kept per image, reported in image order */
}

int ky_cmd_segment(int argc, char **argv) {
  static const char *const known[] = {"prob", "out", "gbt", "thr", "features", "gt", "ref-zeroing!",
                                      "fast-watershed!", "threads", "help!", NULL};
  if (ky_cli_wants_help(argc, argv)) { usage(); return 0; }
  if (!ky_cli_check(argc, argv, "segment", known)) return 2;
  seg_ctx sc;
  memset(&sc, 0, sizeof sc);
  sc.prob = ky_cli_opt(argc, argv, "prob");
  sc.out = ky_cli_opt(argc, argv, "out");
  sc.gt_dir = ky_cli_opt(argc, argv, "gt");
  const char *gbt = ky_cli_opt(argc, argv, "gbt");
  const char *featp = ky_cli_opt(argc, argv, "features");
  if (!sc.prob || !sc.out) { fprintf(stderr, "karyon segment: --prob and --out are required\n"); return 2; }
  if (!ky_cli_double(argc, argv, "segment", "thr", 0, 1, 0.3, &sc.thr)) return 2;
  if (sc.gt_dir && !featp) { fprintf(stderr, "karyon segment: --gt only makes sense with --features\n"); return 2; }
  sc.copts = ky_cand_opts_default();
  sc.copts.ref_bbox_zeroing = ky_cli_flag(argc, argv, "ref-zeroing");
  sc.copts.exact_watershed = !ky_cli_flag(argc, argv, "fast-watershed");

  int threads;
  ky_status ts = ky_cli_threads(&threads, argc, argv);
  if (ts != KY_OK) return ky_cli_fail("segment", ts);
  char **ids = NULL;
  int n_ids = 0, total = 0;
  ky_pool *pool = NULL;
  seg_item *items = NULL;
  ky_gbt_ensemble ens;
  ky_atomic_file feat;
  ky_rle_writer wr;
  int feat_open = 0, wr_open = 0;
  char p[4200];
  ky_status s;
  ky_staged_dir sd;
  int staged = 0;
  const char *final_out = sc.out;
  if ((s = ky_pool_create(&pool, threads)) != KY_OK) return ky_cli_fail("segment", s);
  if ((s = list_ids(&ids, &n_ids, sc.prob)) != KY_OK) { ky_pool_free(pool); return ky_cli_fail("segment", s); }
  if (n_ids == 0) {
    free(ids);
    ky_pool_free(pool);
    s = ky_error(KY_ERR_ARG, "no <id>_body.png files in %s", sc.prob);
    return ky_cli_fail("segment", s);
  }
  if (gbt) {
    if ((s = ky_gbt_ensemble_load(&ens, gbt)) != KY_OK) goto done;
    sc.gbt = &ens;
    if (ens.n_features != KY_POST_NFEAT) {
      s = ky_error(KY_ERR_SHAPE, "%s has %d features, the candidate table has %d", gbt, ens.n_features, KY_POST_NFEAT);
      goto done;
    }
  }
  if (featp) {
    if ((s = ky_atomic_open(&feat, featp)) != KY_OK) goto done;
    feat_open = 1;
    sc.feat = feat.f;
    fprintf(sc.feat, "image,level,parent,piece");
    for (int q = 0; q < KY_POST_NFEAT; q++) fprintf(sc.feat, ",f%d", q);
    fprintf(sc.feat, sc.gt_dir ? ",target\n" : "\n");
  }
  /* Label PNGs and submission.csv go to a temporary folder, moved into OUT when all succeeded. */
  if ((s = ky_staged_open(&sd, final_out)) != KY_OK) goto done;
  staged = 1;
  sc.out = sd.tmp;
  snprintf(p, sizeof p, "%s/submission.csv", sc.out);
  if ((s = ky_rle_writer_open(&wr, p, 0)) != KY_OK) goto done;
  wr_open = 1;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int batch = 4 * threads;
  if (!(items = calloc((size_t)batch, sizeof *items))) { s = ky_error(KY_ERR_NOMEM, "no memory"); goto done; }
  for (int i = 0; i < n_ids; i += batch) {
    int g = n_ids - i < batch ? n_ids - i : batch;
    for (int k = 0; k < g; k++) items[k].id = ids[i + k];
    seg_job job = {&sc, items};
    (void)ky_pool_run(pool, (size_t)g, segment_chunk, &job);
    for (int k = 0; k < g; k++) {
      if (s == KY_OK && (s = segment_emit(&sc, &items[k], &wr)) != KY_OK) ky_error_context(s, "image %s: ", items[k].id);
      if (s == KY_OK) total += items[k].n_inst;
      seg_item_free(&items[k]);
    }
    if (s != KY_OK) goto done;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if ((s = ky_rle_writer_commit(&wr)) != KY_OK) { wr_open = 0; goto done; }
  wr_open = 0;
  staged = 0;
  if ((s = ky_staged_commit(&sd)) != KY_OK) goto done;
  if (feat_open) { feat_open = 0; if ((s = ky_atomic_commit(&feat)) != KY_OK) goto done; }
  printf("segment: %d images, %d instances, %.1f ms/image on %d thread(s) (%s)\n", n_ids, total,
         ((double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6) / n_ids, threads,
         gbt ? "gbt selection" : "level-1 candidates");
done:
  if (wr_open) ky_rle_writer_abort(&wr);
  if (feat_open) ky_atomic_abort(&feat);
  if (staged) ky_staged_abort(&sd);
  if (sc.gbt) ky_gbt_ensemble_free(&ens);
  for (int i = 0; i < n_ids; i++) free(ids[i]);
  free(ids);
  free(items);
  ky_pool_free(pool);
  return s == KY_OK ? 0 : ky_cli_fail("segment", s);
}

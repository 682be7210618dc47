/* `karyon postproc train | apply`: the second level. train: out-of-fold probability maps + ground
 * truth -> the 41-feature table -> a GBT ensemble file; apply: probability maps + that file ->
 * instance labels and a submission CSV. Tested by tests/test_pipeline_postproc.c and
 * tests/test_apps_cli.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/cli.h"
#include "core/fileio.h"
#include "core/image.h"
#include "core/pool.h"
#include "pipeline/infer.h"
#include "pipeline/postproc.h"
#include "pipeline/segment.h"
#include "post/rle.h"

const char ky_cmd_postproc_summary[] = "train (postproc train) or apply (postproc apply) the GBT candidate scorer";

static void usage(void) {
  printf("usage: karyon postproc train --prob DIR --truth DSB_DIR --out MODEL.txt [--reps 50] [--seed 1] [--threads N]\n"
         "       karyon postproc apply --prob DIR --gbt MODEL.txt --out DIR [--thr 0.3] [--threads N]\n"
         "  train: candidates + 41 features + IoU targets from out-of-fold maps (<id>_body.png, <id>_border.png,\n"
         "         optional <id>_full.png) against the masks of DSB_DIR; reps x 3-fold boosters (reference: 50).\n"
         "  apply: maps -> labels/<id>.png (16-bit) and submission.csv in DIR.\n"
         "  --threads N: images processed one per thread [KY_THREADS, else every core]; outputs do not depend on it.\n");
}

static int cmd_train(int argc, char **argv) {
  static const char *const known[] = {"prob", "truth", "out", "reps", "seed", "threads", "help!", NULL};
  if (!ky_cli_check(argc, argv, "postproc train", known)) return 2;
  const char *prob = ky_cli_opt(argc, argv, "prob"), *truth = ky_cli_opt(argc, argv, "truth"), *out = ky_cli_opt(argc, argv, "out");
  if (!prob || !truth || !out) { fprintf(stderr, "karyon postproc train: --prob, --truth and --out are required\n"); return 2; }
  /* 1000 reps x 3 folds = 3000 boosters: 20x the reference's 150, and far from any int overflow. */
  long reps;
  uint64_t seed;
  if (!ky_cli_int(argc, argv, "postproc train", "reps", 1, 1000, 50, &reps) ||
      !ky_cli_u64(argc, argv, "postproc train", "seed", 1, &seed))
    return 2;
  ky_postproc_stats st;
  int threads;
  ky_pool *pool = NULL;
  ky_status s = ky_cli_threads(&threads, argc, argv);
  if (s == KY_OK) s = ky_pool_create(&pool, threads);
  if (s == KY_OK) s = ky_postproc_train_on(pool, prob, truth, out, (int)reps, seed, &st);
  ky_pool_free(pool);
  if (s != KY_OK) return ky_cli_fail("postproc train", s);
  printf("%d images (%d without maps skipped), %ld candidate rows, mean IoU target %.4f\n", st.n_images, st.n_skipped,
         st.n_rows, st.mean_target);
  printf("wrote %ld x 3 boosters to %s\n", reps, out);
  return 0;
}

/* One image of `apply`: maps -> instances on its own thread; files are written in image order. */
typedef struct {
  const char *id;
  uint16_t *lab;
  int h, w;
  ky_status s;
  char err[1024];
} apply_item;

typedef struct {
  apply_item *it;
  const char *prob;
  const ky_gbt_ensemble *gbt;
  double thr;
} apply_job;

static ky_status apply_chunk(void *a, size_t i, int slot) {
  apply_job *j = a;
  apply_item *it = &j->it[i];
  uint8_t *B, *S, *E;
  int k;
  ky_status s = ky_postproc_read_maps(&B, &S, &E, &it->h, &it->w, j->prob, it->id);
  if (s == KY_OK) {
    it->lab = malloc((size_t)it->h * it->w * sizeof *it->lab);
    s = it->lab ? ky_pipeline_segment(it->lab, &k, B, S, E, it->h, it->w, j->gbt, j->thr)
                : ky_error(KY_ERR_NOMEM, "out of memory");
    free(B); free(S); free(E);
  }
  it->s = s;
  if (s != KY_OK) snprintf(it->err, sizeof it->err, "%s", ky_last_error());
  return KY_OK; /* kept per image, reported in image order */
}

static ky_status apply_emit(const apply_item *it, const char *out, ky_rle_writer *wr) {
  char p[4096];
  if (it->s != KY_OK) return ky_error(it->s, "%s", it->err);
  snprintf(p, sizeof p, "%s/labels/%s.png", out, it->id);
  KY_TRY(ky_png_save_u16(p, it->lab, it->w, it->h, 1));
  int32_t *l32 = malloc((size_t)it->h * it->w * sizeof *l32);
  if (!l32) return ky_error(KY_ERR_NOMEM, "out of memory");
  for (size_t q = 0; q < (size_t)it->h * it->w; q++) l32[q] = it->lab[q];
  ky_status s = ky_rle_writer_add(wr, it->id, l32, it->h, it->w);
  free(l32);
  return s;
}

static int cmd_apply(int argc, char **argv) {
  static const char *const known[] = {"prob", "gbt", "out", "thr", "threads", "help!", NULL};
  if (!ky_cli_check(argc, argv, "postproc apply", known)) return 2;
  const char *prob = ky_cli_opt(argc, argv, "prob"), *gbt_path = ky_cli_opt(argc, argv, "gbt"), *out = ky_cli_opt(argc, argv, "out");
  if (!prob || !gbt_path || !out) { fprintf(stderr, "karyon postproc apply: --prob, --gbt and --out are required\n"); return 2; }
  double thr;
  if (!ky_cli_double(argc, argv, "postproc apply", "thr", 0, 1, 0.3, &thr)) return 2;
  int threads;
  ky_status s = ky_cli_threads(&threads, argc, argv);
  if (s != KY_OK) return ky_cli_fail("postproc apply", s);
  ky_gbt_ensemble gbt;
  s = ky_gbt_ensemble_load(&gbt, gbt_path);
  if (s != KY_OK) return ky_cli_fail("postproc apply", s);
  ky_pool *pool = NULL;
  char **ids = NULL, **paths = NULL, p[4096];
  int n = 0, done = 0, n_body = 0, staged = 0, writing = 0;
  apply_item *items = NULL;
  ky_rle_writer wr;
  ky_staged_dir sd;
  /* Ids are the <id> of every <id>_body.png; none is an error before anything is written (it
   * used to replace submission.csv with a header-only file first). */
  if ((s = ky_infer_list(&ids, &paths, &n, prob)) == KY_OK) {
    for (int i = 0; i < n; i++) {
      size_t L = strlen(ids[i]);
      n_body += L >= 5 && !strcmp(ids[i] + L - 5, "_body");
    }
    if (!n_body) s = ky_error(KY_ERR_FORMAT, "no <id>_body.png maps in %s", prob);
  }
  /* Outputs go to a temporary folder, moved into OUT only when every image succeeded. */
  if (s == KY_OK) staged = (s = ky_staged_open(&sd, out)) == KY_OK;
  if (s == KY_OK) {
    snprintf(p, sizeof p, "%s/labels", sd.tmp);
    if ((s = ky_pool_create(&pool, threads)) == KY_OK && (s = ky_mkdirs(p)) == KY_OK) {
      snprintf(p, sizeof p, "%s/submission.csv", sd.tmp);
      writing = (s = ky_rle_writer_open(&wr, p, 0)) == KY_OK;
    }
  }
  if (s == KY_OK) {
    int batch = 4 * threads;
    if (!(items = calloc((size_t)batch, sizeof *items))) s = ky_error(KY_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n && s == KY_OK;) {
      int g = 0;
      for (; i < n && g < batch; i++) {
        size_t L = strlen(ids[i]);
        if (L < 5 || strcmp(ids[i] + L - 5, "_body")) continue;
        ids[i][L - 5] = 0;
        memset(&items[g], 0, sizeof items[g]);
        items[g++].id = ids[i];
      }
      apply_job job = {items, prob, &gbt, thr};
      (void)ky_pool_run(pool, (size_t)g, apply_chunk, &job);
      for (int k = 0; k < g; k++) {
        if (s == KY_OK && (s = apply_emit(&items[k], sd.tmp, &wr)) != KY_OK) s = ky_error_context(s, "%s: ", items[k].id);
        if (s == KY_OK) done++;
        free(items[k].lab);
      }
    }
  }
  if (writing) {
    if (s == KY_OK) s = ky_rle_writer_commit(&wr);
    else ky_rle_writer_abort(&wr);
  }
  if (s == KY_OK && staged) { staged = 0; s = ky_staged_commit(&sd); }
  if (staged) ky_staged_abort(&sd);
  free(items);
  ky_pool_free(pool);
  ky_infer_list_free(ids, paths, n);
  ky_gbt_ensemble_free(&gbt);
  if (s != KY_OK) return ky_cli_fail("postproc apply", s);
  printf("segmented %d images into %s/labels and %s/submission.csv\n", done, out, out);
  return 0;
}

int ky_cmd_postproc(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) { usage(); return argc < 2 ? 2 : 0; }
  if (ky_cli_wants_help(argc, argv)) { usage(); return 0; }
  if (!strcmp(argv[1], "train")) return cmd_train(argc - 1, argv + 1);
  if (!strcmp(argv[1], "apply")) return cmd_apply(argc - 1, argv + 1);
  fprintf(stderr, "karyon postproc: unknown action '%s' (train or apply)\n", argv[1]);
  return 2;
}

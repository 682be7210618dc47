/* `karyon score`: the DSB 2018 metric of predicted instances against ground truth, per image and
 * overall. Tested by tests/test_post_metric.c (the metric) and tests/test_post_rle.c (CSV files);
 * the command itself by hand on tests/fixtures/dsb_sample (see the final report). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "apps/cli.h"
#include "core/fileio.h"
#include "data/dsb.h"
#include "post/metric.h"
#include "post/rle.h"

const char ky_cmd_score_summary[] = "DSB 2018 score of predicted instances against ground truth";

static void usage(void) {
  printf("usage: karyon score --truth T --pred P [--csv out.csv]\n"
         "  T: a DSB folder (<id>/images/, <id>/masks/*.png painted in sorted order) or a solution CSV\n"
         "     (ImageId,EncodedPixels,Height,Width).\n"
         "  P: a folder of label PNGs <id>.png (8- or 16-bit, 0 = background) or a submission CSV\n"
         "     (ImageId,EncodedPixels).\n"
         "  Every truth image must have a prediction. Prints one line per image and, last,\n"
         "  'score: <mean over images>'. --csv writes ImageId,score,truth,pred rows (atomically).\n");
}

typedef struct {
  int is_csv;
  ky_rle_csv csv;
  const char *root;
} source_t;

static ky_status open_source(source_t *s, const char *path, const char *what) {
  memset(s, 0, sizeof *s);
  s->root = path;
  struct stat st;
  if (stat(path, &st) != 0) return ky_error(KY_ERR_IO, "%s %s does not exist", what, path);
  if (S_ISDIR(st.st_mode)) return KY_OK;
  s->is_csv = 1;
  ky_status r = ky_rle_csv_read(&s->csv, path);
  if (r != KY_OK) return ky_error_context(r, "%s: ", what);
  return KY_OK;
}

/* Labels of one truth image as int32. */
static ky_status truth_labels(int32_t **lab, int *h, int *w, source_t *t, const char *id, int hint_h, int hint_w) {
  if (t->is_csv) return ky_rle_csv_labels(lab, h, w, &t->csv, id, t->csv.has_size ? 0 : hint_h, t->csv.has_size ? 0 : hint_w);
  ky_dsb_sample s;
  KY_TRY(ky_dsb_load(&s, t->root, id, KY_DSB_MASKS_REQUIRED));
  *lab = malloc(sizeof **lab * (size_t)s.h * s.w);
  if (!*lab) { ky_dsb_sample_free(&s); return ky_error(KY_ERR_NOMEM, "truth %s", id); }
  for (size_t i = 0; i < (size_t)s.h * s.w; i++) (*lab)[i] = s.labels[i];
  *h = s.h;
  *w = s.w;
  ky_dsb_sample_free(&s);
  return KY_OK;
}

static ky_status pred_labels(int32_t **lab, int *h, int *w, source_t *p, const char *id, int th, int tw) {
  if (p->is_csv) {
    int found = 0;
    for (int i = 0; i < p->csv.n && !found; i++) found = !strcmp(p->csv.rows[i].image_id, id);
    if (!found) return ky_error(KY_ERR_ARG, "prediction %s has no rows for image %s", p->csv.path, id);
    return ky_rle_csv_labels(lab, h, w, &p->csv, id, th, tw);
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/%s.png", p->root, id);
  struct stat st;
  if (stat(path, &st) != 0) return ky_error(KY_ERR_IO, "prediction for image %s is missing: no file %s", id, path);
  uint16_t *u;
  KY_TRY(ky_dsb_read_labels(&u, h, w, path));
  *lab = malloc(sizeof **lab * (size_t)*h * *w);
  if (!*lab) { free(u); return ky_error(KY_ERR_NOMEM, "%s", path); }
  for (size_t i = 0; i < (size_t)*h * *w; i++) (*lab)[i] = u[i];
  free(u);
  return KY_OK;
}

/* RFC 4180: a field with a comma, quote or line break goes in quotes, its quotes doubled. */
static void csv_field(FILE *f, const char *s) {
  if (!s[strcspn(s, ",\"\r\n")]) { fputs(s, f); return; }
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"') fputc('"', f);
    fputc(*s, f);
  }
  fputc('"', f);
}

/* --csv naming an input (the same file through any path, or an existing file inside an input
 * folder) would replace it with the scores. */
static int is_input(const char *csv, const char *in) {
  struct stat sa, sb;
  if (stat(csv, &sa) != 0 || stat(in, &sb) != 0) return 0;
  if (sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino) return 1;
  if (!S_ISDIR(sb.st_mode)) return 0;
  char *rc = realpath(csv, NULL), *ri = realpath(in, NULL);
  size_t n = ri ? strlen(ri) : 0;
  int inside = rc && ri && !strncmp(rc, ri, n) && rc[n] == '/';
  free(rc);
  free(ri);
  return inside;
}

int ky_cmd_score(int argc, char **argv) {
  static const char *const known[] = {"truth", "pred", "csv", "help!", NULL};
  if (ky_cli_wants_help(argc, argv)) { usage(); return 0; }
  if (!ky_cli_check(argc, argv, "score", known)) return 2;
  const char *tp = ky_cli_opt(argc, argv, "truth"), *pp = ky_cli_opt(argc, argv, "pred"), *cp = ky_cli_opt(argc, argv, "csv");
  if (!tp || !pp) {
    fprintf(stderr, "karyon score: --truth and --pred are required (karyon score --help)\n");
    return 2;
  }
  if (cp && (is_input(cp, tp) || is_input(cp, pp))) {
    fprintf(stderr, "karyon score: --csv %s is the %s input or a file in it; choose another file for the per-image scores\n",
            cp, is_input(cp, tp) ? "--truth" : "--pred");
    return 2;
  }
  source_t T, P;
  ky_status s = open_source(&T, tp, "truth");
  if (s != KY_OK) return ky_cli_fail("score", s);
  s = open_source(&P, pp, "prediction");
  if (s != KY_OK) { ky_rle_csv_free(&T.csv); return ky_cli_fail("score", s); }

  const char **ids = NULL;
  int nids = 0;
  ky_dsb_ids dids = {0};
  if (T.is_csv) {
    s = ky_rle_csv_ids(&ids, &nids, &T.csv);
  } else {
    s = ky_dsb_list_ids(&dids, tp);
    if (s == KY_OK) { ids = (const char **)dids.ids; nids = dids.n; }
  }
  if (s == KY_OK && nids == 0) s = ky_error(KY_ERR_ARG, "truth %s holds no image", tp);
  int writing = 0;
  FILE *cf = NULL;
  ky_atomic_file af;
  if (s == KY_OK && cp) {
    s = ky_atomic_open(&af, cp);
    if (s == KY_OK) { cf = af.f; writing = 1; fputs("ImageId,score,truth,pred\n", cf); }
  }
  double sum = 0;
  int done = 0;
  for (int i = 0; i < nids && s == KY_OK; i++) {
    int32_t *g = NULL, *q = NULL;
    int gh = 0, gw = 0, ph = 0, pw = 0;
    /* A truth CSV without sizes takes the size from a PNG prediction. */
    if (T.is_csv && !T.csv.has_size) {
      if (P.is_csv) { s = ky_error(KY_ERR_ARG, "truth %s has no Height/Width columns and the prediction is a CSV: no image size for %s", tp, ids[i]); break; }
      s = pred_labels(&q, &ph, &pw, &P, ids[i], 0, 0);
      if (s == KY_OK) s = truth_labels(&g, &gh, &gw, &T, ids[i], ph, pw);
    } else {
      s = truth_labels(&g, &gh, &gw, &T, ids[i], 0, 0);
      if (s == KY_OK) s = pred_labels(&q, &ph, &pw, &P, ids[i], gh, gw);
    }
    if (s == KY_OK && (gh != ph || gw != pw))
      s = ky_error(KY_ERR_SHAPE, "image %s: truth is %dx%d (h x w), prediction is %dx%d", ids[i], gh, gw, ph, pw);
    ky_metric_result r;
    if (s == KY_OK) s = ky_metric_dsb(&r, g, q, gh, gw);
    if (s == KY_OK) {
      printf("%s  %.5f  truth %d  pred %d\n", ids[i], r.score, r.n_truth, r.n_pred);
      if (cf) {
        csv_field(cf, ids[i]);
        fprintf(cf, ",%.6f,%d,%d\n", r.score, r.n_truth, r.n_pred);
      }
      sum += r.score;
      done++;
    }
    free(g);
    free(q);
  }
  if (s == KY_OK && writing) { s = ky_atomic_commit(&af); writing = 0; }
  if (writing) ky_atomic_abort(&af);
  if (T.is_csv) free(ids);
  ky_dsb_ids_free(&dids);
  ky_rle_csv_free(&T.csv);
  ky_rle_csv_free(&P.csv);
  if (s != KY_OK) return ky_cli_fail("score", s);
  printf("images: %d\nscore: %.5f\n", done, sum / done);
  return 0;
}

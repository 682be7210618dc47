/* DSB 2018 score of one image from the sparse ground-truth x prediction overlap table.
 * Tested by tests/test_post_metric.c. */
#include "post/metric.h"

#include <stdlib.h>
#include <string.h>

static int cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

/* Maps arbitrary positive ids to 1..n (0 stays 0). ids: [npx]; dense: [npx] output. */
static ky_status compact_ids(int32_t *dense, int *n_out, const int32_t *ids, size_t npx, const char *which) {
  int32_t maxid = 0;
  for (size_t i = 0; i < npx; i++) {
    if (ids[i] < 0) return ky_error(KY_ERR_ARG, "ky_metric_dsb: %s label at pixel %zu is %d, expected >= 0", which, i, (int)ids[i]);
    if (ids[i] > maxid) maxid = ids[i];
  }
  int n = 0;
  if ((size_t)maxid <= 4 * npx + 1024) {
    int32_t *map = calloc((size_t)maxid + 1, sizeof *map);
    if (!map) return ky_error(KY_ERR_NOMEM, "ky_metric_dsb: id table for %s (max id %d)", which, (int)maxid);
    for (size_t i = 0; i < npx; i++) if (ids[i]) map[ids[i]] = 1;
    for (int32_t v = 1; v <= maxid; v++) if (map[v]) map[v] = ++n;
    for (size_t i = 0; i < npx; i++) dense[i] = map[ids[i]];
    free(map);
  } else {
    /* Huge sparse ids: binary search in the sorted distinct ids. */
    int32_t *u = malloc(npx * sizeof *u);
    if (!u) return ky_error(KY_ERR_NOMEM, "ky_metric_dsb: id list for %s", which);
    size_t m = 0;
    for (size_t i = 0; i < npx; i++) if (ids[i]) u[m++] = ids[i];
    qsort(u, m, sizeof *u, cmp_i32);
    size_t k = 0;
    for (size_t i = 0; i < m; i++) if (k == 0 || u[k - 1] != u[i]) u[k++] = u[i];
    for (size_t i = 0; i < npx; i++) {
      if (!ids[i]) { dense[i] = 0; continue; }
      size_t lo = 0, hi = k;
      while (lo < hi) { size_t mid = (lo + hi) / 2; if (u[mid] < ids[i]) lo = mid + 1; else hi = mid; }
      dense[i] = (int32_t)lo + 1;
    }
    n = (int)k;
    free(u);
  }
  *n_out = n;
  return KY_OK;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

ky_status ky_metric_dsb(ky_metric_result *out, const int32_t *gt, const int32_t *pred, int h, int w) {
  KY_CHECK_NULL(out, "out");
  KY_CHECK_NULL(gt, "gt");
  KY_CHECK_NULL(pred, "pred");
  KY_CHECK(h > 0 && w > 0, KY_ERR_ARG, "ky_metric_dsb: image is %dx%d, expected positive sizes", h, w);
  memset(out, 0, sizeof *out);
  size_t npx = (size_t)h * w;
  int32_t *g = malloc(npx * sizeof *g), *p = malloc(npx * sizeof *p);
  if (!g || !p) { free(g); free(p); return ky_error(KY_ERR_NOMEM, "ky_metric_dsb: %dx%d labels", h, w); }
  int ng = 0, np = 0;
  ky_status s = compact_ids(g, &ng, gt, npx, "truth");
  if (s == KY_OK) s = compact_ids(p, &np, pred, npx, "prediction");
  if (s != KY_OK) { free(g); free(p); return s; }
  out->n_truth = ng;
  out->n_pred = np;
  if (ng == 0 || np == 0) {
    double v = (ng == 0 && np == 0) ? 1.0 : 0.0;
    for (int k = 0; k < KY_METRIC_NTHRESH; k++) {
      out->prec[k] = v;
      out->fp[k] = np;
      out->fn[k] = ng;
    }
    out->score = v;
    free(g);
    free(p);
    return KY_OK;
  }
  int64_t *ag = calloc((size_t)ng + 1, sizeof *ag), *ap = calloc((size_t)np + 1, sizeof *ap);
  size_t nkeys = 0;
  for (size_t i = 0; i < npx; i++) nkeys += g[i] && p[i];
  uint64_t *keys = malloc((nkeys ? nkeys : 1) * sizeof *keys);
  /* Best match per instance and threshold: at t >= 0.5 each instance matches at most one other. */
  int *gmatch = calloc((size_t)(ng + 1) * KY_METRIC_NTHRESH, sizeof(int));
  int *pmatch = calloc((size_t)(np + 1) * KY_METRIC_NTHRESH, sizeof(int));
  if (!ag || !ap || !keys || !gmatch || !pmatch) {
    free(ag); free(ap); free(keys); free(gmatch); free(pmatch); free(g); free(p);
    return ky_error(KY_ERR_NOMEM, "ky_metric_dsb: overlap table (%zu pixels)", nkeys);
  }
  size_t k = 0;
  for (size_t i = 0; i < npx; i++) {
    ag[g[i]]++;
    ap[p[i]]++;
    if (g[i] && p[i]) keys[k++] = ((uint64_t)(uint32_t)g[i] << 32) | (uint32_t)p[i];
  }
  qsort(keys, nkeys, sizeof *keys, cmp_u64);
  for (size_t a = 0; a < nkeys;) {
    size_t b = a;
    while (b < nkeys && keys[b] == keys[a]) b++;
    int gi = (int)(keys[a] >> 32), pi = (int)(keys[a] & 0xffffffffu);
    int64_t inter = (int64_t)(b - a), uni = ag[gi] + ap[pi] - inter;
    for (int t = 0; t < KY_METRIC_NTHRESH; t++)
      if (20 * inter > (10 + t) * uni) {
        gmatch[gi * KY_METRIC_NTHRESH + t]++;
        pmatch[pi * KY_METRIC_NTHRESH + t]++;
      }
    a = b;
  }
  double sum = 0;
  for (int t = 0; t < KY_METRIC_NTHRESH; t++) {
    int tp = 0, fn = 0, fp = 0;
    for (int i = 1; i <= ng; i++) {
      int m = gmatch[i * KY_METRIC_NTHRESH + t];
      tp += m == 1;
      fn += m == 0;
    }
    for (int i = 1; i <= np; i++) fp += pmatch[i * KY_METRIC_NTHRESH + t] == 0;
    out->tp[t] = tp;
    out->fp[t] = fp;
    out->fn[t] = fn;
    out->prec[t] = (double)tp / (double)(tp + fp + fn);
    sum += out->prec[t];
  }
  out->score = sum / KY_METRIC_NTHRESH;
  free(ag); free(ap); free(keys); free(gmatch); free(pmatch); free(g); free(p);
  return KY_OK;
}

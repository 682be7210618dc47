/* Feature table assembly (spec section 7.3) and IoU targets (7.4). Neighbour features use a sort on
 * centroid rows and a 200-px window instead of a KD-tree (same result: distance <= r).
 * Tested by tests/test_post_features.c. */
#include "post/features.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "post/components.h"
#include "post/regionprops.h"

static const double radii[4] = {50, 100, 150, 200};

void ky_post_features_free(ky_features *f) {
  if (!f) return;
  free(f->x); free(f->meta);
  memset(f, 0, sizeof *f);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The k-th smallest of v[0..n) (0-based), reordering v: quickselect with a median-of-three pivot. */
static double select_kth(double *v, int n, int k) {
  int lo = 0, hi = n - 1;
  while (lo < hi) {
    int mid = lo + (hi - lo) / 2;
    double a = v[lo], b = v[mid], c = v[hi];
    double p = a < b ? (b < c ? b : a < c ? c : a) : (a < c ? a : b < c ? c : b);
    int i = lo, j = hi;
    while (i <= j) {   /* Hoare partition: [lo, j] <= p <= [i, hi] */
      while (v[i] < p) i++;
      while (v[j] > p) j--;
      if (i <= j) { double t = v[i]; v[i] = v[j]; v[j] = t; i++; j--; }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return v[k];
  }
  return v[k];
}

/* np.median: the middle value, or the mean of the two middle values. Reorders v. */
static double median(double *v, int n) {
  double hi = select_kth(v, n, n / 2);
  if (n % 2) return hi;
  double lo = v[0];   /* the largest of the lower half, which select_kth left below n / 2 */
  for (int i = 1; i < n / 2; i++) lo = v[i] > lo ? v[i] : lo;
  return (lo + hi) / 2.0;
}

typedef struct { int64_t area; int bbox[4]; double sr, sc, v, vv; } region_acc;

/* Area, bbox, coordinate sums and V sums of labels 1..n in lab. */
static void accumulate(region_acc *a, int n, const int32_t *lab, const uint8_t *v, int h, int w) {
  for (int i = 0; i < n; i++) {
    memset(&a[i], 0, sizeof a[i]);
    a[i].bbox[0] = h; a[i].bbox[1] = w;
  }
  for (int r = 0; r < h; r++)
    for (int x = 0; x < w; x++) {
      int32_t l = lab[(size_t)r * w + x];
      if (l <= 0 || l > n) continue;
      region_acc *q = &a[l - 1];
      q->area++; q->sr += r; q->sc += x; q->v += v[(size_t)r * w + x];
      if (r < q->bbox[0]) q->bbox[0] = r;
      if (x < q->bbox[1]) q->bbox[1] = x;
      if (r + 1 > q->bbox[2]) q->bbox[2] = r + 1;
      if (x + 1 > q->bbox[3]) q->bbox[3] = x + 1;
    }
}

/* Shape properties of label l of lab from a bbox crop with a 1-px margin. */
static ky_status shape(ky_regionprops *pr, const int32_t *lab, int h, int w, int32_t l, const int *bb, uint8_t **buf,
                       size_t *cap) {
  if (bb[2] <= bb[0] || bb[3] <= bb[1])   /* its bbox is still accumulate's empty one */
    return ky_error(KY_ERR_STATE, "features: region %d has no pixels (labels must be 1..n, each present)", l);
  int ch = bb[2] - bb[0] + 2, cw = bb[3] - bb[1] + 2;
  size_t need = (size_t)ch * cw;
  if (!*buf || need > *cap) {
    uint8_t *b = realloc(*buf, need);
    if (!b) return ky_error(KY_ERR_NOMEM, "features: no memory for a %dx%d crop", ch, cw);
    *buf = b; *cap = need;
  }
  memset(*buf, 0, need);
  for (int r = bb[0]; r < bb[2]; r++)
    for (int x = bb[1]; x < bb[3]; x++)
      (*buf)[(size_t)(r - bb[0] + 1) * cw + (x - bb[1] + 1)] = lab[(size_t)r * w + x] == l;
  ky_status s = ky_post_regionprops(pr, *buf, ch, cw, bb[0] - 1, bb[1] - 1);
  if (s != KY_OK) return ky_error_context(s, "features: region %d: ", l);
  return KY_OK;
}

/* Features 0..24 shared by main rows and pieces (1 and the V statistics are filled by callers). */
static void common(double *f, const ky_regionprops *pr, int64_t area, const int *bb, const ky_candidates *c,
                   double med) {
  f[0] = (double)area;
  f[2] = pr->contour_convex ? 1.0 : 0.0;
  f[3] = pr->rect_short; f[4] = pr->rect_long;
  f[5] = pr->rect_long > 0 ? pr->rect_short / pr->rect_long : 0.0;
  f[6] = pr->rect_angle;
  f[7] = pr->convex_area; f[8] = pr->solidity; f[9] = pr->eccentricity; f[10] = pr->extent;
  f[11] = pr->perimeter; f[12] = pr->major_axis_length; f[13] = pr->minor_axis_length;
  f[14] = pr->minor_axis_length > 0 ? pr->minor_axis_length / pr->major_axis_length : 0.0;
  f[17] = pr->euler_number; f[18] = pr->equivalent_diameter;
  f[19] = pr->perimeter * pr->perimeter / (4.0 * (double)area * M_PI);
  f[20] = c->mean_pred;
  f[21] = (bb[0] <= 1 || bb[1] <= 1 || bb[2] >= c->h - 1 || bb[3] >= c->w - 1) ? 1.0 : 0.0;
  f[22] = c->n;
  f[23] = med;
  f[24] = (double)area / med;
}

typedef struct { double d2; int j; } nb_item;
typedef struct { double r; int i; } row_key;
static int cmp_row(const void *a, const void *b) { return cmp_double(&((const row_key *)a)->r, &((const row_key *)b)->r); }

/* Features 25..36 of main rows: neighbours (self included) within each radius of the centroid. */
static ky_status neighbours(double *x, const region_acc *a, int n, double med) {
  size_t cnt = n > 0 ? (size_t)n : 1;
  row_key *order = malloc(cnt * sizeof *order);
  nb_item *nb = malloc(cnt * sizeof *nb);
  double *ar = malloc(cnt * sizeof *ar);
  if (!order || !nb || !ar) { free(order); free(nb); free(ar); return ky_error(KY_ERR_NOMEM, "features: no memory for neighbours"); }
  for (int i = 0; i < n; i++) { order[i].r = a[i].sr / (double)a[i].area; order[i].i = i; }
  qsort(order, n, sizeof *order, cmp_row);
  int lo = 0;
  for (int oi = 0; oi < n; oi++) {
    int i = order[oi].i;
    double ri = order[oi].r, ci = a[i].sc / (double)a[i].area;
    while (order[lo].r < ri - radii[3]) lo++;
    int k = 0;
    for (int oj = lo; oj < n && order[oj].r <= ri + radii[3]; oj++) {
      int j = order[oj].i;
      double dr = order[oj].r - ri, dc = a[j].sc / (double)a[j].area - ci, d2 = dr * dr + dc * dc;
      if (d2 <= radii[3] * radii[3]) { nb[k].d2 = d2; nb[k].j = j; k++; }
    }
    double *f = x + (size_t)i * KY_POST_NFEAT;
    for (int q = 0; q < 4; q++) {
      int m = 0;
      for (int t = 0; t < k; t++)
        if (nb[t].d2 <= radii[q] * radii[q]) ar[m++] = (double)a[nb[t].j].area;
      double ma = m > 0 ? median(ar, m) : med;
      f[25 + 3 * q] = m;
      f[26 + 3 * q] = ma;
      f[27 + 3 * q] = (double)a[i].area / ma;
    }
  }
  free(order); free(nb); free(ar);
  return KY_OK;
}

ky_status ky_post_features(ky_features *f, const ky_candidates *c) {
  KY_CHECK_NULL(f, "f"); KY_CHECK_NULL(c, "c");
  KY_CHECK(c->labels && c->v2 && c->h > 0 && c->w > 0 && c->n >= 0, KY_ERR_STATE, "%s: candidates are not computed", __func__);
  for (int j = 0; j < KY_POST_LEVELS; j++)
    KY_CHECK(c->n_pieces[j] >= 0, KY_ERR_STATE, "%s: level %d has %d pieces", __func__, j, c->n_pieces[j]);
  memset(f, 0, sizeof *f);
  int n = c->n, h = c->h, w = c->w;
  f->rows = n;
  for (int j = 0; j < KY_POST_LEVELS; j++) { f->offset[j + 1] = f->rows; f->rows += c->n_pieces[j]; }
  int maxn = n;
  for (int j = 0; j < KY_POST_LEVELS; j++) if (c->n_pieces[j] > maxn) maxn = c->n_pieces[j];
  f->x = calloc((size_t)(f->rows ? f->rows : 1) * KY_POST_NFEAT, sizeof *f->x);
  f->meta = calloc((size_t)(f->rows ? f->rows : 1), sizeof *f->meta);
  region_acc *acc = malloc((size_t)(maxn ? maxn : 1) * sizeof *acc);
  /* calloc: filled below before median reads it, but the analyser cannot relate n / 2 to n. */
  double *tmp = calloc((size_t)(n ? n : 1), sizeof *tmp);
  uint8_t *buf = NULL; size_t cap = 0;
  ky_status s = KY_OK;
  if (!f->x || !f->meta || !acc || !tmp) { s = ky_error(KY_ERR_NOMEM, "%s: no memory for %d rows", __func__, f->rows); goto done; }

  accumulate(acc, n, c->labels, c->v2, h, w);
  for (int i = 0; i < n; i++) tmp[i] = (double)acc[i].area;
  double med = n ? median(tmp, n) : 0.0;
  for (int i = 0; i < n; i++) {
    ky_regionprops pr;
    if ((s = shape(&pr, c->labels, h, w, i + 1, acc[i].bbox, &buf, &cap)) != KY_OK) goto done;
    double *x = f->x + (size_t)i * KY_POST_NFEAT;
    common(x, &pr, acc[i].area, acc[i].bbox, c, med);
    x[1] = 0;
    x[15] = c->v_mean[i]; x[16] = c->v_std[i];
    x[37] = c->bst_j[i]; x[38] = c->max_regs[i]; x[39] = 1; x[40] = 0;
    f->meta[i].level = 0; f->meta[i].parent = i; f->meta[i].piece = -1;
  }
  if ((s = neighbours(f->x, acc, n, med)) != KY_OK) goto done;

  for (int j = 0; j < KY_POST_LEVELS; j++) {
    int np = c->n_pieces[j];
    accumulate(acc, np, c->lvl2[j], c->v2, h, w);
    for (int k = 0; k < np; k++) {
      int row = f->offset[j + 1] + k, par = c->piece_parent[j][k];
      const double *pf = f->x + (size_t)par * KY_POST_NFEAT;
      double *x = f->x + (size_t)row * KY_POST_NFEAT;
      ky_regionprops pr;
      if ((s = shape(&pr, c->lvl2[j], h, w, k + 1, acc[k].bbox, &buf, &cap)) != KY_OK) goto done;
      common(x, &pr, acc[k].area, acc[k].bbox, c, med);
      double area = (double)acc[k].area, mean = acc[k].v / area, ss = 0;
      const int *bb = acc[k].bbox;
      for (int r = bb[0]; r < bb[2]; r++)
        for (int q = bb[1]; q < bb[3]; q++)
          if (c->lvl2[j][(size_t)r * w + q] == k + 1) {
            double d = c->v2[(size_t)r * w + q] - mean;
            ss += d * d;
          }
      x[1] = area / pf[0];
      x[15] = mean; x[16] = sqrt(ss / area);
      for (int b = 25; b <= 34; b += 3) { x[b] = pf[b]; x[b + 1] = pf[b + 1]; x[b + 2] = area / pf[b + 1]; }
      x[37] = pf[37]; x[38] = pf[38];
      x[39] = c->piece_count[j][par]; x[40] = j + 1;
      f->meta[row].level = j + 1; f->meta[row].parent = par; f->meta[row].piece = k;
    }
  }
done:
  free(acc); free(tmp); free(buf);
  if (s != KY_OK) ky_post_features_free(f);
  return s;
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Max IoU of each label 1..n of lab against gt labels 1..g: counts of (label, gt) pairs by sorting. */
static ky_status max_iou(double *y, const int32_t *lab, int n, const int32_t *gt, int g, const int64_t *gt_area,
                         int h, int w) {
  size_t np = (size_t)h * w, k = 0;
  int64_t *pairs = malloc((np ? np : 1) * sizeof *pairs);
  int64_t *area = calloc((size_t)n + 1, sizeof *area);
  if (!pairs || !area) { free(pairs); free(area); return ky_error(KY_ERR_NOMEM, "iou targets: no memory"); }
  for (size_t i = 0; i < np; i++) {
    if (lab[i] <= 0) continue;
    area[lab[i]]++;
    if (gt[i] > 0) pairs[k++] = (int64_t)lab[i] * ((int64_t)g + 1) + gt[i];
  }
  qsort(pairs, k, sizeof *pairs, cmp64);
  for (int i = 0; i < n; i++) y[i] = 0;
  for (size_t a = 0; a < k;) {
    size_t b = a;
    while (b < k && pairs[b] == pairs[a]) b++;
    int l = (int)(pairs[a] / (g + 1)), t = (int)(pairs[a] % (g + 1));
    double inter = (double)(b - a), iou = inter / ((double)area[l] + (double)gt_area[t] - inter);
    if (iou > y[l - 1]) y[l - 1] = iou;
    a = b;
  }
  for (int i = 0; i < n; i++) if (y[i] <= 0.5) y[i] = 0;
  free(pairs); free(area);
  return KY_OK;
}

ky_status ky_post_iou_targets(double *y, const ky_candidates *c, const ky_features *f, const int32_t *gt,
                              int h, int w) {
  KY_CHECK_NULL(y, "y"); KY_CHECK_NULL(c, "c"); KY_CHECK_NULL(f, "f"); KY_CHECK_NULL(gt, "gt");
  KY_CHECK(h == c->h && w == c->w, KY_ERR_SHAPE, "%s: ground truth is %dx%d, candidates are %dx%d",
           __func__, h, w, c->h, c->w);
  size_t np = (size_t)h * w;
  int32_t *g = malloc(np * sizeof *g);
  if (!g) return ky_error(KY_ERR_NOMEM, "%s: no memory for %dx%d", __func__, h, w);
  int ng = 0;
  ky_status s = ky_post_label_image(g, &ng, gt, h, w, 8);
  int64_t *ga = s == KY_OK ? malloc(((size_t)ng + 1) * sizeof *ga) : NULL;
  if (s == KY_OK && !ga) s = ky_error(KY_ERR_NOMEM, "%s: no memory for %d objects", __func__, ng);
  if (s == KY_OK) s = ky_post_label_areas(ga, g, h, w, ng);
  if (s == KY_OK) s = max_iou(y, c->labels, c->n, g, ng, ga, h, w);
  for (int j = 0; j < KY_POST_LEVELS && s == KY_OK; j++)
    s = max_iou(y + f->offset[j + 1], c->lvl2[j], c->n_pieces[j], g, ng, ga, h, w);
  free(g); free(ga);
  return s;
}

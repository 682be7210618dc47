/* Gradient-boosted regression trees: binning, leaf-wise tree growth with histogram subtraction,
 * L2 boosting with bagging / feature fraction / early stopping, and the §7.5 ensemble recipe.
 * Text model files at the end. Tested by tests/test_post_gbt.c. */
#include "post/gbt.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/rng.h"

void ky_gbt_params_default(ky_gbt_params *p) {
  if (!p) return;
  memset(p, 0, sizeof *p);
  p->num_rounds = 100;
  p->num_leaves = 31;
  p->max_depth = 0;
  p->min_data_in_leaf = 20;
  p->lambda_l2 = 0;
  p->learning_rate = 0.1;
  p->feature_fraction = 1;
  p->bagging_fraction = 1;
  p->bagging_freq = 0;
  p->early_stopping = 0;
  p->max_bins = 255;
  p->seed = 1;
  p->threads = 1;
}

void ky_gbt_free(ky_gbt_model *m) {
  if (!m) return;
  free(m->tree_node);
  free(m->tree_leaf);
  free(m->feature);
  free(m->left);
  free(m->right);
  free(m->threshold);
  free(m->leaf_value);
  free(m->nodes);
  memset(m, 0, sizeof *m);
}

static ky_status pack_nodes(ky_gbt_model *m) {
  int nn = m->n_trees ? m->tree_node[m->n_trees] : 0;
  free(m->nodes);
  m->nodes = malloc(sizeof *m->nodes * (size_t)(nn ? nn : 1));
  if (!m->nodes) return ky_error(KY_ERR_NOMEM, "ky_gbt: %d nodes", nn);
  for (int i = 0; i < nn; i++) {
    float t = (float)m->threshold[i];
    if ((double)t > m->threshold[i]) t = nextafterf(t, -INFINITY);
    m->nodes[i] = (ky_gbt_node){t, m->feature[i], {m->right[i], m->left[i]}};
  }
  return KY_OK;
}

double ky_gbt_predict_row(const ky_gbt_model *m, const float *x) {
  double s = m->base_score;
  for (int t = 0; t < m->n_trees; t++) {
    int base = m->tree_node[t], k = 0;
    if (m->tree_node[t + 1] > base) {
      const ky_gbt_node *nd = m->nodes + base;
      do {
        const ky_gbt_node *q = nd + k;
        k = q->child[x[q->feature] <= q->thr];
      } while (k >= 0);
      k = ~k;
    }
    s += m->leaf_value[m->tree_leaf[t] + k];
  }
  return s;
}

/* Rows in blocks of 8 walk each tree together: one row's walk is a chain of dependent loads, so
 * interleaving rows keeps the core busy. Sums run in the same order as ky_gbt_predict_row. */
static void predict_block(const ky_gbt_model *m, double *out, const float *x, int nb, int f) {
  double s[8];
  for (int r = 0; r < nb; r++) s[r] = m->base_score;
  for (int t = 0; t < m->n_trees; t++) {
    int base = m->tree_node[t], k[8];
    const double *lv = m->leaf_value + m->tree_leaf[t];
    if (m->tree_node[t + 1] == base) {
      for (int r = 0; r < nb; r++) s[r] += lv[0];
      continue;
    }
    const ky_gbt_node *nd = m->nodes + base;
    for (int r = 0; r < nb; r++) k[r] = 0;
    int active = nb;
    while (active) {
      active = 0;
      for (int r = 0; r < nb; r++) {
        if (k[r] < 0) continue;
        const ky_gbt_node *q = nd + k[r];
        k[r] = q->child[x[(size_t)r * f + q->feature] <= q->thr];
        active += k[r] >= 0;
      }
    }
    for (int r = 0; r < nb; r++) s[r] += lv[~k[r]];
  }
  for (int r = 0; r < nb; r++) out[r] = s[r];
}

ky_status ky_gbt_predict(const ky_gbt_model *m, double *out, const float *x, int n, int f) {
  KY_CHECK_NULL(m, "model");
  KY_CHECK_NULL(out, "out");
  KY_CHECK_NULL(x, "x");
  KY_CHECK(f == m->n_features, KY_ERR_SHAPE, "ky_gbt_predict: x has %d features, the model expects %d", f, m->n_features);
  KY_CHECK(n >= 0, KY_ERR_ARG, "ky_gbt_predict: n = %d", n);
  for (int i = 0; i < n; i += 8) predict_block(m, out + i, x + (size_t)i * f, n - i < 8 ? n - i : 8, f);
  return KY_OK;
}

/* ---- training ---- */

typedef struct { double g, c; } hbin;   /* gradient sum, row count (L2: hessian = 1 per row) */

typedef struct {
  int begin, end, depth;
  double G, C;
  int slot_node, slot_right;  /* the parent's child pointer to patch when this leaf splits (-1: root) */
  hbin *hist;                 /* [F * 256] */
  double gain;                /* best split; <= 0: not splittable */
  int feat, bin;
} leaf_t;

typedef struct {
  int n, F;
  uint8_t *bins;        /* [n, F] */
  int *nb;              /* [F] bins per feature */
  double *ub;           /* [F, 256] upper bound of each bin (the last is +inf) */
} binned_t;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Quantile bins from the training values: distinct values get their own bin when there are few;
 * otherwise bins close when the running count passes the next 1/max_bins quantile. Bin bounds lie
 * midway between neighbouring distinct values, so a value's bin is its threshold comparison. */
static ky_status make_bins(binned_t *b, const float *x, int n, int F, int max_bins) {
  b->n = n;
  b->F = F;
  b->nb = calloc((size_t)F, sizeof *b->nb);
  b->ub = malloc(sizeof *b->ub * (size_t)F * 256);
  double *v = malloc(sizeof *v * (size_t)n);
  if (!b->nb || !b->ub || !v) { free(v); return ky_error(KY_ERR_NOMEM, "ky_gbt_train: bins for %d x %d", n, F); }
  for (int f = 0; f < F; f++) {
    for (int i = 0; i < n; i++) v[i] = x[(size_t)i * F + f];
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    int K = 0;
    for (int i = 0; i < n; i++) if (K == 0 || v[i] != v[K - 1]) K++;
    double *ub = b->ub + (size_t)f * 256;
    int nb = 0;
    long long cum = 0;
    for (int i = 0; i < n;) {
      int j = i;
      while (j < n && v[j] == v[i]) j++;
      cum += j - i;
      if (j == n) break;
      if (nb < max_bins - 1 && (K <= max_bins || (double)cum >= (double)(nb + 1) * n / max_bins))
        ub[nb++] = 0.5 * (v[i] + v[j]);
      i = j;
    }
    ub[nb++] = INFINITY;
    b->nb[f] = nb;
  }
  free(v);
  return KY_OK;
}

static inline int bin_of(const binned_t *b, int f, double v) {
  const double *ub = b->ub + (size_t)f * 256;
  int lo = 0, hi = b->nb[f] - 1;
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (v <= ub[mid]) hi = mid; else lo = mid + 1;
  }
  return lo;
}

static ky_status apply_bins(uint8_t **out, const binned_t *b, const float *x, int n) {
  int F = b->F;
  uint8_t *bins = malloc((size_t)n * F + 1);
  if (!bins) return ky_error(KY_ERR_NOMEM, "ky_gbt_train: binned rows %d x %d", n, F);
  for (int i = 0; i < n; i++)
    for (int f = 0; f < F; f++) bins[(size_t)i * F + f] = (uint8_t)bin_of(b, f, x[(size_t)i * F + f]);
  *out = bins;
  return KY_OK;
}

/* A model under construction: growable node and leaf arrays. */
typedef struct {
  ky_gbt_model m;
  int node_cap, leaf_cap, tree_cap;
  int *node_bin;        /* split bin per node (for binned traversal) */
} builder_t;

static int grow(void **p, int *cap, int need, size_t elem) {
  if (need <= *cap) return 1;
  if (need < 0 || need > INT_MAX / 2) return 0;   /* the doubling below must not overflow */
  int c = *cap ? *cap : 256;
  while (c < need) c *= 2;
  void *q = realloc(*p, elem * (size_t)c);
  if (!q) return 0;
  *p = q;
  *cap = c;
  return 1;
}

static int builder_reserve(builder_t *bd, int nodes, int leaves, int trees) {
  int nc = bd->node_cap, lc = bd->leaf_cap, tc = bd->tree_cap;
  int ok = 1;
  int c;
  c = nc; ok &= grow((void **)&bd->m.feature, &c, nodes, sizeof(int32_t));
  c = nc; ok &= grow((void **)&bd->m.left, &c, nodes, sizeof(int32_t));
  c = nc; ok &= grow((void **)&bd->m.right, &c, nodes, sizeof(int32_t));
  c = nc; ok &= grow((void **)&bd->m.threshold, &c, nodes, sizeof(double));
  c = nc; ok &= grow((void **)&bd->node_bin, &c, nodes, sizeof(int));
  bd->node_cap = c;
  c = lc; ok &= grow((void **)&bd->m.leaf_value, &c, leaves, sizeof(double));
  bd->leaf_cap = c;
  c = tc; ok &= grow((void **)&bd->m.tree_node, &c, trees + 1, sizeof(int));
  c = tc; ok &= grow((void **)&bd->m.tree_leaf, &c, trees + 1, sizeof(int));
  bd->tree_cap = c;
  return ok;
}

static void find_best(leaf_t *L, const binned_t *b, const int *feats, int nfeat, const ky_gbt_params *p) {
  L->gain = 0;
  L->feat = -1;
  if (p->max_depth > 0 && L->depth >= p->max_depth) return;
  if (L->C < 2.0 * p->min_data_in_leaf) return;
  double lam = p->lambda_l2, parent = L->G * L->G / (L->C + lam);
  for (int q = 0; q < nfeat; q++) {
    int f = feats[q];
    const hbin *h = L->hist + (size_t)f * 256;
    double GL = 0, CL = 0;
    for (int k = 0; k < b->nb[f] - 1; k++) {
      GL += h[k].g;
      CL += h[k].c;
      if (CL < p->min_data_in_leaf) continue;
      double CR = L->C - CL;
      if (CR < p->min_data_in_leaf) break;
      double GR = L->G - GL;
      double gain = GL * GL / (CL + lam) + GR * GR / (CR + lam) - parent;
      if (gain > L->gain) { L->gain = gain; L->feat = f; L->bin = k; }
    }
  }
}

static void build_hist(hbin *hist, const int *rows, int begin, int end, const uint8_t *bins, int F,
                       const double *grad, const int *feats, int nfeat) {
  for (int q = 0; q < nfeat; q++) memset(hist + (size_t)feats[q] * 256, 0, sizeof(hbin) * 256);
  for (int r = begin; r < end; r++) {
    int i = rows[r];
    const uint8_t *bi = bins + (size_t)i * F;
    double g = grad[i];
    for (int q = 0; q < nfeat; q++) {
      hbin *h = hist + (size_t)feats[q] * 256 + bi[feats[q]];
      h->g += g;
      h->c += 1;
    }
  }
}

/* Leaf of a row through the newest tree, by bins. */
static inline int leaf_of(const builder_t *bd, int t, const uint8_t *bi) {
  const ky_gbt_model *m = &bd->m;
  int base = m->tree_node[t], k = 0;
  if (m->tree_node[t + 1] == base) return 0;
  do {
    int i = base + k;
    k = bi[m->feature[i]] <= bd->node_bin[i] ? m->left[i] : m->right[i];
  } while (k >= 0);
  return ~k;
}

static ky_status check_finite(const float *a, size_t n, const char *what) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(a[i])) return ky_error(KY_ERR_NUMERIC, "ky_gbt_train: %s[%zu] is %g, expected finite values", what, i, (double)a[i]);
  return KY_OK;
}

ky_status ky_gbt_train(ky_gbt_model *out, const ky_gbt_params *p, const float *x, const float *y, int n, int F,
                       const float *xv, const float *yv, int nv) {
  KY_CHECK_NULL(out, "out");
  KY_CHECK_NULL(p, "params");
  KY_CHECK_NULL(x, "x");
  KY_CHECK_NULL(y, "y");
  KY_CHECK(n > 0 && F > 0, KY_ERR_SHAPE, "ky_gbt_train: x is %d x %d, expected at least one row and feature", n, F);
  KY_CHECK(nv == 0 || (xv && yv), KY_ERR_ARG, "ky_gbt_train: %d validation rows but xv or yv is NULL", nv);
  KY_CHECK(p->num_leaves >= 2, KY_ERR_ARG, "ky_gbt_train: num_leaves = %d, expected >= 2", p->num_leaves);
  KY_CHECK(p->num_rounds >= 1, KY_ERR_ARG, "ky_gbt_train: num_rounds = %d, expected >= 1", p->num_rounds);
  KY_CHECK(p->min_data_in_leaf >= 1, KY_ERR_ARG, "ky_gbt_train: min_data_in_leaf = %d, expected >= 1", p->min_data_in_leaf);
  KY_CHECK(p->max_bins >= 2 && p->max_bins <= 255, KY_ERR_ARG, "ky_gbt_train: max_bins = %d, expected 2..255", p->max_bins);
  KY_CHECK(p->learning_rate > 0, KY_ERR_ARG, "ky_gbt_train: learning_rate = %g, expected > 0", p->learning_rate);
  KY_CHECK(p->lambda_l2 >= 0, KY_ERR_ARG, "ky_gbt_train: lambda_l2 = %g, expected >= 0", p->lambda_l2);
  KY_CHECK(p->feature_fraction > 0 && p->feature_fraction <= 1, KY_ERR_ARG, "ky_gbt_train: feature_fraction = %g, expected (0, 1]", p->feature_fraction);
  KY_CHECK(p->bagging_fraction > 0 && p->bagging_fraction <= 1, KY_ERR_ARG, "ky_gbt_train: bagging_fraction = %g, expected (0, 1]", p->bagging_fraction);
  KY_CHECK(p->bagging_freq >= 0 && p->early_stopping >= 0, KY_ERR_ARG, "ky_gbt_train: bagging_freq = %d, early_stopping = %d, expected >= 0", p->bagging_freq, p->early_stopping);
  KY_TRY(check_finite(x, (size_t)n * F, "x"));
  KY_TRY(check_finite(y, (size_t)n, "y"));
  if (nv > 0) {
    KY_TRY(check_finite(xv, (size_t)nv * F, "x_valid"));
    KY_TRY(check_finite(yv, (size_t)nv, "y_valid"));
  }
  memset(out, 0, sizeof *out);

  binned_t B = {0};
  builder_t bd = {0};
  uint8_t *vbins = NULL;
  double *grad = NULL, *pred = NULL, *vpred = NULL;
  int *rows = NULL, *tmp = NULL, *perm = NULL, *feats = NULL;
  leaf_t *leaves = NULL;
  hbin *hist_pool = NULL;
  ky_status st = make_bins(&B, x, n, F, p->max_bins);
  if (st == KY_OK) st = apply_bins(&B.bins, &B, x, n);
  if (st == KY_OK && nv > 0) st = apply_bins(&vbins, &B, xv, nv);
  int NL = p->num_leaves;
  if (st == KY_OK) {
    grad = malloc(sizeof *grad * (size_t)n);
    pred = malloc(sizeof *pred * (size_t)n);
    vpred = malloc(sizeof *vpred * (size_t)(nv + 1));
    rows = malloc(sizeof *rows * (size_t)n);
    tmp = malloc(sizeof *tmp * (size_t)(n > F ? n : F));   /* row and feature draws both use it */
    perm = malloc(sizeof *perm * (size_t)(n > F ? n : F));
    feats = malloc(sizeof *feats * (size_t)F);
    leaves = calloc((size_t)NL, sizeof *leaves);
    hist_pool = malloc(sizeof *hist_pool * (size_t)NL * F * 256);
    if (!grad || !pred || !vpred || !rows || !tmp || !perm || !feats || !leaves || !hist_pool ||
        !builder_reserve(&bd, 1024, 1024, 64))
      st = ky_error(KY_ERR_NOMEM, "ky_gbt_train: work buffers for %d rows x %d features, %d leaves", n, F, NL);
  }
  if (st != KY_OK) goto done;
  for (int l = 0; l < NL; l++) leaves[l].hist = hist_pool + (size_t)l * F * 256;

  double mean = 0;
  for (int i = 0; i < n; i++) mean += y[i];
  mean /= n;
  bd.m.base_score = mean;
  bd.m.n_features = F;
  for (int i = 0; i < n; i++) pred[i] = mean;
  for (int i = 0; i < nv; i++) vpred[i] = mean;
  bd.m.tree_node[0] = bd.m.tree_leaf[0] = 0;

  ky_rng rng = ky_rng_make(p->seed, KY_RNG_STREAM_GBT);
  int nbag = n;
  for (int i = 0; i < n; i++) rows[i] = i;
  int nfeat = (int)(p->feature_fraction * F + 0.5);
  if (nfeat < 1) nfeat = 1;
  if (nfeat > F) nfeat = F;
  double best_l2 = INFINITY;
  int best_round = 0;

  for (int it = 0; it < p->num_rounds; it++) {
    /* Rows for this round: an exact-size sample, kept in ascending order for determinism. */
    if (p->bagging_freq > 0 && p->bagging_fraction < 1 && it % p->bagging_freq == 0) {
      nbag = (int)(p->bagging_fraction * n + 0.5);
      if (nbag < 1) nbag = 1;
      for (int i = 0; i < n; i++) perm[i] = i;
      for (int i = 0; i < nbag; i++) {  /* partial Fisher-Yates */
        int j = i + (int)ky_rng_int(&rng, 0, n - i);
        int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
      }
      memset(tmp, 0, sizeof *tmp * (size_t)n);
      for (int i = 0; i < nbag; i++) tmp[perm[i]] = 1;
      int k = 0;
      for (int i = 0; i < n; i++) if (tmp[i]) rows[k++] = i;
    } else if (p->bagging_freq == 0 || p->bagging_fraction >= 1) {
      nbag = n;
      for (int i = 0; i < n; i++) rows[i] = i;
    }
    /* Features for this tree. */
    if (nfeat < F) {
      for (int f = 0; f < F; f++) perm[f] = f;
      for (int i = 0; i < nfeat; i++) {
        int j = i + (int)ky_rng_int(&rng, 0, F - i);
        int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
      }
      memset(tmp, 0, sizeof *tmp * (size_t)F);
      for (int i = 0; i < nfeat; i++) tmp[perm[i]] = 1;
      int k = 0;
      for (int f = 0; f < F; f++) if (tmp[f]) feats[k++] = f;
    } else {
      for (int f = 0; f < F; f++) feats[f] = f;
    }
    for (int i = 0; i < n; i++) grad[i] = pred[i] - y[i];

    /* Grow one tree leaf-wise. */
    int t = bd.m.n_trees, node0 = bd.m.tree_node[t], leaf0 = bd.m.tree_leaf[t];
    if (!builder_reserve(&bd, node0 + NL, leaf0 + NL, t + 1)) { st = ky_error(KY_ERR_NOMEM, "ky_gbt_train: tree %d", t); goto done; }
    int nleaves = 1, nnodes = 0;
    leaf_t *L0 = &leaves[0];
    L0->begin = 0; L0->end = nbag; L0->depth = 0; L0->slot_node = -1; L0->slot_right = 0;
    L0->G = 0; L0->C = nbag;
    for (int r = 0; r < nbag; r++) L0->G += grad[rows[r]];
    build_hist(L0->hist, rows, 0, nbag, B.bins, F, grad, feats, nfeat);
    find_best(L0, &B, feats, nfeat, p);
    while (nleaves < NL) {
      int bl = -1;
      for (int l = 0; l < nleaves; l++)
        if (leaves[l].gain > 0 && (bl < 0 || leaves[l].gain > leaves[bl].gain)) bl = l;
      if (bl < 0) break;
      leaf_t *P = &leaves[bl], *R = &leaves[nleaves];
      int f = P->feat, sb = P->bin;
      /* Stable partition of the leaf's rows: left (bin <= sb) then right. */
      int nl = 0, nr = 0;
      for (int r = P->begin; r < P->end; r++) {
        int i = rows[r];
        if (B.bins[(size_t)i * F + f] <= sb) rows[P->begin + nl++] = i;
        else tmp[nr++] = i;
      }
      memcpy(rows + P->begin + nl, tmp, sizeof *rows * (size_t)nr);
      int k = nnodes++;
      int gk = node0 + k;
      bd.m.feature[gk] = f;
      bd.m.threshold[gk] = B.ub[(size_t)f * 256 + sb];
      bd.node_bin[gk] = sb;
      bd.m.left[gk] = ~bl;
      bd.m.right[gk] = ~nleaves;
      if (P->slot_node >= 0) {
        if (P->slot_right) bd.m.right[node0 + P->slot_node] = k;
        else bd.m.left[node0 + P->slot_node] = k;
      }
      double GL = 0;
      for (int r = P->begin; r < P->begin + nl; r++) GL += grad[rows[r]];
      R->begin = P->begin + nl; R->end = P->end; R->depth = P->depth + 1;
      R->slot_node = k; R->slot_right = 1;
      R->G = P->G - GL; R->C = nr;
      P->end = P->begin + nl; P->depth++;
      P->slot_node = k; P->slot_right = 0;
      P->G = GL; P->C = nl;
      /* Histogram of the smaller child from its rows; the larger one by subtraction. */
      leaf_t *small = nl <= nr ? P : R, *large = nl <= nr ? R : P;
      if (large == R) memcpy(R->hist, P->hist, sizeof(hbin) * (size_t)F * 256);  /* P's hist is the parent's */
      hbin *parent = large->hist;
      build_hist(small->hist, rows, small->begin, small->end, B.bins, F, grad, feats, nfeat);
      for (int q = 0; q < nfeat; q++) {
        hbin *a = parent + (size_t)feats[q] * 256, *s = small->hist + (size_t)feats[q] * 256;
        for (int bb = 0; bb < 256; bb++) { a[bb].g -= s[bb].g; a[bb].c -= s[bb].c; }
      }
      nleaves++;
      find_best(P, &B, feats, nfeat, p);
      find_best(R, &B, feats, nfeat, p);
    }
    for (int l = 0; l < nleaves; l++)
      bd.m.leaf_value[leaf0 + l] = -leaves[l].G / (leaves[l].C + p->lambda_l2) * p->learning_rate;
    bd.m.n_trees = t + 1;
    bd.m.tree_node[t + 1] = node0 + nnodes;
    bd.m.tree_leaf[t + 1] = leaf0 + nleaves;
    for (int i = 0; i < n; i++) pred[i] += bd.m.leaf_value[leaf0 + leaf_of(&bd, t, B.bins + (size_t)i * F)];
    if (nv > 0) {
      double l2 = 0;
      for (int i = 0; i < nv; i++) {
        vpred[i] += bd.m.leaf_value[leaf0 + leaf_of(&bd, t, vbins + (size_t)i * F)];
        double d = vpred[i] - yv[i];
        l2 += d * d;
      }
      l2 /= nv;
      if (l2 < best_l2) { best_l2 = l2; best_round = t + 1; }
      else if (p->early_stopping > 0 && t + 1 - best_round >= p->early_stopping) break;
    }
  }
  if (nv > 0) {
    bd.m.n_trees = best_round;   /* keep the best iteration, as LightGBM's best_iteration does */
    bd.m.best_valid_l2 = best_l2;
  } else {
    bd.m.best_valid_l2 = NAN;
  }
  bd.m.best_round = bd.m.n_trees;
  st = pack_nodes(&bd.m);
  if (st != KY_OK) goto done;
  *out = bd.m;
  bd.m = (ky_gbt_model){0};
done:
  ky_gbt_free(&bd.m);
  free(bd.node_bin);
  free(B.bins); free(B.nb); free(B.ub); free(vbins);
  free(grad); free(pred); free(vpred); free(rows); free(tmp); free(perm); free(feats); free(leaves); free(hist_pool);
  return st;
}

/* ---- ensembles (§7.5) ---- */

void ky_gbt_ensemble_free(ky_gbt_ensemble *e) {
  if (!e) return;
  for (int i = 0; i < e->n; i++) ky_gbt_free(&e->boosters[i]);
  free(e->boosters);
  memset(e, 0, sizeof *e);
}

double ky_gbt_ensemble_predict_row(const ky_gbt_ensemble *e, const float *x) {
  double s = 0;
  for (int i = 0; i < e->n; i++) s += ky_gbt_predict_row(&e->boosters[i], x);
  return e->n ? s / e->n : 0;
}

ky_status ky_gbt_ensemble_predict(const ky_gbt_ensemble *e, double *out, const float *x, int n, int f) {
  KY_CHECK_NULL(e, "ensemble");
  KY_CHECK_NULL(out, "out");
  KY_CHECK_NULL(x, "x");
  KY_CHECK(e->n > 0, KY_ERR_STATE, "ky_gbt_ensemble_predict: the ensemble has no booster");
  KY_CHECK(f == e->n_features, KY_ERR_SHAPE, "ky_gbt_ensemble_predict: x has %d features, the model expects %d", f, e->n_features);
  for (int i = 0; i < n; i += 8) {
    int nb = n - i < 8 ? n - i : 8;
    double acc[8] = {0}, one[8];
    for (int b = 0; b < e->n; b++) {
      predict_block(&e->boosters[b], one, x + (size_t)i * f, nb, f);
      for (int r = 0; r < nb; r++) acc[r] += one[r];
    }
    for (int r = 0; r < nb; r++) out[i + r] = acc[r] / e->n;
  }
  return KY_OK;
}

static int cmp_int(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

/* One booster's job: which rows are held out, its hyperparameters, its result. */
typedef struct {
  const ky_gbt_params *base;
  const float *x, *y;
  const int *fold_of_row;   /* [n] for this job's repetition */
  int n, F, rep, fold;
  uint64_t seed;
  ky_gbt_model *out;
  ky_status st;
  char err[512];
} booster_job;

static void run_job(booster_job *j) {
  int n = j->n, F = j->F, nt = 0, nv = 0;
  float *xt = malloc(sizeof *xt * (size_t)n * F), *yt = malloc(sizeof *yt * (size_t)n);
  float *xv = malloc(sizeof *xv * (size_t)n * F), *yv = malloc(sizeof *yv * (size_t)n);
  if (!xt || !yt || !xv || !yv) {
    j->st = ky_error(KY_ERR_NOMEM, "ky_gbt_ensemble_train: rows for booster (rep %d, fold %d)", j->rep, j->fold);
  } else {
    for (int i = 0; i < n; i++) {
      if (j->fold_of_row[i] == j->fold) {
        memcpy(xv + (size_t)nv * F, j->x + (size_t)i * F, sizeof *xv * (size_t)F);
        yv[nv++] = j->y[i];
      } else {
        memcpy(xt + (size_t)nt * F, j->x + (size_t)i * F, sizeof *xt * (size_t)F);
        yt[nt++] = j->y[i];
      }
    }
    int code = j->rep * 1000 + j->fold;
    ky_rng hp = ky_rng_make(j->seed, KY_RNG_STREAM_GBT + ((uint64_t)(1 << 20) + (uint64_t)code) * 256);
    ky_gbt_params p = *j->base;
    p.num_leaves = (int)ky_rng_int(&hp, 6, 50);
    p.learning_rate = 0.02 + 0.10 * ky_rng_uniform_f64(&hp);
    p.feature_fraction = 0.5 + 0.5 * ky_rng_uniform_f64(&hp);
    p.bagging_fraction = 0.95;
    p.bagging_freq = 1;
    p.seed = j->seed * 1000003u + (uint64_t)code;
    j->st = ky_gbt_train(j->out, &p, xt, yt, nt, F, xv, yv, nv);
  }
  /* Error messages are per thread: keep a copy for the caller's thread. */
  if (j->st != KY_OK) snprintf(j->err, sizeof j->err, "%s", ky_last_error());
  free(xt); free(yt); free(xv); free(yv);
}

typedef struct {
  booster_job *jobs;
  int n_jobs, next;
  pthread_mutex_t lock;
} job_queue;

static void *worker(void *arg) {
  job_queue *q = arg;
  for (;;) {
    pthread_mutex_lock(&q->lock);
    int k = q->next++;
    pthread_mutex_unlock(&q->lock);
    if (k >= q->n_jobs) return NULL;
    run_job(&q->jobs[k]);
  }
}

ky_status ky_gbt_ensemble_train(ky_gbt_ensemble *out, const ky_gbt_params *base, const float *x, const float *y,
                                const int *groups, int n, int F, int reps, int folds, uint64_t seed) {
  KY_CHECK_NULL(out, "out");
  KY_CHECK_NULL(base, "base params");
  KY_CHECK_NULL(x, "x");
  KY_CHECK_NULL(y, "y");
  KY_CHECK_NULL(groups, "groups");
  KY_CHECK(n > 0 && F > 0, KY_ERR_SHAPE, "ky_gbt_ensemble_train: x is %d x %d", n, F);
  KY_CHECK(reps >= 1 && folds >= 2, KY_ERR_ARG, "ky_gbt_ensemble_train: reps = %d, folds = %d, expected >= 1 and >= 2", reps, folds);
  /* reps x folds boosters and n x reps fold indices: bounded so neither product overflows. */
  KY_CHECK(reps <= 100000 && folds <= 1000 && (long long)n * reps <= INT_MAX, KY_ERR_ARG,
           "ky_gbt_ensemble_train: reps = %d, folds = %d over %d rows is too large (reps <= 100000, folds <= 1000, "
           "rows x reps <= 2^31 - 1)", reps, folds, n);
  memset(out, 0, sizeof *out);
  int *g = malloc(sizeof *g * (size_t)n);
  if (!g) return ky_error(KY_ERR_NOMEM, "ky_gbt_ensemble_train: %d rows", n);
  memcpy(g, groups, sizeof *g * (size_t)n);
  qsort(g, (size_t)n, sizeof *g, cmp_int);
  int ng = 0;
  for (int i = 0; i < n; i++) if (ng == 0 || g[i] != g[ng - 1]) g[ng++] = g[i];
  if (ng < folds) {
    free(g);
    return ky_error(KY_ERR_ARG, "ky_gbt_ensemble_train: %d distinct groups, need at least %d for %d folds", ng, folds, folds);
  }
  int n_jobs = reps * folds;
  /* gfold: calloc, as the analyser cannot see that the folds' sizes add up to ng (every entry set). */
  int *order = malloc(sizeof *order * (size_t)ng), *gfold = calloc((size_t)ng, sizeof *gfold);
  int *fold_of_row = malloc(sizeof *fold_of_row * (size_t)n * reps);
  booster_job *jobs = calloc((size_t)n_jobs, sizeof *jobs);
  out->boosters = calloc((size_t)n_jobs, sizeof *out->boosters);
  out->n_features = F;
  ky_status st = KY_OK;
  if (!order || !gfold || !fold_of_row || !jobs || !out->boosters) {
    st = ky_error(KY_ERR_NOMEM, "ky_gbt_ensemble_train: %d rows x %d repetitions", n, reps);
    goto done;
  }
  for (int rep = 0; rep < reps; rep++) {
    /* KFold(shuffle) over groups: shuffled group order, the first ng % folds folds one larger. */
    for (int i = 0; i < ng; i++) order[i] = i;
    ky_rng split_rng = ky_rng_make(seed, KY_RNG_STREAM_GBT + ((uint64_t)(rep + 1) << 8));
    ky_rng_shuffle_int(&split_rng, order, (size_t)ng);
    for (int k = 0, pos = 0; k < folds; k++) {
      int size = ng / folds + (k < ng % folds);
      for (int j = 0; j < size; j++) gfold[order[pos + j]] = k;
      pos += size;
    }
    int *fr = fold_of_row + (size_t)rep * n;
    for (int i = 0; i < n; i++) {
      int lo = 0, hi = ng - 1;
      while (lo < hi) { int mid = (lo + hi) / 2; if (g[mid] < groups[i]) lo = mid + 1; else hi = mid; }
      fr[i] = gfold[lo];
    }
    for (int k = 0; k < folds; k++) {
      booster_job *j = &jobs[rep * folds + k];
      *j = (booster_job){base, x, y, fr, n, F, rep, k, seed, &out->boosters[rep * folds + k], KY_OK, ""};
    }
  }
  int threads = base->threads < 1 ? 1 : base->threads > n_jobs ? n_jobs : base->threads;
  job_queue q;
  q.jobs = jobs;
  q.n_jobs = n_jobs;
  q.next = 0;
  pthread_mutex_init(&q.lock, NULL);
  pthread_t *tid = malloc(sizeof *tid * (size_t)threads);
  int started = 0;
  if (tid)
    for (; started < threads - 1; started++)
      if (pthread_create(&tid[started], NULL, worker, &q) != 0) break;
  worker(&q);  /* this thread works too; it also covers everything if no thread could start */
  for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
  free(tid);
  pthread_mutex_destroy(&q.lock);
  for (int k = 0; k < n_jobs; k++)
    if (jobs[k].st != KY_OK) {
      st = ky_error(jobs[k].st, "booster %d (repetition %d, fold %d): %s", k, jobs[k].rep, jobs[k].fold, jobs[k].err);
      break;
    }
  if (st == KY_OK) out->n = n_jobs;
  else {
    for (int k = 0; k < n_jobs; k++) ky_gbt_free(&out->boosters[k]);
  }
done:
  free(g); free(order); free(gfold); free(fold_of_row); free(jobs);
  if (st != KY_OK) ky_gbt_ensemble_free(out);
  return st;
}

/* ---- text model files ---- */

static void write_booster(FILE *f, const ky_gbt_model *m, int b) {
  fprintf(f, "booster %d trees %d base_score %.17g\n", b, m->n_trees, m->base_score);
  for (int t = 0; t < m->n_trees; t++) {
    int n0 = m->tree_node[t], n1 = m->tree_node[t + 1], l0 = m->tree_leaf[t], l1 = m->tree_leaf[t + 1];
    fprintf(f, "tree %d nodes %d leaves %d\n", t, n1 - n0, l1 - l0);
    for (int k = n0; k < n1; k++)
      fprintf(f, "node %d %.17g %d %d\n", m->feature[k], m->threshold[k], m->left[k], m->right[k]);
    fputs("leaf", f);
    for (int k = l0; k < l1; k++) fprintf(f, " %.17g", m->leaf_value[k]);
    fputc('\n', f);
  }
}

ky_status ky_gbt_ensemble_save(const ky_gbt_ensemble *e, const char *path) {
  KY_CHECK_NULL(e, "ensemble");
  KY_CHECK_NULL(path, "path");
  ky_atomic_file af;
  KY_TRY(ky_atomic_open(&af, path));
  fprintf(af.f, "karyon-gbt 1\nfeatures %d\nboosters %d\n", e->n_features, e->n);
  for (int b = 0; b < e->n; b++) write_booster(af.f, &e->boosters[b], b);
  fputs("end\n", af.f);
  return ky_atomic_commit(&af);
}

ky_status ky_gbt_save(const ky_gbt_model *m, const char *path) {
  KY_CHECK_NULL(m, "model");
  ky_gbt_ensemble e = {(ky_gbt_model *)m, 1, m->n_features};
  return ky_gbt_ensemble_save(&e, path);
}

/* Line reader over the loaded text, tracking line numbers for error messages. */
typedef struct { char *p; int line; const char *path; long n_lines; } reader_t;

static char *next_line(reader_t *r) {
  if (!r->p || !*r->p) return NULL;
  char *s = r->p, *e = strchr(s, '\n');
  if (e) { *e = 0; r->p = e + 1; } else r->p = s + strlen(s);
  r->line++;
  return s;
}

/* sscanf's %d on a number that does not fit an int is undefined behaviour: refuse any whole
 * number of more than 9 digits first, so every count and index read below fits. Runs that belong
 * to a real number (a '.' or an exponent next to them) are %lf's business and may be long. */
static int long_number(const char *s) {
  for (const char *p = s; *p;) {
    if (!isdigit((unsigned char)*p)) { p++; continue; }
    const char *q = p;
    while (isdigit((unsigned char)*q)) q++;
    int real = (p > s && p[-1] == '.') || *q == '.' || *q == 'e' || *q == 'E';
    if (!real && q - p > 9) return 1;
    p = q;
  }
  return 0;
}

/* Lines left in the text: a count in a header that asks for more items than there are lines to
 * hold them is refused before anything is allocated for it. */
static long lines_left(const reader_t *r) { return r->n_lines - r->line; }

/* File content in a message: non-printable bytes as \xNN, at most 60 characters. */
#define SHOW(s) ky_printable(shown, sizeof shown, (s), 60)
#define BAD(r, ...) do { st = ky_error(KY_ERR_FORMAT, __VA_ARGS__); ky_error_context(st, "%s:%d: ", (r)->path, (r)->line); goto fail; } while (0)

static ky_status read_booster(ky_gbt_model *m, reader_t *r, int b, int F) {
  ky_status st = KY_OK;
  char shown[300];
  memset(m, 0, sizeof *m);
  m->n_features = F;
  char *s = next_line(r);
  int bi, nt, used;
  if (!s) { r->line++; BAD(r, "file ends before booster %d", b); }
  if (long_number(s)) BAD(r, "a number has more than 9 digits in \"%s\"", SHOW(s));
  if (sscanf(s, "booster %d trees %d base_score %lf%n", &bi, &nt, &m->base_score, &used) != 3 || s[used] || bi != b || nt < 0)
    BAD(r, "expected \"booster %d trees <count> base_score <value>\", got \"%s\"", b, SHOW(s));
  if (!isfinite(m->base_score)) BAD(r, "base_score is not finite");
  if (nt > lines_left(r)) BAD(r, "booster %d declares %d trees, but the file has only %ld more lines", b, nt, lines_left(r));
  m->tree_node = calloc((size_t)nt + 1, sizeof(int));
  m->tree_leaf = calloc((size_t)nt + 1, sizeof(int));
  if (!m->tree_node || !m->tree_leaf) { st = ky_error(KY_ERR_NOMEM, "%s: booster %d", r->path, b); goto fail; }
  int ncap = 0, lcap = 0;
  for (int t = 0; t < nt; t++) {
    int ti, nn, nl;
    s = next_line(r);
    if (!s) { r->line++; BAD(r, "file ends before tree %d of booster %d", t, b); }
    if (long_number(s)) BAD(r, "a number has more than 9 digits in \"%s\"", SHOW(s));
    if (sscanf(s, "tree %d nodes %d leaves %d%n", &ti, &nn, &nl, &used) != 3 || s[used] || ti != t)
      BAD(r, "expected \"tree %d nodes <n> leaves <n>\", got \"%s\"", t, SHOW(s));
    if (nn < 0 || nl != nn + 1) BAD(r, "tree %d has %d nodes and %d leaves, expected leaves = nodes + 1", t, nn, nl);
    /* Each node is a line of its own: this also bounds n0 + nn by the file's line count. */
    if (nn > lines_left(r)) BAD(r, "tree %d declares %d nodes, but the file has only %ld more lines", t, nn, lines_left(r));
    int n0 = m->tree_node[t], l0 = m->tree_leaf[t];
    if (!grow((void **)&m->feature, &(int){ncap}, n0 + nn, sizeof(int32_t)) ||
        !grow((void **)&m->left, &(int){ncap}, n0 + nn, sizeof(int32_t)) ||
        !grow((void **)&m->right, &(int){ncap}, n0 + nn, sizeof(int32_t)) ||
        !grow((void **)&m->threshold, &(int){ncap}, n0 + nn, sizeof(double)) ||
        !grow((void **)&m->leaf_value, &(int){lcap}, l0 + nl, sizeof(double))) {
      st = ky_error(KY_ERR_NOMEM, "%s: booster %d tree %d", r->path, b, t);
      goto fail;
    }
    if (n0 + nn > ncap) { int c = ncap ? ncap : 256; while (c < n0 + nn) c *= 2; ncap = c; }
    if (l0 + nl > lcap) { int c = lcap ? lcap : 256; while (c < l0 + nl) c *= 2; lcap = c; }
    for (int k = 0; k < nn; k++) {
      s = next_line(r);
      if (!s) { r->line++; BAD(r, "file ends inside tree %d of booster %d", t, b); }
      if (long_number(s)) BAD(r, "a number has more than 9 digits in \"%s\"", SHOW(s));
      int fe, le, ri;
      double th;
      if (sscanf(s, "node %d %lf %d %d%n", &fe, &th, &le, &ri, &used) != 4 || s[used])
        BAD(r, "expected \"node <feature> <threshold> <left> <right>\", got \"%s\"", SHOW(s));
      if (fe < 0 || fe >= F) BAD(r, "node feature %d, expected 0..%d", fe, F - 1);
      if (isnan(th)) BAD(r, "node threshold is NaN");
      /* Children: a later internal node (k < child < nn), or a leaf ~j with 0 <= j < nl. */
      if ((le >= 0 && (le <= k || le >= nn)) || (le < 0 && ~le >= nl) ||
          (ri >= 0 && (ri <= k || ri >= nn)) || (ri < 0 && ~ri >= nl))
        BAD(r, "node %d children %d %d out of range (nodes %d, leaves %d)", k, le, ri, nn, nl);
      m->feature[n0 + k] = fe;
      m->threshold[n0 + k] = th;
      m->left[n0 + k] = le;
      m->right[n0 + k] = ri;
    }
    s = next_line(r);
    if (!s) { r->line++; BAD(r, "file ends before the leaf values of tree %d", t); }
    if (strncmp(s, "leaf", 4)) BAD(r, "expected \"leaf <values>\", got \"%s\"", SHOW(s));
    char *q = s + 4;
    for (int k = 0; k < nl; k++) {
      char *e;
      double v = strtod(q, &e);
      if (e == q || !isfinite(v)) BAD(r, "leaf value %d of tree %d is missing or not a finite number", k + 1, t);
      m->leaf_value[l0 + k] = v;
      q = e;
    }
    while (*q == ' ') q++;
    if (*q) BAD(r, "tree %d has more than %d leaf values", t, nl);
    m->tree_node[t + 1] = n0 + nn;
    m->tree_leaf[t + 1] = l0 + nl;
    m->n_trees = t + 1;
  }
  m->best_round = nt;
  m->best_valid_l2 = NAN;
  st = pack_nodes(m);
  if (st != KY_OK) goto fail;
  return KY_OK;
fail:
  ky_gbt_free(m);
  return st;
}

ky_status ky_gbt_ensemble_load(ky_gbt_ensemble *out, const char *path) {
  KY_CHECK_NULL(out, "out");
  KY_CHECK_NULL(path, "path");
  memset(out, 0, sizeof *out);
  char *text;
  size_t len;
  KY_TRY(ky_file_read_text(path, &text, &len));
  reader_t r = {text, 0, path, 1};
  for (const char *q = text; *q; q++) r.n_lines += *q == '\n';
  reader_t *rp = &r;
  ky_status st = KY_OK;
  int F = 0, nb = 0, used = 0;
  char *s = next_line(rp);
  if (!s || strcmp(s, "karyon-gbt 1")) BAD(rp, "expected the header \"karyon-gbt 1\"");
  s = next_line(rp);
  if (!s || long_number(s) || sscanf(s, "features %d%n", &F, &used) != 1 || s[used] || F <= 0 || F > 100000)
    BAD(rp, "expected \"features <count in 1..100000>\"");
  s = next_line(rp);
  if (!s || long_number(s) || sscanf(s, "boosters %d%n", &nb, &used) != 1 || s[used] || nb <= 0)
    BAD(rp, "expected \"boosters <count > 0>\"");
  if (nb > lines_left(rp)) BAD(rp, "%d boosters declared, but the file has only %ld more lines", nb, lines_left(rp));
  out->boosters = calloc((size_t)nb, sizeof *out->boosters);
  if (!out->boosters) { st = ky_error(KY_ERR_NOMEM, "%s: %d boosters", path, nb); goto fail; }
  out->n_features = F;
  for (int b = 0; b < nb; b++) {
    st = read_booster(&out->boosters[b], rp, b, F);
    if (st != KY_OK) goto fail;
    out->n++;
  }
  s = next_line(rp);
  if (!s || strcmp(s, "end")) { if (!s) rp->line++; BAD(rp, "expected \"end\""); }
  free(text);
  return KY_OK;
fail:
  free(text);
  ky_gbt_ensemble_free(out);
  return st;
}

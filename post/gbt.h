/* Gradient-boosted regression trees (LightGBM-like): quantile histogram bins, leaf-wise growth,
 * L2 objective, bagging and feature fraction, early stopping; ensembles trained with the reference
 * recipe (§7.5); readable text model files. Deterministic for a seed, single-threaded.
 * Tested by tests/test_post_gbt.c (fixture from gen_gbt.py, compared with xgboost's RMSE). */
#ifndef KY_POST_GBT_H
#define KY_POST_GBT_H

#include <stdint.h>
#include "core/status.h"

typedef struct {
  int num_rounds;            /* boosting rounds (trees), default 100 */
  int num_leaves;            /* max leaves per tree, >= 2, default 31 */
  int max_depth;             /* <= 0: unlimited (default) */
  int min_data_in_leaf;      /* default 20 */
  double lambda_l2;          /* L2 penalty on leaf values, default 0 */
  double learning_rate;      /* default 0.1 */
  double feature_fraction;   /* share of features drawn per tree, (0, 1], default 1 */
  double bagging_fraction;   /* share of rows drawn per bagging round, (0, 1], default 1 */
  int bagging_freq;          /* redraw rows every k rounds; 0 = no bagging (default) */
  int early_stopping;        /* stop after k rounds without a better validation L2; 0 = off */
  int max_bins;              /* histogram bins per feature, 2..255, default 255 */
  uint64_t seed;             /* bagging and feature draws (core/rng stream KY_RNG_STREAM_GBT) */
  int threads;               /* ky_gbt_ensemble_train: boosters trained in parallel (default 1);
                                the ensemble is bit-identical for any count */
} ky_gbt_params;

void ky_gbt_params_default(ky_gbt_params *p);

/* One booster: trees stored as flat arrays. Internal node k of tree t is node tree_node[t] + k;
 * a child index < 0 names leaf ~child of that tree (leaf values at tree_leaf[t] + leaf). A tree
 * with no internal node is a single leaf. Rows go left when x[feature] <= threshold (NaN goes
 * right). */
/* Prediction layout: one 16-byte node; child[1] is taken when x <= thr. thr is the double
 * threshold rounded down to float, which gives the same decision for every float input. */
typedef struct { float thr; int32_t feature; int32_t child[2]; } ky_gbt_node;

typedef struct {
  int n_features, n_trees;
  double base_score;           /* mean training label (boost from average) */
  int *tree_node, *tree_leaf;  /* [n_trees + 1] offsets */
  int32_t *feature, *left, *right; /* [n_nodes] */
  double *threshold;           /* [n_nodes] */
  double *leaf_value;          /* [n_leaves], learning rate already applied */
  ky_gbt_node *nodes;          /* [n_nodes], built by train and load */
  int best_round;              /* rounds kept (early stopping truncates to the best) */
  double best_valid_l2;        /* validation mean squared error at best_round (NaN: no valid set) */
} ky_gbt_model;

/* Trains on x [n, f] (row-major, finite) and y [n]. xv [nv, f] / yv [nv] is the validation set for
 * early stopping (may be NULL with nv = 0). */
ky_status ky_gbt_train(ky_gbt_model *out, const ky_gbt_params *p, const float *x, const float *y, int n, int f,
                       const float *xv, const float *yv, int nv);
void ky_gbt_free(ky_gbt_model *m);
/* Prediction for one row x [f]. */
double ky_gbt_predict_row(const ky_gbt_model *m, const float *x);
/* Predictions for rows x [n, f] into out [n]. */
ky_status ky_gbt_predict(const ky_gbt_model *m, double *out, const float *x, int n, int f);

/* An ensemble: prediction = mean over boosters. */
typedef struct {
  ky_gbt_model *boosters;
  int n;
  int n_features;
} ky_gbt_ensemble;

/* The reference recipe (§7.5): for rep = 0..reps-1, shuffle the distinct groups (images) with
 * seed (seed, rep + 1) and split them into `folds` folds; for each fold train on the other folds and
 * early-stop on the held-out one. Each booster draws num_leaves ~ randint[6, 50),
 * learning_rate ~ U[0.02, 0.12), feature_fraction ~ U[0.5, 1) from seed (seed, rep*1000 + fold);
 * bagging 0.95 every round; `base` supplies the rest (rounds, early stopping, min_data_in_leaf...).
 * groups: [n] group id per row. Boosters are independent, so base->threads of them train at once
 * (each thread holds its own copy of a fold's rows: about 8 * n * f bytes). */
ky_status ky_gbt_ensemble_train(ky_gbt_ensemble *out, const ky_gbt_params *base, const float *x, const float *y,
                                const int *groups, int n, int f, int reps, int folds, uint64_t seed);
void ky_gbt_ensemble_free(ky_gbt_ensemble *e);
double ky_gbt_ensemble_predict_row(const ky_gbt_ensemble *e, const float *x);
ky_status ky_gbt_ensemble_predict(const ky_gbt_ensemble *e, double *out, const float *x, int n, int f);

/* Text model files: "karyon-gbt 1" header, then every booster's trees, numbers printed with 17
 * significant digits so a save -> load round trip predicts bit for bit the same. Saving is atomic;
 * loading validates every line and names the first bad one ("model.txt:12: ..."). */
ky_status ky_gbt_ensemble_save(const ky_gbt_ensemble *e, const char *path);
ky_status ky_gbt_ensemble_load(ky_gbt_ensemble *out, const char *path);
/* A single booster is saved and loaded as an ensemble of one. */
ky_status ky_gbt_save(const ky_gbt_model *m, const char *path);

#endif

/* Folds: the reference's folds.csv (columns found by header name), a deterministic fallback split,
 * train/validation lists for fold k with per-cluster oversampling and always-in-train ids.
 * Tested by tests/test_data_folds.c. */
#ifndef KY_DATA_FOLDS_H
#define KY_DATA_FOLDS_H

#include "core/status.h"

#define KY_FOLDS_K 4

typedef struct {
  char *id;       /* img_id */
  int fold;       /* 0..KY_FOLDS_K-1 */
  char *cluster;  /* "a".."f" (may be "") */
  char *source;   /* "train", "wikimedia", ... (may be "") */
  int hold_out;   /* the public csv's hold_out column (1/True): unused by the reference; 0 when absent */
} ky_fold_row;

typedef struct {
  int n;
  ky_fold_row *rows;  /* [n], in file order */
} ky_folds;

/* Reads a CSV with a header line holding at least img_id and fold (cluster and source are
 * optional: missing columns read as ""; hold_out is optional too: 0/1/False/True/empty). Fields may be double-quoted ("" escapes a quote); lines
 * may end in CRLF; blank lines are skipped. Errors name the file and line. */
ky_status ky_folds_load(ky_folds *out, const char *path);
/* Without a CSV: fold = FNV-1a 64-bit hash of the id mod KY_FOLDS_K; cluster "" and source "". */
ky_status ky_folds_fallback(ky_folds *out, const char *const *ids, int n);
void ky_folds_free(ky_folds *f);
/* Row index of id, or -1. */
int ky_folds_find(const ky_folds *f, const char *id);

/* The reference's special ids (spec section 0): the "polosa" stripe image and the four "galaxy"
 * images, matched by prefix. Always-in-train means: polosa, galaxy, or source "wikimedia". */
int ky_folds_is_polosa(const char *id);
int ky_folds_always_train(const ky_fold_row *row);

/* Oversampling factors parsed from "b:4,d:4,e:4,c:3,polosa:5": cluster names map to a repeat
 * count; the key "polosa" sets the polosa image's count (which then replaces its cluster's). */
#define KY_OVERSAMPLE_MAX 32
typedef struct {
  int n;
  char key[KY_OVERSAMPLE_MAX][16];
  int rep[KY_OVERSAMPLE_MAX];
} ky_oversample;

ky_status ky_oversample_parse(ky_oversample *out, const char *spec);  /* spec NULL or "" = none */
int ky_oversample_repeats(const ky_oversample *o, const ky_fold_row *row);

/* Lists of row indices for fold k:
 *   train: rows with fold != k, plus always-in-train rows of fold k; each repeated by `train_os`;
 *   val:   rows with fold == k, each repeated by `val_os` (NULL = once; Victor repeats validation).
 * *train and *val are malloc'ed. */
ky_status ky_folds_split(int **train, int *n_train, int **val, int *n_val, const ky_folds *f, int k,
                         const ky_oversample *train_os, const ky_oversample *val_os);

#endif

/* The 41 second-level features of spec section 7.3 for every main candidate and level-2 piece, and
 * the IoU regression targets of section 7.4. Shape features come from post/regionprops.
 * Tested by tests/test_post_features.c against tests/fixtures/gen_candidates.py. */
#ifndef KY_POST_FEATURES_H
#define KY_POST_FEATURES_H

#include <stdint.h>
#include "core/status.h"
#include "post/candidates.h"

#define KY_POST_NFEAT 41

/* Row order, as the reference concatenates them: main candidates 0..n-1, then the pieces of level 1,
 * level 2 and level 3, each in piece order. */
typedef struct {
  int level;    /* 0 = main candidate, 1..3 = split level */
  int parent;   /* main candidate index (0-based); for a main row its own index */
  int piece;    /* piece index (0-based) within its level; -1 for a main row */
} ky_feat_row;

typedef struct {
  int rows;
  int offset[KY_POST_LEVELS + 1];  /* first row of main (0) and of levels 1..3 */
  double *x;                       /* [rows, KY_POST_NFEAT] row-major */
  ky_feat_row *meta;               /* [rows] */
} ky_features;

ky_status ky_post_features(ky_features *f, const ky_candidates *c);
void ky_post_features_free(ky_features *f);

/* y: [f->rows] in row order. gt: int32 [h, w] ground-truth labels (relabelled 8-connected here,
 * same-value, so the caller's numbering does not matter). y = max IoU with any GT object, 0 when
 * that is <= 0.5. */
ky_status ky_post_iou_targets(double *y, const ky_candidates *c, const ky_features *f, const int32_t *gt,
                              int h, int w);

#endif

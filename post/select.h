/* Final instance selection of spec section 7.6 (victor/create_submissions.py): per main candidate,
 * take its split pieces when their score beats the candidate's, keep instances scoring above a
 * threshold, paint them into a uint16 label image. Tested by tests/test_post_candidates.c (hand
 * cases on a small synthetic candidate set). */
#ifndef KY_POST_SELECT_H
#define KY_POST_SELECT_H

#include <stdint.h>
#include "core/status.h"
#include "post/candidates.h"
#include "post/features.h"

/* scores: [f->rows] in feature-table row order (main rows, then level 1, 2, 3 pieces).
 * out: uint16 [h, w]; instances numbered 1.. in main-candidate order (pieces in piece order).
 * n_inst: number painted (may be NULL). For each main candidate, levels are visited in order; at a
 * level with more than one piece, the split is taken when the pieces' mean beats the best score so
 * far (then no later level is looked at) or their max does (the reference's two tests; with a single
 * split level this is "max(piece scores) > candidate score"). A taken split paints the pieces with
 * score > thr; otherwise the candidate is painted when its score > thr. */
ky_status ky_post_select(uint16_t *out, int *n_inst, const ky_candidates *c, const ky_features *f,
                         const double *scores, double thr);

#endif

/* Instance candidates of the reference post-processing (spec section 7.1 and 7.2): level-1 main
 * candidates from body / separation / extension maps by two watersheds, and the level-2 split
 * pieces at thresholds 0.6 / 0.7 / 0.8. Tested by tests/test_post_candidates.c against a Python
 * reimplementation on skimage/cv2 (tests/fixtures/gen_candidates.py). */
#ifndef KY_POST_CANDIDATES_H
#define KY_POST_CANDIDATES_H

#include <stdint.h>
#include "core/status.h"

#define KY_POST_LEVELS 3

typedef struct {
  /* 1: reproduce victor/train_classifier.py exactly, including its in-place write
   * `pred_reg[~msk_reg] = 0`: after candidate i is processed, B (and E when no extension map is
   * given, since the code then aliases E to B) is zeroed inside i's bounding box outside i. Later
   * candidates' V statistics, split maps q_i and split watersheds, and all level-2 V statistics, see
   * those zeros. 0 (default): the clean rule of the spec (q_i and V from the unmodified maps). */
  int ref_bbox_zeroing;
  /* Use the skimage-exact watershed (1, default) or the bucket-queue one (0, faster, may move a few
   * plateau pixels; see post/watershed.h). */
  int exact_watershed;
} ky_cand_opts;

ky_cand_opts ky_cand_opts_default(void);

typedef struct {
  int h, w;
  int n;                    /* main candidates (init_count) */
  int32_t *labels;          /* [h, w] main candidates 1..n, 0 = background */
  double mean_pred;         /* mean of B over pixels labelled by the first watershed (0 if none) */
  int64_t *area;            /* [n] pixels */
  int (*bbox)[4];           /* [n] min_row, min_col, max_row, max_col (exclusive) */
  double *v_mean, *v_std;   /* [n] of V = floor((E + B) / 2) inside the candidate */
  int *bst_j, *max_regs;    /* [n] split level (0 = none) and its piece count (1 when none) */
  /* Level-2 pieces; index j = 0..2 holds level j + 1. */
  int n_pieces[KY_POST_LEVELS];
  int32_t *lvl2[KY_POST_LEVELS];        /* [h, w] pieces 1..n_pieces[j] */
  int *piece_parent[KY_POST_LEVELS];    /* [n_pieces[j]] main candidate index, 0-based */
  int *first_piece[KY_POST_LEVELS];     /* [n] first piece (0-based) of candidate i at level j */
  int *piece_count[KY_POST_LEVELS];     /* [n] its number of pieces at level j (0 = none stored) */
  uint8_t *v2;              /* [h, w] V for level-2 statistics (== V unless ref_bbox_zeroing) */
} ky_candidates;

/* B, S, E: uint8 [h, w] body, separation and extension maps (0..255); E may be NULL (then the
 * extension step is skipped and V = B, as in the reference). opts may be NULL (defaults). */
ky_status ky_post_candidates(ky_candidates *c, const uint8_t *B, const uint8_t *S, const uint8_t *E,
                             int h, int w, const ky_cand_opts *opts);
void ky_post_candidates_free(ky_candidates *c);

#endif

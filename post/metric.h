/* The Kaggle DSB 2018 score (reference §8.1): mean over IoU thresholds 0.50..0.95 of
 * TP / (TP + FP + FN) between ground-truth and predicted instances of one image.
 * Tested by tests/test_post_metric.c (hand-worked cases and fixtures from gen_metric.py). */
#ifndef KY_POST_METRIC_H
#define KY_POST_METRIC_H

#include <stdint.h>
#include "core/status.h"

#define KY_METRIC_NTHRESH 10

typedef struct {
  double score;                        /* mean of prec[] */
  double prec[KY_METRIC_NTHRESH];      /* TP/(TP+FP+FN) at t = 0.50, 0.55, ..., 0.95 */
  int tp[KY_METRIC_NTHRESH], fp[KY_METRIC_NTHRESH], fn[KY_METRIC_NTHRESH];
  int n_truth, n_pred;                 /* instances (distinct labels > 0) */
} ky_metric_result;

/* gt, pred: [h, w] label maps, 0 = background, any positive id = one instance (ids need not be
 * contiguous; negative ids are an error). A match at threshold t is IoU > t, compared exactly as
 * 20 * intersection > (10 + k) * union for t = 0.5 + 0.05 k. Both images empty -> 1 at every
 * threshold; exactly one empty -> 0. Pair overlaps are counted in one pass over the pixels. */
ky_status ky_metric_dsb(ky_metric_result *out, const int32_t *gt, const int32_t *pred, int h, int w);

#endif

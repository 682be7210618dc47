/* Marker-controlled watershed with scikit-image's segmentation.watershed semantics (0.19): a
 * priority flood ordered by (elevation, push age), markers pushed first in raster order with age 0,
 * neighbours visited in skimage's order, optional mask and one-pixel watershed lines.
 * Tested by tests/test_post_watershed.c against skimage labels (tests/fixtures/watershed/). */
#ifndef KY_POST_WATERSHED_H
#define KY_POST_WATERSHED_H

#include <stdint.h>
#include "core/status.h"

/* labels: int32 [h, w]; on entry the markers (0 = none, 1..2^31-3 = basin label; markers outside the mask
 * are dropped as skimage does), on exit the basins (0 = not reached, outside the mask, or line).
 * mask: uint8 [h, w] or NULL (everywhere). connectivity: 4 (skimage connectivity=1, its default) or
 * 8 (connectivity=2). line: 1 for watershed_line=True.
 *
 * These two are exact. skimage pushes every marker pixel with age 0, so markers of equal elevation
 * tie, and the order they leave its binary heap in is decided by the heap's shape; these run a heap
 * that makes the same comparisons for as long as some marker's place in that order can still
 * change a label, then (8-bit only) hand the rest to the FIFO queues of the fast path, where every
 * key left is distinct. */
ky_status ky_post_watershed_u8(int32_t *labels, const uint8_t *elev, const uint8_t *mask, int h, int w,
                               int connectivity, int line);
/* Float elevations (finite; -0 equals +0 as in skimage's double compare). Heap throughout. */
ky_status ky_post_watershed_f32(int32_t *labels, const float *elev, const uint8_t *mask, int h, int w,
                                int connectivity, int line);

/* Ties in insertion order: 256 FIFO queues, marker pixels queued in raster order. Identical to
 * skimage whenever no two marker pixels that push neighbours share an elevation; otherwise tied
 * markers leave in raster order instead of skimage's heap order, which can move a few pixels where
 * basins meet on a plateau (834 of 1M on the bench image). About 2x faster than the exact version
 * there; see bench/bench_watershed.c. */
ky_status ky_post_watershed_u8_fast(int32_t *labels, const uint8_t *elev, const uint8_t *mask, int h, int w,
                                    int connectivity, int line);

#endif

/* Probability maps -> instances: level-1 candidates (spec 7.1) and, with a GBT ensemble, the
 * 41-feature scoring and split-or-merge selection (7.2-7.6). The one call training validation,
 * `karyon predict` and `karyon postproc apply` share.
 * Tested by tests/test_pipeline_segment.c. */
#ifndef KY_PIPELINE_SEGMENT_H
#define KY_PIPELINE_SEGMENT_H

#include <stdint.h>
#include "core/status.h"
#include "post/candidates.h"
#include "post/features.h"
#include "post/gbt.h"

/* B (body), S (separation border), E (full / extension, NULL -> B): [h, w] uint8 probabilities
 * x 255. labels: [h, w] out, 1..*n_inst. gbt NULL: every main candidate is an instance; else
 * candidates scored by the ensemble, kept above thr (the reference uses 0.3 or 0.2). */
ky_status ky_pipeline_segment(uint16_t *labels, int *n_inst, const uint8_t *B, const uint8_t *S, const uint8_t *E,
                              int h, int w, const ky_gbt_ensemble *gbt, double thr);

/* The selection step alone, for callers that keep the candidates and features (karyon segment
 * writes the feature table too): gbt NULL -> every main candidate (f may be NULL); else every row
 * of f scored by the ensemble and split-or-merge selection above thr. labels: [c->h, c->w]. */
ky_status ky_pipeline_instances(uint16_t *labels, int *n_inst, const ky_candidates *c, const ky_features *f,
                                const ky_gbt_ensemble *gbt, double thr);

#endif

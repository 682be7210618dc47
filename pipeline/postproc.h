/* The second level: out-of-fold probability maps + ground truth -> the 41-feature candidate table
 * with IoU targets -> a GBT ensemble (the reference's reps x 3-fold over images, randomised
 * hyperparameters), and its application to probability maps.
 * Tested by tests/test_pipeline_postproc.c. */
#ifndef KY_PIPELINE_POSTPROC_H
#define KY_PIPELINE_POSTPROC_H

#include <stdint.h>
#include "core/status.h"
#include "post/gbt.h"

/* prob_dir holds <id>_body.png, <id>_border.png and optionally <id>_full.png (uint8) for the ids
 * of truth_dir (a DSB-layout folder); ids without maps are skipped (counted in *n_skipped). */
typedef struct {
  int n_images, n_skipped;
  long n_rows;           /* candidate rows (main + level 2) */
  double mean_target;    /* mean IoU target */
} ky_postproc_stats;

ky_status ky_postproc_table(float **x, float **y, int **groups, ky_postproc_stats *st, const char *prob_dir,
                            const char *truth_dir);
ky_status ky_postproc_train(const char *prob_dir, const char *truth_dir, const char *model_out, int reps,
                            uint64_t seed, ky_postproc_stats *st);
/* The same for the listed ids only (ids without maps are skipped and counted); groups[r] is the
 * index in ids of the row's image. */
ky_status ky_postproc_table_ids(float **x, float **y, int **groups, ky_postproc_stats *st, const char *prob_dir,
                                const char *truth_dir, const char *const *ids, int n_ids);
/* The reference's ensemble (reps x 3-fold over images, 400 rounds, early stopping 5, bagging 0.95)
 * on a table; n_images distinct groups, at least 3. */
ky_status ky_postproc_fit(ky_gbt_ensemble *e, const float *x, const float *y, const int *groups, long n_rows,
                          int n_images, int reps, uint64_t seed);
/* The same on a given thread pool (the two above make one of KY_THREADS, else every core): images
 * run one per thread, rows join in image order, so the table and model do not depend on it. */
struct ky_pool;
ky_status ky_postproc_table_on(struct ky_pool *pool, float **x, float **y, int **groups, ky_postproc_stats *st,
                               const char *prob_dir, const char *truth_dir);
ky_status ky_postproc_table_ids_on(struct ky_pool *pool, float **x, float **y, int **groups, ky_postproc_stats *st,
                                   const char *prob_dir, const char *truth_dir, const char *const *ids, int n_ids);
ky_status ky_postproc_train_on(struct ky_pool *pool, const char *prob_dir, const char *truth_dir,
                               const char *model_out, int reps, uint64_t seed, ky_postproc_stats *st);

/* Reads the maps of `id` from prob_dir: B and S required, E may come back NULL. */
ky_status ky_postproc_read_maps(uint8_t **B, uint8_t **S, uint8_t **E, int *h, int *w, const char *prob_dir,
                                const char *id);

#endif

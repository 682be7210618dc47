/* The training job behind `karyon train`: data, folds and oversampling, the threaded loader with
 * the augmentation chain and copy-paste, the model and loss, the optimiser and schedule (encoder
 * freezing, clipping, NaN stops), per-epoch validation (loss and DSB score after level-1
 * post-processing), atomic checkpoints (every N iterations, per epoch and best), exact resume, CSV
 * logs and the loss-curve PNG. Tested by tests/test_pipeline_train.c (learning, bitwise resume,
 * config errors) on the bundled sample. */
#ifndef KY_PIPELINE_TRAIN_H
#define KY_PIPELINE_TRAIN_H

#include <stdint.h>
#include "pipeline/config.h"

typedef struct {
  int64_t step, total;     /* iterations done, planned */
  int epoch;
  float loss, parts[3];    /* parts: CE / dice body / dice border (softmax) or 0 */
  float lr, grad_norm;
  double img_per_s, eta_s;
} ky_train_progress;

typedef struct {
  int epoch;
  int64_t step;
  float train_loss;        /* mean over the epoch's iterations */
  float val_loss;          /* NaN without a validation set */
  float val_score;         /* DSB score of level-1 post-processing on the validation images */
  int best;                /* this epoch wrote best.safetensors */
} ky_train_epoch;

typedef struct {
  void (*on_step)(void *ud, const ky_train_progress *p);
  void (*on_epoch)(void *ud, const ky_train_epoch *e);
  void (*on_info)(void *ud, const char *line);   /* one-off facts: device, data sizes, resume */
  void *ud;
  int64_t stop_after;      /* tests: end the run after this many steps of THIS call, as a kill would */
} ky_train_hooks;

typedef struct {
  int64_t steps;           /* total steps done (including resumed ones) */
  float last_loss, best_val_loss, last_val_score;
  char device[16];
  double median_step_s;    /* median wall seconds per step of this call (loader wait included) */
  double compute_s;        /* mean seconds per step of this call: forward, backward, all-reduce, optimiser */
  double comm_wait_s;      /* of which blocked waiting for gradient all-reduces (data-parallel runs) */
  int stopped_together;    /* the error (a NaN loss or gradient) was seen by every rank at the same step */
} ky_train_result;

/* Runs (or, with resume, continues from <out>/last.safetensors) the training described by cfg.
 * hooks and res may be NULL. */
ky_status ky_train_run(const ky_train_config *cfg, int resume, const ky_train_hooks *hooks, ky_train_result *res);
/* The same as one rank of a data-parallel job (dist/dist.h): the rank trains on its part of every
 * global batch (cfg->batch split with ky_dist_shard), gradients are summed over the ranks in
 * buckets during the backward pass, rank 0 alone writes files and calls the hooks (stop_after
 * applies on every rank), and every rank reads the checkpoint on resume (any number of ranks). */
struct ky_dist;
ky_status ky_train_run_dist(const ky_train_config *cfg, int resume, struct ky_dist *dist, const ky_train_hooks *hooks,
                            ky_train_result *res);

#endif

/* The demo job (`karyon demo`, `make demo`): on the bundled sample of real DSB images, train a
 * model (a slim ResNet18 U-Net on the CPU, the ResNet34 U-Net on a GPU), predict the held-out fold
 * with 8-way TTA, post-process, score against the masks, and score an untrained model of the same
 * kind for comparison; overlays, curve and submission are written for people to look at.
 * Tested by tests/test_pipeline_demo.c (a shortened run: the loss falls, both scores are made). */
#ifndef KY_PIPELINE_DEMO_H
#define KY_PIPELINE_DEMO_H

#include "pipeline/train.h"

typedef struct {
  const char *sample;     /* DSB-layout folder with folds.csv */
  const char *out;        /* output folder */
  const char *device;     /* cpu | cuda | auto */
  int iters;              /* 0: the default for the device */
  int quiet;
  int threads;            /* CPU threads (0: KY_THREADS, else every core) */
} ky_demo_opts;

typedef struct {
  double score, untrained_score;  /* mean DSB score on the held-out images */
  int n_val;
  double seconds;
  char device[16];
  char model[64];
} ky_demo_result;

/* Scores predicted label PNGs (<pred_dir>/<id>.png) against the masks of truth_dir for ids. */
ky_status ky_demo_score(double *mean, const char *truth_dir, const char *pred_dir, const char *const *ids, int n);
/* The same per image: scores[i] for ids[i]. */
ky_status ky_demo_score_each(double *scores, const char *truth_dir, const char *pred_dir, const char *const *ids, int n);

ky_status ky_demo_run(const ky_demo_opts *o, const ky_train_hooks *hooks, ky_demo_result *r);

#endif

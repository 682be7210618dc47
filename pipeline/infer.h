/* Folder inference: every image of a DSB-layout folder (<id>/images/<id>.png) or of a flat folder
 * of image files -> probability PNGs, instance label PNGs, overlay PNGs, a Kaggle submission CSV,
 * and optionally a DSB-layout export of the predicted instances (pseudo-labels for `karyon train
 * --extra_data`). Tested by tests/test_pipeline_train.c (train -> infer on the bundled sample). */
#ifndef KY_PIPELINE_INFER_H
#define KY_PIPELINE_INFER_H

#include "pipeline/predict.h"
#include "post/gbt.h"

typedef struct {
  const char *images;          /* input folder */
  const char *out;             /* writes prob/, labels/, overlay/, submission.csv */
  const ky_gbt_ensemble *gbt;  /* NULL: level-1 rule */
  double thr;                  /* GBT selection threshold */
  const char *export_dsb;      /* NULL or a folder for <id>/images + <id>/masks (images with no
                                  instances are left out: they cannot be read as training data) */
  int overlays;                /* write overlay/<id>.png */
  const char *const *only;     /* NULL: every image; else only these ids */
  int n_only;
  int shard_rank, shard_size;  /* data-parallel predict (size > 1): this rank takes its contiguous
                                  part of the images (ky_dist_shard) and writes its submission rows
                                  to submission.csv.rank<R>, for ky_infer_merge_submission */
} ky_infer_opts;

typedef struct { int n_images; long n_instances; } ky_infer_result;

/* Lists image ids: DSB layout when sub-folders hold images/, else image files (*.png, *.jpg,
 * *.jpeg, *.bmp, *.tif excluded) by name without extension. paths[i] is the image file. */
ky_status ky_infer_list(char ***ids, char ***paths, int *n, const char *folder);
void ky_infer_list_free(char **ids, char **paths, int n);

ky_status ky_infer_folder(ky_ctx *ctx, const ky_predictor *p, const ky_infer_opts *o, ky_infer_result *r);
/* After every rank's ky_infer_folder: <out>/submission.csv from the ranks' parts in rank order
 * (the folder's order, as one process writes it), written atomically; the parts are removed. */
ky_status ky_infer_merge_submission(const char *out, int size);

#endif

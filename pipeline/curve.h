/* The training curve (<run>/curve.png) drawn the way TensorBoard users read one: the training loss
 * smoothed by TensorBoard's debiased moving average with the raw per-step loss faint behind it,
 * the validation loss per epoch, the validation DSB score on its own axis (right, 0 to 1), axis
 * titles, tick labels, a legend saying what each line is, and the best epoch (lowest validation
 * loss, the one best.safetensors holds) marked. Text is stb_easy_font's.
 * Tested by tests/test_pipeline_curve.c (smoothing values, axis ranges, pixel colours at known
 * positions, the CSV logs read back, errors). */
#ifndef KY_PIPELINE_CURVE_H
#define KY_PIPELINE_CURVE_H

#include <stdint.h>
#include "core/status.h"

/* Colours, RGB: what the legend shows and what the test looks for. */
#define KY_CURVE_RAW     {176, 200, 236}   /* raw training loss: the smoothed line's blue, faded */
#define KY_CURVE_SMOOTH  {31, 90, 200}     /* smoothed training loss */
#define KY_CURVE_VAL     {232, 120, 20}    /* validation loss */
#define KY_CURVE_SCORE   {30, 150, 60}     /* validation DSB score (right axis) */
#define KY_CURVE_BEST    {200, 30, 30}     /* best-epoch marker and line */

typedef struct {
  const float *train;      /* [n_train] training loss per step (non-finite values are skipped) */
  const int *train_it;     /* [n_train] its step, increasing */
  int n_train;
  const float *val_loss;   /* [n_val] validation loss per epoch (NaN: no validation) */
  const float *val_score;  /* [n_val] validation DSB score in [0, 1] (NaN: none) */
  const int *val_it;       /* [n_val] the step each epoch ended at */
  int n_val;
  int best;                /* index into the val arrays of the best epoch, or -1 */
} ky_curve_data;

/* Where things are, in pixels of a W x H image: the plot area [L, R] x [T, B] (y down), the step
 * axis from 0 to xmax, the loss axis from 0 to ymax (both rounded up to a tick), the score axis
 * 0 to 1, and each legend entry's colour swatch (x0, y0, x1, y1, drawn solid). */
typedef struct {
  int W, H, L, R, T, B;
  double xmax, ymax, xtick, ytick;
  double smooth_weight;
  int n_legend;
  int legend_swatch[5][4];
} ky_curve_layout;

/* TensorBoard's smoothing: last = w * last + (1 - w) * x[i]; out[i] = last / (1 - w^(k+1)) with k
 * the number of finite values so far (the debiasing that keeps the first values unbiased);
 * non-finite inputs are copied through and do not advance the average. w in [0, 1). */
void ky_curve_smooth(float *out, const float *x, int n, double w);
/* The weight used for n steps: 1 - 50 / n clamped to [0.6, 0.99], so that about 2 % of the run
 * is averaged (TensorBoard's slider defaults to 0.6, which leaves thousands of steps a band). */
double ky_curve_smooth_weight(int n);

ky_status ky_curve_layout_make(ky_curve_layout *lay, const ky_curve_data *d, int W, int H);
/* Data -> pixel coordinates under a layout. */
int ky_curve_x(const ky_curve_layout *lay, double step);
int ky_curve_y_loss(const ky_curve_layout *lay, double loss);
int ky_curve_y_score(const ky_curve_layout *lay, double score);

/* Draws into rgb [H, W, 3]; lay (may be NULL) receives the layout used. */
ky_status ky_curve_render(uint8_t *rgb, const ky_curve_data *d, int W, int H, ky_curve_layout *lay);
ky_status ky_curve_png(const char *path, const ky_curve_data *d, int W, int H);

/* The run's logs -> curve: steplog is log.csv (step,epoch,loss,...), eplog is epochs.csv
 * (step,epoch,train_loss,val_loss,val_score,best); the last epoch with best = 1 is marked. */
ky_status ky_curve_from_logs(const char *png_path, const char *steplog, const char *eplog, int W, int H);

#endif

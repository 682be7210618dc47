/* Pictures for people: instance contours drawn over an image, and the training loss curve.
 * Tested by tests/test_pipeline_plot.c (contour pixels, colours, curve geometry). */
#ifndef KY_PIPELINE_PLOT_H
#define KY_PIPELINE_PLOT_H

#include <stdint.h>
#include "core/status.h"

/* out = rgb with every instance's boundary pixels (a labelled pixel with a 4-neighbour of another
 * label) painted in a colour derived from its id; [h, w, 3]. */
void ky_plot_overlay(uint8_t *out, const uint8_t *rgb, const uint16_t *labels, int h, int w);
ky_status ky_plot_overlay_png(const char *path, const uint8_t *rgb, const uint16_t *labels, int h, int w);

/* Loss curve: train losses by iteration (blue line) and validation losses at epoch ends (red
 * dots, x = their iteration); y from 0 to the largest value; writes a W x H PNG. Axis labels are
 * drawn with a tiny built-in digit font. */
ky_status ky_plot_curve_png(const char *path, const float *train, const int *train_it, int n_train,
                            const float *val, const int *val_it, int n_val, int W, int H);

#endif

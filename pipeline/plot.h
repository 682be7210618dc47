/* Pictures for people: instance contours drawn over an image (the training curve is
 * pipeline/curve.h). Tested by tests/test_pipeline_plot.c (contour pixels, colours). */
#ifndef KY_PIPELINE_PLOT_H
#define KY_PIPELINE_PLOT_H

#include <stdint.h>
#include "core/status.h"

/* out = rgb with every instance's boundary pixels (a labelled pixel with a 4-neighbour of another
 * label) painted in a colour derived from its id; [h, w, 3]. */
void ky_plot_overlay(uint8_t *out, const uint8_t *rgb, const uint16_t *labels, int h, int w);
ky_status ky_plot_overlay_png(const char *path, const uint8_t *rgb, const uint16_t *labels, int h, int w);

#endif

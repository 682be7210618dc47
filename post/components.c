/* Connected components by breadth-first flood from each unvisited pixel in raster order, which
 * gives skimage's numbering. Tested by tests/test_post_components.c. */
#include "post/components.h"

#include <stdlib.h>
#include <string.h>

static ky_status check_dims(const char *fn, int h, int w, int connectivity) {
  KY_CHECK(h > 0 && w > 0, KY_ERR_SHAPE, "%s: image is %dx%d, expected positive sizes", fn, h, w);
  KY_CHECK((int64_t)h * w < INT32_MAX, KY_ERR_SHAPE, "%s: image %dx%d has too many pixels", fn, h, w);
  KY_CHECK(connectivity == 4 || connectivity == 8, KY_ERR_ARG,
           "%s: connectivity is %d, expected 4 or 8", fn, connectivity);
  return KY_OK;
}

/* Flood with a queue; `same(a, b)` decides membership. Written once for both input kinds through
 * a value array: for a binary input the value is 0/1. */
static ky_status flood_all(int32_t *out, int *count, const int32_t *val, int h, int w, int conn) {
  static const int dr[8] = {-1, 0, 0, 1, -1, -1, 1, 1}, dc[8] = {0, -1, 1, 0, -1, 1, -1, 1};
  size_t n = (size_t)h * w;
  int32_t (*queue)[2] = malloc(n * sizeof *queue);   /* (row, column): no division per pixel */
  if (!queue) return ky_error(KY_ERR_NOMEM, "label: no memory for a %dx%d queue", h, w);
  memset(out, 0, n * sizeof *out);
  int32_t next = 0;
  for (size_t p = 0; p < n; p++) {
    if (!val[p] || out[p]) continue;
    int32_t v = val[p];
    out[p] = ++next;
    size_t qh = 0, qt = 0;
    queue[qt][0] = (int32_t)(p / w); queue[qt][1] = (int32_t)(p % w); qt++;
    while (qh < qt) {
      int r = queue[qh][0], c = queue[qh][1];
      qh++;
      for (int k = 0; k < conn; k++) {
        int rr = r + dr[k], cc = c + dc[k];
        if (rr < 0 || rr >= h || cc < 0 || cc >= w) continue;
        int32_t nb = rr * w + cc;
        if (out[nb] || val[nb] != v) continue;
        out[nb] = next;
        queue[qt][0] = rr; queue[qt][1] = cc; qt++;
      }
    }
  }
  free(queue);
  *count = next;
  return KY_OK;
}

ky_status ky_post_label_binary(int32_t *out, int *count, const uint8_t *bin, int h, int w, int connectivity) {
  KY_CHECK_NULL(out, "out"); KY_CHECK_NULL(count, "count"); KY_CHECK_NULL(bin, "bin");
  KY_TRY(check_dims(__func__, h, w, connectivity));
  size_t n = (size_t)h * w;
  int32_t *val = malloc(n * sizeof *val);
  if (!val) return ky_error(KY_ERR_NOMEM, "%s: no memory for %dx%d", __func__, h, w);
  for (size_t i = 0; i < n; i++) val[i] = bin[i] != 0;
  ky_status s = flood_all(out, count, val, h, w, connectivity);
  free(val);
  return s;
}

ky_status ky_post_label_image(int32_t *out, int *count, const int32_t *lab, int h, int w, int connectivity) {
  KY_CHECK_NULL(out, "out"); KY_CHECK_NULL(count, "count"); KY_CHECK_NULL(lab, "lab");
  KY_TRY(check_dims(__func__, h, w, connectivity));
  KY_CHECK(out != lab, KY_ERR_ARG, "%s: out and lab must be different buffers", __func__);
  return flood_all(out, count, lab, h, w, connectivity);
}

ky_status ky_post_label_max(int32_t *max_label, const int32_t *lab, int h, int w) {
  KY_CHECK_NULL(max_label, "max_label"); KY_CHECK_NULL(lab, "lab");
  KY_TRY(check_dims(__func__, h, w, 4));
  int32_t m = 0;
  for (size_t i = 0; i < (size_t)h * w; i++) {
    KY_CHECK(lab[i] >= 0, KY_ERR_ARG, "%s: pixel %zu has negative label %d", __func__, i, lab[i]);
    if (lab[i] > m) m = lab[i];
  }
  *max_label = m;
  return KY_OK;
}

static ky_status check_range(const char *fn, const int32_t *lab, size_t n, int max_label) {
  KY_CHECK(max_label >= 0, KY_ERR_ARG, "%s: max_label is %d, expected >= 0", fn, max_label);
  for (size_t i = 0; i < n; i++)
    KY_CHECK(lab[i] >= 0 && lab[i] <= max_label, KY_ERR_ARG,
             "%s: pixel %zu has label %d, expected 0..%d", fn, i, lab[i], max_label);
  return KY_OK;
}

ky_status ky_post_label_areas(int64_t *area, const int32_t *lab, int h, int w, int max_label) {
  KY_CHECK_NULL(area, "area"); KY_CHECK_NULL(lab, "lab");
  KY_TRY(check_dims(__func__, h, w, 4));
  size_t n = (size_t)h * w;
  KY_TRY(check_range(__func__, lab, n, max_label));
  memset(area, 0, ((size_t)max_label + 1) * sizeof *area);
  for (size_t i = 0; i < n; i++) area[lab[i]]++;
  return KY_OK;
}

ky_status ky_post_remove_small(int32_t *lab, int h, int w, int max_label, int min_size) {
  KY_CHECK_NULL(lab, "lab");
  KY_TRY(check_dims(__func__, h, w, 4));
  size_t n = (size_t)h * w;
  int64_t *area = malloc(((size_t)max_label + 1) * sizeof *area);
  if (!area) return ky_error(KY_ERR_NOMEM, "%s: no memory for %d labels", __func__, max_label);
  ky_status s = ky_post_label_areas(area, lab, h, w, max_label);
  if (s == KY_OK)
    for (size_t i = 0; i < n; i++)
      if (lab[i] && area[lab[i]] < min_size) lab[i] = 0;
  free(area);
  return s;
}

ky_status ky_post_relabel_sequential(int32_t *lab, int *count, int h, int w, int max_label) {
  KY_CHECK_NULL(lab, "lab"); KY_CHECK_NULL(count, "count");
  KY_TRY(check_dims(__func__, h, w, 4));
  size_t n = (size_t)h * w;
  KY_TRY(check_range(__func__, lab, n, max_label));
  int32_t *map = calloc((size_t)max_label + 1, sizeof *map);
  if (!map) return ky_error(KY_ERR_NOMEM, "%s: no memory for %d labels", __func__, max_label);
  for (size_t i = 0; i < n; i++) map[lab[i]] = 1;
  int32_t next = 0;
  map[0] = 0;
  for (int v = 1; v <= max_label; v++) if (map[v]) map[v] = ++next;
  for (size_t i = 0; i < n; i++) lab[i] = map[lab[i]];
  free(map);
  *count = next;
  return KY_OK;
}

/* Tests for pipeline/plot (instance overlays): exactly the boundary pixels of each instance (a
 * labelled pixel with a 4-neighbour of another label or the image edge) are painted, in a colour
 * fixed by the id, bright and different between neighbours; everything else is the image; the PNG
 * holds the same pixels; bad arguments are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/plot.h"
#include "tests/util_test.h"

enum { H = 12, W = 14 };

/* Label 3: rows 2..6, cols 2..6 (a 5x5 square); label 7: rows 2..6, cols 7..9, touching it;
 * label 9: the 2x2 block in the bottom-right corner. */
static void labels(uint16_t *l) {
  memset(l, 0, H * W * sizeof *l);
  for (int y = 2; y <= 6; y++) {
    for (int x = 2; x <= 6; x++) l[y * W + x] = 3;
    for (int x = 7; x <= 9; x++) l[y * W + x] = 7;
  }
  for (int y = H - 2; y < H; y++)
    for (int x = W - 2; x < W; x++) l[y * W + x] = 9;
}

static int is_edge(const uint16_t *l, int y, int x) {
  uint16_t v = l[y * W + x];
  if (!v) return 0;
  return y == 0 || y == H - 1 || x == 0 || x == W - 1 || l[(y - 1) * W + x] != v || l[(y + 1) * W + x] != v ||
         l[y * W + x - 1] != v || l[y * W + x + 1] != v;
}

static void test_overlay(void **st) {
  uint16_t l[H * W];
  uint8_t rgb[H * W * 3], out[H * W * 3];
  labels(l);
  for (int i = 0; i < H * W * 3; i++) rgb[i] = (uint8_t)(i % 7 * 3);   /* dark, below any overlay colour */
  ky_plot_overlay(out, rgb, l, H, W);
  uint8_t col[10][3];
  int seen[10] = {0}, painted = 0;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      const uint8_t *o = out + (y * W + x) * 3, *in = rgb + (y * W + x) * 3;
      if (!is_edge(l, y, x)) {
        if (memcmp(o, in, 3)) fail_msg("(%d,%d) (label %d, not a boundary) was changed", y, x, l[y * W + x]);
        continue;
      }
      painted++;
      int id = l[y * W + x];
      for (int k = 0; k < 3; k++) assert_true(o[k] >= 55);
      if (!seen[id]) { memcpy(col[id], o, 3); seen[id] = 1; }
      else if (memcmp(col[id], o, 3)) fail_msg("label %d painted in two colours", id);
    }
  /* square: 16 boundary pixels; 7: its 5x3 block's 12 boundary pixels (the 3-wide block has one
   * interior column of 3); 9: all 4 pixels */
  assert_int_equal(painted, 16 + 12 + 4);
  assert_true(seen[3] && seen[7] && seen[9]);
  assert_memory_not_equal(col[3], col[7], 3);
  assert_memory_not_equal(col[7], col[9], 3);
  /* the interior of the square keeps the image */
  assert_memory_equal(out + (4 * W + 4) * 3, rgb + (4 * W + 4) * 3, 3);
  /* the colour is a function of the id: label 3 elsewhere gets the same colour */
  uint16_t l2[H * W] = {0};
  l2[5 * W + 5] = 3;
  uint8_t out2[H * W * 3];
  ky_plot_overlay(out2, rgb, l2, H, W);
  assert_memory_equal(out2 + (5 * W + 5) * 3, col[3], 3);
}

static void test_overlay_png(void **st) {
  char *dir = ky_test_tmpdir("plot"), p[512];
  snprintf(p, sizeof p, "%s/o.png", dir);
  uint16_t l[H * W];
  uint8_t rgb[H * W * 3], out[H * W * 3];
  labels(l);
  for (int i = 0; i < H * W * 3; i++) rgb[i] = (uint8_t)(i * 5);
  ky_plot_overlay(out, rgb, l, H, W);
  assert_int_equal(ky_plot_overlay_png(p, rgb, l, H, W), KY_OK);
  if (!ky_test_png_is_rgb(p, out, W, H)) fail_msg("%s", ky_last_error());
  assert_int_equal(ky_plot_overlay_png(p, rgb, NULL, H, W), KY_ERR_ARG);
  assert_int_equal(ky_plot_overlay_png(p, rgb, l, 0, W), KY_ERR_ARG);
  ky_test_rmdir(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_overlay),
      cmocka_unit_test(test_overlay_png),
  };
  return cmocka_run_group_tests_name("pipeline_plot", tests, NULL, NULL);
}

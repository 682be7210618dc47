/* Tests for post/regionprops and post/contour: fixture regions with skimage 0.19 / cv2 4.6 values
 * (tests/fixtures/gen_regionprops.py) and hand-made cases. Run by `make test`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "post/contour.h"
#include "post/regionprops.h"

#ifndef FIXTURE
#define FIXTURE "tests/fixtures/regionprops/regions.txt"
#endif

static int close_rel(double got, double want, double rel, double abs_tol) {
  return fabs(got - want) <= abs_tol + rel * fabs(want);
}

static void check(const char *what, int region, double got, double want, double rel, double abs_tol, int *bad) {
  if (!close_rel(got, want, rel, abs_tol)) {
    print_error("region %d %s: got %.10g, skimage/cv2 %.10g\n", region, what, got, want);
    (*bad)++;
  }
}

/* Tolerances: exact for counts and boxes (area, bbox, euler, convex area, isContourConvex);
 * 1e-9 relative for moment-based values and the perimeter (float64 on both sides);
 * 1e-3 for minAreaRect, which OpenCV computes in float32 (its angle too, ties between equal-area
 * orientations included: the hull is built and ordered as OpenCV 4.6 does it). */
static void test_fixture_regions(void **st) {
  char *text;
  size_t len;
  assert_int_equal(ky_file_read_all(FIXTURE, &text, &len), KY_OK);
  char *save = NULL;
  int regions = 0, bad = 0;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (line[0] != 'R') continue;
    int h, w, offr, offc;
    assert_int_equal(sscanf(line, "R %d %d %d %d", &h, &w, &offr, &offc), 4);
    uint8_t *m = malloc((size_t)h * w);
    for (int r = 0; r < h; r++) {
      char *row = strtok_r(NULL, "\n", &save);
      assert_non_null(row);
      assert_int_equal((int)strlen(row), w);
      for (int c = 0; c < w; c++) m[r * w + c] = row[c] == '1';
    }
    char *e = strtok_r(NULL, "\n", &save);
    assert_non_null(e);
    assert_true(e[0] == 'E');
    double v[12], rs, rl, ra;
    int bb[4], convex;
    int got = sscanf(e + 1, "%lf %lf %lf %lf %lf %lf %lf %lf %lf %lf %lf %lf %d %d %d %d %d %lf %lf %lf",
                     &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10], &v[11],
                     &bb[0], &bb[1], &bb[2], &bb[3], &convex, &rs, &rl, &ra);
    assert_int_equal(got, 20);
    ky_regionprops p;
    assert_int_equal(ky_post_regionprops(&p, m, h, w, offr, offc), KY_OK);
    check("area", regions, p.area, v[0], 0, 0, &bad);
    check("convex_area", regions, p.convex_area, v[1], 0, 0, &bad);
    check("solidity", regions, p.solidity, v[2], 1e-12, 0, &bad);
    check("eccentricity", regions, p.eccentricity, v[3], 1e-7, 1e-7, &bad);
    check("extent", regions, p.extent, v[4], 1e-12, 0, &bad);
    check("perimeter", regions, p.perimeter, v[5], 1e-9, 1e-12, &bad);
    check("major_axis_length", regions, p.major_axis_length, v[6], 1e-9, 1e-9, &bad);
    check("minor_axis_length", regions, p.minor_axis_length, v[7], 1e-7, 1e-6, &bad);
    check("euler_number", regions, p.euler_number, v[8], 0, 0, &bad);
    check("equivalent_diameter", regions, p.equivalent_diameter, v[9], 1e-12, 0, &bad);
    check("centroid_r", regions, p.centroid_r, v[10], 1e-12, 1e-12, &bad);
    check("centroid_c", regions, p.centroid_c, v[11], 1e-12, 1e-12, &bad);
    for (int k = 0; k < 4; k++) check("bbox", regions, p.bbox[k], bb[k], 0, 0, &bad);
    check("contour_convex", regions, p.contour_convex, convex, 0, 0, &bad);
    check("rect_short", regions, p.rect_short, rs, 1e-5, 1e-3, &bad);
    check("rect_long", regions, p.rect_long, rl, 1e-5, 1e-3, &bad);
    check("rect_angle", regions, p.rect_angle, ra, 0, 1e-3, &bad);
    free(m);
    regions++;
  }
  free(text);
  assert_true(regions >= 80);
  assert_int_equal(bad, 0);
}

static void test_hand_rectangle(void **st) {
  /* 3x4 block inside a 1-px margin, reported at offset (10, 20). */
  uint8_t m[5 * 6] = {0};
  for (int r = 1; r <= 3; r++)
    for (int c = 1; c <= 4; c++) m[r * 6 + c] = 1;
  ky_regionprops p;
  assert_int_equal(ky_post_regionprops(&p, m, 5, 6, 10, 20), KY_OK);
  assert_true(p.area == 12 && p.convex_area == 12 && p.solidity == 1 && p.extent == 1);
  assert_true(p.euler_number == 1);
  assert_int_equal(p.bbox[0], 11);
  assert_int_equal(p.bbox[1], 21);
  assert_int_equal(p.bbox[2], 14);
  assert_int_equal(p.bbox[3], 25);
  assert_true(fabs(p.centroid_r - 12) < 1e-12 && fabs(p.centroid_c - 22.5) < 1e-12);
  assert_int_equal(p.contour_convex, 1);
  assert_true(p.rect_short == 2 && p.rect_long == 3 && p.rect_angle == 90);
  /* Perimeter: 10 border pixels, corners weigh (1+sqrt 2)/2 ... all are straight or corner runs. */
  assert_true(p.perimeter > 0 && p.perimeter < 14);
}

static void test_hole_gives_euler_zero(void **st) {
  uint8_t m[5 * 5] = {0};
  for (int r = 1; r <= 3; r++)
    for (int c = 1; c <= 3; c++) m[r * 5 + c] = (r != 2 || c != 2);
  ky_regionprops p;
  assert_int_equal(ky_post_regionprops(&p, m, 5, 5, 0, 0), KY_OK);
  assert_true(p.euler_number == 0);
  assert_true(p.area == 8 && p.convex_area == 9);
  /* Diagonal neighbours join into one object: 8-connectivity. */
  uint8_t d[4 * 4] = {0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0};
  assert_int_equal(ky_post_regionprops(&p, d, 4, 4, 0, 0), KY_OK);
  assert_true(p.euler_number == 1);
}

/* Round shapes have equal inertia eigenvalues; round-off once made 1 - l2 / l1 slightly negative
 * and the eccentricity NaN, which stopped GBT training on such a candidate (found by
 * bench_watershed). skimage gives exactly 0. */
static void test_round_shapes_have_zero_eccentricity(void **st) {
  enum { N = 41 };
  uint8_t m[N * N];
  for (int rad = 0; rad <= 20; rad++)
    for (int shape = 0; shape < 3; shape++) {
      memset(m, 0, sizeof m);
      for (int r = 0; r < N; r++)
        for (int c = 0; c < N; c++) {
          int dr = r - N / 2, dc = c - N / 2;
          int in = shape == 0 ? dr * dr + dc * dc <= rad * rad                       /* disc */
                 : shape == 1 ? abs(dr) <= rad && abs(dc) <= rad                     /* square */
                              : (abs(dr) <= rad && dc == 0) || (abs(dc) <= rad && dr == 0);  /* plus */
          m[r * N + c] = (uint8_t)in;
        }
      ky_regionprops p;
      assert_int_equal(ky_post_regionprops(&p, m, N, N, 0, 0), KY_OK);
      if (!(p.eccentricity == 0)) fail_msg("shape %d radius %d: eccentricity %g, expected 0", shape, rad, p.eccentricity);
    }
}

static void test_contour_simple_chain(void **st) {
  /* A 2x3 block: the outer border compresses to its four corners, counter-clockwise on screen
   * from the top-left corner as OpenCV lists them. */
  uint8_t m[2 * 3] = {1, 1, 1, 1, 1, 1};
  ky_point *pts;
  int n;
  assert_int_equal(ky_contour_first_outer(&pts, &n, m, 2, 3), KY_OK);
  assert_int_equal(n, 4);
  int want[4][2] = {{0, 0}, {0, 1}, {2, 1}, {2, 0}};
  for (int i = 0; i < 4; i++) {
    assert_int_equal(pts[i].x, want[i][0]);
    assert_int_equal(pts[i].y, want[i][1]);
  }
  assert_int_equal(ky_contour_is_convex(pts, n), 1);
  free(pts);
  /* A collinear triple is not convex for OpenCV. */
  ky_point line[3] = {{0, 0}, {1, 0}, {2, 0}};
  assert_int_equal(ky_contour_is_convex(line, 3), 0);
}

static void test_bad_input(void **st) {
  ky_regionprops p;
  uint8_t zero[9] = {0};
  assert_int_equal(ky_post_regionprops(&p, zero, 3, 3, 0, 0), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "no foreground"));
  assert_int_equal(ky_post_regionprops(&p, zero, 0, 3, 0, 0), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "0x3"));
  assert_int_equal(ky_post_regionprops(NULL, zero, 3, 3, 0, 0), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "out"));
  double a, b, c;
  assert_int_equal(ky_min_area_rect(&a, &b, &c, (ky_point *)zero, 0), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "0 points"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_fixture_regions),
    cmocka_unit_test(test_hand_rectangle),
    cmocka_unit_test(test_hole_gives_euler_zero),
    cmocka_unit_test(test_round_shapes_have_zero_eccentricity),
    cmocka_unit_test(test_contour_simple_chain),
    cmocka_unit_test(test_bad_input),
  };
  return cmocka_run_group_tests_name("post_regionprops", tests, NULL, NULL);
}

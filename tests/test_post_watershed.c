/* Tests for post/watershed: labels identical to skimage 0.19 on the golden fixtures of
 * tests/fixtures/gen_watershed.py (plateaus, masks, lines, both connectivities, u8 and float), the
 * bucket path on marker-distinct cases, and argument errors. Run from the repo root (make test). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/image.h"
#include "post/watershed.h"

#define FIX "tests/fixtures/watershed/"

static int32_t *load_labels(const char *path, int h, int w) {
  ky_image im;
  if (ky_image_load(&im, path) != KY_OK) { fail_msg("%s: %s", path, ky_last_error()); }
  assert_int_equal(im.h, h); assert_int_equal(im.w, w); assert_int_equal(im.c, 1);
  int32_t *out = calloc((size_t)h * w, sizeof *out);   /* the analyser cannot tie h * w to the caller's n */
  for (size_t i = 0; i < (size_t)h * w; i++)
    out[i] = im.depth == 16 ? ((uint16_t *)im.data)[i] : ((uint8_t *)im.data)[i];
  ky_image_free(&im);
  return out;
}

static uint8_t *load_u8(const char *path, int h, int w) {
  ky_image im;
  if (ky_image_load(&im, path) != KY_OK) { fail_msg("%s: %s", path, ky_last_error()); }
  assert_int_equal(im.h, h); assert_int_equal(im.w, w); assert_int_equal(im.depth, 8);
  uint8_t *out = malloc((size_t)h * w);
  for (size_t i = 0; i < (size_t)h * w; i++) out[i] = ((uint8_t *)im.data)[i * im.c];
  ky_image_free(&im);
  return out;
}

typedef struct { char name[64], kind[8]; int h, w, has_mask; } ws_case;

static int read_cases(ws_case *cs, int max) {
  FILE *f = fopen(FIX "cases.txt", "r");
  assert_non_null(f);
  char line[256];
  int n = 0;
  while (fgets(line, sizeof line, f) && n < max) {
    if (line[0] == '#') continue;
    ws_case *c = &cs[n];
    if (sscanf(line, "%63s %d %d %7s %d", c->name, &c->h, &c->w, c->kind, &c->has_mask) == 5) n++;
  }
  fclose(f);
  return n;
}

/* Runs one variant and returns the number of pixels that differ from skimage. */
static size_t run_case(const ws_case *c, int conn, int line, int fast) {
  char p[512];
  size_t n = (size_t)c->h * c->w;
  snprintf(p, sizeof p, FIX "%s_markers.png", c->name);
  int32_t *lab = load_labels(p, c->h, c->w);
  uint8_t *mask = NULL;
  if (c->has_mask) { snprintf(p, sizeof p, FIX "%s_mask.png", c->name); mask = load_u8(p, c->h, c->w); }
  ky_status s;
  if (!strcmp(c->kind, "u8")) {
    snprintf(p, sizeof p, FIX "%s_elev.png", c->name);
    uint8_t *e = load_u8(p, c->h, c->w);
    s = fast ? ky_post_watershed_u8_fast(lab, e, mask, c->h, c->w, conn, line)
             : ky_post_watershed_u8(lab, e, mask, c->h, c->w, conn, line);
    free(e);
  } else {
    snprintf(p, sizeof p, FIX "%s_elev.bin", c->name);
    char *buf; size_t nb;
    assert_int_equal(ky_file_read_all(p, &buf, &nb), KY_OK);
    assert_int_equal(nb, n * sizeof(float));
    s = ky_post_watershed_f32(lab, (const float *)buf, mask, c->h, c->w, conn, line);
    free(buf);
  }
  assert_int_equal(s, KY_OK);
  snprintf(p, sizeof p, FIX "%s_c%d_l%d.png", c->name, conn, line);
  int32_t *want = load_labels(p, c->h, c->w);
  size_t diff = 0;
  for (size_t i = 0; i < n; i++) diff += lab[i] != want[i];
  free(lab); free(want); free(mask);
  return diff;
}

static void test_exact_matches_skimage(void **st) {
  ws_case cs[32];
  int n = read_cases(cs, 32);
  assert_true(n >= 8);
  for (int i = 0; i < n; i++)
    for (int conn = 4; conn <= 8; conn += 4)
      for (int line = 0; line <= 1; line++) {
        size_t d = run_case(&cs[i], conn, line, 0);
        if (d) fail_msg("%s conn %d line %d: %zu pixels differ from skimage", cs[i].name, conn, line, d);
      }
}

static void test_fast_matches_when_markers_distinct(void **st) {
  ws_case cs[32];
  int n = read_cases(cs, 32), tried = 0;
  for (int i = 0; i < n; i++) {
    if (strcmp(cs[i].name, "distinct_markers") && strcmp(cs[i].name, "flat") && strcmp(cs[i].name, "plateau_pts"))
      continue;
    /* flat / plateau_pts have tied markers: the bucket order differs from skimage's heap order there,
     * so their pixel differences are only printed (how much the fast path moves basin borders). */
    for (int conn = 4; conn <= 8; conn += 4)
      for (int line = 0; line <= 1; line++) {
        size_t d = run_case(&cs[i], conn, line, 1);
        if (!strcmp(cs[i].name, "distinct_markers") && d)
          fail_msg("fast %s conn %d line %d: %zu pixels differ", cs[i].name, conn, line, d);
        print_message("fast %-16s conn %d line %d: %zu pixels differ from skimage\n", cs[i].name, conn, line, d);
        tried++;
      }
  }
  assert_int_equal(tried, 12);
}

static void test_errors(void **st) {
  int32_t lab[4] = {1, 0, 0, 2};
  uint8_t e[4] = {0};
  assert_int_equal(ky_post_watershed_u8(lab, e, NULL, 2, 2, 6, 0), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "connectivity is 6"));
  assert_int_equal(ky_post_watershed_u8(lab, NULL, NULL, 2, 2, 4, 0), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "elevation is NULL"));
  assert_int_equal(ky_post_watershed_u8_fast(lab, e, NULL, 0, 2, 4, 0), KY_ERR_SHAPE);
  assert_non_null(strstr(ky_last_error(), "0x2"));
  lab[1] = -3;
  assert_int_equal(ky_post_watershed_u8(lab, e, NULL, 2, 2, 4, 0), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "is -3"));
  lab[1] = 0;
  float f[4] = {0, 1, 0.0f / 0.0f, 2};
  assert_int_equal(ky_post_watershed_f32(lab, f, NULL, 2, 2, 4, 0), KY_ERR_NUMERIC);
  assert_non_null(strstr(ky_last_error(), "pixel 2"));
}

/* A hand case: two markers on a flat row meet in the middle; with lines the middle pixel stays 0. */
static void test_hand_line(void **st) {
  int32_t lab[5] = {1, 0, 0, 0, 2};
  uint8_t e[5] = {0};
  assert_int_equal(ky_post_watershed_u8(lab, e, NULL, 1, 5, 4, 1), KY_OK);
  int32_t want[5] = {1, 1, 0, 2, 2};
  assert_memory_equal(lab, want, sizeof want);
  int32_t lab2[5] = {1, 0, 0, 0, 2};
  assert_int_equal(ky_post_watershed_u8_fast(lab2, e, NULL, 1, 5, 4, 0), KY_OK);
  int32_t want2[5] = {1, 1, 1, 2, 2};  /* marker 1 pops first, so it claims the middle */
  assert_memory_equal(lab2, want2, sizeof want2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exact_matches_skimage),
      cmocka_unit_test(test_fast_matches_when_markers_distinct),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_hand_line),
  };
  return cmocka_run_group_tests_name("post_watershed", tests, NULL, NULL);
}

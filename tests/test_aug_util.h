/* Fixture loading and image comparison shared by tests/test_aug_*.c (header only: each suite is
 * its own binary). Fixtures come from tests/fixtures/gen_aug.py. */
#ifndef KY_TEST_AUG_UTIL_H
#define KY_TEST_AUG_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/image.h"

#define AUG_FIX "tests/fixtures/aug/"

/* uint8 image with `c` channels; aborts the test (NULL) when missing or of another size. */
static inline uint8_t *fix_u8(const char *name, int c, int h, int w) {
  char path[256];
  snprintf(path, sizeof path, AUG_FIX "%s", name);
  ky_image img;
  if (ky_image_load_u8(&img, path, c) != KY_OK) {
    fprintf(stderr, "cannot load %s: %s\n", path, ky_last_error());
    return NULL;
  }
  if (img.h != h || img.w != w) {
    fprintf(stderr, "%s is %dx%d, expected %dx%d\n", path, img.h, img.w, h, w);
    ky_image_free(&img);
    return NULL;
  }
  return img.data;
}

static inline uint16_t *fix_u16(const char *name, int h, int w) {
  char path[256];
  snprintf(path, sizeof path, AUG_FIX "%s", name);
  ky_image img;
  if (ky_image_load(&img, path) != KY_OK || img.depth != 16 || img.c != 1 || img.h != h || img.w != w) {
    fprintf(stderr, "cannot load %s as uint16 %dx%d\n", path, h, w);
    if (img.data) ky_image_free(&img);
    return NULL;
  }
  return img.data;
}

static inline float *fix_f32(const char *name, size_t n) {
  char path[256];
  snprintf(path, sizeof path, AUG_FIX "%s", name);
  FILE *f = fopen(path, "rb");
  if (!f) { fprintf(stderr, "cannot open %s\n", path); return NULL; }
  float *d = malloc(n * sizeof *d);
  size_t got = fread(d, sizeof *d, n, f);
  fclose(f);
  if (got != n) { fprintf(stderr, "%s holds %zu floats, expected %zu\n", path, got, n); free(d); return NULL; }
  return d;
}

typedef struct {
  int max_diff;
  double exact, within1; /* fractions of values */
} cmp_u8;

static inline cmp_u8 compare_u8(const uint8_t *a, const uint8_t *b, size_t n) {
  cmp_u8 r = {0, 0, 0};
  size_t ex = 0, w1 = 0;
  for (size_t i = 0; i < n; i++) {
    int d = abs((int)a[i] - (int)b[i]);
    if (d > r.max_diff) r.max_diff = d;
    ex += d == 0;
    w1 += d <= 1;
  }
  r.exact = (double)ex / n;
  r.within1 = (double)w1 / n;
  return r;
}

static inline void print_cmp(const char *what, cmp_u8 c) {
  printf("  %-22s max diff %3d, exact %.4f, within 1 %.4f\n", what, c.max_diff, c.exact, c.within1);
}

#endif

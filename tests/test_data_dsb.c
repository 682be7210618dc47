/* Tests for data/dsb: listing and loading the shared sample, image conversions (grey, 16-bit,
 * RGBA), mask painting order, unlabelled images, and the reader's errors (missing images/ or
 * masks/, a mask of another size, a truncated PNG, empty folders), each naming the file; the
 * broken inputs are written into a temporary folder; the compact layout's round trip. Run by
 * `make test` from the repo root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/image.h"
#include "data/dsb.h"

#define SAMPLE "tests/fixtures/dsb_sample"

static char g_dir[64];

static int setup(void **st) {
  strcpy(g_dir, "/tmp/ky_dsb_XXXXXX");
  return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **st) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
  return system(cmd);
}

static void mk(const char *fmt, const char *a, const char *b) {
  char p[512];
  snprintf(p, sizeof p, fmt, g_dir, a, b);
  assert_int_equal(ky_mkdirs(p), KY_OK);
}

/* <g_dir>/<root>/<id>/images/<id>.png as an 8-bit RGB w x h image, and n masks of mw x mh
 * (mask k: a horizontal bar on row k, plus pixel (0, 0) for every mask so later ones win). */
static void make_sample(const char *root, const char *id, int w, int h, int n_masks, int mw, int mh) {
  char p[512];
  mk("%s/%s/%s/images", root, id);
  uint8_t *rgb = calloc((size_t)w * h * 3, 1);
  for (int i = 0; i < w * h * 3; i++) rgb[i] = (uint8_t)(i * 7);
  snprintf(p, sizeof p, "%s/%s/%s/images/%s.png", g_dir, root, id, id);
  assert_int_equal(ky_png_save_u8(p, rgb, w, h, 3), KY_OK);
  free(rgb);
  if (n_masks < 0) return;
  mk("%s/%s/%s/masks", root, id);
  for (int k = 0; k < n_masks; k++) {
    uint8_t *m = calloc((size_t)mw * mh, 1);
    m[0] = 255;
    for (int x = 0; x < mw; x++) m[(size_t)(k % mh) * mw + x] = 255;
    snprintf(p, sizeof p, "%s/%s/%s/masks/m%02d.png", g_dir, root, id, k);
    assert_int_equal(ky_png_save_u8(p, m, mw, mh, 1), KY_OK);
    free(m);
  }
}

static void test_sample_listing_and_loading(void **st) {
  ky_dsb_ids ids;
  assert_int_equal(ky_dsb_list_ids(&ids, SAMPLE), KY_OK);
  assert_int_equal(ids.n, 9);
  for (int i = 1; i < ids.n; i++) assert_true(strcmp(ids.ids[i - 1], ids.ids[i]) < 0);
  ky_dsb_sample s;
  assert_int_equal(ky_dsb_load(&s, SAMPLE, ids.ids[0], KY_DSB_MASKS_REQUIRED), KY_OK);
  assert_int_equal(s.w, 256);
  assert_int_equal(s.h, 256);
  assert_int_equal(s.n_labels, 17);   /* 13c8ff1f has 17 mask files */
  int seen[18] = {0};
  for (int i = 0; i < s.w * s.h; i++) {
    assert_true(s.labels[i] <= 17);
    seen[s.labels[i]] = 1;
  }
  for (int k = 1; k <= 17; k++) assert_true(seen[k]);
  /* A grey fluorescence image: R = G = B after dropping alpha. */
  for (int i = 0; i < s.w * s.h; i++) assert_true(s.rgb[3 * i] == s.rgb[3 * i + 1] && s.rgb[3 * i] == s.rgb[3 * i + 2]);
  ky_dsb_sample_free(&s);
  ky_dsb_set set;
  const char *two[2] = {ids.ids[3], ids.ids[1]};
  assert_int_equal(ky_dsb_set_load(&set, SAMPLE, two, 2, KY_DSB_MASKS_SKIP), KY_OK);
  assert_int_equal(set.n, 2);
  assert_int_equal(ky_dsb_set_find(&set, ids.ids[1]), 1);
  assert_int_equal(ky_dsb_set_find(&set, "nope"), -1);
  assert_null(set.samples[0].labels);
  assert_int_equal(set.samples[0].w, 320);
  ky_dsb_set_free(&set);
  ky_dsb_ids_free(&ids);
}

static void test_conversions_and_paint_order(void **st) {
  char p[512];
  /* 16-bit grey image: 65535 -> 255, 257 -> 1, 32896 -> 128. */
  mk("%s/%s/%s/images", "conv", "g16");
  uint16_t g[4] = {0, 257, 32896, 65535};
  snprintf(p, sizeof p, "%s/conv/g16/images/g16.png", g_dir);
  assert_int_equal(ky_png_save_u16(p, g, 2, 2, 1), KY_OK);
  /* Two overlapping masks: 16-bit and RGBA; the later file name wins on the overlap. */
  mk("%s/%s/%s/masks", "conv", "g16");
  uint16_t m1[4] = {1000, 1000, 0, 0};
  snprintf(p, sizeof p, "%s/conv/g16/masks/a.png", g_dir);
  assert_int_equal(ky_png_save_u16(p, m1, 2, 2, 1), KY_OK);
  uint8_t m2[16] = {0, 0, 0, 255, 9, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255};
  snprintf(p, sizeof p, "%s/conv/g16/masks/b.png", g_dir);
  assert_int_equal(ky_png_save_u8(p, m2, 2, 2, 4), KY_OK);
  snprintf(p, sizeof p, "%s/conv/g16/masks/notes.txt", g_dir);
  assert_int_equal(ky_file_write_atomic(p, "x", 1), KY_OK);
  snprintf(p, sizeof p, "%s/conv", g_dir);
  ky_dsb_sample s;
  assert_int_equal(ky_dsb_load(&s, p, "g16", KY_DSB_MASKS_REQUIRED), KY_OK);
  const uint8_t want[12] = {0, 0, 0, 1, 1, 1, 128, 128, 128, 255, 255, 255};
  assert_memory_equal(s.rgb, want, 12);
  assert_int_equal(s.n_labels, 2);
  const uint16_t wl[4] = {1, 2, 0, 0};
  assert_memory_equal(s.labels, wl, sizeof wl);
  ky_dsb_sample_free(&s);
  /* Label maps round-trip through 16-bit PNGs, and 8-bit ones read too. */
  uint16_t lab[6] = {0, 1, 65535, 300, 2, 0}, *back;
  int h, w;
  snprintf(p, sizeof p, "%s/lab.png", g_dir);
  assert_int_equal(ky_dsb_write_labels(p, lab, 2, 3), KY_OK);
  assert_int_equal(ky_dsb_read_labels(&back, &h, &w, p), KY_OK);
  assert_int_equal(h, 2);
  assert_int_equal(w, 3);
  assert_memory_equal(back, lab, sizeof lab);
  free(back);
  const uint8_t lab8[2] = {0, 7};
  snprintf(p, sizeof p, "%s/lab8.png", g_dir);
  assert_int_equal(ky_png_save_u8(p, lab8, 2, 1, 1), KY_OK);
  assert_int_equal(ky_dsb_read_labels(&back, &h, &w, p), KY_OK);
  assert_int_equal(back[1], 7);
  free(back);
  snprintf(p, sizeof p, "%s/conv/g16/masks/b.png", g_dir);
  assert_int_equal(ky_dsb_read_labels(&back, &h, &w, p), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "4 channels"));
}

static void test_unlabelled_test_images(void **st) {
  make_sample("test", "t1", 5, 4, -1, 0, 0);
  char root[256];
  snprintf(root, sizeof root, "%s/test", g_dir);
  ky_dsb_sample s;
  assert_int_equal(ky_dsb_load(&s, root, "t1", KY_DSB_MASKS_OPTIONAL), KY_OK);
  assert_null(s.labels);
  assert_int_equal(s.w, 5);
  ky_dsb_sample_free(&s);
  assert_int_equal(ky_dsb_load(&s, root, "t1", KY_DSB_MASKS_REQUIRED), KY_ERR_IO);
  assert_non_null(strstr(ky_last_error(), "test/t1/masks"));
  assert_non_null(strstr(ky_last_error(), "missing masks/"));
}

static void test_reader_errors_name_the_file(void **st) {
  char root[256], p[512];
  ky_dsb_sample s;
  ky_dsb_ids ids;
  snprintf(root, sizeof root, "%s/bad", g_dir);
  /* Missing images/ folder. */
  mk("%s/%s/%s/masks", "bad", "noimg");
  assert_int_equal(ky_dsb_load(&s, root, "noimg", KY_DSB_MASKS_REQUIRED), KY_ERR_IO);
  assert_non_null(strstr(ky_last_error(), "bad/noimg/images"));
  /* A mask of another size. */
  make_sample("bad", "size", 6, 5, 2, 6, 4);
  assert_int_equal(ky_dsb_load(&s, root, "size", KY_DSB_MASKS_REQUIRED), KY_ERR_SHAPE);
  assert_non_null(strstr(ky_last_error(), "bad/size/masks/m00.png"));
  assert_non_null(strstr(ky_last_error(), "6x4"));
  assert_null(s.rgb);
  /* A truncated image PNG. */
  make_sample("bad", "trunc", 16, 16, 1, 16, 16);
  snprintf(p, sizeof p, "%s/bad/trunc/images/trunc.png", g_dir);
  char *buf;
  size_t n;
  assert_int_equal(ky_file_read_all(p, &buf, &n), KY_OK);
  assert_int_equal(ky_file_write_atomic(p, buf, n / 2), KY_OK);
  free(buf);
  assert_int_not_equal(ky_dsb_load(&s, root, "trunc", KY_DSB_MASKS_REQUIRED), KY_OK);
  assert_non_null(strstr(ky_last_error(), "bad/trunc/images/trunc.png"));
  /* A truncated mask PNG. */
  make_sample("bad", "mtrunc", 16, 16, 2, 16, 16);
  snprintf(p, sizeof p, "%s/bad/mtrunc/masks/m01.png", g_dir);
  assert_int_equal(ky_file_read_all(p, &buf, &n), KY_OK);
  assert_int_equal(ky_file_write_atomic(p, buf, 20), KY_OK);
  free(buf);
  assert_int_not_equal(ky_dsb_load(&s, root, "mtrunc", KY_DSB_MASKS_REQUIRED), KY_OK);
  assert_non_null(strstr(ky_last_error(), "bad/mtrunc/masks/m01.png"));
  /* An empty masks/ folder. */
  make_sample("bad", "nomask", 4, 4, 0, 4, 4);
  assert_int_equal(ky_dsb_load(&s, root, "nomask", KY_DSB_MASKS_REQUIRED), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "bad/nomask/masks"));
  assert_non_null(strstr(ky_last_error(), "empty"));
  /* images/ without the image file. */
  mk("%s/%s/%s/images", "bad", "nofile");
  assert_int_equal(ky_dsb_load(&s, root, "nofile", KY_DSB_MASKS_REQUIRED), KY_ERR_IO);
  assert_non_null(strstr(ky_last_error(), "bad/nofile/images/nofile.png"));
  /* An empty data folder, and one that does not exist. */
  mk("%s/%s%s", "empty", "");
  snprintf(root, sizeof root, "%s/empty", g_dir);
  assert_int_equal(ky_dsb_list_ids(&ids, root), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), root));
  assert_non_null(strstr(ky_last_error(), "empty folder"));
  assert_int_equal(ky_dsb_list_ids(&ids, "/nonexistent_ky_dsb"), KY_ERR_IO);
  assert_non_null(strstr(ky_last_error(), "/nonexistent_ky_dsb"));
  /* The set loader passes the failing sample's message through and frees what it loaded. */
  ky_dsb_set set;
  snprintf(root, sizeof root, "%s/bad", g_dir);
  const char *pick[2] = {"mtrunc", "size"};
  assert_int_equal(ky_dsb_set_load(&set, root, pick, 2, KY_DSB_MASKS_REQUIRED), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "m01.png"));
  assert_int_equal(set.n, 0);
  /* With threads, the first failing id in list order is reported whichever finishes first. */
  const char *pick2[3] = {"size", "mtrunc", "nomask"};
  for (int t = 1; t <= 3; t++) {
    assert_int_equal(ky_dsb_set_load_mt(&set, root, pick2, 3, KY_DSB_MASKS_REQUIRED, t), KY_ERR_SHAPE);
    assert_non_null(strstr(ky_last_error(), "bad/size/masks/m00.png"));
    assert_int_equal(set.n, 0);
  }
  assert_int_equal(ky_dsb_set_load_mt(&set, root, pick2, 3, KY_DSB_MASKS_REQUIRED, 0), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "threads 0"));
}

/* The compact layout round trip: every bundled sample written with ky_dsb_save_compact loads back
 * with the same pixels and labels, the grey ones as 1-channel PNGs; a label map of the wrong size
 * is named. */
static void test_compact_layout_round_trip(void **st) {
  char root[256], p[512];
  snprintf(root, sizeof root, "%s/compact", g_dir);
  ky_dsb_set a, b;
  assert_int_equal(ky_dsb_set_load(&a, SAMPLE, NULL, 0, KY_DSB_MASKS_REQUIRED), KY_OK);
  for (int i = 0; i < a.n; i++) assert_int_equal(ky_dsb_save_compact(&a.samples[i], root, a.ids[i]), KY_OK);
  assert_int_equal(ky_dsb_set_load(&b, root, NULL, 0, KY_DSB_MASKS_REQUIRED), KY_OK);
  assert_int_equal(b.n, a.n);
  int grey = 0;
  for (int i = 0; i < a.n; i++) {
    const ky_dsb_sample *x = &a.samples[i], *y = &b.samples[i];
    assert_string_equal(a.ids[i], b.ids[i]);
    assert_int_equal(x->h, y->h);
    assert_int_equal(x->w, y->w);
    size_t np = (size_t)x->h * x->w;
    assert_memory_equal(x->rgb, y->rgb, np * 3);
    assert_memory_equal(x->labels, y->labels, np * 2);
    uint16_t mx = 0;
    for (size_t k = 0; k < np; k++) mx = x->labels[k] > mx ? x->labels[k] : mx;
    assert_int_equal(y->n_labels, mx);
    ky_image im;
    snprintf(p, sizeof p, "%s/%s/images/%s.png", root, a.ids[i], a.ids[i]);
    assert_int_equal(ky_image_load(&im, p), KY_OK);
    grey += im.c == 1;
    ky_image_free(&im);
  }
  assert_true(grey > 0);   /* the sample has grey fluorescence images */
  /* A label map that does not match its image. */
  uint16_t lab[6] = {0, 1, 1, 0, 2, 2};
  snprintf(p, sizeof p, "%s/%s/labels.png", root, a.ids[0]);
  assert_int_equal(ky_dsb_write_labels(p, lab, 2, 3), KY_OK);
  ky_dsb_sample s;
  assert_int_equal(ky_dsb_load(&s, root, a.ids[0], KY_DSB_MASKS_REQUIRED), KY_ERR_SHAPE);
  assert_non_null(strstr(ky_last_error(), "labels.png"));
  assert_non_null(strstr(ky_last_error(), "3x2"));
  assert_null(s.rgb);
  ky_dsb_set_free(&a);
  ky_dsb_set_free(&b);
}

static void test_threaded_set_load_matches(void **st) {
  ky_dsb_set a, b;
  assert_int_equal(ky_dsb_set_load(&a, SAMPLE, NULL, 0, KY_DSB_MASKS_REQUIRED), KY_OK);
  assert_int_equal(ky_dsb_set_load_mt(&b, SAMPLE, NULL, 0, KY_DSB_MASKS_REQUIRED, 4), KY_OK);
  assert_int_equal(a.n, 9);
  assert_int_equal(b.n, 9);
  for (int i = 0; i < a.n; i++) {
    assert_string_equal(a.ids[i], b.ids[i]);
    assert_int_equal(a.samples[i].h, b.samples[i].h);
    assert_int_equal(a.samples[i].w, b.samples[i].w);
    assert_int_equal(a.samples[i].n_labels, b.samples[i].n_labels);
    size_t np = (size_t)a.samples[i].h * a.samples[i].w;
    assert_memory_equal(a.samples[i].rgb, b.samples[i].rgb, np * 3);
    assert_memory_equal(a.samples[i].labels, b.samples[i].labels, np * 2);
  }
  ky_dsb_set_free(&a);
  ky_dsb_set_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sample_listing_and_loading),
      cmocka_unit_test(test_conversions_and_paint_order),
      cmocka_unit_test(test_unlabelled_test_images),
      cmocka_unit_test(test_reader_errors_name_the_file),
      cmocka_unit_test(test_threaded_set_load_matches),
      cmocka_unit_test(test_compact_layout_round_trip),
  };
  return cmocka_run_group_tests_name("data_dsb", tests, setup, teardown);
}

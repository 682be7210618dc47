/* Tests for post/rle: Kaggle RLE encode/decode (hand-checked strings, random round trips), CSV
 * writer -> reader round trips, and malformed rows / RLE strings naming the line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/rng.h"
#include "post/rle.h"

static void test_encode_column_major(void **st) {
  /* 3x3, instance 1 at (0,0),(1,0),(2,0) [column 0] and (0,1): column-major indices 1,2,3,4 -> one
   * run wrapping into column 1. Instance 2 at (2,2) -> index 9. */
  int32_t lab[9] = {1, 1, 0,
                    1, 0, 0,
                    1, 0, 2};
  char *s;
  assert_int_equal(ky_rle_encode(&s, lab, 3, 3, 1), KY_OK);
  assert_string_equal(s, "1 4");
  free(s);
  assert_int_equal(ky_rle_encode(&s, lab, 3, 3, 2), KY_OK);
  assert_string_equal(s, "9 1");
  free(s);
  assert_int_equal(ky_rle_encode(&s, lab, 3, 3, 7), KY_OK);
  assert_string_equal(s, "");
  free(s);
  int32_t back[9] = {0};
  assert_int_equal(ky_rle_decode(back, 3, 3, "1 4", 1, "t"), KY_OK);
  assert_int_equal(ky_rle_decode(back, 3, 3, "9 1", 2, "t"), KY_OK);
  assert_memory_equal(back, lab, sizeof lab);
}

static void test_random_round_trip_through_csv(void **st) {
  char dir[] = "/tmp/ky_rle_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[256];
  snprintf(path, sizeof path, "%s/sub.csv", dir);
  ky_rng rng = ky_rng_make(7, KY_RNG_STREAM_TEST);
  enum { NIMG = 5 };
  int hs[NIMG], ws[NIMG];
  int32_t *labs[NIMG];
  for (int with_size = 0; with_size < 2; with_size++) {
    ky_rle_writer wr;
    assert_int_equal(ky_rle_writer_open(&wr, path, with_size), KY_OK);
    for (int k = 0; k < NIMG; k++) {
      hs[k] = (int)ky_rng_int(&rng, 1, 40);
      ws[k] = (int)ky_rng_int(&rng, 1, 40);
      labs[k] = calloc((size_t)hs[k] * ws[k], sizeof(int32_t));
      int ninst = k == 2 ? 0 : (int)ky_rng_int(&rng, 1, 12);
      for (int i = 0; i < hs[k] * ws[k]; i++)
        if (ninst && ky_rng_uniform(&rng) < 0.6f) labs[k][i] = 100 + 3 * (int32_t)ky_rng_int(&rng, 0, ninst);
      char id[16];
      snprintf(id, sizeof id, "img%d", k);
      assert_int_equal(ky_rle_writer_add(&wr, id, labs[k], hs[k], ws[k]), KY_OK);
    }
    assert_int_equal(ky_rle_writer_commit(&wr), KY_OK);
    ky_rle_csv csv;
    assert_int_equal(ky_rle_csv_read(&csv, path), KY_OK);
    assert_int_equal(csv.has_size, with_size);
    const char **ids;
    int nids;
    assert_int_equal(ky_rle_csv_ids(&ids, &nids, &csv), KY_OK);
    assert_int_equal(nids, NIMG);
    for (int k = 0; k < NIMG; k++) {
      char id[16];
      snprintf(id, sizeof id, "img%d", k);
      assert_string_equal(ids[k], id);
      int32_t *got;
      int h, w;
      assert_int_equal(ky_rle_csv_labels(&got, &h, &w, &csv, id, with_size ? 0 : hs[k], with_size ? 0 : ws[k]), KY_OK);
      assert_int_equal(h, hs[k]);
      assert_int_equal(w, ws[k]);
      /* Instances come back numbered 1..n in ascending order of the original ids (100, 103, ...). */
      int32_t map[64] = {0};
      int32_t next = 0;
      for (int v = 0; v < 64; v++) {
        int present = 0;
        for (int i = 0; i < h * w && !present; i++) present = labs[k][i] == 100 + 3 * v;
        if (present) map[v] = ++next;
      }
      for (int i = 0; i < h * w; i++)
        assert_int_equal(got[i], labs[k][i] ? map[(labs[k][i] - 100) / 3] : 0);
      free(got);
      free(labs[k]);
    }
    free(ids);
    ky_rle_csv_free(&csv);
  }
  /* The empty image is one row with empty EncodedPixels. */
  char *text;
  size_t n;
  assert_int_equal(ky_file_read_all(path, &text, &n), KY_OK);
  assert_non_null(strstr(text, "\nimg2,,"));
  free(text);
  remove(path);
  rmdir(dir);
}

static ky_status read_text(const char *text, ky_rle_csv *csv, char *path) {
  ky_status s = ky_file_write_atomic(path, text, strlen(text));
  if (s != KY_OK) return s;
  return ky_rle_csv_read(csv, path);
}

static void test_malformed_csv_names_line(void **st) {
  char dir[] = "/tmp/ky_rle_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[256];
  snprintf(path, sizeof path, "%s/bad.csv", dir);
  ky_rle_csv csv;
  assert_int_equal(read_text("Image,Pixels\nx,1 2\n", &csv, path), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "bad.csv:1: header"));
  assert_int_equal(read_text("ImageId,EncodedPixels\nx,1 2\ny,1 2 3\n", &csv, path), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "bad.csv:3: EncodedPixels has 3 values"));
  assert_int_equal(read_text("ImageId,EncodedPixels\nx,1 a2\n", &csv, path), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "bad.csv:2: EncodedPixels value 2 is \"a2\""));
  assert_int_equal(read_text("ImageId,EncodedPixels\nx,-1 2\n", &csv, path), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "bad.csv:2"));
  assert_int_equal(read_text("ImageId,EncodedPixels\nx,1 2,3\n", &csv, path), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "bad.csv:2: 3 fields"));
  assert_int_equal(read_text("ImageId,EncodedPixels,Height,Width\nx,1 2,3,zz\n", &csv, path), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "bad.csv:2: Height,Width"));
  /* Size-dependent errors show up when the image is assembled, still naming the line. */
  assert_int_equal(read_text("ImageId,EncodedPixels,Height,Width\nx,1 2,3,3\nx,9 3,3,3\n", &csv, path), KY_OK);
  int32_t *lab;
  assert_int_equal(ky_rle_csv_labels(&lab, NULL, NULL, &csv, "x", 0, 0), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "bad.csv:3: run 1 (9 3) ends at pixel 11, past the 9 pixels"));
  assert_int_equal(ky_rle_csv_labels(&lab, NULL, NULL, &csv, "nope", 0, 0), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "image id nope not found"));
  ky_rle_csv_free(&csv);
  assert_int_equal(read_text("ImageId,EncodedPixels\nx,1 5\nx,3 2\n", &csv, path), KY_OK);
  assert_int_equal(ky_rle_csv_labels(&lab, NULL, NULL, &csv, "x", 4, 4), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "bad.csv:3: run 1 covers pixel 3 (row 2, col 0) already owned by instance 1"));
  ky_rle_csv_free(&csv);
  remove(path);
  assert_int_equal(ky_rle_csv_read(&csv, path), KY_ERR_IO);
  assert_non_null(strstr(ky_last_error(), "bad.csv"));
  rmdir(dir);
}

static void test_malformed_rle_strings(void **st) {
  int32_t lab[12] = {0};
  assert_int_equal(ky_rle_decode(lab, 3, 4, "0 1", 1, "img"), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "img: run 1 starts at 0, expected 1..12"));
  assert_int_equal(ky_rle_decode(lab, 3, 4, "1 0", 1, "img"), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "run 1 has length 0"));
  assert_int_equal(ky_rle_decode(lab, 3, 4, "5 3 6 1", 1, "img"), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "run 2 starts at 6, overlapping"));
  assert_int_equal(ky_rle_decode(lab, 3, 4, "5 3 1", 1, "img"), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "3 values"));
  assert_int_equal(ky_rle_decode(lab, 3, 4, "5 x", 1, "img"), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "value 2 is \"x\""));
  assert_int_equal(ky_rle_decode(lab, 3, 4, "", 1, "img"), KY_OK);
  assert_int_equal(ky_rle_decode(lab, 3, 4, "1 1", 0, "img"), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "instance id 0"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_encode_column_major),
    cmocka_unit_test(test_random_round_trip_through_csv),
    cmocka_unit_test(test_malformed_csv_names_line),
    cmocka_unit_test(test_malformed_rle_strings),
  };
  return cmocka_run_group_tests_name("post_rle", tests, NULL, NULL);
}

/* Tests for core/safetensors: a file written by an independent Python writer, round trips, and
 * malformed files (each gives KY_ERR_FORMAT with a message naming the problem, never a crash). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/safetensors.h"
#include "tests/util_test.h"

static void test_reads_python_file(void **st) {
  ky_st_file f;
  assert_int_equal(ky_st_read(&f, "tests/fixtures/safetensors/small.safetensors"), KY_OK);
  assert_int_equal(f.n, 3);
  const ky_st_entry *w = ky_st_find(&f, "w");
  assert_non_null(w);
  assert_int_equal(w->dtype, KY_F32);
  assert_int_equal(w->ndim, 2);
  assert_int_equal(w->shape[1], 3);
  const float *wd = ky_st_data(&f, w);
  for (int i = 0; i < 6; i++) assert_true(wd[i] == 0.5f * i);
  const ky_st_entry *n = ky_st_find(&f, "nbt");
  assert_int_equal(n->dtype, KY_I64);
  int64_t v;
  memcpy(&v, ky_st_data(&f, n), 8);
  assert_int_equal(v, 7);
  const uint8_t *u = ky_st_data(&f, ky_st_find(&f, "u8"));
  assert_int_equal(u[3], 250);
  assert_string_equal(ky_st_meta(&f, "step"), "12");
  assert_null(ky_st_meta(&f, "nope"));
  ky_st_free(&f);
}

static void test_round_trip(void **st) {
  char *dir = ky_test_tmpdir("st");
  char path[300];
  snprintf(path, sizeof path, "%s/rt.safetensors", dir);
  float a[5] = {1, -2, 3.5f, 1e-30f, 7};
  int32_t b[2] = {-5, 9};
  int64_t sa[1] = {5}, sb[2] = {1, 2};
  ky_st_writer w;
  ky_st_writer_init(&w);
  assert_int_equal(ky_st_writer_add(&w, "layer.0.weight", KY_F32, 1, sa, a), KY_OK);
  assert_int_equal(ky_st_writer_add(&w, "idx", KY_I32, 2, sb, b), KY_OK);
  assert_int_equal(ky_st_writer_add(&w, "idx", KY_I32, 2, sb, b), KY_ERR_ARG);
  assert_int_equal(ky_st_writer_meta(&w, "config", "model = unet_resnet34\nloss = \"softmax\" \\ x\t."), KY_OK);
  assert_int_equal(ky_st_writer_save(&w, path), KY_OK);
  ky_st_writer_free(&w);
  ky_st_file f;
  assert_int_equal(ky_st_read(&f, path), KY_OK);
  assert_memory_equal(ky_st_data(&f, ky_st_find(&f, "layer.0.weight")), a, sizeof a);
  assert_memory_equal(ky_st_data(&f, ky_st_find(&f, "idx")), b, sizeof b);
  assert_string_equal(ky_st_meta(&f, "config"), "model = unet_resnet34\nloss = \"softmax\" \\ x\t.");
  assert_int_equal(f.data_start % 8, 0);
  ky_st_free(&f);
  ky_test_rmdir(dir);
  free(dir);
}

/* Writes an 8-byte length + header + data and expects a format error mentioning `needle`. */
static void expect_bad(const char *dir, const char *header, size_t data_len, long long len_override, const char *needle) {
  char path[300];
  snprintf(path, sizeof path, "%s/bad.safetensors", dir);
  size_t hl = strlen(header);
  size_t total = 8 + hl + data_len;
  uint8_t *buf = calloc(1, total);
  uint64_t L = len_override >= 0 ? (uint64_t)len_override : hl;
  for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(L >> (8 * i));
  memcpy(buf + 8, header, hl);
  assert_int_equal(ky_file_write_atomic(path, buf, total), KY_OK);
  free(buf);
  ky_st_file f;
  ky_status s = ky_st_read(&f, path);
  if (s != KY_ERR_FORMAT) fail_msg("header %s: status %d (%s)", header, s, ky_last_error());
  if (!strstr(ky_last_error(), needle)) fail_msg("header %s: message '%s' lacks '%s'", header, ky_last_error(), needle);
  if (!strstr(ky_last_error(), "bad.safetensors")) fail_msg("message '%s' does not name the file", ky_last_error());
}

static void test_malformed_files(void **st) {
  char *dir = ky_test_tmpdir("stbad");
  const char *ok_entry = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
  expect_bad(dir, ok_entry, 8, 1000, "header length");
  expect_bad(dir, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8, -1, "expected '}'");
  expect_bad(dir, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}", 8, -1, "outside");
  expect_bad(dir, "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, -1, "needing 12");
  expect_bad(dir, "{\"a\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, -1, "unsupported dtype 'Q7'");
  expect_bad(dir, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, -1, "lacks data_offsets");
  expect_bad(dir, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}", 8, -1, "overlap");
  expect_bad(dir, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, -1, "twice");
  expect_bad(dir, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, -1, "negative");
  expect_bad(dir, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} x", 8, -1, "trailing");
  expect_bad(dir, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"zz\":1}}", 8, -1, "unknown field");
  expect_bad(dir, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 0, -1, "outside");
  /* Too short to hold the length. */
  char path[300];
  snprintf(path, sizeof path, "%s/short.safetensors", dir);
  assert_int_equal(ky_file_write_atomic(path, "abc", 3), KY_OK);
  ky_st_file f;
  assert_int_equal(ky_st_read(&f, path), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "too short"));
  assert_int_equal(ky_st_read(&f, "/nonexistent/x.safetensors"), KY_ERR_IO);
  ky_test_rmdir(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reads_python_file),
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_malformed_files),
  };
  return cmocka_run_group_tests_name("core_safetensors", tests, NULL, NULL);
}

/* Tests for core/status (messages, context prefixes) and core/fileio (atomic writes keep the
 * previous file when a write fails). Run by `make test`. */
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
#include "core/status.h"

static void test_error_message(void **st) {
  ky_status s = ky_error(KY_ERR_SHAPE, "conv2d: x has %d channels, w expects %d", 3, 4);
  assert_int_equal(s, KY_ERR_SHAPE);
  assert_string_equal(ky_last_error(), "conv2d: x has 3 channels, w expects 4");
  ky_error_context(s, "layer %s: ", "conv1");
  assert_string_equal(ky_last_error(), "layer conv1: conv2d: x has 3 channels, w expects 4");
  ky_error_clear();
  assert_string_equal(ky_last_error(), "");
  assert_string_equal(ky_status_name(KY_ERR_IO), "i/o error");
}

static void test_atomic_write_replaces(void **st) {
  char dir[] = "/tmp/ky_fileio_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[256];
  snprintf(path, sizeof path, "%s/a.txt", dir);
  assert_int_equal(ky_file_write_atomic(path, "first", 5), KY_OK);
  char *buf; size_t n;
  assert_int_equal(ky_file_read_all(path, &buf, &n), KY_OK);
  assert_int_equal(n, 5);
  assert_memory_equal(buf, "first", 5);
  free(buf);
  /* An aborted write leaves the previous content and no temporary behind. */
  ky_atomic_file af;
  assert_int_equal(ky_atomic_open(&af, path), KY_OK);
  fputs("partial", af.f);
  ky_atomic_abort(&af);
  assert_int_equal(ky_file_read_all(path, &buf, &n), KY_OK);
  assert_memory_equal(buf, "first", 5);
  free(buf);
  assert_int_not_equal(access(af.tmp, F_OK), 0);
  remove(path);
  rmdir(dir);
}

static void test_write_into_missing_folder_fails_cleanly(void **st) {
  ky_status s = ky_file_write_atomic("/nonexistent_dir_ky/x.bin", "x", 1);
  assert_int_equal(s, KY_ERR_IO);
  assert_non_null(strstr(ky_last_error(), "/nonexistent_dir_ky/x.bin"));
}

static void test_read_missing_file_names_it(void **st) {
  char *buf; size_t n;
  assert_int_equal(ky_file_read_all("/nonexistent_ky_file", &buf, &n), KY_ERR_IO);
  assert_non_null(strstr(ky_last_error(), "/nonexistent_ky_file"));
  assert_null(buf);
}

static void test_mkdirs(void **st) {
  char dir[] = "/tmp/ky_mkdirs_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[256];
  snprintf(path, sizeof path, "%s/a/b/c", dir);
  assert_int_equal(ky_mkdirs(path), KY_OK);
  assert_int_equal(ky_mkdirs(path), KY_OK);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_error_message),
      cmocka_unit_test(test_atomic_write_replaces),
      cmocka_unit_test(test_write_into_missing_folder_fails_cleanly),
      cmocka_unit_test(test_read_missing_file_names_it),
      cmocka_unit_test(test_mkdirs),
  };
  return cmocka_run_group_tests_name("core_status", tests, NULL, NULL);
}

/* Tests for core/fileio: an atomic write replaces the file whole; an aborted or failed write leaves
 * the previous file intact and no temporary behind; whole-file reads (empty, larger than the first
 * buffer, missing); mkdir -p, including over an existing file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fileio.h"
#include "tests/util_test.h"

static int entries(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
  if (d) closedir(d);
  return n;
}

static void expect_content(const char *path, const char *want) {
  char *got;
  size_t n;
  assert_int_equal(ky_file_read_all(path, &got, &n), KY_OK);
  assert_int_equal(n, strlen(want));
  assert_string_equal(got, want);
  free(got);
}

static void test_atomic_replace_and_failure(void **st) {
  char *dir = ky_test_tmpdir("fileio"), p[512], sub[512];
  snprintf(p, sizeof p, "%s/a.txt", dir);
  assert_int_equal(ky_file_write_atomic(p, "first", 5), KY_OK);
  expect_content(p, "first");
  assert_int_equal(ky_file_write_atomic(p, "second version", 14), KY_OK);
  expect_content(p, "second version");
  assert_int_equal(entries(dir), 1);

  /* Aborted halfway: the old file stays, the temporary is gone. */
  ky_atomic_file af;
  assert_int_equal(ky_atomic_open(&af, p), KY_OK);
  fputs("half a new", af.f);
  assert_int_equal(entries(dir), 2);
  ky_atomic_abort(&af);
  expect_content(p, "second version");
  assert_int_equal(entries(dir), 1);

  /* A commit that cannot rename (the destination is now a folder) fails, names both paths and
   * leaves no temporary. */
  snprintf(sub, sizeof sub, "%s/d", dir);
  assert_int_equal(ky_mkdirs(sub), KY_OK);
  char inner[600];
  snprintf(inner, sizeof inner, "%s/x", sub);
  assert_int_equal(ky_file_write_atomic(inner, "x", 1), KY_OK);
  assert_int_equal(ky_atomic_open(&af, sub), KY_OK);
  fputs("data", af.f);
  assert_int_equal(ky_atomic_commit(&af), KY_ERR_IO);
  assert_non_null(strstr(ky_last_error(), sub));
  assert_int_equal(entries(dir), 2);   /* a.txt and d/ */
  expect_content(inner, "x");

  /* A write into a missing folder fails with the path; nothing appears. */
  char bad[600];
  snprintf(bad, sizeof bad, "%s/missing/b.txt", dir);
  assert_int_equal(ky_file_write_atomic(bad, "x", 1), KY_ERR_IO);
  assert_non_null(strstr(ky_last_error(), "missing/b.txt"));
  /* Committing twice is a state error, not a crash. */
  assert_int_equal(ky_atomic_commit(&af), KY_ERR_STATE);
  ky_test_rmdir(dir);
  free(dir);
}

static void test_read_all_and_mkdirs(void **st) {
  char *dir = ky_test_tmpdir("fileio2"), p[512];
  snprintf(p, sizeof p, "%s/empty", dir);
  assert_int_equal(ky_file_write_atomic(p, "", 0), KY_OK);
  char *b;
  size_t n = 99;
  assert_int_equal(ky_file_read_all(p, &b, &n), KY_OK);
  assert_int_equal(n, 0);
  assert_int_equal(b[0], 0);
  free(b);
  /* Larger than the first 64 KiB buffer, with NUL bytes inside. */
  size_t big = 200000;
  char *data = malloc(big);
  for (size_t i = 0; i < big; i++) data[i] = (char)(i * 7 % 251);
  snprintf(p, sizeof p, "%s/big", dir);
  assert_int_equal(ky_file_write_atomic(p, data, big), KY_OK);
  assert_int_equal(ky_file_read_all(p, &b, &n), KY_OK);
  assert_int_equal(n, big);
  assert_memory_equal(b, data, big);
  assert_int_equal(b[big], 0);
  free(b);
  free(data);
  snprintf(p, sizeof p, "%s/nope", dir);
  assert_int_equal(ky_file_read_all(p, &b, &n), KY_ERR_IO);
  assert_null(b);
  assert_non_null(strstr(ky_last_error(), p));
  /* mkdir -p: nested, idempotent, and refused over a file. */
  snprintf(p, sizeof p, "%s/a/b/c", dir);
  assert_int_equal(ky_mkdirs(p), KY_OK);
  assert_int_equal(ky_mkdirs(p), KY_OK);
  struct stat sb;
  assert_int_equal(stat(p, &sb), 0);
  assert_true(S_ISDIR(sb.st_mode));
  snprintf(p, sizeof p, "%s/big", dir);
  assert_int_equal(ky_mkdirs(p), KY_ERR_IO);
  assert_non_null(strstr(ky_last_error(), "not a folder"));
  ky_test_rmdir(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_atomic_replace_and_failure),
      cmocka_unit_test(test_read_all_and_mkdirs),
  };
  return cmocka_run_group_tests_name("core_fileio", tests, NULL, NULL);
}

/* core/fileio: an atomic write replaces the file whole; an aborted or failed write leaves the
 * previous file intact and no temporary behind; whole-file reads (empty, larger than the first
 * buffer, missing) refuse folders and endless files; text reads drop a BOM, fold CRLF and name a
 * NUL byte; ky_printable; mkdir -p, including over an existing file; staged output folders. */
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
#include <unistd.h>

#include "core/fileio.h"
#include "tests/util_test.h"

static char *dir;

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

static void path_in(char *p, size_t cap, const char *name) { snprintf(p, cap, "%s/%s", dir, name); }

static void test_read_refuses_folders_and_devices(void **st) {
  char *b;
  size_t n;
  assert_int_equal(ky_file_read_all(dir, &b, &n), KY_ERR_IO);
  assert_non_null(strstr(ky_last_error(), "is a folder, expected a regular file"));
  /* /dev/zero would be read until memory runs out. */
  assert_int_equal(ky_file_read_all("/dev/zero", &b, &n), KY_ERR_IO);
  assert_non_null(strstr(ky_last_error(), "/dev/zero is not a regular file"));
  char loop[512];
  path_in(loop, sizeof loop, "loop");
  assert_int_equal(symlink(loop, loop), 0);
  assert_int_equal(ky_file_read_all(loop, &b, &n), KY_ERR_IO);
  assert_non_null(strstr(ky_last_error(), "symbolic links"));
  unlink(loop);
}

static void test_read_text(void **st) {
  char p[512], *b;
  size_t n;
  path_in(p, sizeof p, "t.txt");
  const char win[] = "\xef\xbb\xbfkey = 1\r\nx = a\rb\r\n";
  assert_int_equal(ky_file_write_atomic(p, win, sizeof win - 1), KY_OK);
  assert_int_equal(ky_file_read_text(p, &b, &n), KY_OK);
  assert_string_equal(b, "key = 1\nx = a\rb\n");   /* a lone CR is content, not a line end */
  assert_int_equal(n, strlen(b));
  free(b);
  const char nul[] = "a = 1\nb = 2\nc\0 = 3\nd = 4\n";
  assert_int_equal(ky_file_write_atomic(p, nul, sizeof nul - 1), KY_OK);
  assert_int_equal(ky_file_read_text(p, &b, &n), KY_ERR_FORMAT);
  assert_null(b);
  assert_non_null(strstr(ky_last_error(), "t.txt: NUL byte at line 3 (byte 13)"));
}

static void test_printable(void **st) {
  char d[32];
  assert_string_equal(ky_printable(d, sizeof d, "ok", 60), "ok");
  assert_string_equal(ky_printable(d, sizeof d, "a\x01\xff", 60), "a\\x01\\xff");
  assert_string_equal(ky_printable(d, sizeof d, "abcdef", 3), "abc...");
  /* Never past the buffer, whatever the input. */
  char big[200];
  memset(big, 0x80, sizeof big - 1);
  big[sizeof big - 1] = 0;
  ky_printable(d, sizeof d, big, 1000);
  assert_true(strlen(d) < sizeof d);
  assert_non_null(strstr(d, "..."));
}

static void put(const char *root, const char *rel, const char *text) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", root, rel);
  char *slash = strrchr(p, '/');
  *slash = 0;
  assert_int_equal(ky_mkdirs(p), KY_OK);
  *slash = '/';
  assert_int_equal(ky_file_write_atomic(p, text, strlen(text)), KY_OK);
}

static char *get(const char *root, const char *rel) {
  char p[1024], *b;
  size_t n;
  snprintf(p, sizeof p, "%s/%s", root, rel);
  return ky_file_read_all(p, &b, &n) == KY_OK ? b : NULL;
}

static void expect_file(const char *root, const char *rel, const char *text) {
  char *b = get(root, rel);
  if (!b || strcmp(b, text)) fail_msg("%s/%s is '%s', expected '%s'", root, rel, b ? b : "(missing)", text);
  free(b);
}

static void test_staged_dir(void **st) {
  char out[600];
  snprintf(out, sizeof out, "%s/out", dir);
  put(out, "labels/a.png", "old a");
  put(out, "labels/keep.png", "old keep");
  put(out, "submission.csv", "old csv");
  /* Aborted: nothing under out changes, and the temporary folder is gone. */
  ky_staged_dir sd;
  assert_int_equal(ky_staged_open(&sd, out), KY_OK);
  char tmp[sizeof sd.tmp];
  strcpy(tmp, sd.tmp);
  assert_int_equal(strncmp(tmp, out, strlen(out)), 0);
  put(sd.tmp, "labels/a.png", "new a");
  put(sd.tmp, "submission.csv", "new csv");
  ky_staged_abort(&sd);
  assert_int_equal(access(tmp, F_OK), -1);
  expect_file(out, "labels/a.png", "old a");
  expect_file(out, "submission.csv", "old csv");
  /* Committed ("out/" names the same folder): new files replace, others stay, new folders appear. */
  char slash[620];
  snprintf(slash, sizeof slash, "%s/", out);
  assert_int_equal(ky_staged_open(&sd, slash), KY_OK);
  put(sd.tmp, "labels/a.png", "new a");
  put(sd.tmp, "overlay/a.png", "new overlay");
  put(sd.tmp, "submission.csv", "new csv");
  strcpy(tmp, sd.tmp);
  assert_int_equal(ky_staged_commit(&sd), KY_OK);
  assert_int_equal(access(tmp, F_OK), -1);
  expect_file(out, "labels/a.png", "new a");
  expect_file(out, "labels/keep.png", "old keep");
  expect_file(out, "overlay/a.png", "new overlay");
  expect_file(out, "submission.csv", "new csv");
  /* A folder that does not exist yet, under parents that do not either. */
  snprintf(out, sizeof out, "%s/x/y/z", dir);
  assert_int_equal(ky_staged_open(&sd, out), KY_OK);
  put(sd.tmp, "f.txt", "f");
  assert_int_equal(ky_staged_commit(&sd), KY_OK);
  expect_file(out, "f.txt", "f");
}

KY_TEST_TMPDIR_FIXTURES("fileio")

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_atomic_replace_and_failure),
      cmocka_unit_test(test_read_all_and_mkdirs),
      cmocka_unit_test(test_read_refuses_folders_and_devices),
      cmocka_unit_test(test_read_text),
      cmocka_unit_test(test_printable),
      cmocka_unit_test(test_staged_dir),
  };
  return cmocka_run_group_tests_name("core_fileio", tests, setup, teardown);
}

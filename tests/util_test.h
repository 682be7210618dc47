/* Small helpers shared by the test and bench programs (linked into every one): temporary folders,
 * tolerant float comparison with a message naming the worst element, benchmark timing. */
#ifndef KY_TESTS_UTIL_H
#define KY_TESTS_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

/* mkdtemp under /tmp; returns a static-lifetime path owned by the caller (free()). */
char *ky_test_tmpdir(const char *tag);
/* rm -rf of a folder made by ky_test_tmpdir. */
void ky_test_rmdir(const char *path);
/* Max over i of |a-b| / (atol + rtol*|b|); *worst receives the index. NaN anywhere -> +inf. */
double ky_test_max_err(const float *a, const float *b, size_t n, double atol, double rtol, size_t *worst);

/* Command-line tests: runs a shell command line with stdout and stderr into `log` and returns its
 * exit status (-1 when it did not exit); reads a text file (malloc'ed, "" when unreadable); tells
 * whether `log` contains needle (else prints the log to stderr and returns 0). */
int ky_test_sh(const char *log, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *ky_test_read_text(const char *path);
int ky_test_log_has(const char *log, const char *needle);

/* Benchmarks: a monotonic clock in milliseconds, and a qsort comparator for doubles. */
double ky_test_now_ms(void);
int ky_test_cmp_double(const void *a, const void *b);

/* Channel 0 of an 8- or 16-bit PNG as int32 [h, w] (malloc'ed); NULL with ky_last_error() set on
 * failure (callers turn that into a test failure). */
int32_t *ky_test_load_png_i32(const char *path, int *h, int *w);
/* 1 when the PNG at path is an 8-bit RGB w x h image equal to rgb [h, w, 3]; else 0 with
 * ky_last_error() saying how it differs. */
int ky_test_png_is_rgb(const char *path, const uint8_t *rgb, int w, int h);

/* Group setup and teardown for a suite that works in one temporary folder kept in its
 * `static char *dir`: KY_TEST_TMPDIR_FIXTURES("tag") defines setup() and teardown(). */
#define KY_TEST_TMPDIR_FIXTURES(tag)                                                                \
  static int setup(void **st) { (void)st; dir = ky_test_tmpdir(tag); return dir ? 0 : -1; }        \
  static int teardown(void **st) { (void)st; ky_test_rmdir(dir); free(dir); return 0; }

/* The built `karyon` ($KY_BUILD/karyon, as set by `make test`, else build/karyon): its path, or
 * NULL (with a line on stderr) when it is not there. */
const char *ky_test_karyon_bin(void);

/* Runs `$KY_BUILD/karyon ARGS` (KY_BUILD as set by `make test`, else build/) with stdout and
 * stderr captured; returns its exit status and, when output is not NULL, what it printed
 * (malloc'ed, never NULL). */
int ky_test_karyon(char **output, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

/* Shared test/bench helpers (see tests/util_test.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "tests/util_test.h"

#include "core/fileio.h"
#include "core/image.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

char *ky_test_tmpdir(const char *tag) {
  char *p = malloc(256);
  if (!p) return NULL;
  snprintf(p, 256, "/tmp/karyon_%s_XXXXXX", tag);
  if (!mkdtemp(p)) { free(p); return NULL; }
  return p;
}

void ky_test_rmdir(const char *path) {
  if (!path || strncmp(path, "/tmp/karyon_", 12) != 0) return;
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
  if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", path);
}

double ky_test_max_err(const float *a, const float *b, size_t n, double atol, double rtol, size_t *worst) {
  double m = 0;
  size_t w = 0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs((double)a[i] - b[i]) / (atol + rtol * fabs((double)b[i]));
    if (isnan(a[i]) || isnan(b[i])) e = INFINITY;
    if (e > m) { m = e; w = i; }
  }
  if (worst) *worst = w;
  return m;
}

int32_t *ky_test_load_png_i32(const char *path, int *h, int *w) {
  ky_image im;
  if (ky_image_load(&im, path) != KY_OK) return NULL;
  *h = im.h;
  *w = im.w;
  int32_t *o = malloc((size_t)im.h * im.w * sizeof *o);
  if (o)
    for (size_t i = 0; i < (size_t)im.h * im.w; i++)
      o[i] = im.depth == 16 ? ((uint16_t *)im.data)[i * im.c] : ((uint8_t *)im.data)[i * im.c];
  ky_image_free(&im);
  return o;
}

int ky_test_png_is_rgb(const char *path, const uint8_t *rgb, int w, int h) {
  ky_image im;
  if (ky_image_load(&im, path) != KY_OK) return 0;
  int ok = im.w == w && im.h == h && im.c == 3 && im.depth == 8;
  if (!ok) ky_error(KY_ERR_SHAPE, "%s is %dx%dx%d (%d-bit), expected %dx%dx3 8-bit", path, im.w, im.h, im.c, im.depth, w, h);
  size_t i = 0, n = (size_t)w * h * 3;
  while (ok && i < n && ((uint8_t *)im.data)[i] == rgb[i]) i++;
  if (ok && i < n) { ok = 0; ky_error(KY_ERR_FORMAT, "%s differs at pixel %zu, channel %zu", path, i / 3, i % 3); }
  ky_image_free(&im);
  return ok;
}

double ky_test_now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

int ky_test_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int ky_test_sh(const char *log, const char *fmt, ...) {
  char args[4096], cmd[5200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(args, sizeof args, fmt, ap);
  va_end(ap);
  snprintf(cmd, sizeof cmd, "%s > %s 2>&1", args, log);
  int rc = system(cmd);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

char *ky_test_read_text(const char *path) {
  char *b;
  size_t n;
  if (ky_file_read_all(path, &b, &n) != KY_OK) { ky_error_clear(); return strdup(""); }
  return b;
}

int ky_test_log_has(const char *log, const char *needle) {
  char *o = ky_test_read_text(log);
  int has = strstr(o, needle) != NULL;
  if (!has) fprintf(stderr, "%s lacks '%s':\n%s\n", log, needle, o);
  free(o);
  return has;
}

const char *ky_test_karyon_bin(void) {
  static char k[512];
  const char *b = getenv("KY_BUILD");
  snprintf(k, sizeof k, "%s/karyon", b && *b ? b : "build");
  if (access(k, X_OK) == 0) return k;
  fprintf(stderr, "%s not built (make test builds it)\n", k);
  return NULL;
}

int ky_test_karyon(char **output, const char *fmt, ...) {
  const char *b = getenv("KY_BUILD");
  char args[4096], out[64], cmd[4600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(args, sizeof args, fmt, ap);
  va_end(ap);
  snprintf(out, sizeof out, "/tmp/karyon_out_XXXXXX");
  int fd = mkstemp(out);
  if (fd < 0) return -1;
  close(fd);
  snprintf(cmd, sizeof cmd, "%s/karyon %s > %s 2>&1 < /dev/null", b && *b ? b : "build", args, out);
  int rc = system(cmd);
  char *text = NULL;
  size_t n;
  if (ky_file_read_all(out, &text, &n) != KY_OK) text = strdup("");
  unlink(out);
  if (output) *output = text;
  else free(text);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

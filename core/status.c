/* Thread-local error message buffer behind ky_error / ky_last_error, and the size of the last
 * host allocation that failed, which every "out of memory" message then gives.
 * Tested by tests/test_core_status.c and tests/test_apps_nothing_lost.c (lowered memory limit). */
#define KY_STATUS_IMPL   /* the real ky_error, not the analyser's view of it (status.h) */
#include "core/status.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define KY_ERRMSG_MAX 1024
static _Thread_local char ky_errmsg[KY_ERRMSG_MAX];
static _Thread_local size_t ky_failed_bytes;

/* The programs link with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc (the Makefile's
 * KY_WRAP_ALLOC, also aligned_alloc and posix_memalign), so every allocation karyon's own code makes passes here: the ~190 places that
 * report KY_ERR_NOMEM need not each say the size. Without the flag these are never called, and
 * the weak references keep a plain link working. */
extern void *__real_malloc(size_t n) __attribute__((weak));
extern void *__real_calloc(size_t n, size_t m) __attribute__((weak));
extern void *__real_realloc(void *p, size_t n) __attribute__((weak));
extern void *__real_aligned_alloc(size_t a, size_t n) __attribute__((weak));
extern int __real_posix_memalign(void **p, size_t a, size_t n) __attribute__((weak));
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t a, size_t n);
int __wrap_posix_memalign(void **p, size_t a, size_t n);

void *__wrap_malloc(size_t n) {
  void *p = __real_malloc(n);
  if (!p && n) ky_failed_bytes = n;
  return p;
}

void *__wrap_calloc(size_t n, size_t m) {
  void *p = __real_calloc(n, m);
  if (!p && n && m) ky_failed_bytes = n > SIZE_MAX / m ? SIZE_MAX : n * m;
  return p;
}

void *__wrap_realloc(void *q, size_t n) {
  void *p = __real_realloc(q, n);
  if (!p && n) ky_failed_bytes = n;
  return p;
}

void *__wrap_aligned_alloc(size_t a, size_t n) {
  void *p = __real_aligned_alloc(a, n);
  if (!p && n) ky_failed_bytes = n;
  return p;
}

int __wrap_posix_memalign(void **p, size_t a, size_t n) {
  int r = __real_posix_memalign(p, a, n);
  if (r && n) ky_failed_bytes = n;
  return r;
}

ky_status ky_verror(ky_status code, const char *fmt, va_list ap) {
  int len = vsnprintf(ky_errmsg, sizeof ky_errmsg, fmt, ap);
  if (code == KY_ERR_NOMEM && ky_failed_bytes && len >= 0 && (size_t)len < sizeof ky_errmsg) {
    struct rlimit rl;
    char lim[96] = "";
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
      snprintf(lim, sizeof lim, "; address-space limit %.1f MB", rl.rlim_cur / 1048576.0);
    else if (getrlimit(RLIMIT_DATA, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
      snprintf(lim, sizeof lim, "; data limit %.1f MB", rl.rlim_cur / 1048576.0);
    snprintf(ky_errmsg + len, sizeof ky_errmsg - (size_t)len, " (an allocation of %zu bytes = %.1f MB failed%s)",
             ky_failed_bytes, ky_failed_bytes / 1048576.0, lim);
    ky_failed_bytes = 0;
  }
  return code;
}

ky_status ky_error(ky_status code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  ky_verror(code, fmt, ap);
  va_end(ap);
  return code;
}

ky_status ky_error_context(ky_status code, const char *fmt, ...) {
  char prefix[KY_ERRMSG_MAX], old[KY_ERRMSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, ky_errmsg, sizeof old);
  snprintf(ky_errmsg, sizeof ky_errmsg, "%s%s", prefix, old);
  return code;
}

const char *ky_last_error(void) { return ky_errmsg; }
void ky_error_clear(void) { ky_errmsg[0] = 0; }

const char *ky_status_name(ky_status s) {
  switch (s) {
    case KY_OK: return "ok";
    case KY_ERR_ARG: return "bad argument";
    case KY_ERR_SHAPE: return "shape mismatch";
    case KY_ERR_IO: return "i/o error";
    case KY_ERR_FORMAT: return "malformed input";
    case KY_ERR_NOMEM: return "out of memory";
    case KY_ERR_CUDA: return "cuda error";
    case KY_ERR_STATE: return "invalid state";
    case KY_ERR_NUMERIC: return "non-finite value";
  }
  return "unknown status";
}

void ky_assert_fail(const char *expr, const char *file, int line) {
  fprintf(stderr, "karyon: internal assertion failed: %s (%s:%d)\n", expr, file, line);
  abort();
}

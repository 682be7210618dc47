/* Thread-local error message buffer behind ky_error / ky_last_error.
 * Tested by tests/test_core_status.c. */
#define KY_STATUS_IMPL   /* the real ky_error, not the analyser's view of it (status.h) */
#include "core/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KY_ERRMSG_MAX 1024
static _Thread_local char ky_errmsg[KY_ERRMSG_MAX];

ky_status ky_verror(ky_status code, const char *fmt, va_list ap) {
  vsnprintf(ky_errmsg, sizeof ky_errmsg, fmt, ap);
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

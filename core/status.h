/* Status codes and readable error messages for every public karyon entry point.
 * Tested by tests/test_core_status.c (messages, nesting) and by every suite's bad-input cases. */
#ifndef KY_STATUS_H
#define KY_STATUS_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {   /* the CUDA backend (.cu, compiled as C++) reports errors through these */
#endif

typedef enum {
  KY_OK = 0,
  KY_ERR_ARG,      /* NULL pointer, bad option value, out-of-range parameter */
  KY_ERR_SHAPE,    /* tensor shapes or dtypes do not fit the operation */
  KY_ERR_IO,       /* a file could not be opened, read or written */
  KY_ERR_FORMAT,   /* a file was read but its content is malformed */
  KY_ERR_NOMEM,    /* host or device allocation failed */
  KY_ERR_CUDA,     /* a CUDA / cuBLAS call failed, or no GPU where one was asked for */
  KY_ERR_STATE,    /* call made in the wrong state (e.g. backward without a tape) */
  KY_ERR_NUMERIC,  /* NaN / Inf where a finite value was required */
} ky_status;

/* Records a message ("what, which file/tensor, expected vs got") and returns `code`, so that
 * `return ky_error(KY_ERR_SHAPE, "conv2d: x has %d channels, w expects %d", a, b);` reads well.
 * The message lives in a thread-local buffer (like errno): the one piece of state per thread
 * that the library keeps, so that callers on other threads never see each other's errors. */
ky_status ky_error(ky_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
ky_status ky_verror(ky_status code, const char *fmt, va_list ap);

/* Prefixes the current message with context ("loading ckpt.safetensors: ") and returns code. */
ky_status ky_error_context(ky_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

const char *ky_last_error(void);   /* "" when none */
void ky_error_clear(void);
const char *ky_status_name(ky_status s);

/* The clang static analyser (make check-static) reads one file at a time, so it cannot see that
 * ky_error and ky_error_context return their code, never KY_OK; without this it follows "failed
 * but returned KY_OK" paths that do not exist. Analyser builds only; status.c defines the real ones. */
#if defined(__clang_analyzer__) && !defined(KY_STATUS_IMPL)
#define ky_error(code, ...) (ky_error((code), __VA_ARGS__), (ky_status)(code))
#define ky_error_context(code, ...) (ky_error_context((code), __VA_ARGS__), (ky_status)(code))
#endif

/* Propagates a non-OK status. */
#define KY_TRY(expr) do { ky_status ky_s_ = (expr); if (ky_s_ != KY_OK) return ky_s_; } while (0)

/* Argument checks at public entry points. */
#define KY_CHECK(cond, code, ...) do { if (!(cond)) return ky_error((code), __VA_ARGS__); } while (0)
#define KY_CHECK_NULL(p, what) KY_CHECK((p) != NULL, KY_ERR_ARG, "%s: %s is NULL", __func__, what)

/* Internal invariants: stay on in release builds; print where and abort. Never used for
 * anything a caller's input can trigger (that is an error status). */
void ky_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));
#define KY_ASSERT(cond) do { if (!(cond)) ky_assert_fail(#cond, __FILE__, __LINE__); } while (0)

#ifdef __cplusplus
}
#endif

#endif

/* Tensor metadata helpers: sizes, descriptions for messages, argument checks.
 * Tested by tests/test_core_tensor.c. */
#include "core/tensor.h"

#include <stdio.h>
#include <string.h>

size_t ky_dtype_size(ky_dtype t) {
  switch (t) {
    case KY_F32: case KY_I32: return 4;
    case KY_U8: return 1;
    case KY_I64: case KY_F64: return 8;
    case KY_F16: case KY_BF16: return 2;
  }
  return 0;
}

const char *ky_dtype_name(ky_dtype t) {
  switch (t) {
    case KY_F32: return "f32";
    case KY_U8: return "u8";
    case KY_I32: return "i32";
    case KY_I64: return "i64";
    case KY_F64: return "f64";
    case KY_F16: return "f16";
    case KY_BF16: return "bf16";
  }
  return "?";
}

size_t ky_tensor_numel(const ky_tensor *t) {
  size_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
  return n;
}

size_t ky_tensor_bytes(const ky_tensor *t) { return ky_tensor_numel(t) * ky_dtype_size(t->dtype); }

const char *ky_tensor_desc(const ky_tensor *t, char *buf, size_t len) {
  if (!t) { snprintf(buf, len, "NULL"); return buf; }
  size_t o = 0;
  o += snprintf(buf + o, len - o, "[");
  for (int i = 0; i < t->ndim && o < len; i++) o += snprintf(buf + o, len - o, i ? ", %d" : "%d", t->shape[i]);
  if (o < len) snprintf(buf + o, len - o, "] %s %s", ky_dtype_name(t->dtype), t->dev == KY_DEV_CUDA ? "cuda" : "cpu");
  return buf;
}

int ky_tensor_same_shape(const ky_tensor *a, const ky_tensor *b) {
  if (a->ndim != b->ndim) return 0;
  for (int i = 0; i < a->ndim; i++) if (a->shape[i] != b->shape[i]) return 0;
  return 1;
}

ky_status ky_tensor_check(const ky_tensor *t, const char *op, const char *arg, ky_dtype dtype, int ndim) {
  if (!t) return ky_error(KY_ERR_ARG, "%s: %s is NULL", op, arg);
  if (!t->data && ky_tensor_numel(t) > 0) return ky_error(KY_ERR_ARG, "%s: %s has no data", op, arg);
  if (t->dtype != dtype || (ndim > 0 && t->ndim != ndim)) {
    char d[96];
    if (ndim > 0)
      return ky_error(KY_ERR_SHAPE, "%s: %s: expected %d-D %s, got %s", op, arg, ndim, ky_dtype_name(dtype),
                      ky_tensor_desc(t, d, sizeof d));
    return ky_error(KY_ERR_SHAPE, "%s: %s: expected %s, got %s", op, arg, ky_dtype_name(dtype),
                    ky_tensor_desc(t, d, sizeof d));
  }
  return KY_OK;
}

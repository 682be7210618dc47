/* Fuzz harness: the safetensors reader (header JSON, offsets, dtypes, shapes, metadata), then a
 * walk over every tensor's data as the loaders do it. See fuzz_util.h. */
#include "tests/fuzz/fuzz_util.h"

#include "core/safetensors.h"

int ky_fuzz_safetensors(const uint8_t *d, size_t n) {
  const char *p = ky_fuzz_file("t.safetensors", d, n);
  ky_st_file f;
  if (ky_st_read(&f, p) != KY_OK) return 0;
  volatile uint8_t sink = 0;
  for (int i = 0; i < f.n; i++) {
    const uint8_t *b = ky_st_data(&f, &f.e[i]);
    size_t bytes = f.e[i].end - f.e[i].begin;
    if (bytes) sink ^= b[0] ^ b[bytes - 1];
    (void)ky_st_numel(&f.e[i]);
    (void)ky_st_find(&f, f.e[i].name);
  }
  (void)ky_st_meta(&f, "config");
  (void)sink;
  ky_st_free(&f);
  return 0;
}

KY_FUZZ_MAIN(safetensors)

/* Pre-checks of image bytes before stb_image decodes them (see core/imgcheck.h).
 * Tested by tests/test_data_hostile.c and tests/test_fuzz_replay.c. */
#include "core/imgcheck.h"

#include <string.h>

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

static ky_status png_check(uint8_t *b, size_t *n, const char *path) {
  size_t in = 8, out = 8;
  while (in + 8 <= *n) {   /* a chunk whose length and type are there; its CRC may be cut off */
    uint32_t len = be32(b + in);
    if (len > *n - in - 8)
      return ky_error(KY_ERR_FORMAT, "%s: PNG chunk '%.4s' at byte %zu declares %u bytes, but the file has %zu left "
                      "(truncated or corrupt PNG)", path, (const char *)b + in + 4, in, len, *n - in - 8);
    size_t whole = 12 + (size_t)len;
    if (whole > *n - in) whole = *n - in;
    if (!(len == 0 && !memcmp(b + in + 4, "IDAT", 4))) {
      if (out != in) memmove(b + out, b + in, whole);
      out += whole;
    }
    in += whole;
  }
  if (out != in) {   /* keep any trailing bytes after the last chunk as they were */
    memmove(b + out, b + in, *n - in);
    *n -= in - out;
  }
  return KY_OK;
}

ky_status ky_image_precheck(uint8_t *b, size_t *n, const char *path) {
  static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (*n >= 8 && !memcmp(b, png_sig, 8)) return png_check(b, n, path);
  /* stb_image 2.27's JPEG decoder wrote past its Huffman tables and shifted by 32 and more on
   * corrupt files the fuzzers made; it is not compiled in (core/image.c), and a JPEG says so. */
  if (*n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff)
    return ky_error(KY_ERR_FORMAT, "%s: JPEG images are not read (the JPEG decoder of the system's stb_image 2.27 is not "
                    "safe on corrupt files); convert it to PNG", path);
  return KY_OK;
}

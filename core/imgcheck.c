/* Pre-checks of PNG and JPEG bytes before stb_image decodes them (see core/imgcheck.h).
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

/* Walks the markers; DHT segments (possibly between the scans of a progressive JPEG) are
 * checked table by table. Entropy-coded data after SOS runs to the next marker that is not a
 * stuffed 0xFF00 or a restart marker. */
static ky_status jpeg_check(const uint8_t *b, size_t n, const char *path) {
  size_t p = 2;
  while (p + 4 <= n) {
    if (b[p] != 0xff) { p++; continue; }   /* stb skips bytes that are not a marker, so do we */
    if (b[p + 1] == 0xff) { p++; continue; }                 /* fill byte */
    uint8_t m = b[p + 1];
    if (m == 0xd8 || (m >= 0xd0 && m <= 0xd7) || m == 0x01 || m == 0x00) { p += 2; continue; }
    if (m == 0xd9) return KY_OK;                           /* EOI */
    size_t len = (size_t)b[p + 2] << 8 | b[p + 3];
    if (m == 0xc4) {   /* checked even when the segment runs past the end: stb reads it anyway */
      /* As stb reads it: tables while the segment's count L stays positive, each a class byte and
       * 16 counts, read even past the segment (bytes past the file read as 0). */
      long L = (long)len - 2;
      size_t q = p + 4;
      while (L > 0) {
        size_t codes = 0;
        for (size_t i = 1; i <= 16; i++) codes += q + i < n ? b[q + i] : 0;
        if (codes > 256)
          return ky_error(KY_ERR_FORMAT, "%s: JPEG Huffman table with %zu codes at byte %zu (at most 256): corrupt JPEG",
                          path, codes, q);
        q += 17 + codes;
        L -= 17 + (long)codes;
      }
    }
    if (len < 2 || p + 2 + len > n) return KY_OK;          /* truncated: stb's error */
    p += 2 + len;
    if (m == 0xda) {   /* skip the entropy-coded scan */
      while (p + 1 < n && !(b[p] == 0xff && b[p + 1] != 0x00 && !(b[p + 1] >= 0xd0 && b[p + 1] <= 0xd7))) p++;
    }
  }
  return KY_OK;
}

ky_status ky_image_precheck(uint8_t *b, size_t *n, const char *path) {
  static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (*n >= 8 && !memcmp(b, png_sig, 8)) return png_check(b, n, path);
  if (*n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return jpeg_check(b, *n, path);
  return KY_OK;
}

/* stb_image loading (the one place stb is compiled) and PNG writing: 8-bit through
 * stb_image_write, 16-bit with our own chunk writer over stb's zlib compressor (stb_image_write
 * has no 16-bit PNG). Tested by tests/test_core_image.c. */
#include "core/image.h"
#include "core/fileio.h"
#include "core/imgcheck.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Every allocation stb makes while decoding is held to a cap derived from the size the header
 * declares (set by load_common, per thread, for the one decode in flight). Without it a tiny PNG
 * whose zlib stream inflates to gigabytes is inflated whole: stb grows its output buffer as long
 * as data comes, whatever the header said. */
static _Thread_local size_t stbi_cap;
static _Thread_local int stbi_capped, stbi_oom;
static void *stbi_cap_malloc(size_t n) {
  if (n > stbi_cap) { stbi_capped = 1; return NULL; }
  void *p = malloc(n);
  stbi_oom |= !p;
  return p;
}
static void *stbi_cap_realloc(void *p, size_t n) {
  if (n > stbi_cap) { stbi_capped = 1; return NULL; }
  void *q = realloc(p, n);
  stbi_oom |= !q;
  return q;
}
#define STBI_MALLOC(sz) stbi_cap_malloc(sz)
#define STBI_REALLOC(p, newsz) stbi_cap_realloc(p, newsz)
#define STBI_FREE(p) free(p)
#define STB_IMAGE_IMPLEMENTATION
/* PNG (every DSB file) and BMP only: each format stb decodes is code that reads hostile bytes, and
 * its JPEG decoder failed the fuzzers (core/imgcheck.h). */
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_NO_HDR
#define STBI_NO_LINEAR
#define STBI_FAILURE_USERMSG
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#endif
#include <stb/stb_image.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

long long ky_image_max_pixels(void) {
  const char *e = getenv("KY_MAX_IMAGE_PIXELS");
  if (!e || !*e) return KY_IMAGE_MAX_PIXELS_DEFAULT;
  char *end;
  errno = 0;
  long long v = strtoll(e, &end, 10);
  return !*end && !errno && v > 0 ? v : KY_IMAGE_MAX_PIXELS_DEFAULT;
}

/* Masks and label maps must really be PNGs, and label maps not palette ones: a JPEG renamed .png
 * decodes (stb sniffs the content) into blocky non-binary masks, and a palette label map decodes
 * to its colours, not its indices. Checked on the bytes already read for decoding. */
static ky_status png_only(const uint8_t *b, size_t n, const char *path, const char *what, int palette_ok) {
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (n < 26 || memcmp(b, sig, 8) || memcmp(b + 12, "IHDR", 4)) {
    const char *kind = n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff ? " (it holds JPEG data)" : "";
    return ky_error(KY_ERR_FORMAT, "%s: %s is not a PNG file%s; masks and label maps must be lossless PNGs", path, what, kind);
  }
  if (b[25] == 3 && !palette_ok)
    return ky_error(KY_ERR_FORMAT, "%s: %s is a palette (indexed-colour) PNG; expected grey 8- or 16-bit (or RGB) PNG", path,
                    what);
  return KY_OK;
}

/* png_what: NULL for any format, else the PNG-only check above with that name. */
static ky_status load_common(ky_image *out, const char *path, int want_c, int force8, const char *png_what,
                             int palette_ok) {
  KY_CHECK_NULL(out, "out");
  KY_CHECK_NULL(path, "path");
  memset(out, 0, sizeof *out);
  char *buf;
  size_t n;
  KY_TRY(ky_file_read_all(path, &buf, &n));
  if (n == 0) { free(buf); return ky_error(KY_ERR_FORMAT, "%s: empty file, expected an image", path); }
  if (n > 0x7fffffff) { free(buf); return ky_error(KY_ERR_FORMAT, "%s: file too large", path); }
  ky_status pre = png_what ? png_only((const uint8_t *)buf, n, path, png_what, palette_ok) : KY_OK;
  if (pre == KY_OK) pre = ky_image_precheck((uint8_t *)buf, &n, path);
  if (pre != KY_OK) { free(buf); return pre; }
  int w, h, c;
  /* The header alone: a 400 KB PNG can declare 20000 x 20000 and take gigabytes to decode. */
  long long max_px = ky_image_max_pixels();
  /* stb 2.27's BMP info gives a top-down image's height negative (the fuzzers found a 4.7M x -7
   * header that slipped past the limit this way): sizes are taken by magnitude. */
  if (stbi_info_from_memory((const stbi_uc *)buf, (int)n, &w, &h, &c) && llabs((long long)w) * llabs((long long)h) > max_px) {
    free(buf);
    return ky_error(KY_ERR_FORMAT, "%s: image declares %lld x %lld = %lld pixels, above the limit of %lld (raise it with "
                    "KY_MAX_IMAGE_PIXELS or karyon --max-pixels)", path, llabs((long long)w), llabs((long long)h),
                    llabs((long long)w) * llabs((long long)h), max_px);
  }
  int is16 = !force8 && stbi_is_16_bit_from_memory((const stbi_uc *)buf, (int)n);
  /* 16-bit RGBA is 8 bytes a pixel; PNG rows add a filter byte; 1 MB covers tables and headers. */
  int iw = 0, ih = 0, ic = 0;
  stbi_cap = stbi_info_from_memory((const stbi_uc *)buf, (int)n, &iw, &ih, &ic)
                 ? (size_t)llabs((long long)iw) * (size_t)llabs((long long)ih) * 8 + (size_t)llabs((long long)ih) * 8 +
                       ((size_t)1 << 20)
                 : (size_t)64 << 20;
  stbi_capped = stbi_oom = 0;
  void *px = is16 ? (void *)stbi_load_16_from_memory((const stbi_uc *)buf, (int)n, &w, &h, &c, want_c)
                  : (void *)stbi_load_from_memory((const stbi_uc *)buf, (int)n, &w, &h, &c, want_c);
  free(buf);
  if (!px && stbi_capped)
    return ky_error(KY_ERR_FORMAT, "%s: the image data needs more memory than its declared %d x %d pixels allow "
                    "(more than %zu bytes at once): a compression bomb or a corrupt file", path, iw, ih, stbi_cap);
  if (!px && stbi_oom)   /* ky_error appends the size that failed (core/status.c) */
    return ky_error(KY_ERR_NOMEM, "%s: out of memory decoding a %d x %d image", path, iw, ih);
  if (!px)
    return ky_error(KY_ERR_FORMAT, "%s: cannot decode image (%s; karyon reads PNG and BMP)", path, stbi_failure_reason());
  out->w = w;
  out->h = h;
  out->c = want_c ? want_c : c;
  out->depth = is16 ? 16 : 8;
  /* Own the pixels with malloc so ky_image_free never depends on stb's allocator choice. */
  size_t bytes = (size_t)w * h * out->c * (is16 ? 2 : 1);
  out->data = malloc(bytes ? bytes : 1);
  if (!out->data) { stbi_image_free(px); return ky_error(KY_ERR_NOMEM, "%s: out of memory", path); }
  memcpy(out->data, px, bytes);
  stbi_image_free(px);
  return KY_OK;
}

ky_status ky_image_load(ky_image *out, const char *path) { return load_common(out, path, 0, 0, NULL, 1); }

ky_status ky_image_load_png(ky_image *out, const char *path, const char *what, int palette_ok) {
  KY_CHECK_NULL(what, "what");
  return load_common(out, path, 0, 0, what, palette_ok);
}

ky_status ky_image_load_u8(ky_image *out, const char *path, int channels) {
  KY_CHECK(channels >= 1 && channels <= 4, KY_ERR_ARG, "ky_image_load_u8: channels %d not in 1..4", channels);
  return load_common(out, path, channels, 1, NULL, 1);
}

ky_status ky_image_alloc(ky_image *out, int w, int h, int c, int depth) {
  KY_CHECK_NULL(out, "out");
  memset(out, 0, sizeof *out);
  KY_CHECK(w > 0 && h > 0 && c >= 1 && c <= 4 && (depth == 8 || depth == 16), KY_ERR_ARG,
           "ky_image_alloc: bad size %dx%dx%d depth %d", w, h, c, depth);
  out->data = calloc((size_t)w * h * c, depth / 8);
  if (!out->data) return ky_error(KY_ERR_NOMEM, "ky_image_alloc: %dx%dx%d: out of memory", w, h, c);
  out->w = w; out->h = h; out->c = c; out->depth = depth;
  return KY_OK;
}

void ky_image_free(ky_image *img) {
  if (!img) return;
  free(img->data);
  img->data = NULL;
}

static void write_cb(void *ctx, void *data, int size) {
  ky_atomic_file *af = ctx;
  if (fwrite(data, 1, (size_t)size, af->f) != (size_t)size) { /* ferror is checked at commit */ }
}

/* --- 16-bit PNG: signature, IHDR, one IDAT (zlib of filter-0 rows, big-endian samples), IEND. */
static uint32_t crc_table[256];
static void crc_init(void) {
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = n;
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
    crc_table[n] = c;
  }
}
static uint32_t crc_update(uint32_t crc, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return crc;
}
static void put_be32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }
static void write_chunk(FILE *f, const char *type, const uint8_t *data, uint32_t len) {
  uint8_t hdr[8];
  put_be32(hdr, len);
  memcpy(hdr + 4, type, 4);
  fwrite(hdr, 1, 8, f);
  if (len) fwrite(data, 1, len, f);
  uint32_t crc = crc_update(0xffffffffu, (const uint8_t *)type, 4);
  crc = crc_update(crc, data, len) ^ 0xffffffffu;
  uint8_t tail[4];
  put_be32(tail, crc);
  fwrite(tail, 1, 4, f);
}

static ky_status save_png16(ky_atomic_file *af, const uint16_t *px, int w, int h, int c) {
  static const int color_type[5] = {0, 0, 4, 2, 6};
  size_t row = (size_t)w * c * 2 + 1, raw_n = row * h;
  if (raw_n > 0x7fffffff) return ky_error(KY_ERR_ARG, "%s: image too large for one PNG", af->path);
  uint8_t *raw = malloc(raw_n);
  if (!raw) return ky_error(KY_ERR_NOMEM, "%s: out of memory", af->path);
  for (int y = 0; y < h; y++) {
    uint8_t *r = raw + row * y;
    r[0] = 0;
    const uint16_t *s = px + (size_t)y * w * c;
    for (size_t i = 0; i < (size_t)w * c; i++) { r[1 + 2 * i] = s[i] >> 8; r[2 + 2 * i] = s[i] & 0xff; }
  }
  int zlen = 0;
  unsigned char *z = stbi_zlib_compress(raw, (int)raw_n, &zlen, 6);
  free(raw);
  if (!z) return ky_error(KY_ERR_NOMEM, "%s: compression failed", af->path);
  if (!crc_table[1]) crc_init();
  static const uint8_t sig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
  fwrite(sig, 1, 8, af->f);
  uint8_t ihdr[13];
  put_be32(ihdr, (uint32_t)w);
  put_be32(ihdr + 4, (uint32_t)h);
  ihdr[8] = 16; ihdr[9] = (uint8_t)color_type[c]; ihdr[10] = 0; ihdr[11] = 0; ihdr[12] = 0;
  write_chunk(af->f, "IHDR", ihdr, 13);
  write_chunk(af->f, "IDAT", z, (uint32_t)zlen);
  write_chunk(af->f, "IEND", NULL, 0);
  STBIW_FREE(z);
  return KY_OK;
}

ky_status ky_image_save_png(const char *path, const ky_image *img) {
  KY_CHECK_NULL(path, "path");
  KY_CHECK(img && img->data, KY_ERR_ARG, "saving %s: image is NULL or has no pixels", path);
  KY_CHECK(img->w > 0 && img->h > 0 && img->c >= 1 && img->c <= 4, KY_ERR_ARG,
           "saving %s: bad image size %dx%dx%d", path, img->w, img->h, img->c);
  KY_CHECK(img->depth == 8 || img->depth == 16, KY_ERR_ARG, "saving %s: depth %d, expected 8 or 16", path, img->depth);
  ky_atomic_file af;
  KY_TRY(ky_atomic_open(&af, path));
  ky_status s = KY_OK;
  if (img->depth == 8) {
    if (!stbi_write_png_to_func(write_cb, &af, img->w, img->h, img->c, img->data, img->w * img->c))
      s = ky_error(KY_ERR_IO, "%s: PNG encoding failed", path);
  } else {
    s = save_png16(&af, img->data, img->w, img->h, img->c);
  }
  if (s != KY_OK) { ky_atomic_abort(&af); return s; }
  return ky_atomic_commit(&af);
}

ky_status ky_png_save_u8(const char *path, const uint8_t *px, int w, int h, int c) {
  ky_image im = {w, h, c, 8, (void *)px};
  return ky_image_save_png(path, &im);
}

ky_status ky_png_save_u16(const char *path, const uint16_t *px, int w, int h, int c) {
  ky_image im = {w, h, c, 16, (void *)px};
  return ky_image_save_png(path, &im);
}

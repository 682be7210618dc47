/* Image files: load PNG and BMP (8- or 16-bit, 1-4 channels) through stb_image (JPEG is refused
 * with a reason: see core/imgcheck.h); save 8- and
 * 16-bit PNGs atomically. Pixels are interleaved HWC, rows top to bottom.
 * Tested by tests/test_core_image.c (round trips, 16-bit, truncated and missing files). */
#ifndef KY_IMAGE_H
#define KY_IMAGE_H

#include <stdint.h>
#include "core/status.h"

typedef struct {
  int w, h, c;      /* width, height, channels (1..4) */
  int depth;        /* 8 or 16 bits per sample */
  void *data;       /* uint8_t[h*w*c] or uint16_t[h*w*c], malloc'ed */
} ky_image;

/* Decompression bombs: an image whose header declares more than this many pixels is refused
 * before anything is decoded or allocated. Default 2^26 (8192 x 8192; the largest DSB image is
 * 1040 x 1388); the environment variable KY_MAX_IMAGE_PIXELS (or `karyon --max-pixels N`, which
 * sets it) raises or lowers it. Read at every call: no process-wide state. */
#define KY_IMAGE_MAX_PIXELS_DEFAULT (1LL << 26)
long long ky_image_max_pixels(void);

/* Loads the file as stored (its own channel count and depth). */
ky_status ky_image_load(ky_image *out, const char *path);
/* As ky_image_load, but the file must be a PNG (else an error naming it as `what`, e.g. "mask",
 * and saying when it holds JPEG data), and not a palette PNG unless palette_ok. */
ky_status ky_image_load_png(ky_image *out, const char *path, const char *what, int palette_ok);
/* Loads and converts: channels = 1..4 (grey<->RGB as stb_image does), always 8-bit. */
ky_status ky_image_load_u8(ky_image *out, const char *path, int channels);
/* Allocates a zeroed image. */
ky_status ky_image_alloc(ky_image *out, int w, int h, int c, int depth);
void ky_image_free(ky_image *img);

/* Saves as PNG (8- or 16-bit by img->depth), atomically: a failed write keeps the old file. */
ky_status ky_image_save_png(const char *path, const ky_image *img);
/* Convenience wrappers for raw buffers. */
ky_status ky_png_save_u8(const char *path, const uint8_t *px, int w, int h, int c);
ky_status ky_png_save_u16(const char *path, const uint16_t *px, int w, int h, int c);

#endif

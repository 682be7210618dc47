/* Image files: load PNG/JPEG/BMP (8- or 16-bit, 1-4 channels) through stb_image; save 8- and
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

/* Loads the file as stored (its own channel count and depth). */
ky_status ky_image_load(ky_image *out, const char *path);
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

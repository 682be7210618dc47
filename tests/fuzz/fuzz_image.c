/* Fuzz harness: image decoding through stb_image, every entry point karyon uses (as stored:
 * 8/16-bit, grey/RGB/RGBA/palette; and converted to 1-4 channels of 8 bits). See fuzz_util.h. */
#include "tests/fuzz/fuzz_util.h"

#include "core/image.h"

int ky_fuzz_image(const uint8_t *d, size_t n) {
  const char *p = ky_fuzz_file("image.png", d, n);
  ky_image im;
  if (ky_image_load(&im, p) == KY_OK) ky_image_free(&im);
  if (ky_image_load_u8(&im, p, 1 + (int)(n % 4)) == KY_OK) ky_image_free(&im);
  return 0;
}

KY_FUZZ_MAIN(image)

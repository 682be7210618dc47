/* Fuzz harness: the DSB folder reader on a one-image folder. The input is split at a length in
 * its first two bytes into an image file and a mask file (or, when the length is odd, a compact
 * labels.png); ky_dsb_load reads the sample as training does. See fuzz_util.h. */
#include "tests/fuzz/fuzz_util.h"

#include "data/dsb.h"

int ky_fuzz_dsb(const uint8_t *d, size_t n) {
  if (n < 2) return 0;
  size_t cut = ((size_t)d[0] << 8 | d[1]);
  d += 2;
  n -= 2;
  if (cut > n) cut = n;
  char root[256];
  snprintf(root, sizeof root, "%s/dsb", ky_fuzz_dir());
  /* A fresh folder each run: a mask left from the last input would change this one's meaning. */
  char cmd[300];
  snprintf(cmd, sizeof cmd, "%s/s/masks/m.png", root);
  unlink(cmd);
  snprintf(cmd, sizeof cmd, "%s/s/labels.png", root);
  unlink(cmd);
  ky_fuzz_file("dsb/s/images/s.png", d, cut);
  ky_fuzz_file(cut & 1 ? "dsb/s/labels.png" : "dsb/s/masks/m.png", d + cut, n - cut);
  ky_dsb_sample s;
  if (ky_dsb_load(&s, root, "s", KY_DSB_MASKS_REQUIRED) == KY_OK) ky_dsb_sample_free(&s);
  return 0;
}

KY_FUZZ_MAIN(dsb)

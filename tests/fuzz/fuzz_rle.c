/* Fuzz harness: a submission or solution CSV (header, fields, RLE runs, sizes), then every
 * image's label map decoded from it, at the CSV's own size or at 64 x 48. See fuzz_util.h. */
#include "tests/fuzz/fuzz_util.h"

#include "post/rle.h"

int ky_fuzz_rle(const uint8_t *d, size_t n) {
  const char *p = ky_fuzz_file("s.csv", d, n);
  ky_rle_csv c;
  if (ky_rle_csv_read(&c, p) != KY_OK) return 0;
  const char **ids;
  int k;
  if (ky_rle_csv_ids(&ids, &k, &c) == KY_OK) {
    for (int i = 0; i < k && i < 8; i++) {
      int32_t *lab;
      int h, w;
      if (ky_rle_csv_labels(&lab, &h, &w, &c, ids[i], c.has_size ? 0 : 64, c.has_size ? 0 : 48) == KY_OK) free(lab);
    }
    free(ids);
  }
  ky_rle_csv_free(&c);
  return 0;
}

KY_FUZZ_MAIN(rle)

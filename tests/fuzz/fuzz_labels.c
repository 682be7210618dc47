/* Fuzz harness: a label PNG to instances, as `karyon score` reads predictions and the compact
 * layout reads truth: 8/16-bit decoding, the channel check, then the DSB metric of the map
 * against itself (components, overlaps, IoU thresholds), which must score 1 or have no
 * instances. See fuzz_util.h. */
#include "tests/fuzz/fuzz_util.h"

#include "data/dsb.h"
#include "post/metric.h"

int ky_fuzz_labels(const uint8_t *d, size_t n) {
  const char *p = ky_fuzz_file("labels.png", d, n);
  uint16_t *lab;
  int h, w;
  if (ky_dsb_read_labels(&lab, &h, &w, p) != KY_OK) return 0;
  int32_t *l32 = malloc((size_t)h * w * sizeof *l32);
  if (l32) {
    int any = 0;
    for (size_t i = 0; i < (size_t)h * w; i++) any |= (l32[i] = lab[i]) != 0;
    ky_metric_result r;
    if (ky_metric_dsb(&r, l32, l32, h, w) == KY_OK && any && r.score != 1.0) abort();
    free(l32);
  }
  free(lab);
  return 0;
}

KY_FUZZ_MAIN(labels)

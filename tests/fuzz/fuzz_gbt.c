/* Fuzz harness: the GBT model text format (counts, nodes, children, leaves), then a prediction
 * of one row through every loaded tree. See fuzz_util.h. */
#include "tests/fuzz/fuzz_util.h"

#include "post/gbt.h"

int ky_fuzz_gbt(const uint8_t *d, size_t n) {
  const char *p = ky_fuzz_file("gbt.txt", d, n);
  ky_gbt_ensemble e;
  if (ky_gbt_ensemble_load(&e, p) != KY_OK) return 0;
  float *row = calloc((size_t)e.n_features, sizeof *row);
  if (row) {
    for (int i = 0; i < e.n_features; i++) row[i] = (float)(i % 7) - 3.0f;
    (void)ky_gbt_ensemble_predict_row(&e, row);
    free(row);
  }
  ky_gbt_ensemble_free(&e);
  return 0;
}

KY_FUZZ_MAIN(gbt)

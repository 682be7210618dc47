/* Fuzz harness: a folds CSV (quoted fields, columns, ids, folds, clusters), then the train/val
 * split of fold 0 with the reference's oversampling. See fuzz_util.h. */
#include "tests/fuzz/fuzz_util.h"

#include "data/folds.h"

int ky_fuzz_folds(const uint8_t *d, size_t n) {
  const char *p = ky_fuzz_file("folds.csv", d, n);
  ky_folds f;
  if (ky_folds_load(&f, p) != KY_OK) return 0;
  ky_oversample os;
  int *tr, *va, ntr, nva;
  if (ky_oversample_parse(&os, "b:4,d:4,e:4,m:4,c:3,n:3,polosa:5") == KY_OK &&
      ky_folds_split(&tr, &ntr, &va, &nva, &f, 0, &os, NULL) == KY_OK) {
    free(tr);
    free(va);
  }
  ky_folds_free(&f);
  return 0;
}

KY_FUZZ_MAIN(folds)

/* Replays every committed fuzz input (tests/fuzz/corpus/<harness>/: the seeds and any input a
 * fuzzer once found, kept as regress_*) through the same harness code that `make fuzz` runs under
 * libFuzzer, without the fuzzer: so `make test` (and `make DEBUG=1 test`, under ASan and UBSan)
 * catches a reader that regresses on any of them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/util_test.h"

#define HARNESSES(X) X(image) X(dsb) X(safetensors) X(checkpoint) X(rle) X(folds) X(config) X(gbt) X(labels)
#define DECLARE(name) int ky_fuzz_##name(const uint8_t *d, size_t n);
HARNESSES(DECLARE)

static void replay(const char *name, int (*fn)(const uint8_t *, size_t)) {
  char dir[256], p[600];
  snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", name);
  DIR *d = opendir(dir);
  if (!d) fail_msg("%s: no corpus folder (run from the repository root)", dir);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    char *b;
    size_t len;
    if (ky_file_read_all(p, &b, &len) != KY_OK) fail_msg("%s", ky_last_error());
    fn((const uint8_t *)b, len);
    free(b);
    n++;
  }
  closedir(d);
  if (n == 0) fail_msg("%s: empty corpus", dir);
  print_message("      %s: %d inputs replayed\n", name, n);
}

#define TEST(name) static void test_##name(void **st) { replay(#name, ky_fuzz_##name); }
HARNESSES(TEST)

/* The harnesses' scratch folder (fuzz_util.h). */
static int teardown(void **st) {
  char rm[128];
  snprintf(rm, sizeof rm, "rm -rf '%s'", ky_fuzz_dir());
  if (system(rm) != 0) fprintf(stderr, "warning: could not remove %s\n", ky_fuzz_dir());
  return 0;
}

int main(void) {
#define ENTRY(name) cmocka_unit_test(test_##name),
  const struct CMUnitTest tests[] = {HARNESSES(ENTRY)};
  return cmocka_run_group_tests_name("fuzz_replay", tests, NULL, teardown);
}

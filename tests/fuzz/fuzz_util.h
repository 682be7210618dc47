/* Shared by the fuzz harnesses (tests/fuzz/fuzz_*.c): a private scratch folder per process and
 * a writer that puts the input bytes in a file there, so that every harness drives karyon's real
 * path-based readers. Each harness defines ky_fuzz_<name>(data, size); built with
 * -DKY_LIBFUZZER it is also libFuzzer's LLVMFuzzerTestOneInput (make fuzz), otherwise
 * tests/test_fuzz_replay.c calls it on every committed corpus file (make test). */
#ifndef KY_FUZZ_UTIL_H
#define KY_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/status.h"

/* /dev/shm/ky_fuzz_<pid>/ (or under /tmp), made once. The harnesses also lower the image limit to 256 x 256 pixels
 * (as karyon --max-pixels would), so that a header declaring a large image is refused instead of
 * decoded for milliseconds: the limit's own code path is exercised, and executions stay fast. */
static inline const char *ky_fuzz_dir(void) {
  static char d[64];
  if (!d[0]) {
    /* tmpfs when there is one: a file written and read per execution should not wait on a disk. */
    snprintf(d, sizeof d, "%s/ky_fuzz_%ld", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (long)getpid());
    mkdir(d, 0700);
    setenv("KY_MAX_IMAGE_PIXELS", "65536", 1);
  }
  return d;
}

/* Writes n bytes to <dir>/<rel> (parent folders made) and returns the path (static storage). */
static inline const char *ky_fuzz_file(const char *rel, const uint8_t *data, size_t n) {
  static char p[512];
  snprintf(p, sizeof p, "%s/%s", ky_fuzz_dir(), rel);
  char *slash = strrchr(p, '/');
  *slash = 0;
  ky_mkdirs(p);
  *slash = '/';
  FILE *f = fopen(p, "wb");
  if (f) {
    if (n) fwrite(data, 1, n, f);
    fclose(f);
  }
  return p;
}

#ifdef KY_LIBFUZZER
#define KY_FUZZ_MAIN(name) \
  int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return ky_fuzz_##name(d, n); }
#else
#define KY_FUZZ_MAIN(name)
#endif

#endif

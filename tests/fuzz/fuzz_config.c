/* Fuzz harness: training configuration, both ways in. Even first byte: the rest is a config file
 * (key = value lines). Odd: the rest is a command line, NUL- or newline-separated, parsed as
 * `karyon train --KEY VALUE...`. Then the whole configuration is validated. See fuzz_util.h. */
#include "tests/fuzz/fuzz_util.h"

#include "pipeline/config.h"

int ky_fuzz_config(const uint8_t *d, size_t n) {
  if (n < 1 || n > 1 << 16) return 0;
  ky_train_config c;
  ky_train_config_default(&c);
  if (!(d[0] & 1)) {
    const char *p = ky_fuzz_file("train.cfg", d + 1, n - 1);
    if (ky_train_config_load(&c, p) == KY_OK) (void)ky_train_config_validate(&c);
    return 0;
  }
  char *buf = malloc(n);
  if (!buf) return 0;
  memcpy(buf, d + 1, n - 1);
  buf[n - 1] = 0;
  char *argv[130];
  int argc = 0;
  argv[argc++] = "train";
  for (char *s = buf; s < buf + n - 1 && argc < 129;) {
    size_t len = strcspn(s, "\n");
    s[len] = 0;
    argv[argc++] = s;
    s += len + 1;
  }
  argv[argc] = NULL;
  static const char *const extra[] = {"resume!", "help!", NULL};
  /* --config FILE would read arbitrary paths named by the input: not this harness's job. */
  int has_config = 0;
  for (int i = 1; i < argc; i++) has_config |= !strcmp(argv[i], "--config");
  if (!has_config && ky_train_config_args(&c, argc, argv, extra) == KY_OK) (void)ky_train_config_validate(&c);
  free(buf);
  return 0;
}

KY_FUZZ_MAIN(config)

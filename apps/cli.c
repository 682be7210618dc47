/* Option parsing helpers shared by the karyon subcommands. Tested by tests/test_apps_cli.c. */
#include "apps/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/pool.h"

const char *ky_cli_opt(int argc, char **argv, const char *name) {
  for (int i = 1; i + 1 < argc; i++)
    if (argv[i][0] == '-' && argv[i][1] == '-' && !strcmp(argv[i] + 2, name)) return argv[i + 1];
  return NULL;
}

int ky_cli_flag(int argc, char **argv, const char *name) {
  for (int i = 1; i < argc; i++)
    if (argv[i][0] == '-' && argv[i][1] == '-' && !strcmp(argv[i] + 2, name)) return 1;
  return 0;
}

int ky_cli_wants_help(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
  return 0;
}

int ky_cli_check(int argc, char **argv, const char *cmd, const char *const *known) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || a[1] != '-') {
      fprintf(stderr, "karyon %s: unexpected argument '%s' (options start with --)\n", cmd, a);
      return 0;
    }
    int found = 0, is_flag = 0;
    for (const char *const *k = known; *k; k++) {
      size_t n = strlen(*k);
      int flag = n && (*k)[n - 1] == '!';
      if (strlen(a + 2) == n - flag && !strncmp(a + 2, *k, n - flag)) { found = 1; is_flag = flag; break; }
    }
    if (!found) {
      fprintf(stderr, "karyon %s: unknown option '%s' (karyon %s --help lists them)\n", cmd, a, cmd);
      return 0;
    }
    if (!is_flag) {
      if (i + 1 >= argc) {
        fprintf(stderr, "karyon %s: option '%s' needs a value\n", cmd, a);
        return 0;
      }
      i++;
    }
  }
  return 1;
}

int ky_cli_fail(const char *cmd, ky_status s) {
  fprintf(stderr, "karyon %s: %s\n", cmd, ky_last_error()[0] ? ky_last_error() : ky_status_name(s));
  return 1;
}

ky_status ky_cli_ids(ky_dsb_ids *out, const char *data, const char *ids_opt) {
  out->n = 0;
  out->ids = NULL;
  if (!ids_opt) return ky_dsb_list_ids(out, data);
  int cap = 1;
  for (const char *p = ids_opt; *p; p++) cap += *p == ',';
  out->ids = calloc((size_t)cap, sizeof *out->ids);
  if (!out->ids) return ky_error(KY_ERR_NOMEM, "--ids: out of memory");
  for (const char *p = ids_opt; *p;) {
    size_t len = strcspn(p, ",");
    if (len && !(out->ids[out->n++] = strndup(p, len))) {
      ky_dsb_ids_free(out);
      return ky_error(KY_ERR_NOMEM, "--ids: out of memory");
    }
    p += len + (p[len] == ',');
  }
  if (out->n == 0) {
    ky_dsb_ids_free(out);
    return ky_error(KY_ERR_ARG, "--ids '%s' names no id", ids_opt);
  }
  return KY_OK;
}

ky_status ky_cli_threads(int *threads, int argc, char **argv) {
  const char *v = ky_cli_opt(argc, argv, "threads");
  if (!v) return ky_pool_default_threads(threads);
  char *end;
  long n = strtol(v, &end, 10);
  KY_CHECK(end != v && !*end && n >= 1 && n <= KY_POOL_MAX_THREADS, KY_ERR_ARG,
           "--threads '%s': expected a thread count in 1..%d", v, KY_POOL_MAX_THREADS);
  *threads = (int)n;
  return KY_OK;
}

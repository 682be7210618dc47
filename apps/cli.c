/* Option parsing helpers shared by the karyon subcommands. Tested by tests/test_apps_cli.c. */
#include "apps/cli.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
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

/* Digits only (an optional leading '-' where negatives are allowed): strtol alone accepts
 * " 8", "+8" and "8abc" up to the junk, which is how "--tta 8abc" used to pass. */
static int parse_long(const char *s, long lo, long hi, long *v) {
  const char *p = s + (*s == '-' && lo < 0);
  if (!isdigit((unsigned char)*p)) return 0;
  for (const char *q = p; *q; q++)
    if (!isdigit((unsigned char)*q)) return 0;
  errno = 0;
  char *end;
  long x = strtol(s, &end, 10);
  if (errno || *end || x < lo || x > hi) return 0;
  *v = x;
  return 1;
}

int ky_cli_parse_double(const char *s, double lo, double hi, double *v) {
  if (!*s || isspace((unsigned char)*s)) return 0;
  char *end;
  errno = 0;
  double x = strtod(s, &end);
  /* ERANGE on underflow too (1e-400): a value that rounds to 0 or a denormal is not what was typed. */
  if (end == s || *end || errno == ERANGE || !isfinite(x) || x < lo || x > hi) return 0;
  *v = x;
  return 1;
}

int ky_cli_int(int argc, char **argv, const char *cmd, const char *name, long lo, long hi, long dflt, long *v) {
  const char *s = ky_cli_opt(argc, argv, name);
  *v = dflt;
  if (!s || parse_long(s, lo, hi, v)) return 1;
  fprintf(stderr, "karyon %s: --%s is '%s', expected a whole number in %ld..%ld\n", cmd, name, s, lo, hi);
  return 0;
}

int ky_cli_u64(int argc, char **argv, const char *cmd, const char *name, uint64_t dflt, uint64_t *v) {
  const char *s = ky_cli_opt(argc, argv, name);
  *v = dflt;
  if (!s) return 1;
  int ok = isdigit((unsigned char)*s);
  for (const char *q = s; ok && *q; q++) ok = isdigit((unsigned char)*q);
  if (ok) {
    errno = 0;
    unsigned long long x = strtoull(s, NULL, 10);
    if (!errno) { *v = x; return 1; }
  }
  fprintf(stderr, "karyon %s: --%s is '%s', expected a whole number in 0..%llu\n", cmd, name, s,
          (unsigned long long)UINT64_MAX);
  return 0;
}

int ky_cli_double(int argc, char **argv, const char *cmd, const char *name, double lo, double hi, double dflt,
                  double *v) {
  const char *s = ky_cli_opt(argc, argv, name);
  *v = dflt;
  if (!s || ky_cli_parse_double(s, lo, hi, v)) return 1;
  fprintf(stderr, "karyon %s: --%s is '%s', expected a number in [%g, %g]\n", cmd, name, s, lo, hi);
  return 0;
}

ky_status ky_cli_threads(int *threads, int argc, char **argv) {
  const char *v = ky_cli_opt(argc, argv, "threads");
  if (!v) return ky_pool_default_threads(threads);
  long n;
  KY_CHECK(parse_long(v, 1, KY_POOL_MAX_THREADS, &n), KY_ERR_ARG, "--threads '%s': expected a thread count in 1..%d", v,
           KY_POOL_MAX_THREADS);
  *threads = (int)n;
  return KY_OK;
}

/* Small shared helpers for the karyon subcommands: option parsing and uniform error exits.
 * Tested through tests/test_apps_cli.c. */
#ifndef KY_APPS_CLI_H
#define KY_APPS_CLI_H

#include <stdint.h>

#include "core/status.h"
#include "data/dsb.h"

/* Options are "--name value" or "--flag". ky_cli_opt returns the value after --name (or NULL),
 * ky_cli_flag whether --name is present. ky_cli_check rejects options not in `known`
 * (a NULL-terminated list of names without dashes; names ending in '!' are flags). */
const char *ky_cli_opt(int argc, char **argv, const char *name);
int ky_cli_flag(int argc, char **argv, const char *name);
int ky_cli_check(int argc, char **argv, const char *cmd, const char *const *known);
int ky_cli_wants_help(int argc, char **argv);

/* The ids a command works on: the comma-separated `ids_opt` when given, else every sample of the
 * DSB folder `data`. Free with ky_dsb_ids_free. */
ky_status ky_cli_ids(ky_dsb_ids *out, const char *data, const char *ids_opt);

/* The CPU thread count: --threads N when given (1..KY_POOL_MAX_THREADS, else an error naming the
 * flag and value), else KY_THREADS, else every core this process may use. */
ky_status ky_cli_threads(int *threads, int argc, char **argv);
/* Strict number options. Absent: *v = dflt and 1. Present: the whole value must be a number
 * (ints: decimal digits only) in [lo, hi], else a message naming the command, the flag, the value
 * and the range goes to stderr and 0 comes back (the caller exits with 2). */
int ky_cli_int(int argc, char **argv, const char *cmd, const char *name, long lo, long hi, long dflt, long *v);
int ky_cli_u64(int argc, char **argv, const char *cmd, const char *name, uint64_t dflt, uint64_t *v);
int ky_cli_double(int argc, char **argv, const char *cmd, const char *name, double lo, double hi, double dflt,
                  double *v);
/* One strict number (the same rules) from a string: what list options (--weights 1,2) split into. */
int ky_cli_parse_double(const char *s, double lo, double hi, double *v);

/* Prints "karyon <cmd>: <message>" from the last error and returns 1 (the exit code). */
int ky_cli_fail(const char *cmd, ky_status s);

#endif

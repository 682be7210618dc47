/* The `karyon` command: dispatches `karyon <command> [options]` to apps/cmd_<command>.c.
 * Commands register themselves by file name (the Makefile writes ky_cmds.h), so adding a command
 * is adding one file. Tested by tests/test_apps_cli.c (help, unknown command, exit codes). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/cli.h"

#define KY_CMD(name) int ky_cmd_##name(int argc, char **argv); extern const char ky_cmd_##name##_summary[];
#include "ky_cmds.h"
#undef KY_CMD

typedef struct { const char *name; int (*fn)(int, char **); const char *summary; } cmd_entry;
static const cmd_entry commands[] = {
#define KY_CMD(name) {#name, ky_cmd_##name, ky_cmd_##name##_summary},
#include "ky_cmds.h"
#undef KY_CMD
};

static void usage(FILE *f) {
  fprintf(f, "usage: karyon [--max-pixels N] <command> [options]      (karyon <command> --help for its options)\n"
             "  --max-pixels N   refuse images that declare more pixels (default 67108864 = 8192^2;\n"
             "                   the same as the environment variable KY_MAX_IMAGE_PIXELS)\n\ncommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
  /* A file-size limit (ulimit -f) would kill us with SIGXFSZ in the middle of a write; ignored,
   * the write fails with EFBIG and the atomic writer reports it, keeping the previous file. */
  signal(SIGXFSZ, SIG_IGN);
  /* Options of karyon itself come before the command and are handed to the library through the
   * environment, so that every command and library call sees the same limit. */
  while (argc >= 3 && !strcmp(argv[1], "--max-pixels")) {
    char *end;
    errno = 0;
    long long v = strtoll(argv[2], &end, 10);
    if (end == argv[2] || *end || errno || v < 1) {
      fprintf(stderr, "karyon: --max-pixels is '%s', expected a whole number >= 1\n", argv[2]);
      return 2;
    }
    setenv("KY_MAX_IMAGE_PIXELS", argv[2], 1);
    argv[2] = argv[0];
    argc -= 2;
    argv += 2;
  }
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "karyon: unknown command '%s' (karyon --help lists them)\n", argv[1]);
  return 2;
}

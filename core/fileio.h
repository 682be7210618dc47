/* Atomic file writes (temporary + fsync + rename) and small whole-file helpers.
 * Tested by tests/test_core_fileio.c (a failed write leaves the previous file intact). */
#ifndef KY_FILEIO_H
#define KY_FILEIO_H

#include <stddef.h>
#include <stdio.h>
#include "core/status.h"

/* Write to `f`, then ky_atomic_commit: the destination is replaced only when every byte reached
 * the disk; ky_atomic_abort (or a failed commit) removes the temporary and leaves the old file. */
typedef struct {
  FILE *f;
  char path[4096];
  char tmp[4096 + 32];
} ky_atomic_file;

ky_status ky_atomic_open(ky_atomic_file *af, const char *path);
ky_status ky_atomic_commit(ky_atomic_file *af);
void ky_atomic_abort(ky_atomic_file *af);

/* Writes `n` bytes to `path` atomically. */
ky_status ky_file_write_atomic(const char *path, const void *data, size_t n);

/* Reads a whole file into a malloc'ed buffer (NUL-terminated, *n excludes the NUL). */
ky_status ky_file_read_all(const char *path, char **data, size_t *n);

/* mkdir -p */
ky_status ky_mkdirs(const char *path);

#endif

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

/* A text file (config, CSV, fold file, GBT model): as ky_file_read_all, then a leading UTF-8
 * byte-order mark is dropped and CRLF line ends become LF, so files saved on Windows read the
 * same; a NUL byte is an error naming the file, line and byte (C string parsing would silently
 * stop there and ignore the rest of the file). */
ky_status ky_file_read_text(const char *path, char **data, size_t *n);

/* Copies at most `max` bytes of `src` into dst (capacity cap) with every byte that is not
 * printable ASCII written as \xNN, and "..." when cut: for echoing file content in messages. */
const char *ky_printable(char *dst, size_t cap, const char *src, size_t max);

/* A folder of outputs written as a whole (predict, segment, postproc apply). Files go to a
 * temporary sibling folder, <final>.tmp-XXXXXX; commit moves each of them into <final> by rename
 * (subfolders merged, files that the run did not write left alone), and abort removes the
 * temporary folder. So a run that fails on its k-th image leaves the previous outputs as they
 * were, and a killed run never leaves a half-written file under a final name. */
typedef struct {
  char final[4096];
  char tmp[4096 + 16];
} ky_staged_dir;

ky_status ky_staged_open(ky_staged_dir *d, const char *final_dir);
ky_status ky_staged_commit(ky_staged_dir *d);
void ky_staged_abort(ky_staged_dir *d);

/* mkdir -p */
ky_status ky_mkdirs(const char *path);

#endif

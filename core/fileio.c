/* Atomic writes: temporary in the same folder, fsync, rename; whole-file reads; mkdir -p.
 * Tested by tests/test_core_fileio.c. */
#include "core/fileio.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

ky_status ky_atomic_open(ky_atomic_file *af, const char *path) {
  KY_CHECK_NULL(af, "af");
  KY_CHECK_NULL(path, "path");
  memset(af, 0, sizeof *af);
  KY_CHECK(strlen(path) < sizeof af->path, KY_ERR_ARG, "path too long: %.64s...", path);
  strcpy(af->path, path);
  snprintf(af->tmp, sizeof af->tmp, "%s.tmp.%ld", path, (long)getpid());
  af->f = fopen(af->tmp, "wb");
  if (!af->f) return ky_error(KY_ERR_IO, "cannot create %s: %s", af->tmp, strerror(errno));
  return KY_OK;
}

ky_status ky_atomic_commit(ky_atomic_file *af) {
  KY_CHECK(af && af->f, KY_ERR_STATE, "ky_atomic_commit: file not open");
  int bad = ferror(af->f) || fflush(af->f) != 0 || fsync(fileno(af->f)) != 0;
  int err = errno;
  if (fclose(af->f) != 0 && !bad) { bad = 1; err = errno; }
  af->f = NULL;
  if (bad) {
    remove(af->tmp);
    return ky_error(KY_ERR_IO, "writing %s failed: %s (previous file kept)", af->path, strerror(err));
  }
  if (rename(af->tmp, af->path) != 0) {
    err = errno;
    remove(af->tmp);
    return ky_error(KY_ERR_IO, "cannot rename %s to %s: %s", af->tmp, af->path, strerror(err));
  }
  return KY_OK;
}

void ky_atomic_abort(ky_atomic_file *af) {
  if (!af) return;
  if (af->f) fclose(af->f);
  af->f = NULL;
  if (af->tmp[0]) remove(af->tmp);
}

ky_status ky_file_write_atomic(const char *path, const void *data, size_t n) {
  ky_atomic_file af;
  KY_TRY(ky_atomic_open(&af, path));
  if (n && fwrite(data, 1, n, af.f) != n) {
    ky_atomic_abort(&af);
    return ky_error(KY_ERR_IO, "writing %s failed: %s (previous file kept)", path, strerror(errno));
  }
  return ky_atomic_commit(&af);
}

ky_status ky_file_read_all(const char *path, char **data, size_t *n) {
  KY_CHECK_NULL(path, "path");
  KY_CHECK_NULL(data, "data");
  *data = NULL;
  if (n) *n = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return ky_error(KY_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap + 1);
  if (!buf) { fclose(f); return ky_error(KY_ERR_NOMEM, "reading %s: out of memory", path); }
  for (;;) {
    size_t got = fread(buf + len, 1, cap - len, f);
    len += got;
    if (len < cap) break;
    char *nb = realloc(buf, 2 * cap + 1);
    if (!nb) { free(buf); fclose(f); return ky_error(KY_ERR_NOMEM, "reading %s: out of memory", path); }
    buf = nb;
    cap *= 2;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) { free(buf); return ky_error(KY_ERR_IO, "reading %s failed", path); }
  buf[len] = 0;
  *data = buf;
  if (n) *n = len;
  return KY_OK;
}

ky_status ky_mkdirs(const char *path) {
  KY_CHECK_NULL(path, "path");
  char buf[4096];
  KY_CHECK(strlen(path) < sizeof buf, KY_ERR_ARG, "path too long");
  strcpy(buf, path);
  for (char *p = buf + 1; ; p++) {
    if (*p == '/' || *p == 0) {
      char c = *p;
      *p = 0;
      if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return ky_error(KY_ERR_IO, "cannot create folder %s: %s", buf, strerror(errno));
      *p = c;
      if (!c) break;
    }
  }
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
    return ky_error(KY_ERR_IO, "%s exists and is not a folder", path);
  return KY_OK;
}

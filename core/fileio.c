/* Atomic writes: temporary in the same folder, fsync, rename; whole-file reads; mkdir -p.
 * Tested by tests/test_core_fileio.c. */
#include "core/fileio.h"

#include <dirent.h>
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
  /* A folder opens fine and then fails to read with no useful reason; /dev/zero or a FIFO never
   * ends. Only regular files are read. */
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    int dir = S_ISDIR(st.st_mode);
    fclose(f);
    return ky_error(KY_ERR_IO, "%s is %s, expected a regular file", path, dir ? "a folder" : "not a regular file");
  }
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
  if (bad) { free(buf); return ky_error(KY_ERR_IO, "reading %s failed: %s", path, strerror(errno)); }
  buf[len] = 0;
  *data = buf;
  if (n) *n = len;
  return KY_OK;
}

ky_status ky_file_read_text(const char *path, char **data, size_t *n) {
  size_t len;
  KY_TRY(ky_file_read_all(path, data, &len));
  char *b = *data;
  const char *nul = memchr(b, 0, len);
  if (nul) {
    int line = 1;
    for (const char *p = b; p < nul; p++) line += *p == '\n';
    size_t at = (size_t)(nul - b);
    free(b);
    *data = NULL;
    return ky_error(KY_ERR_FORMAT, "%s: NUL byte at line %d (byte %zu): not a text file", path, line, at);
  }
  size_t from = len >= 3 && !memcmp(b, "\xef\xbb\xbf", 3) ? 3 : 0, to = 0;
  for (; from < len; from++)
    if (!(b[from] == '\r' && from + 1 < len && b[from + 1] == '\n')) b[to++] = b[from];
  b[to] = 0;
  if (n) *n = to;
  return KY_OK;
}

const char *ky_printable(char *dst, size_t cap, const char *src, size_t max) {
  if (cap < 8) { if (cap) dst[0] = 0; return dst; }
  size_t o = 0, i = 0;
  /* Room for the longest encoding (4) and a closing "..." (3) and the NUL. */
  for (; i < max && src[i] && o + 8 <= cap; i++) {
    unsigned char c = (unsigned char)src[i];
    if (c >= 0x20 && c < 0x7f) dst[o++] = (char)c;
    else o += (size_t)snprintf(dst + o, cap - o, "\\x%02x", c);
  }
  if (src[i]) { memcpy(dst + o, "...", 3); o += 3; }   /* i <= strlen(src): in bounds */
  dst[o] = 0;
  return dst;
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

ky_status ky_staged_open(ky_staged_dir *d, const char *final_dir) {
  KY_CHECK_NULL(d, "d");
  KY_CHECK_NULL(final_dir, "final_dir");
  memset(d, 0, sizeof *d);
  size_t n = strlen(final_dir);
  while (n > 1 && final_dir[n - 1] == '/') n--;   /* "out/" stages as out.tmp-..., not out/.tmp-... */
  KY_CHECK(n > 0 && n < sizeof d->final, KY_ERR_ARG, "output folder name '%.64s' is empty or too long", final_dir);
  memcpy(d->final, final_dir, n);
  char parent[4096];
  memcpy(parent, d->final, n + 1);
  char *slash = strrchr(parent, '/');
  if (slash && slash != parent) {
    *slash = 0;
    KY_TRY(ky_mkdirs(parent));
  }
  snprintf(d->tmp, sizeof d->tmp, "%s.tmp-XXXXXX", d->final);
  if (!mkdtemp(d->tmp)) {
    ky_status s = ky_error(KY_ERR_IO, "cannot create the temporary folder %s: %s", d->tmp, strerror(errno));
    d->tmp[0] = 0;
    return s;
  }
  return KY_OK;
}

/* Moves every entry of src into dst (made when missing), merging subfolders; src is removed. */
static ky_status move_tree(const char *src, const char *dst) {
  if (mkdir(dst, 0777) != 0 && errno != EEXIST) return ky_error(KY_ERR_IO, "cannot create folder %s: %s", dst, strerror(errno));
  DIR *dir = opendir(src);
  if (!dir) return ky_error(KY_ERR_IO, "cannot open %s: %s", src, strerror(errno));
  ky_status s = KY_OK;
  struct dirent *e;
  char a[8192], b[8192];
  while (s == KY_OK && (e = readdir(dir))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(a, sizeof a, "%s/%s", src, e->d_name);
    snprintf(b, sizeof b, "%s/%s", dst, e->d_name);
    struct stat st;
    if (lstat(a, &st) != 0) s = ky_error(KY_ERR_IO, "cannot stat %s: %s", a, strerror(errno));
    else if (S_ISDIR(st.st_mode)) s = move_tree(a, b);
    else if (rename(a, b) != 0) s = ky_error(KY_ERR_IO, "cannot move %s to %s: %s", a, b, strerror(errno));
  }
  closedir(dir);
  if (s == KY_OK && rmdir(src) != 0) s = ky_error(KY_ERR_IO, "cannot remove %s: %s", src, strerror(errno));
  return s;
}

static void remove_tree(const char *path) {
  DIR *dir = opendir(path);
  if (dir) {
    struct dirent *e;
    char a[8192];
    while ((e = readdir(dir))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
      snprintf(a, sizeof a, "%s/%s", path, e->d_name);
      struct stat st;
      if (lstat(a, &st) == 0 && S_ISDIR(st.st_mode)) remove_tree(a);
      else unlink(a);
    }
    closedir(dir);
  }
  rmdir(path);
}

ky_status ky_staged_commit(ky_staged_dir *d) {
  KY_CHECK(d && d->tmp[0], KY_ERR_STATE, "ky_staged_commit: not open");
  ky_status s = move_tree(d->tmp, d->final);
  if (s != KY_OK) remove_tree(d->tmp);
  d->tmp[0] = 0;
  return s;
}

void ky_staged_abort(ky_staged_dir *d) {
  if (!d || !d->tmp[0]) return;
  remove_tree(d->tmp);
  d->tmp[0] = 0;
}

/* safetensors files: an 8-byte little-endian header length, a JSON header
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, "__metadata__": {k: v}},
 * then the raw little-endian tensor bytes. Reader validates everything it is given (lengths,
 * offsets, overlaps, dtypes, JSON syntax); writer is atomic. Tested by tests/test_core_safetensors.c
 * (round trips, PyTorch-written files, and a list of malformed files). */
#ifndef KY_SAFETENSORS_H
#define KY_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "core/status.h"
#include "core/tensor.h"

#define KY_ST_MAX_DIMS 8

typedef struct {
  char *name;
  ky_dtype dtype;
  int ndim;
  int64_t shape[KY_ST_MAX_DIMS];
  size_t begin, end;     /* byte offsets into the data section */
} ky_st_entry;

typedef struct {
  char *path;
  uint8_t *buf;          /* the whole file */
  size_t len;
  size_t data_start;     /* 8 + header length */
  ky_st_entry *e;
  int n;
  char **meta_k, **meta_v;
  int n_meta;
} ky_st_file;

ky_status ky_st_read(ky_st_file *f, const char *path);
void ky_st_free(ky_st_file *f);
const ky_st_entry *ky_st_find(const ky_st_file *f, const char *name);
const void *ky_st_data(const ky_st_file *f, const ky_st_entry *e);
size_t ky_st_numel(const ky_st_entry *e);
const char *ky_st_meta(const ky_st_file *f, const char *key);   /* NULL if absent */

/* Writer: collects (name, dtype, shape, pointer to host bytes) and writes them in one go. The
 * pointers must stay valid until ky_st_writer_save. */
typedef struct {
  ky_st_entry *e;
  const void **src;
  int n, cap;
  char **meta_k, **meta_v;
  int n_meta, cap_meta;
} ky_st_writer;

void ky_st_writer_init(ky_st_writer *w);
ky_status ky_st_writer_add(ky_st_writer *w, const char *name, ky_dtype dtype, int ndim, const int64_t *shape,
                           const void *host_data);
ky_status ky_st_writer_meta(ky_st_writer *w, const char *key, const char *value);
ky_status ky_st_writer_save(ky_st_writer *w, const char *path);
void ky_st_writer_free(ky_st_writer *w);

#endif

/* Kaggle run-length encoding of instance label maps (column-major: transpose then flatten, 1-based
 * starts, "start length" pairs) and the DSB solution / submission CSV files.
 * Tested by tests/test_post_rle.c (round trips, malformed rows and RLE strings). */
#ifndef KY_POST_RLE_H
#define KY_POST_RLE_H

#include <stdint.h>
#include <stdio.h>
#include "core/fileio.h"
#include "core/status.h"

/* RLE of the pixels equal to `id` in labels [h, w] (row-major input). *out is malloc'ed, "" when the
 * id is absent. Runs continue across column ends, as Kaggle's encoder does. */
ky_status ky_rle_encode(char **out, const int32_t *labels, int h, int w, int32_t id);

/* Paints `id` into labels [h, w] from an RLE string. Errors (KY_ERR_FORMAT, message prefixed with
 * `where`, e.g. "sub.csv:12"): odd number of values, non-numbers, start < 1, length < 1, runs past
 * h*w, runs not ascending or overlapping each other, pixels already owned by another instance. */
ky_status ky_rle_decode(int32_t *labels, int h, int w, const char *rle, int32_t id, const char *where);

/* One CSV row: an instance (or an empty EncodedPixels for an image without instances). */
typedef struct {
  char *image_id;
  char *rle;          /* "" for an image without instances */
  int height, width;  /* 0 when the file has no Height/Width columns */
  int line;           /* 1-based line number in the file */
} ky_rle_row;

typedef struct {
  ky_rle_row *rows;
  int n;
  int has_size;       /* 1 for a solution CSV (ImageId,EncodedPixels,Height,Width) */
  char path[1024];
} ky_rle_csv;

/* Reads a solution CSV (ImageId,EncodedPixels,Height,Width; extra columns after these are ignored)
 * or a submission CSV (ImageId,EncodedPixels). RLE strings are checked for syntax here and against
 * the image size when the image is assembled. */
ky_status ky_rle_csv_read(ky_rle_csv *out, const char *path);
void ky_rle_csv_free(ky_rle_csv *csv);

/* Distinct image ids in order of first appearance: *ids is a malloc'ed array of pointers into csv. */
ky_status ky_rle_csv_ids(const char ***ids, int *n, const ky_rle_csv *csv);

/* Label map of one image: instance k (k = 1, 2, ...) is the k-th non-empty row of that image.
 * h, w: the size to use; pass 0, 0 to take it from a solution CSV's Height/Width columns.
 * *labels is malloc'ed [*out_h, *out_w]. An id not in the file is a KY_ERR_ARG naming it. */
ky_status ky_rle_csv_labels(int32_t **labels, int *out_h, int *out_w, const ky_rle_csv *csv,
                            const char *image_id, int h, int w);

/* Writes CSV rows while the caller walks the images; the file appears only on commit (atomic). */
typedef struct {
  ky_atomic_file af;
  int with_size;
} ky_rle_writer;

ky_status ky_rle_writer_open(ky_rle_writer *wr, const char *path, int with_size);
/* One row per instance (labels > 0, ascending id), or one row with empty EncodedPixels when the
 * image has none. */
ky_status ky_rle_writer_add(ky_rle_writer *wr, const char *image_id, const int32_t *labels, int h, int w);
ky_status ky_rle_writer_commit(ky_rle_writer *wr);
void ky_rle_writer_abort(ky_rle_writer *wr);

#endif

/* Threaded training-batch loader: worker threads prepare batches ahead of training into a ring of
 * K slots. The batch sequence depends only on the configuration and seed, never on the number of
 * threads. Tested by tests/test_data_loader.c. */
#ifndef KY_DATA_LOADER_H
#define KY_DATA_LOADER_H

#include <stdint.h>
#include "core/rng.h"
#include "core/status.h"
#include "data/batch.h"
#include "data/dsb.h"
#include "data/normalize.h"

/* Augmentation hook, called per sample on the crop (after ky_precrop_fn), before the targets are
 * made: rgb [h, w, 3] and labels [h, w] are the loader's private copies, changed in place (h, w
 * stay). rng is the sample's own stream (ky_sample_rng), already advanced by the crop origin
 * draw and by the pre-crop hook. Called concurrently from several worker threads: ctx must be
 * read-only or synchronised. A non-OK status (with ky_error's message) fails the batch and
 * reaches the consumer's ky_loader_next. */
typedef ky_status (*ky_augment_fn)(void *ctx, uint8_t *rgb, uint16_t *labels, int h, int w, ky_rng *rng);

/* Pre-crop hook (nuclei copy-paste, spec 5.2), called per sample BEFORE cropping, on a private
 * copy of the whole image already zero-padded at the bottom/right to at least crop x crop (as the
 * reference pads before copying): rgb [h, w, 3], labels [h, w], changed in place; (y0, x0) is the
 * chosen crop origin, so pastes can be placed to overlap the window [y0, y0 + crop) x
 * [x0, x0 + crop). The hook may read the original sample (for donor nuclei) through ctx.
 * Same threading and error rules as ky_augment_fn. */
typedef ky_status (*ky_precrop_fn)(void *ctx, uint8_t *rgb, uint16_t *labels, int h, int w, int y0, int x0,
                                   int crop, ky_rng *rng);

typedef struct {
  const ky_dsb_set *set;  /* decoded samples, every one with labels; must outlive the loader */
  const int *list;        /* [n_list] indices into set, repeats = oversampling; NULL: each once */
  int n_list;
  int batch;              /* samples per batch */
  int crop;               /* square crop side */
  uint64_t seed;
  ky_norm norm;
  int with_sigmoid;       /* also fill ky_batch.sig */
  int threads;            /* worker threads, >= 1 */
  int ring;               /* batches prepared ahead (K); 0 = 2 * threads */
  int nice;               /* raise the workers' nice value by this much (0: none), below compute threads */
  int64_t first_batch;    /* batch number to start at (resuming) */
  int shard_lo, shard_hi; /* data-parallel rank's part [lo, hi) of every batch (0, 0: all of it):
                           * ky_batch items i < hi - lo are the batch's samples lo + i */
  ky_precrop_fn precrop;  /* optional */
  void *precrop_ctx;
  ky_augment_fn augment;  /* optional */
  void *augment_ctx;
} ky_loader_config;

/* Batch number b holds the samples s = b * batch + i (i < batch) of the sample stream: position s
 * is item list[perm_e[s % n_list]] with e = s / n_list and perm_e from ky_sampler_epoch (batches
 * run on across epoch boundaries; the caller counts steps per epoch). Each sample's randomness
 * is ky_sample_rng(seed, s): first the crop origin (ky_crop_origin), then the hooks. A shard fills
 * only i in [shard_lo, shard_hi), so the union of the ranks' shards is the whole batch, whatever
 * the number of ranks. */
ky_status ky_loader_fill(ky_batch *out, const ky_loader_config *cfg, int64_t batch_no);

typedef struct ky_loader ky_loader;

ky_status ky_loader_start(ky_loader **out, const ky_loader_config *cfg);
/* Waits for the next batch in sequence. *batch stays valid until the next ky_loader_next or
 * ky_loader_stop call (its slot is then reused). A worker's error is returned here with its
 * message, and every later call returns it again. *batch_no (may be NULL) gets its number. */
ky_status ky_loader_next(ky_loader *l, const ky_batch **batch, int64_t *batch_no);
/* Stops the workers (finishing the batch each is filling), joins them and frees everything. */
void ky_loader_stop(ky_loader *l);

#endif

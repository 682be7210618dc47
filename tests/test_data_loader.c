/* Tests for data/batch and data/loader on the shared DSB sample: identical batches for 1 and 2
 * worker threads and the synchronous ky_loader_fill, seeds that differ, epochs that visit the
 * oversampled list, zero padding of small images, both hooks, worker errors reaching the consumer,
 * data-parallel shards that add up to the batch, and clean shutdown (ASan with make DEBUG=1). Run by `make test` from the repository root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/batch.h"
#include "data/dsb.h"
#include "data/loader.h"
#include "data/targets.h"
#include "dist/dist.h"

#define SAMPLE "tests/fixtures/dsb_sample"

static ky_dsb_set g_set;

static int setup(void **st) {
  return ky_dsb_set_load(&g_set, SAMPLE, NULL, 0, KY_DSB_MASKS_REQUIRED) == KY_OK ? 0 : -1;
}

static int teardown(void **st) {
  ky_dsb_set_free(&g_set);
  return 0;
}

static ky_loader_config base_config(uint64_t seed, int threads) {
  ky_loader_config c;
  memset(&c, 0, sizeof c);
  c.set = &g_set;
  c.batch = 3;
  c.crop = 64;
  c.seed = seed;
  c.norm = KY_NORM_DPN;
  c.with_sigmoid = 1;
  c.threads = threads;
  return c;
}

static void assert_batch_equal(const ky_batch *a, const ky_batch *b) {
  size_t np = (size_t)a->n * a->h * a->w;
  assert_int_equal(a->n, b->n);
  assert_memory_equal(a->item, b->item, (size_t)a->n * sizeof *a->item);
  assert_memory_equal(a->x, b->x, np * 3 * sizeof *a->x);
  assert_memory_equal(a->cls, b->cls, np);
  assert_memory_equal(a->sig, b->sig, np * 3 * sizeof *a->sig);
}

/* A hook that uses its random stream: horizontal flip of image and labels with p = 0.5. */
static ky_status flip_hook(void *ctx, uint8_t *rgb, uint16_t *lab, int h, int w, ky_rng *rng) {
  if (!ky_rng_bernoulli(rng, 0.5f)) return KY_OK;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w / 2; x++) {
      size_t a = (size_t)y * w + x, b = (size_t)y * w + (w - 1 - x);
      uint16_t t = lab[a]; lab[a] = lab[b]; lab[b] = t;
      for (int k = 0; k < 3; k++) { uint8_t u = rgb[3 * a + k]; rgb[3 * a + k] = rgb[3 * b + k]; rgb[3 * b + k] = u; }
    }
  return KY_OK;
}

static void test_same_seed_same_batches_any_threads(void **st) {
  enum { NB = 7 };
  ky_loader_config c1 = base_config(11, 1), c2 = base_config(11, 2);
  c1.augment = c2.augment = flip_hook;
  c2.ring = 3;
  ky_loader *l1, *l2;
  assert_int_equal(ky_loader_start(&l1, &c1), KY_OK);
  assert_int_equal(ky_loader_start(&l2, &c2), KY_OK);
  ky_batch ref;
  assert_int_equal(ky_batch_alloc(&ref, c1.batch, c1.crop, c1.crop, 1), KY_OK);
  for (int64_t b = 0; b < NB; b++) {
    const ky_batch *b1, *b2;
    int64_t n1, n2;
    assert_int_equal(ky_loader_next(l1, &b1, &n1), KY_OK);
    assert_int_equal(ky_loader_next(l2, &b2, &n2), KY_OK);
    assert_int_equal(n1, b);
    assert_int_equal(n2, b);
    assert_batch_equal(b1, b2);
    assert_int_equal(ky_loader_fill(&ref, &c1, b), KY_OK);
    assert_batch_equal(b1, &ref);
  }
  ky_loader_stop(l1);
  ky_loader_stop(l2);
  /* Resuming at a batch number gives the same batch as the uninterrupted run. */
  ky_loader_config c3 = base_config(11, 2);
  c3.augment = flip_hook;
  c3.first_batch = 5;
  ky_loader *l3;
  assert_int_equal(ky_loader_start(&l3, &c3), KY_OK);
  const ky_batch *b3;
  assert_int_equal(ky_loader_next(l3, &b3, NULL), KY_OK);
  assert_int_equal(ky_loader_fill(&ref, &c1, 5), KY_OK);
  assert_batch_equal(b3, &ref);
  ky_loader_stop(l3);
  ky_batch_free(&ref);
}

static void test_seeds_differ_and_targets_are_consistent(void **st) {
  ky_loader_config a = base_config(1, 1), b = base_config(2, 1);
  ky_batch ba, bb;
  assert_int_equal(ky_batch_alloc(&ba, a.batch, a.crop, a.crop, 1), KY_OK);
  assert_int_equal(ky_batch_alloc(&bb, a.batch, a.crop, a.crop, 1), KY_OK);
  assert_int_equal(ky_loader_fill(&ba, &a, 0), KY_OK);
  assert_int_equal(ky_loader_fill(&bb, &b, 0), KY_OK);
  size_t np = (size_t)a.batch * a.crop * a.crop;
  assert_memory_not_equal(ba.x, bb.x, np * 3 * sizeof *ba.x);
  /* Classes and sigmoid channels agree: class 2 <=> body, class 1 <=> sep and not body. */
  size_t n_body = 0;
  for (size_t p = 0; p < np; p++) {
    const float *s = ba.sig + 3 * p;
    uint8_t want = s[0] > 0.5f ? 2 : s[1] > 0.5f ? 1 : 0;
    assert_int_equal(ba.cls[p], want);
    if (s[0] > 0.5f) assert_true(s[2] > 0.5f);   /* body implies full */
    n_body += ba.cls[p] == 2;
  }
  assert_true(n_body > 0);
  ky_batch_free(&ba);
  ky_batch_free(&bb);
}

static void test_epoch_visits_oversampled_list(void **st) {
  /* List: sample 0 three times, samples 1..5 once: 8 entries = 2 epochs in 4 batches of 4. */
  int list[8] = {0, 0, 0, 1, 2, 3, 4, 5};
  ky_loader_config c = base_config(5, 1);
  c.list = list;
  c.n_list = 8;
  c.batch = 4;
  c.crop = 16;
  ky_batch b;
  assert_int_equal(ky_batch_alloc(&b, c.batch, c.crop, c.crop, 1), KY_OK);
  for (int e = 0; e < 2; e++) {
    int count[9] = {0};
    for (int k = 0; k < 2; k++) {
      assert_int_equal(ky_loader_fill(&b, &c, e * 2 + k), KY_OK);
      for (int i = 0; i < 4; i++) count[b.item[i]]++;
    }
    assert_int_equal(count[0], 3);
    for (int i = 1; i <= 5; i++) assert_int_equal(count[i], 1);
  }
  int p0[8], p1[8];
  assert_int_equal(ky_sampler_epoch(p0, 8, 5, 0), KY_OK);
  assert_int_equal(ky_sampler_epoch(p1, 8, 5, 1), KY_OK);
  assert_memory_not_equal(p0, p1, sizeof p0);
  int bad[1] = {99};
  c.list = bad;
  c.n_list = 1;
  assert_int_equal(ky_loader_fill(&b, &c, 0), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "list[0] = 99"));
  ky_batch_free(&b);
}

static void test_crop_pads_small_images(void **st) {
  /* 2x3 image, crop 4 at (0, 0): zeros bottom/right. */
  const uint8_t rgb[2 * 3 * 3] = {1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 6};
  const uint16_t lab[6] = {1, 0, 2, 3, 0, 0};
  uint8_t o[16 * 3];
  uint16_t ol[16];
  assert_int_equal(ky_crop(o, ol, rgb, lab, 2, 3, 0, 0, 4), KY_OK);
  assert_int_equal(o[0], 1);
  assert_int_equal(o[3 * 2], 3);
  assert_int_equal(o[3 * 3], 0);
  assert_int_equal(o[3 * 4], 4);
  assert_int_equal(o[3 * 8], 0);
  assert_int_equal(ol[2], 2);
  assert_int_equal(ol[4], 3);
  assert_int_equal(ol[15], 0);
  assert_int_equal(ky_crop(o, ol, rgb, lab, 2, 3, 2, 0, 4), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "origin (2, 0)"));
  /* A crop larger than every sample image (256 or 320 wide, 256 high): origin 0, zero rows. */
  ky_loader_config c = base_config(3, 1);
  c.crop = 330;
  c.batch = 1;
  c.with_sigmoid = 0;
  ky_batch b;
  assert_int_equal(ky_batch_alloc(&b, 1, 330, 330, 0), KY_OK);
  assert_int_equal(ky_loader_fill(&b, &c, 0), KY_OK);
  float zero = (0.f - 124.f) * 0.0167f;
  size_t last = ((size_t)329 * 330 + 329) * 3;
  assert_true(fabsf(b.x[last] - zero) < 1e-6f);
  assert_int_equal(b.cls[(size_t)329 * 330 + 329], 0);
  ky_batch_free(&b);
}

/* Pre-crop hook: checks its arguments and pastes a 10x10 nucleus of new label at the crop
 * window's (5, 5) with white pixels. */
static ky_status paste_hook(void *ctx, uint8_t *rgb, uint16_t *lab, int h, int w, int y0, int x0, int crop, ky_rng *rng) {
  int *calls = ctx;
  if (h < crop || w < crop || y0 < 0 || x0 < 0 || y0 + crop > h || x0 + crop > w)
    return ky_error(KY_ERR_ARG, "paste_hook: bad window");
  __atomic_add_fetch(calls, 1, __ATOMIC_SEQ_CST);
  for (int y = y0 + 5; y < y0 + 15; y++)
    for (int x = x0 + 5; x < x0 + 15; x++) {
      lab[(size_t)y * w + x] = 60000;
      memset(rgb + ((size_t)y * w + x) * 3, 255, 3);
    }
  return KY_OK;
}

static ky_status zero_labels_hook(void *ctx, uint8_t *rgb, uint16_t *lab, int h, int w, ky_rng *rng) {
  memset(lab, 0, (size_t)h * w * 2);
  return KY_OK;
}

static void test_hooks(void **st) {
  int calls = 0;
  ky_loader_config c = base_config(9, 2);
  c.precrop = paste_hook;
  c.precrop_ctx = &calls;
  c.crop = 300;  /* larger than the images: the hook sees the zero-padded copy */
  c.batch = 2;
  ky_loader *l;
  assert_int_equal(ky_loader_start(&l, &c), KY_OK);
  for (int k = 0; k < 3; k++) {
    const ky_batch *b;
    assert_int_equal(ky_loader_next(l, &b, NULL), KY_OK);
    for (int i = 0; i < b->n; i++) {
      size_t p = (size_t)i * 300 * 300 + 10 * 300 + 10;
      assert_int_equal(b->cls[p], 2);
      assert_true(fabsf(b->x[3 * p] - (255.f - 124.f) * 0.0167f) < 1e-5f);
    }
  }
  ky_loader_stop(l);
  assert_true(calls >= 6);
  /* Targets are regenerated after augmentation: labels wiped => no foreground at all. */
  ky_loader_config z = base_config(9, 1);
  z.augment = zero_labels_hook;
  ky_batch b;
  assert_int_equal(ky_batch_alloc(&b, z.batch, z.crop, z.crop, 1), KY_OK);
  assert_int_equal(ky_loader_fill(&b, &z, 0), KY_OK);
  for (size_t p = 0; p < (size_t)z.batch * z.crop * z.crop; p++) {
    assert_int_equal(b.cls[p], 0);
    assert_true(b.sig[3 * p + 2] == 0.f);
  }
  ky_batch_free(&b);
}

static ky_status failing_hook(void *ctx, uint8_t *rgb, uint16_t *lab, int h, int w, ky_rng *rng) {
  int *left = ctx;
  if (__atomic_sub_fetch(left, 1, __ATOMIC_SEQ_CST) == 0) return ky_error(KY_ERR_FORMAT, "hook failed on purpose");
  return KY_OK;
}

static void test_worker_error_reaches_consumer(void **st) {
  /* One thread, so the 5th hook call is sample 4 = batch 1 (batch size 3). */
  int left = 5;
  ky_loader_config c = base_config(4, 1);
  c.augment = failing_hook;
  c.augment_ctx = &left;
  c.ring = 4;
  ky_loader *l;
  assert_int_equal(ky_loader_start(&l, &c), KY_OK);
  const ky_batch *b;
  assert_int_equal(ky_loader_next(l, &b, NULL), KY_OK);
  assert_non_null(b);
  assert_int_equal(ky_loader_next(l, &b, NULL), KY_ERR_FORMAT);
  assert_null(b);
  assert_non_null(strstr(ky_last_error(), "hook failed on purpose"));
  assert_non_null(strstr(ky_last_error(), "batch 1"));
  assert_non_null(strstr(ky_last_error(), "augmentation"));
  /* Sticky: later calls report the same failure. */
  assert_int_equal(ky_loader_next(l, &b, NULL), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "hook failed on purpose"));
  ky_loader_stop(l);
  /* Stopping a loader whose workers are all waiting on a full ring. */
  ky_loader_config q = base_config(4, 2);
  q.ring = 2;
  assert_int_equal(ky_loader_start(&l, &q), KY_OK);
  assert_int_equal(ky_loader_next(l, &b, NULL), KY_OK);
  ky_loader_stop(l);
}

static void test_full_image_for_validation(void **st) {
  const ky_dsb_sample *sm = &g_set.samples[2];  /* 320 x 256 */
  int h = sm->h, w = sm->w;
  ky_pad pad = ky_pad_rule_selim(h, w);
  ky_batch b;
  assert_int_equal(ky_batch_full_image(&b, sm->rgb, sm->labels, h, w, KY_NORM_CAFFE, pad, KY_PAD_SYMMETRIC, 1), KY_OK);
  assert_int_equal(b.n, 1);
  assert_int_equal(b.h, h + 32);
  assert_int_equal(b.w, w + 32);
  size_t np = (size_t)h * w;
  uint8_t *body = malloc(np), *sep = malloc(np), *cls = malloc(np);
  assert_int_equal(ky_targets_make(body, sep, NULL, sm->labels, h, w), KY_OK);
  assert_int_equal(ky_targets_classes(cls, body, sep, (int64_t)np), KY_OK);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      size_t q = (size_t)(y + 16) * b.w + x + 16, p = (size_t)y * w + x;
      assert_int_equal(b.cls[q], cls[p]);
      assert_true(b.x[3 * q] == (float)sm->rgb[3 * p + 2] - 103.939f);
    }
  /* Symmetric mirror: padded row 15 repeats image row 0, row 14 repeats row 1. */
  assert_int_equal(b.cls[(size_t)15 * b.w + 20], cls[4]);
  assert_true(b.x[3 * ((size_t)14 * b.w + 20)] == b.x[3 * ((size_t)17 * b.w + 20)]);
  assert_true(b.sig[3 * ((size_t)14 * b.w + 20) + 2] == b.sig[3 * ((size_t)17 * b.w + 20) + 2]);
  ky_batch_free(&b);
  free(body); free(sep); free(cls);
  /* Test images: no labels, no targets. */
  assert_int_equal(ky_batch_full_image(&b, sm->rgb, NULL, h, w, KY_NORM_DPN, ky_pad_rule_albu(h, w), KY_PAD_SYMMETRIC, 1), KY_OK);
  assert_null(b.cls);
  assert_null(b.sig);
  assert_int_equal(b.h, h + 32);
  assert_int_equal(b.w, w + 32);
  ky_batch_free(&b);
}

/* Data-parallel shards: for every number of ranks N <= batch, the ranks' parts of a batch (ky_dist
 * shares, through the threaded loader) laid end to end are the whole batch, byte for byte. */
static void test_shards_union_is_the_batch(void **st) {
  ky_loader_config c = base_config(5, 1);
  c.batch = 5;
  c.augment = flip_hook;
  ky_batch whole;
  assert_int_equal(ky_batch_alloc(&whole, c.batch, c.crop, c.crop, 1), KY_OK);
  size_t px = (size_t)c.crop * c.crop;
  for (int64_t b = 3; b < 5; b++) {
    assert_int_equal(ky_loader_fill(&whole, &c, b), KY_OK);
    for (int n = 1; n <= c.batch; n++)
      for (int r = 0; r < n; r++) {
        ky_loader_config cr = c;
        ky_dist_shard(&cr.shard_lo, &cr.shard_hi, c.batch, r, n);
        cr.first_batch = b;
        cr.threads = 2;
        ky_loader *l;
        assert_int_equal(ky_loader_start(&l, &cr), KY_OK);
        const ky_batch *p;
        assert_int_equal(ky_loader_next(l, &p, NULL), KY_OK);
        int k = cr.shard_hi - cr.shard_lo, o = cr.shard_lo;
        assert_int_equal(p->n, k);
        assert_memory_equal(p->item, whole.item + o, (size_t)k * sizeof *p->item);
        assert_memory_equal(p->x, whole.x + o * px * 3, (size_t)k * px * 3 * sizeof *p->x);
        assert_memory_equal(p->cls, whole.cls + o * px, (size_t)k * px);
        assert_memory_equal(p->sig, whole.sig + o * px * 3, (size_t)k * px * 3 * sizeof *p->sig);
        ky_loader_stop(l);
      }
  }
  ky_batch_free(&whole);
  /* A shard must be a non-empty part of the batch. */
  ky_loader *l;
  c.shard_lo = 3;
  c.shard_hi = 3;
  assert_int_equal(ky_loader_start(&l, &c), KY_ERR_ARG);
  c.shard_hi = 6;
  assert_int_equal(ky_loader_start(&l, &c), KY_ERR_ARG);
}

static void test_config_errors(void **st) {
  ky_loader *l;
  ky_loader_config c = base_config(1, 0);
  assert_int_equal(ky_loader_start(&l, &c), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "threads 0"));
  c = base_config(1, 1);
  c.batch = 0;
  assert_int_equal(ky_loader_start(&l, &c), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "batch 0"));
  c = base_config(1, 1);
  ky_batch b;
  assert_int_equal(ky_batch_alloc(&b, 2, c.crop, c.crop, 1), KY_OK);
  assert_int_equal(ky_loader_fill(&b, &c, 0), KY_ERR_SHAPE);
  assert_non_null(strstr(ky_last_error(), "[3, 64, 64]"));
  ky_batch_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_same_seed_same_batches_any_threads),
      cmocka_unit_test(test_seeds_differ_and_targets_are_consistent),
      cmocka_unit_test(test_epoch_visits_oversampled_list),
      cmocka_unit_test(test_crop_pads_small_images),
      cmocka_unit_test(test_hooks),
      cmocka_unit_test(test_worker_error_reaches_consumer),
      cmocka_unit_test(test_full_image_for_validation),
      cmocka_unit_test(test_shards_union_is_the_batch),
      cmocka_unit_test(test_config_errors),
  };
  return cmocka_run_group_tests_name("data_loader", tests, setup, teardown);
}

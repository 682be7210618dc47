/* Tests for aug/copypaste: donor selection (isolated whole nuclei only), whole pastes with new ids
 * (same pixel count and shape up to flip/rot90, inner pixels carried over), placement over the crop
 * window, seam blending, determinism, targets consistency, errors. Run by `make test`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "aug/copypaste.h"
#include "data/targets.h"
#include "test_aug_util.h"

enum { H = 64, W = 64 };

static void disc(uint16_t *lab, uint8_t *rgb, int cx, int cy, int r, uint16_t id) {
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      if ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r) {
        lab[y * W + x] = id;
        if (rgb) {
          uint8_t *p = rgb + 3 * (y * W + x);
          p[0] = (uint8_t)(100 + 7 * (x - cx) + 3 * id); /* texture that shows orientation */
          p[1] = (uint8_t)(120 + 5 * (y - cy));
          p[2] = (uint8_t)(200 - 2 * (x + y));
        }
      }
}

static void background(uint8_t *rgb, uint16_t *lab) {
  memset(lab, 0, H * W * 2);
  for (int i = 0; i < H * W; i++) { rgb[3 * i] = 10; rgb[3 * i + 1] = 20; rgb[3 * i + 2] = 30; }
}

/* One isolated donor (id 1, asymmetric), one nucleus on the frame (2), a touching pair (3, 4). */
static void make_one_donor(uint8_t *rgb, uint16_t *lab) {
  background(rgb, lab);
  disc(lab, rgb, 46, 14, 5, 1);
  for (int y = 9; y < 15; y++) lab[y * W + 51] = 1, lab[y * W + 52] = 1; /* a tail: not symmetric */
  disc(lab, rgb, 0, 40, 4, 2);
  for (int y = 50; y < 58; y++)
    for (int x = 30; x < 46; x++) lab[y * W + x] = x < 38 ? 3 : 4;
}

/* Donor mask in its bounding box, turned k times (np.rot90) after an optional flip. */
static int mask_matches(const uint16_t *lab, uint16_t id, const uint16_t *orig, uint16_t oid) {
  int bx0 = W, by0 = H, bx1 = -1, by1 = -1, ox0 = W, oy0 = H, ox1 = -1, oy1 = -1;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      if (lab[y * W + x] == id) { bx0 = x < bx0 ? x : bx0; by0 = y < by0 ? y : by0; bx1 = x > bx1 ? x : bx1; by1 = y > by1 ? y : by1; }
      if (orig[y * W + x] == oid) { ox0 = x < ox0 ? x : ox0; oy0 = y < oy0 ? y : oy0; ox1 = x > ox1 ? x : ox1; oy1 = y > oy1 ? y : oy1; }
    }
  int pw = bx1 - bx0 + 1, ph = by1 - by0 + 1, ow = ox1 - ox0 + 1, oh = oy1 - oy0 + 1;
  for (int flip = 0; flip < 2; flip++)
    for (int k = 0; k < 4; k++) {
      int ew = k & 1 ? oh : ow, eh = k & 1 ? ow : oh;
      if (ew != pw || eh != ph) continue;
      int ok = 1;
      for (int i = 0; i < ph && ok; i++)
        for (int j = 0; j < pw && ok; j++) {
          int sy, sx;
          if (k == 0) { sy = i; sx = j; }
          else if (k == 1) { sy = j; sx = ow - 1 - i; }
          else if (k == 2) { sy = oh - 1 - i; sx = ow - 1 - j; }
          else { sy = oh - 1 - j; sx = i; }
          if (flip) sx = ow - 1 - sx;
          ok = (lab[(by0 + i) * W + bx0 + j] == id) == (orig[(oy0 + sy) * W + ox0 + sx] == oid);
        }
      if (ok) return 1;
    }
  return 0;
}

static int count_id(const uint16_t *lab, uint16_t id) {
  int n = 0;
  for (int i = 0; i < H * W; i++) n += lab[i] == id;
  return n;
}

static void test_single_donor_whole_paste(void **st) {
  static uint8_t rgb[H * W * 3], rgb0[H * W * 3];
  static uint16_t lab[H * W], lab0[H * W];
  int pasted_in_window = 0;
  for (uint64_t s = 0; s < 16; s++) {
    make_one_donor(rgb0, lab0);
    memcpy(rgb, rgb0, sizeof rgb);
    memcpy(lab, lab0, sizeof lab);
    ky_rng r = ky_rng_make(77, s);
    int x0 = 8, y0 = 20, crop = 24;
    assert_int_equal(ky_aug_copy_paste(rgb, lab, H, W, x0, y0, crop, 1.f, &r), KY_OK);
    /* Exactly one copy (pool of 1), whole, with id 5 = max + 1. */
    assert_int_equal(count_id(lab, 6), 0);
    assert_int_equal(count_id(lab, 5), count_id(lab0, 1));
    assert_true(mask_matches(lab, 5, lab0, 1));
    /* It overlaps the crop window. */
    int in = 0;
    for (int y = y0; y < y0 + crop; y++)
      for (int x = x0; x < x0 + crop; x++) in += lab[y * W + x] == 5;
    pasted_in_window += in > 0;
    /* Elsewhere labels are untouched. */
    for (int i = 0; i < H * W; i++) assert_true(lab[i] == lab0[i] || lab[i] == 5);
    /* Pixels deeper than 2 px inside the paste carry donor colours (same multiset as the donor's
     * interior: the pasted interior is a flipped/rotated copy). */
    long sum_new = 0, sum_don = 0;
    int n_new = 0, n_don = 0;
    for (int y = 2; y < H - 2; y++)
      for (int x = 2; x < W - 2; x++) {
        int all_new = 1, all_don = 1;
        for (int dy = -2; dy <= 2; dy++)
          for (int dx = -2; dx <= 2; dx++) {
            all_new &= lab[(y + dy) * W + x + dx] == 5;
            all_don &= lab0[(y + dy) * W + x + dx] == 1;
          }
        if (all_new) { n_new++; sum_new += rgb[3 * (y * W + x)] + 256 * rgb[3 * (y * W + x) + 1]; }
        if (all_don) { n_don++; sum_don += rgb0[3 * (y * W + x)] + 256 * rgb0[3 * (y * W + x) + 1]; }
      }
    assert_int_equal(n_new, n_don);
    assert_true(n_new > 0);
    assert_int_equal(sum_new, sum_don);
  }
  assert_int_equal(pasted_in_window, 16);
}

static void test_no_donor_no_change(void **st) {
  static uint8_t rgb[H * W * 3], rgb0[H * W * 3];
  static uint16_t lab[H * W], lab0[H * W];
  make_one_donor(rgb0, lab0);
  for (int i = 0; i < H * W; i++) if (lab0[i] == 1) lab0[i] = 0; /* only frame and touching nuclei */
  memcpy(rgb, rgb0, sizeof rgb);
  memcpy(lab, lab0, sizeof lab);
  ky_rng r = ky_rng_make(1, 1);
  assert_int_equal(ky_aug_copy_paste(rgb, lab, H, W, 0, 0, 32, 1.f, &r), KY_OK);
  assert_memory_equal(lab, lab0, sizeof lab);
  assert_memory_equal(rgb, rgb0, sizeof rgb);
  /* p = 0: nothing either, one draw consumed. */
  make_one_donor(rgb, lab);
  memcpy(lab0, lab, sizeof lab);
  r = ky_rng_make(1, 1);
  assert_int_equal(ky_aug_copy_paste(rgb, lab, H, W, 0, 0, 32, 0.f, &r), KY_OK);
  assert_memory_equal(lab, lab0, sizeof lab);
  assert_int_equal(r.index, 1);
}

/* A flat donor on a flat background: the masked median of the seam only picks existing values. */
static void test_seam_blend_values(void **st) {
  static uint8_t rgb[H * W * 3];
  static uint16_t lab[H * W];
  background(rgb, lab);
  disc(lab, NULL, 20, 20, 6, 1);
  for (int i = 0; i < H * W; i++)
    if (lab[i]) { rgb[3 * i] = 200; rgb[3 * i + 1] = 150; rgb[3 * i + 2] = 100; }
  ky_rng r = ky_rng_make(3, 3);
  assert_int_equal(ky_aug_copy_paste(rgb, lab, H, W, 30, 30, 30, 1.f, &r), KY_OK);
  assert_int_equal(count_id(lab, 2), count_id(lab, 1));
  for (int i = 0; i < H * W; i++) {
    const uint8_t *p = rgb + 3 * i;
    int bg = p[0] == 10 && p[1] == 20 && p[2] == 30, fg = p[0] == 200 && p[1] == 150 && p[2] == 100;
    assert_true(bg || fg);
  }
}

/* Several donors: 1..5 new consecutive ids, each no larger than the largest donor; deterministic;
 * the targets of the result are consistent with its labels. */
static void test_many_donors(void **st) {
  static uint8_t rgb[H * W * 3], rgb2[H * W * 3];
  static uint16_t lab[H * W], lab2[H * W];
  int max_copies = 0;
  for (uint64_t s = 0; s < 20; s++) {
    background(rgb, lab);
    int cx[6] = {10, 30, 50, 12, 32, 52}, cy[6] = {10, 12, 10, 40, 42, 44};
    for (int k = 0; k < 6; k++) disc(lab, rgb, cx[k], cy[k], 3 + k % 3, (uint16_t)(k + 1));
    memcpy(rgb2, rgb, sizeof rgb);
    memcpy(lab2, lab, sizeof lab);
    ky_rng r1 = ky_rng_make(5, s), r2 = ky_rng_make(5, s);
    assert_int_equal(ky_aug_copy_paste(rgb, lab, H, W, 16, 16, 32, 1.f, &r1), KY_OK);
    assert_int_equal(ky_aug_copy_paste(rgb2, lab2, H, W, 16, 16, 32, 1.f, &r2), KY_OK);
    assert_memory_equal(rgb, rgb2, sizeof rgb);
    assert_memory_equal(lab, lab2, sizeof lab);
    /* The same with a pool found beforehand. */
    background(rgb2, lab2);
    for (int k = 0; k < 6; k++) disc(lab2, rgb2, cx[k], cy[k], 3 + k % 3, (uint16_t)(k + 1));
    ky_aug_donors d;
    assert_int_equal(ky_aug_donors_find(&d, lab2, H, W), KY_OK);
    assert_int_equal(d.n, 6);
    assert_int_equal(d.max_id, 6);
    ky_rng r3 = ky_rng_make(5, s);
    assert_int_equal(ky_aug_copy_paste_donors(rgb2, lab2, H, W, 16, 16, 32, 1.f, &d, &r3), KY_OK);
    assert_memory_equal(rgb, rgb2, sizeof rgb);
    assert_memory_equal(lab, lab2, sizeof lab);
    assert_int_equal(r3.index, r1.index);
    assert_int_equal(ky_aug_copy_paste_donors(rgb2, lab2, H - 1, W, 16, 16, 32, 1.f, &d, &r3), KY_ERR_SHAPE);
    assert_non_null(strstr(ky_last_error(), "donors were found on a 64x64 label map, the image is 63x64"));
    ky_aug_donors_free(&d);
    memcpy(lab2, lab, sizeof lab);
    int copies = 0;
    for (uint16_t id = 7; id < 20; id++) {
      int c = count_id(lab, id);
      if (!c) { assert_int_equal(count_id(lab, id + 1), 0); break; }
      copies++;
      assert_true(c <= 81); /* the largest donor, a radius-5 disc, has 81 pixels */
    }
    assert_true(copies >= 1 && copies <= 5);
    max_copies = copies > max_copies ? copies : max_copies;
    static uint8_t body[H * W], sep[H * W], full[H * W];
    assert_int_equal(ky_targets_make(body, sep, full, lab, H, W), KY_OK);
    for (int i = 0; i < H * W; i++) {
      assert_int_equal(full[i] != 0, lab[i] != 0);
      assert_false(body[i] && sep[i]);
      assert_true(!body[i] || full[i]);
    }
  }
  assert_true(max_copies >= 3);
}

/* The seam's masked median equals skimage.filters.rank.median(plane, square(3), mask) on the mask. */
static void test_masked_median_skimage(void **st) {
  uint8_t *plane = fix_u8("ring_plane_24x20.png", 1, 24, 20), *mask = fix_u8("ring_mask_24x20.png", 1, 24, 20);
  uint8_t *exp = fix_u8("ring_median_24x20.png", 1, 24, 20);
  assert_non_null(plane); assert_non_null(mask); assert_non_null(exp);
  uint8_t out[24 * 20];
  assert_int_equal(ky_aug_masked_median3(out, plane, mask, 24, 20), KY_OK);
  int n = 0;
  for (int i = 0; i < 24 * 20; i++) {
    if (mask[i]) { assert_int_equal(out[i], exp[i]); n++; }
    else assert_int_equal(out[i], plane[i]);
  }
  assert_true(n > 100);
  assert_int_equal(ky_aug_masked_median3(plane, plane, mask, 24, 20), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "must not alias"));
  free(plane); free(mask); free(exp);
}

static void test_errors(void **st) {
  static uint8_t rgb[H * W * 3];
  static uint16_t lab[H * W];
  ky_rng r = ky_rng_make(1, 1);
  assert_int_equal(ky_aug_copy_paste(rgb, lab, H, W, 70, 0, 32, 1.f, &r), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "crop window (x0 70, y0 0, size 32) must start inside the 64x64 image"));
  assert_int_equal(ky_aug_copy_paste(rgb, NULL, H, W, 0, 0, 32, 1.f, &r), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "labels is NULL"));
  assert_int_equal(ky_aug_copy_paste(rgb, lab, H, W, 0, 0, 32, 2.f, &r), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "p must be in [0, 1], got 2"));
  assert_int_equal(ky_aug_copy_paste_hook(NULL, rgb, lab, H, W, 0, 0, 32, &r), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "ctx (pointer to the probability) is NULL"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_single_donor_whole_paste),
      cmocka_unit_test(test_no_donor_no_change),
      cmocka_unit_test(test_seam_blend_values),
      cmocka_unit_test(test_many_donors),
      cmocka_unit_test(test_masked_median_skimage),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests_name("aug_copypaste", tests, NULL, NULL);
}

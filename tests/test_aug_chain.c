/* Tests for aug/chain: config parsing and formatting, the mega chain's structure, determinism per
 * (seed, stream), OneOf weights, chain probability, image/label alignment of a geometric chain,
 * every op through the sampling wrapper, the loader hook signature, and errors. Run by `make test`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>

#include "aug/chain.h"
#include "aug/copypaste.h"
#include "data/loader.h"
#include "test_aug_util.h"

enum { H = 64, W = 64 };

/* A textured image with labelled blobs whose colours encode the label. */
static void make_sample(uint8_t *rgb, uint16_t *lab) {
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      int i = y * W + x;
      uint16_t k = 0;
      if ((x - 20) * (x - 20) + (y - 22) * (y - 22) <= 81) k = 1;
      if ((x - 45) * (x - 45) + (y - 40) * (y - 40) <= 121) k = 2;
      if (x >= 8 && x < 20 && y >= 45 && y < 58) k = 3;
      lab[i] = k;
      rgb[3 * i] = (uint8_t)(k ? 60 + 60 * k : 20 + (x + y) / 4);
      rgb[3 * i + 1] = (uint8_t)(k ? 200 - 50 * k : 30 + x / 3);
      rgb[3 * i + 2] = (uint8_t)(k ? 90 + 30 * k : 40 + y / 3);
    }
}

static void test_parse_format_roundtrip(void **st) {
  ky_aug_chain c;
  assert_int_equal(ky_aug_chain_parse(&c, " all:0.9, flip:0.5 ,oneof:0.35(clahe:0.5|sharpen:0.25|emboss:0.25),ssr:0.7"), KY_OK);
  assert_true(fabsf(c.p - 0.9f) < 1e-6f);
  assert_int_equal(c.n, 3);
  assert_int_equal(c.steps[0].m[0].op, KY_AUG_FLIP);
  assert_int_equal(c.steps[1].oneof, 1);
  assert_int_equal(c.steps[1].n, 3);
  assert_int_equal(c.steps[1].m[2].op, KY_AUG_EMBOSS);
  assert_true(fabsf(c.params.ssr_scale[1] - 0.6f) < 1e-6f); /* defaults: Victor's range */
  char buf[512];
  assert_int_equal(ky_aug_chain_format(buf, sizeof buf, &c), KY_OK);
  assert_string_equal(buf, "all:0.9,flip:0.5,oneof:0.35(clahe:0.5|sharpen:0.25|emboss:0.25),ssr:0.7");
  ky_aug_chain d;
  assert_int_equal(ky_aug_chain_parse(&d, buf), KY_OK);
  assert_memory_equal(&c, &d, sizeof c);
  assert_int_equal(ky_aug_chain_format(buf, 10, &c), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "buffer holds 10"));
}

static void test_parse_errors(void **st) {
  ky_aug_chain c;
  assert_int_equal(ky_aug_chain_parse(&c, "flip:0.5,blurr:0.2"), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "unknown transform 'blurr' at offset 9"));
  assert_int_equal(ky_aug_chain_parse(&c, "flip:1.5"), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "'flip' needs ':p' with p in [0, 1]"));
  assert_int_equal(ky_aug_chain_parse(&c, "oneof:0.5(flip:1|rot90:1"), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "expected '|' or ')'"));
  assert_int_equal(ky_aug_chain_parse(&c, "oneof:0.5(flip:0|rot90:0)"), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "weights sum to 0"));
  assert_int_equal(ky_aug_chain_parse(&c, "flip:0.5 rot90:0.5"), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "expected ','"));
  assert_int_equal(ky_aug_chain_parse(NULL, "flip:0.5"), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "chain is NULL"));
}

/* The mega chain: 14 steps in the reference code's order with its probabilities. */
static void test_mega_structure(void **st) {
  ky_aug_chain c;
  assert_int_equal(ky_aug_chain_mega(&c, 0.97f, -0.4f, 0.4f), KY_OK);
  char buf[1024];
  assert_int_equal(ky_aug_chain_format(buf, sizeof buf, &c), KY_OK);
  assert_string_equal(buf,
                      "all:0.97,oneof:0.35(clahe:0.5|sharpen:0.25|emboss:0.25),"
                      "oneof:0.5(additive_noise:0.3|gauss_noise:0.7),to_gray:0.25,invert:0.2,remap:0.4,"
                      "rot90:0.5,flip:0.5,transpose:0.5,oneof:0.4(motion_blur:0.2|median_blur:0.3|blur:0.5),"
                      "oneof:0.4(contrast:0.5|brightness:0.5),ssr:0.7,"
                      "oneof:0.6(distort1:0.2|distort2:0.2|elastic:0.2|perspective:0.2|piecewise_affine:0.2),"
                      "hsv:0.5,channel_shuffle:0.2");
  assert_int_equal(c.n, 14);
  assert_true(fabsf(c.params.ssr_scale[0] + 0.4f) < 1e-6f && fabsf(c.params.ssr_scale[1] - 0.4f) < 1e-6f);
  assert_int_equal(ky_aug_chain_mega(&c, 1.2f, -0.25f, 0.6f), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "p_all must be in [0, 1], got 1.2"));
}

/* Same (seed, stream) -> same output; the next sample's stream -> different output. */
static void test_determinism(void **st) {
  ky_aug_chain c;
  assert_int_equal(ky_aug_chain_mega(&c, 1.f, -0.25f, 0.6f), KY_OK);
  static uint8_t a[H * W * 3], b[H * W * 3];
  static uint16_t la[H * W], lb[H * W];
  int differs = 0;
  for (uint64_t s = 0; s < 12; s++) {
    make_sample(a, la);
    make_sample(b, lb);
    ky_rng r1 = ky_rng_make(42, KY_RNG_STREAM_AUG + (s << 8)), r2 = ky_rng_make(42, KY_RNG_STREAM_AUG + (s << 8));
    assert_int_equal(ky_aug_apply(&c, a, la, H, W, &r1), KY_OK);
    assert_int_equal(ky_aug_apply(&c, b, lb, H, W, &r2), KY_OK);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_equal(la, lb, sizeof la);
    assert_int_equal(r1.index, r2.index);
    make_sample(b, lb);
    ky_rng r3 = ky_rng_make(42, KY_RNG_STREAM_AUG + ((s + 100) << 8));
    assert_int_equal(ky_aug_apply(&c, b, lb, H, W, &r3), KY_OK);
    differs += memcmp(a, b, sizeof a) != 0;
  }
  assert_true(differs >= 10);
}

/* OneOf picks members in proportion to their weights; the step and chain probabilities hold. */
static void test_oneof_weights_and_probabilities(void **st) {
  ky_aug_chain c;
  assert_int_equal(ky_aug_chain_parse(&c, "oneof:0.8(invert:3|to_gray:1)"), KY_OK);
  uint8_t px[4 * 4 * 3], orig[4 * 4 * 3];
  for (int i = 0; i < 48; i++) orig[i] = (uint8_t)(i * 5 % 256);
  orig[0] = 10; orig[1] = 200; orig[2] = 90;
  int inv = 0, gray = 0, none = 0, n = 4000;
  for (int t = 0; t < n; t++) {
    memcpy(px, orig, sizeof px);
    ky_rng r = ky_rng_make(5, (uint64_t)t);
    assert_int_equal(ky_aug_apply(&c, px, NULL, 4, 4, &r), KY_OK);
    if (px[0] == 255 - orig[0]) inv++;
    else if (px[0] == px[1]) gray++;
    else none++;
  }
  printf("  oneof: invert %d, gray %d, none %d of %d\n", inv, gray, none, n);
  assert_true(fabs(none / (double)n - 0.2) < 0.03);
  assert_true(fabs(inv / (double)n - 0.6) < 0.03);
  assert_true(fabs(gray / (double)n - 0.2) < 0.03);
  /* Selim's uniform choice. */
  assert_int_equal(ky_aug_chain_uniform_oneof(&c), KY_OK);
  inv = gray = none = 0;
  for (int t = 0; t < n; t++) {
    memcpy(px, orig, sizeof px);
    ky_rng r = ky_rng_make(6, (uint64_t)t);
    assert_int_equal(ky_aug_apply(&c, px, NULL, 4, 4, &r), KY_OK);
    if (px[0] == 255 - orig[0]) inv++;
    else if (px[0] == px[1]) gray++;
    else none++;
  }
  printf("  uniform oneof: invert %d, gray %d, none %d of %d\n", inv, gray, none, n);
  assert_true(fabs(inv / (double)n - 0.4) < 0.03 && fabs(gray / (double)n - 0.4) < 0.03);
  /* Chain probability 0 leaves the sample untouched. */
  assert_int_equal(ky_aug_chain_parse(&c, "all:0,invert:1"), KY_OK);
  memcpy(px, orig, sizeof px);
  ky_rng r = ky_rng_make(1, 1);
  assert_int_equal(ky_aug_apply(&c, px, NULL, 4, 4, &r), KY_OK);
  assert_memory_equal(px, orig, sizeof px);
}

/* A chain of geometric ops keeps labels on their colours (away from label boundaries). */
static void test_geometric_chain_alignment(void **st) {
  ky_aug_chain c;
  assert_int_equal(ky_aug_chain_parse(&c, "rot90:1,flip:1,transpose:0.5,ssr:1,"
                                          "oneof:1(distort1:1|distort2:1|elastic:1|perspective:1|piecewise_affine:1)"), KY_OK);
  /* The elastic affine jitter is in pixels (+-50 for 256 crops): scale it to this 64 px sample, or
   * it may shrink the blobs below the 5x5 test window. */
  c.params.elastic_alpha_affine = 12.5f;
  static uint8_t rgb[H * W * 3];
  static uint16_t lab[H * W];
  int total = 0;
  for (uint64_t s = 0; s < 20; s++) {
    make_sample(rgb, lab);
    ky_rng r = ky_rng_make(9, s);
    assert_int_equal(ky_aug_apply(&c, rgb, lab, H, W, &r), KY_OK);
    int bad = 0, checked = 0;
    /* Two resamplings each blend about 1 px at boundaries: test 3 px inside the labels. */
    for (int y = 3; y < H - 3; y++)
      for (int x = 3; x < W - 3; x++) {
        uint16_t k = lab[y * W + x];
        int uni = 1;
        for (int dy = -3; dy <= 3 && uni; dy++)
          for (int dx = -3; dx <= 3; dx++) uni &= lab[(y + dy) * W + x + dx] == k;
        if (!uni || k == 0) continue;
        checked++;
        const uint8_t *p = rgb + 3 * (y * W + x);
        /* Label colours differ by >= 30 per channel: a misaligned pixel is far off, while stacked
         * magnifications (ssr up to 1.6x, then a distortion) may leave a small bilinear tail. */
        int b = abs(p[0] - (60 + 60 * k)) > 8 || abs(p[1] - (200 - 50 * k)) > 8 || abs(p[2] - (90 + 30 * k)) > 8;
        if (b) printf("  sample %d: (%d, %d) label %d has %d %d %d\n", (int)s, x, y, k, p[0], p[1], p[2]);
        bad += b;
      }
    total += checked;
    assert_int_equal(bad, 0);
  }
  printf("  geometric chain: %d nucleus pixels checked over 20 samples\n", total);
  assert_true(total > 20 * 60);
}

/* Every op through the sampling wrapper on a 64x64 sample: OK, labels only move (never invented). */
static void test_every_op(void **st) {
  ky_aug_params p;
  ky_aug_params_default(&p);
  static uint8_t rgb[H * W * 3];
  static uint16_t lab[H * W];
  for (int op = 0; op < KY_AUG_NUM_OPS; op++) {
    for (uint64_t s = 0; s < 3; s++) {
      make_sample(rgb, lab);
      ky_rng r = ky_rng_make(11, s);
      ky_status st_ = ky_aug_apply_op((ky_aug_op)op, &p, rgb, lab, H, W, &r);
      if (st_ != KY_OK) printf("  op %s: %s\n", ky_aug_op_name((ky_aug_op)op), ky_last_error());
      assert_int_equal(st_, KY_OK);
      for (int i = 0; i < H * W; i++) assert_true(lab[i] <= 3);
    }
  }
  assert_null(ky_aug_op_name(KY_AUG_NUM_OPS));
}

/* Signatures match the loader's hook types; non-square images are refused by shape-changing chains. */
static void test_hooks_and_errors(void **st) {
  ky_augment_fn f = ky_aug_hook;
  ky_precrop_fn g = ky_aug_copy_paste_hook;
  ky_aug_chain c;
  assert_int_equal(ky_aug_chain_parse(&c, "flip:1"), KY_OK);
  static uint8_t rgb[H * W * 3], ref[H * W * 3];
  static uint16_t lab[H * W];
  make_sample(rgb, lab);
  memcpy(ref, rgb, sizeof ref);
  ky_rng r = ky_rng_make(1, 2);
  assert_int_equal(f(&c, rgb, lab, H, W, &r), KY_OK);
  assert_memory_not_equal(rgb, ref, sizeof ref);
  float p = 0.f;
  assert_int_equal(g(&p, rgb, lab, H, W, 0, 0, 32, &r), KY_OK);
  assert_int_equal(f(NULL, rgb, lab, H, W, &r), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "ctx (the ky_aug_chain) is NULL"));

  assert_int_equal(ky_aug_chain_parse(&c, "flip:0.5,transpose:0.5"), KY_OK);
  assert_int_equal(ky_aug_apply(&c, rgb, lab, 32, 64, &r), KY_ERR_SHAPE);
  assert_non_null(strstr(ky_last_error(), "step 1 (transpose) needs a square image, got 32x64"));
  assert_int_equal(ky_aug_chain_parse(&c, "flip:1,ssr:1"), KY_OK);
  assert_int_equal(ky_aug_apply(&c, rgb, lab, 32, 64, &r), KY_OK); /* non-square is fine without them */
  assert_int_equal(ky_aug_apply(&c, rgb, lab, 64, 64, NULL), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "rng is NULL"));
  ky_aug_params prm;
  ky_aug_params_default(&prm);
  prm.motion_ksize[1] = 8;
  assert_int_equal(ky_aug_apply_op(KY_AUG_MOTION_BLUR, &prm, rgb, lab, 64, 64, &r), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "kernel sizes must be odd, 1 <= lo <= hi <= 31, got (3, 8)"));
  ky_aug_params_default(&prm);
  prm.piecewise_rows = 1;
  assert_int_equal(ky_aug_apply_op(KY_AUG_PIECEWISE_AFFINE, &prm, rgb, lab, 64, 64, &r), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "aug piecewise_affine: "));
  assert_non_null(strstr(ky_last_error(), "got 1x4"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_format_roundtrip),
      cmocka_unit_test(test_parse_errors),
      cmocka_unit_test(test_mega_structure),
      cmocka_unit_test(test_determinism),
      cmocka_unit_test(test_oneof_weights_and_probabilities),
      cmocka_unit_test(test_geometric_chain_alignment),
      cmocka_unit_test(test_every_op),
      cmocka_unit_test(test_hooks_and_errors),
  };
  return cmocka_run_group_tests_name("aug_chain", tests, NULL, NULL);
}

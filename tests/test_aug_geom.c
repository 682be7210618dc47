/* Tests for aug/geom: flip/rot90/transpose identities (square and not), warps against cv2 fixtures
 * (warpPerspective, warpAffine, remap, the reference's shift_scale_rotate and distort2, elastic with a
 * fixed field), the smoothing of the elastic field against scipy, image/label alignment under every
 * geometric transform, and argument errors. Run by `make test`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>

#include "aug/geom.h"
#include "test_aug_util.h"

#define N48 (48 * 48 * 3)

static const double PERSP[9] = {0.9, 0.15, 3.0, -0.1, 1.05, -2.0, 0.0008, -0.0005, 1.0};
static const double AFFINE[6] = {0.95, -0.2, 6.0, 0.25, 1.1, -4.5};

static uint8_t *src48(void) {
  uint8_t *s = fix_u8("src_48x48.png", 3, 48, 48);
  assert_non_null(s);
  return s;
}

/* Warps must match OpenCV to <= 1 grey level on >= 99% of values (we reproduce its fixed point,
 * so in practice they are exact). */
static void check_warp(const uint8_t *got, const char *name) {
  uint8_t *exp = fix_u8(name, 3, 48, 48);
  assert_non_null(exp);
  cmp_u8 c = compare_u8(got, exp, N48);
  print_cmp(name, c);
  free(exp);
  assert_true(c.within1 >= 0.99);
  assert_true(c.exact >= 0.98);
}

static void fill_pattern(uint8_t *rgb, uint16_t *lab, int h, int w) {
  for (int i = 0; i < h * w; i++) {
    rgb[3 * i] = (uint8_t)(i * 7);
    rgb[3 * i + 1] = (uint8_t)(i * 13 + 5);
    rgb[3 * i + 2] = (uint8_t)(i / 3);
    lab[i] = (uint16_t)(i * 31);
  }
}

static void test_flip_rot_transpose_identities(void **st) {
  int dims[2][2] = {{16, 16}, {12, 20}};
  for (int d = 0; d < 2; d++) {
    int h = dims[d][0], w = dims[d][1];
    uint8_t *rgb = malloc(h * w * 3), *rgb0 = malloc(h * w * 3);
    uint16_t *lab = malloc(h * w * 2), *lab0 = malloc(h * w * 2);
    fill_pattern(rgb0, lab0, h, w);
    memcpy(rgb, rgb0, h * w * 3);
    memcpy(lab, lab0, h * w * 2);
    for (int code = -1; code <= 1; code++) {
      assert_int_equal(ky_aug_flip(rgb, lab, h, w, code), KY_OK);
      assert_memory_not_equal(rgb, rgb0, h * w * 3);
      assert_int_equal(ky_aug_flip(rgb, lab, h, w, code), KY_OK);
      assert_memory_equal(rgb, rgb0, h * w * 3);
      assert_memory_equal(lab, lab0, h * w * 2);
    }
    /* cv2 codes: 0 mirrors rows (vertical flip), 1 mirrors columns. */
    ky_aug_flip(rgb, lab, h, w, 0);
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++) assert_int_equal(lab[y * w + x], lab0[(h - 1 - y) * w + x]);
    ky_aug_flip(rgb, lab, h, w, 0);
    ky_aug_flip(rgb, lab, h, w, 1);
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++) {
        assert_int_equal(lab[y * w + x], lab0[y * w + (w - 1 - x)]);
        assert_memory_equal(rgb + 3 * (y * w + x), rgb0 + 3 * (y * w + (w - 1 - x)), 3);
      }
    ky_aug_flip(rgb, lab, h, w, 1);
    /* Flip -1 is rot90 twice. */
    uint8_t *tmp = malloc(h * w * 3);
    memcpy(tmp, rgb0, h * w * 3);
    ky_aug_flip(tmp, NULL, h, w, -1);
    int hh = h, ww = w;
    for (int k = 0; k < 4; k++) {
      assert_int_equal(ky_aug_rot90(rgb, lab, &hh, &ww, 1), KY_OK);
      assert_int_equal(hh, k % 2 ? h : w);
      if (k == 1) assert_memory_equal(rgb, tmp, h * w * 3);
    }
    assert_memory_equal(rgb, rgb0, h * w * 3);
    assert_memory_equal(lab, lab0, h * w * 2);
    /* rot90(k=1) is np.rot90: out[i][j] = in[j][w-1-i]. */
    assert_int_equal(ky_aug_rot90(rgb, lab, &hh, &ww, 1), KY_OK);
    assert_int_equal(hh, w);
    assert_int_equal(ww, h);
    for (int i = 0; i < hh; i++)
      for (int j = 0; j < ww; j++) assert_int_equal(lab[i * ww + j], lab0[j * w + (w - 1 - i)]);
    assert_int_equal(ky_aug_rot90(rgb, lab, &hh, &ww, -1), KY_OK);
    assert_memory_equal(lab, lab0, h * w * 2);
    assert_int_equal(ky_aug_transpose(rgb, lab, &hh, &ww), KY_OK);
    assert_int_equal(hh, w);
    for (int i = 0; i < hh; i++)
      for (int j = 0; j < ww; j++) assert_int_equal(lab[i * ww + j], lab0[j * w + i]);
    assert_int_equal(ky_aug_transpose(rgb, lab, &hh, &ww), KY_OK);
    assert_memory_equal(rgb, rgb0, h * w * 3);
    assert_memory_equal(lab, lab0, h * w * 2);
    free(rgb); free(rgb0); free(lab); free(lab0); free(tmp);
  }
}

static void test_warp_perspective_parity(void **st) {
  uint8_t *s = src48();
  uint16_t *lab = fix_u16("labels_48x48.png", 48, 48), *lexp = fix_u16("warp_persp_labels_48x48.png", 48, 48);
  assert_non_null(lab); assert_non_null(lexp);
  assert_int_equal(ky_aug_warp_perspective(s, lab, 48, 48, PERSP), KY_OK);
  check_warp(s, "warp_persp_48x48.png");
  int same = 0;
  for (int i = 0; i < 48 * 48; i++) same += lab[i] == lexp[i];
  printf("  labels nearest: %d / %d equal\n", same, 48 * 48);
  assert_true(same >= 48 * 48 * 99 / 100);
  free(s); free(lab); free(lexp);
}

static void test_warp_affine_ssr_parity(void **st) {
  uint8_t *s = src48();
  assert_int_equal(ky_aug_warp_affine(s, NULL, 48, 48, AFFINE), KY_OK);
  check_warp(s, "warp_affine_48x48.png");
  free(s);
  s = src48();
  assert_int_equal(ky_aug_shift_scale_rotate(s, NULL, 48, 48, 30.f, 1.2f, 0.f, 0.f), KY_OK);
  check_warp(s, "ssr_48x48.png");
  free(s);
}

static void test_elastic_distort2_quad_parity(void **st) {
  uint8_t *s = src48();
  float *field = fix_f32("field_48x48.f32", 2 * 48 * 48);
  assert_non_null(field);
  assert_int_equal(ky_aug_elastic(s, NULL, 48, 48, AFFINE, field, field + 48 * 48), KY_OK);
  check_warp(s, "elastic_48x48.png");
  free(s); free(field);
  static const float xs[6] = {1.2f, 0.8f, 1.1f, 0.75f, 1.25f, 0.9f}, ys[6] = {0.85f, 1.3f, 0.7f, 1.05f, 1.15f, 1.2f};
  s = src48();
  assert_int_equal(ky_aug_distort2(s, NULL, 48, 48, 5, xs, ys), KY_OK);
  check_warp(s, "distort2_48x48.png");
  free(s);
  static const float quad[8] = {3.5f, 2.0f, 44.0f, 4.5f, 45.5f, 43.0f, 2.5f, 46.0f};
  s = src48();
  assert_int_equal(ky_aug_perspective(s, NULL, 48, 48, quad), KY_OK);
  check_warp(s, "persp_quad_48x48.png");
  free(s);
}

/* The 3-box approximation of scipy's gaussian_filter (mode 'reflect'): same shape (correlation
 * >= 0.98) and amplitude (RMS within 10%); it is not pixel-exact (see ky_aug_smooth_field). */
static void test_smooth_field(void **st) {
  const char *exp_names[2] = {"smooth5_40x52.f32", "smooth20_40x52.f32"};
  float sig[2] = {5.f, 20.f};
  for (int t = 0; t < 2; t++) {
    float *f = fix_f32("noise_40x52.f32", 40 * 52), *e = fix_f32(exp_names[t], 40 * 52);
    assert_non_null(f); assert_non_null(e);
    assert_int_equal(ky_aug_smooth_field(f, 40, 52, sig[t]), KY_OK);
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < 40 * 52; i++) {
      ab += (double)f[i] * e[i];
      aa += (double)f[i] * f[i];
      bb += (double)e[i] * e[i];
    }
    double corr = ab / sqrt(aa * bb), ratio = sqrt(aa / bb);
    printf("  smooth sigma %g: correlation %.4f, rms ratio %.4f\n", sig[t], corr, ratio);
    assert_true(corr >= 0.98);
    assert_true(ratio >= 0.9 && ratio <= 1.1);
    free(f); free(e);
  }
  /* A sigma whose box radius would overflow an int is refused, not sized into a wrapped table. */
  float f[16] = {0};
  assert_int_equal(ky_aug_smooth_field(f, 4, 4, 1e30f), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "sigma must be <= 1e7"));
}

/* ------------------------------------------------------------------ alignment */

enum { AH = 64, AW = 64 };

static void colour_of(uint16_t k, uint8_t c[3]) {
  c[0] = (uint8_t)(40 + (k * 67) % 200);
  c[1] = (uint8_t)(30 + (k * 113) % 210);
  c[2] = (uint8_t)(20 + (k * 151) % 220);
}

/* Rectangles and discs of distinct labels whose colours encode the label. */
static void make_aligned(uint8_t *rgb, uint16_t *lab) {
  for (int y = 0; y < AH; y++)
    for (int x = 0; x < AW; x++) {
      uint16_t k = 0;
      if (x >= 4 && x < 22 && y >= 6 && y < 30) k = 1;
      if (x >= 30 && x < 58 && y >= 3 && y < 15) k = 2;
      if ((x - 44) * (x - 44) + (y - 40) * (y - 40) <= 100) k = 3;
      if ((x - 15) * (x - 15) + (y - 48) * (y - 48) <= 64) k = 4;
      if (x >= 0 && x < 8 && y >= 56) k = 5; /* touches the border: reflect-101 */
      lab[y * AW + x] = k;
      colour_of(k, rgb + 3 * (y * AW + x));
    }
}

/* Every pixel whose 5x5 label neighbourhood is one label k has colour(k) within 2 levels: away from
 * label boundaries image and labels moved together. (2 output px, not 1: zooming in by up to 1.6x
 * or the grid distortion's stretches bring output neighbours closer than 1 source px.) */
static void check_aligned(const uint8_t *rgb, const uint16_t *lab, const char *what) {
  int checked = 0, bad = 0, seen[6] = {0};
  for (int y = 2; y < AH - 2; y++)
    for (int x = 2; x < AW - 2; x++) {
      uint16_t k = lab[y * AW + x];
      int uni = 1;
      for (int dy = -2; dy <= 2; dy++)
        for (int dx = -2; dx <= 2; dx++) uni &= lab[(y + dy) * AW + x + dx] == k;
      if (!uni) continue;
      checked++;
      if (k < 6) seen[k] = 1;
      uint8_t c[3];
      colour_of(k, c);
      for (int ch = 0; ch < 3; ch++)
        if (abs((int)rgb[3 * (y * AW + x) + ch] - c[ch]) > 2) {
          if (bad++ < 3) printf("  misaligned at (%d, %d): label %d\n", x, y, k);
          break;
        }
    }
  printf("  %-16s %d pixels checked, %d misaligned\n", what, checked, bad);
  assert_true(checked > AH * AW / 4);
  assert_int_equal(bad, 0);
  assert_true(seen[0] && seen[1] + seen[2] + seen[3] + seen[4] >= 2);
}

static void test_alignment_every_warp(void **st) {
  uint8_t rgb[AH * AW * 3];
  uint16_t lab[AH * AW];
  float field[2 * AH * AW];
  for (int i = 0; i < AH * AW; i++) {
    int y = i / AW, x = i % AW;
    field[i] = 2.5f * sinf(y / 6.f);
    field[AH * AW + i] = 2.f * cosf(x / 9.f);
  }
  float jit[16 * 2];
  for (int i = 0; i < 16; i++) {
    jit[2 * i] = 3.f * sinf(i * 1.7f);
    jit[2 * i + 1] = 3.f * cosf(i * 2.3f);
  }
  float xs[6] = {1.2f, 0.8f, 1.1f, 0.75f, 1.25f, 0.9f}, ys[6] = {0.85f, 1.3f, 0.7f, 1.05f, 1.15f, 1.2f};
  float quad[8] = {4.f, 2.f, 60.f, 5.f, 58.f, 62.f, 3.f, 57.f};
  for (int t = 0; t < 10; t++) {
    make_aligned(rgb, lab);
    ky_status s;
    const char *name;
    switch (t) {
      case 0: name = "ssr zoom out"; s = ky_aug_shift_scale_rotate(rgb, lab, AH, AW, 37.f, 0.7f, 0, 0); break;
      case 1: name = "ssr zoom in"; s = ky_aug_shift_scale_rotate(rgb, lab, AH, AW, -20.f, 1.6f, 0, 0); break;
      case 2: name = "perspective"; s = ky_aug_warp_perspective(rgb, lab, AH, AW, PERSP); break;
      case 3: name = "distort1"; s = ky_aug_distort1(rgb, lab, AH, AW, 5.f, 0.f, 0.f); break;
      case 4: name = "distort2"; s = ky_aug_distort2(rgb, lab, AH, AW, 5, xs, ys); break;
      case 5: name = "elastic"; s = ky_aug_elastic(rgb, lab, AH, AW, AFFINE, field, field + AH * AW); break;
      case 6: name = "imgaug perspective"; s = ky_aug_perspective(rgb, lab, AH, AW, quad); break;
      case 7: name = "piecewise affine"; s = ky_aug_piecewise_affine(rgb, lab, AH, AW, 4, 4, jit); break;
      case 8: name = "flip"; s = ky_aug_flip(rgb, lab, AH, AW, -1); break;
      default: {
        int h = AH, w = AW;
        name = "rot90+transpose";
        s = ky_aug_rot90(rgb, lab, &h, &w, 3);
        if (s == KY_OK) s = ky_aug_transpose(rgb, lab, &h, &w);
      }
    }
    assert_int_equal(s, KY_OK);
    check_aligned(rgb, lab, name);
  }
}

/* Piecewise affine: a zero jitter is the identity; a moved point pulls the source with it. */
static void test_piecewise_affine(void **st) {
  uint8_t rgb[AH * AW * 3], ref[AH * AW * 3];
  uint16_t lab[AH * AW];
  make_aligned(rgb, lab);
  memcpy(ref, rgb, sizeof ref);
  float jit[9 * 2] = {0};
  assert_int_equal(ky_aug_piecewise_affine(rgb, lab, AH, AW, 3, 3, jit), KY_OK);
  assert_memory_equal(rgb, ref, sizeof ref);
  jit[2 * 4] = 4.f; /* centre point (32, 32) moved to (36, 32) */
  assert_int_equal(ky_aug_piecewise_affine(rgb, NULL, AH, AW, 3, 3, jit), KY_OK);
  assert_memory_equal(rgb + 3 * (32 * AW + 36), ref + 3 * (32 * AW + 32), 3);
}

static void test_errors(void **st) {
  uint8_t buf[48];
  int h = 4, w = 4;
  assert_int_equal(ky_aug_flip(buf, NULL, 4, 4, 2), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "code must be -1, 0 or 1, got 2"));
  assert_int_equal(ky_aug_rot90(NULL, NULL, &h, &w, 1), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "rgb is NULL"));
  double sing[9] = {1, 2, 0, 2, 4, 0, 0, 0, 1};
  assert_int_equal(ky_aug_warp_perspective(buf, NULL, 4, 4, sing), KY_ERR_NUMERIC);
  assert_non_null(strstr(ky_last_error(), "singular"));
  assert_int_equal(ky_aug_shift_scale_rotate(buf, NULL, 4, 4, 10.f, 0.f, 0, 0), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "scale must be > 0"));
  float xs[6] = {1, 1, 1, 1, 1, 1};
  assert_int_equal(ky_aug_distort2(buf, NULL, 4, 4, 5, xs, xs), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "num_steps must be in 1..min(h, w) = 4, got 5"));
  float jit[8] = {0};
  assert_int_equal(ky_aug_piecewise_affine(buf, NULL, 4, 4, 1, 4, jit), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "got 1x4"));
  double aff[6];
  assert_int_equal(ky_aug_elastic(buf, NULL, 4, 4, AFFINE, (float *)jit, NULL), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "dx and dy must both be given"));
  double col[6] = {0, 0, 1, 1, 2, 2};
  assert_int_equal(ky_aug_affine_from_points(aff, col, col), KY_ERR_NUMERIC);
  assert_non_null(strstr(ky_last_error(), "collinear"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_flip_rot_transpose_identities),
      cmocka_unit_test(test_warp_perspective_parity),
      cmocka_unit_test(test_warp_affine_ssr_parity),
      cmocka_unit_test(test_elastic_distort2_quad_parity),
      cmocka_unit_test(test_smooth_field),
      cmocka_unit_test(test_alignment_every_warp),
      cmocka_unit_test(test_piecewise_affine),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests_name("aug_geom", tests, NULL, NULL);
}

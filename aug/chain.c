/* Compose / OneOf chains, the sampling wrapper of every op, the config-string parser and the mega
 * chain. Tested by tests/test_aug_chain.c. */
#include "aug/chain.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aug/color.h"
#include "aug/geom.h"
#include "aug/pixel.h"

static const char *const op_names[KY_AUG_NUM_OPS] = {
    "clahe", "sharpen", "emboss", "additive_noise", "gauss_noise", "to_gray", "invert", "remap",
    "rot90", "flip", "transpose", "motion_blur", "median_blur", "blur", "contrast", "brightness",
    "hsv", "ssr", "distort1", "distort2", "elastic", "perspective", "piecewise_affine",
    "channel_shuffle"};

const char *ky_aug_op_name(ky_aug_op op) {
  return (unsigned)op < KY_AUG_NUM_OPS ? op_names[op] : NULL;
}

void ky_aug_params_default(ky_aug_params *p) {
  memset(p, 0, sizeof *p);
  p->clahe_clip[0] = 1.f; p->clahe_clip[1] = 2.f;
  p->clahe_tiles = 8;
  p->sharpen_alpha[0] = .2f; p->sharpen_alpha[1] = .5f;
  p->sharpen_lightness[0] = .5f; p->sharpen_lightness[1] = 1.f;
  p->emboss_alpha[0] = .2f; p->emboss_alpha[1] = .5f;
  p->emboss_strength[0] = .2f; p->emboss_strength[1] = .7f;
  p->noise_sigma[0] = .01f * 255; p->noise_sigma[1] = .05f * 255;
  p->gauss_var[0] = 10; p->gauss_var[1] = 50;
  p->motion_ksize[0] = 3; p->motion_ksize[1] = 7;
  p->contrast_limit = .2f;
  p->brightness_limit = .2f;
  p->hue_shift = 20; p->sat_shift = 30; p->val_shift = 20;
  p->ssr_angle = 45;
  p->ssr_scale[0] = -.25f; p->ssr_scale[1] = .6f;
  p->ssr_shift = .0625f;
  p->distort1_k = .05f;
  p->distort1_shift = .05f;
  p->distort2_steps = 5;
  p->distort2_limit = .3f;
  p->elastic_alpha = 1; p->elastic_sigma = 50; p->elastic_alpha_affine = 50;
  p->perspective_scale[0] = .05f; p->perspective_scale[1] = .1f;
  p->piecewise_scale[0] = .03f; p->piecewise_scale[1] = .05f;
  p->piecewise_rows = 4; p->piecewise_cols = 4;
}

static float unif(ky_rng *r, const float lim[2]) { return ky_rng_uniform_range(r, lim[0], lim[1]); }
static float sym(ky_rng *r, float lim) { return ky_rng_uniform_range(r, -lim, lim); }

static ky_status apply_op(ky_aug_op op, const ky_aug_params *P, uint8_t *rgb, uint16_t *labels, int h,
                          int w, ky_rng *r) {
  switch (op) {
    case KY_AUG_CLAHE:
      return ky_aug_clahe(rgb, h, w, unif(r, P->clahe_clip), P->clahe_tiles);
    case KY_AUG_SHARPEN: {
      float a = unif(r, P->sharpen_alpha), l = unif(r, P->sharpen_lightness);
      return ky_aug_sharpen(rgb, h, w, a, l);
    }
    case KY_AUG_EMBOSS: {
      float a = unif(r, P->emboss_alpha), s = unif(r, P->emboss_strength);
      return ky_aug_emboss(rgb, h, w, a, s);
    }
    case KY_AUG_ADDITIVE_NOISE:
      return ky_aug_additive_gaussian_noise(rgb, h, w, unif(r, P->noise_sigma), r);
    case KY_AUG_GAUSS_NOISE:
      return ky_aug_gauss_noise(rgb, h, w, (float)ky_rng_int(r, P->gauss_var[0], P->gauss_var[1]), r);
    case KY_AUG_TO_GRAY:
      return ky_aug_to_gray(rgb, h, w);
    case KY_AUG_INVERT:
      return ky_aug_invert(rgb, h, w);
    case KY_AUG_REMAP: {
      static const uint8_t bgs[4][3] = {{216, 222, 222}, {206, 202, 202}, {181, 159, 210}, {235, 211, 235}};
      static const uint8_t centers[3][3] = {{149, 81, 168}, {136, 107, 204}, {170, 62, 176}};
      static const uint8_t maxes[3][3] = {{80, 20, 105}, {117, 12, 127}, {82, 23, 192}};
      int b = (int)ky_rng_int(r, 0, 4), c = (int)ky_rng_int(r, 0, 3), m = (int)ky_rng_int(r, 0, 3);
      return ky_aug_remap_color(rgb, h, w, bgs[b], centers[c], maxes[m]);
    }
    case KY_AUG_ROT90: {
      int hh = h, ww = w;
      return ky_aug_rot90(rgb, labels, &hh, &ww, (int)ky_rng_int(r, 0, 5)); /* k = 4 is the identity */
    }
    case KY_AUG_FLIP:
      return ky_aug_flip(rgb, labels, h, w, (int)ky_rng_int(r, -1, 2));
    case KY_AUG_TRANSPOSE: {
      int hh = h, ww = w;
      return ky_aug_transpose(rgb, labels, &hh, &ww);
    }
    case KY_AUG_MOTION_BLUR: {
      int lo = P->motion_ksize[0], hi = P->motion_ksize[1];
      if (lo < 1 || hi < lo || lo % 2 == 0 || hi % 2 == 0 || hi > 31)
        return ky_error(KY_ERR_ARG, "motion_blur: kernel sizes must be odd, 1 <= lo <= hi <= 31, got (%d, %d)", lo, hi);
      int k = lo + 2 * (int)ky_rng_int(r, 0, (hi - lo) / 2 + 1);
      float *kern = malloc((size_t)k * k * sizeof *kern);
      if (!kern) return ky_error(KY_ERR_NOMEM, "motion_blur: no memory");
      int x0 = (int)ky_rng_int(r, 0, k), y0 = (int)ky_rng_int(r, 0, k);
      int x1 = (int)ky_rng_int(r, 0, k), y1 = (int)ky_rng_int(r, 0, k);
      ky_status s = ky_aug_motion_kernel(kern, k, x0, y0, x1, y1);
      if (s == KY_OK) s = ky_aug_motion_blur(rgb, h, w, kern, k);
      free(kern);
      return s;
    }
    case KY_AUG_MEDIAN_BLUR:
      return ky_aug_median3(rgb, h, w);
    case KY_AUG_BLUR:
      return ky_aug_box3(rgb, h, w);
    case KY_AUG_CONTRAST:
      return ky_aug_contrast(rgb, h, w, 1.f + sym(r, P->contrast_limit));
    case KY_AUG_BRIGHTNESS:
      return ky_aug_brightness(rgb, h, w, 1.f + sym(r, P->brightness_limit));
    case KY_AUG_HSV: {
      float dh = sym(r, P->hue_shift), ds = sym(r, P->sat_shift), dv = sym(r, P->val_shift);
      return ky_aug_hsv_shift(rgb, h, w, dh, ds, dv);
    }
    case KY_AUG_SSR: {
      float angle = sym(r, P->ssr_angle);
      float scale = 1.f + unif(r, P->ssr_scale);
      float dx = roundf(sym(r, P->ssr_shift)), dy = roundf(sym(r, P->ssr_shift));
      return ky_aug_shift_scale_rotate(rgb, labels, h, w, angle, scale, dx, dy);
    }
    case KY_AUG_DISTORT1: {
      float k = sym(r, P->distort1_k);
      float dx = roundf(sym(r, P->distort1_shift)), dy = roundf(sym(r, P->distort1_shift));
      return ky_aug_distort1(rgb, labels, h, w, k, dx, dy);
    }
    case KY_AUG_DISTORT2: {
      int n = P->distort2_steps;
      if (n < 1 || n > 64) return ky_error(KY_ERR_ARG, "distort2: steps must be in 1..64, got %d", n);
      float xs[65], ys[65];
      for (int i = 0; i <= n; i++) xs[i] = 1.f + sym(r, P->distort2_limit);
      for (int i = 0; i <= n; i++) ys[i] = 1.f + sym(r, P->distort2_limit);
      return ky_aug_distort2(rgb, labels, h, w, n, xs, ys);
    }
    case KY_AUG_ELASTIC: {
      double aff[6];
      float *dx = malloc((size_t)h * w * 2 * sizeof *dx);
      if (!dx) return ky_error(KY_ERR_NOMEM, "elastic: no memory for a %dx%d field", h, w);
      ky_status s = ky_aug_elastic_sample(aff, dx, dx + (size_t)h * w, h, w, P->elastic_alpha,
                                          P->elastic_sigma, P->elastic_alpha_affine, r);
      if (s == KY_OK) s = ky_aug_elastic(rgb, labels, h, w, aff, dx, dx + (size_t)h * w);
      free(dx);
      return s;
    }
    case KY_AUG_PERSPECTIVE: {
      /* imgaug: |N(0, scale)| mod 1 inward offsets of the four corners, as fractions of the size. */
      float sc = unif(r, P->perspective_scale), j[8];
      for (int i = 0; i < 8; i++) j[i] = fmodf(fabsf(ky_rng_normal(r) * sc), 1.f);
      float quad[8] = {j[0] * w, j[1] * h, (1 - j[2]) * w, j[3] * h,
                       (1 - j[4]) * w, (1 - j[5]) * h, j[6] * w, (1 - j[7]) * h};
      return ky_aug_perspective(rgb, labels, h, w, quad);
    }
    case KY_AUG_PIECEWISE_AFFINE: {
      int rows = P->piecewise_rows, cols = P->piecewise_cols;
      if (rows < 2 || cols < 2 || rows > 64 || cols > 64)
        return ky_error(KY_ERR_ARG, "piecewise_affine: grid must be 2..64 x 2..64, got %dx%d", rows, cols);
      float sc = unif(r, P->piecewise_scale);
      float *jit = malloc((size_t)rows * cols * 2 * sizeof *jit);
      if (!jit) return ky_error(KY_ERR_NOMEM, "piecewise_affine: no memory");
      for (int i = 0; i < rows * cols; i++) {
        jit[2 * i + 1] = ky_rng_normal(r) * sc * h;
        jit[2 * i] = ky_rng_normal(r) * sc * w;
      }
      ky_status s = ky_aug_piecewise_affine(rgb, labels, h, w, rows, cols, jit);
      free(jit);
      return s;
    }
    case KY_AUG_CHANNEL_SHUFFLE: {
      int perm[3] = {0, 1, 2};
      ky_rng_shuffle_int(r, perm, 3);
      return ky_aug_channel_shuffle(rgb, h, w, perm);
    }
    default:
      return ky_error(KY_ERR_ARG, "ky_aug_apply_op: unknown op %d", (int)op);
  }
}

static int changes_shape(ky_aug_op op) { return op == KY_AUG_ROT90 || op == KY_AUG_TRANSPOSE; }

ky_status ky_aug_apply_op(ky_aug_op op, const ky_aug_params *params, uint8_t *rgb, uint16_t *labels,
                          int h, int w, ky_rng *rng) {
  KY_CHECK_NULL(params, "params");
  KY_CHECK_NULL(rgb, "rgb");
  KY_CHECK_NULL(rng, "rng");
  KY_CHECK((unsigned)op < KY_AUG_NUM_OPS, KY_ERR_ARG, "ky_aug_apply_op: unknown op %d", (int)op);
  KY_CHECK(h > 0 && w > 0, KY_ERR_SHAPE, "ky_aug_apply_op: image must be non-empty, got %dx%d", h, w);
  KY_CHECK(!changes_shape(op) || h == w, KY_ERR_SHAPE,
           "ky_aug_apply_op: %s needs a square image here, got %dx%d", op_names[op], h, w);
  ky_status s = apply_op(op, params, rgb, labels, h, w, rng);
  if (s != KY_OK) return ky_error_context(s, "aug %s: ", op_names[op]);
  return KY_OK;
}

static ky_status check_chain(const ky_aug_chain *c) {
  KY_CHECK(c->n >= 0 && c->n <= KY_AUG_MAX_STEPS, KY_ERR_ARG, "aug chain: %d steps, expected 0..%d", c->n, KY_AUG_MAX_STEPS);
  for (int i = 0; i < c->n; i++) {
    const ky_aug_step *s = &c->steps[i];
    KY_CHECK(s->n >= 1 && s->n <= KY_AUG_MAX_ONEOF && (s->oneof || s->n == 1), KY_ERR_ARG,
             "aug chain: step %d has %d members", i, s->n);
    for (int j = 0; j < s->n; j++)
      KY_CHECK((unsigned)s->m[j].op < KY_AUG_NUM_OPS, KY_ERR_ARG, "aug chain: step %d has unknown op %d", i, (int)s->m[j].op);
  }
  return KY_OK;
}

ky_status ky_aug_apply(const ky_aug_chain *chain, uint8_t *rgb, uint16_t *labels, int h, int w, ky_rng *rng) {
  KY_CHECK_NULL(chain, "chain");
  KY_CHECK_NULL(rgb, "rgb");
  KY_CHECK_NULL(rng, "rng");
  KY_CHECK(h > 0 && w > 0, KY_ERR_SHAPE, "ky_aug_apply: image must be non-empty, got %dx%d", h, w);
  KY_TRY(check_chain(chain));
  if (h != w)
    for (int i = 0; i < chain->n; i++)
      for (int j = 0; j < chain->steps[i].n; j++)
        KY_CHECK(!changes_shape(chain->steps[i].m[j].op), KY_ERR_SHAPE,
                 "ky_aug_apply: chain step %d (%s) needs a square image, got %dx%d", i,
                 op_names[chain->steps[i].m[j].op], h, w);
  if (!(ky_rng_uniform(rng) < chain->p)) return KY_OK;
  for (int i = 0; i < chain->n; i++) {
    const ky_aug_step *s = &chain->steps[i];
    ky_aug_op op;
    if (!s->oneof) {
      if (!(ky_rng_uniform(rng) < s->m[0].p)) continue;
      op = s->m[0].op;
    } else {
      if (!(ky_rng_uniform(rng) < s->p)) continue;
      float total = 0;
      for (int j = 0; j < s->n; j++) total += s->m[j].p;
      float u = ky_rng_uniform(rng) * total, acc = 0;
      int pick = s->n - 1;
      for (int j = 0; j < s->n; j++) {
        acc += s->m[j].p;
        if (u < acc) { pick = j; break; }
      }
      op = s->m[pick].op;
    }
    KY_TRY(ky_aug_apply_op(op, &chain->params, rgb, labels, h, w, rng));
  }
  return KY_OK;
}

ky_status ky_aug_hook(void *ctx, uint8_t *rgb, uint16_t *labels, int h, int w, ky_rng *rng) {
  KY_CHECK(ctx != NULL, KY_ERR_ARG, "ky_aug_hook: ctx (the ky_aug_chain) is NULL");
  return ky_aug_apply((const ky_aug_chain *)ctx, rgb, labels, h, w, rng);
}

/* ---------------------------------------------------------------- config strings */

static void skip_ws(const char **s) { while (isspace((unsigned char)**s)) (*s)++; }

static int read_name(const char **s, char *out, int cap) {
  skip_ws(s);
  int n = 0;
  while ((isalnum((unsigned char)**s) || **s == '_') && n < cap - 1) out[n++] = *(*s)++;
  out[n] = 0;
  return n;
}

static int read_prob(const char **s, float *p) {
  skip_ws(s);
  if (**s != ':') return 0;
  (*s)++;
  char *end;
  double v = strtod(*s, &end);
  if (end == *s) return 0;
  *s = end;
  *p = (float)v;
  return 1;
}

static int find_op(const char *name) {
  for (int i = 0; i < KY_AUG_NUM_OPS; i++)
    if (!strcmp(name, op_names[i])) return i;
  return -1;
}

ky_status ky_aug_chain_parse(ky_aug_chain *chain, const char *spec) {
  KY_CHECK_NULL(chain, "chain");
  KY_CHECK_NULL(spec, "spec");
  ky_aug_chain c;
  memset(&c, 0, sizeof c);
  c.p = 1.f;
  ky_aug_params_default(&c.params);
  const char *s = spec;
  char name[32];
  skip_ws(&s);
  while (*s) {
    long at = (long)(s - spec);
    if (!read_name(&s, name, sizeof name))
      return ky_error(KY_ERR_ARG, "aug config \"%s\": expected a transform name at offset %ld", spec, at);
    float p;
    if (!read_prob(&s, &p) || !(p >= 0.f && p <= 1.f))
      return ky_error(KY_ERR_ARG, "aug config \"%s\": '%s' needs ':p' with p in [0, 1] (offset %ld)", spec, name, at);
    if (!strcmp(name, "all")) {
      c.p = p;
    } else {
      KY_CHECK(c.n < KY_AUG_MAX_STEPS, KY_ERR_ARG, "aug config \"%s\": more than %d steps", spec, KY_AUG_MAX_STEPS);
      ky_aug_step *st = &c.steps[c.n++];
      if (!strcmp(name, "oneof")) {
        st->oneof = 1;
        st->p = p;
        skip_ws(&s);
        KY_CHECK(*s == '(', KY_ERR_ARG, "aug config \"%s\": oneof needs '(' at offset %ld", spec, (long)(s - spec));
        s++;
        float total = 0;
        for (;;) {
          KY_CHECK(st->n < KY_AUG_MAX_ONEOF, KY_ERR_ARG, "aug config \"%s\": oneof has more than %d members", spec, KY_AUG_MAX_ONEOF);
          long mat = (long)(s - spec);
          read_name(&s, name, sizeof name);
          int op = find_op(name);
          KY_CHECK(op >= 0, KY_ERR_ARG, "aug config \"%s\": unknown transform '%s' at offset %ld", spec, name, mat);
          float wgt;
          KY_CHECK(read_prob(&s, &wgt) && wgt >= 0.f && isfinite(wgt), KY_ERR_ARG,
                   "aug config \"%s\": oneof member '%s' needs ':weight' >= 0", spec, name);
          st->m[st->n].op = (ky_aug_op)op;
          st->m[st->n].p = wgt;
          st->n++;
          total += wgt;
          skip_ws(&s);
          if (*s == '|') { s++; continue; }
          KY_CHECK(*s == ')', KY_ERR_ARG, "aug config \"%s\": expected '|' or ')' at offset %ld", spec, (long)(s - spec));
          s++;
          break;
        }
        KY_CHECK(total > 0, KY_ERR_ARG, "aug config \"%s\": oneof weights sum to 0", spec);
      } else {
        int op = find_op(name);
        KY_CHECK(op >= 0, KY_ERR_ARG, "aug config \"%s\": unknown transform '%s' at offset %ld", spec, name, at);
        st->n = 1;
        st->m[0].op = (ky_aug_op)op;
        st->m[0].p = p;
      }
    }
    skip_ws(&s);
    if (*s == ',') {
      s++;
      skip_ws(&s);
      continue;
    }
    KY_CHECK(*s == 0, KY_ERR_ARG, "aug config \"%s\": expected ',' at offset %ld", spec, (long)(s - spec));
  }
  *chain = c;
  return KY_OK;
}

ky_status ky_aug_chain_format(char *buf, int cap, const ky_aug_chain *chain) {
  KY_CHECK_NULL(buf, "buf");
  KY_CHECK_NULL(chain, "chain");
  KY_CHECK(cap > 0, KY_ERR_ARG, "ky_aug_chain_format: capacity must be > 0, got %d", cap);
  KY_TRY(check_chain(chain));
  int n = snprintf(buf, (size_t)cap, "all:%g", chain->p);
  for (int i = 0; i < chain->n && n < cap; i++) {
    const ky_aug_step *s = &chain->steps[i];
    if (!s->oneof) {
      n += snprintf(buf + n, (size_t)(cap - n), ",%s:%g", op_names[s->m[0].op], s->m[0].p);
      continue;
    }
    n += snprintf(buf + n, (size_t)(cap - n), ",oneof:%g(", s->p);
    for (int j = 0; j < s->n && n < cap; j++)
      n += snprintf(buf + n, (size_t)(cap - n), "%s%s:%g", j ? "|" : "", op_names[s->m[j].op], s->m[j].p);
    if (n < cap) n += snprintf(buf + n, (size_t)(cap - n), ")");
  }
  KY_CHECK(n < cap, KY_ERR_ARG, "ky_aug_chain_format: %d bytes needed, buffer holds %d", n + 1, cap);
  return KY_OK;
}

ky_status ky_aug_chain_uniform_oneof(ky_aug_chain *chain) {
  KY_CHECK_NULL(chain, "chain");
  KY_TRY(check_chain(chain));
  for (int i = 0; i < chain->n; i++)
    if (chain->steps[i].oneof)
      for (int j = 0; j < chain->steps[i].n; j++) chain->steps[i].m[j].p = 1.f;
  return KY_OK;
}

/* Victor's aug_mega_hardcore (Albu's aug_victor), steps in the code's order. */
static const char mega_spec[] =
    "oneof:0.35(clahe:0.5|sharpen:0.25|emboss:0.25),"
    "oneof:0.5(additive_noise:0.3|gauss_noise:0.7),"
    "to_gray:0.25,invert:0.2,remap:0.4,rot90:0.5,flip:0.5,transpose:0.5,"
    "oneof:0.4(motion_blur:0.2|median_blur:0.3|blur:0.5),"
    "oneof:0.4(contrast:0.5|brightness:0.5),"
    "ssr:0.7,"
    "oneof:0.6(distort1:0.2|distort2:0.2|elastic:0.2|perspective:0.2|piecewise_affine:0.2),"
    "hsv:0.5,channel_shuffle:0.2";

ky_status ky_aug_chain_mega(ky_aug_chain *chain, float p_all, float scale_lo, float scale_hi) {
  KY_CHECK_NULL(chain, "chain");
  KY_CHECK(p_all >= 0.f && p_all <= 1.f, KY_ERR_ARG, "ky_aug_chain_mega: p_all must be in [0, 1], got %g", p_all);
  KY_CHECK(scale_lo <= scale_hi && scale_lo > -1.f && isfinite(scale_hi), KY_ERR_ARG,
           "ky_aug_chain_mega: scale range (%g, %g) must satisfy -1 < lo <= hi", scale_lo, scale_hi);
  KY_TRY(ky_aug_chain_parse(chain, mega_spec));
  chain->p = p_all;
  chain->params.ssr_scale[0] = scale_lo;
  chain->params.ssr_scale[1] = scale_hi;
  return KY_OK;
}

/* Augmentation chains: Compose / OneOf with per-step probabilities and a whole-chain probability, the
 * reference's "mega hardcore" chain (reference 5.1), chains from a config string, and
 * ky_aug_apply, the data loader's per-sample hook. Every random draw comes from the caller's ky_rng.
 * Tested by tests/test_aug_chain.c (parsing, determinism, OneOf weights, alignment, errors). */
#ifndef KY_AUG_CHAIN_H
#define KY_AUG_CHAIN_H

#include <stdint.h>
#include "core/rng.h"
#include "core/status.h"

typedef enum {
  KY_AUG_CLAHE, KY_AUG_SHARPEN, KY_AUG_EMBOSS, KY_AUG_ADDITIVE_NOISE, KY_AUG_GAUSS_NOISE,
  KY_AUG_TO_GRAY, KY_AUG_INVERT, KY_AUG_REMAP, KY_AUG_ROT90, KY_AUG_FLIP, KY_AUG_TRANSPOSE,
  KY_AUG_MOTION_BLUR, KY_AUG_MEDIAN_BLUR, KY_AUG_BLUR, KY_AUG_CONTRAST, KY_AUG_BRIGHTNESS,
  KY_AUG_HSV, KY_AUG_SSR, KY_AUG_DISTORT1, KY_AUG_DISTORT2, KY_AUG_ELASTIC, KY_AUG_PERSPECTIVE,
  KY_AUG_PIECEWISE_AFFINE, KY_AUG_CHANNEL_SHUFFLE,
  KY_AUG_NUM_OPS
} ky_aug_op;

/* Config-string name of an op ("clahe", "ssr", ...), NULL when out of range. */
const char *ky_aug_op_name(ky_aug_op op);

/* Parameter ranges the sampling wrappers draw from; defaults (ky_aug_params_default) are the
 * reference's. [lo, hi] pairs are uniform ranges unless noted. */
typedef struct {
  float clahe_clip[2];       /* (1, 2) */
  int clahe_tiles;           /* 8 */
  float sharpen_alpha[2];    /* (.2, .5) */
  float sharpen_lightness[2];/* (.5, 1) */
  float emboss_alpha[2];     /* (.2, .5) */
  float emboss_strength[2];  /* (.2, .7) */
  float noise_sigma[2];      /* AdditiveGaussianNoise scale (.01 * 255, .05 * 255) */
  int gauss_var[2];          /* GaussNoise var: integer in [10, 50) */
  int motion_ksize[2];       /* odd kernel size, uniform over {lo, lo + 2, .., hi}: (3, 7) as the
                              * reference code draws it (Blur's get_params; 5.1 says 9 x 9) */
  float contrast_limit;      /* alpha = 1 + U(-.2, .2) */
  float brightness_limit;    /* alpha = 1 + U(-.2, .2) */
  float hue_shift, sat_shift, val_shift; /* U(-20, 20), U(-30, 30), U(-20, 20) */
  float ssr_angle;           /* U(-45, 45) degrees */
  float ssr_scale[2];        /* scale = 1 + U(lo, hi): Victor (-.25, .6), Albu (-.4, .4), Selim (-.45, .45) */
  float ssr_shift;           /* .0625, rounded to an integer fraction as the reference does (so 0) */
  float distort1_k;          /* k = U(-.05, .05) (x 1e-5 inside ky_aug_distort1) */
  float distort1_shift;      /* .05, rounded like ssr_shift */
  int distort2_steps;        /* 5 */
  float distort2_limit;      /* steps 1 + U(-.3, .3) */
  float elastic_alpha, elastic_sigma, elastic_alpha_affine; /* 1, 50, 50 */
  float perspective_scale[2];/* (.05, .1) */
  float piecewise_scale[2];  /* (.03, .05) */
  int piecewise_rows, piecewise_cols; /* 4, 4 */
} ky_aug_params;

void ky_aug_params_default(ky_aug_params *p);

enum { KY_AUG_MAX_STEPS = 32, KY_AUG_MAX_ONEOF = 8 };

typedef struct {
  ky_aug_op op;
  float p;                   /* own probability; inside a OneOf, its weight */
} ky_aug_member;

typedef struct {
  int oneof;                 /* 0: apply member 0 with its p; 1: with probability p pick one member */
  float p;                   /* OneOf probability */
  int n;
  ky_aug_member m[KY_AUG_MAX_ONEOF];
} ky_aug_step;

typedef struct ky_aug_chain {
  float p;                   /* whole-chain probability */
  int n;
  ky_aug_step steps[KY_AUG_MAX_STEPS];
  ky_aug_params params;
} ky_aug_chain;

/* The reference chain (5.1) in the order of Victor's code (victor/transforms.py aug_mega_hardcore,
 * = Albu's aug_victor): HueSaturationValue comes after the distortions, not before
 * ShiftScaleRotate as 5.1 lists it. p_all: whole-chain probability (Victor and Albu .97, Selim .95);
 * the ShiftScaleRotate scale is 1 + U(scale_lo, scale_hi) (Victor -.25, .6). */
ky_status ky_aug_chain_mega(ky_aug_chain *chain, float p_all, float scale_lo, float scale_hi);
/* Selim's OneOf picks its member uniformly (Albu's and Victor's weight by the members' p): sets
 * every OneOf weight of the chain to 1. */
ky_status ky_aug_chain_uniform_oneof(ky_aug_chain *chain);
/* Config string, steps in order, comma-separated:
 *   name:p                          one transform with probability p
 *   oneof:p(name:w|name:w|...)      with probability p one member, chosen with weights w
 *   all:p                           whole-chain probability (default 1)
 * e.g. "all:0.9,flip:0.5,rot90:0.5,oneof:0.35(clahe:0.5|sharpen:0.25|emboss:0.25)".
 * Parameter ranges are the defaults. */
ky_status ky_aug_chain_parse(ky_aug_chain *chain, const char *spec);
/* Writes the chain back in the config syntax (for logs and run records). */
ky_status ky_aug_chain_format(char *buf, int cap, const ky_aug_chain *chain);

/* Draws one op's parameters from rng with `params` and applies it. Ops that change the shape
 * (rot90, transpose) need h == w here. labels may be NULL. */
ky_status ky_aug_apply_op(ky_aug_op op, const ky_aug_params *params, uint8_t *rgb, uint16_t *labels,
                          int h, int w, ky_rng *rng);

/* The data loader's hook: runs the chain on one sample (rgb uint8 [h, w, 3], labels uint16 [h, w]
 * or NULL), in place. A chain holding rot90 or transpose needs a square image (the training crops
 * are square); otherwise KY_ERR_SHAPE. */
ky_status ky_aug_apply(const ky_aug_chain *chain, uint8_t *rgb, uint16_t *labels, int h, int w, ky_rng *rng);
/* The same with the loader's ky_augment_fn signature (data/loader.h); ctx is a const ky_aug_chain *. */
ky_status ky_aug_hook(void *ctx, uint8_t *rgb, uint16_t *labels, int h, int w, ky_rng *rng);

#endif

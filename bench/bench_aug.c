/* Throughput of the augmentation chain on 256 x 256 crops of real DSB images, one core: the mega
 * chain (every sample augmented, p_all = 1, and p_all = .95 as Selim trains), copy-paste + chain
 * (donor pool per call, or found once per image), and each op alone. Prints a table of medians (thread CPU time). Compare with
 * tests/fixtures/bench_aug.py (the same chain in albumentations).
 * Usage: bench_aug [dsb_root] [crops]   (default: /work/shared/data/dsb2018/stage1_train when
 * present, else tests/fixtures/dsb_sample; 400 crops per run, 5 runs) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aug/chain.h"
#include "aug/copypaste.h"
#include "data/dsb.h"

enum { CROP = 256, MAX_IMAGES = 32, RUNS = 5 };

static double cpu_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

typedef struct {
  int n;
  ky_dsb_sample s[MAX_IMAGES];
  ky_aug_donors d[MAX_IMAGES]; /* donor pools of the padded images */
} images;

/* Zero-padded copy of sample s with at least CROP x CROP, as the loader makes it. */
static void padded(const ky_dsb_sample *s, uint8_t **rgb, uint16_t **lab, int *h, int *w) {
  *h = s->h > CROP ? s->h : CROP;
  *w = s->w > CROP ? s->w : CROP;
  *rgb = calloc((size_t)*h * *w * 3, 1);
  *lab = calloc((size_t)*h * *w, 2);
  for (int y = 0; y < s->h; y++) {
    memcpy(*rgb + (size_t)y * *w * 3, s->rgb + (size_t)y * s->w * 3, (size_t)s->w * 3);
    memcpy(*lab + (size_t)y * *w, s->labels + (size_t)y * s->w, (size_t)s->w * 2);
  }
}

static void crop_of(uint8_t *crgb, uint16_t *clab, const uint8_t *rgb, const uint16_t *lab, int w, int x0, int y0) {
  for (int y = 0; y < CROP; y++) {
    memcpy(crgb + (size_t)y * CROP * 3, rgb + ((size_t)(y0 + y) * w + x0) * 3, CROP * 3);
    memcpy(clab + (size_t)y * CROP, lab + (size_t)(y0 + y) * w + x0, CROP * 2);
  }
}

typedef enum { MODE_CHAIN, MODE_COPY_CHAIN, MODE_POOL_CHAIN, MODE_OP } mode;

/* crops per second (median of RUNS), each crop from a cycled image at a seeded origin. */
static double run(const images *im, mode md, const ky_aug_chain *chain, ky_aug_op op, int crops, double *ms) {
  static uint8_t crgb[CROP * CROP * 3];
  static uint16_t clab[CROP * CROP];
  double rates[RUNS];
  ky_aug_params prm;
  ky_aug_params_default(&prm);
  float p_copy = 1.f;
  for (int r = 0; r < RUNS; r++) {
    double t = 0;
    for (int c = 0; c < crops; c++) {
      const ky_dsb_sample *s = &im->s[c % im->n];
      uint8_t *rgb;
      uint16_t *lab;
      int h, w;
      padded(s, &rgb, &lab, &h, &w);
      ky_rng rng = ky_rng_make(2018, KY_RNG_STREAM_AUG + ((uint64_t)(r * crops + c) << 8));
      int x0 = (int)ky_rng_int(&rng, 0, w - CROP + 1), y0 = (int)ky_rng_int(&rng, 0, h - CROP + 1);
      ky_status st = KY_OK;
      double t0 = cpu_now();
      if (md == MODE_COPY_CHAIN) st = ky_aug_copy_paste(rgb, lab, h, w, x0, y0, CROP, p_copy, &rng);
      if (md == MODE_POOL_CHAIN)
        st = ky_aug_copy_paste_donors(rgb, lab, h, w, x0, y0, CROP, p_copy, &im->d[c % im->n], &rng);
      double t1 = cpu_now();
      crop_of(crgb, clab, rgb, lab, w, x0, y0);
      double t2 = cpu_now();
      if (st == KY_OK) {
        if (md == MODE_OP) st = ky_aug_apply_op(op, &prm, crgb, clab, CROP, CROP, &rng);
        else st = ky_aug_apply(chain, crgb, clab, CROP, CROP, &rng);
      }
      t += (t1 - t0) + (cpu_now() - t2);
      free(rgb);
      free(lab);
      if (st != KY_OK) {
        fprintf(stderr, "bench_aug: %s\n", ky_last_error());
        exit(1);
      }
    }
    rates[r] = crops / t;
  }
  qsort(rates, RUNS, sizeof *rates, cmp_double);
  if (ms) *ms = 1e3 / rates[RUNS / 2];
  return rates[RUNS / 2];
}

int main(int argc, char **argv) {
  const char *root = argc > 1 && argv[1][0] ? argv[1] : NULL;
  int crops = argc > 2 ? atoi(argv[2]) : 400;
  if (!root) root = access("/work/shared/data/dsb2018/stage1_train", R_OK) == 0 ? "/work/shared/data/dsb2018/stage1_train"
                                                                              : "tests/fixtures/dsb_sample";
  ky_dsb_ids ids;
  if (ky_dsb_list_ids(&ids, root) != KY_OK) {
    fprintf(stderr, "bench_aug: %s\n", ky_last_error());
    return 1;
  }
  static images im;
  for (int i = 0; i < ids.n && im.n < MAX_IMAGES; i++) {
    /* Spread the picks over the sorted list (it mixes image kinds). */
    int k = (int)((long)i * ids.n / (ids.n < MAX_IMAGES ? ids.n : MAX_IMAGES));
    if (k >= ids.n) break;
    if (ky_dsb_load(&im.s[im.n], root, ids.ids[k], KY_DSB_MASKS_REQUIRED) != KY_OK) {
      fprintf(stderr, "bench_aug: %s\n", ky_last_error());
      return 1;
    }
    uint8_t *rgb;
    uint16_t *lab;
    int h, w;
    padded(&im.s[im.n], &rgb, &lab, &h, &w);
    ky_status st = ky_aug_donors_find(&im.d[im.n], lab, h, w);
    free(rgb);
    free(lab);
    if (st != KY_OK) {
      fprintf(stderr, "bench_aug: %s\n", ky_last_error());
      return 1;
    }
    im.n++;
  }
  ky_dsb_ids_free(&ids);
  printf("bench_aug: %d images from %s, %d crops of %dx%d per run, median of %d runs, 1 thread (CPU time)\n",
         im.n, root, crops, CROP, CROP, RUNS);
  ky_aug_chain all, selim;
  ky_aug_chain_mega(&all, 1.f, -0.25f, 0.6f);
  ky_aug_chain_mega(&selim, 0.95f, -0.45f, 0.45f);
  double ms;
  printf("%-44s %10s %10s\n", "configuration", "crops/s", "ms/crop");
  double r = run(&im, MODE_CHAIN, &all, 0, crops, &ms);
  printf("%-44s %10.1f %10.3f\n", "mega chain, p_all 1, scale (-.25, .6)", r, ms);
  r = run(&im, MODE_CHAIN, &selim, 0, crops, &ms);
  printf("%-44s %10.1f %10.3f\n", "mega chain, p_all .95, scale (-.45, .45)", r, ms);
  /* The same without PiecewiseAffine: the Python baseline's slowest step, reported apart. */
  ky_aug_chain nopw = all;
  if (nopw.steps[11].n != 5 || nopw.steps[11].m[4].op != KY_AUG_PIECEWISE_AFFINE) {
    fprintf(stderr, "bench_aug: the mega chain's distortion step moved\n");
    return 1;
  }
  nopw.steps[11].n = 4;
  r = run(&im, MODE_CHAIN, &nopw, 0, crops, &ms);
  printf("%-44s %10.1f %10.3f\n", "  the same without piecewise_affine", r, ms);
  r = run(&im, MODE_COPY_CHAIN, &all, 0, crops, &ms);
  printf("%-44s %10.1f %10.3f\n", "copy-paste (p 1) + mega chain (p_all 1)", r, ms);
  r = run(&im, MODE_POOL_CHAIN, &all, 0, crops, &ms);
  printf("%-44s %10.1f %10.3f\n", "  the same, donor pools found once per image", r, ms);
  printf("%-44s %10s %10s\n", "single op (always applied)", "crops/s", "ms/crop");
  for (int op = 0; op < KY_AUG_NUM_OPS; op++) {
    r = run(&im, MODE_OP, NULL, (ky_aug_op)op, crops / 4 > 20 ? crops / 4 : 20, &ms);
    printf("  %-42s %10.1f %10.3f\n", ky_aug_op_name((ky_aug_op)op), r, ms);
  }
  for (int i = 0; i < im.n; i++) {
    ky_dsb_sample_free(&im.s[i]);
    ky_aug_donors_free(&im.d[i]);
  }
  return 0;
}

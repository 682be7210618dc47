/* Data pipeline speed: reference target generation per image (on the 1024x1024 DSB images when
 * /work/shared/data/dsb2018 is present, else on the bundled sample) and loader batches/s with 1
 * and 2 worker threads (no augmentation hook). Prints tables of medians. Not a test. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/dsb.h"
#include "data/loader.h"
#include "data/targets.h"
#include "tests/util_test.h"

#define SHARED "/work/shared/data/dsb2018/stage1_train"
#define SAMPLE "tests/fixtures/dsb_sample"

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, ky_test_cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Width and height from a PNG's IHDR without decoding it. */
static int png_size(const char *path, int *w, int *h) {
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  unsigned char b[24];
  size_t n = fread(b, 1, sizeof b, f);
  fclose(f);
  if (n != sizeof b || memcmp(b + 12, "IHDR", 4)) return 0;
  *w = (b[16] << 24) | (b[17] << 16) | (b[18] << 8) | b[19];
  *h = (b[20] << 24) | (b[21] << 16) | (b[22] << 8) | b[23];
  return 1;
}

static int bench_targets(void) {
  const char *root = SHARED;
  ky_dsb_ids ids;
  int want = 1024, max_images = 16;
  if (ky_dsb_list_ids(&ids, root) != KY_OK) {
    root = SAMPLE;
    want = 0;
    if (ky_dsb_list_ids(&ids, root) != KY_OK) { fprintf(stderr, "bench_data: %s\n", ky_last_error()); return 1; }
  }
  printf("target generation (ky_targets_make: relabel, dilations, watershed lines, separation band)\n");
  printf("data: %s%s\n", root, want ? ", the 1024x1024 images" : " (shared data not found)");
  printf("%-10s %-10s %7s %12s\n", "id", "size", "nuclei", "median ms");
  double all[64];
  int n_all = 0;
  for (int i = 0; i < ids.n && n_all < max_images; i++) {
    char p[4096];
    int w, h;
    snprintf(p, sizeof p, "%s/%s/images/%s.png", root, ids.ids[i], ids.ids[i]);
    if (want && (!png_size(p, &w, &h) || w != want || h != want)) continue;
    ky_dsb_sample s;
    if (ky_dsb_load(&s, root, ids.ids[i], KY_DSB_MASKS_REQUIRED) != KY_OK) {
      fprintf(stderr, "bench_data: %s\n", ky_last_error());
      continue;
    }
    size_t np = (size_t)s.h * s.w;
    uint8_t *body = malloc(np), *sep = malloc(np);
    double t[3];
    for (int r = 0; r < 3; r++) {
      double t0 = now_s();
      if (ky_targets_make(body, sep, NULL, s.labels, s.h, s.w) != KY_OK) { fprintf(stderr, "%s\n", ky_last_error()); return 1; }
      t[r] = now_s() - t0;
    }
    double m = median(t, 3) * 1e3;
    all[n_all++] = m;
    printf("%.8s   %4dx%-5d %7d %12.1f\n", ids.ids[i], s.w, s.h, s.n_labels, m);
    free(body);
    free(sep);
    ky_dsb_sample_free(&s);
  }
  if (n_all) printf("median over %d images: %.1f ms/image\n\n", n_all, median(all, n_all));
  ky_dsb_ids_free(&ids);
  return 0;
}

static int bench_loader(void) {
  ky_dsb_set set;
  if (ky_dsb_set_load(&set, SAMPLE, NULL, 0, KY_DSB_MASKS_REQUIRED) != KY_OK) {
    fprintf(stderr, "bench_data: %s\n", ky_last_error());
    return 1;
  }
  printf("loader (bundled sample, %d images; batch 16, crop 256, dpn normalisation, sigmoid targets, no hook)\n", set.n);
  printf("%-8s %14s %14s\n", "threads", "batches/s", "ms/batch");
  for (int threads = 1; threads <= 2; threads++) {
    ky_loader_config c;
    memset(&c, 0, sizeof c);
    c.set = &set;
    c.batch = 16;
    c.crop = 256;
    c.seed = 1;
    c.norm = KY_NORM_DPN;
    c.with_sigmoid = 1;
    c.threads = threads;
    ky_loader *l;
    if (ky_loader_start(&l, &c) != KY_OK) { fprintf(stderr, "bench_data: %s\n", ky_last_error()); return 1; }
    const ky_batch *b;
    double rates[3];
    for (int rep = 0; rep < 3; rep++) {
      double t0 = now_s();
      int nb = 8;
      for (int k = 0; k < nb; k++)
        if (ky_loader_next(l, &b, NULL) != KY_OK) { fprintf(stderr, "%s\n", ky_last_error()); return 1; }
      rates[rep] = nb / (now_s() - t0);
    }
    double r = median(rates, 3);
    printf("%-8d %14.2f %14.1f\n", threads, r, 1e3 / r);
    ky_loader_stop(l);
  }
  ky_dsb_set_free(&set);
  return 0;
}

int main(void) {
  if (bench_targets()) return 1;
  return bench_loader();
}

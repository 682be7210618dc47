/* The GPU reproducibility contract, checked on the CPU (no GPU or CUDA build needed): the AUTO
 * convolution rule (ops/conv_choice.c) is a pure function of direction, shape, architecture and
 * flags, never asks for timing in deterministic mode and always does otherwise; and the
 * `deterministic` training option (pipeline/config.c) defaults to 1, is set by
 * `--deterministic 0`, is written into the stored configuration and read back from it. The step
 * from the config to the context (pipeline/train.c) and the chooser on the device are exercised by
 * tests/test_cuda_conv.c (GPU, or the CPU emulation of tests/cuda_emu/run.sh). Run by `make test`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/conv_choice.h"
#include "pipeline/config.h"
#include "tests/util_test.h"

static const ky_conv_shape kShapes[] = {
    {1, 256, 256, 3, 64, 7, 7, 2, 3, 1, 128, 128}, {2, 64, 64, 64, 64, 3, 3, 1, 1, 1, 64, 64},
    {2, 7, 9, 67, 130, 1, 1, 1, 0, 1, 7, 9},       {1, 12, 10, 67, 5, 3, 3, 1, 2, 2, 12, 10},
    {1, 4, 4, 512, 512, 3, 3, 1, 1, 1, 4, 4},      {3, 5, 6, 4, 4, 1, 1, 1, 0, 1, 5, 6},
};
#define NSHAPES ((int)(sizeof kShapes / sizeof kShapes[0]))
static const int kSm[] = {61, 70, 75, 80, 86, 89, 90, 100};
#define NSM ((int)(sizeof kSm / sizeof kSm[0]))
#define NIN (3 * NSHAPES * NSM * 2 * 2)

/* Input i of the grid: direction, shape, architecture, tf32, deterministic. */
static ky_conv_choice choice_of(int i) {
  int r = i;
  const int det = r % 2; r /= 2;
  const int tf32 = r % 2; r /= 2;
  const int sm = kSm[r % NSM]; r /= NSM;
  const ky_conv_shape *s = &kShapes[r % NSHAPES]; r /= NSHAPES;
  return ky_conv_auto_choice(r, s, sm, tf32, det);
}

static void test_rule_values(void **st) {
  for (int dir = 0; dir < 3; ++dir)
    for (int si = 0; si < NSHAPES; ++si)
      for (int mi = 0; mi < NSM; ++mi)
        for (int tf32 = 0; tf32 < 2; ++tf32) {
          const ky_conv_shape before = kShapes[si];
          /* Deterministic: a fixed algorithm, never "time the candidates", never cuBLAS. */
          ky_conv_choice c = ky_conv_auto_choice(dir, &kShapes[si], kSm[mi], tf32, 1);
          assert_int_not_equal(c.algo, KY_CONV_ALGO_AUTO);
          assert_int_not_equal(c.algo, KY_CONV_ALGO_IM2COL_GEMM);
          assert_int_equal(c.algo, tf32 && kSm[mi] >= 80 ? KY_CONV_ALGO_IMPLICIT_TF32 : KY_CONV_ALGO_IMPLICIT_GEMM);
          assert_int_equal(c.cfg, -1);
          /* Not deterministic: the caller times (and only then). */
          c = ky_conv_auto_choice(dir, &kShapes[si], kSm[mi], tf32, 0);
          assert_int_equal(c.algo, KY_CONV_ALGO_AUTO);
          assert_memory_equal(&before, &kShapes[si], sizeof before);  /* inputs untouched */
        }
}

/* Pure: the answer for each input is the same whatever was asked before, in any order. */
static void test_rule_pure(void **st) {
  ky_conv_choice *first = malloc(NIN * sizeof *first);
  assert_non_null(first);
  for (int i = 0; i < NIN; ++i) first[i] = choice_of(i);
  for (int i = NIN - 1; i >= 0; --i) {
    const ky_conv_choice c = choice_of(i);
    assert_int_equal(c.algo, first[i].algo);
    assert_int_equal(c.cfg, first[i].cfg);
  }
  uint32_t x = 12345u;
  for (int k = 0; k < 4 * NIN; ++k) {
    x = x * 1664525u + 1013904223u;
    const int i = (int)((x >> 8) % NIN);
    const ky_conv_choice c = choice_of(i);
    assert_int_equal(c.algo, first[i].algo);
    assert_int_equal(c.cfg, first[i].cfg);
  }
  free(first);
}

static void test_config_flag(void **st) {
  ky_train_config c;
  ky_train_config_default(&c);
  assert_int_equal(c.deterministic, 1);
  char *argv[] = {"train", "--deterministic", "0", NULL};
  assert_int_equal(ky_train_config_args(&c, 3, argv, NULL), KY_OK);
  assert_int_equal(c.deterministic, 0);
  /* Stored with the run (config.txt, the checkpoint's config) and read back. */
  char *dir = ky_test_tmpdir("det");
  char path[300];
  snprintf(path, sizeof path, "%s/run.cfg", dir);
  assert_int_equal(ky_train_config_save(&c, path), KY_OK);
  ky_train_config d;
  ky_train_config_default(&d);
  assert_int_equal(ky_train_config_load(&d, path), KY_OK);
  assert_int_equal(d.deterministic, 0);
  ky_test_rmdir(dir);
  free(dir);
  assert_int_equal(ky_train_config_set(&c, "deterministic", "2"), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "'deterministic' must be 0/1"));
  assert_int_equal(ky_train_config_set(&c, "deterministic", "true"), KY_OK);
  assert_int_equal(c.deterministic, 1);
  /* `karyon train --help` lists it with its default. */
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  ky_train_config_help(f);
  fclose(f);
  const char *line = strstr(buf, "--deterministic");
  assert_non_null(line);
  assert_non_null(strstr(line, "[1]"));
  free(buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rule_values),
      cmocka_unit_test(test_rule_pure),
      cmocka_unit_test(test_config_flag),
  };
  return cmocka_run_group_tests_name("pipeline_determinism", tests, NULL, NULL);
}

/* Tests for core/philox.h and core/rng.h: Random123 known-answer vectors, sequence addressing,
 * distributions, determinism. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>

#include "core/rng.h"

static void test_known_answers(void **st) {
  /* Published Philox4x32-10 vectors (Random123 kat_vectors). */
  static const uint32_t ctr[3][4] = {{0, 0, 0, 0}, {~0u, ~0u, ~0u, ~0u}, {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}};
  static const uint32_t key[3][2] = {{0, 0}, {~0u, ~0u}, {0xa4093822, 0x299f31d0}};
  static const uint32_t want[3][4] = {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
                                      {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
                                      {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}};
  for (int i = 0; i < 3; i++) {
    uint32_t o[4];
    ky_philox4x32(o, ctr[i], key[i]);
    for (int j = 0; j < 4; j++) assert_int_equal(o[j], want[i][j]);
  }
}

static void test_sequence_is_addressable(void **st) {
  ky_rng r = ky_rng_make(42, 7);
  uint32_t seq[10];
  for (int i = 0; i < 10; i++) seq[i] = ky_rng_u32(&r);
  /* Word i of the sequence can be computed directly (what a GPU thread does). */
  for (int i = 0; i < 10; i++) assert_int_equal(seq[i], ky_philox_word(42, 7, (uint64_t)i));
  ky_rng r2 = ky_rng_make(42, 8);
  assert_int_not_equal(ky_rng_u32(&r2), seq[0]);
}

static void test_distributions(void **st) {
  ky_rng r = ky_rng_make(1, KY_RNG_STREAM_TEST);
  double s = 0, s2 = 0, u = 0;
  int n = 200000, counts[5] = {0};
  for (int i = 0; i < n; i++) {
    float z = ky_rng_normal(&r);
    s += z;
    s2 += (double)z * z;
    float x = ky_rng_uniform(&r);
    assert_true(x >= 0 && x < 1);
    u += x;
    counts[ky_rng_int(&r, 0, 5)]++;
  }
  assert_true(fabs(s / n) < 0.01);
  assert_true(fabs(s2 / n - 1) < 0.02);
  assert_true(fabs(u / n - 0.5) < 0.005);
  for (int k = 0; k < 5; k++) assert_true(abs(counts[k] - n / 5) < n / 50);
}

static void test_shuffle_is_permutation(void **st) {
  int a[100], seen[100] = {0};
  for (int i = 0; i < 100; i++) a[i] = i;
  ky_rng r = ky_rng_make(3, 1);
  ky_rng_shuffle_int(&r, a, 100);
  int moved = 0;
  for (int i = 0; i < 100; i++) { seen[a[i]]++; moved += a[i] != i; }
  for (int i = 0; i < 100; i++) assert_int_equal(seen[i], 1);
  assert_true(moved > 50);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_known_answers),
      cmocka_unit_test(test_sequence_is_addressable),
      cmocka_unit_test(test_distributions),
      cmocka_unit_test(test_shuffle_is_permutation),
  };
  return cmocka_run_group_tests_name("core_rng", tests, NULL, NULL);
}

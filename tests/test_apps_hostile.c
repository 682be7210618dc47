/* Hostile input through the `karyon` command ($KY_BUILD/karyon, as in tests/test_apps_cli.c):
 * every number flag parsed strictly, list flags checked whole before a run starts, config values
 * and files refused with a message naming the key, the value and the limit, and nothing written
 * by a run that fails its checks. Each case failed (accepted, or gave a vaguer message) before
 * the fix it guards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/image.h"
#include "data/dsb.h"
#include "tests/util_test.h"

static char *dir;

/* Runs karyon; expects exit status `rc` and `needle` in what it printed. */
static void expect(int rc, const char *needle, const char *args) {
  char *o;
  int got = ky_test_karyon(&o, "%s", args);
  if (got != rc || !strstr(o, needle)) fail_msg("karyon %s: exit %d (expected %d), output lacks '%s':\n%s", args, got, rc, needle, o);
  free(o);
}

static void test_number_flags_are_strict(void **st) {
  char a[1024];
  const char *img = "--images tests/fixtures/dsb_sample";
  snprintf(a, sizeof a, "predict --ckpt x.safetensors %s --tta 8abc", img);
  expect(2, "--tta is '8abc', expected a whole number", a);
  snprintf(a, sizeof a, "predict --ckpt x.safetensors %s --thr abc", img);
  expect(2, "--thr is 'abc', expected a number in [0, 1]", a);
  snprintf(a, sizeof a, "predict --ckpt x.safetensors %s --thr 1e400", img);
  expect(2, "--thr is '1e400'", a);
  expect(2, "--seed is 'abc', expected a whole number", "postproc train --prob p --truth t --out g.txt --seed abc");
  expect(2, "--reps is '10000000', expected a whole number in 1..1000",
         "postproc train --prob p --truth t --out g.txt --reps 10000000");
  expect(2, "--reps is ' 5'", "postproc train --prob p --truth t --out g.txt --reps ' 5'");
  expect(2, "--thr is '0.3x'", "postproc apply --prob p --gbt g.txt --out o --thr 0.3x");
  expect(2, "--thr is 'abc'", "segment --prob p --out o --thr abc");
  expect(2, "--connectivity is '8x', expected a whole number in 4..8",
         "watershed --elevation e.png --markers m.png --out o.png --connectivity 8x");
  expect(2, "--connectivity is '6', expected 4 or 8", "watershed --elevation e.png --markers m.png --out o.png --connectivity 6");
  expect(2, "--iters is '5x'", "demo --iters 5x");
}

static void test_list_flags_checked_before_the_run(void **st) {
  char a[1024];
  snprintf(a, sizeof a, "predict --ckpt , --images tests/fixtures/dsb_sample --out %s/p", dir);
  expect(2, "--ckpt ',' has an empty entry", a);
  snprintf(a, sizeof a, "predict --ckpt a.st,b.st --weights 1,abc --images tests/fixtures/dsb_sample --out %s/p", dir);
  expect(2, "--weights '1,abc': entry 'abc' is not a number", a);
  snprintf(a, sizeof a, "predict --ckpt a.st,b.st --weights 1 --images tests/fixtures/dsb_sample --out %s/p", dir);
  expect(2, "--weights '1' has 1 entries, expected one per --ckpt entry (2)", a);
  /* Nothing started: no output folder. */
  snprintf(a, sizeof a, "%s/p", dir);
  assert_int_equal(access(a, F_OK), -1);
  /* A folder given as a checkpoint says so. */
  snprintf(a, sizeof a, "predict --ckpt %s --images tests/fixtures/dsb_sample --out %s/p", dir, dir);
  expect(1, "is a folder, expected a regular file", a);
}

static void test_config_values_and_files(void **st) {
  char a[1024], p[600];
  const char *base = "train --data tests/fixtures/dsb_sample --device cpu";
  snprintf(a, sizeof a, "%s --out %s/r --lr 1e-45", base, dir);
  expect(1, "'lr' = 1e-45 is outside the float32 range", a);
  snprintf(a, sizeof a, "%s --out %s/r --crop 32000", base, dir);
  expect(1, "crop 32000, expected a multiple of 32 in 32..2048", a);
  snprintf(a, sizeof a, "%s --out %s/r --batch 100000", base, dir);
  expect(1, "batch 100000, expected 1..4096", a);
  snprintf(a, sizeof a, "%s --out %s/r --crop 2048 --batch 4096", base, dir);
  expect(1, "above the limit 2^28", a);
  snprintf(a, sizeof a, "%s --out %s/r --clip -1", base, dir);
  expect(1, "config: clip -1 must be >= 0", a);
  /* None of these runs may have written anything. */
  snprintf(p, sizeof p, "%s/r", dir);
  assert_int_equal(access(p, F_OK), -1);
  /* A NUL byte in a config file used to end it silently: the bad value after it was never read. */
  snprintf(p, sizeof p, "%s/bad.cfg", dir);
  const char cfg[] = "iters = 2\n\0\nlr = fast\n";
  assert_int_equal(ky_file_write_atomic(p, cfg, sizeof cfg - 1), KY_OK);
  snprintf(a, sizeof a, "%s --out %s/r --config %s", base, dir, p);
  expect(1, "bad.cfg: NUL byte at line 2", a);
  /* Binary content is echoed escaped, never raw to the terminal. */
  const char bin[] = "\x1b[2J\x01\x02garbage\n";
  assert_int_equal(ky_file_write_atomic(p, bin, sizeof bin - 1), KY_OK);
  char *o;
  assert_int_equal(ky_test_karyon(&o, "%s --out %s/r --config %s", base, dir, p), 1);
  if (!strstr(o, "\\x1b[2J\\x01\\x02garbage") || strchr(o, '\x1b')) fail_msg("binary config echoed raw:\n%s", o);
  free(o);
}

static void test_summary_sizes_bounded(void **st) {
  expect(2, "--size '99999999999x256': expected HxW", "summary --model unet_resnet34 --size 99999999999x256");
  expect(2, "--size '65536x65536'", "summary --model unet_resnet34 --size 65536x65536");
  expect(2, "--size '256x 256'", "summary --model unet_resnet34 --size '256x 256'");
  expect(0, "params: 24531523", "summary --model unet_resnet34 --size 32768x32");
}

/* score --csv quotes ids that hold a comma, and refuses to write over its own inputs. */
static void test_score_csv(void **st) {
  char p[700], a[2100];
  const char *id = "a,b";
  snprintf(p, sizeof p, "%s/truth/%s/images", dir, id);
  assert_int_equal(ky_mkdirs(p), KY_OK);
  snprintf(p, sizeof p, "%s/truth/%s/masks", dir, id);
  assert_int_equal(ky_mkdirs(p), KY_OK);
  uint8_t rgb[8 * 8 * 3] = {0}, m[64] = {0};
  uint16_t lab[64] = {0};
  for (int i = 18; i < 22; i++) { m[i] = 255; lab[i] = 1; }
  snprintf(p, sizeof p, "%s/truth/%s/images/%s.png", dir, id, id);
  assert_int_equal(ky_png_save_u8(p, rgb, 8, 8, 3), KY_OK);
  snprintf(p, sizeof p, "%s/truth/%s/masks/m.png", dir, id);
  assert_int_equal(ky_png_save_u8(p, m, 8, 8, 1), KY_OK);
  snprintf(p, sizeof p, "%s/pred", dir);
  assert_int_equal(ky_mkdirs(p), KY_OK);
  snprintf(p, sizeof p, "%s/pred/%s.png", dir, id);
  assert_int_equal(ky_png_save_u16(p, lab, 8, 8, 1), KY_OK);
  snprintf(a, sizeof a, "score --truth %s/truth --pred %s/pred --csv %s/s.csv", dir, dir, dir);
  expect(0, "score: 1.00000", a);
  char *b;
  size_t n;
  snprintf(p, sizeof p, "%s/s.csv", dir);
  assert_int_equal(ky_file_read_all(p, &b, &n), KY_OK);
  assert_string_equal(b, "ImageId,score,truth,pred\n\"a,b\",1.000000,1,1\n");
  free(b);
  /* --csv naming the prediction (here through another path) leaves it as it was. */
  snprintf(a, sizeof a, "score --truth %s/truth --pred %s/pred --csv %s/pred/../pred/%s.png", dir, dir, dir, id);
  expect(2, "is the --pred input", a);
  snprintf(p, sizeof p, "%s/pred/%s.png", dir, id);
  snprintf(a, sizeof a, "score --truth %s/truth --pred %s --csv %s", dir, p, p);
  expect(2, "is the --pred input", a);
  uint16_t *back;
  int h, w;
  assert_int_equal(ky_dsb_read_labels(&back, &h, &w, p), KY_OK);
  assert_int_equal(back[18], 1);
  free(back);
}

/* A checkpoint past this run's length is refused before anything is written. */
static void test_resume_past_the_end(void **st) {
  char a[1024], p[700];
  const char *common = "train --data tests/fixtures/dsb_sample --model unet_resnet18 --width 0.125 --crop 64 --batch 2 "
                       "--device cpu --threads 1 --quiet 1 --val_images 1";
  snprintf(a, sizeof a, "%s --iters 2 --out %s/run", common, dir);
  expect(0, "", a);
  snprintf(p, sizeof p, "%s/run/log.csv", dir);
  char *before, *after;
  size_t n;
  assert_int_equal(ky_file_read_all(p, &before, &n), KY_OK);
  snprintf(a, sizeof a, "%s --iters 1 --out %s/run --resume", common, dir);
  expect(1, "is at step 2, beyond this run's 1 steps", a);
  assert_int_equal(ky_file_read_all(p, &after, &n), KY_OK);
  assert_string_equal(before, after);
  free(before);
  free(after);
}

KY_TEST_TMPDIR_FIXTURES("hostile")

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_number_flags_are_strict),
      cmocka_unit_test(test_list_flags_checked_before_the_run),
      cmocka_unit_test(test_config_values_and_files),
      cmocka_unit_test(test_summary_sizes_bounded),
      cmocka_unit_test(test_score_csv),
      cmocka_unit_test(test_resume_past_the_end),
  };
  if (!ky_test_karyon_bin()) return 1;
  return cmocka_run_group_tests_name("apps_hostile", tests, setup, teardown);
}

/* Nothing lost: `karyon train` killed with SIGKILL at several points, one of them in the middle
 * of a checkpoint write (the checkpoint's temporary file is a FIFO that the test reads from, so
 * the writer is caught with the file half written), always leaves a checkpoint that loads, and
 * --resume then ends bitwise where an uninterrupted run ends; a file-size limit (a full disk) at
 * a checkpoint or at predict's PNG writes gives a clear error and leaves the previous files as
 * they were; a failed predict, segment or postproc apply leaves the previous outputs; a killed
 * predict or pack never leaves a truncated file under a final name; out of memory under a lowered
 * limit gives the size asked. Runs $KY_BUILD/karyon. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/image.h"
#include "core/safetensors.h"
#include "post/rle.h"
#include "tests/util_test.h"

static char *dir, karyon[512];
static int pipe_rd = -1;   /* the child's output when a file-size limit would also cut its messages */

#define TRAIN "train --data tests/fixtures/dsb_sample --model unet_resnet18 --width 0.125 --crop 64 --batch 2 " \
              "--device cpu --threads 1 --quiet 1 --val_images 1 --epoch_size 3 --ckpt_every 1"

typedef struct {
  long fsize;          /* RLIMIT_FSIZE in bytes, 0: none */
  long data;           /* RLIMIT_DATA in bytes, 0: none */
  const char *fifo;    /* printf pattern with %d for the child's pid: made a FIFO before exec */
} spawn_opts;

/* Starts karyon with the space-separated args (no quoting), output to dir/child.txt. */
static pid_t spawn(const spawn_opts *o, const char *fmt, ...) {
  char args[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(args, sizeof args, fmt, ap);
  va_end(ap);
  char *argv[64];
  int n = 0;
  argv[n++] = karyon;
  for (char *t = strtok(args, " "); t && n < 63; t = strtok(NULL, " ")) argv[n++] = t;
  argv[n] = NULL;
  int pfd[2] = {-1, -1};
  if (o && (o->fsize || o->data) && pipe(pfd) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    char out[600];
    snprintf(out, sizeof out, "%s/child.txt", dir);
    int fd = pfd[1] >= 0 ? pfd[1] : open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (pfd[0] >= 0) close(pfd[0]);
    if (fd >= 0) { dup2(fd, 1); dup2(fd, 2); close(fd); }
    if (o && o->fsize) {
      struct rlimit rl = {(rlim_t)o->fsize, (rlim_t)o->fsize};
      setrlimit(RLIMIT_FSIZE, &rl);
    }
    if (o && o->data) {   /* the heap and anonymous mappings; not the shared libraries (cuBLAS, NCCL) */
      struct rlimit rl = {(rlim_t)o->data, (rlim_t)o->data};
      setrlimit(RLIMIT_DATA, &rl);
    }
    if (o && o->fifo) {
      char f[700];
      snprintf(f, sizeof f, o->fifo, (int)getpid());   /* exec keeps the pid */
      if (mkfifo(f, 0600) != 0) _exit(125);
    }
    execv(karyon, argv);
    _exit(126);
  }
  if (pfd[1] >= 0) { close(pfd[1]); pipe_rd = pfd[0]; }
  return pid;
}

static int wait_rc(pid_t pid) {
  if (pipe_rd >= 0) {   /* drain the pipe into child.txt (no limit applies here) */
    char out[600], buf[4096];
    snprintf(out, sizeof out, "%s/child.txt", dir);
    FILE *f = fopen(out, "wb");
    ssize_t got;
    while ((got = read(pipe_rd, buf, sizeof buf)) > 0)
      if (f) fwrite(buf, 1, (size_t)got, f);
    if (f) fclose(f);
    close(pipe_rd);
    pipe_rd = -1;
  }
  int st;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static char *child_output(void) {
  char p[600], *b;
  size_t n;
  snprintf(p, sizeof p, "%s/child.txt", dir);
  return ky_file_read_all(p, &b, &n) == KY_OK ? b : strdup("");
}

static int run_ok(const char *fmt, const char *a, const char *b) {
  char args[2048];
  snprintf(args, sizeof args, fmt, a, b);
  int rc = wait_rc(spawn(NULL, "%s", args));
  if (rc != 0) { char *o = child_output(); fail_msg("karyon %s: exit %d\n%s", args, rc, o); }
  return rc;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Every tensor of two safetensors files equal byte for byte (metadata holds paths: not compared). */
static void expect_same_tensors(const char *a, const char *b) {
  ky_st_file fa, fb;
  if (ky_st_read(&fa, a) != KY_OK) fail_msg("%s: %s", a, ky_last_error());
  if (ky_st_read(&fb, b) != KY_OK) fail_msg("%s: %s", b, ky_last_error());
  assert_int_equal(fa.n, fb.n);
  for (int i = 0; i < fa.n; i++) {
    const ky_st_entry *e = ky_st_find(&fb, fa.e[i].name);
    if (!e) fail_msg("%s lacks %s", b, fa.e[i].name);
    size_t n = fa.e[i].end - fa.e[i].begin;
    if (n != e->end - e->begin || memcmp(ky_st_data(&fa, &fa.e[i]), ky_st_data(&fb, e), n))
      fail_msg("tensor %s differs between %s and %s", fa.e[i].name, a, b);
  }
  ky_st_free(&fa);
  ky_st_free(&fb);
}

static char *slurp(const char *path) {
  char *b;
  size_t n;
  return ky_file_read_all(path, &b, &n) == KY_OK ? b : NULL;
}

/* The reference: 6 steps without interruption. Returns its wall time. */
static double reference(void) {
  char ref[600];
  snprintf(ref, sizeof ref, "%s/ref", dir);
  double t0 = now_s();
  run_ok(TRAIN " --iters 6 --out %s%s", ref, "");
  return now_s() - t0;
}

static void resume_and_compare(const char *run) {
  char last[700], ref[700];
  snprintf(last, sizeof last, "%s/last.safetensors", run);
  if (access(last, F_OK) == 0) run_ok(TRAIN " --iters 6 --out %s --resume%s", run, "");
  else run_ok(TRAIN " --iters 6 --out %s%s", run, "");
  snprintf(ref, sizeof ref, "%s/ref/last.safetensors", dir);
  expect_same_tensors(ref, last);
}

static void test_train_killed_anywhere(void **st) {
  double T = reference();
  const double at[] = {0.2, 0.35, 0.5, 0.65, 0.8, 0.95};
  for (size_t k = 0; k < sizeof at / sizeof at[0]; k++) {
    char run[600], last[700];
    snprintf(run, sizeof run, "%s/kill%zu", dir, k);
    pid_t pid = spawn(NULL, TRAIN " --iters 6 --out %s", run);
    usleep((useconds_t)(at[k] * T * 1e6));
    kill(pid, SIGKILL);
    wait_rc(pid);
    snprintf(last, sizeof last, "%s/last.safetensors", run);
    if (access(last, F_OK) == 0) {   /* whatever was published must load */
      ky_st_file f;
      if (ky_st_read(&f, last) != KY_OK) fail_msg("kill at %.2f T: %s", at[k], ky_last_error());
      ky_st_free(&f);
    }
    resume_and_compare(run);
  }
}

static void test_train_killed_inside_a_checkpoint_write(void **st) {
  char run[600], last[700], fifo[800];
  snprintf(run, sizeof run, "%s/fifo", dir);
  run_ok(TRAIN " --iters 3 --out %s%s", run, "");
  snprintf(last, sizeof last, "%s/last.safetensors", run);
  char *before, *log_before;
  size_t n_before;
  assert_int_equal(ky_file_read_all(last, &before, &n_before), KY_OK);
  char logp[700];
  snprintf(logp, sizeof logp, "%s/log.csv", run);
  log_before = slurp(logp);
  /* The step-4 checkpoint's temporary file is a FIFO: the writer blocks with part of it written. */
  snprintf(fifo, sizeof fifo, "%s/last.safetensors.tmp.%%d", run);
  spawn_opts o = {0, 0, fifo};
  pid_t pid = spawn(&o, TRAIN " --iters 6 --out %s --resume", run);
  snprintf(fifo, sizeof fifo, "%s/last.safetensors.tmp.%d", run, (int)pid);
  int fd = -1;
  for (int i = 0; i < 3000 && fd < 0; i++) {
    fd = open(fifo, O_RDONLY | O_NONBLOCK);
    if (fd < 0) usleep(10000);
  }
  assert_true(fd >= 0);
  char buf[4096];
  ssize_t got = 0;
  for (int i = 0; i < 6000 && got <= 0; i++) {
    got = read(fd, buf, sizeof buf);
    if (got <= 0) usleep(10000);
  }
  assert_true(got > 0);   /* the checkpoint write has begun */
  kill(pid, SIGKILL);
  wait_rc(pid);
  close(fd);
  unlink(fifo);
  /* The step-3 checkpoint and its logs are untouched. */
  char *after, *log_after = slurp(logp);
  size_t n_after;
  assert_int_equal(ky_file_read_all(last, &after, &n_after), KY_OK);
  assert_int_equal(n_after, n_before);
  assert_int_equal(memcmp(before, after, n_before), 0);
  assert_string_equal(log_before, log_after);
  free(before);
  free(after);
  free(log_before);
  free(log_after);
  resume_and_compare(run);
}

static void test_full_disk_at_a_checkpoint(void **st) {
  char run[600], last[700], cfg[700], logp[700];
  snprintf(run, sizeof run, "%s/full", dir);
  run_ok(TRAIN " --iters 3 --out %s%s", run, "");
  snprintf(last, sizeof last, "%s/last.safetensors", run);
  snprintf(cfg, sizeof cfg, "%s/config.txt", run);
  snprintf(logp, sizeof logp, "%s/log.csv", run);
  char *ck = slurp(last), *cf = slurp(cfg), *lg = slurp(logp);
  struct stat sb;
  assert_int_equal(stat(last, &sb), 0);
  /* A fresh run into the same folder, then a resume, each with files capped at half a checkpoint. */
  const char *modes[] = {"", " --resume"};
  for (int m = 0; m < 2; m++) {
    spawn_opts o = {(long)sb.st_size / 2, 0, NULL};
    int rc = wait_rc(spawn(&o, TRAIN " --iters 6 --lr 2e-3 --out %s%s", run, modes[m]));
    char *out = child_output();
    if (rc == 0 || !strstr(out, "last.safetensors") || !strstr(out, "File too large"))
      fail_msg("exit %d, expected a clear error:\n%s", rc, out);
    free(out);
    char *ck2 = slurp(last), *cf2 = slurp(cfg), *lg2 = slurp(logp);
    assert_non_null(ck2);
    if (memcmp(ck, ck2, (size_t)sb.st_size) || strcmp(cf, cf2) || strcmp(lg, lg2))
      fail_msg("mode %d: the previous checkpoint, config or log changed", m);
    free(ck2); free(cf2); free(lg2);
  }
  free(ck); free(cf); free(lg);
  resume_and_compare(run);
}

/* Every PNG under root decodes and every CSV parses: no truncated file under a final name. */
static int check_tree(const char *root) {
  DIR *d = opendir(root);
  if (!d) return 0;
  int n = 0;
  struct dirent *e;
  char p[4096];
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    snprintf(p, sizeof p, "%s/%s", root, e->d_name);
    struct stat sb;
    if (stat(p, &sb) != 0) continue;
    if (S_ISDIR(sb.st_mode)) {
      if (!strstr(e->d_name, ".tmp-")) n += check_tree(p);   /* staging folders are not final */
      continue;
    }
    size_t L = strlen(e->d_name);
    if (L > 4 && !strcmp(e->d_name + L - 4, ".png")) {
      ky_image im;
      if (ky_image_load(&im, p) != KY_OK) fail_msg("truncated under a final name: %s", ky_last_error());
      ky_image_free(&im);
      n++;
    } else if (!strcmp(e->d_name, "submission.csv")) {
      ky_rle_csv c;
      if (ky_rle_csv_read(&c, p) != KY_OK) fail_msg("truncated under a final name: %s", ky_last_error());
      ky_rle_csv_free(&c);
      n++;
    }
  }
  closedir(d);
  return n;
}

static void test_predict_segment_pack_keep_outputs(void **st) {
  char ck[700], out[600], imgs[600], p[800];
  snprintf(ck, sizeof ck, "%s/ref/last.safetensors", dir);
  if (access(ck, F_OK) != 0) reference();
  snprintf(out, sizeof out, "%s/pred", dir);
  char args[2048];
  snprintf(args, sizeof args, "predict --ckpt %s --images tests/fixtures/dsb_sample --tta 1 --no-overlay --out %s", ck, out);
  run_ok("%s%s", args, "");
  snprintf(p, sizeof p, "%s/submission.csv", out);
  char *sub = slurp(p);
  assert_non_null(sub);
  /* Image 2 of 2 cannot be decoded: the run fails and the earlier outputs stay as they were. */
  snprintf(imgs, sizeof imgs, "%s/imgs", dir);
  assert_int_equal(ky_mkdirs(imgs), KY_OK);
  uint8_t px[64 * 64 * 3] = {0};
  snprintf(p, sizeof p, "%s/a.png", imgs);
  assert_int_equal(ky_png_save_u8(p, px, 64, 64, 3), KY_OK);
  snprintf(p, sizeof p, "%s/b.png", imgs);
  assert_int_equal(ky_file_write_atomic(p, "\x89PNG broken", 11), KY_OK);
  snprintf(args, sizeof args, "predict --ckpt %s --images %s --tta 1 --out %s", ck, imgs, out);
  assert_int_not_equal(wait_rc(spawn(NULL, "%s", args)), 0);
  snprintf(p, sizeof p, "%s/labels/a.png", out);
  assert_int_equal(access(p, F_OK), -1);
  snprintf(p, sizeof p, "%s/submission.csv", out);
  char *sub2 = slurp(p);
  assert_string_equal(sub, sub2);
  free(sub2);
  /* A file-size limit at the PNG writes: a clear error, the previous files intact. */
  spawn_opts o = {200, 0, NULL};
  snprintf(args, sizeof args, "predict --ckpt %s --images tests/fixtures/dsb_sample --tta 1 --out %s", ck, out);
  assert_int_not_equal(wait_rc(spawn(&o, "%s", args)), 0);
  char *msg = child_output();
  if (!strstr(msg, "File too large")) fail_msg("expected a clear error:\n%s", msg);
  free(msg);
  sub2 = slurp(p);
  assert_string_equal(sub, sub2);
  free(sub2);
  /* segment and postproc apply on a folder whose second body map is broken: outputs unchanged. */
  char prob[700], seg[600];
  snprintf(prob, sizeof prob, "%s/prob", out);
  snprintf(seg, sizeof seg, "%s/seg", dir);
  run_ok("segment --prob %s --out %s", prob, seg);
  snprintf(p, sizeof p, "%s/submission.csv", seg);
  char *segsub = slurp(p);
  assert_non_null(segsub);
  snprintf(p, sizeof p, "%s/zzz_body.png", prob);
  assert_int_equal(ky_file_write_atomic(p, "\x89PNG broken", 11), KY_OK);
  assert_int_not_equal(wait_rc(spawn(NULL, "segment --prob %s --out %s", prob, seg)), 0);
  snprintf(p, sizeof p, "%s/submission.csv", seg);
  char *segsub2 = slurp(p);
  assert_string_equal(segsub, segsub2);
  free(segsub2);
  free(segsub);
  snprintf(p, sizeof p, "%s/zzz_body.png", prob);
  unlink(p);
  /* postproc apply on a folder with no maps at all leaves submission.csv (it used to write a header). */
  snprintf(args, sizeof args, "postproc apply --prob %s --gbt tests/fixtures/gbt/xgboost.txt --out %s", imgs, out);
  assert_int_not_equal(wait_rc(spawn(NULL, "%s", args)), 0);
  sub2 = slurp(p);
  free(sub2);
  snprintf(p, sizeof p, "%s/submission.csv", out);
  sub2 = slurp(p);
  assert_string_equal(sub, sub2);
  free(sub2);
  free(sub);
  /* Killed predict and pack runs: every file under a final name is whole. */
  const double at[] = {0.1, 0.3, 0.5, 0.7};
  for (size_t k = 0; k < sizeof at / sizeof at[0]; k++) {
    snprintf(args, sizeof args, "predict --ckpt %s --images tests/fixtures/dsb_sample --tta 8 --out %s", ck, out);
    double t0 = now_s();
    if (k == 0) wait_rc(spawn(NULL, "%s", args));
    double T = now_s() - t0 + 0.2;
    pid_t pid = spawn(NULL, "%s", args);
    usleep((useconds_t)(at[k] * T * 1e6));
    kill(pid, SIGKILL);
    wait_rc(pid);
    assert_true(check_tree(out) > 0);
    snprintf(p, sizeof p, "%s/packed", dir);
    pid = spawn(NULL, "pack --data tests/fixtures/dsb_sample --out %s", p);
    usleep((useconds_t)(at[k] * 0.3e6));
    kill(pid, SIGKILL);
    wait_rc(pid);
    check_tree(p);
  }
}

/* Out of memory under a lowered data limit (RLIMIT_DATA: heap and anonymous mappings, so that a
 * CUDA build's shared libraries still load): exit 1 with a message that gives the size asked,
 * never a crash. (ASan reserves terabytes of address space: skipped in DEBUG builds.) */
static void test_out_of_memory_says_the_size(void **st) {
#if defined(__SANITIZE_ADDRESS__)
  skip();
#endif
  char big[600], mk[600], imgs[600], ck[700];
  snprintf(imgs, sizeof imgs, "%s/bigimgs", dir);
  assert_int_equal(ky_mkdirs(imgs), KY_OK);
  snprintf(big, sizeof big, "%s/big.png", imgs);
  snprintf(mk, sizeof mk, "%s/markers.png", dir);
  enum { S = 4000 };
  uint8_t *px = malloc((size_t)S * S);
  for (size_t i = 0; i < (size_t)S * S; i++) px[i] = (uint8_t)(i % S / 16);
  assert_int_equal(ky_png_save_u8(big, px, S, S, 1), KY_OK);
  memset(px, 0, (size_t)S * S);
  for (size_t i = 0; i < (size_t)S * S; i += 997) px[i] = 1;
  assert_int_equal(ky_png_save_u8(mk, px, S, S, 1), KY_OK);
  free(px);
  snprintf(ck, sizeof ck, "%s/ref/last.safetensors", dir);
  if (access(ck, F_OK) != 0) reference();
  struct { long mb; const char *args; } cases[] = {
    {200, "watershed --elevation %s --markers %s --out %s/o.png"},
    {400, "predict --ckpt %s --images %s --tta 1 --out %s/p"},
    {300, "train --data tests/fixtures/dsb_sample --model unet_resnet18 --width 0.25 --crop 256 --batch 16 --device cpu "
          "--threads 1 --quiet 1 --iters 1 --out %s/oom%s%s"},
  };
  for (int k = 0; k < 3; k++) {
    char args[2048];
    if (k == 0) snprintf(args, sizeof args, cases[k].args, big, mk, dir);
    else if (k == 1) snprintf(args, sizeof args, cases[k].args, ck, imgs, dir);
    else snprintf(args, sizeof args, cases[k].args, dir, "", "");
    spawn_opts o = {0, cases[k].mb << 20, NULL};
    int rc = wait_rc(spawn(&o, "%s", args));
    char *out = child_output();
    if (rc != 1 || !strstr(out, "(an allocation of ") || !strstr(out, " bytes = "))
      fail_msg("karyon %s under %ld MB: exit %d, expected 1 and the size asked:\n%s", args, cases[k].mb, rc, out);
    free(out);
  }
}

KY_TEST_TMPDIR_FIXTURES("lost")

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_train_killed_anywhere),
      cmocka_unit_test(test_train_killed_inside_a_checkpoint_write),
      cmocka_unit_test(test_full_disk_at_a_checkpoint),
      cmocka_unit_test(test_predict_segment_pack_keep_outputs),
      cmocka_unit_test(test_out_of_memory_says_the_size),
  };
  const char *k = ky_test_karyon_bin();
  if (!k) return 1;
  snprintf(karyon, sizeof karyon, "%s", k);
  return cmocka_run_group_tests_name("apps_nothing_lost", tests, setup, teardown);
}

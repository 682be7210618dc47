/* `karyon demo` (what `make demo` runs): train, predict, score on the bundled sample and say where
 * the pictures are. Tested by tests/test_pipeline_demo.c (a shortened demo run). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apps/cli.h"
#include "pipeline/demo.h"

const char ky_cmd_demo_summary[] = "train, predict and score on the bundled sample of DSB images";

static void on_step(void *ud, const ky_train_progress *p) {
  if (isatty(2))
    fprintf(stderr, "\r  step %lld/%lld  loss %.4f  %.1f img/s  eta %.0f s   %s", (long long)p->step, (long long)p->total,
            p->loss, p->img_per_s, p->eta_s, p->step == p->total ? "\n" : "");
  else if (p->step % 20 == 0 || p->step == p->total)
    printf("  step %lld/%lld  loss %.4f  %.1f img/s  eta %.0f s\n", (long long)p->step, (long long)p->total, p->loss,
           p->img_per_s, p->eta_s), fflush(stdout);
}

static void on_epoch(void *ud, const ky_train_epoch *e) {
  if (isatty(2)) fputc('\n', stderr);
  printf("  epoch %d: train loss %.4f, held-out loss %.4f, held-out DSB score %.4f\n", e->epoch, e->train_loss, e->val_loss,
         e->val_score);
  fflush(stdout);
}

static void on_info(void *ud, const char *line) { printf("  %s\n", line); fflush(stdout); }

int ky_cmd_demo(int argc, char **argv) {
  if (ky_cli_wants_help(argc, argv)) {
    printf("usage: karyon demo [--sample DIR] [--out DIR] [--device cpu|cuda|auto] [--iters N] [--threads N]\n"
           "  Trains on the bundled sample (tests/fixtures/dsb_sample: real CC0 DSB 2018 images), holds out\n"
           "  its fold 0, predicts it with 8-way TTA, scores it, and compares with an untrained model.\n");
    return 0;
  }
  static const char *const known[] = {"sample", "out", "device", "iters", "threads", "help!", NULL};
  if (!ky_cli_check(argc, argv, "demo", known)) return 2;
  int threads;
  long iters;
  if (!ky_cli_int(argc, argv, "demo", "iters", 0, 100000000, 0, &iters)) return 2;
  ky_status ts = ky_cli_threads(&threads, argc, argv);
  if (ts != KY_OK) return ky_cli_fail("demo", ts);
  ky_demo_opts o = {ky_cli_opt(argc, argv, "sample") ? ky_cli_opt(argc, argv, "sample") : "tests/fixtures/dsb_sample",
                    ky_cli_opt(argc, argv, "out") ? ky_cli_opt(argc, argv, "out") : "demo_out",
                    ky_cli_opt(argc, argv, "device") ? ky_cli_opt(argc, argv, "device") : "auto",
                    (int)iters, 0, threads};
  if (access(o.sample, R_OK) != 0) {
    fprintf(stderr, "karyon demo: sample folder %s not found (run from the repository root, or pass --sample DIR)\n", o.sample);
    return 1;
  }
  printf("karyon demo: training on %s, holding out fold 0\n", o.sample);
  ky_train_hooks hooks = {on_step, on_epoch, on_info, NULL, 0};
  ky_demo_result r;
  ky_status s = ky_demo_run(&o, &hooks, &r);
  if (s != KY_OK) return ky_cli_fail("demo", s);
  printf("\nheld-out DSB score (%d images, %s %s, 8-way TTA, level-1 post-processing): %.4f\n", r.n_val, r.model, r.device, r.score);
  printf("the same network untrained:                                              %.4f\n", r.untrained_score);
  printf("wall time: %.0f s\n\n", r.seconds);
  printf("look at:\n  %s/predict/overlay/   instance contours over the held-out images\n"
         "  %s/train/curve.png     training loss (smoothed over raw), held-out loss and DSB score, best epoch\n"
         "  %s/predict/submission.csv, %s/predict/labels/, %s/predict/prob/\n", o.out, o.out, o.out, o.out, o.out);
  return 0;
}

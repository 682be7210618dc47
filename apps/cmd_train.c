/* `karyon train`: options from --config files and flags into pipeline/train.c, with a progress
 * line on a terminal and plain log lines otherwise. Tested by tests/test_pipeline_train.c (the
 * library) and tests/test_apps_cli.c (the command on the bundled sample). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "apps/cli.h"
#include "dist/dist.h"
#include "pipeline/train.h"

const char ky_cmd_train_summary[] = "train a U-Net / FPN on a DSB-layout folder (config file and/or flags)";

typedef struct { int tty, quiet; int64_t every; } progress_ctx;

static void on_step(void *ud, const ky_train_progress *p) {
  progress_ctx *pc = ud;
  if (pc->quiet) return;
  char eta[32];
  int e = (int)(p->eta_s + 0.5);
  snprintf(eta, sizeof eta, "%d:%02d:%02d", e / 3600, e / 60 % 60, e % 60);
  if (pc->tty) {
    fprintf(stderr, "\r[%lld/%lld] epoch %d  loss %.4f (ce %.3f dice %.3f/%.3f)  lr %.2e  %.1f img/s  eta %s   ",
            (long long)p->step, (long long)p->total, p->epoch, p->loss, p->parts[0], p->parts[1], p->parts[2], p->lr,
            p->img_per_s, eta);
    if (p->step == p->total) fputc('\n', stderr);
  } else if (p->step % pc->every == 0 || p->step == p->total) {
    printf("step %lld/%lld epoch %d loss %.5f ce %.4f dice_body %.4f dice_border %.4f lr %.3e img/s %.2f eta %s\n",
           (long long)p->step, (long long)p->total, p->epoch, p->loss, p->parts[0], p->parts[1], p->parts[2], p->lr,
           p->img_per_s, eta);
    fflush(stdout);
  }
}

static void on_epoch(void *ud, const ky_train_epoch *e) {
  progress_ctx *pc = ud;
  if (pc->tty && !pc->quiet) fputc('\n', stderr);
  printf("epoch %d (step %lld): train loss %.5f, val loss %.5f, val DSB score %.4f%s\n", e->epoch, (long long)e->step,
         e->train_loss, e->val_loss, e->val_score, e->best ? " (best)" : "");
  fflush(stdout);
}

static void on_info(void *ud, const char *line) {
  printf("%s\n", line);
  fflush(stdout);
}

int ky_cmd_train(int argc, char **argv) {
  if (ky_cli_wants_help(argc, argv)) {
    printf("usage: karyon train --data DIR [--config FILE] [--KEY VALUE ...] [--resume]\n"
           "  Trains a segmentation net; writes OUT/config.txt, last.safetensors, best.safetensors,\n"
           "  log.csv, epochs.csv and curve.png. --config files hold `key = value` lines; flags win.\n"
           "  --resume continues from OUT/last.safetensors exactly where it stopped.\n\n"
           "  Several processes (data parallel): mpirun -np N karyon train ... (or srun) trains one model on N\n"
           "  ranks, one device each (CPU, or GPU local_rank). --batch stays the GLOBAL batch: rank r takes the\n"
           "  crops [r*B/N, (r+1)*B/N) of every batch (when N does not divide B the first B %% N ranks take one\n"
           "  more, and each rank's loss counts for its share, so the step is the global batch's); gradients are\n"
           "  summed in buckets (bucket_mb) during the backward pass. Batch norm uses each rank's statistics\n"
           "  unless sync_bn = 1 (global-batch statistics, CPU or GPU ranks). Rank 0 alone writes OUT; every\n"
           "  rank reads it on --resume, with any N.\n\nkeys:\n");
    ky_train_config_help(stdout);
    return 0;
  }
  static const char *const extra[] = {"resume!", "help!", NULL};
  ky_dist dist;
  ky_status s = ky_dist_init(&dist, &argc, &argv);
  if (s != KY_OK) return ky_cli_fail("train", s);
  ky_train_config cfg;
  ky_train_config_default(&cfg);
  s = ky_train_config_args(&cfg, argc, argv, extra);
  ky_train_result res;
  memset(&res, 0, sizeof res);
  if (s == KY_OK) {
    progress_ctx pc = {isatty(2), cfg.quiet, 10};
    ky_train_hooks hooks = {on_step, on_epoch, on_info, &pc, 0};
    s = ky_train_run_dist(&cfg, ky_cli_flag(argc, argv, "resume"), &dist, &hooks, &res);
  }
  if (s != KY_OK) {
    /* One rank's failure ends every rank (no hang in a collective), after its message. */
    if (dist.size > 1) s = ky_error_context(s, "rank %d of %d: ", dist.rank, dist.size);
    ky_cli_fail("train", s);
    /* A NaN seen by every rank at the same step: each says so and leaves; any other failure may
     * be this rank's alone, so it ends the job. */
    if (res.stopped_together && ky_dist_barrier(&dist) == KY_OK) {
      ky_dist_finalize(&dist);
      return 1;
    }
    ky_dist_abort(&dist, 1);
    ky_dist_finalize(&dist);
    return 1;
  }
  if (dist.rank == 0)
    printf("done: %lld steps on %s%s; last loss %.5f; best val loss %.5f; outputs in %s\n", (long long)res.steps,
           res.device, dist.size > 1 ? " ranks" : "", res.last_loss, res.best_val_loss, cfg.out);
  ky_dist_finalize(&dist);
  return 0;
}

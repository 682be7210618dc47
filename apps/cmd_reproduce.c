/* `karyon reproduce`: the reference's whole procedure on a DSB training folder (pipeline/reproduce.h),
 * with a line per stage and per training epoch. Tested by tests/test_pipeline_reproduce.c (the
 * library, in miniature); bench/reproduce.sh is its front end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/cli.h"
#include "pipeline/reproduce.h"

const char ky_cmd_reproduce_summary[] = "the whole reference pipeline on a DSB training folder, every stage scored and timed";

static void usage(void) {
  printf("usage: karyon reproduce --data DSB_DIR --folds folds.csv --out DIR [options]\n"
         "  Trains one net per fold (hold_out rows of the CSV never train), makes out-of-fold maps\n"
         "  (TTA 1 and 8), trains the GBT candidate scorer nested by fold and on every OOF image,\n"
         "  predicts the hold-out images with the ensemble + TTA + GBT, and writes DIR/tables/summary.md.\n"
         "  A rerun skips the stages marked done in DIR/stages/ (a stopped training resumes).\n"
         "  --scale cpu|gpu|tiny   cpu: ResNet18 U-Net x0.25, crop 128, batch 8; gpu: the reference's\n"
         "                         ResNet34 U-Net + ResNet152 FPN, crop 256, batch 16, their schedules [cpu]\n"
         "  --folds-used K         train folds 0..K-1 (2..4) [4]\n"
         "  --iters N              steps per net (cpu default 1500; gpu: the reference's epochs)\n"
         "  --gbt-reps R           R x 3 boosters per GBT model [cpu 10, gpu 50]\n"
         "  --thr T                GBT selection threshold [0.3]\n"
         "  --max-images N         dry runs: at most N OOF images per fold and N hold-out images\n"
         "  --set 'KEY=VALUE[;...]' training config overrides; FAMILY:KEY=VALUE for one family\n"
         "  --seed S  --device cpu|cuda|auto  --force (redo stages already done)\n");
}

static void on_stage(void *ud, const char *stage, double sec, int skipped) {
  if (skipped) printf("stage %s: already done (%.0f s)\n", stage, sec);
  else printf("stage %s: done in %.0f s\n", stage, sec);
  fflush(stdout);
}

static void on_step(void *ud, const ky_train_progress *p) {
  if (p->step % 100 == 0 || p->step == p->total)
    printf("  step %lld/%lld loss %.4f lr %.2e %.1f img/s eta %.0f s\n", (long long)p->step, (long long)p->total, p->loss,
           p->lr, p->img_per_s, p->eta_s), fflush(stdout);
}

static void on_epoch(void *ud, const ky_train_epoch *e) {
  printf("  epoch %d (step %lld): train loss %.4f, val loss %.4f, val DSB %.4f%s\n", e->epoch, (long long)e->step,
         e->train_loss, e->val_loss, e->val_score, e->best ? " (best)" : "");
  fflush(stdout);
}

static void on_info(void *ud, const char *line) { printf("  %s\n", line); fflush(stdout); }

int ky_cmd_reproduce(int argc, char **argv) {
  if (ky_cli_wants_help(argc, argv)) { usage(); return 0; }
  static const char *const known[] = {"data", "folds", "out", "scale", "folds-used", "iters", "gbt-reps", "thr", "max-images",
                                      "set", "seed", "device", "force!", "help!", NULL};
  if (!ky_cli_check(argc, argv, "reproduce", known)) return 2;
  ky_repro_opts o;
  ky_repro_opts_default(&o);
  o.data = ky_cli_opt(argc, argv, "data");
  o.folds = ky_cli_opt(argc, argv, "folds");
  o.out = ky_cli_opt(argc, argv, "out");
  if (!o.data || !o.folds || !o.out) {
    fprintf(stderr, "karyon reproduce: --data, --folds and --out are required (karyon reproduce --help)\n");
    return 2;
  }
  if (ky_cli_opt(argc, argv, "scale")) o.scale = ky_cli_opt(argc, argv, "scale");
  if (ky_cli_opt(argc, argv, "folds-used")) o.n_folds = atoi(ky_cli_opt(argc, argv, "folds-used"));
  if (ky_cli_opt(argc, argv, "iters")) o.iters = atoi(ky_cli_opt(argc, argv, "iters"));
  if (ky_cli_opt(argc, argv, "gbt-reps")) o.gbt_reps = atoi(ky_cli_opt(argc, argv, "gbt-reps"));
  if (ky_cli_opt(argc, argv, "thr")) o.thr = atof(ky_cli_opt(argc, argv, "thr"));
  if (ky_cli_opt(argc, argv, "max-images")) o.max_images = atoi(ky_cli_opt(argc, argv, "max-images"));
  if (ky_cli_opt(argc, argv, "seed")) o.seed = strtoull(ky_cli_opt(argc, argv, "seed"), NULL, 10);
  if (ky_cli_opt(argc, argv, "device")) o.device = ky_cli_opt(argc, argv, "device");
  o.force = ky_cli_flag(argc, argv, "force");
  /* --set "a=1;b=2": semicolons, since values such as oversampling lists hold commas. */
  char *sets = ky_cli_opt(argc, argv, "set") ? strdup(ky_cli_opt(argc, argv, "set")) : NULL, *sv;
  const char *list[64];
  int n = 0;
  for (char *t = sets ? strtok_r(sets, ";", &sv) : NULL; t && n < 64; t = strtok_r(NULL, ";", &sv)) list[n++] = t;
  o.set = list;
  o.n_set = n;
  printf("karyon reproduce: scale %s, data %s, folds %s, out %s\n", o.scale, o.data, o.folds, o.out);
  ky_repro_hooks h = {on_stage, {on_step, on_epoch, on_info, NULL, 0}, NULL};
  ky_status s = ky_repro_run(&o, &h);
  free(sets);
  if (s != KY_OK) return ky_cli_fail("reproduce", s);
  printf("done: %s/tables/summary.md, per_image.csv, stages.csv\n", o.out);
  return 0;
}

/* The reference's whole procedure on a DSB training folder (`karyon reproduce`, bench/reproduce.sh):
 * one net per fold (by the folds CSV, hold-out rows kept out of every fold), out-of-fold maps with
 * TTA 1 and 8, the GBT candidate scorer nested by fold and on every OOF image, the four-fold
 * ensemble with TTA and GBT selection on the hold-out images (what `karyon predict` does on new
 * data), and tables of the DSB score per stage on the same images, with each stage's wall time.
 * Every stage is a call of its own and leaves a marker, so a rerun skips what is done.
 * Tested by tests/test_pipeline_reproduce.c (the whole chain in miniature on the bundled sample). */
#ifndef KY_PIPELINE_REPRODUCE_H
#define KY_PIPELINE_REPRODUCE_H

#include <stdint.h>
#include "pipeline/config.h"
#include "pipeline/train.h"

#define KY_REPRO_MAX_FAMILIES 4

/* One kind of net (e.g. the ResNet34 U-Net), trained once per fold. */
typedef struct {
  char name[32];          /* folder names: nets/<name>_fold<k> */
  float weight;           /* ensemble weight */
  ky_train_config cfg;    /* data, folds, fold and out are filled per fold */
} ky_repro_family;

typedef struct {
  const char *data;       /* DSB-layout training folder (stage1_train) */
  const char *folds;      /* folds CSV: img_id, fold 0..3, optional hold_out (those rows never train) */
  const char *out;        /* output folder (layout in docs/guide.md) */
  const char *scale;      /* cpu | gpu | tiny (the test's seconds-long nets) */
  int n_folds;            /* folds 0..n_folds-1 get a net each (4; the miniature uses 2) */
  int iters;              /* steps per net; 0: the scale's default */
  int gbt_reps;           /* reps x 3 boosters per GBT ensemble; 0: the scale's default */
  int max_images;         /* dry runs: at most this many OOF images per fold and hold-out images; 0: all */
  const char *device;     /* cpu | cuda | auto */
  uint64_t seed;          /* nets and GBT */
  double thr;             /* GBT selection threshold (reference 0.3) */
  const char *const *set; /* config overrides "KEY=VALUE" (every family) or "FAMILY:KEY=VALUE" */
  int n_set;
  int force;              /* redo stages that are marked done */
} ky_repro_opts;

void ky_repro_opts_default(ky_repro_opts *o);

typedef struct {
  ky_repro_opts o;
  int n_fam;
  ky_repro_family fam[KY_REPRO_MAX_FAMILIES];
  char train_csv[KY_CFG_STR];  /* OUT/plan/train_folds.csv: the folds CSV less its hold-out rows */
  int n_oof;                   /* OOF images that are scored: not hold-out, fold < n_folds, not always-in-train */
  char **oof_ids;              /* [n_oof] */
  int *oof_fold;               /* [n_oof] */
  int n_ho;                    /* hold-out images */
  char **ho_ids;               /* [n_ho] */
  int n_always;                /* always-in-train images (polosa, galaxy) left out of the OOF scoring */
} ky_repro_plan;

/* Reads the folds, applies the scale's settings and overrides, writes OUT/plan/ (train_folds.csv,
 * oof.csv, holdout.txt, families.txt). Errors name the file or option. */
ky_status ky_repro_plan_make(ky_repro_plan *p, const ky_repro_opts *o);
void ky_repro_plan_free(ky_repro_plan *p);

/* Stage 1: every family's net for `fold` in OUT/nets/<family>_fold<k>/ (karyon train's outputs);
 * continues from last.safetensors when an earlier run stopped part way. */
ky_status ky_repro_train_fold(const ky_repro_plan *p, int fold, const ky_train_hooks *hooks);
/* The checkpoint the later stages use for (family, fold): OUT/nets/<family>_fold<k>/last.safetensors. */
void ky_repro_ckpt_path(char *out, size_t n, const ky_repro_plan *p, int fam, int fold);
/* Stage 2: out-of-fold maps and level-1 labels of every fold's images by its own fold's nets,
 * TTA 1 and 8: OUT/oof/fold<k>_tta<t>/{prob,labels}. */
ky_status ky_repro_oof(const ky_repro_plan *p);
/* Stage 2b: each fold's nets on the hold-out images, TTA 1 and 8: OUT/holdout/fold<k>_tta<t>/. */
ky_status ky_repro_holdout(const ky_repro_plan *p);
/* Stage 3: the GBT scorer on the OOF TTA-8 maps. Nested: for each fold k, a model trained on the
 * other folds' images (OUT/gbt/nested_fold<k>.txt) selects the instances of fold k
 * (OUT/oof/fold<k>_tta8/gbt_labels/); OUT/gbt/nested.csv lists every (model, role, image).
 * Then the model on every OOF image (OUT/gbt/gbt.txt), applied to each fold's hold-out maps. */
ky_status ky_repro_gbt(const ky_repro_plan *p);
/* Stage 4: the ensemble of every net (all folds and families, TTA 8) with GBT selection on a folder
 * (only: NULL or the ids to predict), as `karyon predict` runs it: out/{prob,labels,overlay,
 * submission.csv}; also out/level1/ (the level-1 rule on the same maps). gbt NULL: OUT/gbt/gbt.txt. */
ky_status ky_repro_predict(const ky_repro_plan *p, const char *images, const char *out, const char *const *only,
                           int n_only, const char *gbt);
/* Stage 5: the DSB score of every labels folder on its images: OUT/tables/per_image.csv,
 * summary.md (the closing table, paired differences, stage times) and stages.csv. */
ky_status ky_repro_score(const ky_repro_plan *p);

typedef struct {
  void (*on_stage)(void *ud, const char *stage, double seconds, int skipped);
  ky_train_hooks train;
  void *ud;
} ky_repro_hooks;

/* Every stage in order; a stage whose marker OUT/stages/<stage>.done exists is skipped unless
 * force. The marker holds the stage's wall seconds. */
ky_status ky_repro_run(const ky_repro_opts *o, const ky_repro_hooks *hooks);

#endif

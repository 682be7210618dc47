/* Training checkpoints: weights + buffers (PyTorch layout, so the file also loads as a state_dict),
 * optimiser moments, step, epoch, RNG states and a config string, in one safetensors file written
 * atomically. Loading restores all of it exactly (CPU training resumes bitwise identically).
 * Tested by tests/test_models_checkpoint.c (3 + 3 steps == 6 steps, bad files). */
#ifndef KY_MODELS_CHECKPOINT_H
#define KY_MODELS_CHECKPOINT_H

#include <stdint.h>
#include "core/rng.h"
#include "models/model.h"
#include "optim/optim.h"

#define KY_CKPT_MAX_RNG 8

typedef struct {
  int64_t epoch;
  int n_rng;
  ky_rng rng[KY_CKPT_MAX_RNG];   /* the trainer's generators (sampler, augmentation, ...) */
  char *config;                  /* free text (the training config); malloc'ed on load */
} ky_ckpt_state;

/* o may be NULL (no optimiser state); st may be NULL (epoch 0, no RNG, no config). */
ky_status ky_checkpoint_save(const char *path, const ky_model *m, const ky_optim *o, const ky_ckpt_state *st);
/* The model must be the one described in the file (same name and config; else KY_ERR_FORMAT
 * naming both). o (may be NULL) gets its step and moment blocks back; its hyperparameters stay
 * the caller's. st (may be NULL) is overwritten with epoch, RNG states and config (free with ky_ckpt_state_free). */
ky_status ky_checkpoint_load(const char *path, ky_model *m, ky_optim *o, ky_ckpt_state *st);
void ky_ckpt_state_free(ky_ckpt_state *st);

#endif

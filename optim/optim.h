/* Optimisers over the flat parameter block (core/params.h): Adam / AMSGrad / AdamW and SGD with
 * momentum; learning-rate schedules; global-norm gradient clipping.
 * Tested by tests/test_optim.c and the PyTorch parity fixtures (three Adam steps). */
#ifndef KY_OPTIM_H
#define KY_OPTIM_H

#include <stdint.h>
#include "core/params.h"

typedef enum { KY_OPTIM_ADAM = 0, KY_OPTIM_SGD } ky_optim_kind;

typedef struct {
  ky_optim_kind kind;
  float lr;                      /* base learning rate */
  float beta1, beta2, eps;       /* Adam */
  float weight_decay;            /* Adam: decoupled (AdamW); SGD: L2 added to the gradient */
  int amsgrad;
  float momentum, dampening;     /* SGD */
  int nesterov;
  float keras_decay;             /* Keras-style per-step decay: lr_t = lr / (1 + d * t) */
  int64_t step;                  /* updates done so far */
  struct ky_pool *pool;          /* CPU threads for the update (NULL: the caller alone); same bits either way */
} ky_optim;

/* Adam defaults of PyTorch (lr 1e-3, betas .9/.999, eps 1e-8). */
ky_optim ky_optim_adam(float lr);
ky_optim ky_optim_sgd(float lr, float momentum);

/* Schedules: the lr for a given epoch / step, applied on top of the base lr. */
typedef enum {
  KY_SCHED_CONST = 0,
  KY_SCHED_EXP_EPOCH,    /* lr * gamma^epoch (PyTorch ExponentialLR stepped per epoch) */
  KY_SCHED_STEPS,        /* table of (until_epoch, lr): lr applies while epoch < until */
  KY_SCHED_INVERSE,      /* lr / (1 + decay * step) (Keras decay) */
} ky_sched_kind;

#define KY_SCHED_MAX_STEPS 16
typedef struct {
  ky_sched_kind kind;
  float gamma;                          /* EXP_EPOCH */
  float decay;                          /* INVERSE */
  int n_steps;
  int until[KY_SCHED_MAX_STEPS];        /* STEPS */
  float lr[KY_SCHED_MAX_STEPS];
} ky_schedule;

float ky_schedule_lr(const ky_schedule *s, float base_lr, int epoch, int64_t step);
/* Parses "const", "exp:0.85", "inverse:1e-4", "steps:5e-6@2,2e-4@10,1e-4@40". */
ky_status ky_schedule_parse(ky_schedule *s, const char *text);

/* One update of params [first, end) floats of the flat block (frozen prefixes are excluded by the
 * caller through `first`) with learning rate lr (schedule already applied). Allocates the moment
 * blocks on first use. Increments o->step. */
ky_status ky_optim_step(ky_optim *o, ky_params *ps, float lr, size_t first, size_t end);

/* Global-norm clipping over the gradient block: if ||g|| > max_norm, g *= max_norm/||g||.
 * *norm (may be NULL) receives ||g|| before clipping. Non-finite norm -> KY_ERR_NUMERIC. */
ky_status ky_clip_grad_norm(ky_params *ps, float max_norm, float *norm);
/* ||g|| without changing it. */
ky_status ky_grad_norm(ky_params *ps, float *norm);

#endif

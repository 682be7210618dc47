/* Optimiser steps over the flat parameter block, learning-rate schedules, gradient clipping.
 * Tested by tests/test_optim.c and the Adam parity fixtures (tests/test_parity_ops.c). */
#include "optim/optim.h"
#include "ops/kernels.h"
#ifdef KY_HAVE_CUDA
#include "cuda/cuda.h"
#include "cuda/kernels.h"
#endif

#include <math.h>
#include <stdlib.h>
#include <string.h>

ky_optim ky_optim_adam(float lr) {
  ky_optim o;
  memset(&o, 0, sizeof o);
  o.kind = KY_OPTIM_ADAM;
  o.lr = lr;
  o.beta1 = 0.9f;
  o.beta2 = 0.999f;
  o.eps = 1e-8f;
  return o;
}

ky_optim ky_optim_sgd(float lr, float momentum) {
  ky_optim o;
  memset(&o, 0, sizeof o);
  o.kind = KY_OPTIM_SGD;
  o.lr = lr;
  o.momentum = momentum;
  return o;
}

float ky_schedule_lr(const ky_schedule *s, float base_lr, int epoch, int64_t step) {
  if (!s) return base_lr;
  switch (s->kind) {
    case KY_SCHED_CONST: return base_lr;
    case KY_SCHED_EXP_EPOCH: return base_lr * powf(s->gamma, (float)epoch);
    case KY_SCHED_INVERSE: return base_lr / (1.0f + s->decay * (float)step);
    case KY_SCHED_STEPS:
      for (int i = 0; i < s->n_steps; i++) if (epoch < s->until[i]) return s->lr[i];
      return s->n_steps ? s->lr[s->n_steps - 1] : base_lr;
  }
  return base_lr;
}

ky_status ky_schedule_parse(ky_schedule *s, const char *text) {
  KY_CHECK(s && text, KY_ERR_ARG, "schedule: NULL argument");
  memset(s, 0, sizeof *s);
  char *end;
  if (!strcmp(text, "const") || !*text) { s->kind = KY_SCHED_CONST; return KY_OK; }
  if (!strncmp(text, "exp:", 4)) {
    s->kind = KY_SCHED_EXP_EPOCH;
    s->gamma = strtof(text + 4, &end);
    KY_CHECK(end != text + 4 && !*end && s->gamma > 0 && s->gamma <= 1, KY_ERR_ARG,
             "schedule '%s': expected exp:GAMMA with 0 < GAMMA <= 1", text);
    return KY_OK;
  }
  if (!strncmp(text, "inverse:", 8)) {
    s->kind = KY_SCHED_INVERSE;
    s->decay = strtof(text + 8, &end);
    KY_CHECK(end != text + 8 && !*end && s->decay >= 0, KY_ERR_ARG, "schedule '%s': expected inverse:DECAY >= 0", text);
    return KY_OK;
  }
  if (!strncmp(text, "steps:", 6)) {
    s->kind = KY_SCHED_STEPS;
    const char *p = text + 6;
    while (*p) {
      KY_CHECK(s->n_steps < KY_SCHED_MAX_STEPS, KY_ERR_ARG, "schedule '%s': more than %d steps", text, KY_SCHED_MAX_STEPS);
      float lr = strtof(p, &end);
      KY_CHECK(end != p && *end == '@' && lr >= 0, KY_ERR_ARG, "schedule '%s': expected LR@UNTIL_EPOCH items", text);
      p = end + 1;
      long until = strtol(p, &end, 10);
      KY_CHECK(end != p && (*end == ',' || !*end) && until > 0, KY_ERR_ARG, "schedule '%s': bad epoch bound", text);
      KY_CHECK(s->n_steps == 0 || until > s->until[s->n_steps - 1], KY_ERR_ARG,
               "schedule '%s': epoch bounds must increase", text);
      s->lr[s->n_steps] = lr;
      s->until[s->n_steps++] = (int)until;
      p = *end ? end + 1 : end;
    }
    KY_CHECK(s->n_steps > 0, KY_ERR_ARG, "schedule '%s': no steps", text);
    return KY_OK;
  }
  return ky_error(KY_ERR_ARG, "schedule '%s': expected const, exp:G, inverse:D or steps:LR@E,...", text);
}

ky_status ky_optim_step(ky_optim *o, ky_params *ps, float lr, size_t first, size_t end) {
  KY_CHECK(o && ps, KY_ERR_ARG, "optim_step: NULL argument");
  KY_CHECK(ps->trainable && ps->data && ps->grad, KY_ERR_STATE, "optim_step: parameters not allocated");
  KY_CHECK(first <= end && end <= ps->total, KY_ERR_ARG, "optim_step: range [%zu, %zu) outside the %zu-float block",
           first, end, ps->total);
  KY_CHECK(isfinite(lr) && lr >= 0, KY_ERR_ARG, "optim_step: learning rate %g", lr);
  o->step++;
  float lr_t = o->keras_decay > 0 ? lr / (1.0f + o->keras_decay * (float)(o->step - 1)) : lr;
  size_t n = end - first;
  if (o->kind == KY_OPTIM_ADAM) {
    KY_TRY(ky_params_alloc_moments(ps, o->amsgrad));
    ky_adam_args a = {lr_t, o->beta1, o->beta2, o->eps, o->weight_decay, o->amsgrad, o->step};
    float *vmax = o->amsgrad ? ps->vmax + first : NULL;
#ifdef KY_HAVE_CUDA
    if (ps->dev == KY_DEV_CUDA)
      return ky_cuda_adam(ps->cu, ps->data + first, ps->m + first, ps->v + first, vmax, ps->grad + first, n, &a);
#endif
    ky_cpu_adam(o->pool, ps->data + first, ps->m + first, ps->v + first, vmax, ps->grad + first, n, &a);
    return KY_OK;
  }
  /* SGD keeps its momentum buffer in m. */
  if (!ps->m) KY_TRY(ky_params_alloc_moments(ps, 0));
  ky_sgd_args a = {lr_t, o->momentum, o->dampening, o->weight_decay, o->nesterov, o->step};
#ifdef KY_HAVE_CUDA
  if (ps->dev == KY_DEV_CUDA) return ky_cuda_sgd(ps->cu, ps->data + first, ps->m + first, ps->grad + first, n, &a);
#endif
  ky_cpu_sgd(o->pool, ps->data + first, ps->m + first, ps->grad + first, n, &a);
  return KY_OK;
}

ky_status ky_grad_norm(ky_params *ps, float *norm) {
  KY_CHECK(ps && ps->grad && norm, KY_ERR_STATE, "grad_norm: no gradient block");
  double ss;
#ifdef KY_HAVE_CUDA
  if (ps->dev == KY_DEV_CUDA) {
    double *d;
    KY_TRY(ky_cuda_workspace(ps->cu, (void **)&d, sizeof(double)));
    KY_TRY(ky_cuda_sumsq(ps->cu, d, ps->grad, ps->total));
    KY_TRY(ky_cuda_d2h(ps->cu, &ss, d, sizeof ss));
  } else
#endif
    ss = ky_cpu_sumsq(ps->grad, ps->total);
  *norm = (float)sqrt(ss);
  return KY_OK;
}

ky_status ky_clip_grad_norm(ky_params *ps, float max_norm, float *norm) {
  KY_CHECK(max_norm > 0, KY_ERR_ARG, "clip_grad_norm: max_norm %g must be > 0", max_norm);
  float g = 0.f;   /* set by ky_grad_norm on success; the initialiser quiets gcc -O3's maybe-uninitialized */
  KY_TRY(ky_grad_norm(ps, &g));
  if (norm) *norm = g;
  KY_CHECK(isfinite(g), KY_ERR_NUMERIC, "clip_grad_norm: gradient norm is %g (a NaN or Inf gradient)", g);
  if (g <= max_norm) return KY_OK;
  /* Same factor as PyTorch's clip_grad_norm_: max_norm / (norm + 1e-6). */
  float f = max_norm / (g + 1e-6f);
#ifdef KY_HAVE_CUDA
  if (ps->dev == KY_DEV_CUDA) return ky_cuda_scale_fwd(ps->cu, ps->grad, ps->grad, f, ps->total);
#endif
  ky_cpu_scale_fwd(NULL, ps->grad, ps->grad, f, ps->total);
  return KY_OK;
}

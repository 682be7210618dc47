/* Public CUDA convolution entry points (cuda/kernels.h): argument checks, algorithm choice, and
 * the KY_CONV_ALGO_AUTO chooser. Tested by tests/test_cuda_conv.c.
 *
 * AUTO in a deterministic context (the default; `karyon train --deterministic 1`) takes the fixed
 * rule of ops/conv_choice.c and never times anything, so every process on the same card and build
 * runs the same kernels. With deterministic off, AUTO works like cuDNN's benchmark mode: the first
 * call for a (direction, shape, tf32 flag, device) key times every candidate (each implicit-GEMM tile shape, the TF32 kernels when the
 * tf32 flag is on and the card has them, and im2col + cuBLAS) once after one warm-up run, with
 * events on the context's stream, and remembers the fastest. Backward candidates run into a
 * scratch buffer so the caller's gradients are accumulated exactly once.
 *
 * The cache belongs to the context (cu->conv_cache, calloc'ed on first use, freed by ky_cuda_free), so
 * the convolution code keeps no process-wide state; like the context's stream, it is used by one
 * thread at a time. TF32 candidates are only cached under a tf32 = 1 key. */
#include <stdlib.h>
#include <string.h>

#include "cuda/conv2d_tiles.cuh"
#include "ops/conv_choice.h"

namespace {

struct conv_key {
  int dir, tf32;
  int n, h, w, c, k, kh, kw, stride, pad, dil;
};

struct conv_choice {
  int algo;  /* ky_conv_algo, never AUTO */
  int cfg;   /* tile config for the implicit-GEMM algorithms; -1 = heuristic */
};

constexpr int CACHE_SLOTS = 512;
struct conv_cache_entry {
  int used;
  conv_key key;
  conv_choice choice;
};

}  // namespace

/* Outside the anonymous namespace: check.cuh names it in struct ky_cuda. */
struct ky_conv_cache {
  conv_cache_entry e[CACHE_SLOTS];
  int next;  /* round-robin replacement once the table is full */
};

namespace {

conv_key make_key(const ky_cuda *cu, int dir, const ky_conv_shape *s) {
  conv_key k;
  memset(&k, 0, sizeof k);  /* padding bytes too: keys are compared with memcmp */
  k.dir = dir; k.tf32 = cu->tf32;
  k.n = s->n; k.h = s->h; k.w = s->w; k.c = s->c; k.k = s->k; k.kh = s->kh; k.kw = s->kw;
  k.stride = s->stride; k.pad = s->pad; k.dil = s->dil;
  return k;
}

bool cache_get(const ky_cuda *cu, const conv_key &k, conv_choice *out) {
  const ky_conv_cache *c = cu->conv_cache;
  if (!c) return false;
  for (int i = 0; i < CACHE_SLOTS; ++i)
    if (c->e[i].used && memcmp(&c->e[i].key, &k, sizeof k) == 0) {
      *out = c->e[i].choice;
      return true;
    }
  return false;
}

/* Remembers a choice; without memory for the table the choice is simply timed again next call. */
void cache_put(ky_cuda *cu, const conv_key &k, conv_choice ch) {
  if (!cu->conv_cache) cu->conv_cache = (ky_conv_cache *)calloc(1, sizeof(ky_conv_cache));
  ky_conv_cache *c = cu->conv_cache;
  if (!c) return;
  int slot = -1;
  for (int i = 0; i < CACHE_SLOTS && slot < 0; ++i)
    if (!c->e[i].used || memcmp(&c->e[i].key, &k, sizeof k) == 0) slot = i;
  if (slot < 0) {
    slot = c->next;
    c->next = (c->next + 1) % CACHE_SLOTS;
  }
  c->e[slot].used = 1;
  c->e[slot].key = k;
  c->e[slot].choice = ch;
}

ky_status run_choice(ky_cuda *cu, conv_choice ch, int dir, float *out, const float *a, const float *b,
                     const float *bias, float *db, const ky_conv_shape *s, int relu) {
  switch (ch.algo) {
    case KY_CONV_ALGO_IMPLICIT_GEMM: return ky_conv_igemm_run(cu, dir, out, a, b, bias, db, s, relu, ch.cfg);
    case KY_CONV_ALGO_IMPLICIT_TF32: return ky_conv_tf32_run(cu, dir, out, a, b, bias, db, s, relu, ch.cfg);
    default: return ky_conv_im2col_run(cu, dir, out, a, b, bias, db, s, relu);
  }
}

ky_status time_choice(ky_cuda *cu, conv_choice ch, int dir, float *out, const float *a, const float *b,
                      const float *bias, float *db, const ky_conv_shape *s, int relu, float *ms) {
  KY_TRY(run_choice(cu, ch, dir, out, a, b, bias, db, s, relu));  /* warm-up: module load, cuBLAS heuristics */
  ky_cuda_timer *t = NULL;
  KY_TRY(ky_cuda_timer_start(cu, &t));
  ky_status st = run_choice(cu, ch, dir, out, a, b, bias, db, s, relu);
  float v = 0.f;
  ky_status st2 = ky_cuda_timer_stop(cu, t, &v);
  KY_TRY(st);
  KY_TRY(st2);
  *ms = v;
  return KY_OK;
}

/* Output element counts: the tensor a direction writes, and db for wgrad. */
size_t out_floats(int dir, const ky_conv_shape *s) {
  if (dir == KY_CONV_DIR_FWD) return (size_t)s->n * s->oh * s->ow * s->k;
  if (dir == KY_CONV_DIR_DGRAD) return (size_t)s->n * s->h * s->w * s->c;
  return (size_t)s->k * s->kh * s->kw * s->c;
}

ky_status choose(ky_cuda *cu, int dir, float *out, const float *a, const float *b, const float *bias, float *db,
                 const ky_conv_shape *s, int relu, conv_choice *best) {
  const ky_conv_choice fixed = ky_conv_auto_choice(dir, s, cu->sm, cu->tf32, cu->deterministic);
  if (fixed.algo != KY_CONV_ALGO_AUTO) {
    *best = conv_choice{(int)fixed.algo, fixed.cfg};
    return KY_OK;
  }
  const conv_key key = make_key(cu, dir, s);
  if (cache_get(cu, key, best)) return KY_OK;

  conv_choice cands[KY_IGEMM_SIMT_NCFG + KY_IGEMM_NCFG + 1];
  int nc = 0;
  for (int c = 0; c < KY_IGEMM_SIMT_NCFG; ++c) cands[nc++] = conv_choice{KY_CONV_ALGO_IMPLICIT_GEMM, c};
  if (cu->tf32 && cu->sm >= 80)
    for (int c = 0; c < KY_IGEMM_NCFG; ++c) cands[nc++] = conv_choice{KY_CONV_ALGO_IMPLICIT_TF32, c};
  cands[nc++] = conv_choice{KY_CONV_ALGO_IM2COL_GEMM, -1};

  /* Backward directions accumulate: time them on scratch copies, not the caller's buffers. */
  float *scratch = NULL;
  size_t nout = out_floats(dir, s), nextra = (dir == KY_CONV_DIR_WGRAD && db) ? (size_t)s->k : 0;
  if (dir != KY_CONV_DIR_FWD) {
    KY_TRY(ky_cuda_malloc(cu, (void **)&scratch, (nout + nextra) * sizeof(float)));
    ky_status st = ky_cuda_memset(cu, scratch, 0, (nout + nextra) * sizeof(float));
    if (st != KY_OK) {
      ky_cuda_release(cu, scratch);
      return st;
    }
  }
  float *tout = scratch ? scratch : out;
  float *tdb = (scratch && nextra) ? scratch + nout : NULL;

  float best_ms = 0.f;
  int found = 0;
  for (int i = 0; i < nc; ++i) {
    float ms = 0.f;
    /* A candidate that cannot run (e.g. its workspace does not fit) is skipped. */
    if (time_choice(cu, cands[i], dir, tout, a, b, bias, tdb, s, relu, &ms) != KY_OK) continue;
    if (!found || ms < best_ms) {
      best_ms = ms;
      *best = cands[i];
      found = 1;
    }
  }
  if (scratch) ky_cuda_release(cu, scratch);
  if (!found)
    return ky_error_context(KY_ERR_CUDA, "conv2d (auto): no algorithm could run this shape: ");
  ky_error_clear();
  cache_put(cu, key, *best);
  return KY_OK;
}

bool fits_int(long long a, long long b, long long c, long long d) {
  const long long lim = 0x7fffffffLL;
  if (a <= 0 || b <= 0 || c <= 0 || d <= 0) return false;
  if (a > lim / b) return false;
  a *= b;
  if (a > lim / c) return false;
  a *= c;
  return a <= lim / d;
}

ky_status check_shape(const ky_conv_shape *s, const char *fn) {
  KY_CHECK(s != NULL, KY_ERR_ARG, "%s: shape is NULL", fn);
  KY_CHECK(s->n > 0 && s->h > 0 && s->w > 0 && s->c > 0 && s->k > 0 && s->kh > 0 && s->kw > 0, KY_ERR_SHAPE,
           "%s: sizes must be positive, got x [%d, %d, %d, %d], w [%d, %d, %d, %d]", fn, s->n, s->h, s->w, s->c,
           s->k, s->kh, s->kw, s->c);
  KY_CHECK(s->stride > 0 && s->pad >= 0 && s->dil > 0, KY_ERR_SHAPE,
           "%s: stride %d, pad %d, dilation %d (expected stride >= 1, pad >= 0, dilation >= 1)", fn, s->stride,
           s->pad, s->dil);
  const long long eh = (long long)s->h + 2LL * s->pad - (long long)s->dil * (s->kh - 1) - 1;
  const long long ew = (long long)s->w + 2LL * s->pad - (long long)s->dil * (s->kw - 1) - 1;
  KY_CHECK(eh >= 0 && ew >= 0, KY_ERR_SHAPE, "%s: %dx%d kernel (dilation %d, pad %d) does not fit a %dx%d input",
           fn, s->kh, s->kw, s->dil, s->pad, s->h, s->w);
  const int oh = (int)(eh / s->stride + 1), ow = (int)(ew / s->stride + 1);
  KY_CHECK(s->oh == oh && s->ow == ow, KY_ERR_SHAPE,
           "%s: output size in the shape is %dx%d, expected %dx%d for input %dx%d, kernel %dx%d, stride %d, pad %d, "
           "dilation %d",
           fn, s->oh, s->ow, oh, ow, s->h, s->w, s->kh, s->kw, s->stride, s->pad, s->dil);
  KY_CHECK(fits_int(s->n, s->h, s->w, s->c) && fits_int(s->n, s->oh, s->ow, s->k) &&
               fits_int(s->k, s->kh, s->kw, s->c),
           KY_ERR_SHAPE, "%s: tensor too large for 32-bit indexing (x [%d, %d, %d, %d], y [%d, %d, %d, %d])", fn,
           s->n, s->h, s->w, s->c, s->n, s->oh, s->ow, s->k);
  return KY_OK;
}

ky_status dispatch(ky_cuda *cu, int dir, float *out, const float *a, const float *b, const float *bias, float *db,
                   const ky_conv_shape *s, int relu, ky_conv_algo algo, const char *fn) {
  KY_CHECK(algo >= KY_CONV_ALGO_AUTO && algo <= KY_CONV_ALGO_IM2COL_GEMM, KY_ERR_ARG,
           "%s: unknown algorithm %d (expected 0..%d)", fn, (int)algo, (int)KY_CONV_ALGO_IM2COL_GEMM);
  KY_CUDA_CHECK(cudaSetDevice(cu->device));
  conv_choice ch{(int)algo, -1};
  if (algo == KY_CONV_ALGO_AUTO) KY_TRY(choose(cu, dir, out, a, b, bias, db, s, relu, &ch));
  ky_status st = run_choice(cu, ch, dir, out, a, b, bias, db, s, relu);
  if (st != KY_OK) return ky_error_context(st, "%s: ", fn);
  return KY_OK;
}

}  // namespace

extern "C" ky_status ky_cuda_conv2d_fwd(ky_cuda *cu, float *y, const float *x, const float *w, const float *b,
                                        const ky_conv_shape *s, int relu, ky_conv_algo algo) {
  KY_CUDA_CHECK_CTX(cu);
  KY_CHECK_NULL(y, "y");
  KY_CHECK_NULL(x, "x");
  KY_CHECK_NULL(w, "w");
  KY_TRY(check_shape(s, __func__));
  return dispatch(cu, KY_CONV_DIR_FWD, y, x, w, b, NULL, s, relu != 0, algo, __func__);
}

extern "C" ky_status ky_cuda_conv2d_dgrad(ky_cuda *cu, float *dx, const float *dy, const float *w,
                                          const ky_conv_shape *s, ky_conv_algo algo) {
  KY_CUDA_CHECK_CTX(cu);
  KY_CHECK_NULL(dx, "dx");
  KY_CHECK_NULL(dy, "dy");
  KY_CHECK_NULL(w, "w");
  KY_TRY(check_shape(s, __func__));
  return dispatch(cu, KY_CONV_DIR_DGRAD, dx, dy, w, NULL, NULL, s, 0, algo, __func__);
}

extern "C" ky_status ky_cuda_conv2d_wgrad(ky_cuda *cu, float *dw, float *db, const float *dy, const float *x,
                                          const ky_conv_shape *s, ky_conv_algo algo) {
  KY_CUDA_CHECK_CTX(cu);
  KY_CHECK_NULL(dw, "dw");
  KY_CHECK_NULL(dy, "dy");
  KY_CHECK_NULL(x, "x");
  KY_TRY(check_shape(s, __func__));
  return dispatch(cu, KY_CONV_DIR_WGRAD, dw, dy, x, NULL, db, s, 0, algo, __func__);
}

// Host mock of the CUDA context (device memory = host memory) and of the three conv algorithms
// (replayed kernels), so that tests/test_cuda_conv.c runs end to end without a GPU, through the
// real cuda/conv2d.cu dispatch. Built and run by tests/cuda_emu/run.sh.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/cuda_emu/emu_kernel.h"

extern "C" {
int ky_cuda_device_count(char *why, size_t why_len) { if (why && why_len) why[0] = 0; return 1; }
ky_status ky_cuda_init(ky_cuda **out, int device) {
  ky_cuda *cu = (ky_cuda *)calloc(1, sizeof *cu);
  cu->sm = 90; cu->num_sms = 132; cu->device = device;
  snprintf(cu->name, sizeof cu->name, "host mock");
  *out = cu; return KY_OK;
}
void ky_cuda_free(ky_cuda *cu) { if (cu) { free(cu->conv_cache); free(cu->ws); free(cu); } }
void ky_cuda_set_tf32(ky_cuda *cu, int on) { cu->tf32 = on && cu->sm >= 80; }
int ky_cuda_tf32(const ky_cuda *cu) { return cu->tf32; }
void ky_cuda_set_deterministic(ky_cuda *, int) {}
ky_status ky_cuda_malloc(ky_cuda *, void **p, size_t bytes) {
  *p = aligned_alloc(256, (bytes + 255) / 256 * 256);
  memset(*p, 0xff, (bytes + 255) / 256 * 256);  // NaN garbage
  return KY_OK;
}
void ky_cuda_release(ky_cuda *, void *p) { free(p); }
ky_status ky_cuda_h2d(ky_cuda *, void *d, const void *s, size_t b) { memcpy(d, s, b); return KY_OK; }
ky_status ky_cuda_d2h(ky_cuda *, void *d, const void *s, size_t b) { memcpy(d, s, b); return KY_OK; }
ky_status ky_cuda_d2d(ky_cuda *, void *d, const void *s, size_t b) { memcpy(d, s, b); return KY_OK; }
ky_status ky_cuda_memset(ky_cuda *, void *d, int v, size_t b) { memset(d, v, b); return KY_OK; }
ky_status ky_cuda_sync(ky_cuda *) { return KY_OK; }
ky_status ky_cuda_workspace(ky_cuda *cu, void **p, size_t bytes) {
  if (!cu->ws || cu->ws_bytes < bytes) {
    free(cu->ws);
    cu->ws = aligned_alloc(256, (bytes + 255) / 256 * 256);
    cu->ws_bytes = (bytes + 255) / 256 * 256;
  }
  memset(cu->ws, 0xff, cu->ws_bytes);
  *p = cu->ws; return KY_OK;
}
struct ky_cuda_timer { int x; };
ky_status ky_cuda_timer_start(ky_cuda *, ky_cuda_timer **t) { *t = (ky_cuda_timer *)malloc(sizeof **t); return KY_OK; }
ky_status ky_cuda_timer_stop(ky_cuda *, ky_cuda_timer *t, float *ms) { free(t); *ms = 1.f; return KY_OK; }
ky_status ky_cuda_device_name(ky_cuda *cu, char *name, size_t len, int *sm) {
  if (name) snprintf(name, len, "%s", cu->name); if (sm) *sm = cu->sm; return KY_OK;
}
}
ky_status ky_cuda_launch_check_(ky_cuda *, const char *, const char *, int) { return KY_OK; }
extern "C" cudaError_t mock_cudaSetDevice(int) { return cudaSuccess; }

static ky_status emu_run(bool tc, ky_cuda *cu, int dir, float *out, const float *a, const float *b, const float *bias,
                         float *db, const ky_conv_shape *s, int relu, int cfg) {
  if (tc && cu->sm < 80) return ky_error(KY_ERR_CUDA, "tf32 needs sm80");
  ky_conv_gemm g;
  ky_conv_gemm_setup(&g, dir, out, a, b, bias, s, relu);
  static int rot = 0;
  if (cfg < 0 || cfg >= 4) cfg = (rot++) % 4;
  const int tm[4] = {128, 128, 64, 64}, tn[4] = {128, 64, 128, 64};
  const long long blocks = (long long)((g.M + tm[cfg] - 1) / tm[cfg]) * ((g.N + tn[cfg] - 1) / tn[cfg]);
  int splits = 1;
  g.rchunk = ky_conv_plan_splits(cu, blocks, g.R, tc ? 16 : 8, tc ? 8 : 16, &splits);
  bool vec = ky_cuda_aligned16(a) && ky_cuda_aligned16(b) && s->c % 4 == 0;
  if (dir != KY_CONV_DIR_FWD) vec = vec && s->k % 4 == 0;
  std::vector<float> part;
  if (splits > 1) {
    part.assign((size_t)splits * g.M * g.N, NAN);
    g.part = part.data(); g.epi = KY_CONV_EPI_PART; g.vec_out = g.N % 4 == 0;
  }
  if (dir == 0) { if (tc) emu_cfg<0, true>(cfg, g, splits, vec); else emu_cfg<0, false>(cfg, g, splits, vec); }
  if (dir == 1) { if (tc) emu_cfg<1, true>(cfg, g, splits, vec); else emu_cfg<1, false>(cfg, g, splits, vec); }
  if (dir == 2) { if (tc) emu_cfg<2, true>(cfg, g, splits, vec); else emu_cfg<2, false>(cfg, g, splits, vec); }
  if (splits > 1) {
    const size_t mn = (size_t)g.M * g.N;
    for (size_t i = 0; i < mn; ++i) {
      float sum = 0; for (int z = 0; z < splits; ++z) sum += part[z * mn + i];
      if (dir != 0) out[i] += sum;
      else { if (bias) sum += bias[i % g.N]; if (relu) sum = fmaxf(sum, 0.f); out[i] = sum; }
    }
  }
  if (db) {
    const int npix = s->n * s->oh * s->ow;
    for (int k = 0; k < s->k; ++k) { float t = 0; for (int p = 0; p < npix; ++p) t += a[(size_t)p * s->k + k]; db[k] += t; }
  }
  return KY_OK;
}
ky_status ky_conv_igemm_run(ky_cuda *cu, int dir, float *out, const float *a, const float *b, const float *bias,
                            float *db, const ky_conv_shape *s, int relu, int cfg) {
  return emu_run(false, cu, dir, out, a, b, bias, db, s, relu, cfg);
}
ky_status ky_conv_tf32_run(ky_cuda *cu, int dir, float *out, const float *a, const float *b, const float *bias,
                           float *db, const ky_conv_shape *s, int relu, int cfg) {
  return emu_run(true, cu, dir, out, a, b, bias, db, s, relu, cfg);
}
ky_status ky_conv_im2col_run(ky_cuda *cu, int dir, float *out, const float *a, const float *b, const float *bias,
                             float *db, const ky_conv_shape *s, int relu) {
  return emu_run(false, cu, dir, out, a, b, bias, db, s, relu, 3);
}

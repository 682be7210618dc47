// Sweep of the replayed conv kernels (tests/cuda_emu/emu_kernel.h) over odd shapes, every tile
// configuration, vector/scalar loads and split-K, against an fp64 direct convolution.
// Built and run by tests/cuda_emu/run.sh; exits non-zero on any mismatch.
#include <stdio.h>
#include <stdlib.h>
#include <random>

#include "tests/cuda_emu/emu_kernel.h"

static std::mt19937 rng(42);
static float urand() { return std::uniform_real_distribution<float>(-1.f, 1.f)(rng); }

struct Case { const char *name; int n, h, w, c, k, kh, kw, stride, pad, dil; };

static double ref_out(int dir, const ky_conv_shape &s, const float *x, const float *w, const float *dy, size_t e) {
  double v = 0;
  if (dir == 0) {
    int k = e % s.k; size_t p = e / s.k; int ox = p % s.ow; p /= s.ow; int oy = p % s.oh; int n = p / s.oh;
    for (int ky = 0; ky < s.kh; ++ky) for (int kx = 0; kx < s.kw; ++kx) {
      int ih = oy * s.stride - s.pad + ky * s.dil, iw = ox * s.stride - s.pad + kx * s.dil;
      if (ih < 0 || ih >= s.h || iw < 0 || iw >= s.w) continue;
      for (int c = 0; c < s.c; ++c) v += (double)x[(((size_t)n * s.h + ih) * s.w + iw) * s.c + c] * w[(((size_t)k * s.kh + ky) * s.kw + kx) * s.c + c];
    }
  } else if (dir == 1) {
    int c = e % s.c; size_t p = e / s.c; int ix = p % s.w; p /= s.w; int iy = p % s.h; int n = p / s.h;
    for (int oy = 0; oy < s.oh; ++oy) for (int ox = 0; ox < s.ow; ++ox) for (int ky = 0; ky < s.kh; ++ky) for (int kx = 0; kx < s.kw; ++kx) {
      if (oy * s.stride - s.pad + ky * s.dil != iy || ox * s.stride - s.pad + kx * s.dil != ix) continue;
      for (int k = 0; k < s.k; ++k) v += (double)dy[(((size_t)n * s.oh + oy) * s.ow + ox) * s.k + k] * w[(((size_t)k * s.kh + ky) * s.kw + kx) * s.c + c];
    }
  } else {
    int c = e % s.c; size_t p = e / s.c; int kx = p % s.kw; p /= s.kw; int ky = p % s.kh; int k = p / s.kh;
    for (int n = 0; n < s.n; ++n) for (int oy = 0; oy < s.oh; ++oy) for (int ox = 0; ox < s.ow; ++ox) {
      int ih = oy * s.stride - s.pad + ky * s.dil, iw = ox * s.stride - s.pad + kx * s.dil;
      if (ih < 0 || ih >= s.h || iw < 0 || iw >= s.w) continue;
      v += (double)dy[(((size_t)n * s.oh + oy) * s.ow + ox) * s.k + k] * x[(((size_t)n * s.h + ih) * s.w + iw) * s.c + c];
    }
  }
  return v;
}

int main() {
  ky_cuda fake; memset(&fake, 0, sizeof fake); fake.num_sms = 132; fake.sm = 90;
  const Case cases[] = {
      {"b1_hw_c5k7", 1, 9, 13, 5, 7, 3, 3, 1, 1, 1},   {"c3k67_s2_odd", 2, 15, 11, 3, 67, 3, 3, 2, 1, 1},
      {"c67k5_dil2", 1, 12, 10, 67, 5, 3, 3, 1, 2, 2}, {"1x1_c67k130", 2, 7, 9, 67, 130, 1, 1, 1, 0, 1},
      {"1x1_s2_down", 2, 8, 8, 64, 128, 1, 1, 2, 0, 1}, {"stem_small", 1, 21, 19, 3, 64, 7, 7, 2, 3, 1},
      {"5x5_s3_odd", 2, 17, 14, 8, 12, 5, 5, 3, 1, 1}, {"3x3_s2_dil2", 1, 19, 21, 12, 20, 3, 3, 2, 2, 2},
      {"small_m", 1, 4, 4, 64, 136, 3, 3, 1, 1, 1},     {"enc_like", 2, 12, 12, 32, 64, 3, 3, 1, 1, 1},
      {"1x1_c4k4", 3, 5, 6, 4, 4, 1, 1, 1, 0, 1},      {"vec_s2", 1, 13, 11, 8, 16, 3, 3, 2, 1, 1},
  };
  int fails = 0, runs = 0;
  for (const Case &cc : cases) {
    ky_conv_shape s = {cc.n, cc.h, cc.w, cc.c, cc.k, cc.kh, cc.kw, cc.stride, cc.pad, cc.dil, 0, 0};
    s.oh = (s.h + 2 * s.pad - s.dil * (s.kh - 1) - 1) / s.stride + 1;
    s.ow = (s.w + 2 * s.pad - s.dil * (s.kw - 1) - 1) / s.stride + 1;
    const size_t nx = (size_t)s.n * s.h * s.w * s.c, ny = (size_t)s.n * s.oh * s.ow * s.k, nw = (size_t)s.k * s.kh * s.kw * s.c;
    std::vector<float> x(nx + 8), w(nw + 8), dy(ny + 8), bias(s.k);
    for (auto &v : x) v = urand(); for (auto &v : w) v = urand(); for (auto &v : dy) v = urand(); for (auto &v : bias) v = urand();
    for (int dir = 0; dir < 3; ++dir) {
      const size_t nout = dir == 0 ? ny : dir == 1 ? nx : nw;
      std::vector<double> ref(nout);
      for (size_t e = 0; e < nout; ++e) ref[e] = ref_out(dir, s, x.data(), w.data(), dy.data(), e);
      for (int tc = 0; tc < 2; ++tc)
        for (int cfg = 0; cfg < 4; ++cfg)
          for (int sp_mode = 0; sp_mode < 2; ++sp_mode)
            for (int vec_try = 0; vec_try < 2; ++vec_try) {
              std::vector<float> out(nout + 16, NAN);
              std::vector<float> init(nout);
              for (auto &v : init) v = urand();
              if (dir != 0) memcpy(out.data(), init.data(), nout * 4);
              ky_conv_gemm g;
              const float *a = dir == 0 ? x.data() : dy.data();
              const float *b = dir == 2 ? x.data() : w.data();
              ky_conv_gemm_setup(&g, dir, out.data(), a, b, dir == 0 ? bias.data() : nullptr, &s, 0);
              const int BK = tc ? 16 : 8;
              const int tm[4] = {128, 128, 64, 64}, tn[4] = {128, 64, 128, 64};
              long long blocks = (long long)((g.M + tm[cfg] - 1) / tm[cfg]) * ((g.N + tn[cfg] - 1) / tn[cfg]);
              int splits = 1;
              if (sp_mode == 0) g.rchunk = ky_conv_plan_splits(&fake, blocks, g.R, BK, tc ? 8 : 16, &splits);
              else g.rchunk = ky_conv_plan_splits(&fake, blocks, g.R, BK, 1, &splits);  // many splits
              bool vec = s.c % 4 == 0 && (dir == 0 || s.k % 4 == 0);
              if (vec_try == 1) { if (!vec) continue; vec = false; }
              std::vector<float> part;
              if (splits > 1) {
                part.assign((size_t)splits * g.M * g.N + 16, NAN);
                g.part = part.data(); g.epi = KY_CONV_EPI_PART; g.vec_out = g.N % 4 == 0;
              }
              if (dir == 0) { if (tc) emu_cfg<0, true>(cfg, g, splits, vec); else emu_cfg<0, false>(cfg, g, splits, vec); }
              if (dir == 1) { if (tc) emu_cfg<1, true>(cfg, g, splits, vec); else emu_cfg<1, false>(cfg, g, splits, vec); }
              if (dir == 2) { if (tc) emu_cfg<2, true>(cfg, g, splits, vec); else emu_cfg<2, false>(cfg, g, splits, vec); }
              if (splits > 1) {  // replay of conv_split_reduce_kernel
                const size_t mn = (size_t)g.M * g.N;
                for (size_t i = 0; i < mn; ++i) {
                  float sum = 0; for (int z = 0; z < splits; ++z) sum += part[z * mn + i];
                  if (dir != 0) out[i] += sum; else out[i] = sum + bias[i % g.N];
                }
              }
              ++runs;
              double worst = 0; size_t wi = 0;
              for (size_t e = 0; e < nout; ++e) {
                double r = ref[e] + (dir == 0 ? bias[e % s.k] : init[e]);
                double err = fabs(out[e] - r);
                if (!(err <= worst)) { worst = err; wi = e; }
              }
              bool guard_ok = true;
              for (size_t e = nout; e < nout + 16; ++e) if (!isnan(out[e])) guard_ok = false;
              const double tol = tc ? 5e-2 : 1e-3;
              if (!(worst <= tol) || !guard_ok) {
                ++fails;
                printf("FAIL %s dir=%d tc=%d cfg=%d splits=%d vec=%d: worst err %g at %zu (got %g) guard %d\n", cc.name, dir, tc, cfg, splits, vec, worst, wi, out[wi], guard_ok);
              }
            }
    }
    printf("%s done\n", cc.name); fflush(stdout);
  }
  printf("%d runs, %d failures\n", runs, fails);
  return fails != 0;
}

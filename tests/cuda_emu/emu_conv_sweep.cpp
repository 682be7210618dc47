// Sweep of the real convolution kernels on the fiber emulator (built and run by
// tests/cuda_emu/run.sh): every fp32 implicit-GEMM tile configuration of cuda/conv2d_igemm.cu
// (the register-capped 128x128 too), every TF32 tile (replayed mma, emu_kernel.h), and im2col +
// the host SGEMM stand-in, x forward / data / weight gradient, x float4 and scalar loads (scalar
// forced by offsetting every pointer by one float), x one split and many (the context claims 2 or
// 132 SMs), on odd shapes against an fp64 direct convolution. Forward outputs start as NaN, every
// output has a NaN guard band after it, backward outputs start non-zero (accumulate semantics).
// Exits non-zero on any mismatch. EMU_SWEEP_CASES=N runs the first N shapes only.
#include <stdio.h>
#include <stdlib.h>
#include <random>
#include <vector>

#include "cuda/conv2d_tiles.cuh"

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

enum { GUARD = 16 };

// A device copy of `h` starting `off` floats into the allocation (off = 1: not 16-byte aligned).
static float *to_dev(ky_cuda *cu, const std::vector<float> &h, size_t n, int off) {
  void *p = nullptr;
  if (ky_cuda_malloc(cu, &p, (n + off + GUARD) * sizeof(float)) != KY_OK) { fprintf(stderr, "%s\n", ky_last_error()); exit(2); }
  float *d = (float *)p + off;
  std::vector<float> tmp(n + GUARD, NAN);
  memcpy(tmp.data(), h.data(), n * sizeof(float));
  ky_cuda_h2d(cu, d, tmp.data(), (n + GUARD) * sizeof(float));
  return d;
}

int main() {
  ky_cuda *cu = nullptr;
  if (ky_cuda_init(&cu, 0) != KY_OK) { fprintf(stderr, "init: %s\n", ky_last_error()); return 2; }
  const Case cases[] = {
      {"b1_hw_c5k7", 1, 9, 13, 5, 7, 3, 3, 1, 1, 1},   {"enc_like", 2, 12, 12, 32, 64, 3, 3, 1, 1, 1},
      {"c3k67_s2_odd", 2, 15, 11, 3, 67, 3, 3, 2, 1, 1}, {"c67k5_dil2", 1, 12, 10, 67, 5, 3, 3, 1, 2, 2},
      {"1x1_c67k130", 2, 7, 9, 67, 130, 1, 1, 1, 0, 1}, {"1x1_s2_down", 2, 8, 8, 64, 128, 1, 1, 2, 0, 1},
      {"stem_small", 1, 21, 19, 3, 64, 7, 7, 2, 3, 1},  {"5x5_s3_odd", 2, 17, 14, 8, 12, 5, 5, 3, 1, 1},
      {"3x3_s2_dil2", 1, 19, 21, 12, 20, 3, 3, 2, 2, 2}, {"small_m", 1, 4, 4, 64, 136, 3, 3, 1, 1, 1},
      {"1x1_c4k4", 3, 5, 6, 4, 4, 1, 1, 1, 0, 1},       {"vec_s2", 1, 13, 11, 8, 16, 3, 3, 2, 1, 1},
  };
  int ncases = (int)(sizeof cases / sizeof cases[0]);
  if (getenv("EMU_SWEEP_CASES")) ncases = std::min(ncases, atoi(getenv("EMU_SWEEP_CASES")));
  const char *algo_name[3] = {"simt", "tf32", "im2col"};
  int fails = 0, runs = 0;
  for (int ci = 0; ci < ncases; ++ci) {
    const Case &cc = cases[ci];
    ky_conv_shape s = {cc.n, cc.h, cc.w, cc.c, cc.k, cc.kh, cc.kw, cc.stride, cc.pad, cc.dil, 0, 0};
    s.oh = (s.h + 2 * s.pad - s.dil * (s.kh - 1) - 1) / s.stride + 1;
    s.ow = (s.w + 2 * s.pad - s.dil * (s.kw - 1) - 1) / s.stride + 1;
    const size_t nx = (size_t)s.n * s.h * s.w * s.c, ny = (size_t)s.n * s.oh * s.ow * s.k, nw = (size_t)s.k * s.kh * s.kw * s.c;
    std::vector<float> x(nx), w(nw), dy(ny), bias(s.k);
    for (std::vector<float> *t : {&x, &w, &dy, &bias})
      for (auto &v : *t) v = urand();
    for (int dir = 0; dir < 3; ++dir) {
      const size_t nout = dir == 0 ? ny : dir == 1 ? nx : nw;
      std::vector<double> ref(nout), refdb(s.k, 0.0);
      for (size_t e = 0; e < nout; ++e) ref[e] = ref_out(dir, s, x.data(), w.data(), dy.data(), e);
      for (size_t e = 0; e < ny; ++e) refdb[e % s.k] += dy[e];
      for (int algo = 0; algo < 3; ++algo) {
        const int ncfg = algo == 0 ? KY_IGEMM_SIMT_NCFG : algo == 1 ? KY_IGEMM_NCFG : 1;
        for (int cfg = 0; cfg < ncfg; ++cfg)
          for (int sms : {2, 132})
            for (int off : {0, 1}) {
              if (algo == 2 && sms == 132) continue;  // no split-K in im2col
              cu->num_sms = sms;
              const int relu = dir == 0 && (cfg & 1);
              std::vector<float> init(nout), dbinit(s.k);
              for (auto &v : init) v = urand();
              for (auto &v : dbinit) v = urand();
              const std::vector<float> &A = dir == 0 ? x : dy, &B = dir == 2 ? x : w;
              float *da = to_dev(cu, A, A.size(), off), *db_ = to_dev(cu, B, B.size(), off);
              float *dbias = dir == 0 ? to_dev(cu, bias, s.k, off) : nullptr;
              std::vector<float> nanv(nout, NAN);
              float *dout = to_dev(cu, dir == 0 ? nanv : init, nout, off);
              float *ddb = dir == 2 ? to_dev(cu, dbinit, s.k, off) : nullptr;
              ky_status st = algo == 0   ? ky_conv_igemm_run(cu, dir, dout, da, db_, dbias, ddb, &s, relu, cfg)
                             : algo == 1 ? ky_conv_tf32_run(cu, dir, dout, da, db_, dbias, ddb, &s, relu, cfg)
                                         : ky_conv_im2col_run(cu, dir, dout, da, db_, dbias, ddb, &s, relu);
              if (st == KY_OK) st = ky_cuda_sync(cu);
              std::vector<float> out(nout + GUARD), gdb(s.k + GUARD);
              ky_cuda_d2h(cu, out.data(), dout, (nout + GUARD) * sizeof(float));
              if (ddb) ky_cuda_d2h(cu, gdb.data(), ddb, (s.k + GUARD) * sizeof(float));
              ++runs;
              double worst = 0; size_t wi = 0;
              for (size_t e = 0; e < nout; ++e) {
                double r = ref[e] + (dir == 0 ? bias[e % s.k] : init[e]);
                if (relu && r < 0) r = 0;
                const double err = fabs(out[e] - r);
                if (!(err <= worst)) { worst = err; wi = e; }
              }
              double worst_db = 0;
              for (int k = 0; ddb && k < s.k; ++k) {
                const double err = fabs(gdb[k] - (refdb[k] + dbinit[k]));
                if (!(err <= worst_db)) worst_db = err;
              }
              bool guard_ok = true;
              for (size_t e = nout; e < nout + GUARD; ++e) if (!std::isnan(out[e])) guard_ok = false;
              for (int e = s.k; ddb && e < s.k + GUARD; ++e) if (!std::isnan(gdb[e])) guard_ok = false;
              const double tol = algo == 1 ? 5e-2 : 1e-3;
              if (st != KY_OK || !(worst <= tol) || !(worst_db <= 1e-3) || !guard_ok) {
                ++fails;
                printf("FAIL %s dir=%d %s cfg=%d sms=%d %s: %s worst err %g at %zu (got %g), db err %g, guard %s\n", cc.name, dir,
                       algo_name[algo], cfg, sms, off ? "offset (scalar)" : "aligned", st == KY_OK ? "ok" : ky_last_error(), worst, wi,
                       out[wi], worst_db, guard_ok ? "ok" : "WRITTEN");
              }
              ky_cuda_release(cu, da - off); ky_cuda_release(cu, db_ - off); ky_cuda_release(cu, dout - off);
              if (dbias) ky_cuda_release(cu, dbias - off);
              if (ddb) ky_cuda_release(cu, ddb - off);
            }
      }
    }
    printf("%s done\n", cc.name); fflush(stdout);
  }
  ky_cuda_free(cu);
  printf("%d runs, %d failures\n", runs, fails);
  return fails != 0;
}

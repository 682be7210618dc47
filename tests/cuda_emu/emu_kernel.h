// Host replay of the TF32 tensor-core convolution kernel (cuda/conv2d_tf32.cu), whose mma.sync and
// cvt.rna PTX g++ cannot run: the real tile loaders and epilogue of cuda/conv2d_tiles.cuh run block
// by block on the CPU, with the shared-memory phases in kernel order and mma.m16n8k8 emulated from
// the PTX ISA's fragment layout. tests/cuda_emu/run.sh routes every launch of conv_igemm_tf32 here
// (xform.pl conv_igemm_tf32=emu_tf32_replay), so the real host side of conv2d_tf32.cu (tiles,
// split-K, workspace, reductions) runs around it. It replays the kernel as written here, not the
// kernel's own shared-memory code: barriers and fragment loads of conv2d_tf32.cu are not checked.
#pragma once
#include <math.h>
#include <string.h>
#include <algorithm>
#include <vector>

#include "cuda/conv2d_tiles.cuh"

static float tf32r(float x) {  // cvt.rna.tf32.f32: round to nearest, ties away, keep 10 mantissa bits
  uint32_t u; memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0x7f800000u) return x;
  u += 0x1000u;  // half of the dropped 13 bits: ties away from zero in magnitude
  u &= 0xffffe000u;
  float r; memcpy(&r, &u, 4); return r;
}

// Replays one launch of conv_igemm_tf32<DIR, BM, BN, WM, WN, VEC> over a grid of `splits` in z.
template <int DIR, int BM, int BN, int BK, int THREADS, bool VEC, int WM, int WN>
static void emu_kernel(const ky_conv_gemm &p, int splits) {
  using LA = typename ky_conv_loaders<DIR, BM, BN, BK, THREADS, VEC>::A;
  using LB = typename ky_conv_loaders<DIR, BM, BN, BK, THREADS, VEC>::B;
  constexpr int LDA = BM + 8, LDB = BN + 8;
  const int gx = (p.M + BM - 1) / BM, gy = (p.N + BN - 1) / BN;
  std::vector<float> As(2 * BK * LDA), Bs(2 * BK * LDB);
  std::vector<LA> la(THREADS); std::vector<LB> lb(THREADS);
  std::vector<float4> ra(THREADS * LA::NPT), rb(THREADS * LB::NPT);
  std::vector<float> acc(THREADS * 64);
  for (int bz = 0; bz < splits; ++bz)
    for (int by = 0; by < gy; ++by)
      for (int bx = 0; bx < gx; ++bx) {
        for (auto &v : As) v = NAN;
        for (auto &v : Bs) v = NAN;
        const int m0 = bx * BM, n0 = by * BN, kbeg = bz * p.rchunk, kend = std::min(p.R, kbeg + p.rchunk);
        const int ntiles = (kend - kbeg + BK - 1) / BK;
        auto fetch_all = [&]() {
          for (int t = 0; t < THREADS; ++t) {
            float4(&a)[LA::NPT] = *reinterpret_cast<float4(*)[LA::NPT]>(&ra[t * LA::NPT]);
            float4(&b)[LB::NPT] = *reinterpret_cast<float4(*)[LB::NPT]>(&rb[t * LB::NPT]);
            la[t].fetch(p, a); lb[t].fetch(p, b);
            for (int i = 0; i < LA::NPT; ++i) { a[i].x = tf32r(a[i].x); a[i].y = tf32r(a[i].y); a[i].z = tf32r(a[i].z); a[i].w = tf32r(a[i].w); }
            for (int i = 0; i < LB::NPT; ++i) { b[i].x = tf32r(b[i].x); b[i].y = tf32r(b[i].y); b[i].z = tf32r(b[i].z); b[i].w = tf32r(b[i].w); }
          }
        };
        auto store_all = [&](int buf) {
          for (int t = 0; t < THREADS; ++t) {
            la[t].template store<LDA>(&As[buf * BK * LDA], *reinterpret_cast<float4(*)[LA::NPT]>(&ra[t * LA::NPT]));
            lb[t].template store<LDB>(&Bs[buf * BK * LDB], *reinterpret_cast<float4(*)[LB::NPT]>(&rb[t * LB::NPT]));
          }
        };
        for (int t = 0; t < THREADS; ++t) { la[t].init(p, t, m0, kbeg); lb[t].init(p, t, n0, kbeg); }
        fetch_all(); store_all(0);
        std::fill(acc.begin(), acc.end(), 0.f);
        for (int t = 0; t < ntiles; ++t) {
          const int cur = t & 1; const bool more = t + 1 < ntiles;
          if (more) { for (int q = 0; q < THREADS; ++q) { la[q].advance(p); lb[q].advance(p); } fetch_all(); }
          const float *A = &As[cur * BK * LDA], *B = &Bs[cur * BK * LDB];
          {
            constexpr int WTM = BM / WM, WTN = BN / WN, MI = WTM / 16, NI = WTN / 8;
            static_assert(MI * NI * 4 <= 64, "acc");
            for (int w = 0; w < WM * WN; ++w) {
              const int wm0 = (w % WM) * WTM, wn0 = (w / WM) * WTN;
              for (int ks = 0; ks < BK; ks += 8) {
                const float *a = A + ks * LDA + wm0, *b = B + ks * LDB + wn0;
                for (int i = 0; i < MI; ++i)
                  for (int j = 0; j < NI; ++j) {
                    float Am[16][8], Bm[8][8];
                    for (auto &r : Am) for (auto &v : r) v = NAN;
                    for (auto &r : Bm) for (auto &v : r) v = NAN;
                    for (int lane = 0; lane < 32; ++lane) {
                      const int g = lane >> 2, t4 = lane & 3;
                      // kernel's fragment loads, placed where the PTX layout says they belong
                      Am[g][t4] = a[t4 * LDA + i * 16 + g];
                      Am[g + 8][t4] = a[t4 * LDA + i * 16 + g + 8];
                      Am[g][t4 + 4] = a[(t4 + 4) * LDA + i * 16 + g];
                      Am[g + 8][t4 + 4] = a[(t4 + 4) * LDA + i * 16 + g + 8];
                      Bm[t4][g] = b[t4 * LDB + j * 8 + g];
                      Bm[t4 + 4][g] = b[(t4 + 4) * LDB + j * 8 + g];
                    }
                    for (int lane = 0; lane < 32; ++lane) {
                      const int g = lane >> 2, t4 = lane & 3, q = w * 32 + lane;
                      float *c = &acc[q * 64 + (i * NI + j) * 4];
                      const int rows[4] = {g, g, g + 8, g + 8}, cols[4] = {2 * t4, 2 * t4 + 1, 2 * t4, 2 * t4 + 1};
                      for (int e = 0; e < 4; ++e) {
                        double s = 0;
                        for (int k = 0; k < 8; ++k) s += (double)Am[rows[e]][k] * Bm[k][cols[e]];
                        c[e] += (float)s;
                      }
                    }
                  }
              }
            }
          }
          if (more) store_all(cur ^ 1);
        }
        // epilogue
        {
          constexpr int WTM = BM / WM, WTN = BN / WN, MI = WTM / 16, NI = WTN / 8;
          for (int q = 0; q < THREADS; ++q) {
            const int lane = q & 31, w = q >> 5, g = lane >> 2, t4 = lane & 3;
            const int wm0 = (w % WM) * WTM, wn0 = (w / WM) * WTN;
            for (int i = 0; i < MI; ++i)
              for (int j = 0; j < NI; ++j) {
                const int row = m0 + wm0 + i * 16 + g, col = n0 + wn0 + j * 8 + 2 * t4;
                ky_conv_emit<2>(p, bz, row, col, &acc[q * 64 + (i * NI + j) * 4]);
                ky_conv_emit<2>(p, bz, row + 8, col, &acc[q * 64 + (i * NI + j) * 4 + 2]);
              }
          }
        }
      }
}

template <int DIR, int BM, int BN, int WM, int WN, bool VEC>
static void emu_tf32_replay(emu_cfg c, const ky_conv_gemm &p) {
  emu_kernel<DIR, BM, BN, 16, WM * WN * 32, VEC, WM, WN>(p, (int)c.g.z);
}

/* Implicit-GEMM convolution on TF32 tensor cores (mma.sync.m16n8k8, fp32 accumulate; sm_80+).
 * Tested by tests/test_cuda_conv.c (relative tolerance 2e-3 against the fp64 reference).
 *
 * Same operand gathering as the SIMT kernel (cuda/conv2d_tiles.cuh), with BK = 16 and the
 * operands rounded to TF32 (cvt.rna) as they are written to shared memory. Warps tile the block
 * (2 x 4 warps of 64x32 for a 128x128 block; 2 x 2 warps for 128x64 and 64x64), each warp
 * issuing MI x NI m16n8k8 MMAs per 8-wide k step. Shared rows are padded by 8 floats so the
 * fragment reads (row t, column g for lane = 4g + t) hit 32 distinct banks.
 * The kernel body exists only for __CUDA_ARCH__ >= 800; the host side refuses older devices
 * with KY_ERR_CUDA before launching. */
#include <stdint.h>
#include <string.h>

#include "cuda/conv2d_tiles.cuh"

namespace {

constexpr int TC_BK = 16;

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
__device__ __forceinline__ float to_tf32(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return __uint_as_float(r);
}

template <int NPT>
__device__ __forceinline__ void round_tf32(float4 (&v)[NPT]) {
#pragma unroll
  for (int i = 0; i < NPT; ++i) {
    v[i].x = to_tf32(v[i].x); v[i].y = to_tf32(v[i].y);
    v[i].z = to_tf32(v[i].z); v[i].w = to_tf32(v[i].w);
  }
}
#endif

template <int DIR, int BM, int BN, int WM, int WN, bool VEC>
__global__ void __launch_bounds__(WM * WN * 32)
conv_igemm_tf32(ky_conv_gemm p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  constexpr int BK = TC_BK, THREADS = WM * WN * 32, LDA = BM + 8, LDB = BN + 8;
  constexpr int WTM = BM / WM, WTN = BN / WN, MI = WTM / 16, NI = WTN / 8;
  using LA = typename ky_conv_loaders<DIR, BM, BN, BK, THREADS, VEC>::A;
  using LB = typename ky_conv_loaders<DIR, BM, BN, BK, THREADS, VEC>::B;
  __shared__ __align__(16) float As[2][BK * LDA];
  __shared__ __align__(16) float Bs[2][BK * LDB];

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t4 = lane & 3;
  const int wm0 = (warp % WM) * WTM, wn0 = (warp / WM) * WTN;
  const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
  const int kbeg = blockIdx.z * p.rchunk;
  const int kend = min(p.R, kbeg + p.rchunk);
  const int ntiles = (kend - kbeg + BK - 1) / BK;

  LA la;
  LB lb;
  la.init(p, tid, m0, kbeg);
  lb.init(p, tid, n0, kbeg);
  float4 ra[LA::NPT], rb[LB::NPT];
  la.fetch(p, ra);
  lb.fetch(p, rb);
  round_tf32(ra);
  round_tf32(rb);
  la.template store<LDA>(As[0], ra);
  lb.template store<LDB>(Bs[0], rb);
  __syncthreads();

  float acc[MI][NI][4];
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < NI; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;

  for (int t = 0; t < ntiles; ++t) {
    const int cur = t & 1;
    const bool more = t + 1 < ntiles;
    if (more) {
      la.advance(p);
      lb.advance(p);
      la.fetch(p, ra);
      lb.fetch(p, rb);
    }
#pragma unroll
    for (int ks = 0; ks < BK; ks += 8) {
      const float *a = &As[cur][ks * LDA + wm0];
      const float *b = &Bs[cur][ks * LDB + wn0];
      uint32_t af[MI][4], bf[NI][2];
#pragma unroll
      for (int i = 0; i < MI; ++i) {
        af[i][0] = __float_as_uint(a[t4 * LDA + i * 16 + g]);
        af[i][1] = __float_as_uint(a[t4 * LDA + i * 16 + g + 8]);
        af[i][2] = __float_as_uint(a[(t4 + 4) * LDA + i * 16 + g]);
        af[i][3] = __float_as_uint(a[(t4 + 4) * LDA + i * 16 + g + 8]);
      }
#pragma unroll
      for (int j = 0; j < NI; ++j) {
        bf[j][0] = __float_as_uint(b[t4 * LDB + j * 8 + g]);
        bf[j][1] = __float_as_uint(b[(t4 + 4) * LDB + j * 8 + g]);
      }
#pragma unroll
      for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < NI; ++j)
          asm volatile(
              "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
              "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
              : "+f"(acc[i][j][0]), "+f"(acc[i][j][1]), "+f"(acc[i][j][2]), "+f"(acc[i][j][3])
              : "r"(af[i][0]), "r"(af[i][1]), "r"(af[i][2]), "r"(af[i][3]), "r"(bf[j][0]), "r"(bf[j][1]));
    }
    if (more) {
      round_tf32(ra);
      round_tf32(rb);
      la.template store<LDA>(As[cur ^ 1], ra);
      lb.template store<LDB>(Bs[cur ^ 1], rb);
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < NI; ++j) {
      const int row = m0 + wm0 + i * 16 + g, col = n0 + wn0 + j * 8 + 2 * t4;
      ky_conv_emit<2>(p, blockIdx.z, row, col, &acc[i][j][0]);
      ky_conv_emit<2>(p, blockIdx.z, row + 8, col, &acc[i][j][2]);
    }
#endif
}

template <int DIR, int BM, int BN, int WM, int WN>
ky_status launch_tc(ky_cuda *cu, const ky_conv_gemm &g, int splits, bool vec) {
  const dim3 grid((g.M + BM - 1) / BM, (g.N + BN - 1) / BN, splits);
  if (vec)
    conv_igemm_tf32<DIR, BM, BN, WM, WN, true><<<grid, WM * WN * 32, 0, cu->stream>>>(g);
  else
    conv_igemm_tf32<DIR, BM, BN, WM, WN, false><<<grid, WM * WN * 32, 0, cu->stream>>>(g);
  KY_CUDA_LAUNCH_CHECK(cu);
  return KY_OK;
}

/* TF32 tile table: 128x128 (8 warps), 128x64, 64x128 and 64x64 (4 warps each). */
template <int DIR>
ky_status launch_tc_cfg(ky_cuda *cu, const ky_conv_gemm &g, int cfg, int splits, bool vec) {
  switch (cfg) {
    case KY_IGEMM_T128x128: return launch_tc<DIR, 128, 128, 2, 4>(cu, g, splits, vec);
    case KY_IGEMM_T128x64: return launch_tc<DIR, 128, 64, 2, 2>(cu, g, splits, vec);
    case KY_IGEMM_T64x128: return launch_tc<DIR, 64, 128, 2, 2>(cu, g, splits, vec);
    default: return launch_tc<DIR, 64, 64, 2, 2>(cu, g, splits, vec);
  }
}

const int kTileM[KY_IGEMM_NCFG] = {128, 128, 64, 64};
const int kTileN[KY_IGEMM_NCFG] = {128, 64, 128, 64};

int tc_pick_cfg(const ky_cuda *cu, int m, int n) {
  const long long sms = cu->num_sms > 0 ? cu->num_sms : 80;
  for (int c = 0; c < KY_IGEMM_NCFG; ++c) {
    const long long bm = (m + kTileM[c] - 1) / kTileM[c], bn = (n + kTileN[c] - 1) / kTileN[c];
    const double waste = (double)(bm * kTileM[c]) * (double)(bn * kTileN[c]) / ((double)m * n);
    if (waste <= 1.3 && bm * bn >= sms) return c;
  }
  return (m <= 64 && n > 64) ? KY_IGEMM_T64x128 : KY_IGEMM_T64x64;
}

}  // namespace

ky_status ky_conv_tf32_run(ky_cuda *cu, int dir, float *out, const float *a, const float *b,
                           const float *bias, float *db, const ky_conv_shape *s, int relu, int cfg) {
  if (cu->sm < 80)
    return ky_error(KY_ERR_CUDA,
                    "conv2d: the TF32 implicit-GEMM algorithm needs a tensor-core GPU of compute capability "
                    "8.0 or newer, device %d is sm_%d",
                    cu->device, cu->sm);
  ky_conv_gemm g;
  ky_conv_gemm_setup(&g, dir, out, a, b, bias, s, relu);
  if (cfg < 0 || cfg >= KY_IGEMM_NCFG) cfg = tc_pick_cfg(cu, g.M, g.N);
  const long long blocks = (long long)((g.M + kTileM[cfg] - 1) / kTileM[cfg]) * ((g.N + kTileN[cfg] - 1) / kTileN[cfg]);
  int splits = 1;
  KY_TRY(ky_conv_splitk_prepare(cu, &g, &splits, s, db, blocks, TC_BK, 8));

  bool vec = ky_cuda_aligned16(a) && ky_cuda_aligned16(b) && s->c % 4 == 0;
  if (dir != KY_CONV_DIR_FWD) vec = vec && s->k % 4 == 0;

  ky_status st;
  switch (dir) {
    case KY_CONV_DIR_FWD: st = launch_tc_cfg<KY_CONV_DIR_FWD>(cu, g, cfg, splits, vec); break;
    case KY_CONV_DIR_DGRAD: st = launch_tc_cfg<KY_CONV_DIR_DGRAD>(cu, g, cfg, splits, vec); break;
    default: st = launch_tc_cfg<KY_CONV_DIR_WGRAD>(cu, g, cfg, splits, vec); break;
  }
  KY_TRY(st);
  return ky_conv_splitk_finish(cu, &g, dir, splits);
}

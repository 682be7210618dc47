/* fp32 SIMT implicit-GEMM convolution (forward, dgrad, wgrad) plus the deterministic split-K and
 * bias-gradient reductions shared with the TF32 path. Tested by tests/test_cuda_conv.c.
 *
 * Tile design
 * -----------
 * Each direction is one GEMM out[M x N] (+)= A[M x R] * B[R x N] whose operands are gathered from
 * the NHWC / OHWI tensors on the fly (cuda/conv2d_tiles.cuh lists the three mappings); nothing is
 * materialised. A block computes a BM x BN tile (128x128, 128x64, 64x128 or 64x64) with 8x8
 * results per thread (256, 128, 128 or 64 threads), reducing over R in steps of BK = 8:
 *   - the block's A and B slices for one step are fetched from global memory into registers as
 *     float4 (16-byte loads when the channel counts are multiples of 4 and the base pointers are
 *     16-byte aligned; otherwise four scalar loads, which is what the C = 3 stem uses), then
 *     written k-major to shared memory (As[BK][BM+4], Bs[BK][BN+4]; the +4 pad keeps the
 *     transposing stores of k-contiguous operands free of bank conflicts);
 *   - two shared-memory buffers: while the FMAs of step t read buffer t&1, the loads of step t+1
 *     are in flight into registers and land in the other buffer; one __syncthreads per step;
 *   - each thread reads two float4 of A and two of B per k (rows ty*4.. and BM/2 + ty*4..: the
 *     split halves make every quarter-warp read 8 distinct 16-byte chunks, conflict-free) and
 *     does 64 FMAs;
 *   - the tap decode (ky, kx, c) of r is carried incrementally (no division in the main loop);
 *   - epilogue: fused bias + optional ReLU for the forward (overwrite), read-add-write for dgrad
 *     and wgrad (accumulate), or a plain store of split-K partial sums into the workspace.
 * Small grids (wgrad always: M = K, N = KH*KW*C, R = N*OH*OW) split R over blockIdx.z; the
 * partials [splits][M][N] are summed by ky_conv_split_reduce in split order, so repeated runs are
 * bitwise identical (no float atomics anywhere). The bias gradient is a fixed-order two-pass
 * column sum. Layer shapes: 1x1 convolutions are the same kernel with a one-tap decode; 3x3 uses
 * the vector path; the 7x7/2 stem with C = 3 takes the scalar-load path (R = 147 = 18.4 steps).
 * dgrad with stride s > 1 gathers over all R taps and zero-fills the ones that fall between
 * strides (about s*s times the useful work: acceptable for the few strided layers).
 * The fp32 path uses nothing beyond sm_60 (no cp.async, no tensor cores, __ldg only).
 *
 * Compiler resource report (nvcc 13.0.88, -O3, `-Xptxas -v`, one build each for sm_80 | sm_90;
 * spill = spill-store/spill-load bytes; stack frames are 0 everywhere). "vec" = the float4 path.
 * PTX of the vec forward 128x128 kernel: 4 ld.global.nc.v4, 32 ld.shared.v4 and 512 fma.rn (one
 * BK = 8 step, unrolled), no local memory; the TF32 file carries mma.sync.m16n8k8 + cvt.rna.tf32 only in
 * its sm_80+ code. Threads per block: SIMT 128x128 = 256, 128x64 / 64x128 = 128, 64x64 = 64;
 * TF32 128x128 = 256, the others 128. Registers above 128 limit a 256-thread SIMT block to one
 * per SM (8 warps); a register-capped 128x128 variant (two blocks per SM) is offered to AUTO.
 *                             sm_80                                 | sm_90
 *   conv_bias_grad_partial     20 regs     0 B smem 0/0 spill |  20 regs     0 B smem 0/0 spill
 *   simt fwd   128x128 scalar 129 regs 16896 B smem 0/0 spill | 128 regs 16896 B smem 0/0 spill
 *   simt fwd   128x128 vec    129 regs 16896 B smem 0/0 spill | 139 regs 16896 B smem 0/0 spill
 *   simt fwd   128x64 scalar  145 regs 12800 B smem 0/0 spill | 151 regs 12800 B smem 0/0 spill
 *   simt fwd   128x64 vec     145 regs 12800 B smem 0/0 spill | 151 regs 12800 B smem 0/0 spill
 *   simt fwd   64x128 scalar  141 regs 12800 B smem 0/0 spill | 151 regs 12800 B smem 0/0 spill
 *   simt fwd   64x128 vec     141 regs 12800 B smem 0/0 spill | 151 regs 12800 B smem 0/0 spill
 *   simt fwd   64x64 scalar   130 regs  8704 B smem 0/0 spill | 155 regs  8704 B smem 0/0 spill
 *   simt fwd   64x64 vec      138 regs  8704 B smem 0/0 spill | 149 regs  8704 B smem 0/0 spill
 *   simt dgrad 128x128 scalar 136 regs 16896 B smem 0/0 spill | 149 regs 16896 B smem 0/0 spill
 *   simt dgrad 128x128 vec    128 regs 16896 B smem 0/0 spill | 151 regs 16896 B smem 0/0 spill
 *   simt dgrad 128x64 scalar  149 regs 12800 B smem 0/0 spill | 153 regs 12800 B smem 0/0 spill
 *   simt dgrad 128x64 vec     149 regs 12800 B smem 0/0 spill | 153 regs 12800 B smem 0/0 spill
 *   simt dgrad 64x128 scalar  130 regs 12800 B smem 0/0 spill | 153 regs 12800 B smem 0/0 spill
 *   simt dgrad 64x128 vec     147 regs 12800 B smem 0/0 spill | 153 regs 12800 B smem 0/0 spill
 *   simt dgrad 64x64 scalar   130 regs  8704 B smem 0/0 spill | 151 regs  8704 B smem 0/0 spill
 *   simt dgrad 64x64 vec      143 regs  8704 B smem 0/0 spill | 161 regs  8704 B smem 0/0 spill
 *   simt wgrad 128x128 scalar 153 regs 16896 B smem 0/0 spill | 147 regs 16896 B smem 0/0 spill
 *   simt wgrad 128x128 vec    142 regs 16896 B smem 0/0 spill | 139 regs 16896 B smem 0/0 spill
 *   simt wgrad 128x64 scalar  151 regs 12800 B smem 0/0 spill | 161 regs 12800 B smem 0/0 spill
 *   simt wgrad 128x64 vec     145 regs 12800 B smem 0/0 spill | 153 regs 12800 B smem 0/0 spill
 *   simt wgrad 64x128 scalar  161 regs 12800 B smem 0/0 spill | 167 regs 12800 B smem 0/0 spill
 *   simt wgrad 64x128 vec     149 regs 12800 B smem 0/0 spill | 149 regs 12800 B smem 0/0 spill
 *   simt wgrad 64x64 scalar   163 regs  8704 B smem 0/0 spill | 167 regs  8704 B smem 0/0 spill
 *   simt wgrad 64x64 vec      130 regs  8704 B smem 0/0 spill | 153 regs  8704 B smem 0/0 spill
 *   conv_split_reduce_kernel   32 regs     0 B smem 0/0 spill |  32 regs     0 B smem 0/0 spill
 *   128x128 capped at 128 registers (__launch_bounds__(256, 2), AUTO candidate only), spill bytes
 *   store/load:   sm_80: fwd 0/0 (scalar), 0/0 (vec); dgrad 0/0, 0/0; wgrad 88/124, 0/0
 *                 sm_90: fwd 12/16, 0/0;               dgrad 0/0, 40/36; wgrad 56/72, 0/0
 *   tf32 fwd   128x128 scalar 127 regs 34816 B smem 0/0 spill | 125 regs 34816 B smem 0/0 spill
 *   tf32 fwd   128x128 vec    127 regs 34816 B smem 0/0 spill | 125 regs 34816 B smem 0/0 spill
 *   tf32 fwd   128x64 scalar  164 regs 26624 B smem 0/0 spill | 164 regs 26624 B smem 0/0 spill
 *   tf32 fwd   128x64 vec     165 regs 26624 B smem 0/0 spill | 165 regs 26624 B smem 0/0 spill
 *   tf32 fwd   64x128 scalar  161 regs 26624 B smem 0/0 spill | 162 regs 26624 B smem 0/0 spill
 *   tf32 fwd   64x128 vec     161 regs 26624 B smem 0/0 spill | 163 regs 26624 B smem 0/0 spill
 *   tf32 fwd   64x64 scalar    93 regs 18432 B smem 0/0 spill |  93 regs 18432 B smem 0/0 spill
 *   tf32 fwd   64x64 vec       93 regs 18432 B smem 0/0 spill |  93 regs 18432 B smem 0/0 spill
 *   tf32 dgrad 128x128 scalar 154 regs 34816 B smem 0/0 spill | 159 regs 34816 B smem 0/0 spill
 *   tf32 dgrad 128x128 vec    152 regs 34816 B smem 0/0 spill | 156 regs 34816 B smem 0/0 spill
 *   tf32 dgrad 128x64 scalar  166 regs 26624 B smem 0/0 spill | 165 regs 26624 B smem 0/0 spill
 *   tf32 dgrad 128x64 vec     164 regs 26624 B smem 0/0 spill | 164 regs 26624 B smem 0/0 spill
 *   tf32 dgrad 64x128 scalar  166 regs 26624 B smem 0/0 spill | 166 regs 26624 B smem 0/0 spill
 *   tf32 dgrad 64x128 vec     164 regs 26624 B smem 0/0 spill | 164 regs 26624 B smem 0/0 spill
 *   tf32 dgrad 64x64 scalar    96 regs 18432 B smem 0/0 spill | 119 regs 18432 B smem 0/0 spill
 *   tf32 dgrad 64x64 vec       94 regs 18432 B smem 0/0 spill |  94 regs 18432 B smem 0/0 spill
 *   tf32 wgrad 128x128 scalar 160 regs 34816 B smem 0/0 spill | 162 regs 34816 B smem 0/0 spill
 *   tf32 wgrad 128x128 vec    126 regs 34816 B smem 0/0 spill | 124 regs 34816 B smem 0/0 spill
 *   tf32 wgrad 128x64 scalar  168 regs 26624 B smem 0/0 spill | 168 regs 26624 B smem 0/0 spill
 *   tf32 wgrad 128x64 vec     158 regs 26624 B smem 0/0 spill | 162 regs 26624 B smem 0/0 spill
 *   tf32 wgrad 64x128 scalar  164 regs 26624 B smem 0/0 spill | 165 regs 26624 B smem 0/0 spill
 *   tf32 wgrad 64x128 vec     164 regs 26624 B smem 0/0 spill | 164 regs 26624 B smem 0/0 spill
 *   tf32 wgrad 64x64 scalar   126 regs 18432 B smem 0/0 spill | 126 regs 18432 B smem 0/0 spill
 *   tf32 wgrad 64x64 vec       92 regs 18432 B smem 0/0 spill |  92 regs 18432 B smem 0/0 spill
 *   bias_relu_kernel           20 regs     0 B smem 0/0 spill |  22 regs     0 B smem 0/0 spill
 *   col2im_kernel              32 regs     0 B smem 0/0 spill |  34 regs     0 B smem 0/0 spill
 *   im2col_kernel              22 regs     0 B smem 0/0 spill |  32 regs     0 B smem 0/0 spill
 */
#include <string.h>

#include "cuda/conv2d_tiles.cuh"

namespace {

constexpr int SIMT_BK = 8;

/* MINB = 1: no register cap (no spills). MINB = 2 (128x128 only): capped at 128 registers for two
 * 256-thread blocks per SM, at the price of some spilling; AUTO times both. */
template <int DIR, int BM, int BN, bool VEC, int MINB>
__global__ void __launch_bounds__((BM / 8) * (BN / 8), MINB)
conv_igemm_simt(ky_conv_gemm p) {
  constexpr int BK = SIMT_BK, THREADS = (BM / 8) * (BN / 8), LDA = BM + 4, LDB = BN + 4;
  using LA = typename ky_conv_loaders<DIR, BM, BN, BK, THREADS, VEC>::A;
  using LB = typename ky_conv_loaders<DIR, BM, BN, BK, THREADS, VEC>::B;
  __shared__ __align__(16) float As[2][BK * LDA];
  __shared__ __align__(16) float Bs[2][BK * LDB];

  const int tid = threadIdx.x;
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
  la.template store<LDA>(As[0], ra);
  lb.template store<LDB>(Bs[0], rb);
  __syncthreads();

  const int tx = tid % (BN / 8), ty = tid / (BN / 8);
  float acc[8][8];
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[i][j] = 0.f;

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
    for (int kk = 0; kk < BK; ++kk) {
      const float *a = &As[cur][kk * LDA];
      const float *b = &Bs[cur][kk * LDB];
      const float4 a0 = *reinterpret_cast<const float4 *>(a + ty * 4);
      const float4 a1 = *reinterpret_cast<const float4 *>(a + BM / 2 + ty * 4);
      const float4 b0 = *reinterpret_cast<const float4 *>(b + tx * 4);
      const float4 b1 = *reinterpret_cast<const float4 *>(b + BN / 2 + tx * 4);
      const float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
      const float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
    if (more) {
      la.template store<LDA>(As[cur ^ 1], ra);
      lb.template store<LDB>(Bs[cur ^ 1], rb);
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int row = m0 + (i < 4 ? ty * 4 + i : BM / 2 + ty * 4 + (i - 4));
    ky_conv_emit<4>(p, blockIdx.z, row, n0 + tx * 4, &acc[i][0]);
    ky_conv_emit<4>(p, blockIdx.z, row, n0 + BN / 2 + tx * 4, &acc[i][4]);
  }
}

/* out[i] (+)= sum_z part[z*mn + i], z ascending. */
__global__ void conv_split_reduce_kernel(float *out, const float *part, const float *bias, int splits,
                                         size_t mn, int n, int epi, int relu) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < mn; i += (size_t)gridDim.x * blockDim.x) {
    float s = 0.f;
    for (int z = 0; z < splits; ++z) s += part[(size_t)z * mn + i];
    if (epi == KY_CONV_EPI_ACCUM) {
      out[i] += s;
    } else {
      if (bias) s += bias[i % (size_t)n];
      if (relu) s = fmaxf(s, 0.f);
      out[i] = s;
    }
  }
}

/* part[chunk][k] = sum of dy[p, k] over the chunk's pixels, p ascending. */
__global__ void conv_bias_grad_partial(float *part, const float *dy, int npix, int k, int rows) {
  const int kk = blockIdx.x * blockDim.x + threadIdx.x;
  if (kk >= k) return;
  const int p0 = blockIdx.y * rows, p1 = min(npix, p0 + rows);
  float s = 0.f;
  for (int p = p0; p < p1; ++p) s += dy[(size_t)p * k + kk];
  part[(size_t)blockIdx.y * k + kk] = s;
}

template <int DIR, int BM, int BN, int MINB = 1>
ky_status launch_simt(ky_cuda *cu, const ky_conv_gemm &g, int splits, bool vec) {
  const dim3 grid((g.M + BM - 1) / BM, (g.N + BN - 1) / BN, splits);
  const int threads = (BM / 8) * (BN / 8);
  if (vec)
    conv_igemm_simt<DIR, BM, BN, true, MINB><<<grid, threads, 0, cu->stream>>>(g);
  else
    conv_igemm_simt<DIR, BM, BN, false, MINB><<<grid, threads, 0, cu->stream>>>(g);
  KY_CUDA_LAUNCH_CHECK(cu);
  return KY_OK;
}

template <int DIR>
ky_status launch_simt_cfg(ky_cuda *cu, const ky_conv_gemm &g, int cfg, int splits, bool vec) {
  switch (cfg) {
    case KY_IGEMM_T128x128: return launch_simt<DIR, 128, 128>(cu, g, splits, vec);
    case KY_IGEMM_T128x64: return launch_simt<DIR, 128, 64>(cu, g, splits, vec);
    case KY_IGEMM_T64x128: return launch_simt<DIR, 64, 128>(cu, g, splits, vec);
    case KY_IGEMM_T128x128_R128: return launch_simt<DIR, 128, 128, 2>(cu, g, splits, vec);
    default: return launch_simt<DIR, 64, 64>(cu, g, splits, vec);
  }
}

const int kTileM[KY_IGEMM_SIMT_NCFG] = {128, 128, 64, 64, 128};
const int kTileN[KY_IGEMM_SIMT_NCFG] = {128, 64, 128, 64, 128};

}  // namespace

/* ---- shared helpers ------------------------------------------------------------------------- */

void ky_conv_gemm_setup(ky_conv_gemm *g, int dir, float *out, const float *a, const float *b,
                        const float *bias, const ky_conv_shape *s, int relu) {
  memset(g, 0, sizeof *g);
  g->a = a; g->b = b; g->out = out;
  g->n = s->n; g->h = s->h; g->w = s->w; g->c = s->c; g->k = s->k; g->kh = s->kh; g->kw = s->kw;
  g->stride = s->stride; g->pad = s->pad; g->dil = s->dil; g->oh = s->oh; g->ow = s->ow;
  const int taps = s->kh * s->kw;
  if (dir == KY_CONV_DIR_FWD) {
    g->M = s->n * s->oh * s->ow; g->N = s->k; g->R = taps * s->c;
    g->bias = bias; g->relu = relu; g->epi = KY_CONV_EPI_STORE;
  } else if (dir == KY_CONV_DIR_DGRAD) {
    g->M = s->n * s->h * s->w; g->N = s->c; g->R = taps * s->k;
    g->epi = KY_CONV_EPI_ACCUM;
  } else {
    g->M = s->k; g->N = taps * s->c; g->R = s->n * s->oh * s->ow;
    g->epi = KY_CONV_EPI_ACCUM;
  }
  g->rchunk = g->R;
  g->vec_out = (g->N % 4 == 0) && ky_cuda_aligned16(out);
}

int ky_conv_plan_splits(const ky_cuda *cu, long long blocks, int r, int bk, int min_tiles, int *splits) {
  const long long want_blocks = 2LL * (cu->num_sms > 0 ? cu->num_sms : 80);
  const int tiles = (r + bk - 1) / bk;
  int sp = 1;
  if (blocks < want_blocks) {
    long long w = (want_blocks + blocks - 1) / blocks;
    long long cap = tiles / (min_tiles > 0 ? min_tiles : 1);
    if (w > cap) w = cap;
    if (w > 256) w = 256;
    sp = w < 1 ? 1 : (int)w;
  }
  const int per = (tiles + sp - 1) / sp;
  *splits = (tiles + per - 1) / per;
  return per * bk;
}

ky_status ky_conv_splitk_prepare(ky_cuda *cu, ky_conv_gemm *g, int *splits, const ky_conv_shape *s, float *db,
                                 long long blocks, int bk, int min_tiles) {
  g->rchunk = ky_conv_plan_splits(cu, blocks, g->R, bk, min_tiles, splits);
  const size_t part_floats = *splits > 1 ? (size_t)*splits * g->M * g->N : 0;
  const int npix = s->n * s->oh * s->ow;
  const size_t db_floats = db ? ky_conv_bias_grad_ws_floats(cu, npix, s->k) : 0;
  if (part_floats + db_floats == 0) return KY_OK;
  void *p = NULL;
  /* Round the partials up to 64 floats so the bias partials stay aligned as well. */
  const size_t part_pad = (part_floats + 63) / 64 * 64;
  KY_TRY(ky_cuda_workspace(cu, &p, (part_pad + db_floats) * sizeof(float)));
  float *ws = (float *)p;
  if (*splits > 1) {
    g->part = ws;
    g->epi = KY_CONV_EPI_PART;
    g->vec_out = (g->N % 4 == 0);
  }
  /* The bias gradient is a plain fp32 column sum of dy (g->a in wgrad) in every algorithm. */
  if (db) KY_TRY(ky_conv_bias_grad(cu, db, g->a, npix, s->k, ws + part_pad));
  return KY_OK;
}

ky_status ky_conv_splitk_finish(ky_cuda *cu, const ky_conv_gemm *g, int dir, int splits) {
  if (splits <= 1) return KY_OK;
  const int final_epi = dir == KY_CONV_DIR_FWD ? KY_CONV_EPI_STORE : KY_CONV_EPI_ACCUM;
  return ky_conv_split_reduce(cu, g->out, g->part, g->bias, splits, (size_t)g->M * g->N, g->N, final_epi, g->relu);
}

ky_status ky_conv_split_reduce(ky_cuda *cu, float *out, const float *part, const float *bias, int splits,
                               size_t mn, int n, int epi, int relu) {
  conv_split_reduce_kernel<<<ky_cuda_grid(cu, mn, 256), 256, 0, cu->stream>>>(out, part, bias, splits, mn, n,
                                                                              epi, relu);
  KY_CUDA_LAUNCH_CHECK(cu);
  return KY_OK;
}

static int bias_grad_rows(const ky_cuda *cu, int npix, int k) {
  /* Enough chunks to occupy the card, each long enough that the second pass stays small. */
  const long long chunks_want = 4LL * (cu->num_sms > 0 ? cu->num_sms : 80) * 128 / (k < 128 ? 128 : k);
  long long rows = (npix + chunks_want - 1) / (chunks_want > 0 ? chunks_want : 1);
  if (rows < 64) rows = 64;
  return (int)rows;
}

size_t ky_conv_bias_grad_ws_floats(ky_cuda *cu, int npix, int k) {
  const int rows = bias_grad_rows(cu, npix, k);
  return (size_t)((npix + rows - 1) / rows) * k;
}

ky_status ky_conv_bias_grad(ky_cuda *cu, float *db, const float *dy, int npix, int k, float *ws) {
  const int rows = bias_grad_rows(cu, npix, k);
  const int chunks = (npix + rows - 1) / rows;
  conv_bias_grad_partial<<<dim3((k + 127) / 128, chunks), 128, 0, cu->stream>>>(ws, dy, npix, k, rows);
  KY_CUDA_LAUNCH_CHECK(cu);
  return ky_conv_split_reduce(cu, db, ws, NULL, chunks, (size_t)k, k, KY_CONV_EPI_ACCUM, 0);
}

/* ---- the SIMT implicit GEMM ----------------------------------------------------------------- */

static int igemm_pick_cfg(const ky_cuda *cu, int m, int n) {
  const long long sms = cu->num_sms > 0 ? cu->num_sms : 80;
  for (int c = 0; c < KY_IGEMM_NCFG; ++c) {
    const long long bm = (m + kTileM[c] - 1) / kTileM[c], bn = (n + kTileN[c] - 1) / kTileN[c];
    const double waste = (double)(bm * kTileM[c]) * (double)(bn * kTileN[c]) / ((double)m * n);
    if (waste <= 1.3 && bm * bn >= sms) return c;
  }
  /* Small problems: the least padded of the small tiles; split-K fills the card. */
  int best = KY_IGEMM_T64x64;
  double bw = 1e30;
  for (int c = KY_IGEMM_NCFG - 1; c >= 0; --c) {
    const long long bm = (m + kTileM[c] - 1) / kTileM[c], bn = (n + kTileN[c] - 1) / kTileN[c];
    const double waste = (double)(bm * kTileM[c]) * (double)(bn * kTileN[c]) / ((double)m * n);
    if (waste < bw - 1e-9) { bw = waste; best = c; }
  }
  return best;
}

ky_status ky_conv_igemm_run(ky_cuda *cu, int dir, float *out, const float *a, const float *b,
                            const float *bias, float *db, const ky_conv_shape *s, int relu, int cfg) {
  ky_conv_gemm g;
  ky_conv_gemm_setup(&g, dir, out, a, b, bias, s, relu);
  if (cfg < 0 || cfg >= KY_IGEMM_SIMT_NCFG) cfg = igemm_pick_cfg(cu, g.M, g.N);
  const long long blocks = (long long)((g.M + kTileM[cfg] - 1) / kTileM[cfg]) * ((g.N + kTileN[cfg] - 1) / kTileN[cfg]);
  int splits = 1;
  KY_TRY(ky_conv_splitk_prepare(cu, &g, &splits, s, db, blocks, SIMT_BK, 16));

  bool vec = ky_cuda_aligned16(a) && ky_cuda_aligned16(b) && s->c % 4 == 0;
  if (dir != KY_CONV_DIR_FWD) vec = vec && s->k % 4 == 0;

  ky_status st;
  switch (dir) {
    case KY_CONV_DIR_FWD: st = launch_simt_cfg<KY_CONV_DIR_FWD>(cu, g, cfg, splits, vec); break;
    case KY_CONV_DIR_DGRAD: st = launch_simt_cfg<KY_CONV_DIR_DGRAD>(cu, g, cfg, splits, vec); break;
    default: st = launch_simt_cfg<KY_CONV_DIR_WGRAD>(cu, g, cfg, splits, vec); break;
  }
  KY_TRY(st);
  return ky_conv_splitk_finish(cu, &g, dir, splits);
}

/* Private header of the CUDA convolution (cuda/conv2d*.cu): the convolution-as-GEMM problem, the
 * tile loaders shared by the fp32 SIMT and the TF32 implicit-GEMM kernels, the epilogue, and the
 * internal entry points of each algorithm. Tested by tests/test_cuda_conv.c.
 *
 * Every direction is one GEMM  out[M x N] (+)= sum_r A[m, r] * B[r, n]  with operands gathered on
 * the fly (never materialised):
 *   fwd:   M = N*OH*OW output pixels, N = K,          R = KH*KW*C  (r = (ky*KW + kx)*C + c)
 *          A = im2col(x) (r contiguous in memory),     B[r, k] = w[k*R + r]
 *   dgrad: M = N*H*W input pixels,    N = C,          R = KH*KW*K  (r = (ky*KW + kx)*K + k)
 *          A[m, r] = dy at the output pixel that tap (ky, kx) of input pixel m lands on (zero when
 *          it falls between strides or outside), B[r, c] = w[k, ky, kx, c]
 *   wgrad: M = K,                     N = KH*KW*C,    R = N*OH*OW output pixels
 *          A[k, p] = dy[p*K + k],                      B[p, r] = im2col(x)[p, r]
 * Shared-memory tiles are stored k-major: As[kk][m], Bs[kk][n]. Loaders whose source is contiguous
 * along r ("k-contiguous") transpose while storing; the others store float4 rows directly. */
#ifndef KY_CONV2D_TILES_CUH
#define KY_CONV2D_TILES_CUH

#include "cuda/check.cuh"

/* Loaders and the epilogue are host-callable too, so that a host harness can replay a block's
 * index arithmetic; on the device ky_ldg is the read-only-cache load. */
#define KY_HD __host__ __device__ __forceinline__
KY_HD float ky_ldg(const float *p) {
#ifdef __CUDA_ARCH__
  return __ldg(p);
#else
  return *p;
#endif
}
KY_HD float4 ky_ldg(const float4 *p) {
#ifdef __CUDA_ARCH__
  return __ldg(p);
#else
  return *p;
#endif
}

enum { KY_CONV_DIR_FWD = 0, KY_CONV_DIR_DGRAD = 1, KY_CONV_DIR_WGRAD = 2 };
enum { KY_CONV_EPI_STORE = 0, KY_CONV_EPI_ACCUM = 1, KY_CONV_EPI_PART = 2 };

struct ky_conv_gemm {
  const float *a, *b;    /* fwd: x, w   dgrad: dy, w   wgrad: dy, x */
  float *out;            /* y [M, N], dx [M, N] or dw [M, N] */
  const float *bias;     /* fwd only; NULL for none */
  float *part;           /* split-K partial sums [splits][M][N] when epi == PART */
  int M, N, R;           /* GEMM sizes */
  int rchunk;            /* reduction length per split (blockIdx.z), a multiple of the kernel's BK */
  int epi, relu;         /* KY_CONV_EPI_*; relu only with STORE */
  int vec_out;           /* N % 4 == 0 and out/part 16-byte aligned */
  int n, h, w, c, k, kh, kw, stride, pad, dil, oh, ow;
};

/* Advances a (c, kx, ky) tap decode by `by` positions of r = (ky*KW + kx)*C + c. */
KY_HD void ky_conv_step_tap(int &c, int &kx, int &ky, int by, int C, int KW) {
  c += by;
  while (c >= C) {
    c -= C;
    if (++kx == KW) { kx = 0; ++ky; }
  }
}

KY_HD float4 ky_f4_zero() { return make_float4(0.f, 0.f, 0.f, 0.f); }

/* ---- k-contiguous loaders: each thread owns rows (tid + i*THREADS) / (BK/4), columns kq..kq+3 -- */
template <int ROWS, int BK, int THREADS>
struct ky_kcontig_pos {
  static constexpr int NV = ROWS * BK / 4;
  static constexpr int NPT = (NV + THREADS - 1) / THREADS;
  static_assert(THREADS % (BK / 4) == 0, "threads must tile the k-quads");
  int tid;
  KY_HD int row(int i) const { return (tid + i * THREADS) / (BK / 4); }
  KY_HD int kq() const { return (tid % (BK / 4)) * 4; }
  KY_HD bool live(int i) const { return NV % THREADS == 0 || tid + i * THREADS < NV; }
  template <int LD>
  KY_HD void store(float *s, const float4 (&v)[NPT]) const {
#pragma unroll
    for (int i = 0; i < NPT; ++i) {
      if (!live(i)) continue;
      const int r = row(i), q = kq();
      s[(q + 0) * LD + r] = v[i].x;
      s[(q + 1) * LD + r] = v[i].y;
      s[(q + 2) * LD + r] = v[i].z;
      s[(q + 3) * LD + r] = v[i].w;
    }
  }
};

/* ---- direct loaders: each thread owns rows kk = (tid + i*THREADS) / (COLS/4), cols col..col+3 -- */
template <int COLS, int BK, int THREADS>
struct ky_direct_pos {
  static constexpr int NV = COLS * BK / 4;
  static constexpr int NPT = (NV + THREADS - 1) / THREADS;
  static_assert(THREADS % (COLS / 4) == 0 || NV <= THREADS, "threads must tile the columns");
  int tid;
  KY_HD int kk(int i) const { return (tid + i * THREADS) / (COLS / 4); }
  KY_HD int col() const { return (tid % (COLS / 4)) * 4; }
  KY_HD bool live(int i) const { return NV % THREADS == 0 || tid + i * THREADS < NV; }
  template <int LD>
  KY_HD void store(float *s, const float4 (&v)[NPT]) const {
#pragma unroll
    for (int i = 0; i < NPT; ++i)
      if (live(i)) *reinterpret_cast<float4 *>(&s[kk(i) * LD + col()]) = v[i];
  }
};

/* fwd A: im2col(x), rows = output pixels. VEC: C % 4 == 0 and x 16-byte aligned. */
template <int ROWS, int BK, int THREADS, bool VEC>
struct ky_load_fwd_a : ky_kcontig_pos<ROWS, BK, THREADS> {
  using P = ky_kcontig_pos<ROWS, BK, THREADS>;
  const float *img[P::NPT];   /* x at this row's image, NULL when the row is past M */
  int ih0[P::NPT], iw0[P::NPT];
  int r, c, kx, ky;
  KY_HD void init(const ky_conv_gemm &p, int tid_, int row0, int kbeg) {
    this->tid = tid_;
    const int ohw = p.oh * p.ow;
#pragma unroll
    for (int i = 0; i < P::NPT; ++i) {
      const int m = row0 + this->row(i);
      img[i] = nullptr; ih0[i] = iw0[i] = 0;
      if (m < p.M && this->live(i)) {
        const int n = m / ohw, rem = m - n * ohw, oy = rem / p.ow, ox = rem - oy * p.ow;
        img[i] = p.a + (size_t)n * p.h * p.w * p.c;
        ih0[i] = oy * p.stride - p.pad;
        iw0[i] = ox * p.stride - p.pad;
      }
    }
    r = kbeg + this->kq();
    const int t = r / p.c;
    c = r - t * p.c; ky = t / p.kw; kx = t - ky * p.kw;
  }
  KY_HD void advance(const ky_conv_gemm &p) { r += BK; ky_conv_step_tap(c, kx, ky, BK, p.c, p.kw); }
  KY_HD float tap(const ky_conv_gemm &p, int i, int cc, int tx, int ty) const {
    const int ih = ih0[i] + ty * p.dil, iw = iw0[i] + tx * p.dil;
    if (!img[i] || (unsigned)ih >= (unsigned)p.h || (unsigned)iw >= (unsigned)p.w) return 0.f;
    return ky_ldg(img[i] + ((size_t)ih * p.w + iw) * p.c + cc);
  }
  KY_HD void fetch(const ky_conv_gemm &p, float4 (&v)[P::NPT]) const {
#pragma unroll
    for (int i = 0; i < P::NPT; ++i) {
      v[i] = ky_f4_zero();
      if (VEC) {
        const int ih = ih0[i] + ky * p.dil, iw = iw0[i] + kx * p.dil;
        if (r < p.R && img[i] && (unsigned)ih < (unsigned)p.h && (unsigned)iw < (unsigned)p.w)
          v[i] = ky_ldg(reinterpret_cast<const float4 *>(img[i] + ((size_t)ih * p.w + iw) * p.c + c));
      } else {
        int cc = c, tx = kx, ty = ky;
        float e[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          e[j] = (r + j < p.R) ? tap(p, i, cc, tx, ty) : 0.f;
          ky_conv_step_tap(cc, tx, ty, 1, p.c, p.kw);
        }
        v[i] = make_float4(e[0], e[1], e[2], e[3]);
      }
    }
  }
};

/* fwd B: w as [K][R] rows (k-contiguous). VEC: R % 4 == 0 and w aligned (implied by C % 4 == 0). */
template <int ROWS, int BK, int THREADS, bool VEC>
struct ky_load_fwd_b : ky_kcontig_pos<ROWS, BK, THREADS> {
  using P = ky_kcontig_pos<ROWS, BK, THREADS>;
  const float *wr[P::NPT];
  int r;
  KY_HD void init(const ky_conv_gemm &p, int tid_, int col0, int kbeg) {
    this->tid = tid_;
#pragma unroll
    for (int i = 0; i < P::NPT; ++i) {
      const int k = col0 + this->row(i);
      wr[i] = (k < p.N && this->live(i)) ? p.b + (size_t)k * p.R : nullptr;
    }
    r = kbeg + this->kq();
  }
  KY_HD void advance(const ky_conv_gemm &) { r += BK; }
  KY_HD void fetch(const ky_conv_gemm &p, float4 (&v)[P::NPT]) const {
#pragma unroll
    for (int i = 0; i < P::NPT; ++i) {
      v[i] = ky_f4_zero();
      if (!wr[i]) continue;
      if (VEC) {
        if (r < p.R) v[i] = ky_ldg(reinterpret_cast<const float4 *>(wr[i] + r));
      } else {
        v[i].x = r + 0 < p.R ? ky_ldg(wr[i] + r + 0) : 0.f;
        v[i].y = r + 1 < p.R ? ky_ldg(wr[i] + r + 1) : 0.f;
        v[i].z = r + 2 < p.R ? ky_ldg(wr[i] + r + 2) : 0.f;
        v[i].w = r + 3 < p.R ? ky_ldg(wr[i] + r + 3) : 0.f;
      }
    }
  }
};

/* dgrad A: rows = input pixels; r = (ky*KW + kx)*K + k over dy's channels. With stride s the
 * tap reaches output pixel ((ih + pad - ky*dil) / s) only when that division is exact.
 * VEC: K % 4 == 0 and dy aligned. */
template <int ROWS, int BK, int THREADS, bool VEC>
struct ky_load_dgrad_a : ky_kcontig_pos<ROWS, BK, THREADS> {
  using P = ky_kcontig_pos<ROWS, BK, THREADS>;
  const float *img[P::NPT];   /* dy at this row's image */
  int ihp[P::NPT], iwp[P::NPT];
  int r, k, kx, ky;
  KY_HD void init(const ky_conv_gemm &p, int tid_, int row0, int kbeg) {
    this->tid = tid_;
    const int hw = p.h * p.w;
#pragma unroll
    for (int i = 0; i < P::NPT; ++i) {
      const int m = row0 + this->row(i);
      img[i] = nullptr; ihp[i] = iwp[i] = 0;
      if (m < p.M && this->live(i)) {
        const int n = m / hw, rem = m - n * hw, iy = rem / p.w, ix = rem - iy * p.w;
        img[i] = p.a + (size_t)n * p.oh * p.ow * p.k;
        ihp[i] = iy + p.pad;
        iwp[i] = ix + p.pad;
      }
    }
    r = kbeg + this->kq();
    const int t = r / p.k;
    k = r - t * p.k; ky = t / p.kw; kx = t - ky * p.kw;
  }
  KY_HD void advance(const ky_conv_gemm &p) { r += BK; ky_conv_step_tap(k, kx, ky, BK, p.k, p.kw); }
  /* Offset of dy's pixel for tap (tx, ty) of row i, or -1 when the tap hits no output pixel. */
  KY_HD long long pix(const ky_conv_gemm &p, int i, int tx, int ty) const {
    int yy = ihp[i] - ty * p.dil, xx = iwp[i] - tx * p.dil;
    if (!img[i] || yy < 0 || xx < 0) return -1;
    if (p.stride != 1) {
      if (yy % p.stride || xx % p.stride) return -1;
      yy /= p.stride; xx /= p.stride;
    }
    if (yy >= p.oh || xx >= p.ow) return -1;
    return ((long long)yy * p.ow + xx) * p.k;
  }
  KY_HD void fetch(const ky_conv_gemm &p, float4 (&v)[P::NPT]) const {
#pragma unroll
    for (int i = 0; i < P::NPT; ++i) {
      v[i] = ky_f4_zero();
      if (VEC) {
        const long long o = r < p.R ? pix(p, i, kx, ky) : -1;
        if (o >= 0) v[i] = ky_ldg(reinterpret_cast<const float4 *>(img[i] + o + k));
      } else {
        int kk = k, tx = kx, ty = ky;
        float e[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const long long o = r + j < p.R ? pix(p, i, tx, ty) : -1;
          e[j] = o >= 0 ? ky_ldg(img[i] + o + kk) : 0.f;
          ky_conv_step_tap(kk, tx, ty, 1, p.k, p.kw);
        }
        v[i] = make_float4(e[0], e[1], e[2], e[3]);
      }
    }
  }
};

/* dgrad B: B[r, c] = w[k, ky, kx, c] with r = (ky*KW + kx)*K + k; columns c. VEC: C % 4 == 0. */
template <int COLS, int BK, int THREADS, bool VEC>
struct ky_load_dgrad_b : ky_direct_pos<COLS, BK, THREADS> {
  using P = ky_direct_pos<COLS, BK, THREADS>;
  int r[P::NPT], k[P::NPT], tap[P::NPT];  /* tap = ky*KW + kx */
  int c0;
  KY_HD void init(const ky_conv_gemm &p, int tid_, int col0, int kbeg) {
    this->tid = tid_;
    c0 = col0 + this->col();
#pragma unroll
    for (int i = 0; i < P::NPT; ++i) {
      r[i] = kbeg + this->kk(i);
      tap[i] = r[i] / p.k;
      k[i] = r[i] - tap[i] * p.k;
    }
  }
  KY_HD void advance(const ky_conv_gemm &p) {
#pragma unroll
    for (int i = 0; i < P::NPT; ++i) {
      r[i] += BK;
      k[i] += BK;
      while (k[i] >= p.k) { k[i] -= p.k; ++tap[i]; }
    }
  }
  KY_HD void fetch(const ky_conv_gemm &p, float4 (&v)[P::NPT]) const {
    const int taps = p.kh * p.kw;
#pragma unroll
    for (int i = 0; i < P::NPT; ++i) {
      v[i] = ky_f4_zero();
      if (!this->live(i) || r[i] >= p.R || c0 >= p.N) continue;
      const float *src = p.b + ((size_t)k[i] * taps + tap[i]) * p.c + c0;
      if (VEC) {
        v[i] = ky_ldg(reinterpret_cast<const float4 *>(src));
      } else {
        v[i].x = ky_ldg(src);
        v[i].y = c0 + 1 < p.N ? ky_ldg(src + 1) : 0.f;
        v[i].z = c0 + 2 < p.N ? ky_ldg(src + 2) : 0.f;
        v[i].w = c0 + 3 < p.N ? ky_ldg(src + 3) : 0.f;
      }
    }
  }
};

/* wgrad A: A[k, p] = dy[p*K + k]; rows of the tile are pixels, columns output channels.
 * VEC: K % 4 == 0 and dy aligned. */
template <int COLS, int BK, int THREADS, bool VEC>
struct ky_load_wgrad_a : ky_direct_pos<COLS, BK, THREADS> {
  using P = ky_direct_pos<COLS, BK, THREADS>;
  int px[P::NPT];
  int k0;
  KY_HD void init(const ky_conv_gemm &p, int tid_, int col0, int kbeg) {
    this->tid = tid_;
    k0 = col0 + this->col();
#pragma unroll
    for (int i = 0; i < P::NPT; ++i) px[i] = kbeg + this->kk(i);
  }
  KY_HD void advance(const ky_conv_gemm &) {
#pragma unroll
    for (int i = 0; i < P::NPT; ++i) px[i] += BK;
  }
  KY_HD void fetch(const ky_conv_gemm &p, float4 (&v)[P::NPT]) const {
#pragma unroll
    for (int i = 0; i < P::NPT; ++i) {
      v[i] = ky_f4_zero();
      if (!this->live(i) || px[i] >= p.R || k0 >= p.M) continue;
      const float *src = p.a + (size_t)px[i] * p.k + k0;
      if (VEC) {
        v[i] = ky_ldg(reinterpret_cast<const float4 *>(src));
      } else {
        v[i].x = ky_ldg(src);
        v[i].y = k0 + 1 < p.M ? ky_ldg(src + 1) : 0.f;
        v[i].z = k0 + 2 < p.M ? ky_ldg(src + 2) : 0.f;
        v[i].w = k0 + 3 < p.M ? ky_ldg(src + 3) : 0.f;
      }
    }
  }
};

/* wgrad B: B[p, r] = im2col(x)[p, r]; rows of the tile are output pixels, columns r.
 * VEC: C % 4 == 0 and x aligned. */
template <int COLS, int BK, int THREADS, bool VEC>
struct ky_load_wgrad_b : ky_direct_pos<COLS, BK, THREADS> {
  using P = ky_direct_pos<COLS, BK, THREADS>;
  int px[P::NPT], n[P::NPT], oy[P::NPT], ox[P::NPT];
  int cc[4], offy[4], offx[4];   /* tap of each of this thread's 4 columns (only [0] with VEC) */
  int r0;
  KY_HD void init(const ky_conv_gemm &p, int tid_, int col0, int kbeg) {
    this->tid = tid_;
    r0 = col0 + this->col();
    int c = 0, kx = 0, ky = 0;
    {
      const int t = r0 / p.c;
      c = r0 - t * p.c; ky = t / p.kw; kx = t - ky * p.kw;
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      cc[j] = c; offy[j] = ky * p.dil - p.pad; offx[j] = kx * p.dil - p.pad;
      ky_conv_step_tap(c, kx, ky, 1, p.c, p.kw);
    }
    const int ohw = p.oh * p.ow;
#pragma unroll
    for (int i = 0; i < P::NPT; ++i) {
      px[i] = kbeg + this->kk(i);
      n[i] = px[i] / ohw;
      const int rem = px[i] - n[i] * ohw;
      oy[i] = rem / p.ow; ox[i] = rem - oy[i] * p.ow;
    }
  }
  KY_HD void advance(const ky_conv_gemm &p) {
#pragma unroll
    for (int i = 0; i < P::NPT; ++i) {
      px[i] += BK;
      ox[i] += BK;
      while (ox[i] >= p.ow) {
        ox[i] -= p.ow;
        if (++oy[i] == p.oh) { oy[i] = 0; ++n[i]; }
      }
    }
  }
  KY_HD float tap(const ky_conv_gemm &p, int i, int j) const {
    const int ih = oy[i] * p.stride + offy[j], iw = ox[i] * p.stride + offx[j];
    if ((unsigned)ih >= (unsigned)p.h || (unsigned)iw >= (unsigned)p.w) return 0.f;
    return ky_ldg(p.b + (((size_t)n[i] * p.h + ih) * p.w + iw) * p.c + cc[j]);
  }
  KY_HD void fetch(const ky_conv_gemm &p, float4 (&v)[P::NPT]) const {
#pragma unroll
    for (int i = 0; i < P::NPT; ++i) {
      v[i] = ky_f4_zero();
      if (!this->live(i) || px[i] >= p.R || r0 >= p.N) continue;
      if (VEC) {
        const int ih = oy[i] * p.stride + offy[0], iw = ox[i] * p.stride + offx[0];
        if ((unsigned)ih < (unsigned)p.h && (unsigned)iw < (unsigned)p.w)
          v[i] = ky_ldg(reinterpret_cast<const float4 *>(p.b + (((size_t)n[i] * p.h + ih) * p.w + iw) * p.c + cc[0]));
      } else {
        v[i].x = tap(p, i, 0);
        v[i].y = r0 + 1 < p.N ? tap(p, i, 1) : 0.f;
        v[i].z = r0 + 2 < p.N ? tap(p, i, 2) : 0.f;
        v[i].w = r0 + 3 < p.N ? tap(p, i, 3) : 0.f;
      }
    }
  }
};

/* Loader pairs per direction: A rows span BM, B columns span BN. */
template <int DIR, int BM, int BN, int BK, int THREADS, bool VEC> struct ky_conv_loaders;
template <int BM, int BN, int BK, int THREADS, bool VEC>
struct ky_conv_loaders<KY_CONV_DIR_FWD, BM, BN, BK, THREADS, VEC> {
  using A = ky_load_fwd_a<BM, BK, THREADS, VEC>;
  using B = ky_load_fwd_b<BN, BK, THREADS, VEC>;
};
template <int BM, int BN, int BK, int THREADS, bool VEC>
struct ky_conv_loaders<KY_CONV_DIR_DGRAD, BM, BN, BK, THREADS, VEC> {
  using A = ky_load_dgrad_a<BM, BK, THREADS, VEC>;
  using B = ky_load_dgrad_b<BN, BK, THREADS, VEC>;
};
template <int BM, int BN, int BK, int THREADS, bool VEC>
struct ky_conv_loaders<KY_CONV_DIR_WGRAD, BM, BN, BK, THREADS, VEC> {
  using A = ky_load_wgrad_a<BM, BK, THREADS, VEC>;
  using B = ky_load_wgrad_b<BN, BK, THREADS, VEC>;
};

/* Writes `W` consecutive results of row `row` starting at column `col` (W = 2 or 4), honouring
 * the bounds, the epilogue kind and the split slot z. */
template <int W>
KY_HD void ky_conv_emit(const ky_conv_gemm &p, int z, int row, int col, const float *v) {
  if (row >= p.M || col >= p.N) return;
  const size_t off = (size_t)row * p.N + col;
  float *dst = p.epi == KY_CONV_EPI_PART ? p.part + (size_t)z * p.M * p.N + off : p.out + off;
  float r[W];
#pragma unroll
  for (int j = 0; j < W; ++j) {
    float x = v[j];
    if (p.epi == KY_CONV_EPI_STORE) {
      if (p.bias && col + j < p.N) x += p.bias[col + j];
      if (p.relu) x = fmaxf(x, 0.f);
    }
    r[j] = x;
  }
  if (p.vec_out && col + W <= p.N) {
    if (W == 4) {
      float4 o = make_float4(r[0], r[1], r[2], r[3]);
      if (p.epi == KY_CONV_EPI_ACCUM) {
        const float4 d = *reinterpret_cast<const float4 *>(dst);
        o.x += d.x; o.y += d.y; o.z += d.z; o.w += d.w;
      }
      *reinterpret_cast<float4 *>(dst) = o;
    } else {
      float2 o = make_float2(r[0], r[1]);
      if (p.epi == KY_CONV_EPI_ACCUM) {
        const float2 d = *reinterpret_cast<const float2 *>(dst);
        o.x += d.x; o.y += d.y;
      }
      *reinterpret_cast<float2 *>(dst) = o;
    }
    return;
  }
#pragma unroll
  for (int j = 0; j < W; ++j) {
    if (col + j >= p.N) break;
    dst[j] = p.epi == KY_CONV_EPI_ACCUM ? dst[j] + r[j] : r[j];
  }
}

/* ---- internal entry points (all arguments already checked by cuda/conv2d.cu) ----------------- */

/* Fills the GEMM description of one direction (pointers, sizes, epilogue). */
void ky_conv_gemm_setup(ky_conv_gemm *g, int dir, float *out, const float *a, const float *b,
                        const float *bias, const ky_conv_shape *s, int relu);

/* Launches split-K partial reduction: out[i] (+)= sum_z part[z][i] in z order, then bias / relu
 * (epi == STORE) or accumulate (epi == ACCUM). mn = M*N elements, n = N for the bias index. */
ky_status ky_conv_split_reduce(ky_cuda *cu, float *out, const float *part, const float *bias, int splits,
                               size_t mn, int n, int epi, int relu);
/* db[k] += sum over pixels of dy[p, k], in a fixed order (workspace partials, no atomics).
 * `ws` must hold ky_conv_bias_grad_ws_floats() floats. */
size_t ky_conv_bias_grad_ws_floats(ky_cuda *cu, int npix, int k);
ky_status ky_conv_bias_grad(ky_cuda *cu, float *db, const float *dy, int npix, int k, float *ws);

/* Tile configurations of the implicit-GEMM kernels (index into each kernel's table). The SIMT
 * kernel has one more: 128x128 capped at 128 registers (two blocks per SM, some spilling), left
 * to the AUTO chooser to accept or reject on the card at hand. */
enum { KY_IGEMM_T128x128 = 0, KY_IGEMM_T128x64, KY_IGEMM_T64x128, KY_IGEMM_T64x64, KY_IGEMM_NCFG };
enum { KY_IGEMM_T128x128_R128 = KY_IGEMM_NCFG, KY_IGEMM_SIMT_NCFG };
/* cfg < 0: heuristic. splits <= 0: heuristic. */
ky_status ky_conv_igemm_run(ky_cuda *cu, int dir, float *out, const float *a, const float *b,
                            const float *bias, float *db, const ky_conv_shape *s, int relu, int cfg);
ky_status ky_conv_tf32_run(ky_cuda *cu, int dir, float *out, const float *a, const float *b,
                           const float *bias, float *db, const ky_conv_shape *s, int relu, int cfg);
ky_status ky_conv_im2col_run(ky_cuda *cu, int dir, float *out, const float *a, const float *b,
                             const float *bias, float *db, const ky_conv_shape *s, int relu);

/* Shared split-K planning: picks the number of reduction splits so that the grid covers the
 * card about twice, each split keeping at least `min_tiles` tiles of `bk`. Returns rchunk. */
int ky_conv_plan_splits(const ky_cuda *cu, long long blocks, int r, int bk, int min_tiles, int *splits);
/* The split-K set-up shared by the implicit-GEMM algorithms, for a grid of `blocks` output tiles:
 * plans the splits (ky_conv_plan_splits), takes one workspace for the partials [splits][M][N]
 * (padded to 64 floats) and the bias-gradient partials, points g at the partials when split, and
 * runs the bias gradient (db != NULL). ky_conv_splitk_finish then sums the partials in split order
 * into g->out with the direction's final epilogue (nothing when splits == 1). */
ky_status ky_conv_splitk_prepare(ky_cuda *cu, ky_conv_gemm *g, int *splits, const ky_conv_shape *s, float *db,
                                 long long blocks, int bk, int min_tiles);
ky_status ky_conv_splitk_finish(ky_cuda *cu, const ky_conv_gemm *g, int dir, int splits);

#endif

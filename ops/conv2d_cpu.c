/* CPU reference convolution (NHWC activations, OHWI weights): im2col of pixel tiles + packed GEMM.
 * Tested by tests/test_ops_kernels.c (against a naive direct convolution on odd shapes) and by
 * tests/test_parity_ops.c (PyTorch fixtures); timed by bench/bench_cpu_ops.c.
 *
 * All three passes are one GEMM shape C[M x N] += A[M x Kd] * B[Kd x N]:
 *   forward  y[P x K]     += col[P x R] * W^T[R x K]     (R = kh*kw*c, r ordered (kh, kw, c))
 *   dgrad    dcol[P x R]  += dy[P x K]  * W[K x R]      then col2im adds dcol into dx
 *   wgrad    dW[K x R]    += dy^T[K x P] * col[P x R]
 * B is packed in panels of NR columns ([Kd][NR] each); A is read in place from row-major rows
 * (im2col rows, dy, or x itself for 1x1 stride-1 convs), except in wgrad where A = dy^T is packed
 * in panels of MR rows. The micro-kernel keeps an MR x NR block of C in registers.
 * When C is a multiple of NR (every layer of the models but the 3-channel stem) the wgrad builds
 * no im2col tile: a column panel of dW is NR channels of one tap, so each B panel is gathered
 * straight from the input pixels under that tap (wgrad_implicit_chunk), with the same sums.
 * Pixels are processed in tiles of TILE, so the scratch size depends on the layer, never on N*H*W.
 * Two special cases: K <= SMALL_K (the 3-class logits conv) runs a direct, channel-vectorised
 * convolution, and other small K (5, 6, 17, 18) compute the forward as y^T = W col^T.
 *
 * Threads (core/pool.h): every output element is computed by exactly the same sequence of
 * operations whatever the thread count, so the results are bitwise those of one thread:
 *   forward  chunks = (pixel tile, block of NR-panels of K): each element of y belongs to one chunk
 *            and its GEMM sum runs in the same KC slices as on one thread;
 *   dgrad    per round of tiles, dcol by (tile, NR-panel block), then col2im by bands of input
 *            rows: every dx element is owned by one band and receives its pixels in index order;
 *   wgrad    per round of tiles, packing by tile, then the GEMM by blocks of dW (each gathering
 *            its own B panels when implicit): every dW element adds the tiles' partial sums in
 *            tile order;
 *   direct   forward by output pixel tiles, dgrad by input pixel tiles (each dx element gathers its
 *            output pixels in index order), wgrad by rounds of tiles: one partial dW per tile, then
 *            the partials added in tile order by blocks of dW.
 * Block sizes only decide which thread computes an element, never how, so they may follow the
 * thread count; the tile size (TILE) and the KC slices, which fix summation order, do not. */
#include <string.h>

#include "core/pool.h"

#include "ops/kernels.h"

enum {
  MR = 6,     /* rows of C per micro-kernel call (6 x 2 AVX2 vectors = 12 accumulators) */
  NR = 16,    /* columns of C per micro-kernel call */
  KC = 256,   /* depth of one pass over packed A / B, so a B panel slice stays in L1 */
  TILE = 240, /* output pixels per im2col tile (a multiple of MR and of NR) */
};

static inline size_t round_up(size_t v, size_t m) { return (v + m - 1) / m * m; }
static inline size_t min_z(size_t a, size_t b) { return a < b ? a : b; }
static inline int min_i(int a, int b) { return a < b ? a : b; }

/* Few output channels (K = 5, 6, 17, 18; K <= 4 goes direct): W^T would fill NR-wide panels mostly
 * with zeros, so the forward computes y^T = W * col^T instead, with K on the MR side. */
static int fwd_transposed(const ky_conv_shape *s) {
  return round_up((size_t)s->k, MR) * 4 < round_up((size_t)s->k, NR) * 3;
}

/* Scratch for each pass (floats); ky_cpu_conv2d_work_floats returns the largest. Per-thread parts
 * are counted once per thread; dgrad and wgrad keep a round of tiles (round_tiles) in flight. The
 * direct path (K <= 4) needs K*R per tile of a round for wgrad (direct_acc_floats). */

static size_t n_tiles(const ky_conv_shape *s) { return ((size_t)s->n * s->oh * s->ow + TILE - 1) / TILE; }
static size_t round_tiles(const ky_conv_shape *s, int threads) {
  size_t t = n_tiles(s), g = threads > 1 ? 2 * (size_t)threads : 1;
  return t < g ? t : g;
}

static size_t work_fwd(const ky_conv_shape *s, size_t r, int threads) {
  if (fwd_transposed(s))
    return round_up((size_t)s->k, MR) * r /* packed W */ +
           (size_t)threads * ((size_t)TILE * r /* packed col^T */ + (size_t)s->k * TILE /* y^T tile */ +
                              (size_t)NR * r /* rows */);
  return round_up((size_t)s->k, NR) * r /* packed W^T */ + (size_t)threads * TILE * r /* im2col rows */;
}
static int dgrad_as_fwd(const ky_conv_shape *s);
static void dgrad_shape(ky_conv_shape *t, const ky_conv_shape *s);
static size_t dgrad_wt_floats(const ky_conv_shape *s);
static size_t work_dgrad(const ky_conv_shape *s, size_t r, int threads) {
  if (dgrad_as_fwd(s)) {
    ky_conv_shape t;
    dgrad_shape(&t, s);
    return dgrad_wt_floats(s) + work_fwd(&t, (size_t)t.kh * t.kw * t.c, threads);
  }
  return round_up(r, NR) * (size_t)s->k /* packed W */ + round_tiles(s, threads) * TILE * r /* dcol */;
}
/* No im2col tile when C is a multiple of NR: the forward reads the input rows under each tap through
 * pointers, and each column panel of dW is one tap and NR channels. The tile's per-slot im2col
 * buffer (TILE * R floats) then holds the forward's pointer tables and a zero row instead. */
static int conv_implicit(const ky_conv_shape *s) { return s->c % NR == 0; }
/* Its tiles per round: about 1 MiB of packed dy^T, shared by every block of dW. */
static size_t wgrad_implicit_round(const ky_conv_shape *s) {
  size_t g = ((size_t)1 << 20) / (round_up((size_t)s->k, MR) * TILE * sizeof(float)), t = n_tiles(s);
  g = g < 1 ? 1 : g;
  return g < t ? g : t;
}
static size_t work_wgrad(const ky_conv_shape *s, size_t r, int threads) {
  if (conv_implicit(s))
    return wgrad_implicit_round(s) * round_up((size_t)s->k, MR) * TILE /* packed dy^T */ + (size_t)s->c /* zeros */;
  return round_tiles(s, threads) * (round_up((size_t)s->k, MR) * TILE /* packed dy^T */ +
                                    round_up(r, NR) * TILE /* packed col */) +
         (size_t)threads * r /* rows */;
}

/* The direct wgrad's dW partial of one tile ([K][R]), rounded to whole 64-byte lines, and the tiles
 * of one round (8 per thread: the round's two pool passes cost a few microseconds, a tile of the
 * logits conv about twenty). */
static size_t direct_acc_floats(const ky_conv_shape *s) {
  return round_up((size_t)s->k * s->kh * s->kw * s->c, 16);
}
static size_t direct_round(const ky_conv_shape *s, int threads) { return min_z(n_tiles(s), 8 * (size_t)threads); }

size_t ky_cpu_conv2d_work_floats(const ky_conv_shape *s, int threads) {
  if (threads < 1) threads = 1;
  size_t r = (size_t)s->kh * s->kw * s->c;
  size_t a = work_fwd(s, r, threads), b = work_dgrad(s, r, threads), c = work_wgrad(s, r, threads);
  size_t d = direct_round(s, threads) * direct_acc_floats(s) + (size_t)s->c /* zero row */;
  size_t m = a > b ? a : b;
  m = m > c ? m : c;
  return m > d ? m : d;
}

/* ---- GEMM on packed operands ------------------------------------------------------------- */

/* Eight floats as one value (GCC/Clang vector extension): AVX2 registers with -mavx2, pairs of SSE
 * registers or scalars elsewhere. aligned(4): loads and stores need no 32-byte alignment. */
typedef float v8f __attribute__((vector_size(32), aligned(4)));

/* acc + a*b. A macro, not a function: a vector-typed return would warn about the ABI on builds
 * without AVX. -std=c11 forbids contracting a*b+c into an FMA, so ask for it explicitly. */
#ifdef __FMA__
#define MADD8(a, b, acc) __builtin_ia32_vfmaddps256((a), (b), (acc))
#else
#define MADD8(a, b, acc) ((a) * (b) + (acc))
#endif

/* c[MR x NR] (row stride ldc) += a[kc][MR] * b[kc][NR], keeping the 6 x 16 block of C in 12 vector
 * registers (no edge cases in here: the caller handles partial blocks). */
static void micro_kernel(int kc, const float *restrict a, const float *restrict b, float *restrict c,
                         size_t ldc) {
  v8f acc[MR][2];
  for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = (v8f){0};
  for (int k = 0; k < kc; k++) {
    const float *ak = a + (size_t)k * MR;
    v8f b0 = *(const v8f *)(b + (size_t)k * NR), b1 = *(const v8f *)(b + (size_t)k * NR + 8);
    for (int i = 0; i < MR; i++) {
      float av = ak[i];
      v8f ai = {av, av, av, av, av, av, av, av}; /* one vbroadcastss from memory */
      acc[i][0] = MADD8(ai, b0, acc[i][0]);
      acc[i][1] = MADD8(ai, b1, acc[i][1]);
    }
  }
  for (int i = 0; i < MR; i++) {
    *(v8f *)(c + i * ldc) += acc[i][0];
    *(v8f *)(c + i * ldc + 8) += acc[i][1];
  }
}

/* A partial block: run the full kernel on the packing's zeros into a scratch block, keep mr x nr. */
static void micro_kernel_edge(int kc, const float *a, const float *b, float *c, size_t ldc, int mr, int nr) {
  float tmp[MR * NR] = {0};
  micro_kernel(kc, a, b, tmp, NR);
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nr; j++) c[i * ldc + j] += tmp[i * NR + j];
}

/* C[m x n] += A * B with A packed as ceil(m/MR) panels of [kd][MR] and B as ceil(n/NR) panels of
 * [kd][NR]. The depth is split in KC slices; within a slice one B panel slice (KC*NR floats) is
 * reused from L1 across all A panels. Summation order is fixed, so results are reproducible. */
static void gemm_packed(float *c, size_t ldc, const float *ap, const float *bp, int m, int n, int kd) {
  for (int k0 = 0; k0 < kd; k0 += KC) {
    int kc = kd - k0 < KC ? kd - k0 : KC;
    for (int j = 0; j < n; j += NR) {
      const float *b = bp + (size_t)(j / NR) * kd * NR + (size_t)k0 * NR;
      int nr = n - j < NR ? n - j : NR;
      for (int i = 0; i < m; i += MR) {
        const float *a = ap + (size_t)(i / MR) * kd * MR + (size_t)k0 * MR;
        int mr = m - i < MR ? m - i : MR;
        if (mr == MR && nr == NR) micro_kernel(kc, a, b, c + (size_t)i * ldc + j, ldc);
        else micro_kernel_edge(kc, a, b, c + (size_t)i * ldc + j, ldc, mr, nr);
      }
    }
  }
}

/* C[m x n] += A * B with B packed as for gemm_packed and A's rows read in place through pointers,
 * in runs of cin: depth kk of row i is tp[(kk / cin) * m + i][kk % cin]. A row-major A is one run
 * (gemm_rows); the implicit forward's A has one run per tap (tap_rows' tables), so the im2col
 * rows are never built. micro_kernel_taps walks a KC slice run by run with the accumulators kept,
 * so every element gets the same operations in the same order either way. */
static void micro_kernel_taps(int kc, int k0, const float *const *tp, int np, int i, int cin,
                              const float *restrict b, float *restrict c, size_t ldc) {
  v8f acc[MR][2];
  for (int q = 0; q < MR; q++) acc[q][0] = acc[q][1] = (v8f){0};
  for (int k = 0; k < kc;) {
    int tap = (k0 + k) / cin, ch = (k0 + k) % cin, len = min_i(cin - ch, kc - k);
    const float *ar[MR];
    for (int q = 0; q < MR; q++) ar[q] = tp[(size_t)tap * np + i + q] + ch;
    const float *bk = b + (size_t)k * NR;
    for (int z = 0; z < len; z++) {
      v8f b0 = *(const v8f *)(bk + (size_t)z * NR), b1 = *(const v8f *)(bk + (size_t)z * NR + 8);
      for (int q = 0; q < MR; q++) {
        float av = ar[q][z];
        v8f ai = {av, av, av, av, av, av, av, av};
        acc[q][0] = MADD8(ai, b0, acc[q][0]);
        acc[q][1] = MADD8(ai, b1, acc[q][1]);
      }
    }
    k += len;
  }
  for (int q = 0; q < MR; q++) {
    *(v8f *)(c + q * ldc) += acc[q][0];
    *(v8f *)(c + q * ldc + 8) += acc[q][1];
  }
}

static void gemm_taps(float *c, size_t ldc, const float *const *tp, int cin, const float *bp, int m, int n, int kd) {
  float tmp[KC * MR];
  for (int k0 = 0; k0 < kd; k0 += KC) {
    int kc = kd - k0 < KC ? kd - k0 : KC;
    for (int j = 0; j < n; j += NR) {
      const float *b = bp + (size_t)(j / NR) * kd * NR + (size_t)k0 * NR;
      int nr = n - j < NR ? n - j : NR;
      for (int i = 0; i < m; i += MR) {
        int mr = m - i < MR ? m - i : MR;
        if (mr == MR && nr == NR) {
          micro_kernel_taps(kc, k0, tp, m, i, cin, b, c + (size_t)i * ldc + j, ldc);
        } else {
          for (int k = 0; k < kc; k++)
            for (int q = 0; q < MR; q++)
              tmp[k * MR + q] = q < mr ? tp[(size_t)((k0 + k) / cin) * m + i + q][(k0 + k) % cin] : 0.0f;
          micro_kernel_edge(kc, tmp, b, c + (size_t)i * ldc + j, ldc, mr, nr);
        }
      }
    }
  }
}

/* C[m x n] += A * B with A row-major in place (a[i*lda + k], m <= TILE rows). */
static void gemm_rows(float *c, size_t ldc, const float *a, size_t lda, const float *bp, int m, int n, int kd) {
  const float *rows[TILE];
  KY_ASSERT(m <= TILE);
  for (int i = 0; i < m; i++) rows[i] = a + (size_t)i * lda;
  gemm_taps(c, ldc, rows, kd, bp, m, n, kd);
}

/* B panels from a strided matrix: element (k, j) = src[k*rs + j*cs], k < kd, j < n; only the
 * panels holding columns [jlo, jhi) (multiples of NR, jhi clipped to n). */
static void pack_b(float *restrict bp, const float *restrict src, size_t rs, size_t cs, int kd, int n, int jlo,
                   int jhi) {
  for (int j0 = jlo; j0 < jhi && j0 < n; j0 += NR) {
    float *panel = bp + (size_t)(j0 / NR) * kd * NR;
    int nr = n - j0 < NR ? n - j0 : NR;
    for (int k = 0; k < kd; k++) {
      float *d = panel + (size_t)k * NR;
      const float *srow = src + (size_t)k * rs + (size_t)j0 * cs;
      for (int j = 0; j < nr; j++) d[j] = srow[(size_t)j * cs];
      for (int j = nr; j < NR; j++) d[j] = 0.0f;
    }
  }
}

/* A panels from a row-major matrix: element (i, k) = src[i*ld + k], i < m, k < kd. */
static void pack_a_rows(float *restrict ap, const float *restrict src, size_t ld, int m, int kd) {
  for (int i0 = 0; i0 < m; i0 += MR) {
    float *panel = ap + (size_t)(i0 / MR) * kd * MR;
    int mr = m - i0 < MR ? m - i0 : MR;
    for (int k = 0; k < kd; k++)
      for (int i = 0; i < MR; i++) panel[(size_t)k * MR + i] = i < mr ? src[(size_t)(i0 + i) * ld + k] : 0.0f;
  }
}

/* A panels from the transpose of a row-major [kd x ld] matrix: element (i, k) = src[k*ld + i]. */
static void pack_a_cols(float *restrict ap, const float *restrict src, size_t ld, int m, int kd) {
  for (int i0 = 0; i0 < m; i0 += MR) {
    float *panel = ap + (size_t)(i0 / MR) * kd * MR;
    int mr = m - i0 < MR ? m - i0 : MR;
    for (int k = 0; k < kd; k++) {
      const float *srow = src + (size_t)k * ld + i0;
      float *d = panel + (size_t)k * MR;
      if (mr == MR) { /* a fixed count: six moves, where a variable one became a memcpy call */
        for (int i = 0; i < MR; i++) d[i] = srow[i];
        continue;
      }
      for (int i = 0; i < mr; i++) d[i] = srow[i];
      for (int i = mr; i < MR; i++) d[i] = 0.0f;
    }
  }
}

/* ---- im2col / col2im ---------------------------------------------------------------------- */

/* d[0:n] = s[0:n] (or zeros when s is NULL) for the short runs of im2col (n = channels, often 3 or
 * 64): library memcpy / memset calls cost more than the copy at these sizes. */
static inline void copy_run(float *restrict d, const float *restrict s, size_t n) {
  size_t q = 0;
  if (s) {
    for (; q + 8 <= n; q += 8) *(v8f *)(d + q) = *(const v8f *)(s + q);
    for (; q < n; q++) d[q] = s[q];
  } else {
    for (; q + 8 <= n; q += 8) *(v8f *)(d + q) = (v8f){0};
    for (; q < n; q++) d[q] = 0.0f;
  }
}

/* 1x1, stride 1, no padding: the im2col row of an output pixel is the input pixel itself. */
static int is_pointwise(const ky_conv_shape *s) {
  return s->kh == 1 && s->kw == 1 && s->stride == 1 && s->pad == 0;
}

/* The R = kh*kw*c input values that output pixel p (flat over n, oh, ow) sees, in OHWI order;
 * zeros where the window hangs over the padding. Returns `row`, or x itself for pointwise convs. */
static const float *im2col_row(float *restrict row, const float *restrict x, const ky_conv_shape *s,
                               size_t p) {
  size_t c = (size_t)s->c;
  if (is_pointwise(s)) return x + p * c;
  size_t ohw = (size_t)s->oh * s->ow;
  size_t n = p / ohw, rem = p % ohw;
  int oy = (int)(rem / s->ow), ox = (int)(rem % s->ow);
  const float *xn = x + n * s->h * s->w * c;
  float *d = row;
  int ix0 = ox * s->stride - s->pad;
  size_t span = (size_t)s->kw * c;
  for (int i = 0; i < s->kh; i++, d += span) {
    int iy = oy * s->stride - s->pad + i * s->dil;
    if (iy < 0 || iy >= s->h) {
      copy_run(d, NULL, span);
      continue;
    }
    const float *xr = xn + (size_t)iy * s->w * c;
    if (s->dil == 1) { /* the kernel row is one contiguous run of x, clipped at the borders */
      int jlo = ix0 < 0 ? -ix0 : 0, jhi = s->w - ix0 < s->kw ? s->w - ix0 : s->kw;
      if (jlo > s->kw) jlo = s->kw; /* padding wider than the kernel */
      if (jhi < jlo) jhi = jlo;
      copy_run(d, NULL, (size_t)jlo * c);
      copy_run(d + (size_t)jlo * c, xr + (size_t)(ix0 + jlo) * c, (size_t)(jhi - jlo) * c);
      copy_run(d + (size_t)jhi * c, NULL, (size_t)(s->kw - jhi) * c);
    } else {
      for (int j = 0; j < s->kw; j++) {
        int ix = ix0 + j * s->dil;
        copy_run(d + (size_t)j * c, ix >= 0 && ix < s->w ? xr + (size_t)ix * c : NULL, c);
      }
    }
  }
  return row;
}

/* dx[window of pixel p] += dcol_row, the adjoint of im2col_row (same contiguous runs), for the
 * input rows ylo <= iy < yhi only (a band owned by one thread). */
static void col2im_row(float *restrict dx, const float *restrict drow, const ky_conv_shape *s, size_t p, int ylo,
                       int yhi) {
  size_t c = (size_t)s->c;
  size_t ohw = (size_t)s->oh * s->ow;
  size_t n = p / ohw, rem = p % ohw;
  int oy = (int)(rem / s->ow), ox = (int)(rem % s->ow);
  float *dxn = dx + n * s->h * s->w * c;
  int ix0 = ox * s->stride - s->pad;
  size_t span = (size_t)s->kw * c;
  const float *d = drow;
  for (int i = 0; i < s->kh; i++, d += span) {
    int iy = oy * s->stride - s->pad + i * s->dil;
    if (iy < ylo || iy >= yhi) continue;
    float *xr = dxn + (size_t)iy * s->w * c;
    if (s->dil == 1) {
      int jlo = ix0 < 0 ? -ix0 : 0, jhi = s->w - ix0 < s->kw ? s->w - ix0 : s->kw;
      if (jhi <= jlo) continue; /* the window misses the image along x */
      float *o = xr + (size_t)(ix0 + jlo) * c;
      const float *g = d + (size_t)jlo * c;
      for (size_t q = 0; q < (size_t)(jhi - jlo) * c; q++) o[q] += g[q];
    } else {
      for (int j = 0; j < s->kw; j++) {
        int ix = ix0 + j * s->dil;
        if (ix < 0 || ix >= s->w) continue;
        float *o = xr + (size_t)ix * c;
        const float *g = d + (size_t)j * c;
        for (size_t q = 0; q < c; q++) o[q] += g[q];
      }
    }
  }
}

/* rows[q] = the c input channels that tap `tap` (kh-major) of output pixel p0 + q sees, or zero where
 * the tap falls on padding: the im2col columns of that tap, without copying them. */
static void tap_rows(const float **rows, const float *x, const float *zero, const ky_conv_shape *s, size_t p0,
                     int np, int tap) {
  size_t ohw = (size_t)s->oh * s->ow, n = p0 / ohw, rem = p0 % ohw, c = (size_t)s->c;
  int oy = (int)(rem / s->ow), ox = (int)(rem % s->ow);
  int dy = (tap / s->kw) * s->dil - s->pad, dx = (tap % s->kw) * s->dil - s->pad;
  for (int q = 0; q < np; q++) {
    int iy = oy * s->stride + dy, ix = ox * s->stride + dx;
    rows[q] = iy >= 0 && iy < s->h && ix >= 0 && ix < s->w ? x + ((n * s->h + (size_t)iy) * s->w + (size_t)ix) * c
                                                          : zero;
    if (++ox == s->ow) {
      ox = 0;
      if (++oy == s->oh) {
        oy = 0;
        n++;
      }
    }
  }
}

/* One packed panel of L output pixels starting at p: panel[q*L + l] = im2col row of pixel p + l,
 * zeros for lanes l >= nvalid. The L rows are gathered first (rows: [L][R] scratch), then
 * interleaved, so both the reads and the writes run sequentially. */
static void im2col_panel(float *restrict panel, int lanes, float *restrict rows, const float *x,
                         const ky_conv_shape *s, size_t p, int nvalid) {
  int r = s->kh * s->kw * s->c;
  const float *src[NR];
  for (int l = 0; l < lanes; l++) {
    if (l < nvalid) {
      src[l] = im2col_row(rows + (size_t)l * r, x, s, p + l);
    } else {
      memset(rows + (size_t)l * r, 0, (size_t)r * sizeof *rows);
      src[l] = rows + (size_t)l * r;
    }
  }
  for (int q = 0; q < r; q++)
    for (int l = 0; l < lanes; l++) panel[(size_t)q * lanes + l] = src[l][q];
}

/* ---- direct convolution for very few output channels ---------------------------------------
 * With K <= SMALL_K (the 3-class logits conv) a GEMM has too little depth or width to pay for
 * im2col: these loops walk the window taps directly, vectorised over the input channels, with
 * the K accumulators in registers (K is a compile-time constant in each specialisation). */
enum { SMALL_K = 4 };

static int conv_direct(const ky_conv_shape *s) { return s->k <= SMALL_K; }

/* Window of output pixel p: image n's base offset, the first input row / column of the window. */
static void out_pixel(const ky_conv_shape *s, size_t p, size_t *xbase, int *iy0, int *ix0) {
  size_t ohw = (size_t)s->oh * s->ow, n = p / ohw, rem = p % ohw;
  *xbase = n * s->h * s->w * (size_t)s->c;
  *iy0 = (int)(rem / s->ow) * s->stride - s->pad;
  *ix0 = (int)(rem % s->ow) * s->stride - s->pad;
}


/* Output pixels [p0, p1). */
static inline __attribute__((always_inline)) void direct_fwd_k(float *y, const float *x, const float *w,
                                                               const float *b, const ky_conv_shape *s,
                                                               int relu, int add, size_t p0, size_t p1, const int K) {
  size_t c = (size_t)s->c, r = (size_t)s->kh * s->kw * c;
  for (size_t p = p0; p < p1; p++) {
    size_t xb;
    int iy0, ix0;
    out_pixel(s, p, &xb, &iy0, &ix0);
    v8f acc[SMALL_K][2];
    float tail[SMALL_K];
    for (int k = 0; k < K; k++) {
      acc[k][0] = acc[k][1] = (v8f){0};
      tail[k] = 0.0f;
    }
    for (int i = 0; i < s->kh; i++) {
      int iy = iy0 + i * s->dil;
      if (iy < 0 || iy >= s->h) continue;
      for (int j = 0; j < s->kw; j++) {
        int ix = ix0 + j * s->dil;
        if (ix < 0 || ix >= s->w) continue;
        const float *xp = x + xb + ((size_t)iy * s->w + ix) * c;
        const float *wt = w + ((size_t)i * s->kw + j) * c;
        size_t q = 0;
        for (; q + 16 <= c; q += 16) {
          v8f x0 = *(const v8f *)(xp + q), x1 = *(const v8f *)(xp + q + 8);
          for (int k = 0; k < K; k++) {
            acc[k][0] = MADD8(x0, *(const v8f *)(wt + k * r + q), acc[k][0]);
            acc[k][1] = MADD8(x1, *(const v8f *)(wt + k * r + q + 8), acc[k][1]);
          }
        }
        for (; q < c; q++)
          for (int k = 0; k < K; k++) tail[k] += xp[q] * wt[k * r + q];
      }
    }
    for (int k = 0; k < K; k++) {
      v8f v = acc[k][0] + acc[k][1];
      float sum = ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7])) + tail[k];
      if (b) sum += b[k];
      if (add) y[p * K + k] += sum;
      else y[p * K + k] = relu && sum < 0.0f ? 0.0f : sum;
    }
  }
}

/* Input pixels [x0, x1) (flat over n, h, w), every channel. Each dx element gathers the output
 * pixels whose window covers it in ascending pixel order (taps from the last to the first: a
 * larger tap row or column means a smaller output row or column), so its sum is the one a scatter
 * over output pixels in index order would make, and a chunk of input pixels is one thread's alone:
 * no two threads write a cache line, and each reads only the dy rows near its own pixels. */
static inline __attribute__((always_inline)) void direct_dgrad_k(float *dx, const float *dy, const float *w,
                                                                 const ky_conv_shape *s, size_t x0, size_t x1,
                                                                 const int K) {
  size_t c = (size_t)s->c, r = (size_t)s->kh * s->kw * c, hw = (size_t)s->h * s->w;
  for (size_t px = x0; px < x1; px++) {
    size_t n = px / hw, rem = px % hw;
    int iy = (int)(rem / s->w), ix = (int)(rem % s->w);
    float *o = dx + px * c;
    for (int i = s->kh - 1; i >= 0; i--) {
      int ty = iy + s->pad - i * s->dil; /* = oy * stride for the output row under tap row i */
      if (ty < 0 || ty % s->stride || ty / s->stride >= s->oh) continue;
      for (int j = s->kw - 1; j >= 0; j--) {
        int tx = ix + s->pad - j * s->dil;
        if (tx < 0 || tx % s->stride || tx / s->stride >= s->ow) continue;
        const float *g = dy + ((n * s->oh + (size_t)(ty / s->stride)) * s->ow + (size_t)(tx / s->stride)) * K;
        const float *wt = w + ((size_t)i * s->kw + j) * c;
        v8f gv[SMALL_K];
        for (int k = 0; k < K; k++) gv[k] = (v8f){g[k], g[k], g[k], g[k], g[k], g[k], g[k], g[k]};
        size_t q = 0;
        for (; q + 8 <= c; q += 8) {
          v8f v = *(v8f *)(o + q);
          for (int k = 0; k < K; k++) v = MADD8(gv[k], *(const v8f *)(wt + k * r + q), v);
          *(v8f *)(o + q) = v;
        }
        for (; q < c; q++) {
          float v = o[q];
          for (int k = 0; k < K; k++) v += g[k] * wt[k * r + q];
          o[q] = v;
        }
      }
    }
  }
}

/* The dW partial of one pixel tile [p0, pend) into acc ([K][R], every element written): tap by tap,
 * NR channels at a time, the K x NR sums stay in registers while the tile's pixels go by in order
 * (rows: the input row under the tap for each pixel, `zero` on padding, which is skipped). So each
 * sum is the one a pixel-by-pixel accumulation in memory would make, without a load and a store per
 * multiply-add. The caller adds the tiles' partials to dw in tile order, so no float sum runs over
 * more than TILE pixels before it meets the total, whichever thread computed each tile. */
static inline __attribute__((always_inline)) void direct_wgrad_k(float *acc, const float **rows, const float *dy,
                                                                 const float *x, const float *zero,
                                                                 const ky_conv_shape *s, size_t p0, size_t pend,
                                                                 const int K) {
  size_t c = (size_t)s->c, r = (size_t)s->kh * s->kw * c;
  int np = (int)(pend - p0), taps = s->kh * s->kw;
  const float *g0 = dy + p0 * K;
  for (int t = 0; t < taps; t++) {
    tap_rows(rows, x, zero, s, p0, np, t);
    float *at = acc + (size_t)t * c;
    size_t q = 0;
    for (; q + 16 <= c; q += 16) {
      v8f a0[SMALL_K], a1[SMALL_K];
      for (int k = 0; k < K; k++) a0[k] = a1[k] = (v8f){0};
      for (int z = 0; z < np; z++) {
        if (rows[z] == zero) continue;
        v8f x0 = *(const v8f *)(rows[z] + q), x1 = *(const v8f *)(rows[z] + q + 8);
        for (int k = 0; k < K; k++) {
          float gk = g0[(size_t)z * K + k];
          v8f gv = {gk, gk, gk, gk, gk, gk, gk, gk};
          a0[k] = MADD8(gv, x0, a0[k]);
          a1[k] = MADD8(gv, x1, a1[k]);
        }
      }
      for (int k = 0; k < K; k++) {
        *(v8f *)(at + k * r + q) = a0[k];
        *(v8f *)(at + k * r + q + 8) = a1[k];
      }
    }
    for (; q + 8 <= c; q += 8) {
      v8f a0[SMALL_K];
      for (int k = 0; k < K; k++) a0[k] = (v8f){0};
      for (int z = 0; z < np; z++) {
        if (rows[z] == zero) continue;
        v8f x0 = *(const v8f *)(rows[z] + q);
        for (int k = 0; k < K; k++) {
          float gk = g0[(size_t)z * K + k];
          a0[k] = MADD8(((v8f){gk, gk, gk, gk, gk, gk, gk, gk}), x0, a0[k]);
        }
      }
      for (int k = 0; k < K; k++) *(v8f *)(at + k * r + q) = a0[k];
    }
    for (; q < c; q++) {
      float a[SMALL_K] = {0};
      for (int z = 0; z < np; z++) {
        if (rows[z] == zero) continue;
        for (int k = 0; k < K; k++) a[k] += g0[(size_t)z * K + k] * rows[z][q];
      }
      for (int k = 0; k < K; k++) at[k * r + q] = a[k];
    }
  }
}

/* One job description for every pass; each chunk function reads what it needs. */
typedef struct {
  const ky_conv_shape *s;
  float *out;                /* y, dx or dw */
  float *db;
  const float *x, *w, *b, *dy;
  const float *zero;         /* implicit and direct wgrad: c zeros, the rows of taps on padding */
  int relu, pointwise, r, k;
  int add;                   /* forward: y += the convolution (the dgrad that runs as a forward) */
  size_t npix;
  float *work, *wp, *buf;    /* scratch: packed weights, per-slot or per-tile buffers */
  int panels, nb;            /* NR-panels of C's columns, column blocks (block_span) */
  int rpanels, nrb;          /* wgrad: MR-panels of dW's rows, row blocks */
  size_t t0, g;              /* the round: first tile, tiles */
  int nbands;                /* col2im: bands per image (of the rows the round reaches) */
  int dbw;                   /* wgrad: bias channels per chunk */
  size_t n0;                 /* col2im: first image of the round */
  size_t held[KY_POOL_MAX_THREADS]; /* forward: tile + 1 whose im2col rows sit in each slot's buffer */
} conv_job;

/* Column blocks of NR-panels, so that `units` independent units times the blocks give about `want`
 * chunks (one block per row of C on one thread). The panels are spread evenly (block sizes
 * differ by at most one panel): with 36 panels in 8 blocks, 5 + 5 + ... + 1 would leave one thread
 * 20 panels and the other 16. */
static size_t chunks_wanted(int threads, int per_thread) { return threads > 1 ? (size_t)threads * per_thread : 1; }
static void col_blocks(conv_job *j, int n, size_t units, size_t want) {
  size_t panels = ((size_t)n + NR - 1) / NR, nb = 1;
  KY_ASSERT(panels >= 1);   /* n >= 1 (ky_conv_shape_finish): no block count or size below is 0 */
  if (units < want) nb = units ? (want + units - 1) / units : want;
  j->panels = (int)panels;
  j->nb = (int)(nb > panels ? panels : nb);
  KY_ASSERT(j->nb >= 1);    /* 1 <= nb <= panels: ky_cpu_conv2d_wgrad divides by it */
}

/* Block b of `blocks` over `panels` panels of `width` (NR or MR): elements [*lo, *hi), hi <= n. */
static void block_span(int b, int blocks, int panels, int width, int n, int *lo, int *hi) {
  *lo = (int)((size_t)b * panels / blocks) * width;
  *hi = min_i((int)((size_t)(b + 1) * panels / blocks) * width, n);
}

static inline size_t tile_pixels(const conv_job *j, size_t t) { return min_z(TILE, j->npix - t * TILE); }

static ky_status pack_wt_chunk(void *a, size_t c, int slot) { /* forward: W^T panels */
  conv_job *j = a;
  int lo, hi;
  block_span((int)c, j->nb, j->panels, NR, j->k, &lo, &hi);
  pack_b(j->wp, j->w, 1, (size_t)j->r, j->r, j->k, lo, hi);
  return KY_OK;
}
static ky_status pack_w_chunk(void *a, size_t c, int slot) { /* dgrad: W panels */
  conv_job *j = a;
  int lo, hi;
  block_span((int)c, j->nb, j->panels, NR, j->r, &lo, &hi);
  pack_b(j->wp, j->w, (size_t)j->r, 1, j->k, j->r, lo, hi);
  return KY_OK;
}

static ky_status fwd_chunk(void *a, size_t c, int slot) {
  conv_job *j = a;
  size_t t = c / j->nb, p0 = t * TILE;
  int r = j->r, k = j->k, np = (int)tile_pixels(j, t);
  int j0, j1;
  block_span((int)(c % j->nb), j->nb, j->panels, NR, k, &j0, &j1);
  const float *rows = j->x + p0 * r; /* pointwise: the input pixels are the im2col rows */
  const float **tp = NULL;            /* implicit: [taps][np] input rows under each tap */
  if (!j->pointwise && conv_implicit(j->s)) {
    int taps = j->s->kh * j->s->kw;
    tp = (const float **)(void *)(j->buf + (size_t)slot * TILE * r);
    float *zero = (float *)(void *)(tp + (size_t)taps * TILE); /* after the tables: c zeros */
    if (j->held[slot] != t + 1) {
      memset(zero, 0, (size_t)j->s->c * sizeof *zero);
      for (int q = 0; q < taps; q++) tap_rows(tp + (size_t)q * np, j->x, zero, j->s, p0, np, q);
      j->held[slot] = t + 1;
    }
  } else if (!j->pointwise) {
    float *col = j->buf + (size_t)slot * TILE * r;
    if (j->held[slot] != t + 1) {
      for (int i = 0; i < np; i++) im2col_row(col + (size_t)i * r, j->x, j->s, p0 + i);
      j->held[slot] = t + 1;
    }
    rows = col;
  }
  float *yt = j->out + p0 * k; /* [np][K] */
  for (int i = 0; i < np && !j->add; i++) {
    float *yr = yt + (size_t)i * k + j0;
    if (j->b) memcpy(yr, j->b + j0, (size_t)(j1 - j0) * sizeof *yr);
    else memset(yr, 0, (size_t)(j1 - j0) * sizeof *yr);
  }
  if (tp) gemm_taps(yt + j0, (size_t)k, tp, j->s->c, j->wp + (size_t)(j0 / NR) * r * NR, np, j1 - j0, r);
  else gemm_rows(yt + j0, (size_t)k, rows, (size_t)r, j->wp + (size_t)(j0 / NR) * r * NR, np, j1 - j0, r);
  if (j->relu)
    for (int i = 0; i < np; i++) {
      float *yr = yt + (size_t)i * k;
      for (int q = j0; q < j1; q++) yr[q] = yr[q] > 0.0f ? yr[q] : 0.0f;
    }
  return KY_OK;
}

/* y^T[K x P] = W[K x R] * col^T[R x P] per pixel tile: W is packed once in MR-row panels (K < MR
 * rows would make every in-place block a partial one), the tile's im2col rows are written as
 * NR-pixel panels ([R][NR] each), then the K x np result is transposed into y with the bias and
 * the ReLU. One chunk per tile, with the slot's own panels. */
static ky_status fwd_small_k_chunk(void *a, size_t t, int slot) {
  conv_job *j = a;
  int r = j->r, k = j->k, np = (int)tile_pixels(j, t);
  size_t p0 = t * TILE, per = (size_t)TILE * r + (size_t)k * TILE + (size_t)NR * r;
  float *bp = j->buf + (size_t)slot * per;             /* [TILE/NR][R][NR]     col^T tile */
  float *yt = bp + (size_t)TILE * r;                   /* [K][TILE]            y^T tile */
  float *rows = yt + (size_t)k * TILE;                 /* [NR][R] */
  for (int i = 0; i < np; i += NR) im2col_panel(bp + (size_t)(i / NR) * r * NR, NR, rows, j->x, j->s, p0 + i, np - i);
  memset(yt, 0, (size_t)k * TILE * sizeof *yt);
  gemm_packed(yt, TILE, j->wp, bp, k, np, r);
  for (int i = 0; i < np; i++) {
    float *yr = j->out + (p0 + i) * k;
    for (int q = 0; q < k; q++) {
      float v = yt[(size_t)q * TILE + i] + (j->b ? j->b[q] : 0.0f);
      if (j->add) yr[q] += v;
      else yr[q] = j->relu && v < 0.0f ? 0.0f : v;
    }
  }
  return KY_OK;
}

static ky_status direct_fwd_chunk(void *a, size_t t, int slot) {
  conv_job *j = a;
  size_t p0 = t * TILE, p1 = p0 + tile_pixels(j, t);
  switch (j->k) {
  case 1: direct_fwd_k(j->out, j->x, j->w, j->b, j->s, j->relu, j->add, p0, p1, 1); break;
  case 2: direct_fwd_k(j->out, j->x, j->w, j->b, j->s, j->relu, j->add, p0, p1, 2); break;
  case 3: direct_fwd_k(j->out, j->x, j->w, j->b, j->s, j->relu, j->add, p0, p1, 3); break;
  default: direct_fwd_k(j->out, j->x, j->w, j->b, j->s, j->relu, j->add, p0, p1, 4); break;
  }
  return KY_OK;
}

static ky_status direct_dgrad_chunk(void *a, size_t t, int slot) {
  conv_job *j = a;
  size_t x0 = t * TILE, x1 = min_z(x0 + TILE, (size_t)j->s->n * j->s->h * j->s->w);
  switch (j->k) {
  case 1: direct_dgrad_k(j->out, j->dy, j->w, j->s, x0, x1, 1); break;
  case 2: direct_dgrad_k(j->out, j->dy, j->w, j->s, x0, x1, 2); break;
  case 3: direct_dgrad_k(j->out, j->dy, j->w, j->s, x0, x1, 3); break;
  default: direct_dgrad_k(j->out, j->dy, j->w, j->s, x0, x1, 4); break;
  }
  return KY_OK;
}

/* Direct wgrad, first half of a round: the partial of tile t0 + i into its own slot of the scratch. */
static ky_status direct_wgrad_chunk(void *a, size_t i, int slot) {
  conv_job *j = a;
  size_t t = j->t0 + i, p0 = t * TILE, p1 = p0 + tile_pixels(j, t);
  float *acc = j->buf + i * direct_acc_floats(j->s); /* [K][R], whole 64-byte lines: no line shared */
  const float *rows[TILE]; /* tap_rows fills the first np before any is read; the zero row for the analyser */
  for (int z = 0; z < TILE; z++) rows[z] = j->zero;
  switch (j->k) {
  case 1: direct_wgrad_k(acc, rows, j->dy, j->x, j->zero, j->s, p0, p1, 1); break;
  case 2: direct_wgrad_k(acc, rows, j->dy, j->x, j->zero, j->s, p0, p1, 2); break;
  case 3: direct_wgrad_k(acc, rows, j->dy, j->x, j->zero, j->s, p0, p1, 3); break;
  default: direct_wgrad_k(acc, rows, j->dy, j->x, j->zero, j->s, p0, p1, 4); break;
  }
  return KY_OK;
}

/* Second half: DIRECT_SUM elements of dw (chunk c) add the round's partials in tile order. */
enum { DIRECT_SUM = 256 };
static ky_status direct_wgrad_sum_chunk(void *a, size_t c, int slot) {
  conv_job *j = a;
  size_t n = (size_t)j->k * j->r, e0 = c * DIRECT_SUM, e1 = min_z(e0 + DIRECT_SUM, n), stride = direct_acc_floats(j->s);
  for (size_t i = 0; i < j->g; i++) {
    const float *acc = j->buf + i * stride;
    for (size_t e = e0; e < e1; e++) j->out[e] += acc[e];
  }
  return KY_OK;
}

/* Kernels return void: the chunks never fail, so the pool's status is always KY_OK. */
static void run(ky_pool *pool, size_t nchunks, ky_pool_fn fn, conv_job *j) { (void)ky_pool_run(pool, nchunks, fn, j); }

/* y = conv(x) (+ b, ReLU), or y += conv(x) with add (no bias, no ReLU). prepacked: the GEMM path's
 * W^T panels are already at the start of work (the dgrad packs them from W directly). */
static void conv_fwd(ky_pool *pool, float *y, const float *x, const float *w, const float *b, const ky_conv_shape *s,
                     int relu, int add, int prepacked, float *work) {
  int threads = ky_pool_threads(pool);
  conv_job j = {.s = s, .out = y, .x = x, .w = w, .b = b, .relu = relu, .add = add, .pointwise = is_pointwise(s),
                .r = s->kh * s->kw * s->c, .k = s->k, .npix = (size_t)s->n * s->oh * s->ow, .work = work};
  size_t tiles = n_tiles(s);
  if (conv_direct(s)) {
    run(pool, tiles, direct_fwd_chunk, &j);
    return;
  }
  if (fwd_transposed(s)) {
    j.wp = work;                                        /* [ceil(K/MR)][R][MR]  W */
    j.buf = work + round_up((size_t)j.k, MR) * j.r;     /* per slot: col^T tile, y^T tile, rows */
    pack_a_rows(j.wp, w, (size_t)j.r, j.k, j.r);
    run(pool, tiles, fwd_small_k_chunk, &j);
    return;
  }
  j.wp = work;                                          /* [ceil(K/NR)][R][NR]  W^T */
  j.buf = work + round_up((size_t)j.k, NR) * j.r;       /* per slot: [TILE][R] im2col rows */
  if (!prepacked) {
    col_blocks(&j, j.k, 1, chunks_wanted(threads, 4));
    run(pool, (size_t)j.nb, pack_wt_chunk, &j);
  }
  col_blocks(&j, j.k, tiles, chunks_wanted(threads, 4));
  run(pool, tiles * j.nb, fwd_chunk, &j);
}

void ky_cpu_conv2d_fwd(ky_pool *pool, float *y, const float *x, const float *w, const float *b,
                       const ky_conv_shape *s, int relu, float *work) {
  conv_fwd(pool, y, x, w, b, s, relu, 0, 0, work);
}

/* dgrad of a stride-1 conv as a forward conv: dx += conv(dy, W'), W' = W with K and C swapped and
 * the window flipped, padding dil*(k-1) - pad. No dcol buffer and no col2im, whose adds into dx
 * were bound by memory bandwidth and so gained little from a second thread; the forward's GEMM
 * path scales. Square windows with pad <= dil*(k-1) (every stride-1 conv of the models), on
 * images large enough for col2im to matter (measured on the benchmark model: at 16 x 16 and 32 x
 * 32 the col2im path is as fast or faster; with K <= 4 the direct dgrad beats a GEMM of depth 9K). */
enum { DGRAD_FWD_TILES = 16 };
static int dgrad_as_fwd(const ky_conv_shape *s) {
  return s->stride == 1 && !is_pointwise(s) && s->kh == s->kw && s->pad <= s->dil * (s->kh - 1) && !conv_direct(s) &&
         n_tiles(s) >= DGRAD_FWD_TILES;
}
static void dgrad_shape(ky_conv_shape *t, const ky_conv_shape *s) {
  *t = (ky_conv_shape){.n = s->n, .h = s->oh, .w = s->ow, .c = s->k, .k = s->c, .kh = s->kh, .kw = s->kw,
                       .stride = 1, .pad = s->dil * (s->kh - 1) - s->pad, .dil = s->dil};
  (void)ky_conv_shape_finish(t); /* valid by construction (dgrad_as_fwd): t->oh, t->ow = s->h, s->w */
}
/* W' floats, rounded to whole 64-byte lines so the forward's scratch after it stays aligned. */
static size_t dgrad_wt_floats(const ky_conv_shape *s) { return round_up((size_t)s->k * s->kh * s->kw * s->c, 16); }

typedef struct {
  float *wt;        /* flip_range: W' [C][kh][kw][K]; pack_flip_range: W'^T panels [ceil(C/NR)][R'][NR] */
  const float *w;   /* [K][kh][kw][C] */
  const ky_conv_shape *s;
} flip_job;
static void flip_range(void *a, size_t lo, size_t hi) { /* rows (c, i, j) of W' */
  const flip_job *f = a;
  const ky_conv_shape *s = f->s;
  size_t kh = (size_t)s->kh, kw = (size_t)s->kw, c = (size_t)s->c, k = (size_t)s->k;
  for (size_t row = lo; row < hi; row++) {
    size_t q = row / (kh * kw), i = row / kw % kh, jj = row % kw;
    float *d = f->wt + row * k;
    const float *src = f->w + ((kh - 1 - i) * kw + (kw - 1 - jj)) * c + q;
    for (size_t o = 0; o < k; o++) d[o] = src[o * kh * kw * c];
  }
}
/* The forward's B panels of W' straight from W: panel element (row (i, j, k) of R', column c) is
 * W[k][kh-1-i][kw-1-j][c], so each row of a panel is NR consecutive floats of W. */
static void pack_flip_range(void *a, size_t lo, size_t hi) { /* panels [lo, hi) */
  const flip_job *f = a;
  const ky_conv_shape *s = f->s;
  size_t kh = (size_t)s->kh, kw = (size_t)s->kw, c = (size_t)s->c, k = (size_t)s->k, r2 = kh * kw * k;
  for (size_t pn = lo; pn < hi; pn++) {
    size_t c0 = pn * NR, nr = c - c0 < NR ? c - c0 : NR;
    float *panel = f->wt + pn * r2 * NR;
    for (size_t i = 0; i < kh; i++)
      for (size_t jj = 0; jj < kw; jj++)
        for (size_t o = 0; o < k; o++) {
          float *d = panel + ((i * kw + jj) * k + o) * NR;
          const float *src = f->w + ((o * kh + (kh - 1 - i)) * kw + (kw - 1 - jj)) * c + c0;
          size_t q = 0;
          for (; q < nr; q++) d[q] = src[q];
          for (; q < NR; q++) d[q] = 0.0f;
        }
  }
}

static void dgrad_fwd(ky_pool *pool, float *dx, const float *dy, const float *w, const ky_conv_shape *s,
                      float *work) {
  ky_conv_shape t;
  dgrad_shape(&t, s);
  if (!conv_direct(&t) && !fwd_transposed(&t)) { /* the GEMM path: pack W'^T panels from W */
    flip_job f = {work, w, s};
    ky_pool_for(pool, ((size_t)s->c + NR - 1) / NR, 1, pack_flip_range, &f);
    conv_fwd(pool, dx, dy, NULL, NULL, &t, 0, 1, 1, work);
    return;
  }
  flip_job f = {work, w, s}; /* the small-K paths read W' itself */
  ky_pool_for(pool, (size_t)s->c * s->kh * s->kw, 64, flip_range, &f);
  conv_fwd(pool, dx, dy, work, NULL, &t, 0, 1, 0, work + dgrad_wt_floats(s));
}

/* dgrad, pointwise: input pixel == output pixel, so the GEMM accumulates straight into dx. */
static ky_status dgrad_pointwise_chunk(void *a, size_t c, int slot) {
  conv_job *j = a;
  size_t t = c / j->nb, p0 = t * TILE;
  int r = j->r, k = j->k, j0, j1;
  block_span((int)(c % j->nb), j->nb, j->panels, NR, r, &j0, &j1);
  gemm_rows(j->out + p0 * r + j0, (size_t)r, j->dy + p0 * k, (size_t)k, j->wp + (size_t)(j0 / NR) * k * NR,
            (int)tile_pixels(j, t), j1 - j0, k);
  return KY_OK;
}

/* dgrad, first half of a round: dcol of tile t0 + c / nb, columns of block c % nb. */
static ky_status dgrad_dcol_chunk(void *a, size_t c, int slot) {
  conv_job *j = a;
  size_t i = c / j->nb, t = j->t0 + i, p0 = t * TILE;
  int r = j->r, k = j->k, np = (int)tile_pixels(j, t), j0, j1;
  block_span((int)(c % j->nb), j->nb, j->panels, NR, r, &j0, &j1);
  float *dcol = j->buf + i * TILE * r; /* [np][R] */
  for (int q = 0; q < np; q++) memset(dcol + (size_t)q * r + j0, 0, (size_t)(j1 - j0) * sizeof *dcol);
  gemm_rows(dcol + j0, (size_t)r, j->dy + p0 * k, (size_t)k, j->wp + (size_t)(j0 / NR) * k * NR, np, j1 - j0, k);
  return KY_OK;
}

/* dgrad, second half: col2im of the round's pixels into one band of input rows of one image. */
static ky_status dgrad_col2im_chunk(void *a, size_t c, int slot) {
  conv_job *j = a;
  const ky_conv_shape *s = j->s;
  size_t n = j->n0 + c / j->nbands, ohw = (size_t)s->oh * s->ow;
  /* the input rows the round's pixels of image n reach, cut into nbands bands: a round covers a
   * few output rows, so bands over the whole image would leave all but one thread idle */
  size_t P0 = j->t0 * TILE, P1 = min_z(j->npix, (j->t0 + j->g) * TILE);
  size_t qa = n * ohw > P0 ? n * ohw : P0, qb = (n + 1) * ohw < P1 ? (n + 1) * ohw : P1;
  int ra = (int)((qa - n * ohw) / s->ow) * s->stride - s->pad;
  int rb = (int)((qb - 1 - n * ohw) / s->ow) * s->stride - s->pad + (s->kh - 1) * s->dil + 1;
  if (ra < 0) ra = 0;
  if (rb > s->h) rb = s->h;
  if (ra >= rb) return KY_OK;
  int band = (rb - ra + j->nbands - 1) / j->nbands;
  int ylo = ra + (int)(c % j->nbands) * band, yhi = min_i(ylo + band, rb);
  if (ylo >= yhi) return KY_OK;
  /* output rows whose windows reach [ylo, yhi) */
  int num = ylo + s->pad - (s->kh - 1) * s->dil;
  int oy0 = num <= 0 ? 0 : (num + s->stride - 1) / s->stride;
  int oy1 = min_i((yhi - 1 + s->pad) / s->stride, s->oh - 1);
  if (oy0 > oy1) return KY_OK;
  size_t pa = n * ohw + (size_t)oy0 * s->ow, pb = n * ohw + (size_t)(oy1 + 1) * s->ow;
  if (pa < P0) pa = P0;
  if (pb > P1) pb = P1;
  for (size_t p = pa; p < pb; p++) col2im_row(j->out, j->buf + (p - P0) * j->r, s, p, ylo, yhi);
  return KY_OK;
}

void ky_cpu_conv2d_dgrad(ky_pool *pool, float *dx, const float *dy, const float *w, const ky_conv_shape *s,
                         float *work) {
  int threads = ky_pool_threads(pool);
  conv_job j = {.s = s, .out = dx, .dy = dy, .w = w, .pointwise = is_pointwise(s), .r = s->kh * s->kw * s->c,
                .k = s->k, .npix = (size_t)s->n * s->oh * s->ow, .work = work};
  if (dgrad_as_fwd(s)) {
    dgrad_fwd(pool, dx, dy, w, s, work);
    return;
  }
  if (conv_direct(s)) { /* by tiles of input pixels */
    run(pool, ((size_t)s->n * s->h * s->w + TILE - 1) / TILE, direct_dgrad_chunk, &j);
    return;
  }
  size_t tiles = n_tiles(s);
  j.wp = work;                                          /* [ceil(R/NR)][K][NR]  W */
  j.buf = work + round_up((size_t)j.r, NR) * j.k;       /* [round][TILE][R]     dcol */
  col_blocks(&j, j.r, 1, chunks_wanted(threads, 4));
  run(pool, (size_t)j.nb, pack_w_chunk, &j);
  if (j.pointwise) {
    col_blocks(&j, j.r, tiles, chunks_wanted(threads, 4));
    run(pool, tiles * j.nb, dgrad_pointwise_chunk, &j);
    return;
  }
  size_t G = round_tiles(s, threads), ohw = (size_t)s->oh * s->ow;
  col_blocks(&j, j.r, G, chunks_wanted(threads, 4));
  for (j.t0 = 0; j.t0 < tiles; j.t0 += G) {
    j.g = min_z(G, tiles - j.t0);
    run(pool, j.g * j.nb, dgrad_dcol_chunk, &j);
    size_t P1 = min_z(j.npix, (j.t0 + j.g) * TILE);
    j.n0 = j.t0 * TILE / ohw;
    size_t nimg = (P1 - 1) / ohw - j.n0 + 1, want = threads > 1 ? 4 * (size_t)threads : 1;
    size_t bands = (want + nimg - 1) / nimg;
    j.nbands = (int)(bands > (size_t)s->h ? (size_t)s->h : bands);
    run(pool, nimg * (size_t)j.nbands, dgrad_col2im_chunk, &j);
  }
}

/* wgrad, first half of a round: pack dy^T and the im2col rows of tile t0 + i. */
static ky_status wgrad_pack_chunk(void *a, size_t i, int slot) {
  conv_job *j = a;
  size_t t = j->t0 + i, p0 = t * TILE;
  int r = j->r, k = j->k, np = (int)tile_pixels(j, t);
  size_t asz = round_up((size_t)k, MR) * TILE, bsz = round_up((size_t)r, NR) * TILE;
  float *ap = j->buf + i * (asz + bsz);                /* [ceil(K/MR)][np][MR]  dy^T tile */
  float *bp = ap + asz;                                /* [ceil(R/NR)][np][NR]  col tile */
  float *row = j->buf + j->g * (asz + bsz) + (size_t)slot * r; /* [R] */
  pack_a_cols(ap, j->dy + p0 * k, (size_t)k, k, np);
  for (int q = 0; q < np; q++) {
    const float *src = im2col_row(row, j->x, j->s, p0 + q);
    for (int j0 = 0; j0 < r; j0 += NR) {
      float *d = bp + (size_t)(j0 / NR) * np * NR + (size_t)q * NR;
      int nr = r - j0 < NR ? r - j0 : NR;
      if (nr == NR) { /* two vector moves: a 64-byte memcpy would become a slow `rep movsq` */
        *(v8f *)d = *(const v8f *)(src + j0);
        *(v8f *)(d + 8) = *(const v8f *)(src + j0 + 8);
      } else {
        for (int l = 0; l < NR; l++) d[l] = l < nr ? src[j0 + l] : 0.0f;
      }
    }
  }
  return KY_OK;
}

/* wgrad, second half: one block of dW gets the round's tiles in tile order. */
static ky_status wgrad_gemm_chunk(void *a, size_t c, int slot) {
  conv_job *j = a;
  int r = j->r, k = j->k;
  int i0, i1, j0, j1;
  block_span((int)(c / j->nb), j->nrb, j->rpanels, MR, k, &i0, &i1);
  block_span((int)(c % j->nb), j->nb, j->panels, NR, r, &j0, &j1);
  size_t asz = round_up((size_t)k, MR) * TILE, bsz = round_up((size_t)r, NR) * TILE;
  for (size_t i = 0; i < j->g; i++) {
    int np = (int)tile_pixels(j, j->t0 + i);
    const float *ap = j->buf + i * (asz + bsz), *bp = ap + asz;
    gemm_packed(j->out + (size_t)i0 * r + j0, (size_t)r, ap + (size_t)(i0 / MR) * np * MR,
                bp + (size_t)(j0 / NR) * np * NR, i1 - i0, j1 - j0, np);
  }
  return KY_OK;
}

/* Implicit wgrad, first half of a round: pack dy^T of tile t0 + i. */
static ky_status wgrad_pack_a_chunk(void *a, size_t i, int slot) {
  conv_job *j = a;
  size_t t = j->t0 + i, p0 = t * TILE;
  pack_a_cols(j->buf + i * round_up((size_t)j->k, MR) * TILE, j->dy + p0 * j->k, (size_t)j->k, j->k,
              (int)tile_pixels(j, t));
  return KY_OK;
}

/* Implicit wgrad, second half: one block of dW gets the round's tiles in tile order. A column panel
 * is NR channels of one tap; its B rows, those channels of the input pixels under the tap (found by
 * tap_rows), are gathered into one panel on the stack, which the row panels then share from L1.
 * (Read in place, rows 4c bytes apart fall into few L1 sets and evict each other: about 20 %
 * slower on the benchmark model's last layer.)
 * The sums are those of wgrad_gemm_chunk over an im2col tile, without building the tile. */
_Static_assert(TILE <= KC, "a tile's depth is one KC slice: the implicit wgrad has no slice loop");
static ky_status wgrad_implicit_chunk(void *a, size_t c, int slot) {
  conv_job *j = a;
  int r = j->r, k = j->k, ch = j->s->c;
  int i0, i1, j0, j1;
  block_span((int)(c / j->nb), j->nrb, j->rpanels, MR, k, &i0, &i1);
  block_span((int)(c % j->nb), j->nb, j->panels, NR, r, &j0, &j1);
  size_t asz = round_up((size_t)k, MR) * TILE;
  /* tap_rows fills the first np before any is read; every entry starts on the zero row so that
   * the static analyser, which cannot follow that, sees no uninitialised or null row. */
  const float *rows[TILE];
  for (int z = 0; z < TILE; z++) rows[z] = j->zero;
  float bpanel[TILE * NR] __attribute__((aligned(64)));
  for (size_t i = 0; i < j->g; i++) {
    size_t p0 = (j->t0 + i) * TILE;
    int np = (int)tile_pixels(j, j->t0 + i), tap = -1;
    const float *ap = j->buf + i * asz; /* [ceil(K/MR)][np][MR] */
    for (int q = j0; q < j1; q += NR) {
      if (q / ch != tap) tap_rows(rows, j->x, j->zero, j->s, p0, np, tap = q / ch);
      size_t off = (size_t)(q % ch);
      for (int z = 0; z < np; z++) {
        *(v8f *)(bpanel + z * NR) = *(const v8f *)(rows[z] + off);
        *(v8f *)(bpanel + z * NR + 8) = *(const v8f *)(rows[z] + off + 8);
      }
      for (int m = i0; m < i1; m += MR) {
        const float *am = ap + (size_t)(m / MR) * np * MR;
        float *cm = j->out + (size_t)m * r + q;
        if (i1 - m >= MR) {
          micro_kernel(np, am, bpanel, cm, (size_t)r);
        } else { /* the last rows: as micro_kernel_edge, on the packing's zero rows */
          float tmp[MR * NR] = {0};
          micro_kernel(np, am, bpanel, tmp, NR);
          for (int y = 0; y < i1 - m; y++)
            for (int x = 0; x < NR; x++) cm[(size_t)y * r + x] += tmp[y * NR + x];
        }
      }
    }
  }
  return KY_OK;
}

/* db: per-channel sums in double over the pixels in order, j->dbw channels per chunk (a multiple
 * of 16, at most DB_MAX: one pass over dy per chunk, accumulators on the stack). */
enum { DB_CHANNELS = 16, DB_MAX = 64 };
static ky_status wgrad_bias_chunk(void *a, size_t c, int slot) {
  const conv_job *j = a;
  int k = j->k, c0 = (int)c * j->dbw, cb = min_i(j->dbw, k - c0);
  const float *dy = j->dy + c0;
  double acc[DB_MAX];
  for (int q = 0; q < cb; q++) acc[q] = 0.0;
  for (size_t p = 0; p < j->npix; p++) {
    const float *d = dy + p * k;
    for (int q = 0; q < cb; q++) acc[q] += d[q];
  }
  for (int q = 0; q < cb; q++) j->db[c0 + q] += (float)acc[q];
  return KY_OK;
}

void ky_cpu_conv2d_wgrad(ky_pool *pool, float *dw, float *db, const float *dy, const float *x,
                         const ky_conv_shape *s, float *work) {
  int threads = ky_pool_threads(pool);
  conv_job j = {.s = s, .out = dw, .db = db, .dy = dy, .x = x, .r = s->kh * s->kw * s->c, .k = s->k,
                .npix = (size_t)s->n * s->oh * s->ow, .work = work, .buf = work};
  if (conv_direct(s)) { /* rounds of tiles: partials on the pool, then added in tile order */
    size_t tiles = n_tiles(s), G = direct_round(s, threads), n = (size_t)j.k * j.r;
    float *zero = work + G * direct_acc_floats(s); /* c zeros: the rows of taps on padding */
    memset(zero, 0, (size_t)s->c * sizeof *zero);
    j.zero = zero;
    for (j.t0 = 0; j.t0 < tiles; j.t0 += G) {
      j.g = min_z(G, tiles - j.t0);
      run(pool, j.g, direct_wgrad_chunk, &j);
      run(pool, (n + DIRECT_SUM - 1) / DIRECT_SUM, direct_wgrad_sum_chunk, &j);
    }
  } else {
    int implicit = conv_implicit(s);
    size_t tiles = n_tiles(s), G = implicit ? wgrad_implicit_round(s) : round_tiles(s, threads);
    /* Implicit: two blocks per thread. Every block streams the round's packed dy^T and gathers the
     * input rows under its taps, so more blocks mean more traffic between the cores' caches: with
     * C = 64, eight blocks on two threads ran at 1.7x one thread, four at 1.9x. */
    size_t want = chunks_wanted(threads, implicit ? 2 : 4);
    col_blocks(&j, j.r, 1, want);
    if (implicit) { /* the zero row after the round's packed dy^T */
      float *zero = work + G * round_up((size_t)j.k, MR) * TILE;
      memset(zero, 0, (size_t)s->c * sizeof *zero);
      j.zero = zero;
    }
    size_t rpanels = ((size_t)j.k + MR - 1) / MR, nrb = 1;
    if ((size_t)j.nb < want) nrb = min_z(rpanels, (want + j.nb - 1) / j.nb);
    j.rpanels = (int)rpanels;
    j.nrb = (int)nrb;
    for (j.t0 = 0; j.t0 < tiles; j.t0 += G) {
      j.g = min_z(G, tiles - j.t0);
      run(pool, j.g, implicit ? wgrad_pack_a_chunk : wgrad_pack_chunk, &j);
      run(pool, (size_t)j.nrb * j.nb, implicit ? wgrad_implicit_chunk : wgrad_gemm_chunk, &j);
    }
  }
  if (db) {
    size_t w = ky_pool_share(pool, (size_t)j.k, DB_CHANNELS);
    j.dbw = (int)(w < DB_MAX ? w : DB_MAX);
    run(pool, ((size_t)j.k + j.dbw - 1) / j.dbw, wgrad_bias_chunk, &j);
  }
}

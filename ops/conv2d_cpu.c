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
 * Pixels are processed in tiles of TILE, so the scratch size depends on the layer, never on N*H*W.
 * Two special cases: K <= SMALL_K (the 3-class logits conv) runs a direct, channel-vectorised
 * convolution, and other small K (5, 6, 17, 18) compute the forward as y^T = W col^T. */
#include <string.h>

#include "ops/kernels.h"

enum {
  MR = 6,     /* rows of C per micro-kernel call (6 x 2 AVX2 vectors = 12 accumulators) */
  NR = 16,    /* columns of C per micro-kernel call */
  KC = 256,   /* depth of one pass over packed A / B, so a B panel slice stays in L1 */
  TILE = 240, /* output pixels per im2col tile (a multiple of MR and of NR) */
};

static inline size_t round_up(size_t v, size_t m) { return (v + m - 1) / m * m; }

/* Few output channels (K = 5, 6, 17, 18; K <= 4 goes direct): W^T would fill NR-wide panels mostly
 * with zeros, so the forward computes y^T = W * col^T instead, with K on the MR side. */
static int fwd_transposed(const ky_conv_shape *s) {
  return round_up((size_t)s->k, MR) * 4 < round_up((size_t)s->k, NR) * 3;
}

/* Scratch for each pass (floats); ky_cpu_conv2d_work_floats returns the largest. The direct path
 * (K <= 4) needs K*R for wgrad, less than work_wgrad. */

static size_t work_fwd(const ky_conv_shape *s, size_t r) {
  if (fwd_transposed(s))
    return round_up((size_t)s->k, MR) * r /* packed W */ + (size_t)TILE * r /* packed col^T */ +
           (size_t)s->k * TILE /* y^T tile */ + (size_t)NR * r /* rows */;
  return round_up((size_t)s->k, NR) * r /* packed W^T */ + (size_t)TILE * r /* im2col rows */;
}
static size_t work_dgrad(const ky_conv_shape *s, size_t r) {
  return round_up(r, NR) * (size_t)s->k /* packed W */ + (size_t)TILE * r /* dcol */;
}
static size_t work_wgrad(const ky_conv_shape *s, size_t r) {
  return round_up((size_t)s->k, MR) * TILE /* packed dy^T */ + round_up(r, NR) * TILE /* packed col */ +
         r /* row */;
}

size_t ky_cpu_conv2d_work_floats(const ky_conv_shape *s) {
  size_t r = (size_t)s->kh * s->kw * s->c;
  size_t a = work_fwd(s, r), b = work_dgrad(s, r), c = work_wgrad(s, r);
  size_t m = a > b ? a : b;
  return m > c ? m : c;
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

/* The same 6 x 16 block with A read in place from MR rows of a row-major matrix (row stride lda):
 * im2col rows, dy rows or x itself need no interleaving pass. */
static void micro_kernel_rows(int kc, const float *restrict a, size_t lda, const float *restrict b,
                              float *restrict c, size_t ldc) {
  const float *ar[MR];
  for (int i = 0; i < MR; i++) ar[i] = a + i * lda;
  v8f acc[MR][2];
  for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = (v8f){0};
  for (int k = 0; k < kc; k++) {
    v8f b0 = *(const v8f *)(b + (size_t)k * NR), b1 = *(const v8f *)(b + (size_t)k * NR + 8);
    for (int i = 0; i < MR; i++) {
      float av = ar[i][k];
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

/* C[m x n] += A * B with A row-major in place (a[i*lda + k]) and B packed as for gemm_packed.
 * Partial blocks copy their mr rows into a zero-padded packed slice and take the packed kernel. */
static void gemm_rows(float *c, size_t ldc, const float *a, size_t lda, const float *bp, int m, int n, int kd) {
  float tmp[KC * MR];
  for (int k0 = 0; k0 < kd; k0 += KC) {
    int kc = kd - k0 < KC ? kd - k0 : KC;
    for (int j = 0; j < n; j += NR) {
      const float *b = bp + (size_t)(j / NR) * kd * NR + (size_t)k0 * NR;
      int nr = n - j < NR ? n - j : NR;
      for (int i = 0; i < m; i += MR) {
        const float *ai = a + (size_t)i * lda + k0;
        int mr = m - i < MR ? m - i : MR;
        if (mr == MR && nr == NR) {
          micro_kernel_rows(kc, ai, lda, b, c + (size_t)i * ldc + j, ldc);
        } else {
          for (int k = 0; k < kc; k++)
            for (int q = 0; q < MR; q++) tmp[k * MR + q] = q < mr ? ai[(size_t)q * lda + k] : 0.0f;
          micro_kernel_edge(kc, tmp, b, c + (size_t)i * ldc + j, ldc, mr, nr);
        }
      }
    }
  }
}

/* B panels from a strided matrix: element (k, j) = src[k*rs + j*cs], k < kd, j < n. */
static void pack_b(float *restrict bp, const float *restrict src, size_t rs, size_t cs, int kd, int n) {
  for (int j0 = 0; j0 < n; j0 += NR) {
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

/* dx[window of pixel p] += dcol_row, the adjoint of im2col_row (same contiguous runs). */
static void col2im_row(float *restrict dx, const float *restrict drow, const ky_conv_shape *s, size_t p) {
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
    if (iy < 0 || iy >= s->h) continue;
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

static inline __attribute__((always_inline)) void direct_fwd_k(float *y, const float *x, const float *w,
                                                               const float *b, const ky_conv_shape *s,
                                                               int relu, const int K) {
  size_t c = (size_t)s->c, r = (size_t)s->kh * s->kw * c, npix = (size_t)s->n * s->oh * s->ow;
  for (size_t p = 0; p < npix; p++) {
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
      y[p * K + k] = relu && sum < 0.0f ? 0.0f : sum;
    }
  }
}

static inline __attribute__((always_inline)) void direct_dgrad_k(float *dx, const float *dy, const float *w,
                                                                 const ky_conv_shape *s, const int K) {
  size_t c = (size_t)s->c, r = (size_t)s->kh * s->kw * c, npix = (size_t)s->n * s->oh * s->ow;
  for (size_t p = 0; p < npix; p++) {
    size_t xb;
    int iy0, ix0;
    out_pixel(s, p, &xb, &iy0, &ix0);
    const float *g = dy + p * K;
    v8f gv[SMALL_K];
    for (int k = 0; k < K; k++) gv[k] = (v8f){g[k], g[k], g[k], g[k], g[k], g[k], g[k], g[k]};
    for (int i = 0; i < s->kh; i++) {
      int iy = iy0 + i * s->dil;
      if (iy < 0 || iy >= s->h) continue;
      for (int j = 0; j < s->kw; j++) {
        int ix = ix0 + j * s->dil;
        if (ix < 0 || ix >= s->w) continue;
        float *o = dx + xb + ((size_t)iy * s->w + ix) * c;
        const float *wt = w + ((size_t)i * s->kw + j) * c;
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

/* dW accumulates per pixel tile in a zeroed scratch (work: K*R floats), added to dw after each
 * tile, so no float sum runs over more than TILE pixels before it meets the total. */
static inline __attribute__((always_inline)) void direct_wgrad_k(float *dw, const float *dy, const float *x,
                                                                 const ky_conv_shape *s, float *work,
                                                                 const int K) {
  size_t c = (size_t)s->c, r = (size_t)s->kh * s->kw * c, npix = (size_t)s->n * s->oh * s->ow;
  float *acc = work; /* [K][R] */
  for (size_t p0 = 0; p0 < npix; p0 += TILE) {
    size_t pend = npix - p0 < TILE ? npix : p0 + TILE;
    memset(acc, 0, (size_t)K * r * sizeof *acc);
    for (size_t p = p0; p < pend; p++) {
      size_t xb;
      int iy0, ix0;
      out_pixel(s, p, &xb, &iy0, &ix0);
      const float *g = dy + p * K;
      v8f gv[SMALL_K];
      for (int k = 0; k < K; k++) gv[k] = (v8f){g[k], g[k], g[k], g[k], g[k], g[k], g[k], g[k]};
      for (int i = 0; i < s->kh; i++) {
        int iy = iy0 + i * s->dil;
        if (iy < 0 || iy >= s->h) continue;
        for (int j = 0; j < s->kw; j++) {
          int ix = ix0 + j * s->dil;
          if (ix < 0 || ix >= s->w) continue;
          const float *xp = x + xb + ((size_t)iy * s->w + ix) * c;
          float *at = acc + ((size_t)i * s->kw + j) * c;
          size_t q = 0;
          for (; q + 8 <= c; q += 8) {
            v8f xv = *(const v8f *)(xp + q);
            for (int k = 0; k < K; k++) *(v8f *)(at + k * r + q) = MADD8(gv[k], xv, *(v8f *)(at + k * r + q));
          }
          for (; q < c; q++)
            for (int k = 0; k < K; k++) at[k * r + q] += g[k] * xp[q];
        }
      }
    }
    for (size_t q = 0; q < (size_t)K * r; q++) dw[q] += acc[q];
  }
}

static void direct_fwd(float *y, const float *x, const float *w, const float *b, const ky_conv_shape *s, int relu) {
  switch (s->k) {
  case 1: direct_fwd_k(y, x, w, b, s, relu, 1); break;
  case 2: direct_fwd_k(y, x, w, b, s, relu, 2); break;
  case 3: direct_fwd_k(y, x, w, b, s, relu, 3); break;
  default: direct_fwd_k(y, x, w, b, s, relu, 4); break;
  }
}

static void direct_dgrad(float *dx, const float *dy, const float *w, const ky_conv_shape *s) {
  switch (s->k) {
  case 1: direct_dgrad_k(dx, dy, w, s, 1); break;
  case 2: direct_dgrad_k(dx, dy, w, s, 2); break;
  case 3: direct_dgrad_k(dx, dy, w, s, 3); break;
  default: direct_dgrad_k(dx, dy, w, s, 4); break;
  }
}

static void direct_wgrad(float *dw, const float *dy, const float *x, const ky_conv_shape *s, float *work) {
  switch (s->k) {
  case 1: direct_wgrad_k(dw, dy, x, s, work, 1); break;
  case 2: direct_wgrad_k(dw, dy, x, s, work, 2); break;
  case 3: direct_wgrad_k(dw, dy, x, s, work, 3); break;
  default: direct_wgrad_k(dw, dy, x, s, work, 4); break;
  }
}

/* ---- the three passes --------------------------------------------------------------------- */

/* y^T[K x P] = W[K x R] * col^T[R x P] per pixel tile: W is packed once in MR-row panels (K < MR
 * rows would make every in-place block a partial one), the tile's im2col rows are written as
 * NR-pixel panels ([R][NR] each), then the K x np result is transposed into y with the bias and
 * the ReLU. */
static void fwd_small_k(float *y, const float *x, const float *w, const float *b, const ky_conv_shape *s,
                        int relu, float *work) {
  int r = s->kh * s->kw * s->c, k = s->k;
  size_t npix = (size_t)s->n * s->oh * s->ow;
  float *ap = work;                                    /* [ceil(K/MR)][R][MR]  W */
  float *bp = ap + round_up((size_t)k, MR) * r;        /* [TILE/NR][R][NR]     col^T tile */
  float *yt = bp + (size_t)TILE * r;                   /* [K][TILE]            y^T tile */
  float *rows = yt + (size_t)k * TILE;                 /* [NR][R] */
  pack_a_rows(ap, w, (size_t)r, k, r);
  for (size_t p0 = 0; p0 < npix; p0 += TILE) {
    int np = npix - p0 < TILE ? (int)(npix - p0) : TILE;
    for (int i = 0; i < np; i += NR) im2col_panel(bp + (size_t)(i / NR) * r * NR, NR, rows, x, s, p0 + i, np - i);
    memset(yt, 0, (size_t)k * TILE * sizeof *yt);
    gemm_packed(yt, TILE, ap, bp, k, np, r);
    for (int i = 0; i < np; i++) {
      float *yr = y + (p0 + i) * k;
      for (int j = 0; j < k; j++) {
        float v = yt[(size_t)j * TILE + i] + (b ? b[j] : 0.0f);
        yr[j] = relu && v < 0.0f ? 0.0f : v;
      }
    }
  }
}

void ky_cpu_conv2d_fwd(float *y, const float *x, const float *w, const float *b, const ky_conv_shape *s,
                       int relu, float *work) {
  if (conv_direct(s)) {
    direct_fwd(y, x, w, b, s, relu);
    return;
  }
  if (fwd_transposed(s)) {
    fwd_small_k(y, x, w, b, s, relu, work);
    return;
  }
  int r = s->kh * s->kw * s->c, k = s->k;
  size_t npix = (size_t)s->n * s->oh * s->ow;
  int pointwise = is_pointwise(s);
  float *wp = work;                                    /* [ceil(K/NR)][R][NR]  W^T */
  float *col = wp + round_up((size_t)k, NR) * r;       /* [TILE][R]            im2col rows */
  pack_b(wp, w, 1, (size_t)r, r, k);
  for (size_t p0 = 0; p0 < npix; p0 += TILE) {
    int np = npix - p0 < TILE ? (int)(npix - p0) : TILE;
    const float *a = x + p0 * r; /* pointwise: the input pixels are the im2col rows */
    if (!pointwise) {
      for (int i = 0; i < np; i++) im2col_row(col + (size_t)i * r, x, s, p0 + i);
      a = col;
    }
    float *yt = y + p0 * k; /* [np][K] */
    for (int i = 0; i < np; i++) {
      float *yr = yt + (size_t)i * k;
      if (b) memcpy(yr, b, (size_t)k * sizeof *yr);
      else memset(yr, 0, (size_t)k * sizeof *yr);
    }
    gemm_rows(yt, (size_t)k, a, (size_t)r, wp, np, k, r);
    if (relu)
      for (size_t q = 0; q < (size_t)np * k; q++) yt[q] = yt[q] > 0.0f ? yt[q] : 0.0f;
  }
}

void ky_cpu_conv2d_dgrad(float *dx, const float *dy, const float *w, const ky_conv_shape *s, float *work) {
  if (conv_direct(s)) {
    direct_dgrad(dx, dy, w, s);
    return;
  }
  int r = s->kh * s->kw * s->c, k = s->k;
  size_t npix = (size_t)s->n * s->oh * s->ow;
  float *wp = work;                                    /* [ceil(R/NR)][K][NR]  W */
  float *dcol = wp + round_up((size_t)r, NR) * k;      /* [TILE][R] */
  int pointwise = is_pointwise(s);
  pack_b(wp, w, (size_t)r, 1, k, r);
  for (size_t p0 = 0; p0 < npix; p0 += TILE) {
    int np = npix - p0 < TILE ? (int)(npix - p0) : TILE;
    const float *a = dy + p0 * k; /* [np][K], read in place */
    if (pointwise) { /* input pixel == output pixel: accumulate straight into dx */
      gemm_rows(dx + p0 * r, (size_t)r, a, (size_t)k, wp, np, r, k);
      continue;
    }
    memset(dcol, 0, (size_t)np * r * sizeof *dcol);
    gemm_rows(dcol, (size_t)r, a, (size_t)k, wp, np, r, k);
    for (int i = 0; i < np; i++) col2im_row(dx, dcol + (size_t)i * r, s, p0 + i);
  }
}

static void gemm_wgrad(float *dw, const float *dy, const float *x, const ky_conv_shape *s, float *work) {
  int r = s->kh * s->kw * s->c, k = s->k;
  size_t npix = (size_t)s->n * s->oh * s->ow;
  float *ap = work;                                    /* [ceil(K/MR)][TILE][MR]  dy^T tile */
  float *bp = ap + round_up((size_t)k, MR) * TILE;     /* [ceil(R/NR)][TILE][NR]  col tile */
  float *row = bp + round_up((size_t)r, NR) * TILE;    /* [R] */
  for (size_t p0 = 0; p0 < npix; p0 += TILE) {
    int np = npix - p0 < TILE ? (int)(npix - p0) : TILE;
    pack_a_cols(ap, dy + p0 * k, (size_t)k, k, np);
    for (int i = 0; i < np; i++) {
      const float *src = im2col_row(row, x, s, p0 + i);
      for (int j0 = 0; j0 < r; j0 += NR) {
        float *d = bp + (size_t)(j0 / NR) * np * NR + (size_t)i * NR;
        int nr = r - j0 < NR ? r - j0 : NR;
        if (nr == NR) { /* two vector moves: a 64-byte memcpy would become a slow `rep movsq` */
          *(v8f *)d = *(const v8f *)(src + j0);
          *(v8f *)(d + 8) = *(const v8f *)(src + j0 + 8);
        } else {
          for (int j = 0; j < NR; j++) d[j] = j < nr ? src[j0 + j] : 0.0f;
        }
      }
    }
    gemm_packed(dw, (size_t)r, ap, bp, k, r, np);
  }
}

void ky_cpu_conv2d_wgrad(float *dw, float *db, const float *dy, const float *x, const ky_conv_shape *s,
                         float *work) {
  int k = s->k;
  size_t npix = (size_t)s->n * s->oh * s->ow;
  if (conv_direct(s)) direct_wgrad(dw, dy, x, s, work);
  else gemm_wgrad(dw, dy, x, s, work);
  if (db) { /* per-channel sums in double, channel blocks so the accumulators stay on the stack */
    enum { CB = 64 };
    double acc[CB];
    for (int c0 = 0; c0 < k; c0 += CB) {
      int cb = k - c0 < CB ? k - c0 : CB;
      for (int j = 0; j < cb; j++) acc[j] = 0.0;
      for (size_t p = 0; p < npix; p++) {
        const float *d = dy + p * k + c0;
        for (int j = 0; j < cb; j++) acc[j] += d[j];
      }
      for (int j = 0; j < cb; j++) db[c0 + j] += (float)acc[j];
    }
  }
}

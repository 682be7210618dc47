/* CPU reference convolution (NHWC activations, OHWI weights): im2col of pixel tiles + packed GEMM.
 * Tested by tests/test_ops_kernels.c (against a naive direct convolution on odd shapes) and by
 * tests/test_parity_ops.c (PyTorch fixtures); timed by bench/bench_cpu_ops.c.
 *
 * All three passes are one GEMM shape C[M x N] += A[M x Kd] * B[Kd x N] on packed operands:
 *   forward  y[P x K]     += col[P x R] * W^T[R x K]     (R = kh*kw*c, r ordered (kh, kw, c))
 *   dgrad    dcol[P x R]  += dy[P x K]  * W[K x R]      then col2im adds dcol into dx
 *   wgrad    dW[K x R]    += dy^T[K x P] * col[P x R]
 * A is packed in panels of MR rows ([Kd][MR] each), B in panels of NR columns ([Kd][NR] each), so
 * the micro-kernel streams both contiguously and keeps an MR x NR block of C in registers.
 * Pixels are processed in tiles of TILE, so the scratch size depends on the layer, never on N*H*W. */
#include <math.h>
#include <string.h>

#include "ops/kernels.h"

enum {
  MR = 6,     /* rows of C per micro-kernel call (6 x 2 AVX2 vectors = 12 accumulators) */
  NR = 16,    /* columns of C per micro-kernel call */
  KC = 256,   /* depth of one pass over packed A / B, so a B panel slice stays in L1 */
  TILE = 240, /* output pixels per im2col tile (a multiple of MR and of NR) */
};

static inline size_t round_up(size_t v, size_t m) { return (v + m - 1) / m * m; }

int ky_conv_shape_finish(ky_conv_shape *s) {
  if (!s || s->n < 1 || s->h < 1 || s->w < 1 || s->c < 1 || s->k < 1 || s->kh < 1 || s->kw < 1 ||
      s->stride < 1 || s->pad < 0 || s->dil < 1)
    return 0;
  long eh = (long)s->h + 2L * s->pad - (long)s->dil * (s->kh - 1) - 1;
  long ew = (long)s->w + 2L * s->pad - (long)s->dil * (s->kw - 1) - 1;
  if (eh < 0 || ew < 0) return 0;
  s->oh = (int)(eh / s->stride + 1);
  s->ow = (int)(ew / s->stride + 1);
  return 1;
}

/* Scratch for each pass (floats); ky_cpu_conv2d_work_floats returns the largest. */
/* Few output channels (the 3-class logits conv): W^T would fill NR-wide panels mostly with zeros,
 * so the forward computes y^T = W * col^T instead, with K on the MR side of the micro-kernel. */
static int fwd_transposed(const ky_conv_shape *s) {
  return round_up((size_t)s->k, MR) * 4 < round_up((size_t)s->k, NR) * 3;
}

static size_t work_fwd(const ky_conv_shape *s, size_t r) {
  if (fwd_transposed(s))
    return round_up((size_t)s->k, MR) * r /* packed W */ + (size_t)TILE * r /* packed col^T */ +
           (size_t)s->k * TILE /* y^T tile */ + (size_t)NR * r /* rows */;
  return round_up((size_t)s->k, NR) * r /* packed W^T */ + (size_t)TILE * r /* packed col */ + (size_t)MR * r;
}
static size_t work_dgrad(const ky_conv_shape *s, size_t r) {
  return round_up(r, NR) * (size_t)s->k /* packed W */ + (size_t)TILE * s->k /* packed dy */ +
         (size_t)TILE * r /* dcol */;
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
      v8f ai = (v8f){0} + ak[i]; /* broadcast */
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
    for (int i = 0; i < MR; i++) {
      if (i < mr) {
        const float *srow = src + (size_t)(i0 + i) * ld;
        for (int k = 0; k < kd; k++) panel[(size_t)k * MR + i] = srow[k];
      } else {
        for (int k = 0; k < kd; k++) panel[(size_t)k * MR + i] = 0.0f;
      }
    }
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
  for (int i = 0; i < s->kh; i++) {
    int iy = oy * s->stride - s->pad + i * s->dil;
    for (int j = 0; j < s->kw; j++, d += c) {
      int ix = ox * s->stride - s->pad + j * s->dil;
      if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w)
        memset(d, 0, c * sizeof *d);
      else
        memcpy(d, xn + ((size_t)iy * s->w + ix) * c, c * sizeof *d);
    }
  }
  return row;
}

/* dx[window of pixel p] += dcol_row, the adjoint of im2col_row. */
static void col2im_row(float *restrict dx, const float *restrict drow, const ky_conv_shape *s, size_t p) {
  size_t c = (size_t)s->c;
  size_t ohw = (size_t)s->oh * s->ow;
  size_t n = p / ohw, rem = p % ohw;
  int oy = (int)(rem / s->ow), ox = (int)(rem % s->ow);
  float *dxn = dx + n * s->h * s->w * c;
  const float *d = drow;
  for (int i = 0; i < s->kh; i++) {
    int iy = oy * s->stride - s->pad + i * s->dil;
    for (int j = 0; j < s->kw; j++, d += c) {
      int ix = ox * s->stride - s->pad + j * s->dil;
      if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w) continue;
      float *o = dxn + ((size_t)iy * s->w + ix) * c;
      for (size_t q = 0; q < c; q++) o[q] += d[q];
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

/* ---- the three passes --------------------------------------------------------------------- */

/* y^T[K x P] = W[K x R] * col^T[R x P] per pixel tile: W packed in MR-row panels once, the tile's
 * im2col rows written as NR-pixel panels ([R][NR] each), then the K x np result transposed into y. */
static void fwd_small_k(float *y, const float *x, const float *w, const float *b, const ky_conv_shape *s,
                        int relu, float *work) {
  int r = s->kh * s->kw * s->c, k = s->k;
  size_t npix = (size_t)s->n * s->oh * s->ow;
  float *ap = work;                                    /* [ceil(K/MR)][R][MR]   W */
  float *bp = ap + round_up((size_t)k, MR) * r;        /* [TILE/NR][R][NR]      col^T tile */
  float *yt = bp + (size_t)TILE * r;                   /* [K][TILE]             y^T tile */
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
  if (fwd_transposed(s)) {
    fwd_small_k(y, x, w, b, s, relu, work);
    return;
  }
  int r = s->kh * s->kw * s->c, k = s->k;
  size_t npix = (size_t)s->n * s->oh * s->ow;
  float *wp = work;                                    /* [ceil(K/NR)][R][NR]  W^T */
  float *ap = wp + round_up((size_t)k, NR) * r;        /* [TILE/MR][R][MR]     col tile */
  float *rows = ap + (size_t)TILE * r;                 /* [MR][R] */
  pack_b(wp, w, 1, (size_t)r, r, k);
  for (size_t p0 = 0; p0 < npix; p0 += TILE) {
    int np = npix - p0 < TILE ? (int)(npix - p0) : TILE;
    for (int i = 0; i < np; i += MR) im2col_panel(ap + (size_t)(i / MR) * r * MR, MR, rows, x, s, p0 + i, np - i);
    float *yt = y + p0 * k; /* [np][K] */
    for (int i = 0; i < np; i++) {
      float *yr = yt + (size_t)i * k;
      if (b) memcpy(yr, b, (size_t)k * sizeof *yr);
      else memset(yr, 0, (size_t)k * sizeof *yr);
    }
    gemm_packed(yt, (size_t)k, ap, wp, np, k, r);
    if (relu)
      for (size_t q = 0; q < (size_t)np * k; q++) yt[q] = yt[q] > 0.0f ? yt[q] : 0.0f;
  }
}

void ky_cpu_conv2d_dgrad(float *dx, const float *dy, const float *w, const ky_conv_shape *s, float *work) {
  int r = s->kh * s->kw * s->c, k = s->k;
  size_t npix = (size_t)s->n * s->oh * s->ow;
  float *wp = work;                                    /* [ceil(R/NR)][K][NR]  W */
  float *ap = wp + round_up((size_t)r, NR) * k;        /* [TILE/MR][K][MR]     dy tile */
  float *dcol = ap + (size_t)TILE * k;                 /* [TILE][R] */
  int pointwise = is_pointwise(s);
  pack_b(wp, w, (size_t)r, 1, k, r);
  for (size_t p0 = 0; p0 < npix; p0 += TILE) {
    int np = npix - p0 < TILE ? (int)(npix - p0) : TILE;
    pack_a_rows(ap, dy + p0 * k, (size_t)k, np, k);
    if (pointwise) { /* input pixel == output pixel: accumulate straight into dx */
      gemm_packed(dx + p0 * r, (size_t)r, ap, wp, np, r, k);
      continue;
    }
    memset(dcol, 0, (size_t)np * r * sizeof *dcol);
    gemm_packed(dcol, (size_t)r, ap, wp, np, r, k);
    for (int i = 0; i < np; i++) col2im_row(dx, dcol + (size_t)i * r, s, p0 + i);
  }
}

void ky_cpu_conv2d_wgrad(float *dw, float *db, const float *dy, const float *x, const ky_conv_shape *s,
                         float *work) {
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
        memcpy(d, src + j0, (size_t)nr * sizeof *d);
        for (int j = nr; j < NR; j++) d[j] = 0.0f;
      }
    }
    gemm_packed(dw, (size_t)r, ap, bp, k, r, np);
  }
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

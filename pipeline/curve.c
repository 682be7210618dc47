/* The training curve (see pipeline/curve.h): layout, TensorBoard smoothing, rasterised lines,
 * markers and stb_easy_font text. Tested by tests/test_pipeline_curve.c. */
#include "pipeline/curve.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/image.h"

/* The header's static helpers we do not call would warn. */
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#include <stb/stb_easy_font.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

static const uint8_t c_raw[3] = KY_CURVE_RAW, c_smooth[3] = KY_CURVE_SMOOTH, c_val[3] = KY_CURVE_VAL,
                     c_score[3] = KY_CURVE_SCORE, c_best[3] = KY_CURVE_BEST, c_black[3] = {0, 0, 0},
                     c_grid[3] = {228, 228, 228}, c_text[3] = {40, 40, 40};

void ky_curve_smooth(float *out, const float *x, int n, double w) {
  double last = 0, wk = 1;
  for (int i = 0; i < n; i++) {
    if (!isfinite(x[i])) { out[i] = x[i]; continue; }
    last = w * last + (1 - w) * x[i];
    wk *= w;
    out[i] = (float)(last / (1 - wk));
  }
}

double ky_curve_smooth_weight(int n) {
  double w = n > 0 ? 1 - 50.0 / n : 0;
  return w < 0.6 ? 0.6 : w > 0.99 ? 0.99 : w;
}

/* 1, 2 or 5 times a power of ten, about range / 5. */
static double nice_step(double range) {
  if (!(range > 0)) return 1;
  double raw = range / 5, mag = pow(10, floor(log10(raw))), r = raw / mag;
  return (r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10) * mag;
}

/* ---- drawing -------------------------------------------------------------------------------- */
typedef struct { uint8_t *px; int W, H; } canvas;

static void put(canvas *c, int x, int y, const uint8_t col[3]) {
  if (x < 0 || y < 0 || x >= c->W || y >= c->H) return;
  memcpy(c->px + ((size_t)y * c->W + x) * 3, col, 3);
}

static void rect(canvas *c, int x0, int y0, int x1, int y1, const uint8_t col[3]) {
  for (int y = y0; y < y1; y++)
    for (int x = x0; x < x1; x++) put(c, x, y, col);
}

/* Bresenham; thick = 2 also paints the pixel below each one (a 2 px line reads at a glance). */
static void line(canvas *c, int x0, int y0, int x1, int y1, const uint8_t col[3], int thick) {
  int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, err = dx + dy;
  for (;;) {
    put(c, x0, y0, col);
    if (thick > 1) put(c, x0, y0 + 1, col);
    if (x0 == x1 && y0 == y1) break;
    int e2 = 2 * err;
    if (e2 >= dy) { err += dy; x0 += sx; }
    if (e2 <= dx) { err += dx; y0 += sy; }
  }
}

static void disc(canvas *c, int x, int y, int r, const uint8_t col[3]) {
  for (int dy = -r; dy <= r; dy++)
    for (int dx = -r; dx <= r; dx++) if (dx * dx + dy * dy <= r * r) put(c, x + dx, y + dy, col);
}

static void ring(canvas *c, int x, int y, int r, const uint8_t col[3]) {
  for (int dy = -r - 1; dy <= r + 1; dy++)
    for (int dx = -r - 1; dx <= r + 1; dx++) {
      int d2 = dx * dx + dy * dy;
      if (d2 >= (r - 1) * (r - 1) && d2 <= (r + 1) * (r + 1)) put(c, x + dx, y + dy, col);
    }
}

/* stb_easy_font text with its top-left at (x, y), scaled; rot = 1 turns it 90 degrees
 * counter-clockwise (reading upwards) about (x, y). */
static void text(canvas *c, int x, int y, const char *s, const uint8_t col[3], int scale, int rot) {
  char vb[270 * 96], buf[96];   /* ~270 bytes of quads per character */
  snprintf(buf, sizeof buf, "%s", s);
  int quads = stb_easy_font_print(0, 0, buf, NULL, vb, sizeof vb);
  for (int q = 0; q < quads; q++) {
    float v0[2], v2[2];   /* stb_easy_font writes floats into a char buffer: copied out, not cast (alignment) */
    memcpy(v0, vb + (size_t)q * 64, sizeof v0);
    memcpy(v2, vb + (size_t)q * 64 + 32, sizeof v2);
    int u0 = (int)lroundf(v0[0] * scale), t0 = (int)lroundf(v0[1] * scale);
    int u1 = (int)lroundf(v2[0] * scale), t1 = (int)lroundf(v2[1] * scale);
    if (!rot) rect(c, x + u0, y + t0, x + u1, y + t1, col);
    else rect(c, x + t0, y - u1, x + t1, y - u0, col);
  }
}

static int text_w(const char *s, int scale) {
  char buf[96];
  snprintf(buf, sizeof buf, "%s", s);
  return stb_easy_font_width(buf) * scale;
}

/* ---- layout --------------------------------------------------------------------------------- */
static int has_finite(const float *v, int n) {
  for (int i = 0; v && i < n; i++) if (isfinite(v[i])) return 1;
  return 0;
}

/* The legend's entries (what each drawn thing is), in drawing order; returns their number. */
static int legend_entries(char names[5][96], const uint8_t *cols[5], const ky_curve_data *d, double weight) {
  int n = 0;
  if (d->n_train) {
    snprintf(names[n], 96, "training loss (raw)");
    cols[n++] = c_raw;
    snprintf(names[n], 96, "training loss, smoothed (EMA %.2f)", weight);
    cols[n++] = c_smooth;
  }
  if (d->n_val && has_finite(d->val_loss, d->n_val)) { snprintf(names[n], 96, "validation loss"); cols[n++] = c_val; }
  if (d->n_val && has_finite(d->val_score, d->n_val)) {
    snprintf(names[n], 96, "validation DSB score (right axis)");
    cols[n++] = c_score;
  }
  if (d->best >= 0) {
    snprintf(names[n], 96, "best epoch: step %d (lowest validation loss)", d->val_it[d->best]);
    cols[n++] = c_best;
  }
  return n;
}

ky_status ky_curve_layout_make(ky_curve_layout *lay, const ky_curve_data *d, int W, int H) {
  KY_CHECK(lay && d, KY_ERR_ARG, "curve: NULL layout or data");
  KY_CHECK(W >= 480 && H >= 320 && W <= 8192 && H <= 8192, KY_ERR_ARG, "curve: image %dx%d, expected 480x320 to 8192x8192", W, H);
  KY_CHECK(d->n_train >= 0 && d->n_val >= 0 && (!d->n_train || (d->train && d->train_it)) &&
               (!d->n_val || (d->val_it && d->val_loss && d->val_score)),
           KY_ERR_ARG, "curve: %d training / %d validation points without their arrays", d->n_train, d->n_val);
  KY_CHECK(d->best >= -1 && d->best < d->n_val, KY_ERR_ARG, "curve: best epoch %d of %d", d->best, d->n_val);
  memset(lay, 0, sizeof *lay);
  lay->W = W;
  lay->H = H;
  lay->L = 76;
  lay->R = W - 76;
  lay->T = 20;
  lay->B = H - 70;   /* tick labels and the axis title; the legend rows move it up below */
  lay->smooth_weight = ky_curve_smooth_weight(d->n_train);
  double xm = 1, ym = 0;
  for (int i = 0; i < d->n_train; i++) if (d->train_it[i] > xm) xm = d->train_it[i];
  for (int i = 0; i < d->n_val; i++) if (d->val_it[i] > xm) xm = d->val_it[i];
  /* The loss axis covers the smoothed curve and the validation loss; raw spikes above are cut. */
  if (d->n_train) {
    float *sm = malloc((size_t)d->n_train * sizeof *sm);
    if (!sm) return ky_error(KY_ERR_NOMEM, "curve: out of memory for %d steps", d->n_train);
    ky_curve_smooth(sm, d->train, d->n_train, lay->smooth_weight);
    for (int i = 0; i < d->n_train; i++) if (isfinite(sm[i]) && sm[i] > ym) ym = sm[i];
    free(sm);
  }
  for (int i = 0; i < d->n_val; i++) if (isfinite(d->val_loss[i]) && d->val_loss[i] > ym) ym = d->val_loss[i];
  if (!(ym > 0)) ym = 1;
  lay->xtick = nice_step(xm);
  lay->xmax = xm;   /* the last step at the right edge, as TensorBoard draws it */
  lay->ytick = nice_step(ym * 1.05);
  lay->ymax = ceil(ym * 1.05 / lay->ytick - 1e-9) * lay->ytick;
  /* Legend entries left to right, wrapping; the plot's bottom moves up by the rows used. */
  char names[5][96];
  const uint8_t *cols[5];
  int n = legend_entries(names, cols, d, lay->smooth_weight), lx = lay->L, row = 0;
  for (int i = 0; i < n; i++) {
    int w = 28 + 8 + text_w(names[i], 2) + 24;
    if (lx + w > lay->R + 60 && lx > lay->L) { lx = lay->L; row++; }
    int sw[4] = {lx, row * 24 + 5, lx + 28, row * 24 + 9};
    memcpy(lay->legend_swatch[i], sw, sizeof sw);
    lx += w;
  }
  lay->n_legend = n;
  int legend_h = n ? (row + 1) * 24 + 6 : 0;
  lay->B -= legend_h;
  KY_CHECK(lay->B - lay->T >= 100, KY_ERR_ARG, "curve: image %dx%d leaves no room for the plot", W, H);
  for (int i = 0; i < n; i++) {
    lay->legend_swatch[i][1] += lay->B + 58;
    lay->legend_swatch[i][3] += lay->B + 58;
  }
  return KY_OK;
}

int ky_curve_x(const ky_curve_layout *lay, double step) {
  return lay->L + (int)lround((lay->R - lay->L) * step / lay->xmax);
}

int ky_curve_y_loss(const ky_curve_layout *lay, double loss) {
  double v = loss < 0 ? 0 : loss > lay->ymax ? lay->ymax : loss;
  return lay->B - (int)lround((lay->B - lay->T) * v / lay->ymax);
}

int ky_curve_y_score(const ky_curve_layout *lay, double score) {
  double v = score < 0 ? 0 : score > 1 ? 1 : score;
  return lay->B - (int)lround((lay->B - lay->T) * v);
}

static void label_num(char *b, size_t n, double v, double step) {
  int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
  snprintf(b, n, "%.*f", dec, v);
}

ky_status ky_curve_render(uint8_t *rgb, const ky_curve_data *d, int W, int H, ky_curve_layout *lay_out) {
  KY_CHECK(rgb, KY_ERR_ARG, "curve: NULL image");
  ky_curve_layout lay;
  KY_TRY(ky_curve_layout_make(&lay, d, W, H));
  canvas c = {rgb, W, H};
  memset(rgb, 255, (size_t)W * H * 3);
  int L = lay.L, R = lay.R, T = lay.T, B = lay.B, S = 2;   /* S: text scale */
  char b[96];
  int have_score = d->n_val && has_finite(d->val_score, d->n_val);

  /* Grid, ticks and tick labels: steps below, loss on the left, score on the right. */
  for (double v = 0; v <= lay.xmax * (1 + 1e-9); v += lay.xtick) {
    int x = ky_curve_x(&lay, v);
    line(&c, x, T, x, B, c_grid, 1);
    line(&c, x, B, x, B + 4, c_black, 1);
    label_num(b, sizeof b, v, lay.xtick);
    text(&c, x - text_w(b, S) / 2, B + 8, b, c_text, S, 0);
  }
  for (double v = 0; v <= lay.ymax * (1 + 1e-9); v += lay.ytick) {
    int y = ky_curve_y_loss(&lay, v);
    line(&c, L, y, R, y, c_grid, 1);
    line(&c, L - 4, y, L, y, c_black, 1);
    label_num(b, sizeof b, v, lay.ytick);
    text(&c, L - 8 - text_w(b, S), y - 7, b, c_text, S, 0);
  }
  if (have_score)
    for (int k = 0; k <= 5; k++) {
      int y = ky_curve_y_score(&lay, k * 0.2);
      line(&c, R, y, R + 4, y, c_score, 1);
      snprintf(b, sizeof b, "%.1f", k * 0.2);
      text(&c, R + 8, y - 7, b, c_score, S, 0);
    }

  /* Best epoch: a dashed vertical line under the curves. */
  int bx = -1;
  if (d->best >= 0) {
    bx = ky_curve_x(&lay, d->val_it[d->best]);
    for (int y = T; y <= B; y++) if ((y - T) % 10 < 6) put(&c, bx, y, c_best);
  }
  /* Raw training loss, faint; then the smoothed one over it. */
  float *sm = d->n_train ? malloc((size_t)d->n_train * sizeof *sm) : NULL;
  if (d->n_train && !sm) return ky_error(KY_ERR_NOMEM, "curve: out of memory for %d steps", d->n_train);
  if (sm) ky_curve_smooth(sm, d->train, d->n_train, lay.smooth_weight);
  for (int pass = 0; pass < 2; pass++) {
    const float *v = pass ? sm : d->train;
    int px = -1, py = 0;
    for (int i = 0; i < d->n_train; i++) {
      if (!isfinite(v[i])) { px = -1; continue; }
      int x = ky_curve_x(&lay, d->train_it[i]), y = ky_curve_y_loss(&lay, v[i]);
      if (px >= 0) line(&c, px, py, x, y, pass ? c_smooth : c_raw, pass ? 2 : 1);
      else put(&c, x, y, pass ? c_smooth : c_raw);
      px = x;
      py = y;
    }
  }
  free(sm);
  /* Validation loss (dots) and score (squares), joined epoch to epoch. */
  for (int pass = 0; pass < 2; pass++) {
    const float *v = pass ? d->val_score : d->val_loss;
    const uint8_t *col = pass ? c_score : c_val;
    int px = -1, py = 0;
    for (int i = 0; i < d->n_val; i++) {
      if (!isfinite(v[i])) { px = -1; continue; }
      int x = ky_curve_x(&lay, d->val_it[i]), y = pass ? ky_curve_y_score(&lay, v[i]) : ky_curve_y_loss(&lay, v[i]);
      if (px >= 0) line(&c, px, py, x, y, col, 2);
      px = x;
      py = y;
    }
    for (int i = 0; i < d->n_val; i++) {
      if (!isfinite(v[i])) continue;
      int x = ky_curve_x(&lay, d->val_it[i]);
      if (pass) { int y = ky_curve_y_score(&lay, v[i]); rect(&c, x - 3, y - 3, x + 4, y + 4, col); }
      else disc(&c, x, ky_curve_y_loss(&lay, v[i]), 3, col);
    }
  }
  if (d->best >= 0 && isfinite(d->val_loss[d->best])) ring(&c, bx, ky_curve_y_loss(&lay, d->val_loss[d->best]), 7, c_best);

  /* Frame and axis titles. */
  line(&c, L, T, L, B, c_black, 1);
  line(&c, L, B, R, B, c_black, 1);
  line(&c, R, T, R, B, have_score ? c_score : c_black, 1);
  line(&c, L, T, R, T, c_black, 1);
  const char *xt = "training step";
  text(&c, (L + R - text_w(xt, S)) / 2, B + 30, xt, c_black, S, 0);
  const char *yt = "loss";
  text(&c, 8, (T + B + text_w(yt, S)) / 2, yt, c_black, S, 1);
  if (have_score) {
    const char *st = "validation DSB score";
    text(&c, W - 26, (T + B + text_w(st, S)) / 2, st, c_score, S, 1);
  }

  /* Legend, below the axis title: a swatch and what each line is. */
  char names[5][96];
  const uint8_t *cols[5];
  legend_entries(names, cols, d, lay.smooth_weight);
  for (int i = 0; i < lay.n_legend; i++) {
    const int *sw = lay.legend_swatch[i];
    rect(&c, sw[0], sw[1], sw[2], sw[3], cols[i]);
    text(&c, sw[2] + 8, sw[1] - 5, names[i], c_text, S, 0);
  }
  if (lay_out) *lay_out = lay;
  return KY_OK;
}

ky_status ky_curve_png(const char *path, const ky_curve_data *d, int W, int H) {
  KY_CHECK(path, KY_ERR_ARG, "curve: NULL path");
  KY_CHECK(W >= 480 && H >= 320 && W <= 8192 && H <= 8192, KY_ERR_ARG, "curve %s: image %dx%d, expected 480x320 to 8192x8192",
           path, W, H);
  uint8_t *px = malloc((size_t)W * H * 3);
  if (!px) return ky_error(KY_ERR_NOMEM, "curve %s: out of memory", path);
  ky_status s = ky_curve_render(px, d, W, H, NULL);
  if (s == KY_OK) s = ky_png_save_u8(path, px, W, H, 3);
  else s = ky_error_context(s, "curve %s: ", path);
  free(px);
  return s;
}

/* ---- the CSV logs --------------------------------------------------------------------------- */
typedef struct { float *v[3]; int *it, *flag; int n, cap; } columns;

static ky_status add_row(columns *c, int it, const float *v, int flag) {
  if (c->n == c->cap) {
    int cap = c->cap ? 2 * c->cap : 1024;
    int *ni = realloc(c->it, (size_t)cap * sizeof *ni);
    if (ni) c->it = ni;
    int *nf = realloc(c->flag, (size_t)cap * sizeof *nf);
    if (nf) c->flag = nf;
    int ok = ni && nf;
    for (int k = 0; k < 3; k++) {
      float *nv = realloc(c->v[k], (size_t)cap * sizeof *nv);
      if (nv) c->v[k] = nv;
      ok = ok && nv;
    }
    if (!ok) return ky_error(KY_ERR_NOMEM, "curve: out of memory for %d log rows", cap);
    c->cap = cap;
  }
  for (int k = 0; k < 3; k++) c->v[k][c->n] = v[k];
  c->it[c->n] = it;
  c->flag[c->n++] = flag;
  return KY_OK;
}

static void columns_free(columns *c) {
  for (int k = 0; k < 3; k++) free(c->v[k]);
  free(c->it);
  free(c->flag);
}

/* Reads a CSV with a header: field 0 is the step, fields f[0..nf-1] floats, field flag_f (or -1)
 * an integer flag. Rows with a malformed step name the file and line. */
static ky_status read_log(columns *out, const char *path, const int *f, int nf, int flag_f) {
  char *buf;
  size_t n;
  KY_TRY(ky_file_read_all(path, &buf, &n));
  ky_status s = KY_OK;
  int lineno = 0;
  char *save = NULL;
  for (char *ln = strtok_r(buf, "\n", &save); ln && s == KY_OK; ln = strtok_r(NULL, "\n", &save)) {
    if (++lineno == 1) continue;
    char *fields[16];
    int k = 0;
    for (char *p = ln; k < 16;) {
      fields[k++] = p;
      p = strchr(p, ',');
      if (!p) break;
      *p++ = 0;
    }
    char *end;
    long it = strtol(fields[0], &end, 10);
    int need = flag_f > f[nf - 1] ? flag_f : f[nf - 1];
    if (end == fields[0] || k <= need || it < 0) {
      s = ky_error(KY_ERR_FORMAT, "%s:%d: expected a step and %d fields, got '%.60s'", path, lineno, need + 1, fields[0]);
      break;
    }
    float v[3] = {NAN, NAN, NAN};
    for (int q = 0; q < nf; q++) v[q] = strtof(fields[f[q]], NULL);
    s = add_row(out, (int)it, v, flag_f >= 0 ? atoi(fields[flag_f]) : 0);
  }
  free(buf);
  return s;
}

ky_status ky_curve_from_logs(const char *png_path, const char *steplog, const char *eplog, int W, int H) {
  KY_CHECK(png_path && steplog && eplog, KY_ERR_ARG, "curve: NULL path");
  columns st, ep;
  memset(&st, 0, sizeof st);
  memset(&ep, 0, sizeof ep);
  static const int f_step[1] = {2}, f_ep[2] = {3, 4};
  ky_status s = read_log(&st, steplog, f_step, 1, -1);
  if (s == KY_OK) s = read_log(&ep, eplog, f_ep, 2, 5);
  if (s == KY_OK) {
    ky_curve_data d = {st.v[0], st.it, st.n, ep.v[0], ep.v[1], ep.it, ep.n, -1};
    for (int i = 0; i < ep.n; i++) if (ep.flag[i]) d.best = i;
    s = ky_curve_png(png_path, &d, W, H);
  }
  columns_free(&st);
  columns_free(&ep);
  return s;
}

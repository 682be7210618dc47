/* Contour tracing (Suzuki-Abe outer border, CHAIN_APPROX_SIMPLE), convex hull, isContourConvex and
 * minAreaRect with OpenCV's semantics. Tested by tests/test_post_regionprops.c. */
#include "post/contour.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Chain codes as OpenCV numbers them: 0 = right, then counter-clockwise on screen (y down). */
static const int kDx[8] = {1, 1, 0, -1, -1, -1, 0, 1};
static const int kDy[8] = {0, -1, -1, -1, 0, 1, 1, 1};

enum { BG = 0, FG = 1, EXTERIOR = 2, SEEN = 3 };

/* Marks the background 4-connected to the padded frame as EXTERIOR. buf: [H, W] padded. */
static void mark_exterior(uint8_t *buf, int H, int W, int *stack) {
  int top = 0;
  buf[0] = EXTERIOR;
  stack[top++] = 0;
  while (top > 0) {
    int i = stack[--top], y = i / W, x = i % W;
    const int nb[4][2] = {{1, 0}, {-1, 0}, {0, 1}, {0, -1}};
    for (int k = 0; k < 4; k++) {
      int xx = x + nb[k][0], yy = y + nb[k][1];
      if (xx < 0 || yy < 0 || xx >= W || yy >= H) continue;
      int j = yy * W + xx;
      if (buf[j] == BG) { buf[j] = EXTERIOR; stack[top++] = j; }
    }
  }
}

/* Marks the 8-connected foreground component of pixel i as SEEN. */
static void mark_component(uint8_t *buf, int H, int W, int i, int *stack) {
  int top = 0;
  buf[i] = SEEN;
  stack[top++] = i;
  while (top > 0) {
    int j = stack[--top], y = j / W, x = j % W;
    for (int k = 0; k < 8; k++) {
      int xx = x + kDx[k], yy = y + kDy[k];
      if (xx < 0 || yy < 0 || xx >= W || yy >= H) continue;
      int q = yy * W + xx;
      if (buf[q] == FG) { buf[q] = SEEN; stack[top++] = q; }
    }
  }
}

ky_status ky_contour_first_outer(ky_point **pts, int *n, const uint8_t *mask, int h, int w) {
  KY_CHECK_NULL(pts, "pts");
  KY_CHECK_NULL(n, "n");
  KY_CHECK_NULL(mask, "mask");
  KY_CHECK(h > 0 && w > 0, KY_ERR_ARG, "ky_contour_first_outer: mask is %dx%d, expected positive sizes", h, w);
  *pts = NULL;
  *n = 0;
  int H = h + 2, W = w + 2;
  uint8_t *buf = calloc((size_t)H * W, 1);
  int *stack = malloc(sizeof(int) * (size_t)H * W);
  if (!buf || !stack) { free(buf); free(stack); return ky_error(KY_ERR_NOMEM, "ky_contour_first_outer: %dx%d mask", h, w); }
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) buf[(y + 1) * W + x + 1] = mask[(size_t)y * w + x] ? FG : BG;
  mark_exterior(buf, H, W, stack);
  /* OpenCV lists the top-level contours newest first, so the wanted one starts last in raster
   * order among the components whose outer border faces the exterior background. */
  int start = -1;
  for (int i = 0; i < H * W; i++) {
    if (buf[i] != FG) continue;
    if (buf[i - 1] == EXTERIOR) start = i;
    mark_component(buf, H, W, i, stack);
  }
  free(stack);
  if (start < 0) { free(buf); return ky_error(KY_ERR_ARG, "ky_contour_first_outer: %dx%d mask has no foreground pixel", h, w); }
  for (int i = 0; i < H * W; i++) buf[i] = buf[i] == SEEN;

  int cap = 64, cnt = 0;
  ky_point *out = malloc(sizeof *out * cap);
  if (!out) { free(buf); return ky_error(KY_ERR_NOMEM, "ky_contour_first_outer: contour buffer"); }
  int x0 = start % W, y0 = start / W;
  int s = 4, s_end = 4, x1 = 0, y1 = 0;
  do {
    s = (s - 1) & 7;
    x1 = x0 + kDx[s];
    y1 = y0 + kDy[s];
  } while (!buf[y1 * W + x1] && s != s_end);
  if (s == s_end) {  /* isolated pixel */
    out[cnt++] = (ky_point){x0 - 1, y0 - 1};
  } else {
    int x3 = x0, y3 = y0, prev_s = s ^ 4;
    for (;;) {
      int t = s, x4 = 0, y4 = 0;
      for (;;) {  /* next foreground neighbour, counter-clockwise on screen after direction s */
        t++;
        x4 = x3 + kDx[t & 7];
        y4 = y3 + kDy[t & 7];
        if (buf[y4 * W + x4]) break;
      }
      s = t & 7;
      if (s != prev_s) {  /* CHAIN_APPROX_SIMPLE keeps only the points where the direction changes */
        if (cnt == cap) {
          cap *= 2;
          ky_point *o2 = realloc(out, sizeof *out * cap);
          if (!o2) { free(out); free(buf); return ky_error(KY_ERR_NOMEM, "ky_contour_first_outer: contour buffer"); }
          out = o2;
        }
        out[cnt++] = (ky_point){x3 - 1, y3 - 1};
        prev_s = s;
      }
      if (x4 == x0 && y4 == y0 && x3 == x1 && y3 == y1) break;
      x3 = x4;
      y3 = y4;
      s = (s + 4) & 7;
    }
  }
  free(buf);
  *pts = out;
  *n = cnt;
  return KY_OK;
}

int ky_contour_is_convex(const ky_point *p, int n) {
  if (!p || n <= 0) return 0;
  ky_point prev = p[(n - 2 + n) % n], cur = p[n - 1];
  long long dx0 = cur.x - prev.x, dy0 = cur.y - prev.y;
  int orientation = 0;
  for (int i = 0; i < n; i++) {
    prev = cur;
    cur = p[i];
    long long dx = cur.x - prev.x, dy = cur.y - prev.y;
    long long dxdy0 = dx * dy0, dydx0 = dy * dx0;
    orientation |= dydx0 > dxdy0 ? 1 : (dydx0 < dxdy0 ? 2 : 3);
    if (orientation == 3) return 0;
    dx0 = dx;
    dy0 = dy;
  }
  return 1;
}

static int cmp_point(const void *a, const void *b) {
  const ky_point *p = a, *q = b;
  if (p->x != q->x) return p->x < q->x ? -1 : 1;
  return (p->y > q->y) - (p->y < q->y);
}

static long long cross(ky_point o, ky_point a, ky_point b) {
  return (long long)(a.x - o.x) * (b.y - o.y) - (long long)(a.y - o.y) * (b.x - o.x);
}

int ky_convex_hull(ky_point *hull, const ky_point *p, int n) {
  if (!hull || !p || n <= 0) return 0;
  ky_point *s = malloc(sizeof *s * (size_t)n);
  ky_point *tmp = malloc(sizeof *tmp * (size_t)(2 * n + 1));
  if (!s || !tmp) { free(s); free(tmp); return 0; }
  memcpy(s, p, sizeof *s * (size_t)n);
  qsort(s, (size_t)n, sizeof *s, cmp_point);
  int m = 0;
  for (int i = 0; i < n; i++) if (m == 0 || cmp_point(&s[m - 1], &s[i]) != 0) s[m++] = s[i];
  int k = 0;
  if (m == 1) { hull[0] = s[0]; free(s); free(tmp); return 1; }
  /* Andrew's monotone chain; popping on cross <= 0 drops collinear points. */
  for (int i = 0; i < m; i++) {
    while (k >= 2 && cross(tmp[k - 2], tmp[k - 1], s[i]) <= 0) k--;
    tmp[k++] = s[i];
  }
  for (int i = m - 2, lo = k + 1; i >= 0; i--) {
    while (k >= lo && cross(tmp[k - 2], tmp[k - 1], s[i]) <= 0) k--;
    tmp[k++] = s[i];
  }
  k--;  /* the last point repeats the first */
  if (k < 2) k = 2;  /* all collinear: the two extremes */
  memcpy(hull, tmp, sizeof *hull * (size_t)k);
  free(s);
  free(tmp);
  return k;
}

/* ---- cv2.convexHull(points, clockwise=False) as OpenCV 4.6 orders it ----
 * minAreaRect's result on ties depends on where the hull starts and which way it runs, so the hull
 * is rebuilt the way OpenCV builds it: Sklansky's scan over the points sorted by (x, y, input
 * order), upper half then lower half, then a cyclic shift that makes the input indices run
 * monotonically when they can. */

/* ord: indices of p sorted by (x, y, index). Scans ord[start..end] (either direction), keeping the
 * turns whose sign is sign2, skipping steps whose y-direction sign is nsign. Returns the stack size;
 * stack holds positions in ord. */
static int sklansky(const ky_point *p, const int *ord, int start, int end, int *stack, int nsign, int sign2) {
  int incr = end > start ? 1 : -1;
  int pprev = start, pcur = pprev + incr, pnext = pcur + incr, size = 3;
  if (start == end || (p[ord[start]].x == p[ord[end]].x && p[ord[start]].y == p[ord[end]].y)) {
    stack[0] = start;
    return 1;
  }
  stack[0] = pprev;
  stack[1] = pcur;
  stack[2] = pnext;
  end += incr;
  while (pnext != end) {
    long long cury = p[ord[pcur]].y, nexty = p[ord[pnext]].y, by = nexty - cury;
    int sby = (by > 0) - (by < 0);
    if (sby != nsign) {
      long long ax = p[ord[pcur]].x - p[ord[pprev]].x, bx = p[ord[pnext]].x - p[ord[pcur]].x;
      long long ay = cury - p[ord[pprev]].y;
      long long conv = ay * bx - ax * by;
      int sc = (conv > 0) - (conv < 0);
      if (sc == sign2 && (ax != 0 || ay != 0)) {
        pprev = pcur;
        pcur = pnext;
        pnext += incr;
        stack[size++] = pnext;
      } else if (pprev == start) {
        pcur = pnext;
        stack[1] = pcur;
        pnext += incr;
        stack[2] = pnext;
      } else {
        stack[size - 2] = pnext;
        pcur = pprev;
        pprev = stack[size - 4];
        size--;
      }
    } else {
      pnext += incr;
      stack[size - 1] = pnext;
    }
  }
  return size - 1;
}

static int cmp_ord(const void *a, const void *b, void *ctx) {
  const ky_point *p = ctx;
  int i = *(const int *)a, j = *(const int *)b;
  if (p[i].x != p[j].x) return p[i].x < p[j].x ? -1 : 1;
  if (p[i].y != p[j].y) return p[i].y < p[j].y ? -1 : 1;
  return (i > j) - (i < j);
}

/* Fills hull[] with indices into p (counter-clockwise for y up, as cv2.convexHull with
 * clockwise=False returns them); returns the count, 0 on allocation failure. */
static int opencv_hull_ccw(int *hull, const ky_point *p, int n) {
  int *ord = malloc(sizeof *ord * (size_t)n);
  int *s1 = malloc(sizeof *s1 * (size_t)(n + 3)), *s2 = malloc(sizeof *s2 * (size_t)(n + 3));
  int *tmp = malloc(sizeof *tmp * (size_t)(n + 3));
  if (!ord || !s1 || !s2 || !tmp) { free(ord); free(s1); free(s2); free(tmp); return 0; }
  for (int i = 0; i < n; i++) ord[i] = i;
  qsort_r(ord, (size_t)n, sizeof *ord, cmp_ord, (void *)p);
  int miny = 0, maxy = 0, nout = 0;
  for (int i = 1; i < n; i++) {
    if (p[ord[miny]].y > p[ord[i]].y) miny = i;
    if (p[ord[maxy]].y < p[ord[i]].y) maxy = i;
  }
  if (p[ord[0]].x == p[ord[n - 1]].x && p[ord[0]].y == p[ord[n - 1]].y) {
    hull[nout++] = 0;
  } else {
    /* Upper half; for counter-clockwise output the right-hand chain comes first. */
    int c1 = sklansky(p, ord, 0, maxy, s1, -1, 1);
    int c2 = sklansky(p, ord, n - 1, maxy, s2, -1, -1);
    int *tl = s2, *tr = s1, tlc = c2, trc = c1;
    for (int i = 0; i < tlc - 1; i++) hull[nout++] = ord[tl[i]];
    for (int i = trc - 1; i > 0; i--) hull[nout++] = ord[tr[i]];
    int stop = trc > 2 ? tr[1] : tlc > 2 ? tl[tlc - 2] : -1;
    /* Lower half. */
    int blc = sklansky(p, ord, 0, miny, s1, 1, -1);
    int brc = sklansky(p, ord, n - 1, miny, s2, 1, 1);
    int *bl = s1, *br = s2;
    if (stop >= 0) {
      int check = blc > 2 ? bl[1] : blc + brc > 2 ? br[2 - blc] : -1;
      if (check == stop || (check >= 0 && p[ord[check]].x == p[ord[stop]].x && p[ord[check]].y == p[ord[stop]].y)) {
        /* All points on one line: the lower half mirrors the upper one. */
        if (blc > 2) blc = 2;
        if (brc > 2) brc = 2;
      }
    }
    for (int i = 0; i < blc - 1; i++) hull[nout++] = ord[bl[i]];
    for (int i = brc - 1; i > 0; i--) hull[nout++] = ord[br[i]];
    if (nout >= 3) {
      int min_i = 0, max_i = 0, lt = 0;
      for (int i = 1; i < nout; i++) {
        lt += hull[i - 1] < hull[i];
        if (lt > 1 && lt <= i - 2) break;
        if (hull[i] < hull[min_i]) min_i = i;
        if (hull[i] > hull[max_i]) max_i = i;
      }
      int dist = abs(max_i - min_i);
      if ((dist == 1 || dist == nout - 1) && (lt <= 1 || lt >= nout - 2)) {
        int asc = (max_i + 1) % nout == min_i;
        int i0 = asc ? min_i : max_i, j = i0, i;
        if (i0 > 0) {
          for (i = 0; i < nout; i++) {
            int cur = tmp[i] = hull[j];
            int nj = j + 1 < nout ? j + 1 : 0;
            if (i < nout - 1 && (asc != (cur < hull[nj]))) break;
            j = nj;
          }
          if (i == nout) memcpy(hull, tmp, sizeof *hull * (size_t)nout);
        }
      }
    }
  }
  free(ord); free(s1); free(s2); free(tmp);
  return nout;
}

/* OpenCV's rotating calipers (MINAREARECT), in float as OpenCV computes it, so that ties between
 * equal areas resolve the same way ("area <= minarea": the last one met wins).
 * out: corner, side vector 1, side vector 2. */
static void rotating_calipers(float out[6], const float *px, const float *py, int n, float *buf) {
  float minarea = 3.402823466e+38f;
  float *inv_len = buf, *vx = buf + n, *vy = buf + 2 * n;
  int left = 0, bottom = 0, right = 0, top = 0;
  float left_x = px[0], right_x = px[0], top_y = py[0], bottom_y = py[0];
  for (int i = 0; i < n; i++) {
    if (px[i] < left_x) left_x = px[i], left = i;
    if (px[i] > right_x) right_x = px[i], right = i;
    if (py[i] > top_y) top_y = py[i], top = i;
    if (py[i] < bottom_y) bottom_y = py[i], bottom = i;
    int j = i + 1 < n ? i + 1 : 0;
    double dx = (double)px[j] - px[i], dy = (double)py[j] - py[i];
    vx[i] = (float)dx;
    vy[i] = (float)dy;
    inv_len[i] = (float)(1. / sqrt(dx * dx + dy * dy));
  }
  float orientation = 0;
  {
    double ax = vx[n - 1], ay = vy[n - 1];
    for (int i = 0; i < n; i++) {
      double bx = vx[i], by = vy[i], c = ax * by - ay * bx;
      if (c != 0) { orientation = c > 0 ? 1.f : -1.f; break; }
      ax = bx;
      ay = by;
    }
  }
  float base_a = orientation, base_b = 0;
  int seq[4] = {bottom, right, top, left};
  int best_left = 0, best_bottom = 0;
  float best_a = 0, best_b = 0, best_w = 0, best_h = 0;
  for (int k = 0; k < n; k++) {
    float dp[4] = {
      +base_a * vx[seq[0]] + base_b * vy[seq[0]],
      -base_b * vx[seq[1]] + base_a * vy[seq[1]],
      -base_a * vx[seq[2]] - base_b * vy[seq[2]],
      +base_b * vx[seq[3]] - base_a * vy[seq[3]],
    };
    float maxcos = dp[0] * inv_len[seq[0]];
    int main_el = 0;
    for (int i = 1; i < 4; i++) {
      float cosalpha = dp[i] * inv_len[seq[i]];
      if (cosalpha > maxcos) { main_el = i; maxcos = cosalpha; }
    }
    int pi = seq[main_el];
    float lead_x = vx[pi] * inv_len[pi], lead_y = vy[pi] * inv_len[pi];
    switch (main_el) {
      case 0: base_a = lead_x; base_b = lead_y; break;
      case 1: base_a = lead_y; base_b = -lead_x; break;
      case 2: base_a = -lead_x; base_b = -lead_y; break;
      default: base_a = -lead_y; base_b = lead_x; break;
    }
    seq[main_el] = seq[main_el] + 1 == n ? 0 : seq[main_el] + 1;
    float dx = px[seq[1]] - px[seq[3]], dy = py[seq[1]] - py[seq[3]];
    float width = dx * base_a + dy * base_b;
    dx = px[seq[2]] - px[seq[0]];
    dy = py[seq[2]] - py[seq[0]];
    float height = -dx * base_b + dy * base_a;
    float area = width * height;
    if (area <= minarea) {
      minarea = area;
      best_left = seq[3];
      best_bottom = seq[0];
      best_a = base_a;
      best_b = base_b;
      best_w = width;
      best_h = height;
    }
  }
  float A1 = best_a, B1 = best_b, A2 = -best_b, B2 = best_a;
  float C1 = A1 * px[best_left] + py[best_left] * B1;
  float C2 = A2 * px[best_bottom] + py[best_bottom] * B2;
  float idet = 1.f / (A1 * B2 - A2 * B1);
  out[0] = (C1 * B2 - C2 * B1) * idet;
  out[1] = (A1 * C2 - A2 * C1) * idet;
  out[2] = A1 * best_w;
  out[3] = B1 * best_w;
  out[4] = A2 * best_h;
  out[5] = B2 * best_h;
}

ky_status ky_min_area_rect(double *short_side, double *long_side, double *angle,
                           const ky_point *p, int n) {
  KY_CHECK_NULL(short_side, "short_side");
  KY_CHECK_NULL(long_side, "long_side");
  KY_CHECK_NULL(angle, "angle");
  KY_CHECK_NULL(p, "points");
  KY_CHECK(n > 0, KY_ERR_ARG, "ky_min_area_rect: %d points, expected at least 1", n);
  int *hull = malloc(sizeof *hull * (size_t)(2 * n + 2));
  float *buf = malloc(sizeof *buf * (size_t)n * 5);
  if (!hull || !buf) { free(hull); free(buf); return ky_error(KY_ERR_NOMEM, "ky_min_area_rect: %d points", n); }
  int m = opencv_hull_ccw(hull, p, n);
  if (m == 0) { free(hull); free(buf); return ky_error(KY_ERR_NOMEM, "ky_min_area_rect: hull of %d points", n); }
  *short_side = *long_side = *angle = 0;
  if (m == 2) {
    double dx = p[hull[1]].x - p[hull[0]].x, dy = p[hull[1]].y - p[hull[0]].y;
    *long_side = (float)sqrt(dx * dx + dy * dy);
    *angle = (float)((float)atan2(dy, dx) * 180 / M_PI);
  } else if (m >= 3) {
    float *hx = buf + 3 * n, *hy = buf + 4 * n, out[6];
    for (int i = 0; i < m; i++) { hx[i] = (float)p[hull[i]].x; hy[i] = (float)p[hull[i]].y; }
    rotating_calipers(out, hx, hy, m, buf);
    float wdt = (float)sqrt((double)out[2] * out[2] + (double)out[3] * out[3]);
    float hgt = (float)sqrt((double)out[4] * out[4] + (double)out[5] * out[5]);
    float ang = (float)atan2((double)out[3], (double)out[2]);
    *short_side = wdt < hgt ? wdt : hgt;
    *long_side = wdt < hgt ? hgt : wdt;
    *angle = (float)(ang * 180 / M_PI);
  }
  free(hull);
  free(buf);
  return KY_OK;
}

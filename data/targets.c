/* Reference targets (create_mask, spec 1.1): 8-connected relabelling, binary square dilations, the
 * skimage marker watershed with watershed lines on a flat image, and the adaptive-window
 * separation band. Tested by tests/test_data_targets.c against skimage golden fixtures. */
#include "data/targets.h"

#include <stdlib.h>
#include <string.h>

ky_status ky_targets_relabel8(int32_t *out, int *n, const uint16_t *labels, int h, int w) {
  KY_CHECK_NULL(out, "out");
  KY_CHECK_NULL(n, "n");
  KY_CHECK_NULL(labels, "labels");
  KY_CHECK(h > 0 && w > 0 && (int64_t)h * w < INT32_MAX, KY_ERR_SHAPE, "ky_targets_relabel8: bad size %dx%d", w, h);
  size_t np = (size_t)h * w;
  memset(out, 0, np * sizeof *out);
  int32_t *stack = malloc(np * sizeof *stack);
  if (!stack) return ky_error(KY_ERR_NOMEM, "ky_targets_relabel8: out of memory for %dx%d", w, h);
  int32_t next = 0;
  for (size_t p0 = 0; p0 < np; p0++) {
    if (!labels[p0] || out[p0]) continue;
    uint16_t v = labels[p0];
    out[p0] = ++next;
    size_t top = 0;
    stack[top++] = (int32_t)p0;
    while (top) {
      int32_t p = stack[--top];
      int y = p / w, x = p % w;
      for (int dy = -1; dy <= 1; dy++) {
        int yy = y + dy;
        if (yy < 0 || yy >= h) continue;
        for (int dx = -1; dx <= 1; dx++) {
          int xx = x + dx;
          if (xx < 0 || xx >= w) continue;
          size_t q = (size_t)yy * w + xx;
          if (labels[q] == v && !out[q]) { out[q] = next; stack[top++] = (int32_t)q; }
        }
      }
    }
  }
  free(stack);
  *n = next;
  return KY_OK;
}

/* dst = binary dilation of src (non-zero) by a (2r+1) square, clipped at the image edge (which
 * is what scipy's grey dilation gives for a symmetric footprint): running counts along rows, then
 * along columns. */
static ky_status dilate_square(uint8_t *dst, const uint8_t *src, int h, int w, int r) {
  size_t np = (size_t)h * w;
  uint8_t *row = malloc(np);
  int *col = calloc((size_t)w, sizeof *col);
  if (!row || !col) { free(row); free(col); return ky_error(KY_ERR_NOMEM, "dilate: out of memory for %dx%d", w, h); }
  for (int y = 0; y < h; y++) {
    const uint8_t *s = src + (size_t)y * w;
    uint8_t *d = row + (size_t)y * w;
    int c = 0;  /* non-zero count in [x - r, x + r] */
    for (int x = 0; x < r && x < w; x++) c += s[x] != 0;
    for (int x = 0; x < w; x++) {
      if (x + r < w) c += s[x + r] != 0;
      if (x - r - 1 >= 0) c -= s[x - r - 1] != 0;
      d[x] = c > 0;
    }
  }
  for (int y = 0; y < r && y < h; y++)
    for (int x = 0; x < w; x++) col[x] += row[(size_t)y * w + x];
  for (int y = 0; y < h; y++) {
    if (y + r < h)
      for (int x = 0; x < w; x++) col[x] += row[(size_t)(y + r) * w + x];
    if (y - r - 1 >= 0)
      for (int x = 0; x < w; x++) col[x] -= row[(size_t)(y - r - 1) * w + x];
    for (int x = 0; x < w; x++) dst[(size_t)y * w + x] = col[x] > 0;
  }
  free(row);
  free(col);
  return KY_OK;
}

/* --- skimage's heap watershed (segmentation/_watershed_cy.pyx, heap_general.pxi), specialised
 * to a flat image: every pushed pixel has the same value, so items order by push "age" alone.
 * Markers all enter with age 0 and their mutual order is whatever the binary heap's sift moves
 * make of equal keys, so the heap is replicated move for move while any age-0 item is left.
 * After that every item has a distinct age and new pushes are older than none, so the rest is a
 * plain FIFO over the remaining items sorted by age. */
typedef struct {
  int32_t age, index, source;
} ws_item;

typedef struct {
  ws_item *a;
  size_t n, cap;
} ws_heap;

static int ws_push(ws_heap *hp, ws_item it) {
  if (hp->n == hp->cap) {
    size_t cap = hp->cap ? hp->cap * 2 : 1024;
    ws_item *t = realloc(hp->a, cap * sizeof *t);
    if (!t) return 0;
    hp->a = t;
    hp->cap = cap;
  }
  size_t child = hp->n++;
  hp->a[child] = it;
  while (child > 0) {
    size_t parent = (child + 1) / 2 - 1;
    if (hp->a[child].age < hp->a[parent].age) {
      ws_item t = hp->a[parent]; hp->a[parent] = hp->a[child]; hp->a[child] = t;
      child = parent;
    } else {
      break;
    }
  }
  return 1;
}

static ws_item ws_pop(ws_heap *hp) {
  ws_item top = hp->a[0];
  hp->n--;
  if (hp->n == 0) return top;
  hp->a[0] = hp->a[hp->n];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = 2 * i + 2, smallest = i;
    if (l >= hp->n) break;
    if (hp->a[l].age < hp->a[i].age) smallest = l;
    if (r < hp->n && hp->a[r].age < hp->a[smallest].age) smallest = r;
    if (smallest == i) break;
    ws_item t = hp->a[i]; hp->a[i] = hp->a[smallest]; hp->a[smallest] = t;
    i = smallest;
  }
  return top;
}

static int cmp_age(const void *a, const void *b) {
  int32_t x = ((const ws_item *)a)->age, y = ((const ws_item *)b)->age;
  return (x > y) - (x < y);
}

/* True (and masks `i` out as a line) when its in-mask neighbours carry two distinct labels. */
static int diff_neighbors(const int32_t *out, int8_t *mask, const int32_t nb[4], int32_t i) {
  if (!mask[i]) return 1;
  int32_t l0 = 0;
  for (int k = 0; k < 4; k++) {
    int32_t q = i + nb[k];
    if (!mask[q]) continue;
    if (!l0) {
      l0 = out[q];
    } else if (out[q] && out[q] != l0) {
      mask[i] = 0;
      return 1;
    }
  }
  return 0;
}

ky_status ky_targets_watershed_lines(uint8_t *lines, const uint8_t *f, const int32_t *markers, int h, int w) {
  KY_CHECK_NULL(lines, "lines");
  KY_CHECK_NULL(f, "f");
  KY_CHECK_NULL(markers, "markers");
  /* Each pixel is pushed at most 4 times, so int32 ages and indices stay in range. */
  KY_CHECK(h > 0 && w > 0 && (int64_t)(h + 2) * (w + 2) < INT32_MAX / 8, KY_ERR_SHAPE,
           "ky_targets_watershed_lines: bad size %dx%d", w, h);
  /* One pixel of zero mask around the image, as skimage pads, so neighbours never go out. */
  int pw = w + 2, ph = h + 2;
  size_t pn = (size_t)pw * ph;
  int8_t *mask = calloc(pn, 1);
  int32_t *out = calloc(pn, sizeof *out);
  ws_heap hp = {NULL, 0, 0};
  ws_item *fifo = NULL;
  ky_status s = KY_OK;
  if (!mask || !out) { s = ky_error(KY_ERR_NOMEM, "watershed: out of memory for %dx%d", w, h); goto done; }
  size_t n_markers = 0;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      size_t p = (size_t)y * w + x, q = (size_t)(y + 1) * pw + x + 1;
      mask[q] = f[p] != 0;
      out[q] = f[p] ? markers[p] : 0;  /* skimage multiplies markers by the mask */
      n_markers += out[q] != 0;
    }
  const int32_t nb[4] = {-pw, -1, 1, pw};  /* skimage's order: sorted by raveled offset */
  for (size_t q = 0; q < pn; q++)
    if (out[q]) {
      ws_item it = {0, (int32_t)q, (int32_t)q};
      if (!ws_push(&hp, it)) { s = ky_error(KY_ERR_NOMEM, "watershed: out of memory"); goto done; }
    }
  int32_t age = 1;
  size_t markers_left = n_markers;
  /* Phase 1: exact heap while age-0 items remain. */
  while (hp.n > 0 && markers_left > 0) {
    ws_item e = ws_pop(&hp);
    if (e.age == 0) markers_left--;
    if (out[e.index] && e.index != e.source) continue;
    if (diff_neighbors(out, mask, nb, e.index)) continue;
    out[e.index] = out[e.source];
    for (int k = 0; k < 4; k++) {
      int32_t q = e.index + nb[k];
      if (!mask[q] || out[q]) continue;
      ws_item it = {++age, q, e.source};
      if (!ws_push(&hp, it)) { s = ky_error(KY_ERR_NOMEM, "watershed: out of memory"); goto done; }
    }
  }
  /* Phase 2: FIFO in age order (same pop order as the heap from here on). */
  {
    size_t cap = hp.n + 1024, head = 0, tail = hp.n;
    fifo = malloc(cap * sizeof *fifo);
    if (!fifo) { s = ky_error(KY_ERR_NOMEM, "watershed: out of memory"); goto done; }
    if (hp.n) memcpy(fifo, hp.a, hp.n * sizeof *fifo);
    qsort(fifo, tail, sizeof *fifo, cmp_age);
    while (head < tail) {
      ws_item e = fifo[head++];
      if (out[e.index] && e.index != e.source) continue;
      if (diff_neighbors(out, mask, nb, e.index)) continue;
      out[e.index] = out[e.source];
      for (int k = 0; k < 4; k++) {
        int32_t q = e.index + nb[k];
        if (!mask[q] || out[q]) continue;
        if (tail == cap) {
          if (head > cap / 2) {
            memmove(fifo, fifo + head, (tail - head) * sizeof *fifo);
            tail -= head;
            head = 0;
          } else {
            ws_item *t = realloc(fifo, cap * 2 * sizeof *t);
            if (!t) { s = ky_error(KY_ERR_NOMEM, "watershed: out of memory"); goto done; }
            fifo = t;
            cap *= 2;
          }
        }
        ws_item it = {++age, q, e.source};
        fifo[tail++] = it;
      }
    }
  }
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      size_t p = (size_t)y * w + x, q = (size_t)(y + 1) * pw + x + 1;
      lines[p] = f[p] && !out[q];
    }
done:
  free(mask);
  free(out);
  free(hp.a);
  free(fifo);
  return s;
}

/* Whether the clipped window [y-r, y+r] x [x-r, x+r] holds more than one distinct non-zero label. */
static int window_has_two(const int32_t *lab, int h, int w, int y, int x, int r) {
  int y0 = y - r < 0 ? 0 : y - r, y1 = y + r >= h ? h - 1 : y + r;
  int x0 = x - r < 0 ? 0 : x - r, x1 = x + r >= w ? w - 1 : x + r;
  int32_t first = 0;
  for (int yy = y0; yy <= y1; yy++) {
    const int32_t *row = lab + (size_t)yy * w;
    for (int xx = x0; xx <= x1; xx++) {
      int32_t v = row[xx];
      if (!v) continue;
      if (!first) first = v;
      else if (v != first) return 1;
    }
  }
  return 0;
}

ky_status ky_targets_make(uint8_t *body, uint8_t *sep, uint8_t *full, const uint16_t *labels, int h, int w) {
  KY_CHECK_NULL(labels, "labels");
  KY_CHECK(h > 0 && w > 0 && (int64_t)(h + 2) * (w + 2) < INT32_MAX / 8, KY_ERR_SHAPE,
           "ky_targets_make: bad label map size %dx%d", w, h);
  size_t np = (size_t)h * w;
  KY_ASSERT(np > 0);   /* h, w >= 1 and no overflow (checked above): no buffer below is empty */
  if (full)
    for (size_t p = 0; p < np; p++) full[p] = labels[p] ? 255 : 0;
  if (!body && !sep) return KY_OK;
  int32_t *lab = malloc(np * sizeof *lab);
  /* fg: calloc, as the analyser cannot tie the fill loop below (np = h * w) to dilate's rows and columns. */
  uint8_t *fg = calloc(np, 1), *f = malloc(np), *z = malloc(np);
  int64_t *area = NULL;
  ky_status s = KY_OK;
  if (!lab || !fg || !f || !z) { s = ky_error(KY_ERR_NOMEM, "ky_targets_make: out of memory for %dx%d", w, h); goto done; }
  int n = 0;
  if ((s = ky_targets_relabel8(lab, &n, labels, h, w)) != KY_OK) goto done;
  area = calloc((size_t)n + 1, sizeof *area);
  if (!area) { s = ky_error(KY_ERR_NOMEM, "ky_targets_make: out of memory"); goto done; }
  int64_t max_area = 0;
  for (size_t p = 0; p < np; p++) {
    area[lab[p]]++;
    fg[p] = lab[p] != 0;
  }
  for (int k = 1; k <= n; k++)
    if (area[k] > max_area) max_area = area[k];
  if ((s = dilate_square(f, fg, h, w, 4)) != KY_OK) goto done;
  if ((s = ky_targets_watershed_lines(z, f, lab, h, w)) != KY_OK) goto done;
  if ((s = dilate_square(f, z, h, w, 3)) != KY_OK) goto done;  /* f now holds Z */
  for (size_t p = 0; p < np; p++) {
    if (body) body[p] = fg[p] ? 255 : 0;
    if (sep) sep[p] = 0;
  }
  int r_bg = max_area > 4000 ? 6 : 3;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      size_t p = (size_t)y * w + x;
      if (!f[p]) continue;
      int r = r_bg;
      if (lab[p]) {
        int64_t a = area[lab[p]];
        r = a < 300 ? 1 : a < 2000 ? 2 : 3;
      }
      if (window_has_two(lab, h, w, y, x, r)) {
        if (sep) sep[p] = 255;
        if (body) body[p] = 0;
      }
    }
done:
  free(lab);
  free(fg);
  free(f);
  free(z);
  free(area);
  return s;
}

ky_status ky_targets_classes(uint8_t *cls, const uint8_t *body, const uint8_t *sep, int64_t n) {
  KY_CHECK_NULL(cls, "cls");
  KY_CHECK_NULL(body, "body");
  KY_CHECK_NULL(sep, "sep");
  KY_CHECK(n >= 0, KY_ERR_ARG, "ky_targets_classes: n = %lld", (long long)n);
  for (int64_t i = 0; i < n; i++) cls[i] = body[i] > 127 ? 2 : sep[i] > 127 ? 1 : 0;
  return KY_OK;
}

ky_status ky_targets_sigmoid(float *y, const uint8_t *body, const uint8_t *sep, const uint8_t *full, int64_t n) {
  KY_CHECK_NULL(y, "y");
  KY_CHECK_NULL(body, "body");
  KY_CHECK_NULL(sep, "sep");
  KY_CHECK_NULL(full, "full");
  KY_CHECK(n >= 0, KY_ERR_ARG, "ky_targets_sigmoid: n = %lld", (long long)n);
  for (int64_t i = 0; i < n; i++) {
    y[3 * i + 0] = body[i] > 127 ? 1.f : 0.f;
    y[3 * i + 1] = sep[i] > 127 ? 1.f : 0.f;
    y[3 * i + 2] = full[i] > 127 ? 1.f : 0.f;
  }
  return KY_OK;
}

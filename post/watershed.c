/* Priority-flood watershed (see watershed.h). Works on a copy padded by one pixel of mask = 0, so the
 * flood never tests image bounds, exactly as skimage pads. Tested by tests/test_post_watershed.c. */
#include "post/watershed.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
  uint64_t key;   /* elevation (order-preserving u32) << 32 | age; markers have age 0 */
  int32_t idx;    /* padded pixel index */
  int32_t lab;    /* label of the marker this flood started from (skimage's output[source]) */
} ws_item;

typedef struct {
  int pw;          /* padded width */
  size_t np;       /* padded pixel count */
  uint8_t *mask;   /* [np], 0 on the padding; lines clear it as skimage does */
  int32_t *out;    /* [np] */
  uint32_t *elev;  /* [np] order-preserving elevation keys (exact path) */
  uint8_t *elev8;  /* [np] (fast path) */
  int nb[8], nnb;
} ws_grid;

static void grid_free(ws_grid *g) {
  free(g->mask); free(g->out); free(g->elev); free(g->elev8);
  memset(g, 0, sizeof *g);
}

/* skimage's neighbour order: offsets sorted by distance, ties in C order of the footprint. */
static void set_neighbours(ws_grid *g, int connectivity) {
  int pw = g->pw;
  int n4[4] = {-pw, -1, 1, pw}, n8[4] = {-pw - 1, -pw + 1, pw - 1, pw + 1};
  g->nnb = connectivity == 8 ? 8 : 4;
  for (int i = 0; i < 4; i++) { g->nb[i] = n4[i]; g->nb[4 + i] = n8[i]; }
}

static ky_status grid_init(ws_grid *g, const int32_t *labels, const uint8_t *mask, int h, int w,
                           int connectivity, int want_u32, int want_u8) {
  memset(g, 0, sizeof *g);
  g->pw = w + 2;
  g->np = (size_t)(h + 2) * (w + 2);
  g->mask = calloc(g->np, 1);
  g->out = calloc(g->np, sizeof *g->out);
  if (want_u32) g->elev = calloc(g->np, sizeof *g->elev);
  if (want_u8) g->elev8 = calloc(g->np, 1);
  if (!g->mask || !g->out || (want_u32 && !g->elev) || (want_u8 && !g->elev8)) {
    grid_free(g);
    return ky_error(KY_ERR_NOMEM, "watershed: no memory for a %dx%d image", h, w);
  }
  /* Outside the mask (and on the padding) out holds -1, so "already labelled or not floodable" is
   * one test; grid_store turns it back into 0. */
  for (size_t p = 0; p < g->np; p++) g->out[p] = -1;
  for (int r = 0; r < h; r++)
    for (int c = 0; c < w; c++) {
      size_t p = (size_t)(r + 1) * g->pw + c + 1, q = (size_t)r * w + c;
      g->mask[p] = mask ? mask[q] != 0 : 1;
      g->out[p] = g->mask[p] ? labels[q] : -1;   /* skimage: markers * mask */
    }
  set_neighbours(g, connectivity);
  return KY_OK;
}

static void grid_store(int32_t *labels, const ws_grid *g, int h, int w) {
  for (int r = 0; r < h; r++) {
    const int32_t *src = g->out + (size_t)(r + 1) * g->pw + 1;
    int32_t *dst = labels + (size_t)r * w;
    for (int c = 0; c < w; c++) dst[c] = src[c] > 0 ? src[c] : 0;
  }
}

static ky_status check_args(const char *fn, const int32_t *labels, const void *elev, int h, int w,
                            int connectivity, int line) {
  KY_CHECK(labels != NULL, KY_ERR_ARG, "%s: labels (the markers) is NULL", fn);
  KY_CHECK(elev != NULL, KY_ERR_ARG, "%s: elevation is NULL", fn);
  KY_CHECK(h > 0 && w > 0, KY_ERR_SHAPE, "%s: image is %dx%d, expected positive sizes", fn, h, w);
  KY_CHECK((int64_t)(h + 2) * (w + 2) < INT32_MAX, KY_ERR_SHAPE, "%s: image %dx%d is too large", fn, h, w);
  KY_CHECK(connectivity == 4 || connectivity == 8, KY_ERR_ARG,
           "%s: connectivity is %d, expected 4 or 8", fn, connectivity);
  KY_CHECK(line == 0 || line == 1, KY_ERR_ARG, "%s: line is %d, expected 0 or 1", fn, line);
  for (size_t i = 0; i < (size_t)h * w; i++)
    KY_CHECK(labels[i] >= 0, KY_ERR_ARG, "%s: marker at pixel %zu is %d, expected >= 0", fn, i, labels[i]);
  return KY_OK;
}

/* skimage's _diff_neighbors: true (and the pixel becomes a line: mask cleared) when the in-mask
 * neighbours carry two different nonzero labels; also true for a pixel already made a line. */
static inline int diff_neighbours(ws_grid *g, int32_t idx) {
  if (!g->mask[idx]) return 1;
  int32_t l0 = 0;
  for (int k = 0; k < g->nnb; k++) {
    int32_t nb = idx + g->nb[k];
    if (!g->mask[nb]) continue;
    if (!l0) l0 = g->out[nb];
    else if (g->out[nb] && g->out[nb] != l0) { g->mask[idx] = 0; return 1; }
  }
  return 0;
}

/* ---- buckets: 256 FIFO queues; FIFO order is age order because ages only grow ---- */

typedef struct { int32_t idx, lab; } ws_entry;   /* lab < 0 marks a marker (age 0) */
typedef struct { ws_entry *a; size_t head, n, cap; } ws_bucket;

static int bucket_push(ws_bucket *b, int32_t idx, int32_t lab) {
  if (b->n == b->cap) {
    if (b->head > 0 && b->head * 2 >= b->n) {   /* reuse the consumed front */
      memmove(b->a, b->a + b->head, (b->n - b->head) * sizeof *b->a);
      b->n -= b->head; b->head = 0;
    } else {
      size_t cap = b->cap ? b->cap * 2 : 256;
      ws_entry *a = realloc(b->a, cap * sizeof *a);
      if (!a) return 0;
      b->a = a; b->cap = cap;
    }
  }
  b->a[b->n].idx = idx; b->a[b->n].lab = lab; b->n++;
  return 1;
}

static void buckets_free(ws_bucket *bk) {
  if (!bk) return;
  for (int i = 0; i < 256; i++) free(bk[i].a);
  free(bk);
}

static inline int bucket_put(ws_bucket *b, int32_t idx, int32_t lab) {
  if (b->n < b->cap) { b->a[b->n].idx = idx; b->a[b->n].lab = lab; b->n++; return 1; }
  return bucket_push(b, idx, lab);
}

/* Runs the flood from filled buckets (lowest non-empty one is `cur`) to the end; frees bk. The
 * line / no-line loops are written apart: without lines a pixel is labelled when pushed, so a pop
 * never tests anything. */
static inline __attribute__((always_inline)) ky_status bucket_loop(ws_grid *g, ws_bucket *bk, int cur,
                                                                    const int line, const int nnb) {
  const uint8_t *el = g->elev8;
  const uint8_t *mask = g->mask;
  int32_t *out = g->out;
  int nb[8];
  memcpy(nb, g->nb, sizeof nb);
  ky_status s = KY_OK;
  while (cur < 256) {
    ws_bucket *b = &bk[cur];
    if (b->head == b->n) { b->head = b->n = 0; cur++; continue; }
    ws_entry e = b->a[b->head++];
    int32_t lab = e.lab < 0 ? -e.lab : e.lab;
    if (line) {
      if (out[e.idx] && e.lab > 0) continue;
      if (diff_neighbours(g, e.idx)) continue;
      out[e.idx] = lab;
    }
    int low = cur;
    for (int k = 0; k < nnb; k++) {
      int32_t q = e.idx + nb[k];
      if (out[q] || (line && !mask[q])) continue;   /* lines clear mask but leave out at 0 */
      if (!line) out[q] = lab;
      int v = el[q];
      if (!bucket_put(&bk[v], q, lab)) { s = ky_error(KY_ERR_NOMEM, "watershed: no memory for the bucket queue"); goto done; }
      if (v < low) low = v;
    }
    cur = low;
  }
done:
  buckets_free(bk);
  return s;
}

/* Constant line / neighbourhood arguments let the compiler unroll the neighbour loop. */
static ky_status bucket_run(ws_grid *g, ws_bucket *bk, int cur, int line) {
  if (g->nnb == 4) return line ? bucket_loop(g, bk, cur, 1, 4) : bucket_loop(g, bk, cur, 0, 4);
  return line ? bucket_loop(g, bk, cur, 1, 8) : bucket_loop(g, bk, cur, 0, 8);
}

static ky_status flood_buckets(ws_grid *g, int line) {
  ws_bucket *bk = calloc(256, sizeof *bk);
  if (!bk) return ky_error(KY_ERR_NOMEM, "watershed: no memory for buckets");
  int cur = 256;
  for (size_t p = 0; p < g->np; p++)
    if (g->out[p] > 0) {
      int v = g->elev8[p];
      if (!bucket_push(&bk[v], (int32_t)p, -g->out[p])) {
        buckets_free(bk);
        return ky_error(KY_ERR_NOMEM, "watershed: no memory for the bucket queue");
      }
      if (v < cur) cur = v;
    }
  return bucket_run(g, bk, cur, line);
}

/* ---- exact path: binary heap with skimage's sift rules (heap_general.pxi) ---- */

typedef struct { ws_item *a; size_t n, cap; } ws_heap;

/* Both sifts move a hole instead of swapping; the comparisons, and so the final positions, are
 * skimage's. */
static inline int heap_push(ws_heap *hp, ws_item it) {
  if (hp->n == hp->cap) {
    size_t cap = hp->cap ? hp->cap * 2 : 1024;
    ws_item *a = realloc(hp->a, cap * sizeof *a);
    if (!a) return 0;
    hp->a = a; hp->cap = cap;
  }
  ws_item *a = hp->a;
  size_t child = hp->n++;
  while (child > 0) {   /* sift up while strictly smaller than the parent */
    size_t parent = (child + 1) / 2 - 1;
    if (!(it.key < a[parent].key)) break;
    a[child] = a[parent];
    child = parent;
  }
  a[child] = it;
  return 1;
}

static inline ws_item heap_pop(ws_heap *hp) {
  ws_item *a = hp->a;
  ws_item top = a[0];
  size_t n = --hp->n;
  if (n == 0) return top;
  ws_item x = a[n];   /* skimage moves the last item to the root and sifts it down */
  size_t i = 0;
  for (;;) {          /* the left child wins ties */
    size_t l = 2 * i + 1, s = i;
    if (l >= n) break;
    uint64_t sk = x.key;
    if (a[l].key < sk) { s = l; sk = a[l].key; }
    if (l + 1 < n && a[l + 1].key < sk) s = l + 1;
    if (s == i) break;
    a[i] = a[s];
    i = s;
  }
  a[i] = x;
  return top;
}

/* LSD radix sort of items by key (age in the low 32 bits, uint8 elevation above): 5 byte passes. */
static int sort_items(ws_item *a, size_t n) {
  ws_item *tmp = malloc((n ? n : 1) * sizeof *tmp);
  if (!tmp) return 0;
  ws_item *src = a, *dst = tmp;
  for (int pass = 0; pass < 5; pass++) {
    size_t cnt[257] = {0};
    int shift = pass * 8;
    for (size_t i = 0; i < n; i++) cnt[((src[i].key >> shift) & 0xff) + 1]++;
    for (int b = 0; b < 256; b++) cnt[b + 1] += cnt[b];
    for (size_t i = 0; i < n; i++) dst[cnt[(src[i].key >> shift) & 0xff]++] = src[i];
    ws_item *t = src; src = dst; dst = t;
  }
  if (src != a) memcpy(a, src, n * sizeof *a);   /* 5 passes: the result sits in tmp */
  free(tmp);
  return 1;
}

/* Once no marker is left in the heap every key is unique (ages are), so the heap pops in sorted
 * key order from then on, which is what FIFO buckets give: the uint8 path hands over to them. */
static ky_status hand_over(ws_grid *g, ws_heap *hp, int line) {
  ws_bucket *bk = calloc(256, sizeof *bk);
  if (!bk) return ky_error(KY_ERR_NOMEM, "watershed: no memory for buckets");
  if (!sort_items(hp->a, hp->n)) {
    buckets_free(bk);
    return ky_error(KY_ERR_NOMEM, "watershed: no memory to sort %zu queue items", hp->n);
  }
  int cur = 256;
  for (size_t i = 0; i < hp->n; i++) {
    int v = (int)(hp->a[i].key >> 32);
    if (!bucket_push(&bk[v], hp->a[i].idx, hp->a[i].lab)) {
      buckets_free(bk);
      return ky_error(KY_ERR_NOMEM, "watershed: no memory for the bucket queue");
    }
    if (v < cur) cur = v;
  }
  return bucket_run(g, bk, cur, line);
}

/* u8: hand over to buckets when the last marker has left the heap. */
static ky_status flood_heap(ws_grid *g, int line, int u8) {
  ws_heap hp = {0};
  uint64_t age = 1;
  size_t markers = 0;
  ky_status s = KY_OK;
  for (size_t p = 0; p < g->np; p++)
    if (g->out[p] > 0) {
      ws_item it = {(uint64_t)g->elev[p] << 32, (int32_t)p, g->out[p]};
      if (!heap_push(&hp, it)) goto nomem;
      markers++;
    }
  while (hp.n) {
    if (u8 && markers == 0) { s = hand_over(g, &hp, line); goto done; }
    ws_item e = heap_pop(&hp);
    int marker = (e.key & 0xffffffffu) == 0;
    markers -= marker;
    if (line) {
      if (g->out[e.idx] && !marker) continue;
      if (diff_neighbours(g, e.idx)) continue;
      g->out[e.idx] = e.lab;
    }
    for (int k = 0; k < g->nnb; k++) {
      int32_t nb = e.idx + g->nb[k];
      if (g->out[nb] || (line && !g->mask[nb])) continue;
      age++;
      if (age > 0x7fffffffu) { s = ky_error(KY_ERR_SHAPE, "watershed: more than 2^31 queue entries"); goto done; }
      if (!line) g->out[nb] = g->out[e.idx];
      ws_item it = {((uint64_t)g->elev[nb] << 32) | age, nb, e.lab};
      if (!heap_push(&hp, it)) goto nomem;
    }
  }
  goto done;
nomem:
  s = ky_error(KY_ERR_NOMEM, "watershed: no memory for the priority queue (%zu items)", hp.n);
done:
  free(hp.a);
  return s;
}

static inline uint32_t float_key(float f) {
  union { float f; uint32_t u; } v = {f == 0.0f ? 0.0f : f};
  return (v.u & 0x80000000u) ? ~v.u : v.u | 0x80000000u;
}

ky_status ky_post_watershed_u8(int32_t *labels, const uint8_t *elev, const uint8_t *mask, int h, int w,
                               int connectivity, int line) {
  KY_TRY(check_args(__func__, labels, elev, h, w, connectivity, line));
  ws_grid g;
  KY_TRY(grid_init(&g, labels, mask, h, w, connectivity, 1, 1));
  for (int r = 0; r < h; r++)
    for (int c = 0; c < w; c++) {
      size_t p = (size_t)(r + 1) * g.pw + c + 1;
      g.elev8[p] = elev[(size_t)r * w + c];
      g.elev[p] = g.elev8[p];
    }
  ky_status s = flood_heap(&g, line, 1);
  if (s == KY_OK) grid_store(labels, &g, h, w);
  grid_free(&g);
  return s;
}

ky_status ky_post_watershed_f32(int32_t *labels, const float *elev, const uint8_t *mask, int h, int w,
                                int connectivity, int line) {
  KY_TRY(check_args(__func__, labels, elev, h, w, connectivity, line));
  for (size_t i = 0; i < (size_t)h * w; i++)
    KY_CHECK(elev[i] - elev[i] == 0.0f, KY_ERR_NUMERIC, "%s: elevation at pixel %zu is not finite", __func__, i);
  ws_grid g;
  KY_TRY(grid_init(&g, labels, mask, h, w, connectivity, 1, 0));
  for (int r = 0; r < h; r++)
    for (int c = 0; c < w; c++) g.elev[(size_t)(r + 1) * g.pw + c + 1] = float_key(elev[(size_t)r * w + c]);
  ky_status s = flood_heap(&g, line, 0);
  if (s == KY_OK) grid_store(labels, &g, h, w);
  grid_free(&g);
  return s;
}

ky_status ky_post_watershed_u8_fast(int32_t *labels, const uint8_t *elev, const uint8_t *mask, int h, int w,
                                    int connectivity, int line) {
  KY_TRY(check_args(__func__, labels, elev, h, w, connectivity, line));
  ws_grid g;
  KY_TRY(grid_init(&g, labels, mask, h, w, connectivity, 0, 1));
  for (int r = 0; r < h; r++)
    memcpy(g.elev8 + (size_t)(r + 1) * g.pw + 1, elev + (size_t)r * w, (size_t)w);
  ky_status s = flood_buckets(&g, line);
  if (s == KY_OK) grid_store(labels, &g, h, w);
  grid_free(&g);
  return s;
}

/* Priority-flood watershed (see watershed.h). Works on a copy padded by one pixel that counts as
 * outside the mask, so the flood never tests image bounds, exactly as skimage pads. Tested by
 * tests/test_post_watershed.c; timed by bench/bench_watershed.c.
 *
 * Two queues. The 8-bit flood runs on 256 FIFO queues (ws_queues): ages only grow, so FIFO order
 * within a level is skimage's (elevation, age) order. Each pixel is queued at most once: without
 * lines it is labelled when pushed; with lines skimage may push it again, but only its first
 * (oldest) entry does anything when popped, so the later ones are dropped. The exact paths start on
 * a binary heap that makes skimage's comparisons, because markers all have age 0 and tie: their pop
 * order is whatever skimage's heap gives. Once no marker whose pop can still change anything is
 * left (mark_active), every key left that matters is distinct, the order is forced, and the 8-bit
 * flood hands the rest over to the queues. */
#include "post/watershed.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

typedef struct {
  int pw;          /* padded width */
  size_t np;       /* padded pixel count */
  /* [np] > 0 label; 0 unlabelled in the mask; -1 outside the mask, padding, or a line pixel
   * (skimage clears the mask there); <= -2, with lines only: -2 - label, for a pixel queued with
   * that label but not yet popped, and, once popped, for a marker made a line pixel (skimage keeps
   * its label in the output while its neighbours no longer see it). "May this pixel be pushed" is
   * out == 0, and "is it labelled for its neighbours" is out > 0. */
  int32_t *out;
  uint8_t *act;    /* [np] exact paths: markers whose pop can still change something (mark_active) */
  uint8_t *elev8;  /* [np] 8-bit elevations */
  uint32_t *elev;  /* [np] order-preserving float keys (float path) */
  int nb[8], nnb;
} ws_grid;

/* Large buffers ask for transparent huge pages: the flood front wanders over the whole image, and
 * with 4 KiB pages every pixel's rows above and below sit on other pages. */
static void *big_alloc(size_t n) {
  const size_t huge = (size_t)2 << 20;
  if (n < huge) return malloc(n ? n : 1);
  size_t r = (n + huge - 1) & ~(huge - 1);
  void *p = NULL;
  if (posix_memalign(&p, huge, r)) return NULL;
#ifdef MADV_HUGEPAGE
  madvise(p, r, MADV_HUGEPAGE);   /* a hint; failure only costs speed */
#endif
  return p;
}

static void grid_free(ws_grid *g) {
  free(g->out); free(g->act); free(g->elev8); free(g->elev);
  memset(g, 0, sizeof *g);
}

/* skimage's neighbour order: offsets sorted by distance, ties in C order of the footprint. */
static void set_neighbours(ws_grid *g, int connectivity) {
  int pw = g->pw;
  int n4[4] = {-pw, -1, 1, pw}, n8[4] = {-pw - 1, -pw + 1, pw - 1, pw + 1};
  g->nnb = connectivity == 8 ? 8 : 4;
  for (int i = 0; i < 4; i++) { g->nb[i] = n4[i]; g->nb[4 + i] = n8[i]; }
}

enum { WANT_U8 = 1, WANT_F32 = 2, WANT_ACT = 4 };

static ky_status grid_init(ws_grid *g, const int32_t *labels, const uint8_t *mask, int h, int w,
                           int connectivity, int line, int want) {
  memset(g, 0, sizeof *g);
  g->pw = w + 2;
  g->np = (size_t)(h + 2) * (w + 2);
  int ok = (g->out = big_alloc(g->np * sizeof *g->out)) != NULL;
  if (want & WANT_U8) ok = ok && (g->elev8 = big_alloc(g->np));
  if (want & WANT_F32) ok = ok && (g->elev = big_alloc(g->np * sizeof *g->elev));
  if (want & WANT_ACT) ok = ok && (g->act = calloc(g->np, 1));
  if (!ok) {
    grid_free(g);
    return ky_error(KY_ERR_NOMEM, "watershed: no memory for a %dx%d image", h, w);
  }
  for (size_t p = 0; p < (size_t)g->pw; p++) g->out[p] = g->out[g->np - 1 - p] = -1;
  for (int r = 0; r < h; r++) {
    int32_t *o = g->out + (size_t)(r + 1) * g->pw;
    const int32_t *lr = labels + (size_t)r * w;
    o[0] = o[w + 1] = -1;
    if (mask) {
      const uint8_t *mr = mask + (size_t)r * w;
      for (int c = 0; c < w; c++) o[c + 1] = mr[c] ? lr[c] : -1;   /* skimage: markers * mask */
    } else {
      memcpy(o + 1, lr, (size_t)w * sizeof *lr);
    }
  }
  set_neighbours(g, connectivity);
  return KY_OK;
}

static void grid_store(int32_t *labels, const ws_grid *g, int h, int w) {
  for (int r = 0; r < h; r++) {
    const int32_t *src = g->out + (size_t)(r + 1) * g->pw + 1;
    int32_t *dst = labels + (size_t)r * w;
    for (int c = 0; c < w; c++) dst[c] = src[c] > 0 ? src[c] : src[c] < -1 ? -2 - src[c] : 0;
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
  int32_t lo = 0, hi = 0;
  for (size_t i = 0; i < (size_t)h * w; i++) {
    lo = labels[i] < lo ? labels[i] : lo;
    hi = labels[i] > hi ? labels[i] : hi;
  }
  if (lo < 0 || hi > INT32_MAX - 2)   /* lines store a queued label as -2 - label */
    for (size_t i = 0; i < (size_t)h * w; i++)
      KY_CHECK(labels[i] >= 0 && labels[i] <= INT32_MAX - 2, KY_ERR_ARG,
               "%s: marker at pixel %zu is %d, expected 0..%d", fn, i, labels[i], INT32_MAX - 2);
  return KY_OK;
}

/* skimage's _diff_neighbors: do the in-mask neighbours carry two different nonzero labels? Then the
 * pixel becomes a line. Branch-free: that is "largest label != smallest label" over the labelled
 * neighbours (out > 0). */
static inline __attribute__((always_inline)) int diff_labels(const int32_t *o, const int nnb) {
  int32_t hi = 0, lo = INT32_MAX;
  for (int k = 0; k < nnb; k++) {
    hi = o[k] > hi ? o[k] : hi;
    lo = o[k] > 0 && o[k] < lo ? o[k] : lo;
  }
  return hi > 0 && hi != lo;
}

static inline int diff_neighbours(const int32_t *out, int32_t p, const int *nb, const int nnb) {
  int32_t o[8];
  for (int k = 0; k < nnb; k++) o[k] = out[p + nb[k]];
  return diff_labels(o, nnb);
}

/* A pop made p a line pixel: it leaves the mask; a marker keeps its label for the output. */
static inline int32_t line_value(int32_t o) { return o > 0 ? -2 - o : -1; }

/* ---- 8-bit flood on 256 FIFO queues ---- */

/* Each pixel is queued at most once, so level v never holds more entries than there are in-mask
 * pixels of elevation v: the queues are fixed slices of one array, sized by the histogram, and a
 * queue never wraps or grows. Pops read their slice in order, so the pixels coming next are known
 * early and their neighbourhoods can be prefetched. */
typedef struct {
  int32_t *buf;                  /* [in-mask pixels + 256] the 256 slices, one spare slot each */
  size_t head[256], tail[256];   /* absolute positions in buf */
  int cur;                       /* lowest level that may be non-empty */
} ws_queues;

static ky_status queues_init(ws_queues *Q, const ws_grid *g) {
  /* four histograms: one would chain every increment of a plateau's level through memory */
  size_t c4[4][256] = {{0}}, total = 0, p = 0;
  const uint8_t *e = g->elev8;
  const int32_t *o = g->out;
  for (; p + 4 <= g->np; p += 4) {
    c4[0][e[p]] += o[p] >= 0; c4[1][e[p + 1]] += o[p + 1] >= 0;
    c4[2][e[p + 2]] += o[p + 2] >= 0; c4[3][e[p + 3]] += o[p + 3] >= 0;
  }
  for (; p < g->np; p++) c4[0][e[p]] += o[p] >= 0;
  for (int v = 0; v < 256; v++) {
    Q->head[v] = Q->tail[v] = total;
    total += c4[0][v] + c4[1][v] + c4[2][v] + c4[3][v] + 1;
  }
  Q->buf = big_alloc(total * sizeof *Q->buf);
  Q->cur = 256;
  if (!Q->buf) return ky_error(KY_ERR_NOMEM, "watershed: no memory for a queue of %zu pixels", total);
  return KY_OK;
}

static inline void queue_put(ws_queues *Q, int v, int32_t p) {
  Q->buf[Q->tail[v]++] = p;
  if (v < Q->cur) Q->cur = v;
}

/* Runs the queues to empty and frees them. Without lines out[q] is set at push, so a popped pixel's
 * label is out[p]; with lines it is -2 - out[p] (or out[p] for a marker), and the label is set (or
 * the pixel made a line) at pop.
 * The line / no-line and 4 / 8 loops are instantiated apart so the neighbour loop unrolls. */
static inline __attribute__((always_inline)) void queues_loop(ws_grid *g, ws_queues *Q, const int line,
                                                              const int nnb) {
  const uint8_t *el = g->elev8;
  int32_t *out = g->out, *buf = Q->buf;
  size_t *head = Q->head, *tail = Q->tail;
  const int pw = g->pw;
  int nb[8];
  memcpy(nb, g->nb, sizeof nb);
  /* The level being drained keeps its head and tail in registers: most pushes land on it (a
   * plateau), and a tail kept in memory would chain every push through a store and a reload. */
  int cur = Q->cur;
  while (cur < 256) {
    size_t h = head[cur], t = tail[cur];
    int low = cur;
    while (h < t && low == cur) {
      int32_t p = buf[h++];
      if (h + 8 < t) {   /* the flood front is scattered: fetch a later pixel's rows now */
        int32_t f = buf[h + 8];
        __builtin_prefetch(out + f - pw, 1);
        __builtin_prefetch(out + f, 1);
        __builtin_prefetch(out + f + pw, 1);
        __builtin_prefetch(el + f - pw, 0);
        __builtin_prefetch(el + f + pw, 0);
      }
      int32_t o[8], qv;   /* neighbours' values (lines: read once for both uses); what a taken one gets */
      if (line) {
        for (int k = 0; k < nnb; k++) o[k] = out[p + nb[k]];
        int32_t self = out[p], lab = self > 0 ? self : -2 - self;   /* a marker, or queued */
        if (diff_labels(o, nnb)) { out[p] = line_value(self); continue; }
        out[p] = lab;
        qv = -2 - lab;
      } else {
        qv = out[p];
      }
      /* Whether a neighbour joins is a coin toss on a flood front, so it is written back either
       * way and stored into its queue's next slot, and only `take` advances the tail. Each slice
       * has one spare slot for the store that does not count. */
      for (int k = 0; k < nnb; k++) {
        int32_t q = p + nb[k];
        int32_t ok = line ? o[k] : out[q];
        int take = ok == 0;
        out[q] = take ? qv : ok;
        int v = el[q];
        if (v == cur) {
          buf[t] = q;
          t += take;
        } else {
          buf[tail[v]] = q;
          tail[v] += take;
          low = take && v < low ? v : low;
        }
      }
    }
    head[cur] = h;
    tail[cur] = t;
    cur = low < cur ? low : cur + 1;
  }
  free(Q->buf);
  Q->buf = NULL;
}

static void queues_run(ws_grid *g, ws_queues *Q, int line) {
  if (g->nnb == 4) { if (line) queues_loop(g, Q, 1, 4); else queues_loop(g, Q, 0, 4); }
  else { if (line) queues_loop(g, Q, 1, 8); else queues_loop(g, Q, 0, 8); }
}

/* Markers in raster order: the insertion order the FIFO semantics names. */
static ky_status flood_queues(ws_grid *g, int line) {
  ws_queues Q;
  KY_TRY(queues_init(&Q, g));
  for (size_t p = 0; p < g->np; p++)
    if (g->out[p] > 0) queue_put(&Q, g->elev8[p], (int32_t)p);
  queues_run(g, &Q, line);
  return KY_OK;
}

/* ---- exact path: binary heap with skimage's sift rules (heap_general.pxi) ---- */

typedef struct {
  uint64_t key;   /* elevation (order-preserving u32) << 32 | age; markers have age 0 */
  int32_t idx;    /* padded pixel index */
  int32_t lab;    /* label of the marker this flood started from (skimage's output[source]) */
} ws_item;

typedef struct { ws_item *a; size_t n, cap; } ws_heap;

/* The sift moves a hole instead of swapping; the comparisons, and so the final positions, are
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

/* skimage moves the last item x to the root and sifts it down along the smaller child (the left one
 * on ties) until no child is strictly smaller than x. Keys only grow down that path, so the same
 * place is found by running the hole to the bottom along it and then moving x back up past the
 * path items that are not smaller than x: one comparison a level instead of two, and x, usually
 * one of the largest keys, seldom climbs. */
static inline ws_item heap_pop(ws_heap *hp) {
  ws_item *a = hp->a;
  ws_item top = a[0];
  size_t n = --hp->n;
  if (n == 0) return top;
  ws_item x = a[n];
  size_t i = 0, l;
  while ((l = 2 * i + 1) + 1 < n) {
    size_t s = l + (a[l + 1].key < a[l].key);
    a[i] = a[s];
    i = s;
  }
  if (l < n) { a[i] = a[l]; i = l; }
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (a[parent].key < x.key) break;
    a[i] = a[parent];
    i = parent;
  }
  a[i] = x;
  return top;
}

/* LSD radix sort of items by key (age in the low 32 bits, uint8 elevation above): 5 byte passes,
 * the age bytes no age reaches skipped. */
static int sort_items(ws_item *a, size_t n, uint64_t max_age) {
  ws_item *tmp = malloc((n ? n : 1) * sizeof *tmp);
  if (!tmp) return 0;
  ws_item *src = a, *dst = tmp;
  for (int pass = 0; pass < 5; pass++) {
    int shift = pass < 4 ? pass * 8 : 32;
    if (pass < 4 && (max_age >> shift) == 0) continue;
    size_t cnt[257] = {0};
    for (size_t i = 0; i < n; i++) cnt[((src[i].key >> shift) & 0xff) + 1]++;
    for (int b = 0; b < 256; b++) cnt[b + 1] += cnt[b];
    for (size_t i = 0; i < n; i++) dst[cnt[(src[i].key >> shift) & 0xff]++] = src[i];
    ws_item *t = src; src = dst; dst = t;
  }
  if (src != a) memcpy(a, src, n * sizeof *a);
  free(tmp);
  return 1;
}

/* Once no active marker is left every key that still matters is distinct (ages are), so the heap
 * would pop in sorted key order from then on, which is what the FIFO queues give. Inert markers are
 * dropped (their pops change nothing); with lines only the oldest entry of a pixel is kept. */
static ky_status hand_over(ws_grid *g, ws_heap *hp, int line, uint64_t max_age) {
  if (!sort_items(hp->a, hp->n, max_age))
    return ky_error(KY_ERR_NOMEM, "watershed: no memory to sort %zu queue items", hp->n);
  ws_queues Q;
  KY_TRY(queues_init(&Q, g));
  for (size_t i = 0; i < hp->n; i++) {
    const ws_item *it = &hp->a[i];
    if ((it->key & 0xffffffffu) == 0) continue;
    if (line) {
      if (g->out[it->idx]) continue;
      g->out[it->idx] = -2 - it->lab;
    }
    queue_put(&Q, (int)(it->key >> 32), it->idx);
  }
  queues_run(g, &Q, line);
  return KY_OK;
}

/* Which markers can still matter. A marker's pop pushes its unlabelled neighbours, so its place in
 * the pop order matters while it has some. Without lines act[m] counts m's unlabelled in-mask
 * neighbours and drops as they are labelled (by anyone): at 0 the pop does nothing, whenever it
 * comes. With lines labels appear at pop and lines can still clear masks, so only markers whose
 * neighbours are all same-label markers are inert from the start; the others stay active until
 * popped. Returns the number of active markers. */
static size_t mark_active(ws_grid *g, int line) {
  size_t n = 0;
  for (size_t p = (size_t)g->pw; p + g->pw < g->np; p++) {
    int32_t l = g->out[p];
    if (l <= 0) continue;
    int c = 0;
    for (int k = 0; k < g->nnb; k++) {
      int32_t o = g->out[(int32_t)p + g->nb[k]];
      if (o < 0) continue;
      c += line ? o != l : o == 0;
    }
    g->act[p] = (uint8_t)(line ? c > 0 : c);
    n += c > 0;
  }
  return n;
}

/* u8: hand over to the queues when no active marker is left. */
static ky_status flood_heap(ws_grid *g, int line, int u8) {
  ws_heap hp = {0};
  uint64_t age = 1;
  size_t active = mark_active(g, line);
  int32_t *out = g->out;
  ky_status s = KY_OK;
  for (size_t p = 0; p < g->np; p++)
    if (out[p] > 0) {
      uint32_t e = u8 ? g->elev8[p] : g->elev[p];
      ws_item it = {(uint64_t)e << 32, (int32_t)p, out[p]};
      if (!heap_push(&hp, it)) goto nomem;
    }
  while (hp.n) {
    if (u8 && active == 0) { s = hand_over(g, &hp, line, age); goto done; }
    ws_item e = heap_pop(&hp);
    int marker = (e.key & 0xffffffffu) == 0;
    if (line) {
      if (marker && g->act[e.idx]) { g->act[e.idx] = 0; active--; }
      if (out[e.idx] && !marker) continue;   /* labelled, or a line, by an older entry */
      if (diff_neighbours(out, e.idx, g->nb, g->nnb)) { out[e.idx] = line_value(out[e.idx]); continue; }
      out[e.idx] = e.lab;
    }
    for (int k = 0; k < g->nnb; k++) {
      int32_t nb = e.idx + g->nb[k];
      if (out[nb]) continue;
      age++;
      if (age > 0x7fffffffu) { s = ky_error(KY_ERR_SHAPE, "watershed: more than 2^31 queue entries"); goto done; }
      if (!line) {
        out[nb] = e.lab;
        for (int j = 0; j < g->nnb; j++) {   /* nb is no longer unlabelled for the markers around it */
          int32_t m = nb + g->nb[j];
          if (g->act[m] && --g->act[m] == 0) active--;
        }
      }
      uint32_t v = u8 ? g->elev8[nb] : g->elev[nb];
      ws_item it = {((uint64_t)v << 32) | age, nb, e.lab};
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

static void copy_elev8(ws_grid *g, const uint8_t *elev, int h, int w) {
  memset(g->elev8, 0, (size_t)g->pw);
  memset(g->elev8 + g->np - g->pw, 0, (size_t)g->pw);
  for (int r = 0; r < h; r++) {
    uint8_t *e = g->elev8 + (size_t)(r + 1) * g->pw;
    e[0] = e[w + 1] = 0;
    memcpy(e + 1, elev + (size_t)r * w, (size_t)w);
  }
}

ky_status ky_post_watershed_u8(int32_t *labels, const uint8_t *elev, const uint8_t *mask, int h, int w,
                               int connectivity, int line) {
  KY_TRY(check_args(__func__, labels, elev, h, w, connectivity, line));
  ws_grid g;
  KY_TRY(grid_init(&g, labels, mask, h, w, connectivity, line, WANT_U8 | WANT_ACT));
  copy_elev8(&g, elev, h, w);
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
  KY_TRY(grid_init(&g, labels, mask, h, w, connectivity, line, WANT_F32 | WANT_ACT));
  memset(g.elev, 0, g.np * sizeof *g.elev);
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
  KY_TRY(grid_init(&g, labels, mask, h, w, connectivity, line, WANT_U8));
  copy_elev8(&g, elev, h, w);
  ky_status s = flood_queues(&g, line);
  if (s == KY_OK) grid_store(labels, &g, h, w);
  grid_free(&g);
  return s;
}

/* Nuclei copy-paste with ring blending (reference 5.2). Tested by tests/test_aug_copypaste.c. */
#include "aug/copypaste.h"

#include <stdlib.h>
#include <string.h>

#include "data/targets.h"

typedef struct {
  int x0, y0, x1, y1; /* inclusive bounding box */
  int64_t count;
  int all_body;
} box;

typedef struct {
  int w, h;
  uint8_t *mask; /* [h, w] */
  uint8_t *rgb;  /* [h, w, 3] */
} patch;

/* Donor patch as it is in the image now. */
static int patch_take(patch *p, const uint8_t *rgb, const uint16_t *labels, int w, const box *b, uint16_t id) {
  p->w = b->x1 - b->x0 + 1;
  p->h = b->y1 - b->y0 + 1;
  p->mask = malloc((size_t)p->w * p->h);
  p->rgb = malloc((size_t)p->w * p->h * 3);
  if (!p->mask || !p->rgb) return 0;
  for (int y = 0; y < p->h; y++)
    for (int x = 0; x < p->w; x++) {
      size_t s = (size_t)(b->y0 + y) * w + b->x0 + x, d = (size_t)y * p->w + x;
      p->mask[d] = labels[s] == id;
      memcpy(p->rgb + 3 * d, rgb + 3 * s, 3);
    }
  return 1;
}

/* Horizontal flip, then np.rot90(patch, k). */
static int patch_orient(patch *p, int flip, int k) {
  int ow = (k & 1) ? p->h : p->w, oh = (k & 1) ? p->w : p->h;
  uint8_t *m = malloc((size_t)ow * oh), *c = malloc((size_t)ow * oh * 3);
  if (!m || !c) { free(m); free(c); return 0; }
  for (int i = 0; i < oh; i++)
    for (int j = 0; j < ow; j++) {
      int sy, sx;
      if (k == 0) { sy = i; sx = j; }
      else if (k == 1) { sy = j; sx = p->w - 1 - i; }
      else if (k == 2) { sy = p->h - 1 - i; sx = p->w - 1 - j; }
      else { sy = p->h - 1 - j; sx = i; }
      if (flip) sx = p->w - 1 - sx;
      size_t s = (size_t)sy * p->w + sx, d = (size_t)i * ow + j;
      m[d] = p->mask[s];
      memcpy(c + 3 * d, p->rgb + 3 * s, 3);
    }
  free(p->mask); free(p->rgb);
  p->mask = m; p->rgb = c; p->w = ow; p->h = oh;
  return 1;
}

ky_status ky_aug_masked_median3(uint8_t *out, const uint8_t *plane, const uint8_t *mask, int h, int w) {
  KY_CHECK_NULL(out, "out");
  KY_CHECK_NULL(plane, "plane");
  KY_CHECK_NULL(mask, "mask");
  KY_CHECK(h > 0 && w > 0, KY_ERR_SHAPE, "ky_aug_masked_median3: plane must be non-empty, got %dx%d", h, w);
  KY_CHECK(out != plane, KY_ERR_ARG, "ky_aug_masked_median3: out must not alias plane");
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      size_t i = (size_t)y * w + x;
      out[i] = plane[i];
      if (!mask[i]) continue;
      uint8_t v[9] = {0};   /* n >= 1 (pixel i is in the mask); zeroed so no path reads garbage */
      int n = 0;
      for (int dy = -1; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++) {
          int yy = y + dy, xx = x + dx;
          if (yy < 0 || yy >= h || xx < 0 || xx >= w || !mask[(size_t)yy * w + xx]) continue;
          /* insertion sort: at most 9 values */
          uint8_t t = plane[(size_t)yy * w + xx];
          int k = n++;
          while (k > 0 && v[k - 1] > t) { v[k] = v[k - 1]; k--; }
          v[k] = t;
        }
      out[i] = v[n / 2];
    }
  return KY_OK;
}

/* Pastes p at (px, py) with label id, then blends the ring. */
static int paste(uint8_t *rgb, uint16_t *labels, int h, int w, const patch *p, int px, int py, uint16_t id) {
  /* Local window: the patch plus the 2-px reach of the 5x5 morphology. */
  int wx0 = px - 2 < 0 ? 0 : px - 2, wy0 = py - 2 < 0 ? 0 : py - 2;
  int wx1 = px + p->w + 2 > w ? w : px + p->w + 2, wy1 = py + p->h + 2 > h ? h : py + p->h + 2;
  int ww = wx1 - wx0, wh = wy1 - wy0;
  uint8_t *m = calloc((size_t)ww * wh, 1), *ring = calloc((size_t)ww * wh, 1), *img = malloc((size_t)ww * wh * 2);
  if (!m || !ring || !img) { free(m); free(ring); free(img); return 0; }
  for (int y = 0; y < p->h; y++)
    for (int x = 0; x < p->w; x++) {
      if (!p->mask[(size_t)y * p->w + x]) continue;
      size_t g = (size_t)(py + y) * w + px + x;
      labels[g] = id;
      memcpy(rgb + 3 * g, p->rgb + 3 * ((size_t)y * p->w + x), 3);
      m[(size_t)(py + y - wy0) * ww + px + x - wx0] = 1;
    }
  /* ring = (mask and not eroded) or (dilated and not mask); neighbours outside the image do not
   * count (OpenCV's default morphology border). */
  for (int y = 0; y < wh; y++)
    for (int x = 0; x < ww; x++) {
      int any = 0, all = 1;
      for (int dy = -2; dy <= 2; dy++)
        for (int dx = -2; dx <= 2; dx++) {
          int yy = y + dy, xx = x + dx, gy = yy + wy0, gx = xx + wx0;
          if (gy < 0 || gy >= h || gx < 0 || gx >= w) continue;
          int v = (yy >= 0 && yy < wh && xx >= 0 && xx < ww) ? m[(size_t)yy * ww + xx] : 0;
          any |= v;
          all &= v;
        }
      int in = m[(size_t)y * ww + x];
      ring[(size_t)y * ww + x] = (uint8_t)((in && !all) || (!in && any));
    }
  /* Per channel: the window's plane, its masked median on the ring, written back on the ring. */
  uint8_t *med = img + (size_t)ww * wh;
  for (int c = 0; c < 3; c++) {
    for (int y = 0; y < wh; y++)
      for (int x = 0; x < ww; x++) img[(size_t)y * ww + x] = rgb[((size_t)(y + wy0) * w + x + wx0) * 3 + c];
    ky_aug_masked_median3(med, img, ring, wh, ww);
    for (int y = 0; y < wh; y++)
      for (int x = 0; x < ww; x++)
        if (ring[(size_t)y * ww + x]) rgb[((size_t)(y + wy0) * w + x + wx0) * 3 + c] = med[(size_t)y * ww + x];
  }
  free(m); free(ring); free(img);
  return 1;
}

ky_status ky_aug_donors_find(ky_aug_donors *out, const uint16_t *labels, int h, int w) {
  KY_CHECK_NULL(out, "out");
  KY_CHECK_NULL(labels, "labels");
  KY_CHECK(h > 0 && w > 0, KY_ERR_SHAPE, "ky_aug_donors_find: label map must be non-empty, got %dx%d", h, w);
  memset(out, 0, sizeof *out);
  out->h = h;
  out->w = w;
  size_t n = (size_t)h * w;
  int maxid = 0;
  for (size_t i = 0; i < n; i++) maxid = labels[i] > maxid ? labels[i] : maxid;
  out->max_id = maxid;
  if (maxid == 0) return KY_OK;
  uint8_t *body = malloc(n);
  box *bx = malloc(((size_t)maxid + 1) * sizeof *bx);
  if (!body || !bx) {
    free(body); free(bx);
    return ky_error(KY_ERR_NOMEM, "ky_aug_donors_find: no memory for a %dx%d image", h, w);
  }
  ky_status st = ky_targets_make(body, NULL, NULL, labels, h, w);
  if (st != KY_OK) {
    free(body); free(bx);
    return ky_error_context(st, "ky_aug_donors_find: ");
  }
  for (int i = 0; i <= maxid; i++) bx[i] = (box){w, h, -1, -1, 0, 1};
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      size_t i = (size_t)y * w + x;
      int id = labels[i];
      if (!id) continue;
      box *b = &bx[id];
      if (x < b->x0) b->x0 = x;
      if (y < b->y0) b->y0 = y;
      if (x > b->x1) b->x1 = x;
      if (y > b->y1) b->y1 = y;
      b->count++;
      if (!body[i]) b->all_body = 0;
    }
  free(body);
  int np = 0;
  for (int id = 1; id <= maxid; id++) {
    const box *b = &bx[id];
    np += b->count && b->all_body && b->x0 > 0 && b->y0 > 0 && b->x1 < w - 1 && b->y1 < h - 1;
  }
  out->ids = malloc((size_t)(np ? np : 1) * sizeof *out->ids);
  out->boxes = malloc((size_t)(np ? np : 1) * 4 * sizeof *out->boxes);
  if (!out->ids || !out->boxes) {
    free(bx);
    ky_aug_donors_free(out);
    return ky_error(KY_ERR_NOMEM, "ky_aug_donors_find: no memory for %d donors", np);
  }
  for (int id = 1; id <= maxid; id++) {
    const box *b = &bx[id];
    if (!(b->count && b->all_body && b->x0 > 0 && b->y0 > 0 && b->x1 < w - 1 && b->y1 < h - 1)) continue;
    out->ids[out->n] = (uint16_t)id;
    int *q = out->boxes + 4 * out->n++;
    q[0] = b->x0; q[1] = b->y0; q[2] = b->x1; q[3] = b->y1;
  }
  free(bx);
  return KY_OK;
}

void ky_aug_donors_free(ky_aug_donors *d) {
  if (!d) return;
  free(d->ids);
  free(d->boxes);
  memset(d, 0, sizeof *d);
}

/* The copies, after the p draw: n, the n donors, then per copy flip, k, y, x. */
static ky_status copy_from_pool(uint8_t *rgb, uint16_t *labels, int h, int w, int crop_x0, int crop_y0, int crop,
                                const ky_aug_donors *donors, ky_rng *rng) {
  int np = donors->n;
  if (np == 0) return KY_OK;
  /* New ids continue after the largest id now in the image. */
  int maxid = 0;
  for (size_t i = 0; i < (size_t)h * w; i++) maxid = labels[i] > maxid ? labels[i] : maxid;
  ky_status st = KY_OK;
  int copies = (int)ky_rng_int(rng, 1, (np < 5 ? np : 5) + 1);
  patch ps[5];
  memset(ps, 0, sizeof ps);
  for (int i = 0; i < copies && st == KY_OK; i++) {
    int k = (int)ky_rng_int(rng, 0, np);
    const int *q = donors->boxes + 4 * k;
    box b = {q[0], q[1], q[2], q[3], 0, 1};
    if (!patch_take(&ps[i], rgb, labels, w, &b, donors->ids[k]))
      st = ky_error(KY_ERR_NOMEM, "ky_aug_copy_paste: no memory for a donor patch");
  }
  for (int i = 0; i < copies && st == KY_OK; i++) {
    int flip = ky_rng_bernoulli(rng, .5f), k = (int)ky_rng_int(rng, 0, 4);
    if (!patch_orient(&ps[i], flip, k)) { st = ky_error(KY_ERR_NOMEM, "ky_aug_copy_paste: no memory"); break; }
    const patch *q = &ps[i];
    int ylo = crop_y0 - q->h / 2, yhi = crop_y0 + crop - q->h / 2;
    int xlo = crop_x0 - q->w / 2, xhi = crop_x0 + crop - q->w / 2;
    ylo = ylo < 0 ? 0 : ylo; xlo = xlo < 0 ? 0 : xlo;
    yhi = yhi > h - q->h ? h - q->h : yhi; xhi = xhi > w - q->w ? w - q->w : xhi;
    int py = (int)ky_rng_int(rng, ylo, yhi + 1), px = (int)ky_rng_int(rng, xlo, xhi + 1);
    /* A rotated patch wider than a non-square image, or no id left: nothing to paste. */
    if (yhi < ylo || xhi < xlo || maxid >= 65535) continue;
    maxid++;
    if (!paste(rgb, labels, h, w, q, px, py, (uint16_t)maxid))
      st = ky_error(KY_ERR_NOMEM, "ky_aug_copy_paste: no memory for the seam");
  }
  for (int i = 0; i < 5; i++) { free(ps[i].mask); free(ps[i].rgb); }
  return st;
}

#define CHECK_PASTE_ARGS()                                                                                  \
  do {                                                                                                      \
    KY_CHECK_NULL(rgb, "rgb");                                                                              \
    KY_CHECK_NULL(labels, "labels");                                                                        \
    KY_CHECK_NULL(rng, "rng");                                                                              \
    KY_CHECK(h > 0 && w > 0, KY_ERR_SHAPE, "ky_aug_copy_paste: image must be non-empty, got %dx%d", h, w);  \
    KY_CHECK(crop >= 1 && crop_x0 >= 0 && crop_y0 >= 0 && crop_x0 < w && crop_y0 < h, KY_ERR_ARG,          \
             "ky_aug_copy_paste: crop window (x0 %d, y0 %d, size %d) must start inside the %dx%d image",    \
             crop_x0, crop_y0, crop, h, w);                                                                 \
    KY_CHECK(p >= 0.f && p <= 1.f, KY_ERR_ARG, "ky_aug_copy_paste: p must be in [0, 1], got %g", p);        \
  } while (0)

ky_status ky_aug_copy_paste_donors(uint8_t *rgb, uint16_t *labels, int h, int w, int crop_x0, int crop_y0,
                                   int crop, float p, const ky_aug_donors *donors, ky_rng *rng) {
  CHECK_PASTE_ARGS();
  KY_CHECK_NULL(donors, "donors");
  KY_CHECK(donors->h == h && donors->w == w, KY_ERR_SHAPE,
           "ky_aug_copy_paste: donors were found on a %dx%d label map, the image is %dx%d", donors->h,
           donors->w, h, w);
  if (!(ky_rng_uniform(rng) < p)) return KY_OK;
  return copy_from_pool(rgb, labels, h, w, crop_x0, crop_y0, crop, donors, rng);
}

ky_status ky_aug_copy_paste(uint8_t *rgb, uint16_t *labels, int h, int w, int crop_x0, int crop_y0, int crop,
                            float p, ky_rng *rng) {
  CHECK_PASTE_ARGS();
  /* The p draw first: a skipped sample costs no target computation. */
  if (!(ky_rng_uniform(rng) < p)) return KY_OK;
  ky_aug_donors d;
  KY_TRY(ky_aug_donors_find(&d, labels, h, w));
  ky_status st = copy_from_pool(rgb, labels, h, w, crop_x0, crop_y0, crop, &d, rng);
  ky_aug_donors_free(&d);
  return st;
}

ky_status ky_aug_copy_paste_hook(void *ctx, uint8_t *rgb, uint16_t *labels, int h, int w, int y0, int x0,
                                 int crop, ky_rng *rng) {
  KY_CHECK(ctx != NULL, KY_ERR_ARG, "ky_aug_copy_paste_hook: ctx (pointer to the probability) is NULL");
  return ky_aug_copy_paste(rgb, labels, h, w, x0, y0, crop, *(const float *)ctx, rng);
}

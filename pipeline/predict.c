/* TTA inference over a model ensemble. Tested by tests/test_pipeline_predict.c and tests/test_pipeline_train.c. */
#include "pipeline/predict.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "core/safetensors.h"
#include "models/checkpoint.h"
#include "pipeline/config.h"

ky_status ky_head_parse(ky_head *h, const char *loss_name) {
  if (!strcmp(loss_name, "softmax")) *h = KY_HEAD_SOFTMAX;
  else if (!strcmp(loss_name, "sigmoid") || !strcmp(loss_name, "focal")) *h = KY_HEAD_SIGMOID;
  else if (!strcmp(loss_name, "sigmoid3")) *h = KY_HEAD_SIGMOID3;
  else return ky_error(KY_ERR_ARG, "unknown head/loss '%s' (softmax, sigmoid, sigmoid3)", loss_name);
  return KY_OK;
}

/* out = numpy.rot90(in) for an h x w x c image: out has shape w x h, out[i][j] = in[j][w-1-i]. */
static void rot90(float *out, const float *in, int h, int w, int c) {
  for (int i = 0; i < w; i++)
    for (int j = 0; j < h; j++) memcpy(out + ((size_t)i * h + j) * c, in + ((size_t)j * w + (w - 1 - i)) * c, c * sizeof(float));
}

static void flipud(float *out, const float *in, int h, int w, int c) {
  for (int i = 0; i < h; i++) memcpy(out + (size_t)i * w * c, in + (size_t)(h - 1 - i) * w * c, (size_t)w * c * sizeof(float));
}

void ky_dihedral(float *out, const float *in, int h, int w, int c, int v, int inverse) {
  size_t n = (size_t)h * w * c;
  int flip = v >> 2, k = v & 3;
  float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
  if (!a || !b) { free(a); free(b); memcpy(out, in, n * sizeof(float)); return; }
  memcpy(a, in, n * sizeof(float));
  int ch = h, cw = w;   /* current shape of a */
  if (!inverse) {
    if (flip) { flipud(b, a, ch, cw, c); float *t = a; a = b; b = t; }
    for (int r = 0; r < k; r++) { rot90(b, a, ch, cw, c); int t = ch; ch = cw; cw = t; float *tp = a; a = b; b = tp; }
  } else {
    /* Undo: rotate by 4 - k more (back to the original orientation), then flip. */
    for (int r = 0; r < (4 - k) % 4; r++) { rot90(b, a, ch, cw, c); int t = ch; ch = cw; cw = t; float *tp = a; a = b; b = tp; }
    if (flip) { flipud(b, a, ch, cw, c); float *t = a; a = b; b = t; }
  }
  memcpy(out, a, n * sizeof(float));
  free(a);
  free(b);
}

void ky_probs_to_u8(uint8_t *out, const float *p, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    float v = p[i] * 255.0f;
    out[i] = (uint8_t)(v <= 0 ? 0 : v >= 255 ? 255 : v);
  }
}

/* Maps model outputs (logits [hh, ww, C]) to (body, border, full) probabilities in place into pr[hh*ww*3]. */
static void head_probs(float *pr, const float *lg, size_t npix, int C, ky_head head) {
  for (size_t p = 0; p < npix; p++) {
    const float *l = lg + p * C;
    float *o = pr + p * 3;
    if (head == KY_HEAD_SOFTMAX) {
      float m = fmaxf(l[0], fmaxf(l[1], l[2]));
      float e0 = expf(l[0] - m), e1 = expf(l[1] - m), e2 = expf(l[2] - m), s = e0 + e1 + e2;
      o[0] = e2 / s;
      o[1] = e1 / s;
      o[2] = (e1 + e2) / s;
    } else {
      o[0] = 1.0f / (1.0f + expf(-l[0]));
      o[1] = 1.0f / (1.0f + expf(-l[1]));
      o[2] = head == KY_HEAD_SIGMOID3 ? 1.0f / (1.0f + expf(-l[2])) : o[0];
    }
  }
}

void ky_resize_bilinear_f32(float *out, int oh, int ow, const float *in, int h, int w, int c) {
  double sy = (double)h / oh, sx = (double)w / ow;
  for (int y = 0; y < oh; y++) {
    double fy = (y + 0.5) * sy - 0.5;
    int y0 = (int)floor(fy);
    float ay = (float)(fy - y0);
    int ya = y0 < 0 ? 0 : y0 >= h ? h - 1 : y0, yb = y0 + 1 < 0 ? 0 : y0 + 1 >= h ? h - 1 : y0 + 1;
    for (int x = 0; x < ow; x++) {
      double fx = (x + 0.5) * sx - 0.5;
      int x0 = (int)floor(fx);
      float ax = (float)(fx - x0);
      int xa = x0 < 0 ? 0 : x0 >= w ? w - 1 : x0, xb = x0 + 1 < 0 ? 0 : x0 + 1 >= w ? w - 1 : x0 + 1;
      const float *p00 = in + ((size_t)ya * w + xa) * c, *p01 = in + ((size_t)ya * w + xb) * c;
      const float *p10 = in + ((size_t)yb * w + xa) * c, *p11 = in + ((size_t)yb * w + xb) * c;
      float *o = out + ((size_t)y * ow + x) * c;
      for (int k = 0; k < c; k++)
        o[k] = (1 - ay) * ((1 - ax) * p00[k] + ax * p01[k]) + ay * ((1 - ax) * p10[k] + ax * p11[k]);
    }
  }
}

static ky_status predict_scale1(ky_ctx *ctx, const ky_predictor *p, const uint8_t *rgb, int h, int w,
                                float *body, float *border, float *full);

/* Multi-scale TTA: each scale resizes the image (bilinear), runs the dihedral TTA, and resizes the
 * maps back; the maps are averaged over scales. */
ky_status ky_predict_probs(ky_ctx *ctx, const ky_predictor *p, const uint8_t *rgb, int h, int w,
                           float *body, float *border, float *full) {
  KY_CHECK(ctx && p && rgb && body && border && full, KY_ERR_ARG, "predict: NULL argument");
  KY_CHECK(p->n_scales >= 0 && p->n_scales <= 4, KY_ERR_ARG, "predict: %d scales (at most 4)", p->n_scales);
  if (p->n_scales <= 1 && (p->n_scales == 0 || p->scales[0] == 1.0f)) return predict_scale1(ctx, p, rgb, h, w, body, border, full);
  size_t n = (size_t)h * w;
  float *acc = calloc(n * 3, sizeof(float)), *tmp = NULL, *rs = NULL;
  uint8_t *img = NULL;
  ky_status s = acc ? KY_OK : ky_error(KY_ERR_NOMEM, "predict: out of memory");
  for (int i = 0; i < p->n_scales && s == KY_OK; i++) {
    float sc = p->scales[i];
    if (!(sc >= 0.25f && sc <= 4.0f)) { s = ky_error(KY_ERR_ARG, "predict: scale %g outside [0.25, 4]", sc); break; }
    int sh = (int)lroundf(h * sc), sw = (int)lroundf(w * sc);
    if (sh < 1) sh = 1;
    if (sw < 1) sw = 1;
    size_t sn = (size_t)sh * sw;
    free(tmp); free(rs); free(img);
    tmp = malloc(sn * 3 * sizeof(float));
    rs = malloc((n > sn ? n : sn) * 3 * sizeof(float));
    img = malloc(sn * 3);
    if (!tmp || !rs || !img) { s = ky_error(KY_ERR_NOMEM, "predict: out of memory at scale %g", sc); break; }
    /* Image -> scale (as floats, rounded back to uint8 as cv2.resize does for 8-bit images). */
    float *src = malloc(n * 3 * sizeof(float));
    if (!src) { s = ky_error(KY_ERR_NOMEM, "predict: out of memory"); break; }
    for (size_t q = 0; q < n * 3; q++) src[q] = rgb[q];
    ky_resize_bilinear_f32(tmp, sh, sw, src, h, w, 3);
    free(src);
    for (size_t q = 0; q < sn * 3; q++) { float v = tmp[q] + 0.5f; img[q] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }
    float *b = rs, *bd = rs + sn, *f = rs + 2 * sn;
    if ((s = predict_scale1(ctx, p, img, sh, sw, b, bd, f)) != KY_OK) break;
    /* Maps (planar) -> interleaved -> original size. */
    for (size_t q = 0; q < sn; q++) { tmp[3 * q] = b[q]; tmp[3 * q + 1] = bd[q]; tmp[3 * q + 2] = f[q]; }
    ky_resize_bilinear_f32(rs, h, w, tmp, sh, sw, 3);
    for (size_t q = 0; q < n * 3; q++) acc[q] += rs[q] / p->n_scales;
  }
  if (s == KY_OK)
    for (size_t q = 0; q < n; q++) { body[q] = acc[3 * q]; border[q] = acc[3 * q + 1]; full[q] = acc[3 * q + 2]; }
  free(acc); free(tmp); free(rs); free(img);
  return s;
}

static ky_status predict_scale1(ky_ctx *ctx, const ky_predictor *p, const uint8_t *rgb, int h, int w,
                                float *body, float *border, float *full) {
  KY_CHECK(p->n >= 1 && p->n <= KY_PREDICT_MAX_MODELS, KY_ERR_ARG, "predict: %d models", p->n);
  KY_CHECK(p->tta == 1 || p->tta == 8, KY_ERR_ARG, "predict: tta %d, expected 1 or 8", p->tta);
  KY_CHECK(h > 0 && w > 0, KY_ERR_ARG, "predict: empty %dx%d image", w, h);
  ky_pad pad = ky_pad_rule_to32(h, w);
  int ph = h + pad.top + pad.bottom, pw = w + pad.left + pad.right;
  size_t npix = (size_t)ph * pw;
  uint8_t *prgb = malloc(npix * 3);
  float *x = malloc(npix * 3 * sizeof(float)), *xv = malloc(npix * 3 * sizeof(float));
  float *lg = NULL, *pr = malloc(npix * 3 * sizeof(float)), *pinv = malloc(npix * 3 * sizeof(float));
  float *acc = calloc(npix * 3, sizeof(float));
  ky_status s = KY_OK;
  if (!prgb || !x || !xv || !pr || !pinv || !acc) { s = ky_error(KY_ERR_NOMEM, "predict: out of memory for %dx%d", pw, ph); goto done; }
  if ((s = ky_pad_image(prgb, rgb, h, w, 3, 1, pad, KY_PAD_REFLECT)) != KY_OK) goto done;
  if ((s = ky_normalize_u8(x, prgb, (int64_t)npix, p->norm)) != KY_OK) goto done;
  int old_grad = ky_ctx_set_grad(ctx, 0), old_train = ctx->training;
  ctx->training = 0;
  double wsum = 0;
  for (int m = 0; m < p->n && s == KY_OK; m++) {
    const ky_model_config *mc = ky_model_get_config(p->model[m]);
    int C = mc->classes;
    if ((p->head[m] == KY_HEAD_SIGMOID && C < 2) || (p->head[m] != KY_HEAD_SIGMOID && C != 3)) {
      s = ky_error(KY_ERR_SHAPE, "predict: model %d has %d outputs, its head needs %s", m, C,
                   p->head[m] == KY_HEAD_SIGMOID ? "2" : "3");
      break;
    }
    free(lg);
    lg = malloc(npix * C * sizeof(float));
    if (!lg) { s = ky_error(KY_ERR_NOMEM, "predict: out of memory"); break; }
    for (int v = 0; v < p->tta && s == KY_OK; v++) {
      int vh = (v & 1) ? pw : ph, vw = (v & 1) ? ph : pw;
      ky_dihedral(xv, x, ph, pw, 3, v, 0);
      ky_ctx_reset(ctx);
      ky_tensor *xt, *out;
      int shape[4] = {1, vh, vw, 3};
      if ((s = ky_tensor_from_host(ctx, &xt, KY_F32, 4, shape, xv)) != KY_OK) break;
      if ((s = ky_model_forward(ctx, p->model[m], xt, &out)) != KY_OK) break;
      if ((s = ky_tensor_to_host(ctx, lg, out)) != KY_OK) break;
      head_probs(pr, lg, npix, C, p->head[m]);
      ky_dihedral(pinv, pr, vh, vw, 3, v, 1);
      float wt = p->weight[m] / p->tta;
      for (size_t i = 0; i < npix * 3; i++) acc[i] += wt * pinv[i];
    }
    wsum += p->weight[m];
  }
  ky_ctx_set_grad(ctx, old_grad);
  ctx->training = old_train;
  ky_ctx_reset(ctx);
  if (s != KY_OK) goto done;
  if (!(wsum > 0)) { s = ky_error(KY_ERR_ARG, "predict: model weights sum to %g", wsum); goto done; }
  for (int y = 0; y < h; y++)
    for (int xx = 0; xx < w; xx++) {
      const float *a = acc + ((size_t)(y + pad.top) * pw + xx + pad.left) * 3;
      size_t o = (size_t)y * w + xx;
      body[o] = (float)(a[0] / wsum);
      border[o] = (float)(a[1] / wsum);
      full[o] = (float)(a[2] / wsum);
    }
done:
  free(prgb); free(x); free(xv); free(lg); free(pr); free(pinv); free(acc);
  return s;
}

ky_status ky_predictor_add(ky_predictor *p, const char *path, float weight, ky_device dev, struct ky_cuda *cu,
                           const char *fallback_model, const char *fallback_loss) {
  KY_CHECK(p && path, KY_ERR_ARG, "predictor: NULL argument");
  KY_CHECK(p->n < KY_PREDICT_MAX_MODELS, KY_ERR_ARG, "predictor: more than %d models", KY_PREDICT_MAX_MODELS);
  KY_CHECK(weight > 0 && isfinite(weight), KY_ERR_ARG, "predictor: weight %g for %s must be > 0", weight, path);
  ky_st_file f;
  KY_TRY(ky_st_read(&f, path));
  ky_train_config tc;
  ky_train_config_default(&tc);
  const char *text = ky_st_meta(&f, "config");
  int is_ckpt = ky_st_meta(&f, "optim.step") != NULL;
  ky_status s = KY_OK;
  if (text) {
    s = ky_train_config_parse(&tc, text, path);
  } else if (!fallback_model || !fallback_loss) {
    /* An early return here leaked the file buffer. */
    s = ky_error(KY_ERR_ARG, "%s holds weights without a training config: give the network (--model) and head (--loss)",
                 path);
  } else {
    snprintf(tc.model, sizeof tc.model, "%s", fallback_model);
    snprintf(tc.loss, sizeof tc.loss, "%s", fallback_loss);
  }
  ky_st_free(&f);
  KY_TRY(s);
  ky_head head = KY_HEAD_SOFTMAX;
  ky_norm norm;
  KY_TRY(ky_head_parse(&head, tc.loss));
  KY_TRY(ky_norm_parse(&norm, tc.norm));
  if (p->n > 0 && norm != p->norm)
    return ky_error(KY_ERR_ARG, "predictor: %s normalises with %s, the other models with %s", path, tc.norm,
                    ky_norm_name(p->norm));
  ky_model_config mc = ky_model_config_default();
  mc.classes = head == KY_HEAD_SIGMOID ? 2 : 3;
  mc.width = tc.width;
  mc.decoder_bn = tc.decoder_bn;
  mc.dev = dev;
  mc.cu = cu;
  ky_model *m;
  KY_TRY(ky_model_create(&m, tc.model, &mc));
  s = is_ckpt ? ky_checkpoint_load(path, m, NULL, NULL) : ky_model_load(m, path, 0, NULL);
  if (s != KY_OK) { ky_model_free(m); return ky_error_context(s, "loading %s: ", path); }
  p->model[p->n] = m;
  p->head[p->n] = head;
  p->weight[p->n] = weight;
  p->norm = norm;
  p->n++;
  return KY_OK;
}

void ky_predictor_free(ky_predictor *p) {
  if (!p) return;
  for (int i = 0; i < p->n; i++) ky_model_free(p->model[i]);
  p->n = 0;
}

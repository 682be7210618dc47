/* ResNet encoders with torchvision's parameter names: BasicBlock (18, 34) and Bottleneck v1.5
 * (50, 101, 152; stride on the 3x3), taps E0..E4 at strides 2..32. Tested by
 * tests/test_models_parity.c (PyTorch forward/backward) and tests/test_models_weights.c (names). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/model_impl.h"

static const int kBlocks18[4] = {2, 2, 2, 2}, kBlocks34[4] = {3, 4, 6, 3}, kBlocks101[4] = {3, 4, 23, 3},
                 kBlocks152[4] = {3, 8, 36, 3};

ky_status ky_resnet_build(ky_resnet *r, ky_mbuilder *b, int depth, int in_ch, float width) {
  const int *nb;
  memset(r, 0, sizeof *r);
  switch (depth) {
    case 18: nb = kBlocks18; break;
    case 34: case 50: nb = kBlocks34; break;
    case 101: nb = kBlocks101; break;
    case 152: nb = kBlocks152; break;
    default: return ky_error(KY_ERR_ARG, "resnet: depth %d (expected 18, 34, 50, 101 or 152)", depth);
  }
  r->depth = depth;
  r->bottleneck = depth >= 50;
  int exp = r->bottleneck ? 4 : 1;
  int total = nb[0] + nb[1] + nb[2] + nb[3];
  r->blocks = calloc((size_t)total, sizeof *r->blocks);
  if (!r->blocks) return ky_error(KY_ERR_NOMEM, "resnet%d: %d blocks", depth, total);
  r->n_blocks = total;

  int stem = ky_mwidth(64, width);
  KY_TRY(ky_mconv_add(b, &r->conv1, "conv1", in_ch, stem, 7, 2, 0, KY_FAN_OUT));
  KY_TRY(ky_mbn_add(b, &r->bn1, "bn1", stem));
  r->tap_ch[0] = stem;

  int inp = stem, bi = 0;
  for (int s = 0; s < 4; s++) {
    int planes = ky_mwidth(64 << s, width);
    for (int j = 0; j < nb[s]; j++, bi++) {
      ky_mblock *k = &r->blocks[bi];
      int stride = (j == 0 && s > 0) ? 2 : 1;
      char p[KY_MNAME], n[KY_MNAME];
      snprintf(p, sizeof p, "layer%d.%d", s + 1, j);
#define NAME(leaf) (snprintf(n, sizeof n, "%s.%s", p, leaf), n)
      if (r->bottleneck) {
        KY_TRY(ky_mconv_add(b, &k->c1, NAME("conv1"), inp, planes, 1, 1, 0, KY_FAN_OUT));
        KY_TRY(ky_mbn_add(b, &k->b1, NAME("bn1"), planes));
        KY_TRY(ky_mconv_add(b, &k->c2, NAME("conv2"), planes, planes, 3, stride, 0, KY_FAN_OUT));
        KY_TRY(ky_mbn_add(b, &k->b2, NAME("bn2"), planes));
        KY_TRY(ky_mconv_add(b, &k->c3, NAME("conv3"), planes, planes * exp, 1, 1, 0, KY_FAN_OUT));
        KY_TRY(ky_mbn_add(b, &k->b3, NAME("bn3"), planes * exp));
      } else {
        KY_TRY(ky_mconv_add(b, &k->c1, NAME("conv1"), inp, planes, 3, stride, 0, KY_FAN_OUT));
        KY_TRY(ky_mbn_add(b, &k->b1, NAME("bn1"), planes));
        KY_TRY(ky_mconv_add(b, &k->c2, NAME("conv2"), planes, planes, 3, 1, 0, KY_FAN_OUT));
        KY_TRY(ky_mbn_add(b, &k->b2, NAME("bn2"), planes));
      }
      if (stride != 1 || inp != planes * exp) {
        k->has_down = 1;
        KY_TRY(ky_mconv_add(b, &k->down, NAME("downsample.0"), inp, planes * exp, 1, stride, 0, KY_FAN_OUT));
        KY_TRY(ky_mbn_add(b, &k->down_bn, NAME("downsample.1"), planes * exp));
      }
#undef NAME
      inp = planes * exp;
    }
    r->stage_end[s] = bi;
    r->tap_ch[s + 1] = inp;
  }
  return KY_OK;
}

static ky_status block_fwd(ky_mrun *run, ky_tensor **y, const ky_mblock *k, int bottleneck, ky_tensor *x) {
  ky_tensor *t, *id = x;
  KY_TRY(ky_mconv_fwd(run, &t, x, &k->c1, 0));
  KY_TRY(ky_mbn_fwd(run, &t, t, &k->b1, 1));
  KY_TRY(ky_mconv_fwd(run, &t, t, &k->c2, 0));
  if (bottleneck) {
    KY_TRY(ky_mbn_fwd(run, &t, t, &k->b2, 1));
    KY_TRY(ky_mconv_fwd(run, &t, t, &k->c3, 0));
    KY_TRY(ky_mbn_fwd(run, &t, t, &k->b3, 0));
  } else {
    KY_TRY(ky_mbn_fwd(run, &t, t, &k->b2, 0));
  }
  if (k->has_down) {
    KY_TRY(ky_mconv_fwd(run, &id, x, &k->down, 0));
    KY_TRY(ky_mbn_fwd(run, &id, id, &k->down_bn, 0));
  }
  return ky_madd_fwd(run, y, t, id, 1);
}

ky_status ky_resnet_fwd(ky_mrun *run, ky_tensor *taps[5], const ky_resnet *r, ky_tensor *x) {
  ky_tensor *t;
  KY_TRY(ky_mconv_fwd(run, &t, x, &r->conv1, 0));
  KY_TRY(ky_mbn_fwd(run, &t, t, &r->bn1, 1));
  taps[0] = t;
  KY_TRY(ky_mmaxpool_fwd(run, &t, t, "maxpool", 3, 2, 1));
  int bi = 0;
  for (int s = 0; s < 4; s++) {
    for (; bi < r->stage_end[s]; bi++) KY_TRY(block_fwd(run, &t, &r->blocks[bi], r->bottleneck, t));
    taps[s + 1] = t;
  }
  return KY_OK;
}

void ky_resnet_free(ky_resnet *r) {
  free(r->blocks);
  r->blocks = NULL;
  r->n_blocks = 0;
}

/* Selim's FPN-style decoder: 256-ch pyramid P5 = 1x1(C5), Pi = 3x3(up2(P_{i+1}) + 1x1(Ci)) for
 * i = 4..2; per-level heads (3x3 128 + ReLU) x2 on P5..P2 upsampled x8/4/2/1; concat -> 3x3 256 + BN
 * + ReLU -> up2 -> 3x3 128 + ReLU -> concat C1 -> 3x3 128 + ReLU -> up2 -> (3x3 64 + ReLU) x2 ->
 * 1x1 -> classes. All convs have bias; widths scale with the model's width. Tested by
 * tests/test_models_parity.c and tests/test_models_summary.c. */
#include <stdio.h>

#include "models/model_impl.h"

ky_status ky_fpn_build(ky_fpn *p, ky_mbuilder *b, const int f[5], int classes, float width) {
  int F = ky_mwidth(256, width), H = ky_mwidth(128, width), L = ky_mwidth(64, width);
  char n[KY_MNAME];
  for (int k = 0; k < 4; k++) {  /* k = 0: C5 ... k = 3: C2 */
    snprintf(n, sizeof n, "fpn.lateral%d", 5 - k);
    KY_TRY(ky_mconv_add(b, &p->lateral[k], n, f[4 - k], F, 1, 1, 1, KY_FAN_IN));
  }
  for (int k = 0; k < 3; k++) {
    snprintf(n, sizeof n, "fpn.smooth%d", 4 - k);
    KY_TRY(ky_mconv_add(b, &p->smooth[k], n, F, F, 3, 1, 1, KY_FAN_IN));
  }
  for (int k = 0; k < 4; k++) {
    snprintf(n, sizeof n, "levels.%d.conv1", k);
    KY_TRY(ky_mconv_add(b, &p->lv1[k], n, F, H, 3, 1, 1, KY_FAN_IN));
    snprintf(n, sizeof n, "levels.%d.conv2", k);
    KY_TRY(ky_mconv_add(b, &p->lv2[k], n, H, H, 3, 1, 1, KY_FAN_IN));
  }
  KY_TRY(ky_mconv_add(b, &p->agg, "agg_conv", 4 * H, F, 3, 1, 1, KY_FAN_IN));
  KY_TRY(ky_mbn_add(b, &p->agg_bn, "agg_bn", F));
  KY_TRY(ky_mconv_add(b, &p->up1, "up1_conv", F, H, 3, 1, 1, KY_FAN_IN));
  KY_TRY(ky_mconv_add(b, &p->fuse1, "fuse1_conv", H + f[0], H, 3, 1, 1, KY_FAN_IN));
  KY_TRY(ky_mconv_add(b, &p->up0a, "up0_conv1", H, L, 3, 1, 1, KY_FAN_IN));
  KY_TRY(ky_mconv_add(b, &p->up0b, "up0_conv2", L, L, 3, 1, 1, KY_FAN_IN));
  return ky_mconv_add(b, &p->head, "head", L, classes, 1, 1, 1, KY_FAN_IN);
}

ky_status ky_fpn_fwd(ky_mrun *run, ky_tensor **logits, const ky_fpn *p, ky_tensor *taps[5]) {
  ky_tensor *P[4], *t, *u, *lv[4];
  char n[KY_MNAME];
  KY_TRY(ky_mconv_fwd(run, &P[0], taps[4], &p->lateral[0], 0));
  for (int k = 1; k < 4; k++) {  /* P4, P3, P2 */
    snprintf(n, sizeof n, "fpn.p%d.up2", 6 - k);
    KY_TRY(ky_mup_fwd(run, &u, P[k - 1], 2, n));
    KY_TRY(ky_mconv_fwd(run, &t, taps[4 - k], &p->lateral[k], 0));
    KY_TRY(ky_madd_fwd(run, &t, u, t, 0));
    KY_TRY(ky_mconv_fwd(run, &P[k], t, &p->smooth[k - 1], 0));
  }
  for (int k = 0; k < 4; k++) {
    KY_TRY(ky_mconv_fwd(run, &t, P[k], &p->lv1[k], 1));
    KY_TRY(ky_mconv_fwd(run, &t, t, &p->lv2[k], 1));
    snprintf(n, sizeof n, "levels.%d.up%d", k, 8 >> k);
    KY_TRY(ky_mup_fwd(run, &lv[k], t, 8 >> k, n));
  }
  KY_TRY(ky_mconcat_fwd(run, &t, lv, 4, "levels.concat"));
  KY_TRY(ky_mconv_fwd(run, &t, t, &p->agg, 0));
  KY_TRY(ky_mbn_fwd(run, &t, t, &p->agg_bn, 1));
  KY_TRY(ky_mup_fwd(run, &t, t, 2, "up1.up2"));
  KY_TRY(ky_mconv_fwd(run, &t, t, &p->up1, 1));
  ky_tensor *cat[2] = {t, taps[0]};
  KY_TRY(ky_mconcat_fwd(run, &t, cat, 2, "fuse1.concat"));
  KY_TRY(ky_mconv_fwd(run, &t, t, &p->fuse1, 1));
  KY_TRY(ky_mup_fwd(run, &t, t, 2, "up0.up2"));
  KY_TRY(ky_mconv_fwd(run, &t, t, &p->up0a, 1));
  KY_TRY(ky_mconv_fwd(run, &t, t, &p->up0b, 1));
  return ky_mconv_fwd(run, logits, t, &p->head, 0);
}

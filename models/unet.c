/* Albu's U-Net decoder: for i = 4..1 conv3x3(up2(x)) f_i -> f_{i-1} + ReLU, concat E_{i-1},
 * conv3x3 2f_{i-1} -> f_{i-1} + ReLU; then up2, conv3x3 f0 -> f0 + ReLU, conv3x3 f0 -> classes.
 * Optional BN after each decoder conv. Names: decoder.<j>.up / .up_bn / .fuse / .fuse_bn (j = 4 - i),
 * last, last_bn, head. Tested by tests/test_models_parity.c and tests/test_models_summary.c. */
#include <stdio.h>

#include "models/model_impl.h"

ky_status ky_unet_build(ky_unet *u, ky_mbuilder *b, const int f[5], int classes, int bn) {
  u->bn = bn;
  char n[KY_MNAME];
  for (int j = 0; j < 4; j++) {
    int i = 4 - j;
    snprintf(n, sizeof n, "decoder.%d.up", j);
    KY_TRY(ky_mconv_add(b, &u->up[j], n, f[i], f[i - 1], 3, 1, 1, KY_FAN_IN));
    if (bn) {
      snprintf(n, sizeof n, "decoder.%d.up_bn", j);
      KY_TRY(ky_mbn_add(b, &u->up_bn[j], n, f[i - 1]));
    }
    snprintf(n, sizeof n, "decoder.%d.fuse", j);
    KY_TRY(ky_mconv_add(b, &u->fuse[j], n, 2 * f[i - 1], f[i - 1], 3, 1, 1, KY_FAN_IN));
    if (bn) {
      snprintf(n, sizeof n, "decoder.%d.fuse_bn", j);
      KY_TRY(ky_mbn_add(b, &u->fuse_bn[j], n, f[i - 1]));
    }
  }
  KY_TRY(ky_mconv_add(b, &u->last, "last", f[0], f[0], 3, 1, 1, KY_FAN_IN));
  if (bn) KY_TRY(ky_mbn_add(b, &u->last_bn, "last_bn", f[0]));
  return ky_mconv_add(b, &u->head, "head", f[0], classes, 3, 1, 1, KY_FAN_IN);
}

/* conv + ReLU, or conv + BN + ReLU */
static ky_status conv_relu(ky_mrun *run, ky_tensor **y, ky_tensor *x, const ky_mconv *c, const ky_mbn *bn, int use_bn) {
  if (!use_bn) return ky_mconv_fwd(run, y, x, c, 1);
  ky_tensor *t;
  KY_TRY(ky_mconv_fwd(run, &t, x, c, 0));
  return ky_mbn_fwd(run, y, t, bn, 1);
}

ky_status ky_unet_fwd(ky_mrun *run, ky_tensor **logits, const ky_unet *u, ky_tensor *taps[5]) {
  ky_tensor *x = taps[4], *t;
  char n[KY_MNAME];
  for (int j = 0; j < 4; j++) {
    snprintf(n, sizeof n, "decoder.%d.up2", j);
    KY_TRY(ky_mup_fwd(run, &t, x, 2, n));
    KY_TRY(conv_relu(run, &t, t, &u->up[j], &u->up_bn[j], u->bn));
    ky_tensor *cat[2] = {t, taps[3 - j]};
    snprintf(n, sizeof n, "decoder.%d.concat", j);
    KY_TRY(ky_mconcat_fwd(run, &t, cat, 2, n));
    KY_TRY(conv_relu(run, &x, t, &u->fuse[j], &u->fuse_bn[j], u->bn));
  }
  KY_TRY(ky_mup_fwd(run, &t, x, 2, "last.up2"));
  KY_TRY(conv_relu(run, &t, t, &u->last, &u->last_bn, u->bn));
  return ky_mconv_fwd(run, logits, t, &u->head, 0);
}

/* Fuzz harness: a checkpoint (or plain weights file) loaded into a model: names, shapes, dtypes,
 * the optimiser's moments and step, batch-norm counters, non-finite values. The model is a slim
 * U-Net ResNet18 made once. See fuzz_util.h. */
#include "tests/fuzz/fuzz_util.h"

#include "models/checkpoint.h"
#include "models/model.h"
#include "optim/optim.h"

int ky_fuzz_checkpoint(const uint8_t *d, size_t n) {
  static ky_model *m;
  if (!m) {
    ky_model_config cfg = ky_model_config_default();
    cfg.width = 0.0625f;
    if (ky_model_create(&m, "unet_resnet18", &cfg) != KY_OK) abort();
  }
  const char *p = ky_fuzz_file("c.safetensors", d, n);
  ky_optim o = ky_optim_adam(1e-3f);
  ky_ckpt_state st;
  memset(&st, 0, sizeof st);
  if (ky_checkpoint_load(p, m, &o, &st) == KY_OK) ky_ckpt_state_free(&st);
  ky_load_report rep;
  memset(&rep, 0, sizeof rep);
  (void)ky_model_load(m, p, KY_LOAD_ALLOW_MISSING, &rep);
  ky_load_report_free(&rep);
  return 0;
}

KY_FUZZ_MAIN(checkpoint)

/* The ky_model structure and the encoder / decoder builders shared by the files of models/ (internal).
 * Tested through tests/test_models_*.c. */
#ifndef KY_MODELS_MODEL_IMPL_H
#define KY_MODELS_MODEL_IMPL_H

#include "core/safetensors.h"
#include "models/layers.h"
#include "models/model.h"

/* ---- ResNet encoder (torchvision v1.5: stride on the 3x3 of Bottleneck) -------------------- */
typedef struct {
  ky_mconv c1, c2, c3, down;
  ky_mbn b1, b2, b3, down_bn;
  int has_down;
} ky_mblock;

typedef struct {
  int depth;            /* 18, 34, 50, 101, 152 */
  int bottleneck;
  ky_mconv conv1;
  ky_mbn bn1;
  ky_mblock *blocks;
  int n_blocks;
  int stage_end[4];     /* blocks [stage_end[s-1], stage_end[s]) form layer s+1 */
  int tap_ch[5];        /* E0..E4 channels */
} ky_resnet;

ky_status ky_resnet_build(ky_resnet *r, ky_mbuilder *b, int depth, int in_ch, float width);
/* taps[0..4] = E0..E4 */
ky_status ky_resnet_fwd(ky_mrun *run, ky_tensor *taps[5], const ky_resnet *r, ky_tensor *x);
void ky_resnet_free(ky_resnet *r);

/* ---- U-Net decoder (Albu) ------------------------------------------------------------------ */
typedef struct {
  ky_mconv up[4], fuse[4], last, head;   /* up[j], fuse[j]: stage i = 4 - j */
  ky_mbn up_bn[4], fuse_bn[4], last_bn;
  int bn;
} ky_unet;

ky_status ky_unet_build(ky_unet *u, ky_mbuilder *b, const int f[5], int classes, int bn);
ky_status ky_unet_fwd(ky_mrun *run, ky_tensor **logits, const ky_unet *u, ky_tensor *taps[5]);

/* ---- FPN decoder (Selim) ------------------------------------------------------------------- */
typedef struct {
  ky_mconv lateral[4];       /* on C5, C4, C3, C2 */
  ky_mconv smooth[3];        /* P4, P3, P2 */
  ky_mconv lv1[4], lv2[4];   /* per-level heads on P5, P4, P3, P2 */
  ky_mconv agg;
  ky_mbn agg_bn;
  ky_mconv up1, fuse1, up0a, up0b, head;
} ky_fpn;

ky_status ky_fpn_build(ky_fpn *p, ky_mbuilder *b, const int f[5], int classes, float width);
ky_status ky_fpn_fwd(ky_mrun *run, ky_tensor **logits, const ky_fpn *p, ky_tensor *taps[5]);

/* ---- the model ----------------------------------------------------------------------------- */
enum { KY_DEC_UNET = 0, KY_DEC_FPN };

struct ky_model {
  char name[32];
  ky_model_config cfg;
  int decoder;
  ky_resnet enc;
  ky_unet unet;
  ky_fpn fpn;
  ky_params ps, bufs;
  ky_mbuilder b;             /* init table and BN names, kept for export */
  int n_enc_params;          /* encoder tensors: ps.p[0 .. n_enc_params) */
  int frozen;
  int allocated;
  int64_t bn_steps;          /* num_batches_tracked */
  char **nbt_names;          /* "<bn>.num_batches_tracked", [b.n_bn] */
};

/* Forward shared by ky_model_forward and the summary walk. */
ky_status ky_model_run(ky_mrun *run, const ky_model *m, ky_tensor *x, ky_tensor **logits);

/* Weight import shared with checkpoints: entries whose name starts with skip_prefix are neither
 * loaded nor reported. */
ky_status ky_model_load_st(ky_model *m, const ky_st_file *f, int flags, ky_load_report *rep,
                           const char *skip_prefix);
/* Adds the model state to a writer; host copies are malloc'ed into *scratch (free after saving). */
ky_status ky_model_add_state(const ky_model *m, ky_st_writer *w, float **scratch, int64_t *nbt_value);

#endif

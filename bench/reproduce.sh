#!/usr/bin/env bash
# The reference solution's whole procedure on a DSB training set, every stage scored and timed:
# builds `karyon` and runs `karyon reproduce` (pipeline/reproduce.c; usage and output layout in
# docs/guide.md section 7). The stages are library calls tested in miniature by
# tests/test_pipeline_reproduce.c.
#
#   SCALE=cpu bench/reproduce.sh DATA_DIR OUT_DIR [FOLDS_CSV] [karyon reproduce options...]
#   SCALE=gpu bench/reproduce.sh /data/dsb2018/stage1_train /data/repro_gpu
#
# DATA_DIR is a DSB-layout folder (stage1_train); FOLDS_CSV defaults to DATA_DIR/../folds.csv (the
# reference's public folds.csv, with its hold_out column). Everything after it goes to
# `karyon reproduce` as is, e.g. --iters 1200 --gbt-reps 10 --max-images 4 (a dry run).
#   SCALE=cpu  the slim ResNet18 U-Net (x0.25, crop 128, batch 8) of `make demo`, CPU-only build
#              in build-cpu/ (no nvcc needed)
#   SCALE=gpu  the reference's ResNet34 U-Net and ResNet152 FPN (crop 256, batch 16, their
#              schedules), CUDA build in build/; pass --set 'unet34:init=R34.safetensors;fpn152:init=R152.safetensors'
#              for ImageNet encoders (karyon reads torchvision weights saved as safetensors)
# A rerun with the same OUT_DIR skips the stages already done (OUT_DIR/stages/*.done) and resumes a
# stopped training run from its last checkpoint; --force redoes everything.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 2 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
DATA=$1
OUT=$2
shift 2
FOLDS="$(dirname "$DATA")/folds.csv"
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then FOLDS=$1; shift; fi
SCALE=${SCALE:-cpu}
[ -d "$DATA" ] || { echo "reproduce.sh: data folder $DATA not found" >&2; exit 1; }
[ -f "$FOLDS" ] || { echo "reproduce.sh: folds CSV $FOLDS not found (give it as the third argument)" >&2; exit 1; }

case "$SCALE" in
  cpu) B=${B:-build-cpu}; make -j"$(nproc)" CUDA=0 B="$B" "$B/karyon" >/dev/null; DEVICE=cpu ;;
  gpu) B=${B:-build}; make -j"$(nproc)" CUDA=1 B="$B" ${CUDA_ARCH:+CUDA_ARCH="$CUDA_ARCH"} "$B/karyon" >/dev/null; DEVICE=cuda ;;
  *) echo "reproduce.sh: SCALE=$SCALE, expected cpu or gpu" >&2; exit 2 ;;
esac

mkdir -p "$OUT"
{ echo "commit $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
  echo "host $(hostname), $(nproc) cores, started $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "$B/karyon reproduce --scale $SCALE --device $DEVICE --data $DATA --folds $FOLDS --out $OUT $*"; } >> "$OUT/run_info.txt"
exec "$B/karyon" reproduce --scale "$SCALE" --device "$DEVICE" --data "$DATA" --folds "$FOLDS" --out "$OUT" "$@"

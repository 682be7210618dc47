#!/usr/bin/env bash
# End-to-end training evidence on a GPU machine (see docs/gpu.md, "Training data on the GPU
# host"): trains a ResNet34 U-Net from scratch on the packed training subset for a fixed time,
# validating on fold 0 every epoch (DSB score of the held-out images, the reference's metric), and
# prints the epoch table last. Builds nothing: karyon comes from $B (the --pack of gpu_check.sh).
# Smoke-tested on the CPU with small settings (DEVICE=cpu MODEL=unet_resnet18 WIDTH=0.25 CROP=64
# BATCH=2 EPOCH_SIZE=2 VAL_IMAGES=2 E2E_BUDGET=60); never run on a GPU yet.
#
#   B=.gpu/build DATA=.gpu/dsb bash bench/gpu_e2e.sh      # E2E_BUDGET seconds of training [300]
set -u
B=${B:-.gpu/build}
DATA=${DATA:-.gpu/dsb}
BUDGET=${E2E_BUDGET:-300}
RUN=${OUT:-/tmp}/e2e_run
if [ ! -d "$B" ] && [ "$B" = .gpu/build ] && [ -f .gpu/build.tar.xz ]; then
  tar -C .gpu -xJf .gpu/build.tar.xz || { echo "cannot unpack .gpu/build.tar.xz"; exit 1; }
fi
[ -x "$B/karyon" ] || { echo "gpu_e2e: no $B/karyon (build it, or gpu_check.sh --pack)"; exit 1; }
[ -f "$DATA/folds.csv" ] || { echo "gpu_e2e: no $DATA/folds.csv (docs/gpu.md: karyon pack + awk)"; exit 1; }
"$B/karyon" info
echo "gpu_e2e: $(($(wc -l < "$DATA/folds.csv") - 1)) images in $DATA, fold 0 held out, ${BUDGET} s of training"
# Epochs of EPOCH_SIZE steps so that the held-out score is logged often; the time limit ends the
# run between two checkpoints, which is why every epoch is validated (VAL_IMAGES of fold 0).
timeout --signal=INT --kill-after=20 "$BUDGET" "$B/karyon" train --data "$DATA" --folds "$DATA/folds.csv" --fold 0 \
  --model "${MODEL:-unet_resnet34}" --width "${WIDTH:-1}" --crop "${CROP:-256}" --batch "${BATCH:-16}" \
  --epochs 1000 --epoch_size "${EPOCH_SIZE:-100}" --val_images "${VAL_IMAGES:-60}" \
  --lr "${LR:-3e-4}" --schedule const --device "${DEVICE:-cuda}" --tf32 "${TF32:-0}" --quiet 1 --out "$RUN"
rc=$?
echo "gpu_e2e: train exited with $rc ($([ $rc -eq 124 ] || [ $rc -eq 130 ] && echo 'time limit' || echo 'finished or failed'))"
echo "epochs (val_score: DSB score on up to ${VAL_IMAGES:-60} held-out fold-0 images):"
cat "$RUN/epochs.csv" 2>/dev/null || echo "no epochs.csv: no epoch finished"

#!/usr/bin/env bash
# Data-parallel check on a GPU machine (NOT run yet: no GPU in the session that wrote it). Needs a
# karyon built with CUDA, MPI and NCCL (`make CUDA_ARCH=90 B=build-nccl build-nccl/karyon`: the
# banner says "cpu cuda [90] mpi nccl") and Open MPI's mpirun and libraries on the GPU host (the
# binary links libmpi.so.40 and libnccl.so.2 dynamically).
#
#   B=build-nccl bash bench/dist_gpu.sh
#
# 1. `karyon info` lists the NCCL version.
# 2. One rank on GPU 0 under `mpirun -np 1`: the NCCL communicator of one rank is created through
#    MPI (rank 0's ncclUniqueId, MPI_Bcast) and every gradient bucket goes through ncclAllReduce
#    on the side stream (a copy with one rank). Its log.csv must equal the plain run's (no mpirun)
#    to the printed digits: one GPU cannot host two NCCL ranks, so this is the check a single GPU
#    allows.
# 3. With G >= 2 GPUs: `mpirun -np G` (global batch 8 G, one GPU per rank by local rank) against
#    one GPU at the same global batch: the losses agree to ~1e-5 for the first steps (NCCL's ring
#    adds in another order), and the timing lines give the all-reduce wait beside the compute.
# 4. --sync_bn 1 on one GPU rank: the synchronised batch norm kernels (statistics in double, summed
#    over the ranks on the host) run the whole training; their statistics differ from the fused
#    kernels' by about an ulp, so the first steps' losses agree with the plain run's to 1e-4.
set -u
B=${B:-build-nccl}
K=$B/karyon
OUT=${OUT:-/tmp/karyon_dist_gpu}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
rm -rf "$OUT" && mkdir -p "$OUT" || exit 1
fail=0
"$K" info | tee "$OUT/info.txt"
grep -q "^nccl: NCCL" "$OUT/info.txt" || { echo "FAIL: $K was built without NCCL"; fail=1; }
G=$(nvidia-smi -L 2>/dev/null | wc -l)
C="--data tests/fixtures/dsb_sample --folds tests/fixtures/dsb_sample/folds.csv --model unet_resnet34 --crop 256
   --fold -1 --device cuda --threads 2 --quiet 1 --optim sgd --lr 1e-3 --aug none --iters 20"
"$K" train $C --batch 8 --out "$OUT/plain" > "$OUT/plain.txt" 2>&1 || { cat "$OUT/plain.txt"; fail=1; }
mpirun -np 1 "$K" train $C --batch 8 --out "$OUT/np1" > "$OUT/np1.txt" 2>&1 || { cat "$OUT/np1.txt"; fail=1; }
grep -h "device:\|timing:" "$OUT/np1.txt"
grep -q "NCCL gradients" "$OUT/np1.txt" || { echo "FAIL: one rank did not use NCCL"; fail=1; }
if cmp -s "$OUT/plain/log.csv" "$OUT/np1/log.csv"; then echo "ok: 1 NCCL rank == plain run (log.csv identical)"
else echo "FAIL: 1 NCCL rank differs from the plain run:"; paste -d' ' "$OUT/plain/log.csv" "$OUT/np1/log.csv" | head -8; fail=1; fi
if [ "$G" -ge 2 ]; then
  "$K" train $C --batch $((8 * G)) --out "$OUT/one" > "$OUT/one.txt" 2>&1 || { cat "$OUT/one.txt"; fail=1; }
  mpirun -np "$G" "$K" train $C --batch $((8 * G)) --out "$OUT/npG" > "$OUT/npG.txt" 2>&1 || { cat "$OUT/npG.txt"; fail=1; }
  grep -h "timing:" "$OUT/one.txt" "$OUT/npG.txt"
  echo "loss, 1 GPU vs $G GPUs (same global batch):"; paste -d' ' "$OUT/one/log.csv" "$OUT/npG/log.csv" | cut -d, -f1,3,10,11 | head -21
else
  echo "only $G GPU: the $G-rank NCCL run needs a multi-GPU machine (one NCCL rank per GPU)"
fi
if mpirun -np 1 "$K" train $C --batch 8 --sync_bn 1 --out "$OUT/sbn" > "$OUT/sbn.txt" 2>&1 &&
   grep -q "synchronised batch norm" "$OUT/sbn.txt"; then
  # loss column of steps 1-3 (log.csv: step,epoch,loss,...), relative difference to the plain run
  if paste -d, "$OUT/plain/log.csv" "$OUT/sbn/log.csv" | awk -F, 'NR > 1 && NR <= 4 { d = $3 - $11; if (d < 0) d = -d;
       if (d > 1e-4 * ($3 < 0 ? -$3 : $3)) bad = 1; print "step " $1 ": loss " $3 " plain, " $11 " sync_bn" } END { exit bad }'
  then echo "ok: sync_bn 1 on a GPU rank trains and follows the plain run"
  else echo "FAIL: sync_bn 1 on a GPU rank departs from the plain run"; fail=1; fi
else echo "FAIL: sync_bn on GPU:"; tail -5 "$OUT/sbn.txt"; fail=1; fi
[ $fail = 0 ] && echo "dist_gpu: all checks passed" || echo "dist_gpu: FAILED"
exit $fail

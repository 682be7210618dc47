#!/bin/sh
# One command for issue 14's table: PyTorch's CPU figures at 1 and 2 threads (torch_anchor.py --cpu
# with OMP_NUM_THREADS), then karyon's benchmark-model train step (batch 2, 256²) and inference
# (1x512²) at 1 and 2 threads in the same run, with the speed-up per thread count, between two
# readings of the machine's own ceilings (bench_scaling: compute-bound, latency-bound and
# memory-bound loops and karyon's one-thread convolution, each as independent copies on 1..N
# threads).
#   sh bench/bench_threads.sh                 (build folder B=build-cpu, counts THREADS="1 2", STEPS=5)
# On a shared machine run it alone, e.g. under `flock -x /work/cpu.lock sh bench/bench_threads.sh`.
set -e
B=${B:-build-cpu}
THREADS=${THREADS:-"1 2"}
STEPS=${STEPS:-5}
ANCHOR=${ANCHOR:-../shared/bench/torch_anchor.py}
PY=${PY:-/usr/bin/python3}
tmp=$(mktemp -d /tmp/bench_threads.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
[ -x "$B/bench/bench_model" ] || { echo "bench_threads: $B/bench/bench_model not built (make CUDA=0 B=$B)" >&2; exit 1; }
counts=""
anchors=""
for t in $THREADS; do
  counts="${counts:+$counts,}$t"
  if [ -f "$ANCHOR" ]; then
    OMP_NUM_THREADS=$t MKL_NUM_THREADS=$t "$PY" "$ANCHOR" --cpu --json "$tmp/torch_$t.json" > "$tmp/torch_$t.txt" 2>&1 ||
      { echo "bench_threads: $ANCHOR at $t threads failed:" >&2; cat "$tmp/torch_$t.txt" >&2; exit 1; }
    head -1 "$tmp/torch_$t.txt"
    anchors="$anchors --anchor-at $t $tmp/torch_$t.json"
  fi
done
[ -n "$anchors" ] || echo "# (no $ANCHOR: PyTorch columns left empty)"
# The machine's ceiling just before and just after karyon's figures: on a shared host it moves
# within minutes, and a speed-up means little without the ceiling of the same moment.
maxt=$(echo "$THREADS" | tr ' ' '\n' | sort -n | tail -1)
if [ -x "$B/bench/bench_scaling" ]; then
  echo "# before:"
  "$B/bench/bench_scaling" "$maxt" 3
  echo
fi
"$B/bench/bench_model" --cpu-steps "$STEPS" --threads "$counts" $anchors
if [ -x "$B/bench/bench_scaling" ]; then
  echo
  echo "# after:"
  "$B/bench/bench_scaling" "$maxt" 3
fi

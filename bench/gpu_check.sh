#!/usr/bin/env bash
# One-command GPU check for a session that has a GPU machine (see docs/gpu.md): every CUDA test,
# the same tests under compute-sanitizer memcheck and racecheck, every CUDA benchmark, and
# PyTorch's anchor figures in the same run; full logs to $OUT (or $B/gpu_check_logs), a short
# summary table last. Checked by running it on the GPU host; it builds nothing (the build folder
# is made on the CPU machine and carried along).
#
#   bash bench/gpu_check.sh            # B=build by default; GPU_CHECK_BUDGET=420 seconds overall
#   bash bench/gpu_check.sh --pack     # on the CPU machine: pack the CUDA test / bench binaries and
#                                      # karyon (+ libcmocka) of $B into .gpu/build.tar.xz (~17 MB for
#                                      # sm_90 only) to carry instead of the build folder; then on
#                                      # the GPU: B=.gpu/build bash bench/gpu_check.sh (unpacks it)
#
# Order: tests, benchmarks, torch anchor first (the figures that matter most), then the two
# sanitizer passes with whatever time is left; every step has its own timeout so the whole run
# stays under the budget (8 minutes on an H100 leaves time for the machine's start and transfers).
set -u

B=${B:-build}

if [ "${1:-}" = "--pack" ]; then
  dst=.gpu/build
  rm -rf "$dst" && mkdir -p "$dst/tests" "$dst/bench" || exit 1
  for f in "$B"/tests/test_cuda_* "$B"/bench/bench_cuda_* "$B"/bench/bench_ops "$B"/bench/bench_model "$B"/karyon; do
    case "$f" in *.o|*.d) continue ;; esac
    [ -x "$f" ] && cp "$f" "$dst/${f#$B/}"
  done
  [ -d "$B/tests/lib" ] && cp -r "$B/tests/lib" "$dst/tests/"
  ls "$dst"/tests "$dst"/bench
  # The CUDA code is linked into every binary; xz shrinks the fat binaries about 5x, which keeps
  # the carried tree far below its 64 MiB limit. The GPU side unpacks it (below).
  tar -C .gpu -cJf .gpu/build.tar.xz build && rm -rf "$dst" || exit 1
  du -sh .gpu/build.tar.xz
  exit 0
fi
if [ ! -d "$B" ] && [ "$B" = .gpu/build ] && [ -f .gpu/build.tar.xz ]; then
  tar -C .gpu -xJf .gpu/build.tar.xz || { echo "cannot unpack .gpu/build.tar.xz"; exit 1; }
fi
BUDGET=${GPU_CHECK_BUDGET:-420}
LOGS=${OUT:-$B/gpu_check_logs}
mkdir -p "$LOGS"
START=$(date +%s)
SUMMARY=()

elapsed() { echo $(( $(date +%s) - START )); }
left() { echo $(( BUDGET - $(elapsed) )); }

# run_step NAME LOGFILE MAX_SECONDS CMD...: runs CMD with a timeout (capped by the time left),
# records PASS / FAIL(rc) / TIMEOUT / SKIP in the summary.
run_step() {
  local name=$1 log=$2 max=$3
  shift 3
  local t=$(left)
  if [ "$t" -lt 20 ]; then
    SUMMARY+=("$(printf '%-44s %-14s %6s  %s' "$name" "SKIP(budget)" "-" "-")")
    return
  fi
  [ "$t" -gt "$max" ] && t=$max
  local s0=$(date +%s)
  timeout --kill-after=10 "$t" "$@" >"$LOGS/$log" 2>&1
  local rc=$? dt=$(( $(date +%s) - s0 )) st
  if [ $rc -eq 0 ]; then
    st=PASS
    grep -qE "SKIPPED: no CUDA GPU|gpu: skipped" "$LOGS/$log" && st="SKIP(no GPU)"
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    st="TIMEOUT(${t}s)"
  else
    st="FAIL(rc=$rc)"
  fi
  SUMMARY+=("$(printf '%-44s %-14s %5ss  %s' "$name" "$st" "$dt" "$log")")
  echo "== $name: $st (${dt}s, log $LOGS/$log)"
  tail -n 3 "$LOGS/$log" | sed 's/^/   | /'
}

echo "== GPU"
nvidia-smi -L 2>&1 | tee "$LOGS/gpu.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | tee -a "$LOGS/gpu.txt"
git log -1 --format='commit %h %s' 2>/dev/null | tee -a "$LOGS/gpu.txt"

SAN=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer 2>/dev/null | head -n 1)
TESTS=$(ls "$B"/tests/test_cuda_* 2>/dev/null | grep -v '\.[od]$' || true)
BENCHES=$(ls "$B"/bench/bench_cuda_* 2>/dev/null | grep -v '\.[od]$' || true)
[ -n "$TESTS" ] || echo "no $B/tests/test_cuda_* binaries: build here first (make -j2) and carry $B"

for t in $TESTS; do
  n=$(basename "$t")
  run_step "$n" "$n.log" 150 "$t"
done
for b in $BENCHES; do
  n=$(basename "$b")
  run_step "$n" "$n.log" 150 "$b"
done
if [ -f .gpu/torch_anchor.py ]; then
  run_step "torch_anchor.py --quick" "torch_anchor.log" 150 python3 .gpu/torch_anchor.py --quick --json "$LOGS/torch_anchor.json"
else
  SUMMARY+=("$(printf '%-44s %-14s %6s  %s' "torch_anchor.py --quick" "SKIP(absent)" "-" "copy it to .gpu/")")
fi
# The whole model's training step beside PyTorch's (same card, same run), and the op table's
# rows on the GPU.
ANCHOR=()
[ -f "$LOGS/torch_anchor.json" ] && ANCHOR=(--anchor "$LOGS/torch_anchor.json")
[ -x "$B/bench/bench_model" ] && run_step "bench_model (train step, batch 16)" "bench_model.log" 150 "$B/bench/bench_model" --gpu-only "${ANCHOR[@]}"
[ -x "$B/bench/bench_ops" ] && run_step "bench_ops --cuda (op table)" "bench_ops.log" 90 "$B/bench/bench_ops" --cuda
if [ -n "$SAN" ]; then
  for tool in memcheck racecheck; do
    for t in $TESTS; do
      n=$(basename "$t")
      # memcheck without the caching allocator (exact sizes, freed on release), so that it sees
      # every out-of-bounds access; the allocator's own test needs its cache
      nc=0
      [ "$tool" = memcheck ] && [ "$n" != test_cuda_memory ] && nc=1
      run_step "$tool $n" "$tool-$n.log" 150 env KY_CUDA_NO_CACHE=$nc "$SAN" --tool "$tool" --error-exitcode 99 "$t"
    done
  done
else
  SUMMARY+=("$(printf '%-44s %-14s %6s  %s' "compute-sanitizer" "SKIP(absent)" "-" "-")")
fi

# Benchmark tables again at the end, so the last screen holds the numbers.
for b in $BENCHES bench_model bench_ops; do
  n=$(basename "$b")
  echo
  echo "== $n (table)"
  case "$n" in bench_model|bench_ops) head -n 40 "$LOGS/$n.log" 2>/dev/null; continue ;; esac
  grep -E '^\||copy|allocator|bench_' "$LOGS/$n.log" 2>/dev/null | head -80
done
if [ -f "$LOGS/torch_anchor.log" ]; then
  echo
  echo "== torch_anchor.py --quick (last lines)"
  tail -n 25 "$LOGS/torch_anchor.log"
fi

echo
echo "== summary ($(elapsed)s of ${BUDGET}s budget; logs in $LOGS)"
printf '%-44s %-14s %6s  %s\n' "step" "status" "time" "log"
fail=0
for line in "${SUMMARY[@]}"; do
  echo "$line"
  case "$line" in *FAIL*|*TIMEOUT*|*"no GPU"*) fail=1 ;; esac
done
exit $fail

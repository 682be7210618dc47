#!/bin/sh
# Runs every fuzz harness (tests/fuzz/fuzz_<name>.c, built by `make fuzz` into $B/fuzz/) under
# libFuzzer for FUZZ_S seconds each and prints a table: executions, executions per second, new
# corpus entries, result. New inputs go to $B/fuzz/work/<name> (scratch); the committed seeds in
# tests/fuzz/corpus/<name> are only read. A finding is written to $B/fuzz/findings/ and makes the
# exit status non-zero: fix it at its root, then copy the input to tests/fuzz/corpus/<name>/
# as regress_<what> so that `make test` replays it (tests/test_fuzz_replay.c).
# Usage: B=build-fuzz FUZZ_S=20 sh bench/bench_fuzz.sh image dsb ...   (make fuzz does this)
#        FUZZ_RUNS=1000000 ... runs each harness for that many executions instead (the long run
#        whose figures docs/design.md quotes; FUZZ_S is then only a safety limit).
B=${B:-build-fuzz}
FUZZ_S=${FUZZ_S:-20}
limit="-max_total_time=$FUZZ_S"
[ -n "$FUZZ_RUNS" ] && limit="-runs=$FUZZ_RUNS -max_total_time=$FUZZ_S"
mkdir -p "$B/fuzz/findings"
status=0
rows=""
for name in "$@"; do
  case $name in
    image|dsb|labels) dict=tests/fuzz/dict/png.dict ;;
    safetensors|checkpoint) dict=tests/fuzz/dict/safetensors.dict ;;
    gbt) dict=tests/fuzz/dict/gbt.dict ;;
    config) dict=tests/fuzz/dict/config.dict ;;
    *) dict=tests/fuzz/dict/csv.dict ;;
  esac
  work="$B/fuzz/work/$name"
  mkdir -p "$work"
  log="$B/fuzz/$name.log"
  before=$(ls "$work" | wc -l)
  t0=$(date +%s)
  "$B/fuzz/$name" $limit -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 \
      -max_len=65536 -dict="$dict" -artifact_prefix="$B/fuzz/findings/$name-" "$work" "tests/fuzz/corpus/$name" \
      > "$log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - t0 ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  added=$(( $(ls "$work" | wc -l) - before ))
  if [ "$rc" = 0 ]; then result="no finding"; else result="FINDING (see $log)"; status=1; fi
  rows="$rows$(printf '%-12s %6s %12s %10s %8s  %s' "$name" "$secs" "${execs:-?}" "${rate:-?}" "$added" "$result")
"
done
printf '%-12s %6s %12s %10s %8s  %s\n' harness "s" execs "execs/s" "new" result
printf '%s' "$rows"
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores, $(date -u +%Y-%m-%d)"
exit $status

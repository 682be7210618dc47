#!/bin/sh
# Runs every test binary given, keeps going after a failure, prints one summary line per binary
# and a final "N passed, N failed" line (suites). Exit status is non-zero when any suite failed.
pass=0; fail=0; failed=""
for t in "$@"; do
  if "$t"; then pass=$((pass+1)); else fail=$((fail+1)); failed="$failed $(basename $t)"; fi
done
echo "suites: $pass passed, $fail failed"
[ $fail -eq 0 ] || { echo "failed suites:$failed"; exit 1; }

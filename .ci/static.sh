#!/bin/sh
# Static analysis of the C sources (`make check-static`, run by CI): cppcheck (both configurations:
# with and without the CUDA dispatch compiled in) and the clang static analyser (scan-build) over a
# CPU-only build of everything (library, karyon, tests, benchmarks). Fails on any finding.
# cppcheck findings judged safe are suppressed one per line, each with its reason, in
# .ci/cppcheck.supp. scan-build has no suppression list: what it found was fixed, or the invariant
# it could not see was written into the code (a check with an error, a KY_ASSERT, or a calloc'ed
# buffer with a one-line comment where it cannot relate a fill loop to the reads); for tests/,
# tests/analyzer.h makes cmocka's failing asserts noreturn under the analyser only.
# Needs Debian's cppcheck, clang and clang-tools (installed here when run as root).
# Tested by running it: `make check-static` (CI, ~8 min on 2 shared cores); `make check-cppcheck`
# runs the cppcheck half alone (~2 min).
set -e
b=${1:-build-scan}
mode=${2:-all}   # all: cppcheck + scan-build;  cppcheck: cppcheck only
if ! command -v cppcheck >/dev/null 2>&1 || ! command -v scan-build >/dev/null 2>&1 || ! command -v clang >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "karyon: installing cppcheck clang clang-tools"
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine may have no package lists yet.
    apt-get update -qq >/dev/null
    apt-get install -y -qq -o DPkg::Lock::Timeout=900 cppcheck clang clang-tools >/dev/null
  else
    echo "karyon: check-static needs cppcheck, clang and clang-tools: apt-get install -y cppcheck clang clang-tools" >&2
    exit 1
  fi
fi
dirs="core ops losses optim models data aug post pipeline apps tests bench"
for cfg in -DKY_HAVE_CUDA=1 -UKY_HAVE_CUDA; do
  echo "karyon: cppcheck ($cfg)"
  cppcheck -j2 -q --std=c11 --enable=warning,performance,portability -I. -D_GNU_SOURCE $cfg \
    --inline-suppr --suppressions-list=.ci/cppcheck.supp --error-exitcode=1 \
    --template='{file}:{line}: {severity} [{id}] {message}' $dirs
done
[ "$mode" = cppcheck ] && { echo "karyon: check-cppcheck: cppcheck found nothing"; exit 0; }
echo "karyon: scan-build (clang static analyser, CPU-only build in $b)"
rm -rf "$b" && mkdir -p "$b"
# make inherits the caller's jobserver through MAKEFLAGS (the Makefile's recipe is marked +).
scan-build --use-cc=clang --status-bugs -o "$b/report" \
  make --no-print-directory CC=clang CUDA=0 B="$b" all >"$b/scan.log" 2>&1 || {
  grep -E 'warning:|error:' "$b/scan.log" >&2 || tail -n 20 "$b/scan.log" >&2
  echo "karyon: scan-build found bugs (report under $b/report; log $b/scan.log)" >&2
  exit 1
}
echo "karyon: check-static: cppcheck and scan-build found nothing"

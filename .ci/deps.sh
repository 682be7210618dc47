#!/bin/sh
# Checks (check) or installs (install) the Debian packages karyon builds and tests with; `fuzz`
# also installs clang and libFuzzer for `make fuzz`.
# Called by `make deps`, `make test` and `make demo`; installs when run as root, else prints the line.
PKGS="gcc g++ make libcmocka-dev libstb-dev pkg-config"   # required; Open MPI is optional (below)
missing=""
if [ "$1" = fuzz ]; then
  # `make fuzz`: clang and its libFuzzer runtime (Debian 12: libclang-rt-14-dev).
  command -v clang >/dev/null 2>&1 || missing="$missing clang"
  ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 || missing="$missing libclang-rt-14-dev"
  set -- install
fi
command -v gcc >/dev/null 2>&1 || missing="$missing gcc"
command -v g++ >/dev/null 2>&1 || missing="$missing g++"
[ -f /usr/include/cmocka.h ] || missing="$missing libcmocka-dev"
[ -f /usr/include/stb/stb_image.h ] || missing="$missing libstb-dev"
# pkg-config: tests/test_apps_install.c links a program against `make install`'s copy through it.
command -v pkg-config >/dev/null 2>&1 || missing="$missing pkg-config"
# Data-parallel ranks: optional (without them the build trains on one process and the MPI suites
# print SKIPPED), so only root installs them; others get a note.
optional=""
command -v mpicc >/dev/null 2>&1 || optional="$optional libopenmpi-dev"
command -v mpirun >/dev/null 2>&1 || optional="$optional openmpi-bin"
if [ -n "$optional" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  missing="$missing$optional"
elif [ -n "$optional" ]; then
  echo "karyon: optional:$optional not installed: no MPI ranks, the MPI suites will say SKIPPED (sudo apt-get install -y$optional)" >&2
fi
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "karyon: installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq $missing >/dev/null || {
    echo "karyon: apt-get install failed; run: apt-get install -y$missing" >&2; exit 1; }
  exit 0
fi
echo "karyon: missing packages:$missing" >&2
echo "karyon: run: sudo apt-get install -y$missing" >&2
exit 1

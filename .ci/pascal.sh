#!/bin/sh
# The Pascal (sm_61: GTX 1080 Ti, Titan Xp) build: CUDA 13 no longer targets sm_61, so Debian's
# nvidia-cuda-toolkit 11.8 (components contrib + non-free) builds the CUDA backend with g++-11.
#   sh .ci/pascal.sh install      add contrib/non-free to apt's sources (once) and install the
#                                 toolkit and g++-11 (as root; else prints what to run)
#   sh .ci/pascal.sh build B      build libkaryon.a and the karyon binary for sm_61 into build folder
#                                 B, then check them (`make check-pascal`; extra args go to make)
# Three traps of a machine that also has CUDA 13, all handled in `build`:
#  - CUDA 13's headers are linked into /usr/local/include, which the host compiler searches before
#    /usr/include, so nvcc 11.8 would compile against 13's headers: B/pascal-include holds links to
#    the toolkit's own top-level include entries (from `dpkg -L nvidia-cuda-dev`), passed with -I.
#  - CUDA 13's bin folder comes first on PATH, so nvcc 11.8 would call 13's ptxas (which refuses
#    sm_61): the Debian toolkit's own bin folder (from `dpkg -L nvidia-cuda-toolkit`) goes first.
#  - CUDA_HOME / LIBRARY_PATH / CPATH pointing at CUDA 13 are removed from the environment.
# Tested by running it: `make check-pascal`, which CI (.ci/run) runs.
set -e
PKGS="nvidia-cuda-toolkit nvidia-cuda-dev g++-11"

have_pkgs() {
  for p in $PKGS; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || return 1
  done
}

# True when apt already knows a Debian release whose components include contrib and non-free.
have_components() {
  pol=$(apt-cache policy 2>/dev/null)
  echo "$pol" | grep -q 'o=Debian,.*c=contrib,' && echo "$pol" | grep -q 'o=Debian,.*c=non-free,'
}

install() {
  have_pkgs && { echo "karyon: pascal toolkit already installed"; return 0; }
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "karyon: the Pascal build needs Debian's nvidia-cuda-toolkit (contrib non-free) and g++-11;" >&2
    echo "karyon: as root run: sh .ci/pascal.sh install" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq -o DPkg::Lock::Timeout=900 >/dev/null
  if ! have_components; then
    # One file of our own, rewritten whole each time: running this twice adds nothing twice.
    . /etc/os-release
    code=${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}
    cat > /etc/apt/sources.list.d/karyon-contrib-non-free.sources <<EOF
# Added by karyon's .ci/pascal.sh: nvidia-cuda-toolkit (CUDA 11.8, which targets sm_61) lives here.
Types: deb
URIs: http://deb.debian.org/debian
Suites: $code $code-updates
Components: contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    apt-get update -qq -o DPkg::Lock::Timeout=900 >/dev/null
  fi
  echo "karyon: installing $PKGS (about 3 GB unpacked; takes a while)"
  apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=900 $PKGS >/dev/null
  have_pkgs
}

build() {
  b=${1:?usage: pascal.sh build BUILD_FOLDER [make args]}; shift
  have_pkgs || { echo "karyon: Pascal toolkit missing; as root run: sh .ci/pascal.sh install" >&2; exit 1; }
  # The toolkit's own nvcc and ptxas: the folder of the package's ptxas.
  ptxas=$(dpkg -L nvidia-cuda-toolkit | grep '/ptxas$' | head -n 1)
  nvcc=$(dpkg -L nvidia-cuda-toolkit | grep '/bin/nvcc$' | head -n 1)
  [ -x "$ptxas" ] && [ -x "$nvcc" ] || { echo "karyon: no ptxas/nvcc in nvidia-cuda-toolkit" >&2; exit 1; }
  bin=$(dirname "$ptxas")
  # Links to the top-level entries of the toolkit's include folder (cuda_runtime.h, crt/, ...).
  inc="$b/pascal-include"
  rm -rf "$inc" && mkdir -p "$inc"
  dpkg -L nvidia-cuda-dev | grep -E '^/usr/include/[^/]+$' | while read -r f; do
    ln -s "$f" "$inc/$(basename "$f")"
  done
  [ -e "$inc/cuda_runtime.h" ] || { echo "karyon: nvidia-cuda-dev has no cuda_runtime.h" >&2; exit 1; }
  inc_abs=$(cd "$inc" && pwd)
  "$nvcc" --version | tail -n 2
  env -u CUDA_HOME -u CUDA_PATH -u LIBRARY_PATH -u CPATH -u C_INCLUDE_PATH -u CPLUS_INCLUDE_PATH \
    PATH="$bin:$PATH" \
    make --no-print-directory CUDA=1 CUDA_ARCH=61 B="$b" NVCC="$nvcc" CUDA_HOME=/usr \
      EXTRA_NVFLAGS="-ccbin g++-11 -I$inc_abs" EXTRA_CFLAGS="-I$inc_abs" "$@" "$b/libkaryon.a" "$b/karyon"
  # Every CUDA object carries sm_61 machine code, and none of it uses tensor-core instructions (the
  # TF32 kernels compile to empty bodies below sm_80; the host side refuses them at run time).
  cuobjdump=$(dpkg -L nvidia-cuda-toolkit | grep '/bin/cuobjdump$' | head -n 1)
  for o in "$b"/cuda/*.o; do
    "$cuobjdump" --list-elf "$o" | grep -q 'sm_61\.cubin' || { echo "karyon: $o has no sm_61 code" >&2; exit 1; }
    if "$cuobjdump" -sass "$o" | grep -qE '\b(HMMA|IMMA|LDGSTS)\b'; then
      echo "karyon: $o uses sm_70+ instructions (HMMA/IMMA/LDGSTS) in its sm_61 code" >&2; exit 1
    fi
  done
  n=$(ls "$b"/cuda/*.o | wc -l)
  "$b/karyon" info | head -n 1
  echo "karyon: check-pascal: libkaryon.a and karyon built for sm_61 ($n CUDA objects, no sm_70+ instructions)"
}

case "$1" in
  install) install ;;
  build) shift; build "$@" ;;
  *) echo "usage: sh .ci/pascal.sh install | build BUILD_FOLDER [make args]" >&2; exit 2 ;;
esac

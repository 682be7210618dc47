#!/bin/sh
# GPU-free check of the CUDA convolution: the real cuda/conv2d.cu, conv2d_igemm.cu, conv2d_gemm.cu
# and conv2d_tf32.cu (and the context and allocator they use) are compiled with g++ against the
# fiber emulation of tests/cuda_emu/fake + emu_fiber.cpp (each thread a fiber, __syncthreads a
# block barrier, __shared__ arrays poisoned with NaN when each block starts, cudaMalloc poisoned,
# float4 alignment checked by -fsanitize=alignment) and run whole:
#   1. emu_conv_sweep: every fp32 implicit-GEMM tile shape, TF32 tile and im2col x fwd / dgrad /
#      wgrad (+ bias gradient) x float4 / scalar loads x one split / split-K, against fp64;
#   2. the real tests/test_cuda_conv.c through the real dispatch (AUTO both ways included), on its
#      layers of at most 2^15 elements (the emulation is slow), as on a 132-SM card (EMU_SMS).
# Stand-ins where g++ cannot run the real thing: the TF32 kernel's mma.sync / cvt.rna PTX is
# replayed by emu_kernel.h (its host code is real), and cuBLAS's SGEMM by emu_cublas.cpp.
# Usage, from the repository root (g++, perl, cmocka; no nvcc, no GPU):
#   sh tests/cuda_emu/run.sh            the sweep and test_cuda_conv (`make emu`)
#   sh tests/cuda_emu/run.sh --mutants  proves the emulation can fail: builds conv2d_igemm.cu with
#                                       a barrier removed or a shared-memory index off by one
#                                       float4, each of which must make the sweep fail
#   sh tests/cuda_emu/run.sh --train    `karyon train --device cuda` with every kernel emulated
#                                       (emu_train.c): --deterministic reaches the context, and
#                                       6 steps == 3 + kill + resume 3, bit for bit
#   EMU_FLAGS="-fsanitize=address" also sees out-of-bounds global and shared accesses;
#   EMU_REVERSE=1 runs each block's threads in reverse order (the other side of a race).
# What it cannot show: the TF32 mma fragments on the hardware (the replay follows the PTX ISA's
# layout; conv2d_tf32.cu's own barriers and fragment loads are not run), cuBLAS, timing,
# coalescing, bank conflicts, warp scheduling and memory-model races, nvcc's code generation.
set -e
O=${EMU_OUT:-build-emu-conv}   # build folder (git-ignored)
E=tests/cuda_emu
CXX="g++ -std=c++17 -O2 -g -I$E/fake -I. -DKY_HAVE_CUDA=1 -fsanitize=alignment -fno-sanitize-recover=alignment ${EMU_FLAGS:-}"
LD="g++ -fsanitize=alignment ${EMU_FLAGS:-}"
mkdir -p $O
# The C side (status, rng, errors) with the CUDA dispatch compiled in (KY_HAVE_CUDA), no nvcc objects.
make --no-print-directory B=$O MODULES="core" CU_SRC= CUDA=1 NVCC=true MPI=0 NCCL=0 $O/libkaryon.a >/dev/null
gcc -std=c11 -D_GNU_SOURCE -I. -DKY_HAVE_CUDA=1 -O1 -g ${EMU_FLAGS:-} -c ops/conv_choice.c -o $O/conv_choice.o

# build_emu DIR SRC_ROOT: the emulated CUDA objects of SRC_ROOT/cuda/*.cu into DIR.
build_emu() {
  mkdir -p $1
  for f in context memory conv2d conv2d_igemm conv2d_gemm; do
    perl $E/xform.pl $2/cuda/$f.cu $1/emu_$f.cpp 2>/dev/null
    $CXX -c $1/emu_$f.cpp -o $1/emu_$f.o
  done
  perl $E/xform.pl $2/cuda/conv2d_tf32.cu $1/emu_conv2d_tf32.cpp conv_igemm_tf32=emu_tf32_replay 2>/dev/null
  $CXX -include $E/emu_kernel.h -c $1/emu_conv2d_tf32.cpp -o $1/emu_conv2d_tf32.o
  $CXX -c $E/emu_fiber.cpp -o $1/emu_fiber.o
  $CXX -c $E/emu_cublas.cpp -o $1/emu_cublas.o
  $CXX -c $E/emu_conv_sweep.cpp -o $1/sweep.o
  $LD $1/sweep.o $1/emu_*.o $O/conv_choice.o $O/libkaryon.a -o $1/emu_conv_sweep -lm -lpthread
}

if [ "${1:-}" = --mutants ]; then
  # Each mutant is one edit of cuda/conv2d_igemm.cu that a GPU would punish; the emulated sweep
  # (first 3 shapes) must fail on each. A mutant whose edit did not apply is itself a failure.
  status=0
  for m in 1 2 3; do
    d=$O/mutant$m
    rm -rf $d && mkdir -p $d/cuda && cp cuda/*.cu cuda/*.cuh cuda/*.h $d/cuda/
    case $m in
      1) what="barrier after the first tile's stores removed"
         perl -0pi -e 's/(lb\.template store<LDB>\(Bs\[0\], rb\);\n)\s*__syncthreads\(\);/$1/' $d/cuda/conv2d_igemm.cu ;;
      2) what="barrier at the end of each k step removed"
         perl -0pi -e 's/(lb\.template store<LDB>\(Bs\[cur \^ 1\], rb\);\n    \}\n)\s*__syncthreads\(\);/$1/' $d/cuda/conv2d_igemm.cu ;;
      3) what="shared-memory read index of B's second half off by one float4"
         perl -0pi -e 's/b \+ BN \/ 2 \+ tx \* 4\)/b + BN \/ 2 + tx * 4 + 4)/' $d/cuda/conv2d_igemm.cu ;;
    esac
    if cmp -s cuda/conv2d_igemm.cu $d/cuda/conv2d_igemm.cu; then
      echo "mutant $m ($what): the edit no longer applies to cuda/conv2d_igemm.cu: update run.sh"; status=1; continue
    fi
    # Only the .cu differs: the headers it includes are the repository's.
    build_emu $d/obj $d
    if EMU_SWEEP_CASES=3 ./$d/obj/emu_conv_sweep > $d/log.txt 2>&1; then
      echo "mutant $m ($what): NOT caught (the emulation passed it)"; status=1
    else
      echo "mutant $m ($what): caught: $(grep -c '^FAIL' $d/log.txt) failing runs, e.g. $(grep -m1 '^FAIL' $d/log.txt)"
    fi
  done
  exit $status
fi

if [ "${1:-}" = --train ]; then
  T=$O/train-build
  # The whole C library with the CUDA dispatch compiled in, and every cuda/*.cu emulated.
  make --no-print-directory -j2 B=$T CU_SRC= CUDA=1 NVCC=true MPI=0 NCCL=0 $T/libkaryon.a >/dev/null
  mkdir -p $T/emu
  for f in cuda/*.cu; do
    n=$(basename $f .cu)
    perl $E/xform.pl $f $T/emu/$n.cpp conv_igemm_tf32=emu_tf32_replay 2>/dev/null
    if [ $n = conv2d_tf32 ]; then $CXX -include $E/emu_kernel.h -c $T/emu/$n.cpp -o $T/emu/$n.o
    else $CXX -c $T/emu/$n.cpp -o $T/emu/$n.o; fi
  done
  $CXX -c $E/emu_fiber.cpp -o $T/emu/emu_fiber.o
  $CXX -c $E/emu_cublas.cpp -o $T/emu/emu_cublas.o
  gcc -std=c11 -D_GNU_SOURCE -I. -DKY_HAVE_CUDA=1 -O1 -g ${EMU_FLAGS:-} -c $E/emu_train.c -o $T/emu_train.o
  $LD $T/emu_train.o $T/emu/*.o $T/libkaryon.a -o $T/emu_train -lm -lpthread
  rm -rf $O/train
  exec ./$T/emu_train $O/train
fi

build_emu $O/obj .
sed 's/((size_t)1 << 20)/((size_t)1 << 15)/g' tests/test_cuda_conv.c > $O/test_cuda_conv_small.c
gcc -std=c11 -D_GNU_SOURCE -I. -DKY_HAVE_CUDA=1 -O1 -g ${EMU_FLAGS:-} -c $O/test_cuda_conv_small.c -o $O/test_cuda_conv.o
$LD $O/test_cuda_conv.o $O/obj/emu_context.o $O/obj/emu_memory.o $O/obj/emu_conv2d*.o $O/obj/emu_fiber.o \
  $O/obj/emu_cublas.o $O/conv_choice.o $O/libkaryon.a -o $O/test_cuda_conv.emu -lcmocka -lm -lpthread
./$O/obj/emu_conv_sweep
# As on an H100 (132 SMs): small layers then take the small tiles and split-K.
EMU_SMS=132 KY_CONV_TEST_SMALL=1 ./$O/test_cuda_conv.emu

#!/bin/sh
# GPU-free check of the non-convolution CUDA kernels: every cuda/*.cu of that family is compiled
# with g++ against a fiber-based emulation of the CUDA execution model (tests/cuda_emu/fake,
# emu_fiber.cpp: blocks one at a time, each thread a fiber, real barrier and shuffle semantics,
# cudaMalloc = malloc poisoned with 0xff) and linked with the real tests/test_cuda_ops.c and
# tests/test_cuda_memory.c, which then compare the kernels with the CPU reference, and
# tests/test_cuda_bn_sync.c (synchronised batch norm through the op on a one-rank job: the
# library's dist module without MPI, whose sums over one rank are the identity).
# Usage, from the repository root: sh tests/cuda_emu/run_ops.sh   (g++, perl, cmocka; ~2 min)
#   EMU_FLAGS="-fsanitize=address -fno-omit-frame-pointer" and KY_CUDA_NO_CACHE=1: ASan sees every
#   out-of-bounds access;  EMU_FLAGS=-DEMU_ULP_NOISE: expf/logf perturbed by up to 2 ulps (CUDA's
#   accuracy) to check the tests' tolerances (the determinism test then fails, by design).
# It cannot check timing, coalescing, real warp scheduling or memory-model races, nvcc's code
# generation, or CUDA's math library bits. Run the CUDA suites on a GPU (docs/gpu.md).
set -e
O=build-emu-ops
E=tests/cuda_emu
# The C side with the CUDA dispatch compiled in (KY_HAVE_CUDA) but no nvcc objects, MPI or NCCL
# (the emulation links neither).
make --no-print-directory B=$O MODULES="core dist ops losses optim" CU_SRC= CUDA=1 NVCC=true MPI=0 NCCL=0 $O/libkaryon.a $O/tests/util_test.o >/dev/null
CXX="g++ -std=c++17 -O1 -g -I$E/fake -I. -DKY_HAVE_CUDA=1 ${EMU_FLAGS:-}"
for f in context memory elementwise batchnorm pool concat upsample softmax losses optim focal; do
  perl $E/xform.pl cuda/$f.cu $O/emu_$f.cpp
  $CXX -c $O/emu_$f.cpp -o $O/emu_$f.o
done
$CXX -c $E/emu_fiber.cpp -o $O/emu_fiber.o
$CXX -c $E/emu_cublas.cpp -o $O/emu_cublas.o
for t in test_cuda_ops test_cuda_memory test_cuda_bn_sync; do
  gcc -std=c11 -D_GNU_SOURCE -I. -DKY_HAVE_CUDA=1 -O1 -g ${EMU_FLAGS:-} -c tests/$t.c -o $O/$t.emu.o
  g++ ${EMU_FLAGS:-} $O/$t.emu.o $O/tests/util_test.o $O/emu_*.o $O/libkaryon.a -o $O/$t.emu -lcmocka -lm -lpthread
done
env -u KY_CUDA_NO_CACHE ./$O/test_cuda_memory.emu   # the allocator suite needs its cache
./$O/test_cuda_ops.emu
./$O/test_cuda_bn_sync.emu

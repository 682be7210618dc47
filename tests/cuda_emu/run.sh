#!/bin/sh
# GPU-free check of the CUDA convolution's index arithmetic: (1) emu_sweep replays the kernels
# block by block on the CPU over odd shapes x tile configs x vector/scalar x split-K; (2) the real
# tests/test_cuda_conv.c runs against a host mock of the context and the replayed kernels, through
# the real cuda/conv2d.cu dispatch (layers above 2^15 elements skipped: the replay is slow).
# Usage, from the repository root: sh tests/cuda_emu/run.sh   (needs nvcc, g++, cmocka; ~4 min)
# What it cannot check: the hardware (mma fragment layout is taken from the PTX ISA), cuBLAS
# (im2col is replaced by the replayed kernel), timing, races. Run tests/test_cuda_conv on a GPU.
set -e
O=build-emu
mkdir -p $O
NV="nvcc -O2 -std=c++17 -I. -DKY_HAVE_CUDA=1 -gencode arch=compute_80,code=sm_80"
CF="-std=c11 -D_GNU_SOURCE -O1 -g -I. -DKY_HAVE_CUDA=1"
echo 'extern "C" cudaError_t mock_cudaSetDevice(int);' > $O/mockdecl.h
$NV -Dky_conv_igemm_run=ky_conv_igemm_run_real -c cuda/conv2d_igemm.cu -o $O/igemm.o
$NV -include cuda_runtime.h -include $O/mockdecl.h -DcudaSetDevice=mock_cudaSetDevice -c cuda/conv2d.cu -o $O/conv2d.o
$NV -c tests/cuda_emu/mock_context.cu -o $O/mock.o
$NV -c tests/cuda_emu/emu_sweep.cu -o $O/sweep.o
gcc $CF -c core/status.c -o $O/status.o
gcc $CF -c core/rng.c -o $O/rng.o
sed 's/((size_t)1 << 20)/((size_t)1 << 15)/g' tests/test_cuda_conv.c > $O/test_cuda_conv_small.c
gcc $CF -c $O/test_cuda_conv_small.c -o $O/test.o
L="-L/usr/local/cuda/lib64 -lcudart_static -ldl -lrt -lpthread -lm"
g++ $O/sweep.o $O/igemm.o $O/mock.o $O/status.o -o $O/emu_sweep $L
g++ $O/test.o $O/conv2d.o $O/igemm.o $O/mock.o $O/status.o $O/rng.o -o $O/test_cuda_conv_mock $L -lcmocka
./$O/emu_sweep
KY_CONV_TEST_SMALL=1 ./$O/test_cuda_conv_mock

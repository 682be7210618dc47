# karyon: one Makefile for the library, the `karyon` command, tests and benchmarks.
#   make              build everything (CPU backend always; CUDA backend when nvcc is found)
#   make test         build and run every cmocka suite      (make DEBUG=1 test: ASan + UBSan;
#                     make TSAN=1 test: ThreadSanitizer, in build-tsan/)
#   make demo         train / predict / score on the bundled sample
#   make deps         install the Debian packages the project needs (or print the apt-get line)
#   make emu          run the CUDA kernels on a CPU emulation (no GPU, no nvcc; docs/gpu.md)
#   CUDA=0            build without the CUDA backend;  CUDA_ARCH="75 80 90" picks GPU targets
#   MPI=0 / NCCL=0    build without data-parallel ranks (MPI: found through mpicc) or without NCCL
#                     (found in $(CUDA_HOME) or the nvidia-nccl-cu13 wheel; needs CUDA and MPI)
#   V=1               echo every command
#   make install PREFIX=/usr/local   libkaryon.a + .so, headers, karyon.pc, karyon (SHARED=0: no .so)
#   WERROR=1          warnings are errors (make check-warnings: gcc and clang, CPU-only)

CC      ?= gcc
CXX     ?= g++
NVCC    ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
DEBUG   ?= 0
TSAN    ?= 0
CUDA    ?= $(if $(NVCC),1,0)
CUDA_ARCH ?= 75 80 86 89 90
MPICC   ?= $(shell command -v mpicc 2>/dev/null)
MPI     ?= $(if $(MPICC),1,0)
# NCCL: beside the CUDA toolkit, or from the PyPI wheel (pip install nvidia-nccl-cu13).
NCCL_HOME ?= $(firstword $(foreach d,$(CUDA_HOME) $(shell python3 -c 'import nvidia.nccl; print(list(nvidia.nccl.__path__)[0])' 2>/dev/null),$(if $(wildcard $(d)/include/nccl.h),$(d),)))
NCCL    ?= $(if $(and $(filter 1,$(CUDA)),$(filter 1,$(MPI)),$(NCCL_HOME)),1,0)

ifeq ($(TSAN),1)
  # ThreadSanitizer: the thread pool and everything that runs on it (its own build folder; CPU only,
  # since TSan does not see inside CUDA). `make TSAN=1 TEST_SRC="tests/test_core_pool.c ..." test`
  # runs a subset.
  B       ?= build-tsan
  CUDA    := 0
  OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=thread $(shell grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo && echo -mavx2 -mfma)
  LDSAN   := -fsanitize=thread
else ifeq ($(DEBUG),1)
  B       ?= build-debug
  OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDSAN   := -fsanitize=address,undefined
else
  B       ?= build
  # AVX2/FMA only when this CPU has them: binaries built here also run on the GPU hosts (x86-64-v3).
  OPT     := -O3 -g $(shell grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo && echo -mavx2 -mfma)
  LDSAN   :=
endif

# Warnings: -Wall -Wextra (gcc and clang; `make check-warnings` builds both with -Werror) minus three
# that flag deliberate idioms, not bugs:
#   unused-parameter: callbacks and hooks share one signature (backward nodes, loader hooks,
#     cmocka's `void **state`); naming every unused one would add noise, not checks.
#   missing-field-initializers: `{0}` and positional initialisers that leave trailing fields zero
#     are zero-filled by the language, and the code relies on that on purpose.
#   format-truncation (gcc only; clang has no such warning): gcc's estimate of what snprintf *may*
#     truncate (a 255-byte name into a 4096-byte path); the buffers are sized for real inputs.
KY_WNO  := -Wno-unused-parameter -Wno-missing-field-initializers \
           $(if $(findstring clang,$(shell $(CC) --version 2>/dev/null | head -n 1)),,-Wno-format-truncation)
# -fPIC: the same objects make libkaryon.a and libkaryon.so (make install).
CFLAGS  := -std=c11 -D_GNU_SOURCE -Wall -Wextra $(KY_WNO) $(if $(filter 1,$(WERROR)),-Werror) -fPIC -I. $(OPT) $(EXTRA_CFLAGS)
# Every karyon allocation passes through core/status.c, so "out of memory" messages give the size.
KY_WRAP_ALLOC := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=aligned_alloc,--wrap=posix_memalign
LDLIBS  := -lm -lpthread $(KY_WRAP_ALLOC)

MODULES ?= core dist ops losses optim models data aug post pipeline
LIB_SRC := $(foreach m,$(MODULES),$(wildcard $(m)/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(B)/%.o)
CU_SRC  ?= $(wildcard cuda/*.cu)
APP_SRC := $(wildcard apps/*.c)
CMD_SRC := $(wildcard apps/cmd_*.c)
TEST_SRC?= $(filter-out tests/test_cuda_%.c,$(wildcard tests/test_*.c))
TEST_CU := $(wildcard tests/test_cuda_*.c)
TEST_AUX:= $(wildcard tests/util_*.c)
BENCH_ALL:=$(wildcard bench/bench_*.c)

ifeq ($(CUDA),1)
  CFLAGS   += -DKY_HAVE_CUDA=1
  GENCODE  := $(foreach a,$(CUDA_ARCH),-gencode arch=compute_$(a),code=sm_$(a)) \
              -gencode arch=compute_$(lastword $(CUDA_ARCH)),code=compute_$(lastword $(CUDA_ARCH))
  NVFLAGS  := -O3 -std=c++17 -I. -DKY_HAVE_CUDA=1 $(GENCODE) -Xcompiler -fPIC -lineinfo $(EXTRA_NVFLAGS)
  CU_OBJ   := $(CU_SRC:%.cu=$(B)/%.o)
  LINK     := $(CXX)
  LDLIBS   += -L$(CUDA_HOME)/lib64 -L$(CUDA_HOME)/lib -lcublas -lcudart_static -ldl -lrt \
              -Wl,-rpath,$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib
  TESTS    := $(TEST_SRC) $(TEST_CU)
  BENCH_SRC:= $(BENCH_ALL)
  KY_BACKENDS := cpu cuda [$(CUDA_ARCH)]
else
  CU_OBJ   :=
  LINK     := $(CC)
  TESTS    := $(TEST_SRC)
  BENCH_SRC:= $(filter-out bench/bench_cuda_%.c,$(BENCH_ALL))
  KY_BACKENDS := cpu
endif

# Data-parallel ranks: MPI's compile flags only where mpi.h is included (dist/), its libraries
# everywhere (the library's dist objects need them).
ifeq ($(MPI),1)
  CFLAGS   += -DKY_HAVE_MPI=1
  MPI_CFLAGS := $(shell $(MPICC) --showme:compile 2>/dev/null || $(MPICC) -compile_info 2>/dev/null | cut -d' ' -f2-)
  LDLIBS   += $(shell $(MPICC) --showme:link 2>/dev/null || $(MPICC) -link_info 2>/dev/null | cut -d' ' -f2-)
  KY_BACKENDS += mpi
else
  MPI_CFLAGS :=
endif
ifeq ($(NCCL),1)
  CFLAGS   += -DKY_HAVE_NCCL=1
  NVFLAGS  += -DKY_HAVE_NCCL=1 -I$(NCCL_HOME)/include
  # First, so that its rpath wins over the CUDA toolkit's (which may hold another NCCL).
  LDLIBS   := -L$(NCCL_HOME)/lib -l:libnccl.so.2 -Wl,-rpath,$(NCCL_HOME)/lib $(LDLIBS)
  KY_BACKENDS += nccl
endif
$(B)/dist/%.o: CFLAGS += $(MPI_CFLAGS)

TEST_BIN := $(TESTS:tests/%.c=$(B)/tests/%)
BENCH_BIN:= $(BENCH_SRC:bench/%.c=$(B)/bench/%)
LIB      := $(B)/libkaryon.a
KARYON   := $(B)/karyon
TEST_AUX_OBJ := $(TEST_AUX:%.c=$(B)/%.o)

ifneq ($(V),1)
  Q := @
endif

.PHONY: all lib test demo deps check-deps bench clean banner emu fuzz fuzz-bins nccl-wheel
.SECONDARY:
all: banner $(KARYON) $(TEST_BIN) $(BENCH_BIN)

banner:
	@echo "karyon: backends: $(KY_BACKENDS); build folder $(B)$(if $(filter 1,$(DEBUG)), (ASan+UBSan),)$(if $(filter 1,$(TSAN)), (ThreadSanitizer),)"

lib: $(LIB)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC    $<")
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(B)/cuda/%.o: cuda/%.cu
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  NVCC  $<")
	$(Q)$(NVCC) $(NVFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ) $(CU_OBJ)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

# Subcommands register themselves by file name: apps/cmd_<name>.c defines ky_cmd_<name>().
$(B)/gen/ky_cmds.h: $(CMD_SRC) Makefile
	@mkdir -p $(dir $@)
	$(Q)( for f in $(sort $(CMD_SRC)); do n=$${f#apps/cmd_}; echo "KY_CMD($${n%.c})"; done ) > $@.tmp && mv $@.tmp $@

$(B)/apps/karyon.o: $(B)/gen/ky_cmds.h
$(B)/apps/%.o: CFLAGS += -I$(B)/gen

$(KARYON): $(APP_SRC:%.c=$(B)/%.o) $(LIB)
	$(Q)$(LINK) $(LDSAN) $^ -o $@ $(LDLIBS)

# tests/analyzer.h makes cmocka's failing asserts noreturn for the clang static analyser (make
# check-static); it is empty in every compiled build.
$(B)/tests/%.o: CFLAGS += -include tests/analyzer.h

# Tests link cmocka, found at run time beside the binary ($ORIGIN/lib) on machines without it.
$(B)/tests/%: $(B)/tests/%.o $(TEST_AUX_OBJ) $(LIB)
	@mkdir -p $(B)/tests/lib
	@cp -n /usr/lib/x86_64-linux-gnu/libcmocka.so.0* $(B)/tests/lib/ 2>/dev/null || true
	$(Q)$(LINK) $(LDSAN) $(filter %.o,$^) $(filter %.a,$^) -o $@ -lcmocka $(LDLIBS) -Wl,-rpath,'$$ORIGIN/lib'

$(B)/bench/%: $(B)/bench/%.o $(TEST_AUX_OBJ) $(LIB)
	$(Q)$(LINK) $(LDSAN) $(filter %.o,$^) $(filter %.a,$^) -o $@ $(LDLIBS)

# The op-case table drives three programs: gradient checks, CPU-vs-CUDA checks, op benchmarks.
OPTABLE_OBJ := $(B)/tests/optable_cases.o
$(B)/tests/test_ops_gradcheck $(B)/tests/test_ops_threads $(B)/tests/test_cuda_optable $(B)/bench/bench_ops: $(OPTABLE_OBJ)

# --- Fuzzing (tests/fuzz/fuzz_<name>.c). `make test` replays every committed corpus input through
# the harnesses (tests/test_fuzz_replay.c); `make fuzz FUZZ_S=N` builds them with clang under
# libFuzzer + ASan + UBSan in build-fuzz/ and runs each for N seconds (bench/bench_fuzz.sh prints
# executions and executions per second per harness).
FUZZ_NAMES := image dsb safetensors checkpoint rle folds config gbt labels
FUZZ_S     ?= 20
$(B)/tests/test_fuzz_replay: $(FUZZ_NAMES:%=$(B)/tests/fuzz/fuzz_%.o)

fuzz:
	@sh .ci/deps.sh fuzz
	@$(MAKE) --no-print-directory CUDA=0 CC=clang B=build-fuzz \
	  EXTRA_CFLAGS="-O1 -Wno-unknown-warning-option -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -DKY_LIBFUZZER" fuzz-bins
	@FUZZ_S=$(FUZZ_S) B=build-fuzz sh bench/bench_fuzz.sh $(FUZZ_NAMES)

fuzz-bins: $(FUZZ_NAMES:%=$(B)/fuzz/%)

$(B)/fuzz/%: $(B)/tests/fuzz/fuzz_%.o $(LIB)
	@mkdir -p $(dir $@)
	$(Q)$(CC) -fsanitize=fuzzer,address,undefined $^ -o $@ $(LDLIBS)

# Every suite runs, even after a failure; the summary line counts suites.
test: check-deps banner $(TEST_BIN) $(KARYON) install-test
	@ASAN_OPTIONS=protect_shadow_gap=0:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 KY_BUILD=$(B) sh tests/run_all.sh $(TEST_BIN)

# Without a GPU the demo runs on the CPU, so it skips compiling the CUDA kernels (minutes on two
# cores) and builds a CPU-only karyon in build-cpu/.
demo: check-deps
	@if [ "$(CUDA)" = 1 ] && nvidia-smi -L >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory $(KARYON) && $(KARYON) demo; \
	else \
	  echo "karyon: no GPU found: building and running the CPU demo (build-cpu/)"; \
	  $(MAKE) --no-print-directory CUDA=0 B=build-cpu build-cpu/karyon && build-cpu/karyon demo; \
	fi

bench: $(BENCH_BIN)
	@for b in $(BENCH_BIN); do echo "== $$b"; $$b || exit 1; done

deps:
	@sh .ci/deps.sh install

# The CUDA sources compiled with g++ against the fiber emulation of tests/cuda_emu and run on the
# CPU: the non-convolution kernels, the convolution whole, three planted bugs it must catch, and a
# short training run + resume on the emulated device. Not part of `make test`: it builds the
# library and the CUDA sources again and takes ~13 minutes of CPU; CI runs it after the tests.
emu: check-deps
	sh tests/cuda_emu/run_ops.sh
	sh tests/cuda_emu/run.sh
	sh tests/cuda_emu/run.sh --mutants
	sh tests/cuda_emu/run.sh --train

# NCCL from PyPI (the nvidia-nccl-cu13 wheel: nccl.h and libnccl.so.2) into .deps/, then karyon
# linked against it: `make nccl-wheel CUDA_ARCH=90 B=build-nccl` (no GPU needed to build).
nccl-wheel:
	@mkdir -p .deps && pip download -q --no-deps -d .deps nvidia-nccl-cu13
	@rm -rf .deps/nccl && python3 -m zipfile -e $$(ls .deps/nvidia_nccl_cu13-*.whl | tail -1) .deps/nccl
	@rm -f $(B)/cuda/nccl.o $(LIB) $(KARYON)
	$(MAKE) --no-print-directory NCCL_HOME=$(CURDIR)/.deps/nccl/nvidia/nccl $(KARYON)
	@ldd $(KARYON) | grep nccl

check-deps:
	@sh .ci/deps.sh check

clean:
	rm -rf build build-debug build-tsan

# Header dependencies of every object, so a changed header rebuilds the test helpers and programs too.
-include $(FUZZ_NAMES:%=$(B)/tests/fuzz/fuzz_%.d) $(LIB_OBJ:.o=.d) $(CU_OBJ:.o=.d) $(TEST_BIN:=.d) $(OPTABLE_OBJ:.o=.d) $(TEST_AUX_OBJ:.o=.d) $(BENCH_BIN:=.d) $(APP_SRC:%.c=$(B)/%.d)

# ---- build matrix (issue 16) -----------------------------------------------------------------
# check-pascal: the CUDA backend for sm_61 (GTX 1080 Ti, Titan Xp) with Debian's CUDA 11.8 and
# g++-11 (.ci/pascal.sh installs them as root and keeps CUDA 13's headers, ptxas and paths out).
.PHONY: check-pascal
check-pascal:
	@sh .ci/pascal.sh install
	+@sh .ci/pascal.sh build build-pascal

# check-warnings: the C sources (library, karyon, tests, benchmarks) with -Wall -Wextra -Werror under
# gcc and clang. CPU-only (CUDA=0) to keep CI short: nvcc's host code is compiled by the main build.
.PHONY: check-warnings
check-warnings:
	@command -v clang >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq -o DPkg::Lock::Timeout=900 clang >/dev/null; } || \
	  { echo "karyon: check-warnings needs clang: apt-get install -y clang" >&2; exit 1; }
	+@$(MAKE) --no-print-directory CC=gcc CUDA=0 WERROR=1 B=build-warn-gcc all
	+@$(MAKE) --no-print-directory CC=clang CUDA=0 WERROR=1 B=build-warn-clang all
	@echo "karyon: check-warnings: gcc and clang build everything with -Wall -Wextra -Werror"

# ---- install (issue 16) ----------------------------------------------------------------------
# make install PREFIX=DIR: DIR/lib/libkaryon.a and libkaryon.so (SHARED=0: static only),
# DIR/include/karyon/<module>/*.h (the public headers; `#include "core/ctx.h"` as in the tree),
# DIR/lib/pkgconfig/karyon.pc and DIR/bin/karyon. `pkg-config --cflags --libs karyon` links the
# shared library (--static adds what libkaryon.a needs). Tested by tests/test_apps_install.c, which
# `make test` runs against installs into $(B)/install-test/{shared,static}.
PREFIX  ?= /usr/local
SHARED  ?= 1
KY_VERSION := 0.1.0
SOLIB   := $(B)/libkaryon.so.$(KY_VERSION)
PUB_H   := $(filter-out ops/op_util.h models/model_impl.h models/layers.h,$(foreach m,$(MODULES),$(wildcard $(m)/*.h))) \
           $(if $(filter 1,$(CUDA)),cuda/cuda.h cuda/kernels.h)
PC_LIBS_PRIVATE := $(LDLIBS) $(if $(filter 1,$(CUDA)),-lstdc++)
.PHONY: install install-test

$(SOLIB): $(LIB_OBJ) $(CU_OBJ)
	$(Q)$(LINK) -shared -Wl,-soname,libkaryon.so.0 $(LDSAN) $^ -o $@ $(LDLIBS)

$(B)/karyon.pc: Makefile
	@mkdir -p $(dir $@)
	$(Q)printf '%s\n' 'prefix=@PREFIX@' 'libdir=$${prefix}/lib' 'includedir=$${prefix}/include/karyon' '' \
	  'Name: karyon' 'Description: deep-learning framework in C11 with CUDA kernels (DSB 2018 nuclei segmentation)' \
	  'Version: $(KY_VERSION)' \
	  'Cflags: -I$${includedir}$(if $(filter 1,$(CUDA)), -DKY_HAVE_CUDA=1)' \
	  'Libs: -L$${libdir} -lkaryon $(LDSAN)' \
	  'Libs.private: $(PC_LIBS_PRIVATE)' > $@.tmp && mv $@.tmp $@

install: $(LIB) $(KARYON) $(B)/karyon.pc $(if $(filter 1,$(SHARED)),$(SOLIB))
	@test -n "$(PREFIX)" || { echo "karyon: install: PREFIX is empty" >&2; exit 1; }
	$(Q)mkdir -p $(PREFIX)/lib/pkgconfig $(PREFIX)/bin $(PREFIX)/include/karyon
	$(Q)cp $(LIB) $(PREFIX)/lib/libkaryon.a
	$(Q)rm -f $(PREFIX)/lib/libkaryon.so $(PREFIX)/lib/libkaryon.so.0 $(PREFIX)/lib/libkaryon.so.$(KY_VERSION)
	$(Q)if [ "$(SHARED)" = 1 ]; then cp $(SOLIB) $(PREFIX)/lib/ && \
	  ln -s libkaryon.so.$(KY_VERSION) $(PREFIX)/lib/libkaryon.so.0 && ln -s libkaryon.so.0 $(PREFIX)/lib/libkaryon.so; fi
	$(Q)for h in $(PUB_H); do mkdir -p $(PREFIX)/include/karyon/$$(dirname $$h) && cp $$h $(PREFIX)/include/karyon/$$h || exit 1; done
	$(Q)sed 's|@PREFIX@|$(abspath $(PREFIX))|' $(B)/karyon.pc > $(PREFIX)/lib/pkgconfig/karyon.pc
	$(Q)cp $(KARYON) $(PREFIX)/bin/karyon
	@echo "karyon: installed into $(PREFIX) (libkaryon.a$(if $(filter 1,$(SHARED)), libkaryon.so), $(words $(PUB_H)) headers, karyon.pc, karyon)"

# The two installs tests/test_apps_install.c links against (shared + static, static only).
install-test: $(LIB) $(KARYON) $(SOLIB) $(B)/karyon.pc
	$(Q)rm -rf $(B)/install-test
	$(Q)$(MAKE) --no-print-directory install PREFIX=$(B)/install-test/shared SHARED=1 >/dev/null
	$(Q)$(MAKE) --no-print-directory install PREFIX=$(B)/install-test/static SHARED=0 >/dev/null

# Objects rebuild when the compile flags change (e.g. -fPIC added, WERROR=1), not only when sources
# do: $(B)/.flags holds the last flags and is rewritten only when they differ.
KY_FLAGS_NOW := $(CC) $(CFLAGS) | $(NVCC) $(NVFLAGS)
$(shell mkdir -p $(B) && printf '%s\n' '$(subst ','\'',$(KY_FLAGS_NOW))' | cmp -s - $(B)/.flags || \
  printf '%s\n' '$(subst ','\'',$(KY_FLAGS_NOW))' > $(B)/.flags)
$(LIB_OBJ) $(CU_OBJ) $(APP_SRC:%.c=$(B)/%.o) $(TEST_BIN:=.o) $(BENCH_BIN:=.o) $(OPTABLE_OBJ) $(TEST_AUX_OBJ): $(B)/.flags

# check-static: cppcheck and the clang static analyser over the C sources; fails on any finding
# (justified cppcheck suppressions: .ci/cppcheck.supp; scan-build has none). Installs cppcheck and
# clang-tools when run as root. CI runs it (~8 min). check-cppcheck: the cppcheck half only (~2 min).
.PHONY: check-static check-cppcheck
check-static:
	+@sh .ci/static.sh build-scan all
check-cppcheck:
	@sh .ci/static.sh build-scan cppcheck

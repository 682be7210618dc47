# karyon: one Makefile for the library, the `karyon` command, tests and benchmarks.
#   make              build everything (CPU backend always; CUDA backend when nvcc is found)
#   make test         build and run every cmocka suite      (make DEBUG=1 test: ASan + UBSan)
#   make demo         train / predict / score on the bundled sample
#   make deps         install the Debian packages the project needs (or print the apt-get line)
#   CUDA=0            build without the CUDA backend;  CUDA_ARCH="75 80 90" picks GPU targets
#   MPI=0 / NCCL=0    build without data-parallel ranks (MPI: found through mpicc) or without NCCL
#                     (found in $(CUDA_HOME) or the nvidia-nccl-cu13 wheel; needs CUDA and MPI)
#   V=1               echo every command

CC      ?= gcc
CXX     ?= g++
NVCC    ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
DEBUG   ?= 0
CUDA    ?= $(if $(NVCC),1,0)
CUDA_ARCH ?= 75 80 86 89 90
MPICC   ?= $(shell command -v mpicc 2>/dev/null)
MPI     ?= $(if $(MPICC),1,0)
# NCCL: beside the CUDA toolkit, or from the PyPI wheel (pip install nvidia-nccl-cu13).
NCCL_HOME ?= $(firstword $(foreach d,$(CUDA_HOME) $(shell python3 -c 'import nvidia.nccl; print(list(nvidia.nccl.__path__)[0])' 2>/dev/null),$(if $(wildcard $(d)/include/nccl.h),$(d),)))
NCCL    ?= $(if $(and $(filter 1,$(CUDA)),$(filter 1,$(MPI)),$(NCCL_HOME)),1,0)

ifeq ($(DEBUG),1)
  B       ?= build-debug
  OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDSAN   := -fsanitize=address,undefined
else
  B       ?= build
  # AVX2/FMA only when this CPU has them: binaries built here also run on the GPU hosts (x86-64-v3).
  OPT     := -O3 -g $(shell grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo && echo -mavx2 -mfma)
  LDSAN   :=
endif

CFLAGS  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare -Wno-format-truncation -Wno-missing-field-initializers -I. $(OPT) $(EXTRA_CFLAGS)
LDLIBS  := -lm -lpthread

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

.PHONY: all lib test demo deps check-deps bench clean banner nccl-wheel
.SECONDARY:
all: banner $(KARYON) $(TEST_BIN) $(BENCH_BIN)

banner:
	@echo "karyon: backends: $(KY_BACKENDS); build folder $(B)$(if $(filter 1,$(DEBUG)), (ASan+UBSan),)"

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

# Tests link cmocka, found at run time beside the binary ($ORIGIN/lib) on machines without it.
$(B)/tests/%: $(B)/tests/%.o $(TEST_AUX_OBJ) $(LIB)
	@mkdir -p $(B)/tests/lib
	@cp -n /usr/lib/x86_64-linux-gnu/libcmocka.so.0* $(B)/tests/lib/ 2>/dev/null || true
	$(Q)$(LINK) $(LDSAN) $(filter %.o,$^) $(filter %.a,$^) -o $@ -lcmocka $(LDLIBS) -Wl,-rpath,'$$ORIGIN/lib'

$(B)/bench/%: $(B)/bench/%.o $(TEST_AUX_OBJ) $(LIB)
	$(Q)$(LINK) $(LDSAN) $(filter %.o,$^) $(filter %.a,$^) -o $@ $(LDLIBS)

# The op-case table drives three programs: gradient checks, CPU-vs-CUDA checks, op benchmarks.
OPTABLE_OBJ := $(B)/tests/optable_cases.o
$(B)/tests/test_ops_gradcheck $(B)/tests/test_cuda_optable $(B)/bench/bench_ops: $(OPTABLE_OBJ)

# Every suite runs, even after a failure; the summary line counts suites.
test: check-deps banner $(TEST_BIN) $(KARYON)
	@ASAN_OPTIONS=protect_shadow_gap=0:detect_leaks=1 KY_BUILD=$(B) sh tests/run_all.sh $(TEST_BIN)

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
	rm -rf build build-debug

# Header dependencies of every object, so a changed header rebuilds the test helpers and programs too.
-include $(LIB_OBJ:.o=.d) $(CU_OBJ:.o=.d) $(TEST_BIN:=.d) $(OPTABLE_OBJ:.o=.d) $(TEST_AUX_OBJ:.o=.d) $(BENCH_BIN:=.d) $(APP_SRC:%.c=$(B)/%.d)

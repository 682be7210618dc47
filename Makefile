# karyon: one Makefile for the library, the `karyon` command, tests and benchmarks.
#   make              build everything (CPU backend always; CUDA backend when nvcc is found)
#   make test         build and run every cmocka suite      (make DEBUG=1 test: ASan + UBSan)
#   make demo         train / predict / score on the bundled sample
#   make deps         install the Debian packages the project needs (or print the apt-get line)
#   make emu          run the CUDA kernels on a CPU emulation (no GPU, no nvcc; docs/gpu.md)
#   CUDA=0            build without the CUDA backend;  CUDA_ARCH="75 80 90" picks GPU targets
#   V=1               echo every command

CC      ?= gcc
CXX     ?= g++
NVCC    ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
DEBUG   ?= 0
CUDA    ?= $(if $(NVCC),1,0)
CUDA_ARCH ?= 75 80 86 89 90

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

MODULES ?= core ops losses optim models data aug post pipeline
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

TEST_BIN := $(TESTS:tests/%.c=$(B)/tests/%)
BENCH_BIN:= $(BENCH_SRC:bench/%.c=$(B)/bench/%)
LIB      := $(B)/libkaryon.a
KARYON   := $(B)/karyon
TEST_AUX_OBJ := $(TEST_AUX:%.c=$(B)/%.o)

ifneq ($(V),1)
  Q := @
endif

.PHONY: all lib test demo deps check-deps bench clean banner emu
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

# The CUDA sources compiled with g++ against the fiber emulation of tests/cuda_emu and run on the
# CPU: the non-convolution kernels, the convolution whole, three planted bugs it must catch, and a
# short training run + resume on the emulated device. Not part of `make test`: it builds the
# library and the CUDA sources again and takes ~13 minutes of CPU; CI runs it after the tests.
emu: check-deps
	sh tests/cuda_emu/run_ops.sh
	sh tests/cuda_emu/run.sh
	sh tests/cuda_emu/run.sh --mutants
	sh tests/cuda_emu/run.sh --train

check-deps:
	@sh .ci/deps.sh check

clean:
	rm -rf build build-debug

# Header dependencies of every object, so a changed header rebuilds the test helpers and programs too.
-include $(LIB_OBJ:.o=.d) $(CU_OBJ:.o=.d) $(TEST_BIN:=.d) $(OPTABLE_OBJ:.o=.d) $(TEST_AUX_OBJ:.o=.d) $(BENCH_BIN:=.d) $(APP_SRC:%.c=$(B)/%.d)

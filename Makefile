# moesim — one GNU Makefile, no configure step; every output lands under build/.
#
#   make            build build/moesim (CUDA parts where nvcc is found; CUDA=0 forces them off)
#   make run        install missing Debian packages, build, run the flagship (scripts/flagship.sh)
#   make test       build and run every test; last line "N passed, N failed, N skipped"
#   make test SAN=1 the same under AddressSanitizer + UndefinedBehaviorSanitizer (build/san/)
#   make bench      benchmarks: figures and ratios, not pass/fail
#   make fuzz FUZZ_SECONDS=N   libFuzzer over the YAML loader (clang)
#   CC=clang make   any C11 compiler; -Wall -Wextra clean with gcc and clang

CC      ?= gcc
SAN     ?= 0
OPT     ?= -O2
BUILD   := build
ifeq ($(SAN),1)
BUILD   := build/san
OPT     := -O1
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif

# CUDA: built where nvcc exists, unless CUDA=0.
NVCC      ?= $(shell command -v nvcc 2>/dev/null || { [ -x /usr/local/cuda/bin/nvcc ] && echo /usr/local/cuda/bin/nvcc; })
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
ifeq ($(NVCC),)
CUDA    ?= 0
else
CUDA    ?= 1
endif

# MPI (OpenMPI): flags from the wrapper; `moesim a2a` needs it.
MPI_CFLAGS := $(shell mpicc --showme:compile 2>/dev/null)
MPI_LIBS   := $(shell mpicc --showme:link 2>/dev/null)
ifneq ($(MPI_LIBS),)
MPI_DEF := -DMOESIM_MPI=1
endif

CPPFLAGS := -Isim -Ikernels -I. -D_GNU_SOURCE $(MPI_DEF) $(MPI_CFLAGS) -DMOESIM_CUDA=$(CUDA)
CFLAGS   ?= $(OPT) -g
CFLAGS   += -std=c11 -Wall -Wextra -pthread -MMD -MP $(SANFLAGS)
LDLIBS   := -lyaml -lhwloc -lpapi $(MPI_LIBS) -lm -lpthread
LDFLAGS  += $(SANFLAGS) -pthread

# Per-ISA kernel files are named by the ISA they need; only they get the flags, and the code
# that calls them checks CPUID first, so the binary still runs on older CPUs.
ISA_AVX2       := -mavx2 -mfma -mf16c
ISA_AVX512     := $(ISA_AVX2) -mavx512f -mavx512bw -mavx512vl -mavx512dq
ISA_AVX512BF16 := $(ISA_AVX512) -mavx512bf16

LIB_SRC  := $(filter-out sim/main.c,$(wildcard sim/*.c)) \
            $(wildcard kernels/*.c kernels/ref/*.c kernels/cpu/*.c kernels/comm/*.c)
ifeq ($(CUDA),1)
CU_SRC   := $(wildcard kernels/cuda/*.cu)
LIB_SRC  += $(filter-out kernels/cuda/nocuda.c,$(wildcard kernels/cuda/*.c))
CUDA_LIBS := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lnccl -lcudart -lstdc++
CPPFLAGS += -I$(CUDA_HOME)/include
NVCCFLAGS ?= -O3 -std=c++17 -Isim -Ikernels -I. -DMOESIM_CUDA=1 \
             -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_80,code=sm_80 \
             -Xcompiler -Wall,-Wextra
else
CU_SRC   :=
LIB_SRC  += kernels/cuda/nocuda.c
CUDA_LIBS :=
endif

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o) $(CU_SRC:%.cu=$(BUILD)/%.cu.o)
LIB      := $(BUILD)/libmoesim.a
BIN      := $(BUILD)/moesim
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(wildcard tests/bench/bench_*.c)
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)

.PHONY: all run test bench fuzz deps clean tests benches
all: $(BIN)

$(BUILD)/%_avx2.o: ISA = $(ISA_AVX2)
$(BUILD)/%_avx512.o: ISA = $(ISA_AVX512)
$(BUILD)/%_avx512bf16.o: ISA = $(ISA_AVX512BF16)

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(ISA) -c $< -o $@

$(BUILD)/%.cu.o: %.cu
	@mkdir -p $(@D)
	$(NVCC) $(NVCCFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(BUILD)/sim/main.o $(LIB)
	$(CC) $(LDFLAGS) $^ $(CUDA_LIBS) $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/%.c $(LIB) tests/test.h
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests $(CFLAGS) $< $(LIB) $(LDFLAGS) $(CUDA_LIBS) $(LDLIBS) -o $@

$(BUILD)/bench/%: tests/bench/%.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests $(CFLAGS) $< $(LIB) $(LDFLAGS) $(CUDA_LIBS) $(LDLIBS) -ldnnl -o $@

deps:
	@./scripts/deps.sh

tests: $(BIN) $(TEST_BIN)
benches: $(BIN) $(BENCH_BIN)

# The main job: packages, build, then the flagship: measure this machine's kernels, simulate V3
# pre-training on the paper's cluster, the hardware what-ifs and the purchase comparisons, plot,
# summarise (scripts/flagship.sh; results/flagship/).
run: deps
	@$(MAKE) --no-print-directory all
	@./scripts/flagship.sh --build $(BUILD)

test: deps
	@$(MAKE) --no-print-directory tests
	@./tests/run.sh $(BUILD)

bench: deps
	@$(MAKE) --no-print-directory benches
	@./tests/bench/run.sh $(BUILD)

FUZZ_SECONDS ?= 60
fuzz: deps
	@mkdir -p build/fuzz
	clang $(CPPFLAGS) -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined \
	  tests/fuzz/fuzz_cfg.c sim/cfg.c sim/util.c -lyaml -lm -o build/fuzz/fuzz_cfg
	@mkdir -p build/fuzz/corpus
	./build/fuzz/fuzz_cfg -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -close_fd_mask=2 \
	  -dict=tests/fuzz/yaml.dict build/fuzz/corpus tests/fuzz/seeds

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

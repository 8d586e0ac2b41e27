# Head2Toe in C. `make` builds ./h2t; `make test` runs the offline suite;
# `make parity` compares against PyTorch (needs /usr/bin/python3 + torch);
# `make cross` runs the suite on other architectures under qemu-user and
# checks that every portable build writes the same bytes (docs/PORTING.md).
#   NO_OMP=1    build without OpenMP (single-threaded, same results)
#   PORTABLE=1  plain -std=c11 -O2, no machine-specific flags, no contraction
#   REFERENCE=1 the teaching build: compiled with -DH2T_REFERENCE, every
#               fast path (gemm, conv2d, conv2d_ep, layernorm, the GELUs,
#               softmax, the softmax inside attention, lasso's training
#               step) hands over to its plain twin (*_ref: the definition,
#               summed in order in double, libm's exp/erf/tanh), so only the
#               plain code runs. Both are compiled in every build;
#               REFERENCE_BUILD (util.h) picks. Far slower (naive GEMM);
#               test/cli_reference.sh states how close its results are to
#               the fast build's.
#   CC=...      any C11 compiler (gcc, clang, tcc, a cross gcc, mingw-w64)
# Objects live in build/<flavour>/ so flavours never mix: native[-omp],
# portable[-omp], reference[-omp], portable-reference[-omp], x87 (below); a
# compiler other than cc gets its own (build/clang-native-omp/,
# build/tcc-portable/).

CC ?= cc
PYTHON ?= /usr/bin/python3

# does $(CC) compile a tiny program with these flags? (tcc ignores unknown flags)
cc_ok = $(shell printf '$(2)\nint main(void){return 0;}\n' | $(CC) $(1) -x c - -o /dev/null 2>/dev/null && echo $(1))
CCNAME := $(notdir $(firstword $(CC)))
TARGET := $(shell $(CC) -dumpmachine 2>/dev/null)

ifeq ($(PORTABLE),1)
  # -ffp-contract=off: a*b+c is two roundings, as written (clang would fuse
  # it); H2T_NO_FMA: the kernels too, even where fmaf is fast (aarch64,
  # s390x, ppc64, riscv64), so every machine writes the same bytes
  OPTFLAGS := -O2 $(call cc_ok,-ffp-contract=off) -DH2T_NO_FMA
  FAST_FLAVOUR := portable
  REF_FLAVOUR := portable-reference
else
  OPTFLAGS := -O3 $(call cc_ok,-march=native)
  FAST_FLAVOUR := native
  REF_FLAVOUR := reference
endif
ifeq ($(REFERENCE),1)
  OPTFLAGS += -DH2T_REFERENCE
  FLAVOUR := $(REF_FLAVOUR)
  OTHER_FLAVOUR := $(FAST_FLAVOUR)
else
  FLAVOUR := $(FAST_FLAVOUR)
  OTHER_FLAVOUR := $(REF_FLAVOUR)
endif
OPTFLAGS += -fno-math-errno # sqrtf etc. need not set errno: lets gcc vectorize them (same results; not -ffast-math)

# Float arithmetic in float (FLT_EVAL_METHOD 0) wherever the hardware has it:
# gcc's ISO mode on s390x evaluates float expressions in double
# (FLT_EVAL_METHOD 1) although the machine has float instructions, which
# changes every result; -fexcess-precision=fast there gives plain float.
# Not on x87 (i686 without SSE), where it would stay 2 and make results
# depend on register allocation: docs/PORTING.md, "Floating point".
flt_eval = $(shell printf '\043include <float.h>\nFLT_EVAL_METHOD\n' | $(CC) -std=c11 $(1) -E -P -x c - 2>/dev/null | tail -n 1)
ifneq ($(call flt_eval,$(OPTFLAGS) $(EXTRA_CFLAGS)),0)
  ifeq ($(call flt_eval,$(OPTFLAGS) $(EXTRA_CFLAGS) -fexcess-precision=fast),0)
    OPTFLAGS += -fexcess-precision=fast
  endif
endif

ifneq ($(NO_OMP),1)
  OMPFLAGS := $(call cc_ok,-fopenmp,\043ifndef _OPENMP\n\043error no OpenMP\n\043endif)
endif
ifneq ($(OMPFLAGS),)
  FLAVOUR := $(FLAVOUR)-omp
  OTHER_FLAVOUR := $(OTHER_FLAVOUR)-omp
  HAVE_OMP := 1
else
  OMPFLAGS := -Wno-unknown-pragmas
  HAVE_OMP := 0
endif
ifneq ($(CCNAME),cc)
  FLAVOUR := $(CCNAME)-$(FLAVOUR)
  OTHER_FLAVOUR := $(CCNAME)-$(OTHER_FLAVOUR)
endif

# Windows (mingw-w64): its own printf, so %zu and %lld work (util.h says so
# to the format checker); executables end in .exe.
ifneq ($(findstring mingw,$(TARGET)),)
  PLATFORM_CFLAGS := -D__USE_MINGW_ANSI_STDIO=1
  EXE := .exe
endif

WARN := -Wall -Wextra -Wno-unused-parameter -Wshadow -Wvla
# _FILE_OFFSET_BITS=64: 64-bit off_t and directory offsets on 32-bit hosts
# (files over 2 GB, readdir on 64-bit file systems)
CFLAGS_ALL := -std=c11 -D_POSIX_C_SOURCE=200809L -D_FILE_OFFSET_BITS=64 $(PLATFORM_CFLAGS) $(OPTFLAGS) $(OMPFLAGS) \
	$(WARN) $(EXTRA_CFLAGS)
LDLIBS := -lm $(EXTRA_LDFLAGS)

LIB_SRC := util.c npy.c gemm.c winograd.c tensor.c backbone.c model.c resnet.c vit.c pooling.c extract.c lasso.c scores.c cv.c headio.c pipeline.c run.c experiments.c demo.c svg.c
HDRS := $(wildcard *.h)
B := build/$(FLAVOUR)
LIB_OBJ := $(LIB_SRC:%.c=$(B)/%.o)
TEST_SRC := $(wildcard test/test_*.c)
TEST_BIN := $(TEST_SRC:test/%.c=$(B)/%$(EXE))

.PHONY: all h2t test parity sanitize clean test-bins cross show-config
all: h2t

h2t: $(B)/h2t$(EXE)
	@cp $(B)/h2t$(EXE) h2t.new && mv -f h2t.new h2t$(EXE)

$(B)/%.o: %.c $(HDRS) | $(B)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(B)/h2t$(EXE): $(B)/h2t.o $(LIB_OBJ)
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LDLIBS)

# -I.: the tests include "npy.h" or "../npy.h" (no header of ours shadows a system one)
$(B)/test_%$(EXE): test/test_%.c $(wildcard test/*.h) $(LIB_OBJ) $(HDRS)
	$(CC) $(CFLAGS_ALL) -I. $< $(LIB_OBJ) -o $@ $(LDLIBS)

# npycmp: the shell tests' comparison of two .npy files within a tolerance
$(B)/npycmp$(EXE): test/npycmp.c $(B)/npy.o $(B)/util.o $(HDRS)
	$(CC) $(CFLAGS_ALL) -I. $< $(B)/npy.o $(B)/util.o -o $@ $(LDLIBS)

$(B):
	@mkdir -p $(B)

test-bins: $(B)/h2t$(EXE) $(B)/npycmp$(EXE) $(TEST_BIN)

# The suite also checks that a build without OpenMP gives the same bytes,
# compares this build's h2t with the other of the fast and reference builds
# (test/cli_reference.sh), and runs the kernel tests built with x87 float
# evaluation (below).
OTHER_B := build/$(OTHER_FLAVOUR)
ifeq ($(REFERENCE),1)
  REF_FAST := H2T_BIN_REF=$(B)/h2t$(EXE) H2T_BIN_FAST=$(OTHER_B)/h2t$(EXE)
else
  REF_FAST := H2T_BIN_REF=$(OTHER_B)/h2t$(EXE) H2T_BIN_FAST=$(B)/h2t$(EXE)
endif
test: h2t test-bins x87-bins
	@$(MAKE) --no-print-directory NO_OMP=1 test-bins >/dev/null
	@$(MAKE) --no-print-directory REFERENCE=$(if $(filter 1,$(REFERENCE)),0,1) $(OTHER_B)/h2t$(EXE) >/dev/null
	@H2T_OPENMP=$(HAVE_OMP) $(REF_FAST) sh test/run.sh $(B) build/$(subst -omp,,$(FLAVOUR)) $(X87)

# Float evaluation: test_tensor, test_resnet and test_vit built a second
# time, in build/x87/, with gcc -mfpmath=387 (FLT_EVAL_METHOD 2: float
# expressions evaluated in long double, as on i686; s390x does it in
# double). A kernel that counts on float rounding fails them. Where the
# compiler cannot (clang, tcc, non-x86) a SKIP line says so and none are built.
X87 := build/x87
X87_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -D_FILE_OFFSET_BITS=64 -O2 -mfpmath=387 -fno-math-errno $(WARN) \
	-Wno-unknown-pragmas
X87_OBJ := $(addprefix $(X87)/,util.o npy.o gemm.o winograd.o tensor.o backbone.o model.o resnet.o vit.o)
X87_TEST := $(X87)/test_tensor $(X87)/test_resnet $(X87)/test_vit
.SECONDARY: $(X87_OBJ)
.PHONY: x87-bins
x87-bins:
	@if printf '#include <float.h>\n#if FLT_EVAL_METHOD != 2\n#error\n#endif\nint main(void) { return 0; }\n' | \
	    $(CC) -std=c11 -mfpmath=387 -x c - -o /dev/null 2>/dev/null; then \
	  $(MAKE) --no-print-directory $(X87_TEST) >/dev/null; \
	else \
	  rm -rf $(X87); echo "SKIP float evaluation: $(CC) cannot build with -mfpmath=387 (FLT_EVAL_METHOD 2)"; \
	fi
$(X87)/%.o: %.c $(HDRS)
	@mkdir -p $(X87)
	$(CC) $(X87_CFLAGS) -c $< -o $@
$(X87)/test_%: test/test_%.c $(wildcard test/*.h) $(X87_OBJ) $(HDRS)
	$(CC) $(X87_CFLAGS) -I. $< $(X87_OBJ) -o $@ $(LDLIBS)

# What this invocation would build with (test/cross.sh reads HAVE_OMP).
show-config:
	@echo "CC=$(CC) TARGET=$(TARGET) B=$(B) HAVE_OMP=$(HAVE_OMP)"
	@echo "CFLAGS=$(CFLAGS_ALL)"
	@echo "LDLIBS=$(LDLIBS)"

# The portable build on other architectures (qemu-user), 32-bit x86 (x87
# and SSE2), tcc, clang and Windows (wine), and the byte identity of their
# outputs; see test/cross.sh for the targets (CROSS_TARGETS="s390x i686"
# for some), what runs under emulation (CROSS_FULL=1: everything) and
# CROSS_DEADLINE; docs/PORTING.md for the packages.
cross:
	@sh test/cross.sh $(CROSS_TARGETS)

parity: h2t
	@sh test/parity.sh ./h2t $(PYTHON)

# The whole suite under AddressSanitizer + UBSan (and LeakSanitizer), built in
# build/sanitize/; it never touches ./h2t or the other flavours' objects.
# A sanitizer report exits 86, so it never passes for a clean refusal (1).
sanitize:
	@$(MAKE) --no-print-directory B=build/sanitize \
	  EXTRA_CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" \
	  build/sanitize/h2t build/sanitize/npycmp $(TEST_SRC:test/%.c=build/sanitize/%)
	@ASAN_OPTIONS=detect_leaks=1:exitcode=86 UBSAN_OPTIONS=exitcode=86:print_stacktrace=1 \
	  sh test/run.sh build/sanitize build/sanitize

# libFuzzer harnesses (test/fuzz/fuzz_*.c) over the .npy and config parsers:
# `make fuzz` builds them with clang and runs each for FUZZ_SECONDS, starting
# from the committed seeds; new inputs and crash files go to build/fuzz/.
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_FLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -D_FILE_OFFSET_BITS=64 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
.PHONY: fuzz fuzz-bins
fuzz-bins: build/fuzz/fuzz_npy build/fuzz/fuzz_config
build/fuzz/fuzz_npy: test/fuzz/fuzz_npy.c npy.c util.c npy.h util.h
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) test/fuzz/fuzz_npy.c npy.c util.c -o $@ -lm
build/fuzz/fuzz_config: test/fuzz/fuzz_config.c util.c util.h
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) test/fuzz/fuzz_config.c util.c -o $@ -lm
fuzz: fuzz-bins
	@for h in npy config; do mkdir -p build/fuzz/corpus_$$h; \
	  echo "== fuzz_$$h for $(FUZZ_SECONDS) s"; \
	  build/fuzz/fuzz_$$h -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -print_final_stats=1 \
	    -artifact_prefix=build/fuzz/crash_$$h- build/fuzz/corpus_$$h test/fuzz/corpus_$$h || exit 1; done

clean:
	rm -rf build h2t h2t.exe

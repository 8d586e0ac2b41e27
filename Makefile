# Head2Toe in C. `make` builds ./h2t; `make test` runs the offline suite;
# `make parity` compares against PyTorch (needs /usr/bin/python3 + torch).
#   NO_OMP=1    build without OpenMP (single-threaded, same results)
#   PORTABLE=1  plain -std=c11 -O2, no machine-specific flags
#   REFERENCE=1 the teaching build: compiled with -DH2T_REFERENCE, every
#               fast kernel (gemm, conv2d, conv2d_ep, layernorm, the GELUs,
#               softmax, the softmax inside attention) hands over to its
#               plain twin (*_ref: the definition, summed in order in double,
#               libm's exp/erf/tanh), so only the plain code runs. Both are
#               compiled in every build; REFERENCE_BUILD (util.h) picks. Far
#               slower (naive GEMM); test/cli_reference.sh states how close
#               its results are to the fast build's.
# Objects live in build/<flavour>/ so flavours never mix: native[-omp],
# portable[-omp], reference[-omp] (portable-reference[-omp]), x87 (below).

CC ?= cc
PYTHON ?= /usr/bin/python3

ifeq ($(PORTABLE),1)
  OPTFLAGS := -O2
  FAST_FLAVOUR := portable
  REF_FLAVOUR := portable-reference
else
  NATIVE := $(shell echo 'int main(void){return 0;}' | $(CC) -march=native -x c - -o /dev/null 2>/dev/null && echo -march=native)
  OPTFLAGS := -O3 $(NATIVE)
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

ifneq ($(NO_OMP),1)
  OMPFLAGS := $(shell echo 'int main(void){return 0;}' | $(CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo -fopenmp)
endif
ifneq ($(OMPFLAGS),)
  FLAVOUR := $(FLAVOUR)-omp
  OTHER_FLAVOUR := $(OTHER_FLAVOUR)-omp
else
  OMPFLAGS := -Wno-unknown-pragmas
endif

WARN := -Wall -Wextra -Wno-unused-parameter -Wshadow -Wvla
CFLAGS_ALL := -std=c11 -D_POSIX_C_SOURCE=200809L $(OPTFLAGS) $(OMPFLAGS) $(WARN) $(EXTRA_CFLAGS)
LDLIBS := -lm

LIB_SRC := util.c npy.c gemm.c tensor.c backbone.c model.c resnet.c vit.c pooling.c extract.c lasso.c scores.c cv.c headio.c pipeline.c run.c experiments.c demo.c svg.c
HDRS := $(wildcard *.h)
B := build/$(FLAVOUR)
LIB_OBJ := $(LIB_SRC:%.c=$(B)/%.o)
TEST_SRC := $(wildcard test/test_*.c)
TEST_BIN := $(TEST_SRC:test/%.c=$(B)/%)

.PHONY: all h2t test parity sanitize clean test-bins
all: h2t

h2t: $(B)/h2t
	@cp $(B)/h2t h2t.new && mv -f h2t.new h2t

$(B)/%.o: %.c $(HDRS) | $(B)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(B)/h2t: $(B)/h2t.o $(LIB_OBJ)
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LDLIBS)

$(B)/test_%: test/test_%.c $(wildcard test/*.h) $(LIB_OBJ) $(HDRS)
	$(CC) $(CFLAGS_ALL) -iquote . $< $(LIB_OBJ) -o $@ $(LDLIBS)

# npycmp: the shell tests' comparison of two .npy files within a tolerance
$(B)/npycmp: test/npycmp.c $(B)/npy.o $(B)/util.o $(HDRS)
	$(CC) $(CFLAGS_ALL) -iquote . $< $(B)/npy.o $(B)/util.o -o $@ $(LDLIBS)

$(B):
	@mkdir -p $(B)

test-bins: $(B)/h2t $(B)/npycmp $(TEST_BIN)

# The suite also checks that a build without OpenMP gives the same bytes,
# compares this build's h2t with the other of the fast and reference builds
# (test/cli_reference.sh), and runs the kernel tests built with x87 float
# evaluation (below).
OTHER_B := build/$(OTHER_FLAVOUR)
ifeq ($(REFERENCE),1)
  REF_FAST := H2T_BIN_REF=$(B)/h2t H2T_BIN_FAST=$(OTHER_B)/h2t
else
  REF_FAST := H2T_BIN_REF=$(OTHER_B)/h2t H2T_BIN_FAST=$(B)/h2t
endif
test: h2t test-bins x87-bins
	@$(MAKE) --no-print-directory NO_OMP=1 test-bins >/dev/null
	@$(MAKE) --no-print-directory REFERENCE=$(if $(filter 1,$(REFERENCE)),0,1) $(OTHER_B)/h2t >/dev/null
	@$(REF_FAST) sh test/run.sh $(B) build/$(subst -omp,,$(FLAVOUR)) $(X87)

# Float evaluation: test_tensor, test_resnet and test_vit built a second
# time, in build/x87/, with gcc -mfpmath=387 (FLT_EVAL_METHOD 2: float
# expressions evaluated in long double, as on i686; s390x does it in
# double). A kernel that counts on float rounding fails them. Where the
# compiler cannot (clang, non-x86) a SKIP line says so and none are built.
X87 := build/x87
X87_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -mfpmath=387 -fno-math-errno $(WARN) -Wno-unknown-pragmas
X87_OBJ := $(addprefix $(X87)/,util.o npy.o gemm.o tensor.o backbone.o model.o resnet.o vit.o)
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
	$(CC) $(X87_CFLAGS) -iquote . $< $(X87_OBJ) -o $@ $(LDLIBS)

parity: h2t
	@sh test/parity.sh ./h2t $(PYTHON)

# The whole suite under AddressSanitizer + UBSan (and LeakSanitizer), built in
# build/sanitize/; it never touches ./h2t or the other flavours' objects.
# A sanitizer report exits 86, so it never passes for a clean refusal (1).
sanitize:
	@$(MAKE) --no-print-directory B=build/sanitize \
	  EXTRA_CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" \
	  build/sanitize/h2t $(TEST_SRC:test/%.c=build/sanitize/%)
	@ASAN_OPTIONS=detect_leaks=1:exitcode=86 UBSAN_OPTIONS=exitcode=86:print_stacktrace=1 \
	  sh test/run.sh build/sanitize build/sanitize

# libFuzzer harnesses (test/fuzz/fuzz_*.c) over the .npy and config parsers:
# `make fuzz` builds them with clang and runs each for FUZZ_SECONDS, starting
# from the committed seeds; new inputs and crash files go to build/fuzz/.
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_FLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
.PHONY: fuzz fuzz-bins
fuzz-bins: build/fuzz/fuzz_npy build/fuzz/fuzz_config
build/fuzz/fuzz_npy: test/fuzz/fuzz_npy.c npy.c util.c npy.h util.h
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) -iquote . test/fuzz/fuzz_npy.c npy.c util.c -o $@ -lm
build/fuzz/fuzz_config: test/fuzz/fuzz_config.c util.c util.h
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) -iquote . test/fuzz/fuzz_config.c util.c -o $@ -lm
fuzz: fuzz-bins
	@for h in npy config; do mkdir -p build/fuzz/corpus_$$h; \
	  echo "== fuzz_$$h for $(FUZZ_SECONDS) s"; \
	  build/fuzz/fuzz_$$h -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -print_final_stats=1 \
	    -artifact_prefix=build/fuzz/crash_$$h- build/fuzz/corpus_$$h test/fuzz/corpus_$$h || exit 1; done

clean:
	rm -rf build h2t

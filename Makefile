# knob: make, make test, make asan, make bench, make clean.
# CC=clang works too; WERROR=1 turns warnings into errors (CI does this).

CC      ?= cc
OPT     ?= -O2
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith \
           -Wvla -Wformat=2 -Wno-format-nonliteral
CFLAGS  ?= $(OPT) -g
# -fopenmp-simd: "#pragma omp simd" only, no OpenMP runtime (threads: knob's pool, src/core/threads.c)
ALL_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -fopenmp-simd -fno-math-errno $(WARN) $(if $(WERROR),-Werror) \
              -Iinclude -Isrc $(CFLAGS) $(SAN)
LDLIBS  := -lmicrohttpd -lcjson -lpcre2-8 -lpng -lz -lm -lpthread
LDFLAGS ?=
ALL_LDFLAGS := $(SAN) $(LDFLAGS)

# MPI for data-parallel training (src/train/dist.c only): found automatically when mpicc is on the
# PATH (its --showme flags); MPI=0 builds without it (then the binary runs single-process only).
MPI ?= $(if $(shell command -v mpicc 2>/dev/null),1,0)
ifeq ($(MPI),1)
MPI_CFLAGS := -DKNOB_MPI $(patsubst -I%,-isystem %,$(shell mpicc --showme:compile))
LDLIBS += $(shell mpicc --showme:link)
endif

MAKEFLAGS += --no-print-directory
BUILD   ?= build
LIB_SRC := $(sort $(wildcard src/*/*.c))
CLI_SRC := $(sort $(wildcard cli/*.c))
TEST_SRC:= $(sort $(wildcard tests/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/serve_page.o
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ:= $(TEST_SRC:%.c=$(BUILD)/%.o)
EXAMPLES:= $(patsubst examples/%.c,$(BUILD)/examples/%,$(sort $(wildcard examples/*.c)))
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(sort $(wildcard tests/fuzz/fuzz_*.c)))
REPLAYS := $(FUZZ_NAMES:%=$(BUILD)/fuzz/replay_%)
HEADERS := include/knob.h $(wildcard src/*.h src/*/*.h cli/*.h tests/*.h)

.PHONY: all test asan valgrind bench fuzz clean

all: $(BUILD)/knob $(BUILD)/test_knob $(EXAMPLES)

# the speed programs' rules (BENCH_BIN); make test builds them too, so they compile warning-free
include bench/bench.mk

$(BUILD)/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/src/train/dist.o: ALL_CFLAGS += $(MPI_CFLAGS)
# knob serve's page (src/serve/page.html) as a C array in the library
$(BUILD)/gen/serve_page.c: src/serve/page.html
	@mkdir -p $(dir $@)
	@{ echo '#include <stddef.h>'; echo 'const unsigned char knob_serve_page[] = {'; \
	   od -An -v -tu1 $< | sed 's/^ *//; s/  */,/g; s/$$/,/'; \
	   echo '0};'; echo 'const size_t knob_serve_page_len = sizeof knob_serve_page - 1;'; } > $@.tmp && mv $@.tmp $@
$(BUILD)/gen/serve_page.o: $(BUILD)/gen/serve_page.c
	$(CC) $(ALL_CFLAGS) -Wno-missing-variable-declarations -c $< -o $@

$(BUILD)/libknob.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/knob: $(CLI_OBJ) $(BUILD)/libknob.a
	$(CC) $(ALL_LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/test_knob: $(TEST_OBJ) $(BUILD)/libknob.a
	$(CC) $(ALL_LDFLAGS) $^ $(LDLIBS) -o $@

# examples use only the public header
$(BUILD)/examples/%: examples/%.c include/knob.h $(BUILD)/libknob.a
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -fopenmp-simd $(WARN) $(if $(WERROR),-Werror) -Iinclude $(CFLAGS) $(SAN) $< $(BUILD)/libknob.a $(ALL_LDFLAGS) $(LDLIBS) -o $@

# Fuzz targets: with a plain main that replays files (make test), or as libFuzzer binaries (make fuzz).
FUZZ_DEPS := tests/fuzz/fuzz.h $(BUILD)/libknob.a $(BUILD)/cli/args.o
$(BUILD)/fuzz/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(FUZZ_DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Icli $< tests/fuzz/replay.c $(BUILD)/cli/args.o $(BUILD)/libknob.a $(ALL_LDFLAGS) $(LDLIBS) -o $@
$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer -Icli $< $(BUILD)/cli/args.o $(BUILD)/libknob.a $(ALL_LDFLAGS) -fsanitize=fuzzer $(LDLIBS) -o $@

# Unit tests (C) and CLI tests (shell); the last line is "N passed, N failed".
test: $(BUILD)/knob $(BUILD)/test_knob $(EXAMPLES) $(REPLAYS) $(BENCH_BIN)
	@sh tests/run.sh $(BUILD)

# The same tests under AddressSanitizer and UndefinedBehaviorSanitizer, in a build folder of their own.
asan:
	$(MAKE) BUILD=build-asan OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" test

# Memcheck (valgrind) over a fast subset of the unit tests and a few commands (CI runs it).
VALGRIND_TESTS := safetensors tok_ step atomic read_file idx digits png checkpoint ckpt_writer old_ json lm_ kernel graph_ grad piece ngram_
# Its own build with DWARF 4 debug info: the valgrind of Debian 12 cannot read clang's DWARF 5.
valgrind:
	@$(MAKE) BUILD=build-valgrind CFLAGS="-O2 -gdwarf-4" build-valgrind/knob build-valgrind/test_knob >/dev/null
	@sh tests/valgrind.sh build-valgrind $(VALGRIND_TESTS)

# Every reader and parser under libFuzzer (clang), FUZZ_SECONDS each (default 60), in build-fuzz/.
FUZZ_SAN := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
fuzz:
	$(MAKE) BUILD=build-fuzz CC=clang OPT=-O1 SAN="$(FUZZ_SAN)" build-fuzz/knob $(FUZZ_NAMES:%=build-fuzz/fuzz/fuzz_%)
	@sh tests/fuzz/run.sh build-fuzz

# Speed against PyTorch on this machine (needs Debian's python3-torch for the comparison column).
bench: $(BENCH_BIN)
	@sh bench/run.sh $(BUILD)

clean:
	rm -rf build build-asan build-fuzz build-valgrind

# bench/bench.mk: build rules for the speed programs in bench/. The main Makefile includes this
# after its own variables (BUILD, CC, ALL_CFLAGS, ...); bench/run.sh also passes it with -f, so
# the guard keeps the rules from being read twice.
ifndef KNOB_BENCH_MK
KNOB_BENCH_MK := 1

BENCH_BIN := $(BUILD)/bench_gemm $(BUILD)/bench_step $(BUILD)/bench_peak $(BUILD)/bench_decode

$(BUILD)/bench_gemm: bench/gemm.c $(BUILD)/libknob.a $(HEADERS) bench/bench.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) bench/gemm.c $(BUILD)/libknob.a $(LDLIBS) -o $@

$(BUILD)/bench_step: bench/step.c $(BUILD)/libknob.a $(HEADERS) bench/bench.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) bench/step.c $(BUILD)/libknob.a $(LDLIBS) -o $@

# the FMA peak, measured (suite.py's %peak columns)
$(BUILD)/bench_peak: bench/peak.c $(BUILD)/libknob.a $(HEADERS) bench/bench.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) bench/peak.c $(BUILD)/libknob.a $(LDLIBS) -lpthread -o $@

# tokenizer speed on the fortunes corpus (js-tiktoken column with --js PATH or KNOB_BENCH_JS)
$(BUILD)/bench_tokenize: bench/tokenize.c $(BUILD)/libknob.a $(HEADERS) bench/bench.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) bench/tokenize.c $(BUILD)/libknob.a $(LDLIBS) -o $@

# prompt speed of knob_lm on a GPT-2 124M-shaped random model: token at a time vs one batched pass
$(BUILD)/bench_prefill: bench/prefill.c $(BUILD)/libknob.a $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) bench/prefill.c $(BUILD)/libknob.a $(LDLIBS) -o $@

# generation speed: decode steps for f32, bf16 and int8 weights against the streaming bandwidth
$(BUILD)/bench_decode: bench/decode.c $(BUILD)/libknob.a $(HEADERS) bench/bench.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) bench/decode.c $(BUILD)/libknob.a $(LDLIBS) -o $@

endif

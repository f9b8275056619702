#!/bin/sh
# test_bench.sh: the speed programs of bench/ (built by make test, so they compile warning-free
# under every CI compiler) start, parse their flags and print the lines bench/suite.py reads.
# Tiny sizes and time budgets: this checks that they run and what they print, never how fast.
# Run by tests/run.sh with $KNOB set to the binary's absolute path.
. "$(dirname "$0")/../cli_lib.sh"
bin=$(dirname "$KNOB")

# bench_peak: "peak THREADS GFLOPS ISA", a positive figure
"$bin/bench_peak" --threads 2 --seconds 0.01 >"$tmp/peak" 2>"$tmp/err" || fail "bench_peak exited $? ($(head -n 1 "$tmp/err"))"
awk '$1 == "peak" && $2 == 2 && $3 > 0 { ok = 1 } END { exit !ok }' "$tmp/peak" || fail "bench_peak printed '$(cat "$tmp/peak")'"
"$bin/bench_peak" --threads 0 >/dev/null 2>"$tmp/err" && fail "bench_peak --threads 0 was accepted"
grep -q "threads" "$tmp/err" || fail "bench_peak --threads 0: stderr '$(head -n 1 "$tmp/err")' does not name the flag"

# bench_gemm: one line per shape, "M N K OP knob naive", after a header naming the kernel
"$bin/bench_gemm" --threads 1 --min-time 0.01 24 20 16 nt >"$tmp/gemm" 2>"$tmp/err" || fail "bench_gemm exited $? ($(head -n 1 "$tmp/err"))"
grep -q "kernel" "$tmp/gemm" || fail "bench_gemm does not say which kernel ran"
awk '$1 == 24 && $2 == 20 && $3 == 16 && $4 == "nt" && $5 > 0 { ok = 1 } END { exit !ok }' "$tmp/gemm" ||
    fail "bench_gemm printed no figure for 24 20 16 nt: '$(tail -n 1 "$tmp/gemm")'"

# bench_step: a small MLP, one timed step; the result line has 7 fields, spec first (suite.py)
"$bin/bench_step" --threads 1 --steps 1 mlp:16-8-4:4 >"$tmp/step" 2>"$tmp/err" || fail "bench_step exited $? ($(head -n 1 "$tmp/err"))"
awk '$1 == "mlp:16-8-4:4" && NF == 7 { ok = 1 } END { exit !ok }' "$tmp/step" ||
    fail "bench_step printed no result line: '$(cat "$tmp/step")'"

[ "$failures" -eq 0 ]

#!/bin/sh
# test_info.sh: `knob info` names the CPU, the caches and a kernel that exists, and the GEMM blocking;
# KNOB_KERNEL=portable makes it report (and use) the portable kernels; a bad KNOB_KERNEL is a usage
# error that names the variable.
. "$(dirname "$0")/../cli_lib.sh"

"$KNOB" info >"$tmp/out" 2>"$tmp/err" || fail "knob info failed: $(cat "$tmp/err")"
grep -q '^cpu: ' "$tmp/out" || fail "knob info names no cpu"
grep -q '^caches: L1d [0-9]' "$tmp/out" || fail "knob info gives no L1d size"
grep -Eq '^kernels: (portable|avx2\+fma|avx512) \(gemm micro-kernel (portable|avx2\+fma|avx512)' "$tmp/out" \
    || fail "knob info names no kernel: $(grep kernels "$tmp/out")"
grep -Eq '^matrix-vector \(generation\): (portable|f32 (avx2\+fma|avx512f), bf16 (avx2\+fma|avx512f), q8 (avx2\+fma|avx512f|avx512vnni))$' "$tmp/out" \
    || fail "knob info names no matrix-vector kernel: $(grep matrix "$tmp/out")"
grep -Eq '^gemm blocking: micro-tile 6 x 16, KC [0-9]+, MC [0-9]+, NC [0-9]+' "$tmp/out" || fail "no gemm blocking"

KNOB_KERNEL=portable "$KNOB" info >"$tmp/out" 2>"$tmp/err" || fail "KNOB_KERNEL=portable knob info failed"
grep -q '^kernels: portable (gemm micro-kernel portable' "$tmp/out" || fail "KNOB_KERNEL=portable not honoured"
grep -q '^matrix-vector (generation): portable$' "$tmp/out" || fail "KNOB_KERNEL=portable not honoured by the matrix-vector kernels"

KNOB_KERNEL=sse9 "$KNOB" info >"$tmp/out" 2>"$tmp/err"
[ $? -eq 2 ] || fail "a bad KNOB_KERNEL should be a usage error (exit 2)"
grep -q "KNOB_KERNEL='sse9'" "$tmp/err" || fail "the error does not name KNOB_KERNEL: $(cat "$tmp/err")"

"$KNOB" info extra >"$tmp/out" 2>"$tmp/err"
[ $? -eq 2 ] || fail "knob info with an argument should be a usage error"
[ "$failures" -eq 0 ]

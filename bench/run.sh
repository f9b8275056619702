#!/bin/sh
# bench/run.sh [BUILD]: builds BUILD/bench_gemm and BUILD/bench_step. Times knob_gemm on square and
# MLP-like shapes, then PyTorch on the same shapes; then times one whole training step (zero grads,
# forward, backward, AdamW) of an MLP, a CNN and a small GPT, then PyTorch on the same models; and
# prints both comparisons; then the tokenizer's speed. Threads: KNOB_THREADS (default 2) for both. Timing never decides pass or
# fail.
set -e
build=${1:-build}
threads=${KNOB_THREADS:-2}
cd "$(dirname "$0")/.."

make -s -f Makefile -f bench/bench.mk BUILD="$build" "$build/bench_gemm" "$build/bench_step" "$build/bench_tokenize"

out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "== knob_gemm ($threads threads): $build/bench_gemm --threads $threads"
"$build/bench_gemm" --threads "$threads" | tee "$out"

# Debian's python3-torch lives in /usr/bin/python3 (the python3 first on PATH may lack it).
py=/usr/bin/python3
[ -x "$py" ] || py=python3
echo
echo "== knob vs PyTorch ($threads threads): $py bench/gemm_torch.py --threads $threads"
"$py" bench/gemm_torch.py --threads "$threads" --knob "$out"

echo
echo "== training steps ($threads threads): $build/bench_step --threads $threads"
"$build/bench_step" --threads "$threads" | tee "$out"
echo
echo "== knob vs PyTorch, one training step ($threads threads): $py bench/step_torch.py --threads $threads"
"$py" bench/step_torch.py --threads "$threads" --knob "$out"

echo
echo "== GPT-2 tokenizer encode/decode speed on the fortunes: $build/bench_tokenize"
echo "   (a js-tiktoken column when KNOB_BENCH_JS points at an unpacked js-tiktoken package)"
"$build/bench_tokenize"

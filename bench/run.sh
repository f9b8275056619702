#!/bin/sh
# bench/run.sh [BUILD]: builds BUILD/bench_gemm, times knob_gemm on square and MLP-like shapes,
# then times PyTorch on the same shapes with the same thread count and prints the comparison.
# Threads: KNOB_THREADS (default 2) for both. Timing never decides pass or fail.
set -e
build=${1:-build}
threads=${KNOB_THREADS:-2}
cd "$(dirname "$0")/.."

make -s -f Makefile -f bench/bench.mk BUILD="$build" "$build/bench_gemm"

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

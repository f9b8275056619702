#!/bin/sh
# bench/run.sh [BUILD]: `make bench`. Builds BUILD/bench_gemm and BUILD/bench_step, then runs
# bench/suite.py: knob against PyTorch at its best (the OpenMP OpenBLAS and the CPU's best kernel,
# for the PyTorch process only) on issue 9's workloads, interleaved, median [min-max] of 3 runs,
# ratios, peak memory, parameter counts, and the GPT character row with one busy process.
# BENCH_QUICK=1: one run of each, small workloads only (about a minute). Threads: KNOB_THREADS
# (default 2) for both sides. Timing never decides pass or fail.
# The older tables stay runnable by hand: bench/gemm_torch.py, bench/step_torch.py --knob FILE,
# bench_tokenize, bench_prefill (see their headers).
set -e
build=${1:-build}
threads=${KNOB_THREADS:-2}
cd "$(dirname "$0")/.."

make -s -f Makefile -f bench/bench.mk BUILD="$build" "$build/bench_gemm" "$build/bench_step" "$build/bench_peak" "$build/bench_decode"

# Debian's python3-torch lives in /usr/bin/python3 (the python3 first on PATH may lack it).
py=/usr/bin/python3
[ -x "$py" ] || py=python3
quick=
[ -n "${BENCH_QUICK:-}" ] && [ "${BENCH_QUICK}" != 0 ] && quick=--quick
"$py" bench/suite.py "$build" --threads "$threads" $quick

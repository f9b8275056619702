#!/bin/sh
# tests/fuzz/run.sh BUILD: runs every libFuzzer target in BUILD/fuzz/ for FUZZ_SECONDS each (default
# 60), starting from the seeds that tests/fuzz/seeds.sh makes and the kept regression inputs, with
# caps on memory (-rss_limit_mb, -malloc_limit_mb) and time per input (-timeout). A finding is
# written to BUILD/fuzz/findings/<target>-*; keep it in tests/fuzz/regress/<target>/ once fixed.
# Exit 1 if any target found anything.
set -u
B=${1:-build-fuzz}
S=${FUZZ_SECONDS:-60}
# FUZZ_SEED=N makes libFuzzer's choices repeatable (CI sets it); unset, each run explores anew
seed_flag=""; [ -n "${FUZZ_SEED:-}" ] && seed_flag="-seed=$FUZZ_SEED"
cd "$(dirname "$0")/../.."
rm -rf "$B/fuzz/seeds"
sh tests/fuzz/seeds.sh "$B/knob" "$B/fuzz/seeds" || { echo "fuzz: seed generation failed"; exit 1; }
mkdir -p "$B/fuzz/findings"
bad=0
for f in "$B"/fuzz/fuzz_*; do
    [ -x "$f" ] || continue
    t=${f##*/fuzz_}
    mkdir -p "$B/fuzz/corpus/$t"
    regress=""; [ -d "tests/fuzz/regress/$t" ] && regress="tests/fuzz/regress/$t"
    log="$B/fuzz/$t.log"
    "$f" $seed_flag -max_total_time="$S" -timeout=5 -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=1 \
        -artifact_prefix="$B/fuzz/findings/$t-" "$B/fuzz/corpus/$t" "$B/fuzz/seeds/$t" $regress >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
    if [ $rc -eq 0 ]; then
        echo "fuzz $t: ok (${runs:-?} runs in ${S} s, ${rate:-?}/s, ${cov:-no coverage line})"
    else
        echo "fuzz $t: FOUND something (exit $rc); see $log and $B/fuzz/findings/"
        grep -m 3 -E 'ERROR|SUMMARY|==[0-9]+==' "$log" | sed 's/^/    /'
        bad=1
    fi
done
exit $bad

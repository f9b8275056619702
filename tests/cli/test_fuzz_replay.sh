#!/bin/sh
# test_fuzz_replay.sh: every fuzz target, built with a plain main (tests/fuzz/replay.c), reruns the
# seeds tests/fuzz/seeds.sh makes and the inputs fuzzing once found (tests/fuzz/regress/<target>/),
# under this build (and so under ASan in make asan). A crash, a leak or an abort fails the test.
. "$(dirname "$0")/../cli_lib.sh"
cd "$(dirname "$0")/../.."
bin=$(dirname "$KNOB")/fuzz
sh tests/fuzz/seeds.sh "$KNOB" "$tmp/seeds" >"$tmp/seeds.log" 2>&1 || { cat "$tmp/seeds.log"; fail "seed generation failed"; }
n_targets=0
for src in tests/fuzz/fuzz_*.c; do
    t=${src##*/fuzz_}; t=${t%.c}
    n_targets=$((n_targets + 1))
    [ -x "$bin/replay_$t" ] || { fail "$bin/replay_$t is not built"; continue; }
    regress=""; [ -d "tests/fuzz/regress/$t" ] && regress="tests/fuzz/regress/$t"
    ls "$tmp/seeds/$t" | grep -q . || fail "no seeds for $t"
    out=$("$bin/replay_$t" "$tmp/seeds/$t" $regress 2>&1) || fail "replay_$t failed: $(echo "$out" | tail -n 5)"
    echo "$out" | grep -q '^replayed [1-9]' || fail "replay_$t replayed nothing: $out"
done
[ "$n_targets" -ge 13 ] || fail "expected at least 13 fuzz targets, found $n_targets"
[ "$failures" -eq 0 ]

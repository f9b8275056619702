#!/bin/sh
# tests/run.sh BUILD: runs the C unit tests and every tests/cli/*.sh against BUILD/knob, then prints
# the combined last line "N passed, N failed" (", N skipped" when any). Exit 1 if anything failed.
build=${1:-build}
export KNOB="$(cd "$build" && pwd)/knob"
passed=0; failed=0; skipped=0
out=$(mktemp); trap 'rm -f "$out"' EXIT

"$build/test_knob" >"$out"
unit_rc=$?
grep -v -E '^[0-9]+ passed, [0-9]+ failed' "$out"
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
if [ -z "$line" ]; then
    echo "FAIL unit tests (runner crashed, exit $unit_rc)"; failed=$((failed + 1))
else
    passed=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
    failed=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    s=$(echo "$line" | sed -nE 's/.* ([0-9]+) skipped.*/\1/p'); skipped=${s:-0}
    [ "$unit_rc" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
fi

for t in tests/cli/*.sh; do
    [ -f "$t" ] || continue
    if sh "$t" >"$out" 2>&1; then
        echo "ok   cli/$(basename "$t")"; passed=$((passed + 1))
    else
        echo "FAIL cli/$(basename "$t")"; sed 's/^/  /' "$out"; failed=$((failed + 1))
    fi
done

if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]

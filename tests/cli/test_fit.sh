#!/bin/sh
# test_fit.sh: `knob fit` end to end: it writes its SVG and safetensors, the same seed gives
# byte-identical files, --json is one object with every model, a CSV is read, and bad input
# (malformed CSV, missing file, out-of-range flags) fails with one line and the right exit code
# while leaving earlier output intact. Run by tests/run.sh with $KNOB set.
. "$(dirname "$0")/../cli_lib.sh"

# expect CODE PATTERN ARGS...: exit CODE, first stderr line matching the shell PATTERN, one line
expect() {
    code=$1; pat=$2; shift 2
    "$KNOB" "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?
    first=$(head -n 1 "$tmp/err")
    [ "$rc" -eq "$code" ] || fail "knob $*: exit $rc, want $code ($first)"
    case $first in $pat) ;; *) fail "knob $*: stderr '$first' does not match '$pat'" ;; esac
    [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "knob $*: $(wc -l <"$tmp/err") lines on stderr, want 1"
}

"$KNOB" fit --epochs 200 --out "$tmp/a" >"$tmp/a.txt" 2>&1 || fail "fit exited $?: $(tail -n 1 "$tmp/a.txt")"
for f in fit.svg fit.safetensors; do [ -s "$tmp/a/$f" ] || fail "fit did not write $f"; done
grep -q '^line ' "$tmp/a.txt" && grep -q '^quadratic ' "$tmp/a.txt" && grep -q '^mlp ' "$tmp/a.txt" \
    || fail "fit's table lacks a model row"
grep -q 'slope' "$tmp/a.txt" || fail "fit does not print the line's knobs as it trains"
grep -q '<svg' "$tmp/a/fit.svg" && grep -q '</svg>' "$tmp/a/fit.svg" || fail "fit.svg is not a whole SVG"
[ "$(grep -c '<polyline' "$tmp/a/fit.svg")" -ge 7 ] || fail "fit.svg has too few curves"

"$KNOB" fit --epochs 200 --out "$tmp/b" >/dev/null 2>&1
cmp -s "$tmp/a/fit.svg" "$tmp/b/fit.svg" || fail "same seed, different fit.svg"
cmp -s "$tmp/a/fit.safetensors" "$tmp/b/fit.safetensors" || fail "same seed, different fit.safetensors"
"$KNOB" fit --epochs 200 --seed 7 --out "$tmp/c" >/dev/null 2>&1
cmp -s "$tmp/a/fit.safetensors" "$tmp/c/fit.safetensors" && fail "another seed, same fit.safetensors"

"$KNOB" inspect "$tmp/a/fit.safetensors" >"$tmp/i.txt" 2>&1 || fail "inspect of fit's output failed"
grep -q 'mlp.W2' "$tmp/i.txt" || fail "inspect does not list mlp.W2"

"$KNOB" fit --epochs 50 --json --out "$tmp/j" >"$tmp/j.txt" 2>"$tmp/j.err" || fail "fit --json exited $?"
[ "$(wc -l <"$tmp/j.txt")" -eq 1 ] || fail "fit --json printed $(wc -l <"$tmp/j.txt") lines, want 1"
for k in '"line":' '"quadratic":' '"mlp":' '"slope":' '"intercept":' '"heldout_rmse":' '"extrapolation_rmse":' '"train_loss":'; do
    grep -qF "$k" "$tmp/j.txt" || fail "fit --json lacks $k"
done
if [ -x /usr/bin/python3 ]; then
    /usr/bin/python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$tmp/j.txt" || fail "fit --json is not valid JSON"
fi

i=1; : >"$tmp/ok.csv"
while [ $i -le 12 ]; do echo "$i,$((3 * i + 2))" >>"$tmp/ok.csv"; i=$((i + 1)); done
"$KNOB" fit --csv "$tmp/ok.csv" --epochs 300 --out "$tmp/csv" >"$tmp/csv.txt" 2>&1 || fail "fit --csv exited $?"
grep -q '12 points' "$tmp/csv.txt" || fail "fit --csv did not read 12 points"

printf '1,2\n2,3\nthree,4\n' >"$tmp/bad.csv"
cp "$tmp/a/fit.svg" "$tmp/keep.svg"
expect 1 "knob: error: $tmp/bad.csv:3: expected two finite numbers*" fit --csv "$tmp/bad.csv" --out "$tmp/a"
cmp -s "$tmp/a/fit.svg" "$tmp/keep.svg" || fail "a failed fit changed the earlier fit.svg"
expect 1 "knob: error: $tmp/none.csv: cannot open*" fit --csv "$tmp/none.csv"
expect 2 "knob fit: error: --lr 0 is out of range*" fit --lr 0
expect 2 "knob fit: error: --loss 'l3' is not one of mse, mae*" fit --loss l3
expect 2 "knob fit: error: unknown flag '--epoch' (did you mean '--epochs'?)*" fit --epoch 3
expect 1 "knob: error: fit line: epoch *: loss is *; try a lower --lr" fit --optim sgd --lr 10 --out "$tmp/nan"
: >"$tmp/file"
expect 1 "knob: error: $tmp/file*" fit --epochs 10 --out "$tmp/file"
# --out "" is refused, not walked past its NUL (which created stray folders named after stack bytes)
expect 2 "knob: error: --out: directory name is empty" fit --epochs 10 --out ""
# a CSV split that leaves too few points: the reason survives behind the path
printf '1,2\n2,3\n3,4\n4,5\n5,6\n' >"$tmp/five.csv"
expect 2 "knob: error: $tmp/five.csv: fit: 4 points with 2 held out leaves 2 to train on*" \
    fit --csv "$tmp/five.csv" --holdout 0.5 --out "$tmp/five"

# --csv: the plot and the table name the file and speak of x and y, not of a falling ball in seconds
i=1; : >"$tmp/pts.csv"
while [ $i -le 12 ]; do echo "$i,$((i * i + 3))" >>"$tmp/pts.csv"; i=$((i + 1)); done
"$KNOB" fit --csv "$tmp/pts.csv" --epochs 20 --out "$tmp/csv" >"$tmp/csv.txt" 2>&1 || fail "fit --csv exited $?"
grep -q "pts.csv: measurements and three models" "$tmp/csv/fit.svg" || fail "fit --csv: the plot is not titled with the file"
grep -q "Falling ball" "$tmp/csv/fit.svg" && fail "fit --csv: the plot still says Falling ball"
grep -q '^model .*train loss  .*held-out RMSE  .*extrapolation RMSE$' "$tmp/csv.txt" || fail "fit --csv: table header: $(grep '^model' "$tmp/csv.txt")"
grep -q '(s)' "$tmp/csv.txt" && fail "fit --csv: the table gives seconds"

[ "$failures" -eq 0 ]

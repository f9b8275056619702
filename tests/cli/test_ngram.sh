#!/bin/sh
# test_ngram.sh: `knob ngram` on a hand corpus (two fortunes, "abab" and "abc", separated by a '%'
# line): probabilities counted by hand, samples reproducible for a seed, and the errors: a missing
# file, an empty corpus, an order out of range, an unknown level.
# Run by tests/run.sh with $KNOB set to the binary's absolute path.
. "$(dirname "$0")/../cli_lib.sh"

printf 'abab\n%%\nabc\n' >"$tmp/hand.txt"

# --- probabilities -------------------------------------------------------------------------------
# Documents "abab\n" and "abc\n" (the '%' line separates them; no n-gram spans the two):
#   letters a 3, b 3, \n 2, c 1 (9);  after "b": a, \n, c once each;  after "ab": a, \n, c once each
"$KNOB" ngram "$tmp/hand.txt" --n 3 --show-probs ab >"$tmp/out" 2>"$tmp/err" || fail "show-probs: exit $? ($(head -n 1 "$tmp/err"))"
grep -q '9 letters (4 distinct)' "$tmp/out" || fail "show-probs: corpus line lacks '9 letters (4 distinct)'"
grep -q '^n = 1 (no context: unit frequencies), context seen 9 times:' "$tmp/out" || fail "show-probs: n = 1 header"
grep -q '^  a  *0\.3333  (3)$' "$tmp/out" || fail "show-probs: P(a) = 3/9 missing"
grep -q '^  c  *0\.1111  (1)$' "$tmp/out" || fail "show-probs: P(c) = 1/9 missing"
grep -q '^n = 3, context seen 3 times:' "$tmp/out" || fail "show-probs: 'ab' seen 3 times at n = 3"
[ "$(grep -c '0\.3333  (1)$' "$tmp/out")" -eq 6 ] || fail "show-probs: want 3 continuations at 1/3 for n = 2 and n = 3"
"$KNOB" ngram "$tmp/hand.txt" --n 2 --show-probs q >"$tmp/out" 2>&1 || fail "show-probs unseen: exit $?"
grep -q '^n = 2 (no context: unit frequencies, backed off)' "$tmp/out" || fail "show-probs: an unseen context does not say it backed off"

# --- samples: one per order, reproducible --------------------------------------------------------
"$KNOB" ngram "$tmp/hand.txt" --n 3 --seed 5 >"$tmp/s1" 2>"$tmp/err" || fail "sample: exit $?"
"$KNOB" ngram "$tmp/hand.txt" --n 3 --seed 5 >"$tmp/s2" 2>&1 || fail "sample again: exit $?"
"$KNOB" ngram "$tmp/hand.txt" --n 3 --seed 6 >"$tmp/s3" 2>&1 || fail "sample seed 6: exit $?"
[ -s "$tmp/err" ] && fail "sample: wrote to stderr"
for n in 1 2 3; do grep -q "^n = $n " "$tmp/s1" || fail "sample: no section for n = $n"; done
# the first line says how long the counting took ("counted ... in 0.00 s"), which varies with the
# machine's load: compare what follows it
tail -n +2 "$tmp/s1" >"$tmp/t1"; tail -n +2 "$tmp/s2" >"$tmp/t2"; tail -n +2 "$tmp/s3" >"$tmp/t3"
grep -q "counted 1- to 3-grams in" "$tmp/s1" || fail "sample: the first line is not the counting summary"
cmp -s "$tmp/t1" "$tmp/t2" || fail "sample: same seed gave different text"
cmp -s "$tmp/t1" "$tmp/t3" && fail "sample: seeds 5 and 6 gave the same text"
# order 2 never follows 'a' with anything but 'b' (sample lines are indented by 4 spaces)
sed -n '/^n = 2 /,/^n = 3 /p' "$tmp/s1" | grep '^    ' | grep -q 'a[^b]' && fail "sample: n = 2 put something other than b after a"
"$KNOB" ngram "$tmp/hand.txt" --n 2 --only --level word >"$tmp/out" 2>&1 || fail "word level: exit $?"
grep -q '^n = 1 ' "$tmp/out" && fail "--only still printed n = 1"
grep -q '^n = 2 ' "$tmp/out" || fail "--only: no n = 2 section"

# --- errors: exit status and one line naming the problem ----------------------------------------
# expect CODE WANT ARGS...: exit CODE, the first stderr line contains WANT, nothing more on stderr
expect() {
    code=$1; want=$2; shift 2
    "$KNOB" ngram "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?
    first=$(head -n 1 "$tmp/err")
    [ "$rc" -eq "$code" ] || fail "ngram $*: exit $rc, want $code ($first)"
    case $first in *"$want"*) ;; *) fail "ngram $*: stderr '$first' lacks '$want'" ;; esac
    [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "ngram $*: stderr has $(wc -l <"$tmp/err") lines, want 1"
}
expect 1 "$tmp/missing.txt: cannot open" "$tmp/missing.txt"
: >"$tmp/empty.txt"
expect 2 "no letters to count" "$tmp/empty.txt"
printf '  \n%%\n\n' >"$tmp/blank.txt"
expect 2 "no words to count" "$tmp/blank.txt" --level word
expect 2 "--n" "$tmp/hand.txt" --n 7
expect 2 "--level" "$tmp/hand.txt" --level syllable
expect 2 "unknown flag" "$tmp/hand.txt" --nn 3

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all checks passed"

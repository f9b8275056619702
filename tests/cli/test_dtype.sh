#!/bin/sh
# test_dtype.sh: --dtype f32|bf16|int8 on generate, score and chat. The tests/data/gpt_tiny fixture
# (with a char tokenizer stored) scores a text with its weights converted to bf16 and to int8: the
# mean per-token NLL stays within 0.005 (bf16) and 0.02 (int8) nats of f32's (measured: 0.0006 and
# 0.004), yet differs from it (the conversion happened); generate --json names the dtype and the
# kernel; a dtype knob does not know is a usage error (exit 2, one line).
# Run by tests/run.sh (from the repository root) with $KNOB set.
. "$(dirname "$0")/../cli_lib.sh"

chars='char:"\n !,.?ABCDEFGHIJKLMNOPabcdefghijklmnopqrstuvwxyz"'
"$KNOB" convert tests/data/gpt_tiny "$tmp/tiny.safetensors" --tokenizer "$chars" >"$tmp/out" 2>&1 ||
    fail "convert --tokenizer: $(cat "$tmp/out")"
M="$tmp/tiny.safetensors"
printf 'hello there, a bird sat on a hill. Good day!\nNo more. And then the sun came up over the fields.\n' >"$tmp/text.txt"

loss() {   # loss DTYPE: the mean NLL of score --json
    "$KNOB" score "$M" "$tmp/text.txt" --json --dtype "$1" >"$tmp/s_$1.json" 2>&1 ||
        { fail "score --dtype $1 exited $?: $(cat "$tmp/s_$1.json")"; echo nan; return; }
    grep -q "\"dtype\":\"$1\"" "$tmp/s_$1.json" || fail "score --json does not name dtype $1: $(cat "$tmp/s_$1.json")"
    sed -E 's/.*"loss":([-0-9.e]+).*/\1/' "$tmp/s_$1.json"
}
f32=$(loss f32)
for d in bf16:0.005 int8:0.02; do
    name=${d%%:*} tol=${d#*:}
    got=$(loss "$name")
    awk -v a="$f32" -v b="$got" -v t="$tol" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t && a != b) }' ||
        fail "score --dtype $name: loss $got against f32's $f32 (want within $tol, and not identical)"
done

"$KNOB" score "$M" "$tmp/text.txt" --dtype int8 >"$tmp/s.txt" 2>&1 || fail "score --dtype int8 (text) exited $?"
grep -q "(int8 weights)" "$tmp/s.txt" || fail "score does not say the weights are int8: $(cat "$tmp/s.txt")"

for d in f32 bf16 int8; do
    "$KNOB" generate "$M" --prompt "hi " --max-tokens 8 --temperature 0 --json --dtype "$d" >"$tmp/g.json" 2>&1 ||
        fail "generate --dtype $d exited $?: $(cat "$tmp/g.json")"
    grep -q "\"dtype\":\"$d\",\"kernel\":\"$d\|\"dtype\":\"$d\",\"kernel\":\"q8" "$tmp/g.json" ||
        fail "generate --json --dtype $d: no dtype and kernel: $(cat "$tmp/g.json")"
    grep -q '"tokens":8,' "$tmp/g.json" || fail "generate --dtype $d: not 8 tokens: $(cat "$tmp/g.json")"
done

printf 'hello\nhow are you?\n' | "$KNOB" chat "$M" --dtype bf16 --max-tokens 6 --user 'A, ' --bot 'B, ' >"$tmp/c.txt" 2>&1 ||
    fail "chat --dtype bf16 exited $?: $(cat "$tmp/c.txt")"
[ "$(grep -c '^B, ' "$tmp/c.txt")" -eq 2 ] || fail "chat --dtype bf16: not two replies: $(cat "$tmp/c.txt")"

"$KNOB" generate "$M" --dtype fp16 >"$tmp/out" 2>"$tmp/err"; rc=$?
[ "$rc" -eq 2 ] || fail "generate --dtype fp16: exit $rc, want 2"
[ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "fp16" "$tmp/err" && grep -q "int8" "$tmp/err" ||
    fail "generate --dtype fp16: unclear message: $(cat "$tmp/err")"

[ "$failures" -eq 0 ]

#!/bin/sh
# test_lm.sh: the commands over knob_lm, end to end: generate --json reports the prompt's and the
# generation's speeds apart; the tests/data/gpt_tiny fixture (vocabulary 50, no tokenizer stored,
# so read as GPT-2's 50257) fails with one line that says how to fix it, and works once a fitting
# tokenizer is stored with knob convert --tokenizer; next shows pieces escaped ('\n'); attention
# prints its table; embed names GPT-2's tokenizer "gpt2" (when data/gpt2 is there).
# Run by tests/run.sh (from the repository root) with $KNOB set.
. "$(dirname "$0")/../cli_lib.sh"

tiny=tests/data/gpt_tiny
"$KNOB" generate "$tiny" --prompt hi >"$tmp/out" 2>"$tmp/err"; rc=$?
[ "$rc" -eq 1 ] || fail "generate on gpt_tiny: exit $rc, want 1"
[ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "generate on gpt_tiny: $(wc -l <"$tmp/err") lines on stderr"
grep -q "its tokenizer (gpt2) has 50257 ids but the model's vocabulary only 50; store one that fits with knob convert" \
    "$tmp/err" || fail "generate on gpt_tiny: unclear message: $(cat "$tmp/err")"

chars='char:"\n !,.?ABCDEFGHIJKLMNOPabcdefghijklmnopqrstuvwxyz"'
"$KNOB" convert "$tiny" "$tmp/tiny.safetensors" --tokenizer "$chars" >"$tmp/out" 2>&1 || fail "convert --tokenizer: $(cat "$tmp/out")"
M="$tmp/tiny.safetensors"
"$KNOB" generate "$M" --prompt "hi " --max-tokens 12 --temperature 0 >"$tmp/g.txt" 2>&1 || fail "generate exited $?: $(cat "$tmp/g.txt")"
head -c 3 "$tmp/g.txt" | grep -q '^hi ' || fail "generate does not start with the prompt"
"$KNOB" generate "$M" --prompt "hello there" --max-tokens 8 --json >"$tmp/j.txt" 2>&1 || fail "generate --json exited $?"
grep -q '"prompt_tokens":11,' "$tmp/j.txt" || fail "generate --json: prompt_tokens: $(cat "$tmp/j.txt")"
grep -q '"prompt_tokens_per_s":[0-9][0-9.]*,"tokens_per_s":[0-9][0-9.]*}$' "$tmp/j.txt" \
    || fail "generate --json lacks prompt_tokens_per_s and tokens_per_s: $(cat "$tmp/j.txt")"
if [ -x /usr/bin/python3 ]; then
    /usr/bin/python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$tmp/j.txt" || fail "generate --json is not JSON"
fi
"$KNOB" next "$M" "hello" --top 50 >"$tmp/n.txt" 2>&1 || fail "next exited $?"
grep -q "^ *[0-9]*  '\\\\n' " "$tmp/n.txt" || fail "next: no '\\n' piece among the 48: $(cat "$tmp/n.txt")"
grep -q "^ *[0-9]*  ' ' " "$tmp/n.txt" || fail "next: no ' ' piece"
"$KNOB" attention "$M" "hi there" --out "$tmp/att" >"$tmp/a.txt" 2>&1 || fail "attention exited $?: $(cat "$tmp/a.txt")"
grep -q '^hi there: 8 tokens: h i .* t h e r e$' "$tmp/a.txt" || fail "attention: token line: $(head -n 1 "$tmp/a.txt")"
[ "$(grep -c '^ *[01] *[01]  ' "$tmp/a.txt")" -eq 4 ] || fail "attention: want 4 layer/head rows"
[ -s "$tmp/att/attention.svg" ] || fail "attention wrote no attention.svg"
"$KNOB" embed "$M" hi --top 3 --out "$tmp/emb" >"$tmp/e.txt" 2>&1 || fail "embed exited $?: $(cat "$tmp/e.txt")"
grep -q "tokenizer char (48 ids)" "$tmp/e.txt" || fail "embed: tokenizer name: $(head -n 1 "$tmp/e.txt")"

# GPT-2's tokenizer: a model of its vocabulary, trained for one step
data=${KNOB_DATA:-data}
if [ -f "$data/gpt2/encoder.json" ]; then
    mkdir -p "$tmp/c"
    printf 'the cat sat on the mat.\n%.0s' 1 2 3 4 5 6 7 8 >"$tmp/c/a.txt"
    "$KNOB" train-gpt "$tmp/c" --tokenizer gpt2 --layers 1 --heads 1 --embd 8 --block 8 --batch 1 --steps 1 \
        --eval-every 1 --eval-batches 1 --out "$tmp/g2" >"$tmp/t.txt" 2>&1 || fail "train-gpt gpt2: $(tail -n 1 "$tmp/t.txt")"
    "$KNOB" embed "$tmp/g2/gpt.safetensors" cat --top 2 --out "$tmp/emb2" >"$tmp/e2.txt" 2>&1 || fail "embed gpt2 exited $?"
    grep -q "tokenizer gpt2 (50257 ids)" "$tmp/e2.txt" || fail "embed: GPT-2's tokenizer not named gpt2: $(head -n 1 "$tmp/e2.txt")"
fi
[ "$failures" -eq 0 ]

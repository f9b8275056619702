#!/bin/sh
# test_gpt.sh: `knob train-gpt`, `generate`, `score`, `next` and `chat` end to end on a tiny model
# and a small generated corpus: the files appear, a run stopped and resumed ends with the same bytes
# as an uninterrupted one, greedy generation repeats, --json is valid, a chat can be piped, and bad
# input (unknown tokenizer, empty corpus, missing model, a context too small) fails with one line.
# Run by tests/run.sh with $KNOB set.
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

json_ok() {
    [ -x /usr/bin/python3 ] || return 0
    /usr/bin/python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$1" || fail "$2 is not valid JSON"
}

mkdir -p "$tmp/corpus"
i=0
while [ $i -lt 40 ]; do
    echo "the cat sat on the mat. the dog sat on the log. a bird sang on a branch." >>"$tmp/corpus/a.txt"
    printf 'You: hello\nBot: the cat sat.\n' >>"$tmp/corpus/a.txt"
    i=$((i + 1))
done
echo "index" >"$tmp/corpus/a.dat"
TINY="--layers 1 --heads 2 --embd 16 --block 16 --batch 4 --eval-every 5 --eval-batches 2 --log-every 5"

# train, then the same run stopped after 6 steps and resumed: the same final checkpoint
"$KNOB" train-gpt "$tmp/corpus" $TINY --steps 12 --ckpt-every 4 --out "$tmp/a" >"$tmp/a.txt" 2>&1 \
    || fail "train-gpt exited $?: $(tail -n 1 "$tmp/a.txt")"
for f in gpt.safetensors loss.svg tokens.bin; do [ -s "$tmp/a/$f" ] || fail "train-gpt did not write $f"; done
grep -q 'val loss' "$tmp/a.txt" || fail "train-gpt printed no validation loss"
grep -q '1 file,' "$tmp/a.txt" || fail "train-gpt did not skip the .dat file: $(head -n 1 "$tmp/a.txt")"
grep -q '<polyline' "$tmp/a/loss.svg" || fail "loss.svg has no curve"
"$KNOB" train-gpt "$tmp/corpus" $TINY --steps 12 --stop-after 6 --out "$tmp/b" >"$tmp/b.txt" 2>&1 \
    || fail "train-gpt --stop-after exited $?: $(tail -n 1 "$tmp/b.txt")"
"$KNOB" train-gpt "$tmp/corpus" --resume "$tmp/b/gpt.safetensors" --out "$tmp/b" --eval-every 5 --eval-batches 2 \
    >"$tmp/r.txt" 2>&1 || fail "train-gpt --resume exited $?: $(tail -n 1 "$tmp/r.txt")"
grep -q 'Resuming .* at step 6 of 12' "$tmp/r.txt" || fail "resume did not start at step 6: $(grep -i resum "$tmp/r.txt")"
grep -q 'read from' "$tmp/r.txt" || fail "resume did not reuse the token cache"
cmp -s "$tmp/a/gpt.safetensors" "$tmp/b/gpt.safetensors" || fail "stopped + resumed run differs from one run"
# the token cache follows what the tokenizer does, not its name: a bpe:DIR retrained in place
i=0; while [ $i -lt 60 ]; do echo "alpha beta gamma delta $i"; i=$((i + 1)); done >"$tmp/c1.txt"
i=0; while [ $i -lt 60 ]; do echo "zulu yankee xray whiskey victor $i"; i=$((i + 1)); done >"$tmp/c2.txt"
"$KNOB" bpe train "$tmp/c1.txt" --vocab 270 --out "$tmp/bp" >/dev/null 2>&1 || fail "bpe train c1 failed"
"$KNOB" train-gpt "$tmp/c2.txt" $TINY --steps 2 --warmup 1 --tokenizer "bpe:$tmp/bp" --out "$tmp/bc" >"$tmp/bc1.txt" 2>&1 \
    || fail "train-gpt with bpe failed: $(tail -n 1 "$tmp/bc1.txt")"
"$KNOB" bpe train "$tmp/c2.txt" --vocab 270 --out "$tmp/bp" >/dev/null 2>&1 || fail "bpe train c2 failed"
"$KNOB" train-gpt "$tmp/c2.txt" $TINY --steps 2 --warmup 1 --tokenizer "bpe:$tmp/bp" --out "$tmp/bc" >"$tmp/bc2.txt" 2>&1 \
    || fail "train-gpt after retraining the bpe failed: $(tail -n 1 "$tmp/bc2.txt")"
grep -q 'read from' "$tmp/bc2.txt" && fail "the token cache of the old bpe:DIR was reused after it was retrained"
[ "$(grep -o -- '-> [0-9]* tokens' "$tmp/bc1.txt")" != "$(grep -o -- '-> [0-9]* tokens' "$tmp/bc2.txt")" ] \
    || fail "the retrained tokenizer gave the same token count: $(grep -o -- '-> [0-9]* tokens' "$tmp/bc2.txt")"

# the validation split is a setting of the run: a resume keeps it (and refuses another)
"$KNOB" train-gpt "$tmp/corpus" $TINY --steps 12 --val-frac 0.3 --out "$tmp/v1" >/dev/null 2>&1 || fail "--val-frac run failed"
"$KNOB" train-gpt "$tmp/corpus" $TINY --steps 12 --val-frac 0.3 --stop-after 6 --out "$tmp/v2" >/dev/null 2>&1 \
    || fail "--val-frac --stop-after run failed"
"$KNOB" train-gpt --resume "$tmp/v2/gpt.safetensors" --out "$tmp/v2" --eval-every 5 --eval-batches 2 >/dev/null 2>&1 \
    || fail "resume of a --val-frac 0.3 run failed"
cmp -s "$tmp/v1/gpt.safetensors" "$tmp/v2/gpt.safetensors" || fail "a resume without --val-frac split the corpus anew"
"$KNOB" train-gpt --resume "$tmp/v2/gpt.safetensors" --out "$tmp/v2" --val-frac 0.1 >/dev/null 2>"$tmp/vf.err"
[ $? -eq 2 ] && grep -q -- '--val-frac is set by the --resume file' "$tmp/vf.err" || fail "--val-frac on resume: $(cat "$tmp/vf.err")"

"$KNOB" train-gpt "$tmp/corpus" $TINY --steps 3 --json --out "$tmp/j" >"$tmp/j.txt" 2>&1 || fail "train-gpt --json exited $?"
[ "$(wc -l <"$tmp/j.txt")" -eq 1 ] || fail "train-gpt --json printed $(wc -l <"$tmp/j.txt") lines"
json_ok "$tmp/j.txt" "train-gpt --json"
grep -q '"val_loss":' "$tmp/j.txt" || fail "train-gpt --json lacks val_loss"

M="$tmp/a/gpt.safetensors"
"$KNOB" inspect "$M" >"$tmp/i.txt" 2>&1 || fail "inspect of the checkpoint failed"
grep -q 'h.0.attn.c_attn.weight' "$tmp/i.txt" || fail "checkpoint lacks h.0.attn.c_attn.weight"
grep -q 'optim.m.wte.weight' "$tmp/i.txt" || fail "checkpoint lacks optimizer state"

# generation: greedy repeats; a seed repeats; --json; --stop
"$KNOB" generate "$M" --prompt "the " --temperature 0 --max-tokens 20 >"$tmp/g1.txt" 2>&1 || fail "generate exited $?"
"$KNOB" generate "$M" --prompt "the " --temperature 0 --max-tokens 20 >"$tmp/g2.txt" 2>&1
cmp -s "$tmp/g1.txt" "$tmp/g2.txt" || fail "greedy generation differs between runs"
head -c 4 "$tmp/g1.txt" | grep -q '^the ' || fail "generate does not start with the prompt"
"$KNOB" generate "$M" --prompt "the " --seed 3 --max-tokens 30 --json >"$tmp/gj.txt" 2>&1 || fail "generate --json exited $?"
json_ok "$tmp/gj.txt" "generate --json"
grep -q '"tokens":30' "$tmp/gj.txt" || fail "generate --json did not make 30 tokens: $(cat "$tmp/gj.txt")"
"$KNOB" generate "$M" --prompt "the " --seed 3 --max-tokens 200 --stop "." --json >"$tmp/gs.txt" 2>&1
grep -q '"finish":"stop"' "$tmp/gs.txt" && ! grep -q '"text":"[^"]*\.' "$tmp/gs.txt" \
    || fail "--stop did not stop before '.': $(cat "$tmp/gs.txt")"
# a prompt longer than the context (16): the model sees its end, with a note
long=$(printf 'the cat sat on the mat. %.0s' 1 2 3 4 5)
"$KNOB" generate "$M" --prompt "$long" --max-tokens 5 >"$tmp/gl.txt" 2>"$tmp/gl.err" || fail "long prompt exited $?"
grep -q 'note: the text has .* tokens; the model sees the last 16' "$tmp/gl.err" || fail "long prompt: no note"

"$KNOB" score "$M" "$tmp/corpus/a.txt" --json >"$tmp/s.txt" 2>&1 || fail "score exited $?"
json_ok "$tmp/s.txt" "score --json"
grep -q '"perplexity":' "$tmp/s.txt" || fail "score lacks perplexity"
"$KNOB" next "$M" "the c" --top 3 >"$tmp/n.txt" 2>&1 || fail "next exited $?"
grep -q 'T=0.5' "$tmp/n.txt" && [ "$(grep -c "^   [123]  '" "$tmp/n.txt")" -eq 3 ] || fail "next: bad table: $(cat "$tmp/n.txt")"
printf 'hello\nthe cat\n/reset\nsat\n' | "$KNOB" chat "$M" --max-tokens 6 >"$tmp/c.txt" 2>&1 || fail "chat exited $?"
[ "$(grep -c '^Bot: ' "$tmp/c.txt")" -eq 3 ] || fail "chat: want 3 replies: $(cat "$tmp/c.txt")"
grep -q '(forgotten)' "$tmp/c.txt" || fail "chat: /reset not acknowledged"
# many turns through a 16-token context: the oldest are dropped, the chat goes on
i=0; : >"$tmp/turns"
while [ $i -lt 12 ]; do echo "the dog sat" >>"$tmp/turns"; i=$((i + 1)); done
"$KNOB" chat "$M" --max-tokens 3 <"$tmp/turns" >"$tmp/c2.txt" 2>&1 || fail "long chat exited $?: $(tail -n 1 "$tmp/c2.txt")"
[ "$(grep -c '^Bot: ' "$tmp/c2.txt")" -eq 12 ] || fail "long chat: want 12 replies"

# a character the model never saw: chat notes it and goes on; score names the file
printf 'hello\nzebra \342\202\254\nthe cat\n' | "$KNOB" chat "$M" --max-tokens 4 >"$tmp/c3.txt" 2>"$tmp/c3.err" \
    || fail "chat stopped at an unknown character"
[ "$(grep -c '^Bot: ' "$tmp/c3.txt")" -eq 2 ] || fail "chat: want 2 replies around the ignored line"
grep -q 'note: .*line ignored' "$tmp/c3.err" || fail "chat: no note for the ignored line"
printf 'the \342\202\254\n' >"$tmp/euro.txt"
expect 1 "knob: error: $tmp/euro.txt: char tokenizer: character*" score "$M" "$tmp/euro.txt"

# errors
expect 2 "knob train-gpt: error: --tokenizer: unknown tokenizer 'words'*" train-gpt "$tmp/corpus" --tokenizer words --out "$tmp/e"
: >"$tmp/empty.txt"
expect 1 "knob: error: $tmp/empty.txt: the corpus is empty" train-gpt "$tmp/empty.txt" --out "$tmp/e"
mkdir -p "$tmp/nothing"
expect 1 "knob: error: $tmp/nothing: no text files in the corpus" train-gpt "$tmp/nothing" --out "$tmp/e"
expect 2 "knob train-gpt: error: --embd 20 is not a multiple of --heads 3" train-gpt "$tmp/corpus" --embd 20 --heads 3
expect 1 "knob: error: $tmp/none.safetensors: cannot open*" generate "$tmp/none.safetensors" --prompt hi
expect 1 "knob: error: *corpus/a.txt*" generate "$tmp/corpus/a.txt" --prompt hi
expect 2 "knob chat: error: --max-tokens 16 leaves no room*" chat "$M" --max-tokens 16
expect 2 "knob generate: error: --top-p 0 is out of range*" generate "$M" --top-p 0
expect 1 "knob: error: $tmp/corpus/a.txt: *" train-gpt "$tmp/corpus" --resume "$tmp/corpus/a.txt" --out "$tmp/e"
expect 2 "knob train-gpt: error: --lr-min 0.1 is above --lr 0.01" train-gpt "$tmp/corpus" --lr 0.01 --lr-min 0.1
# --time-limit with fewer steps than --warmup: the warm-up keeps its share of the planned run, said once
"$KNOB" train-gpt "$tmp/corpus" $TINY --steps 100000 --warmup 50000 --time-limit 1 --out "$tmp/tl" >"$tmp/tl.txt" 2>&1 \
    || fail "train-gpt --time-limit exited $?: $(tail -n 1 "$tmp/tl.txt")"
note=$(grep '^Time limit 1 s: ' "$tmp/tl.txt")
fit=$(echo "$note" | sed -n 's/.*so about \([0-9]*\) steps.*/\1/p')
wu=$(echo "$note" | sed -n 's/.*warm-up scaled from 50000 to \([0-9]*\) step.*/\1/p')
[ -n "$fit" ] && [ -n "$wu" ] && [ $((wu * 2)) -le "$fit" ] && [ $((wu * 2 + 2)) -ge "$fit" ] \
    || fail "time-limit note does not scale the warm-up to half the run: '$note'"
# on a terminal the note is a line of its own, not written into the progress line
if command -v script >/dev/null 2>&1; then
    script -qec "'$KNOB' train-gpt '$tmp/corpus' $TINY --steps 100000 --time-limit 1 --out '$tmp/tty'" /dev/null \
        >"$tmp/tty.txt" 2>&1 || fail "train-gpt on a terminal exited $?"
    tr '\r' '\n' <"$tmp/tty.txt" | grep -a -q 'Time limit 1 s' || fail "no time-limit note on a terminal"
    tr '\r' '\n' <"$tmp/tty.txt" | grep -a -q 'ETA.*Time limit' && fail "the time-limit note was printed into the progress line"
else
    echo "SKIP terminal note: no script(1)"
fi
# the summary names the tokenizer as it is stored (gpt2), not by its kind (bpe)
GPT2="$(dirname "$0")/../../data/gpt2"
if [ -f "$GPT2/encoder.json" ]; then
    "$KNOB" train-gpt "$tmp/corpus" --tokenizer gpt2 --layers 1 --heads 2 --embd 8 --block 8 --batch 2 --steps 1 \
        --out "$tmp/g2" >"$tmp/g2.txt" 2>&1 || fail "train-gpt --tokenizer gpt2 exited $?: $(tail -n 1 "$tmp/g2.txt")"
    grep -q '(gpt2 tokenizer, 50257 ids' "$tmp/g2.txt" || fail "summary: $(head -n 1 "$tmp/g2.txt")"
    grep -q 'Trained 1 step (' "$tmp/g2.txt" || fail "singular step: $(grep Trained "$tmp/g2.txt")"
    grep -q 'Model: 1 layer, 2 heads' "$tmp/g2.txt" || fail "singular layer: $(grep Model "$tmp/g2.txt")"
else
    echo "SKIP gpt2 tokenizer summary: data/gpt2 not found"
fi
[ "$failures" -eq 0 ]

#!/bin/sh
# test_checkpoint_compat.sh: checkpoints written by knob before the one checkpoint
# (tests/data/old_checkpoints, see its README) still work from the command line: the fit file
# inspects, the CNN evaluates on the same generated data, the GPT generates, and the GPT resumed by
# the new code equals, tensor for tensor (parameters and AdamW moments), what the old code wrote
# when it resumed it. The C side (fit predictions, the CNN resume) is tests/test_checkpoint_compat.c.
. "$(dirname "$0")/../cli_lib.sh"
OLD="$(cd "$(dirname "$0")/../data/old_checkpoints" && pwd)"

# data_bytes FILE: the safetensors data section (everything after the 8-byte length and the header)
data_bytes() {
    n=$(od -An -tu8 -N8 "$1" | tr -d ' ')
    tail -c +$((9 + n)) "$1"
}

"$KNOB" inspect "$OLD/fit.safetensors" >"$tmp/fit.txt" 2>&1 || fail "inspect of the old fit file failed"
grep -q 'mlp.W1' "$tmp/fit.txt" || fail "old fit file lacks mlp.W1"

# the CNN on the README's 8x8 three-class set
on='\377\377\377\377'; off='\000\000\000\000'
img0=""; img1=""; img2=""
r=0
while [ $r -lt 8 ]; do
    img0="$img0$on$off"; img1="$img1$off$on"
    if [ $r -lt 4 ]; then img2="$img2$on$on"; else img2="$img2$off$off"; fi
    r=$((r + 1))
done
oct() { printf '\\%03o' "$1"; }
be32() { printf "$(oct $(($1 >> 24 & 255)))$(oct $(($1 >> 16 & 255)))$(oct $(($1 >> 8 & 255)))$(oct $(($1 & 255)))"; }
idx_images() {
    { printf '\000\000\010\003'; be32 "$2"; be32 8; be32 8
      i=0; while [ $i -lt "$2" ]; do case $((i % 3)) in 0) printf "$img0" ;; 1) printf "$img1" ;; 2) printf "$img2" ;; esac; i=$((i + 1)); done
    } >"$1"
}
idx_labels() {
    { printf '\000\000\010\001'; be32 "$2"
      i=0; while [ $i -lt "$2" ]; do printf "$(oct $((i % 3)))"; i=$((i + 1)); done
    } >"$1"
}
mkdir -p "$tmp/d"
idx_images "$tmp/d/train-images-idx3-ubyte" 60; idx_labels "$tmp/d/train-labels-idx1-ubyte" 60
idx_images "$tmp/d/t10k-images-idx3-ubyte" 15; idx_labels "$tmp/d/t10k-labels-idx1-ubyte" 15
for f in cnn cnn-resumed; do
    "$KNOB" eval "$OLD/$f.safetensors" --dataset "idx:$tmp/d" >"$tmp/e.txt" 2>&1 || fail "eval of old $f failed: $(tail -n 1 "$tmp/e.txt")"
    grep -q 'test split: accuracy .*(.*/15)' "$tmp/e.txt" || fail "eval of old $f printed no accuracy"
done

# the GPT: generate, then resume to step 6 and compare with the old code's resumed file
printf 'the quick brown fox jumps over the lazy dog.\nhello world, hello knob.\n%.0s' $(seq 40) >"$tmp/corpus.txt"
"$KNOB" generate "$OLD/gpt.safetensors" --prompt "the " --temperature 0 --max-tokens 8 >"$tmp/g.txt" 2>&1 \
    || fail "generate from the old GPT checkpoint failed: $(tail -n 1 "$tmp/g.txt")"
expect_fail_line() { head -n 1 "$tmp/err"; }
"$KNOB" --threads 1 train-gpt --resume "$OLD/gpt.safetensors" --out "$tmp/nocorpus" >"$tmp/out" 2>"$tmp/err" \
    && fail "resuming an old checkpoint with no corpus named should fail"
grep -q 'records no corpus' "$tmp/err" || fail "no-corpus resume: $(expect_fail_line)"
[ -e "$tmp/nocorpus/tokens.bin" ] && fail "no-corpus resume wrote a token cache"
"$KNOB" --threads 1 train-gpt "$tmp/corpus.txt" --resume "$OLD/gpt.safetensors" --out "$tmp/g" >"$tmp/r.txt" 2>&1 \
    || fail "resume of the old GPT checkpoint failed: $(tail -n 1 "$tmp/r.txt")"
grep -q 'Resuming .* at step 3 of 6' "$tmp/r.txt" || fail "old GPT resume did not start at step 3"
data_bytes "$tmp/g/gpt.safetensors" >"$tmp/new.bin"
data_bytes "$OLD/gpt-resumed.safetensors" >"$tmp/old.bin"
[ -s "$tmp/old.bin" ] && cmp -s "$tmp/new.bin" "$tmp/old.bin" || fail "resumed GPT tensors differ from the old code's"
"$KNOB" inspect "$tmp/g/gpt.safetensors" >"$tmp/i.txt" 2>&1
grep -q 'knob.train' "$tmp/i.txt" && ! grep -q 'rng.data' "$tmp/i.txt" || fail "the new GPT checkpoint is not in the new encoding"

# the new checkpoint records its corpus: resuming with none uses it, with another text is an error
"$KNOB" --threads 1 train-gpt "$tmp/corpus.txt" --layers 1 --heads 2 --embd 8 --block 8 --batch 2 --steps 4 \
    --stop-after 2 --warmup 1 --eval-every 2 --out "$tmp/n" >"$tmp/n.txt" 2>&1 || fail "train-gpt failed: $(tail -n 1 "$tmp/n.txt")"
grep -q '(char tokenizer' "$tmp/n.txt" || fail "summary does not name the char tokenizer: $(head -n 1 "$tmp/n.txt")"
grep -q 'after 2 steps (' "$tmp/n.txt" || fail "no 'after 2 steps' line"
mkdir -p "$tmp/elsewhere" && cd "$tmp/elsewhere" || exit 1
"$KNOB" --threads 1 train-gpt --resume "$tmp/n/gpt.safetensors" --out "$tmp/n" --stop-after 1 >"$tmp/n2.txt" 2>&1 \
    || fail "resume without a corpus failed: $(tail -n 1 "$tmp/n2.txt")"
grep -q 'read from' "$tmp/n2.txt" || fail "resume without a corpus did not reuse the recorded corpus's tokens"
grep -q 'after 1 step (' "$tmp/n2.txt" || fail "no singular 'after 1 step' line: $(grep steps "$tmp/n2.txt")"
echo "something else entirely" >"$tmp/other.txt"
"$KNOB" train-gpt "$tmp/other.txt" --resume "$tmp/n/gpt.safetensors" --out "$tmp/n" >"$tmp/out" 2>"$tmp/err"; rc=$?
[ $rc -eq 2 ] || fail "resume on another corpus: exit $rc, want 2"
grep -q "was trained on .*corpus.txt, not on .*other.txt" "$tmp/err" || fail "other-corpus message: $(head -n 1 "$tmp/err")"
[ "$failures" -eq 0 ]

#!/bin/sh
# test_nonfinite.sh: runs that diverge for real. A deep ReLU MLP under SGD at lr 10 with momentum
# 0.99 overflows within the first epoch, and knob fit's line under SGD at lr 10 within 20 epochs.
# Without --skip-nonfinite: exit 1, one stderr line with the step and what went bad, and the
# checkpoint already in --out byte-identical. With it (train): the run ends, prints the count of
# skipped steps, and --json holds it (as valid JSON: nan means become null). train-gpt: the flag
# and the count in --json on a healthy run (the bad-step paths are tests/test_nonfinite.c's).
. "$(dirname "$0")/../cli_lib.sh"

mkdir -p "$tmp/d"
LC_ALL=C awk 'function be(x) { printf "%c%c%c%c", int(x / 16777216) % 256, int(x / 65536) % 256, int(x / 256) % 256, x % 256 }
    BEGIN { printf "%c%c%c%c", 0, 0, 8, 3; be(120); be(8); be(8)
            for (i = 0; i < 120; i++) for (p = 0; p < 64; p++) printf "%c", (i % 3 == 0 ? p % 8 < 4 : i % 3 == 1 ? p % 8 >= 4 : p < 32) ? 250 - (i + p) % 30 : (i * p) % 30 }' \
    >"$tmp/d/train-images-idx3-ubyte"
LC_ALL=C awk 'function be(x) { printf "%c%c%c%c", int(x / 16777216) % 256, int(x / 65536) % 256, int(x / 256) % 256, x % 256 }
    BEGIN { printf "%c%c%c%c", 0, 0, 8, 1; be(120); for (i = 0; i < 120; i++) printf "%c", i % 3 }' >"$tmp/d/train-labels-idx1-ubyte"
cp "$tmp/d/train-images-idx3-ubyte" "$tmp/d/t10k-images-idx3-ubyte"
cp "$tmp/d/train-labels-idx1-ubyte" "$tmp/d/t10k-labels-idx1-ubyte"
net="--threads 1 train --dataset idx:$tmp/d --val 24 --model mlp --hidden 64,64,64,64 --dropout 0 --epochs 2 --batch-size 8"

# ---- train: a good run leaves its checkpoints; a diverging one into the same files stops and keeps them
"$KNOB" $net --lr 0.01 --out "$tmp/t" >/dev/null 2>&1 || fail "the healthy train run failed"
cp "$tmp/t/idx-mlp.safetensors" "$tmp/last.before"
cp "$tmp/t/idx-mlp-best.safetensors" "$tmp/best.before"
"$KNOB" $net --optim sgd --lr 10 --momentum 0.99 --out "$tmp/t" >"$tmp/out" 2>"$tmp/err"; rc=$?
[ "$rc" -eq 1 ] || fail "a diverging train run exited $rc, want 1"
[ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "a diverging train run printed $(wc -l <"$tmp/err") lines on stderr"
case $(cat "$tmp/err") in
    "knob: error: epoch 1: step "*": loss is "*" (last finite "*" at step "*"); try a lower --lr") ;;
    "knob: error: epoch 1: step "*": gradient of '"*"' is not finite"*) ;;
    *) fail "diverging train: $(cat "$tmp/err")" ;;
esac
cmp -s "$tmp/t/idx-mlp.safetensors" "$tmp/last.before" || fail "diverging train changed the last checkpoint"
cmp -s "$tmp/t/idx-mlp-best.safetensors" "$tmp/best.before" || fail "diverging train changed the best checkpoint"

# ---- train --skip-nonfinite: the same run ends, counting its skipped steps
"$KNOB" $net --optim sgd --lr 10 --momentum 0.99 --skip-nonfinite --out "$tmp/s" >"$tmp/out" 2>"$tmp/err" \
    || fail "train --skip-nonfinite failed: $(head -n 1 "$tmp/err")"
n=$(sed -n 's/^\([0-9]*\) steps\{0,1\} skipped (loss or gradient not finite)$/\1/p' "$tmp/out")
[ -n "$n" ] && [ "$n" -gt 0 ] || fail "train --skip-nonfinite printed no count of skipped steps: $(grep skipped "$tmp/out")"
"$KNOB" $net --optim sgd --lr 10 --momentum 0.99 --skip-nonfinite --json --out "$tmp/s" >"$tmp/s.json" 2>"$tmp/err" \
    || fail "train --skip-nonfinite --json failed: $(head -n 1 "$tmp/err")"
grep -q "\"skipped_steps\":$n," "$tmp/s.json" || fail "train --json lacks \"skipped_steps\":$n"
if [ -x /usr/bin/python3 ]; then
    /usr/bin/python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$tmp/s.json" 2>/dev/null || fail "train --json with skips is not valid JSON"
fi
cmp -s "$tmp/s/idx-mlp.safetensors" "$tmp/t/idx-mlp.safetensors" && fail "the skipping run wrote the healthy run's bytes"
"$KNOB" $net --lr 0.01 --json --out "$tmp/h" >"$tmp/h.json" 2>&1 || fail "healthy train --json failed"
grep -q '"skipped_steps":0,' "$tmp/h.json" || fail "train --json lacks \"skipped_steps\":0"

# ---- fit: the line under SGD at lr 10
"$KNOB" fit --epochs 50 --out "$tmp/f" >/dev/null 2>&1 || fail "fit failed"
cp "$tmp/f/fit.safetensors" "$tmp/fit.before"
"$KNOB" fit --optim sgd --lr 10 --out "$tmp/f" >"$tmp/out" 2>"$tmp/err"; rc=$?
[ "$rc" -eq 1 ] || fail "a diverging fit exited $rc, want 1"
[ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "a diverging fit printed $(wc -l <"$tmp/err") lines on stderr"
case $(cat "$tmp/err") in
    "knob: error: fit line: epoch "*": step "*": loss is "*"; try a lower --lr") ;;
    *) fail "diverging fit: $(cat "$tmp/err")" ;;
esac
cmp -s "$tmp/f/fit.safetensors" "$tmp/fit.before" || fail "a diverging fit changed fit.safetensors"

# ---- train-gpt: the flag, and the count in the summary and --json
LC_ALL=C awk 'BEGIN { for (l = 0; l < 40; l++) print "a small corpus, line " l }' >"$tmp/c.txt"
g="--threads 1 train-gpt $tmp/c.txt --tokenizer char --layers 1 --heads 2 --embd 16 --block 16 --batch 2 --steps 10"
"$KNOB" $g --skip-nonfinite --out "$tmp/g" >"$tmp/out" 2>&1 || fail "train-gpt --skip-nonfinite failed: $(tail -n 1 "$tmp/out")"
grep -q '^0 steps skipped (loss or gradient not finite)\.$' "$tmp/out" || fail "train-gpt --skip-nonfinite printed no count"
"$KNOB" $g --skip-nonfinite --json --out "$tmp/g" >"$tmp/g.json" 2>&1 || fail "train-gpt --json failed"
grep -q '"skipped_steps":0,' "$tmp/g.json" || fail "train-gpt --json lacks \"skipped_steps\":0"
"$KNOB" help train-gpt | grep -q -- '--skip-nonfinite' || fail "knob help train-gpt does not list --skip-nonfinite"

[ "$failures" -eq 0 ]

#!/bin/sh
# test_train.sh: `knob train`, `knob eval` and `knob predict` end to end on a tiny generated IDX
# folder (8x8 images, three classes): the files a run writes, same seed -> same bytes, a run
# stopped and resumed -> the same checkpoint bytes as one straight through, eval and predict
# output, and one-line errors with the right exit code for corrupt IDX files (truncated, wrong
# magic, count mismatch), bad checkpoints (truncated, not a classifier, shapes that do not fit the
# model) and bad flags. Then one epoch on the real npm digits (skipped when absent).
. "$(dirname "$0")/../cli_lib.sh"

# expect CODE PATTERN ARGS...: exit CODE, the one stderr line matching the shell PATTERN
expect() {
    code=$1; pat=$2; shift 2
    "$KNOB" "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?
    first=$(head -n 1 "$tmp/err")
    [ "$rc" -eq "$code" ] || fail "knob $*: exit $rc, want $code ($first)"
    case $first in $pat) ;; *) fail "knob $*: stderr '$first' does not match '$pat'" ;; esac
    [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "knob $*: $(wc -l <"$tmp/err") lines on stderr, want 1"
}

# bytes as printf octal escapes
oct() { printf '\\%03o' "$1"; }
be32() { printf "$(oct $(($1 >> 24 & 255)))$(oct $(($1 >> 16 & 255)))$(oct $(($1 >> 8 & 255)))$(oct $(($1 & 255)))"; }
on='\377\377\377\377'; off='\000\000\000\000'
img0=""; img1=""; img2=""
r=0
while [ $r -lt 8 ]; do
    img0="$img0$on$off"; img1="$img1$off$on"   # left / right half bright
    if [ $r -lt 4 ]; then img2="$img2$on$on"; else img2="$img2$off$off"; fi   # top half bright
    r=$((r + 1))
done
# idx_images FILE N [NLABELS]: N 8x8 images cycling through the three classes
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
mkidx() {
    mkdir -p "$1"
    idx_images "$1/train-images-idx3-ubyte" 60; idx_labels "$1/train-labels-idx1-ubyte" 60
    idx_images "$1/t10k-images-idx3-ubyte" 15; idx_labels "$1/t10k-labels-idx1-ubyte" 15
}
mkidx "$tmp/d"
[ "$(wc -c <"$tmp/d/train-images-idx3-ubyte")" -eq $((16 + 60 * 64)) ] || fail "generated IDX has the wrong size"

# ---- a run and its files
"$KNOB" --threads 2 train --dataset "idx:$tmp/d" --val 12 --model mlp --hidden 16 --epochs 3 --batch-size 8 --lr 0.01 \
    --out "$tmp/a" >"$tmp/a.txt" 2>&1 || fail "train exited $?: $(tail -n 1 "$tmp/a.txt")"
for f in idx-mlp.safetensors idx-mlp-best.safetensors idx-mlp-curves.svg idx-mlp-filters.png idx-mlp-errors.png; do
    [ -s "$tmp/a/$f" ] || fail "train did not write $f"
done
grep -q '^epoch   3/3  train loss' "$tmp/a.txt" || fail "train printed no line for epoch 3"
grep -q '^test accuracy: best model' "$tmp/a.txt" || fail "train printed no test accuracy"
grep -q '<svg' "$tmp/a/idx-mlp-curves.svg" && grep -q '</svg>' "$tmp/a/idx-mlp-curves.svg" || fail "curves are not a whole SVG"
[ "$(head -c 8 "$tmp/a/idx-mlp-filters.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "filters.png is not a PNG"
"$KNOB" inspect "$tmp/a/idx-mlp.safetensors" >"$tmp/i.txt" 2>&1 || fail "inspect of a checkpoint failed"
grep -q 'optim.v.fc1.weight' "$tmp/i.txt" && grep -q 'classifier.config' "$tmp/i.txt" || fail "checkpoint lacks optimizer state or format"

"$KNOB" --threads 2 train --dataset "idx:$tmp/d" --val 12 --hidden 16 --epochs 2 --batch-size 8 --json --out "$tmp/j" \
    >"$tmp/j.txt" 2>"$tmp/j.err" || fail "train --json failed: $(cat "$tmp/j.err")"
[ "$(wc -l <"$tmp/j.txt")" -eq 1 ] || fail "train --json printed $(wc -l <"$tmp/j.txt") lines, want 1"
for k in '"history":[{"epoch":1,' '"test":{"n":15,' '"best_epoch":' '"files":{"last":'; do
    grep -qF "$k" "$tmp/j.txt" || fail "train --json lacks $k"
done
"$KNOB" help train | grep -q -- '--patience N' || fail "knob help train does not list --patience"

# ---- same seed, same bytes; resume == straight through (CNN, dropout, shift augmentation)
cnn="--threads 2 train --dataset idx:$tmp/d --val 12 --model cnn --conv 4,6 --hidden 8 --epochs 4 --batch-size 8 --lr 0.01 --shift 1 --noise 0.05"
"$KNOB" $cnn --out "$tmp/s1" >/dev/null 2>&1 || fail "cnn train failed"
"$KNOB" $cnn --out "$tmp/s2" >/dev/null 2>&1 || fail "cnn train failed"
[ -s "$tmp/s1/idx-cnn-features.png" ] || fail "cnn train did not write features.png"
cmp -s "$tmp/s1/idx-cnn.safetensors" "$tmp/s2/idx-cnn.safetensors" || fail "same seed, different checkpoints"
"$KNOB" $cnn --stop-after 2 --out "$tmp/r" >"$tmp/r1.txt" 2>&1 || fail "train --stop-after failed"
cmp -s "$tmp/s1/idx-cnn.safetensors" "$tmp/r/idx-cnn.safetensors" && fail "a 2-epoch checkpoint equals the 4-epoch one"
"$KNOB" --threads 2 train --resume "$tmp/r/idx-cnn.safetensors" --out "$tmp/r" >"$tmp/r2.txt" 2>&1 \
    || fail "train --resume failed: $(tail -n 1 "$tmp/r2.txt")"
grep -q '^epoch   3/4' "$tmp/r2.txt" && ! grep -q '^epoch   1/4' "$tmp/r2.txt" || fail "resume did not continue at epoch 3"
cmp -s "$tmp/s1/idx-cnn.safetensors" "$tmp/r/idx-cnn.safetensors" || fail "resumed run differs from the straight run"
cmp -s "$tmp/s1/idx-cnn-best.safetensors" "$tmp/r/idx-cnn-best.safetensors" || fail "resumed best differs"
expect 2 "knob: error: the run already has 4 epochs; ask for more with --epochs" train --resume "$tmp/r/idx-cnn.safetensors" --out "$tmp/r"
expect 2 "knob: error: $tmp/r/idx-cnn.safetensors was trained on 'idx:$tmp/d', not 'digits'*" \
    train --resume "$tmp/r/idx-cnn.safetensors" --dataset digits --out "$tmp/r"

# ---- eval and predict
"$KNOB" eval "$tmp/s1/idx-cnn.safetensors" >"$tmp/e.txt" 2>&1 || fail "eval failed: $(tail -n 1 "$tmp/e.txt")"
grep -q 'test split: accuracy .*(.*/15)' "$tmp/e.txt" || fail "eval printed no accuracy over 15 images"
grep -q '^confusion matrix' "$tmp/e.txt" || fail "eval printed no confusion matrix"
"$KNOB" eval "$tmp/s1/idx-cnn.safetensors" --json --errors "$tmp/err.png" >"$tmp/e.json" 2>&1 || fail "eval --json failed"
[ "$(wc -l <"$tmp/e.json")" -eq 1 ] || fail "eval --json printed more than one line"
grep -q '"confusion":\[\[' "$tmp/e.json" && grep -q '"accuracy":' "$tmp/e.json" || fail "eval --json lacks fields"
[ -s "$tmp/err.png" ] || fail "eval --errors wrote nothing"
if [ -x /usr/bin/python3 ]; then
    /usr/bin/python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$tmp/e.json" || fail "eval --json is not valid JSON"
fi
# a 16x16 PGM with the right half bright: class 1 at any size
{ printf 'P5\n16 16\n255\n'; r=0; while [ $r -lt 16 ]; do printf "$off$off$on$on"; r=$((r + 1)); done; } >"$tmp/right.pgm"
"$KNOB" predict "$tmp/s1/idx-cnn.safetensors" "$tmp/right.pgm" >"$tmp/p.txt" 2>&1 || fail "predict failed: $(cat "$tmp/p.txt")"
grep -q "right.pgm (16x16): 1$" "$tmp/p.txt" || fail "predict did not say class 1: $(head -n 1 "$tmp/p.txt")"
[ "$(grep -c '%$' "$tmp/p.txt")" -eq 3 ] || fail "predict did not list the top 3"
"$KNOB" predict --json --top 2 "$tmp/s1/idx-cnn.safetensors" "$tmp/right.pgm" >"$tmp/p.json" 2>&1 || fail "predict --json failed"
grep -q '"top":\[{"class":1,' "$tmp/p.json" || fail "predict --json: $(cat "$tmp/p.json")"
# an RGB PNG of another size goes through the same path (its class does not matter here)
"$KNOB" predict "$tmp/s1/idx-cnn.safetensors" "$tmp/s1/idx-cnn-errors.png" "$tmp/right.pgm" >"$tmp/p2.txt" 2>&1 \
    || fail "predict of a PNG failed: $(cat "$tmp/p2.txt")"
[ "$(grep -c '): ' "$tmp/p2.txt")" -eq 2 ] || fail "predict of two images did not answer twice"

# ---- corrupt data: one line naming the file, exit 1
mkidx "$tmp/cut"; head -c 1000 "$tmp/d/train-images-idx3-ubyte" >"$tmp/cut/train-images-idx3-ubyte"
expect 1 "knob: error: $tmp/cut/train-images-idx3-ubyte: truncated*" train --dataset "idx:$tmp/cut" --out "$tmp/x"
mkidx "$tmp/magic"; { printf '\022\064\010\003'; tail -c +5 "$tmp/d/train-images-idx3-ubyte"; } >"$tmp/magic/train-images-idx3-ubyte"
expect 1 "knob: error: $tmp/magic/train-images-idx3-ubyte: not an IDX file*" train --dataset "idx:$tmp/magic" --out "$tmp/x"
mkidx "$tmp/count"; idx_labels "$tmp/count/train-labels-idx1-ubyte" 59
expect 1 "knob: error: $tmp/count/train-images-idx3-ubyte: 60 images but $tmp/count/train-labels-idx1-ubyte has 59 labels" \
    train --dataset "idx:$tmp/count" --out "$tmp/x"
[ -e "$tmp/x" ] && fail "a failed run created its output folder's files"

# ---- bad checkpoints
ck="$tmp/s1/idx-cnn.safetensors"
head -c 2000 "$ck" >"$tmp/cut.safetensors"
expect 1 "knob: error: $tmp/cut.safetensors: *" eval "$tmp/cut.safetensors"
"$KNOB" fit --epochs 5 --out "$tmp/fit" >/dev/null 2>&1
expect 1 "knob: error: $tmp/fit/fit.safetensors: not a knob classifier checkpoint*" eval "$tmp/fit/fit.safetensors"
expect 1 "knob: error: $tmp/fit/fit.safetensors: not a knob classifier checkpoint*" predict "$tmp/fit/fit.safetensors" "$tmp/right.pgm"
# the same length of text, another width: the model no longer fits the tensors
LC_ALL=C sed 's/conv=4,6 kernel=3 hidden=8 /conv=4,7 kernel=3 hidden=8 /' "$ck" >"$tmp/wide.safetensors"
cmp -s "$ck" "$tmp/wide.safetensors" && fail "sed did not change the model metadata"
expect 1 "knob: error: $tmp/wide.safetensors: 'conv2.weight' is (6, 4, 3, 3) in file, model expects (7, 4, 3, 3)" \
    eval "$tmp/wide.safetensors"
expect 1 "knob: error: $tmp/wide.safetensors: 'conv2.weight' is (6, 4, 3, 3) in file*" train --resume "$tmp/wide.safetensors" --out "$tmp/x"
expect 1 "knob: error: $tmp/none.pgm: cannot open*" predict "$ck" "$tmp/none.pgm"

# ---- bad flags
expect 2 "knob train: error: --model 'rnn' is not one of mlp, cnn*" train --model rnn
expect 2 "knob: error: --hidden: '12x' is not a comma-separated list*" train --hidden 12x --dataset "idx:$tmp/d" --out "$tmp/x"
expect 2 "knob train: error: unknown flag '--epoch' (did you mean '--epochs'?)*" train --epoch 3
expect 2 "knob eval: error: *" eval
expect 2 "knob: error: --dataset: unknown data set 'cifar'*" train --dataset cifar
expect 2 "knob train: error: --lr-min 0.1 is above --lr 0.01" train --lr 0.01 --lr-min 0.1
"$KNOB" --threads 1 train --dataset "idx:$tmp/d" --val 12 --hidden 4 --epochs 1 --batch-size 8 --out "$tmp/one" \
    >"$tmp/one.txt" 2>&1 || fail "one-epoch train failed: $(tail -n 1 "$tmp/one.txt")"
grep -q '^training: 1 epoch of batch 8, .*, 1 thread$' "$tmp/one.txt" || fail "singular counts: $(grep '^training' "$tmp/one.txt")"
grep -q '^trained 1 epoch in' "$tmp/one.txt" || fail "singular 'trained 1 epoch': $(grep '^trained' "$tmp/one.txt")"

# ---- the real digits, one epoch of the MLP (skipped when the data is absent)
if [ -f "$(dirname "$KNOB")/../data/mnist/0.json" ] || [ -f data/mnist/0.json ]; then
    "$KNOB" --threads 2 train --epochs 1 --out "$tmp/digits" >"$tmp/dg.txt" 2>&1 || fail "digits train failed: $(tail -n 1 "$tmp/dg.txt")"
    acc=$(sed -n 's/^test accuracy: best model (epoch 1) \([0-9]*\)\..*/\1/p' "$tmp/dg.txt")
    [ -n "$acc" ] && [ "$acc" -ge 85 ] || fail "one MLP epoch on the digits gave test accuracy '$acc'%, want >= 85"
else
    echo "SKIP digits run: data/mnist not found (run sh scripts/setup.sh)"
fi

[ "$failures" -eq 0 ]

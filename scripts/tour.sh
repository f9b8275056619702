#!/bin/sh
# scripts/tour.sh: the main job. Sets up (packages, build), then walks the story chapter by chapter.
# Output files land in out/ (override with OUT=dir).
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
OUT=${OUT:-out}
KNOB=build/knob

chapter() { printf '\n==== %s ====\n\n' "$1"; }

chapter "1. A model is a function with knobs: fitting a falling ball"
$KNOB fit --out "$OUT"
echo
$KNOB inspect "$OUT/fit.safetensors"

chapter "2. Seeing: a neural net learns to read handwritten digits"
$KNOB train --dataset digits --model mlp --epochs 30 --shift 2 --out "$OUT"
echo
$KNOB train --dataset digits --model cnn --epochs 8 --shift 2 --out "$OUT"
echo
$KNOB eval "$OUT/digits-cnn-best.safetensors"
# a "7" drawn as dark ink on white paper, 48x64 pixels: predict fits it to 28x28 first
awk 'BEGIN { print "P2"; print "48 64"; print "255";
  for (y = 0; y < 64; y++) { row = "";
    for (x = 0; x < 48; x++) { d = (x - 40) * 44 + (y - 14) * 22; d = d < 0 ? -d : d;
      ink = (y >= 10 && y <= 16 && x >= 8 && x <= 40) || (y >= 14 && y <= 58 && d <= 200);
      row = row (ink ? " 0" : " 255") }
    print row } }' >"$OUT/seven.pgm"
$KNOB predict "$OUT/digits-cnn-best.safetensors" "$OUT/seven.pgm"
printf '\nPictures: %s/digits-cnn-curves.svg (loss and accuracy per epoch), digits-cnn-filters.png (the first\n' "$OUT"
printf 'layer'"'"'s 3x3 filters), digits-cnn-features.png (one digit through both conv layers) and\n'
printf 'digits-cnn-errors.png (the test digits it got wrong, captioned true>predicted).\n'
chapter "3. Text becomes numbers: GPT-2's tokenizer, and one learned from the fortunes"
$KNOB tokenize --text "Hello world! It's 日本語 👍🏽"
$KNOB bpe train /usr/share/games/fortunes --vocab 4000 --out "$OUT/bpe"
$KNOB tokenize --tokenizer "bpe:$OUT/bpe" --text "The answer to life, the universe and everything."

chapter "4. Counting before learning: letter n-grams of the fortunes, from noise to words"
$KNOB ngram --n 5 --length 160 --seed 1

chapter "5. A GPT learns to write fortunes (a few minutes of training, then samples)"
$KNOB train-gpt --tokenizer char --time-limit "${GPT_SECONDS:-180}" --eval-every 200 --log-every 100 --out "$OUT/gpt"
for temp in 0 0.8 1.2; do
    printf '\n--- temperature %s:\n' "$temp"
    $KNOB generate "$OUT/gpt/gpt.safetensors" --prompt "The " --max-tokens 300 --temperature "$temp" --seed 1
done
echo
$KNOB next "$OUT/gpt/gpt.safetensors" "The meaning of life is" --top 5
printf 'The compiler ate my homework, said the programmer, and the cat agreed.\n' >"$OUT/gpt/unseen.txt"
$KNOB score "$OUT/gpt/gpt.safetensors" "$OUT/gpt/unseen.txt"
echo
$KNOB embed "$OUT/gpt/gpt.safetensors" a e t 1 --top 5 --out "$OUT/gpt"
echo
$KNOB attention "$OUT/gpt/gpt.safetensors" "The cat sat on the mat." --out "$OUT/gpt"

printf '\nTour done. Pictures in %s: fit.svg (chapter 1), digits-cnn-*.svg/png (chapter 2), gpt/loss.svg, gpt/embed.svg, gpt/attention*.svg (chapter 5).\n' "$OUT"

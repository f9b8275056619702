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

chapter "Text becomes numbers: GPT-2's tokenizer, and one learned from the fortunes"
$KNOB tokenize --text "Hello world! It's 日本語 👍🏽"
$KNOB bpe train /usr/share/games/fortunes --vocab 4000 --out "$OUT/bpe"
$KNOB tokenize --tokenizer "bpe:$OUT/bpe" --text "The answer to life, the universe and everything."

chapter "Counting before learning: letter n-grams of the fortunes, from noise to words"
$KNOB ngram --n 5 --length 160 --seed 1

chapter "A GPT learns to write fortunes (a few minutes of training, then samples)"
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

printf '\nTour done. Open %s/fit.svg to see the data, the three fitted curves and their loss curves.\n' "$OUT"

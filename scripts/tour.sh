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

printf '\nTour done. Open %s/fit.svg to see the data, the three fitted curves and their loss curves.\n' "$OUT"

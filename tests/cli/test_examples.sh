#!/bin/sh
# test_examples.sh: the programs in examples/ build against the public header alone and run:
# fit_line must recover y = 3x - 1 and write a safetensors file that knob inspect reads.
. "$(dirname "$0")/../cli_lib.sh"
ex=$(dirname "$KNOB")/examples
out=$("$ex/fit_line" "$tmp/line.safetensors") || { echo "FAIL: fit_line exited $?"; exit 1; }
case $out in
    "w = 3.0000, b = -1.0000,"*) ;;
    *) echo "FAIL: fit_line printed '$out', want w = 3.0000, b = -1.0000"; exit 1 ;;
esac
"$KNOB" inspect "$tmp/line.safetensors" | grep -q '^w ' || { echo "FAIL: inspect does not list w"; exit 1; }

#!/bin/sh
# test_hostile_files.sh: every command that reads a file, pointed at /dev/zero, /dev/urandom, a FIFO
# that nobody writes and a folder, answers with one line on stderr and exit status 1, at once (a
# 10 s guard catches a hang or an endless read; a hang is a failure, timing decides nothing else).
. "$(dirname "$0")/../cli_lib.sh"
cd "$(dirname "$0")/../.."
mkfifo "$tmp/fifo" || fail "mkfifo"
mkdir -p "$tmp/folder"
cls=tests/data/old_checkpoints/cnn.safetensors
gpt=tests/data/old_checkpoints/gpt.safetensors

# check NAME CMD...: the command must exit 1 with exactly one line on stderr, within the guard
check() {
    name=$1; shift
    timeout 10 "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
    rc=$?
    if [ $rc -eq 124 ]; then fail "$name: hung (killed after 10 s)"; return; fi
    [ $rc -eq 1 ] || fail "$name: exit $rc, expected 1 ($(head -c 200 "$tmp/err"))"
    [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "$name: stderr is not one line: $(head -c 300 "$tmp/err")"
    grep -q '^knob' "$tmp/err" || fail "$name: stderr does not start with knob: $(head -c 200 "$tmp/err")"
}

for h in /dev/zero /dev/urandom "$tmp/fifo" "$tmp/folder"; do
    check "inspect $h" "$KNOB" inspect "$h"
    check "eval $h" "$KNOB" eval "$h"
    check "predict $h" "$KNOB" predict "$cls" "$h"
    check "generate $h" "$KNOB" generate "$h" --max-tokens 1
    check "score $h" "$KNOB" score "$gpt" "$h"
    check "tokenize $h" "$KNOB" tokenize "$h"
    check "fit --csv $h" "$KNOB" fit --csv "$h" --out "$tmp/fit"
    check "convert $h" "$KNOB" convert "$h" "$tmp/out.bin"
    check "train --resume $h" "$KNOB" train --resume "$h" --out "$tmp/tr"
done
# IDX files that are a FIFO or a device
mkdir -p "$tmp/idx"
mkfifo "$tmp/idx/train-images-idx3-ubyte" "$tmp/idx/train-labels-idx1-ubyte"
ln -s /dev/zero "$tmp/idx/t10k-images-idx3-ubyte"; ln -s /dev/zero "$tmp/idx/t10k-labels-idx1-ubyte"
check "train --dataset idx:FIFOs" "$KNOB" train --dataset "idx:$tmp/idx" --epochs 1 --out "$tmp/tr"
[ "$failures" -eq 0 ]

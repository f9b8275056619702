#!/bin/sh
# test_disk_full.sh: a write that fails mid-run. RLIMIT_FSIZE (ulimit -f, with SIGXFSZ ignored so a
# write past it fails with EFBIG instead of killing knob) stands in for a full disk: it always
# works, needs no privileges and never skips. For knob train (mlp), knob train-gpt, knob fit --out
# and knob convert: a run resumed (or repeated) under a limit below the size of the file it writes
# must fail with exit 1 and one line on stderr naming the file and the cause, leave the previous
# file byte-identical and no temp file behind; and a train run resumed afterwards without the limit
# still ends with the bytes of a run that never failed.
. "$(dirname "$0")/../cli_lib.sh"

# limited BYTES CMD...: CMD with writes limited to BYTES (rounded down to whole ulimit blocks)
limited() {
    lim=$1; shift
    (trap '' XFSZ; ulimit -f $((lim / block)) && exec "$@")
}
# the shell's ulimit -f unit, measured: 512 bytes (POSIX) or 1024 (bash)
block=$( (trap '' XFSZ; ulimit -f 1; head -c 4096 /dev/zero >"$tmp/probe" 2>/dev/null); wc -c <"$tmp/probe")
[ "$block" -eq 512 ] || [ "$block" -eq 1024 ] || fail "ulimit -f 1 let $block bytes through"

# expect_full WHAT NAME "FILES" CMD...: CMD, with writes limited to a byte less than the smallest
# of FILES, fails with exit 1 and one stderr line naming NAME... and EFBIG's text; every one of
# FILES is byte-identical to before, and no temp file is left beside them
expect_full() {
    what=$1; name=$2; files=$3; shift 3
    min=
    for f in $files; do
        cp "$f" "$f.before"
        n=$(wc -c <"$f"); [ -z "$min" ] || [ "$n" -lt "$min" ] && min=$n
    done
    limited $((min - 1)) "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?
    [ "$rc" -eq 1 ] || fail "$what under a full disk: exit $rc, want 1 ($(head -n 1 "$tmp/err"))"
    [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "$what: $(wc -l <"$tmp/err") lines on stderr, want 1"
    case $(cat "$tmp/err") in
        "knob: error: $name"*"File too large"*) ;;
        *) fail "$what: stderr does not name $name... and the cause: $(head -n 1 "$tmp/err")" ;;
    esac
    for f in $files; do
        cmp -s "$f" "$f.before" || fail "$what: $f changed under a full disk"
        rm -f "$f.before"
        for t in "$f".tmp.*; do
            [ -e "$t" ] && fail "$what: temp file left behind: $t"
        done
    done
}

# ---- knob train: 2 epochs, then a resume that cannot write epoch 3's checkpoints
mkdir -p "$tmp/d"
LC_ALL=C awk 'function be(x) { printf "%c%c%c%c", int(x / 16777216) % 256, int(x / 65536) % 256, int(x / 256) % 256, x % 256 }
    BEGIN { printf "%c%c%c%c", 0, 0, 8, 3; be(90); be(8); be(8)
            for (i = 0; i < 90; i++) for (p = 0; p < 64; p++) printf "%c", (i % 3 == 0 ? p % 8 < 4 : i % 3 == 1 ? p % 8 >= 4 : p < 32) ? 250 : 5 }' \
    >"$tmp/d/train-images-idx3-ubyte"
LC_ALL=C awk 'function be(x) { printf "%c%c%c%c", int(x / 16777216) % 256, int(x / 65536) % 256, int(x / 256) % 256, x % 256 }
    BEGIN { printf "%c%c%c%c", 0, 0, 8, 1; be(90); for (i = 0; i < 90; i++) printf "%c", i % 3 }' >"$tmp/d/train-labels-idx1-ubyte"
cp "$tmp/d/train-images-idx3-ubyte" "$tmp/d/t10k-images-idx3-ubyte"
cp "$tmp/d/train-labels-idx1-ubyte" "$tmp/d/t10k-labels-idx1-ubyte"
tr_args="--threads 1 train --dataset idx:$tmp/d --val 15 --model mlp --hidden 8 --epochs 4 --batch-size 8 --lr 0.01"
"$KNOB" $tr_args --out "$tmp/ref" >/dev/null 2>&1 || fail "train reference run failed"
"$KNOB" $tr_args --stop-after 2 --out "$tmp/t" >/dev/null 2>&1 || fail "train --stop-after 2 failed"
ck="$tmp/t/idx-mlp.safetensors"
# the best file is written first when epoch 3 improves, the last one otherwise: either may be named
expect_full "train" "$tmp/t/idx-mlp" "$ck $tmp/t/idx-mlp-best.safetensors" "$KNOB" --threads 1 train --resume "$ck" --out "$tmp/t"
"$KNOB" --threads 1 train --resume "$ck" --out "$tmp/t" >/dev/null 2>&1 || fail "train: resume after the full disk failed"
cmp -s "$ck" "$tmp/ref/idx-mlp.safetensors" || fail "train: resumed after a full disk, the run differs from the straight one"

# ---- knob train-gpt: 20 steps, then a resume that cannot write step 30's checkpoint
LC_ALL=C awk 'BEGIN { for (l = 0; l < 60; l++) print "a small corpus for a small model, line " l }' >"$tmp/c.txt"
g_args="--threads 1 train-gpt $tmp/c.txt --tokenizer char --layers 1 --heads 2 --embd 16 --block 16 --batch 2 --steps 40 --ckpt-every 10 --eval-every 100"
"$KNOB" $g_args --out "$tmp/gref" >/dev/null 2>&1 || fail "train-gpt reference run failed"
"$KNOB" $g_args --stop-after 20 --out "$tmp/g" >/dev/null 2>&1 || fail "train-gpt --stop-after 20 failed"
gck="$tmp/g/gpt.safetensors"
expect_full "train-gpt" "$gck" "$gck" "$KNOB" --threads 1 train-gpt --resume "$gck" --ckpt-every 10 --eval-every 100 --out "$tmp/g"
"$KNOB" --threads 1 train-gpt --resume "$gck" --ckpt-every 10 --eval-every 100 --out "$tmp/g" >/dev/null 2>&1 \
    || fail "train-gpt: resume after the full disk failed"
cmp -s "$gck" "$tmp/gref/gpt.safetensors" || fail "train-gpt: resumed after a full disk, the run differs from the straight one"

# ---- knob fit --out: a second run cannot replace the first one's files
"$KNOB" fit --epochs 50 --out "$tmp/f" >/dev/null 2>&1 || fail "fit failed"
expect_full "fit" "$tmp/f/fit." "$tmp/f/fit.svg $tmp/f/fit.safetensors" "$KNOB" fit --epochs 50 --seed 7 --out "$tmp/f"

# ---- knob convert: the knob GPT to llm.c's .bin, then again under a limit
"$KNOB" convert "$gck" "$tmp/g.bin" >/dev/null 2>&1 || fail "convert failed"
expect_full "convert" "$tmp/g.bin" "$tmp/g.bin" "$KNOB" convert "$gck" "$tmp/g.bin"

[ "$failures" -eq 0 ]

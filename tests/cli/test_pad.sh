#!/bin/sh
# test_pad.sh: knob train --pad 0 trains an unpadded CNN (8x8 images, 5x5 convs: 8 -> 4 -> pool 2),
# writes "pad=0" into its checkpoint, which evaluates and resumes; --pad 0 with too many stages
# for the image, and a --pad that is not same or 0, are usage errors naming the cause; --pad is
# refused on --resume (the checkpoint holds it).
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

cnn="--threads 2 train --dataset idx:$tmp/d --val 12 --model cnn --conv 4 --kernel 5 --pad 0 --hidden 8 --epochs 2 --batch-size 8 --lr 0.01"
"$KNOB" $cnn --out "$tmp/p" >"$tmp/t.txt" 2>&1 || fail "cnn --pad 0 train failed: $(tail -n 1 "$tmp/t.txt")"
f="$tmp/p/idx-cnn.safetensors"
[ -s "$f" ] || fail "cnn --pad 0 wrote no checkpoint"
"$KNOB" inspect "$f" >"$tmp/i.txt" 2>&1 || fail "inspect failed"
grep -q 'kernel=5 pad=0' "$tmp/i.txt" || fail "the checkpoint's config lacks pad=0"
"$KNOB" eval "$f" --dataset "idx:$tmp/d" >"$tmp/e.txt" 2>&1 || fail "eval of the unpadded cnn failed: $(tail -n 1 "$tmp/e.txt")"
grep -q 'test split: accuracy' "$tmp/e.txt" || fail "eval printed no accuracy"
"$KNOB" --threads 2 train --resume "$f" --epochs 3 --out "$tmp/p" >"$tmp/r.txt" 2>&1 || fail "resume of the unpadded cnn failed: $(tail -n 1 "$tmp/r.txt")"

"$KNOB" train --dataset "idx:$tmp/d" --val 12 --model cnn --conv 4,4 --kernel 5 --pad 0 --out "$tmp/q" >/dev/null 2>"$tmp/err"
[ $? -eq 2 ] || fail "two unpadded 5x5 stages on 8x8 images should be a usage error"
grep -q 'below 1x1; try --pad same' "$tmp/err" || fail "unexpected message: $(cat "$tmp/err")"
"$KNOB" train --model cnn --pad 1 --out "$tmp/q" >/dev/null 2>"$tmp/err"
[ $? -eq 2 ] || fail "--pad 1 should be a usage error"
grep -q -- "--pad" "$tmp/err" || fail "the --pad error does not name the flag: $(cat "$tmp/err")"
"$KNOB" train --resume "$f" --pad same --out "$tmp/p" >/dev/null 2>"$tmp/err"
[ $? -eq 2 ] || fail "--pad on --resume should be a usage error"
[ "$failures" -eq 0 ]

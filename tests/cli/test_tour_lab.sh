#!/bin/sh
# test_tour_lab.sh: the tour's laboratory chapters (2, 3, 4, 8, 9, 10) in their --quick form: each
# exits 0, writes whole SVG pictures, and prints numbers that say the experiment worked (the
# backprop check agrees, a two-layer net learns the spirals, descent diverges above 2 / curvature,
# wide nets always reach a low loss, few digits overfit); the same seed gives the same pictures.
# Chapter 9 needs data/mnist (skipped in that case). Run by tests/run.sh with $KNOB set.
. "$(dirname "$0")/../cli_lib.sh"

# num FILE LABEL: the first number after LABEL on its line of the chapter's output
num() { grep -F "$2" "$1" | head -n 1 | sed "s/.*$2//" | grep -oE '[-+]?[0-9.]+(e[-+]?[0-9]+)?' | head -n 1; }
# ok EXPR: awk's verdict on a comparison of numbers
ok() { awk "BEGIN { exit !($1) }"; }

run() {   # run N: chapter N into $tmp/a
    "$KNOB" tour --quick --chapter "$1" --out "$tmp/a" >"$tmp/ch$1.txt" 2>&1 || fail "chapter $1 exited $?: $(tail -n 3 "$tmp/ch$1.txt")"
}
svg() {   # svg FILE...: each a whole SVG
    for f in "$@"; do
        [ -s "$tmp/a/$f" ] || { fail "$f was not written"; continue; }
        head -c 5 "$tmp/a/$f" | grep -q '<svg' && tail -n 1 "$tmp/a/$f" | grep -q '</svg>' || fail "$f is not a whole SVG"
    done
}

run 2
svg 02-neuron/regions.svg 02-neuron/moments.svg
a=$(num "$tmp/ch2.txt" "two hidden layers of 8 ")
ok "$a >= 90" || fail "chapter 2: two hidden layers got $a% of the spirals right, want >= 90"
l=$(num "$tmp/ch2.txt" "one linear layer (a line) ")
ok "$l < 80" || fail "chapter 2: a line got $l% of the spirals right, it cannot"
cp "$tmp/a/02-neuron/regions.svg" "$tmp/regions1.svg"
run 2
cmp -s "$tmp/a/02-neuron/regions.svg" "$tmp/regions1.svg" || fail "chapter 2: same seed, different regions.svg"

run 3
svg 03-descent/landscape.svg 03-descent/loss.svg
[ "$(grep -c '<path' "$tmp/a/03-descent/landscape.svg")" -ge 40 ] || fail "landscape.svg has too few contour lines"
big=$(num "$tmp/ch3.txt" "too large: loss after 40 steps ")
right=$(num "$tmp/ch3.txt" "about right: loss after 40 steps ")
floor=$(num "$tmp/ch3.txt" "lowest possible loss (the noise) ")
ok "$big > 1000 && $right < 1.01 * $floor" || fail "chapter 3: too large $big, right $right, floor $floor"

run 4
svg 04-backprop/graph.svg
r=$(num "$tmp/ch4.txt" "largest relative difference ")
ok "$r < 0.01" || fail "chapter 4: backprop and nudging differ by $r"
[ "$(grep -c '^    [Wb][12]\[' "$tmp/ch4.txt")" -eq 9 ] || fail "chapter 4: the table lacks a knob's row"

run 8
svg 08-hyper/hyper.svg
[ "$(grep -c '<polyline' "$tmp/a/08-hyper/hyper.svg")" -ge 10 ] || fail "hyper.svg has fewer than 10 curves"
slow=$(num "$tmp/ch8.txt" "lr 0.0003: loss after 400 steps ")
good=$(num "$tmp/ch8.txt" "lr 0.03: loss after 400 steps ")
ok "$good < $slow / 10" || fail "chapter 8: lr 0.03 ends at $good, lr 0.0003 at $slow"

if [ -f "$(dirname "$KNOB")/../data/mnist/9.json" ] || [ -f "${KNOB_DATA:-/nonexistent}/mnist/9.json" ]; then
    run 9
    svg 09-general/sizes.svg 09-general/between.svg
    tr=$(grep -F '100 images, ' "$tmp/ch9.txt" | head -n 1 | grep -oE '[0-9.]+%' | head -n 1 | tr -d %)
    va=$(grep -F '100 images, ' "$tmp/ch9.txt" | head -n 1 | grep -oE '[0-9.]+%' | sed -n 2p | tr -d %)
    ok "$tr > $va + 20" || fail "chapter 9: 100 images, train $tr% vs validation $va%: no overfitting shown"
else
    echo "skip chapter 9: data/mnist absent"
fi

run 10
svg 10-landscape/trapped.svg 10-landscape/slice.svg
w1=$(num "$tmp/ch10.txt" "width 1: runs reaching loss < 0.05 ")
w16=$(num "$tmp/ch10.txt" "width 16: runs reaching loss < 0.05 ")
ok "$w1 == 0 && $w16 == 100" || fail "chapter 10: width 1 reached low loss in $w1%, width 16 in $w16%"
deep=$(grep -F 'descents ending in the deep valley' "$tmp/ch10.txt" | grep -oE '[0-9]+ of 41')
[ "$deep" = "22 of 41" ] || fail "chapter 10: '$deep' descents reached the deep valley, want the 22 starts left of the ridge"

[ "$failures" -eq 0 ]

#!/bin/sh
# test_tour.sh: knob tour end to end. --list names the 15 chapters; bad flags get one line and exit 2;
# --chapter runs one chapter alone; `knob tour --quick` runs every chapter of this build, each writing
# its pictures into DIR/NN-name/ and reporting into DIR/index.html, which must list all 15 chapters,
# embed every picture the chapters wrote and leave no temp files; then headless Chromium checks that
# the page's pictures load and nothing overflows (tests/tour/page_check.js), keeping the screenshot
# as BUILD/tour-page.png.
. "$(dirname "$0")/../cli_lib.sh"
build=$(dirname "$KNOB")

# --list
"$KNOB" tour --list >"$tmp/list" 2>&1 || fail "--list exited $?"
n=$(grep -cE '^ +[0-9]+  [a-z]+ ' "$tmp/list")
[ "$n" -eq 15 ] || fail "--list shows $n chapters, want 15"
for name in model neuron descent backprop digits edges epochs hyper general landscape counting tokens gpt temperature scale; do
    grep -qE "^ +[0-9]+  $name " "$tmp/list" || fail "--list lacks chapter '$name'"
done

# bad flags: one line naming the flag, exit 2, nothing written
bad() {
    want=$1; shift
    "$KNOB" tour "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?
    [ "$rc" -eq 2 ] || fail "tour $*: exit $rc, want 2"
    [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "tour $*: stderr is not one line: $(cat "$tmp/err")"
    grep -q -- "$want" "$tmp/err" || fail "tour $*: stderr lacks '$want': $(cat "$tmp/err")"
}
bad "chapter '99' is not a chapter" --chapter 99 --out "$tmp/bad"
bad "chapter 'gtp' is not a chapter" --chapter gtp --out "$tmp/bad"
bad "chapter is empty" --chapter "" --out "$tmp/bad"
bad "unknown flag '--chapters'" --chapters 1
bad "threads" --threads x
bad "seed" --seed -1
bad "out is empty" --out ""
[ ! -e "$tmp/bad" ] || fail "a refused tour created its --out folder"
: >"$tmp/file"
"$KNOB" tour --chapter 1 --out "$tmp/file" >/dev/null 2>"$tmp/err" && fail "--out naming a file was accepted"
grep -q "$tmp/file" "$tmp/err" || fail "--out naming a file: message lacks the path: $(cat "$tmp/err")"

# one chapter alone, by number and by name
"$KNOB" tour --chapter 1 --out "$tmp/one" >"$tmp/out" 2>&1 || fail "--chapter 1 exited $?: $(tail -3 "$tmp/out")"
[ -s "$tmp/one/01-model/fit.svg" ] || fail "--chapter 1 wrote no 01-model/fit.svg"
grep -q 'src="01-model/fit.svg"' "$tmp/one/index.html" || fail "the page does not show fit.svg"
[ "$(grep -c 'Not run in this tour' "$tmp/one/index.html")" -eq 14 ] || fail "the page should mark 14 chapters not run"
grep -q 'chapter 1 took' "$tmp/out" || fail "--chapter 1 does not state its time"
"$KNOB" tour --chapter model --quick --out "$tmp/one" >/dev/null 2>&1 || fail "--chapter model exited $?"

# the whole quick tour
t0=$(date +%s)
"$KNOB" tour --quick --out "$tmp/tour" >"$tmp/tour.out" 2>&1; rc=$?
t1=$(date +%s)
echo "knob tour --quick: $((t1 - t0)) s"
[ "$rc" -eq 0 ] || fail "tour --quick exited $rc: $(grep -i 'failed' "$tmp/tour.out" | head -3)"
grep -q 'failed' "$tmp/tour.out" && fail "a chapter failed: $(grep 'failed' "$tmp/tour.out" | head -3)"
page="$tmp/tour/index.html"
[ -s "$page" ] || fail "no index.html"
grep -q 'Finished' "$page" || fail "the page does not say the tour finished"
for d in "$tmp"/tour/[0-9][0-9]-*; do
    [ -d "$d" ] || continue
    pics=$(ls "$d" | grep -cE '\.(svg|png)$')
    [ "$pics" -gt 0 ] || case $(basename "$d") in 15-scale) ;; *) fail "$(basename "$d") has no pictures" ;; esac
    for f in "$d"/*.svg "$d"/*.png; do
        [ -f "$f" ] || continue
        rel="$(basename "$d")/$(basename "$f")"
        grep -q "src=\"$rel\"" "$page" || fail "$rel is not on the page"
    done
done
for ch in 01-model 05-digits 06-edges 07-epochs 11-counting 12-tokens 13-gpt 14-temperature 15-scale; do
    [ -d "$tmp/tour/$ch" ] || fail "the quick tour made no $ch"
done
grep -q 'edge score, median of the 16 filters, trained' "$page" || fail "chapter 6 reports no trained edge score"
grep -q 'GPT-2 small (124M): parameters</td><td class="v">124439808<' "$page" || fail "chapter 15: GPT-2 124M is not 124439808 parameters"
grep -q 'training speed' "$page" || fail "chapter 13 reports no speed"
find "$tmp/tour" -name '*.tmp.*' | grep -q . && fail "temp files left: $(find "$tmp/tour" -name '*.tmp.*' | head -3)"

# the page in headless Chromium
npm_dir=${KNOB_NPM:-$(cd "$(dirname "$0")/../.." && pwd)/data/npm/node_modules}
if ! command -v node >/dev/null || [ ! -x /usr/bin/chromium ] || [ ! -d "$npm_dir/puppeteer-core" ]; then
    echo "skip: page check (node, /usr/bin/chromium or puppeteer-core absent; sh scripts/setup.sh --deps installs them)"
else
    timeout 180 node "$(dirname "$0")/../tour/page_check.js" "$page" "$build/tour-page.png" >"$tmp/page.out" 2>&1 ||
        fail "page check: $(cat "$tmp/page.out")"
    cat "$tmp/page.out"
fi
[ "$failures" -eq 0 ]

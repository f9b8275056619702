#!/bin/sh
# test_layers.sh: the objects the tests ran from keep DESIGN.md's layers: scripts/dev/check_layers.sh
# on their build folder (the one holding $KNOB) must find no upward call, no loop between files,
# no file outside a layer and no dependency header outside its one file.
# Run by tests/run.sh with $KNOB set to the binary's absolute path.
# It also proves that the checker can fail: a made-up build with an upward call and a loop.
. "$(dirname "$0")/../cli_lib.sh"

build=$(dirname "$KNOB")
root=$(cd "$(dirname "$0")/../.." && pwd)
command -v nm >/dev/null 2>&1 || { echo "FAIL: nm not found (binutils)"; exit 1; }
if sh "$root/scripts/dev/check_layers.sh" "$build" >"$tmp/out" 2>&1; then
    grep -q '^layers: ok' "$tmp/out" || fail "check_layers.sh passed without its 'layers: ok' line"
else
    sed 's/^/  /' "$tmp/out"
    fail "check_layers.sh $build: $(tail -n 1 "$tmp/out")"
fi

# the checker must catch an io file calling models, and two text files calling each other
cc=${CC:-cc}
mkdir -p "$tmp/bad/src/io" "$tmp/bad/src/models" "$tmp/bad/src/text"
printf 'int knob_up(void);\nint knob_low(void) { return knob_up(); }\n' >"$tmp/io.c"
printf 'int knob_up(void) { return 1; }\n' >"$tmp/models.c"
printf 'int knob_b(void);\nint knob_a(void) { return knob_b(); }\n' >"$tmp/ta.c"
printf 'int knob_a(void);\nint knob_b(void) { return knob_a(); }\n' >"$tmp/tb.c"
$cc -c "$tmp/io.c" -o "$tmp/bad/src/io/low.o" && $cc -c "$tmp/models.c" -o "$tmp/bad/src/models/up.o" &&
    $cc -c "$tmp/ta.c" -o "$tmp/bad/src/text/a.o" && $cc -c "$tmp/tb.c" -o "$tmp/bad/src/text/b.o" || fail "cannot compile the made-up build"
mkdir -p "$tmp/bad/cli"
for f in io/low models/up text/a text/b; do mkdir -p "$tmp/badsrc/src/${f%/*}"; : >"$tmp/badsrc/src/$f.c"; done
if LAYERS_SRC="$tmp/badsrc" sh "$root/scripts/dev/check_layers.sh" "$tmp/bad" >"$tmp/bad.out" 2>&1; then
    fail "check_layers.sh passed a build with an upward call and a loop"
fi
grep -q 'src/io/low.c.*knob_up.*src/models/up.c' "$tmp/bad.out" || fail "upward call not reported: $(cat "$tmp/bad.out")"
grep -q 'loop:.*src/text/a.c.*src/text/b.c\|loop:.*src/text/b.c.*src/text/a.c' "$tmp/bad.out" || fail "loop not reported: $(cat "$tmp/bad.out")"
[ "$failures" -eq 0 ]

#!/bin/sh
# tests/valgrind.sh BUILD FILTER...: memcheck over a fast subset of the unit tests (each FILTER is a
# substring of test names, as build/test_knob takes it) and a few commands end to end. Any invalid
# read or write, use of uninitialised memory or definite leak fails it. Prints one line a group and
# ends with "valgrind: N passed, N failed".
B=${1:-build}; shift
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null 2>&1 || { echo "valgrind: not installed (scripts/setup.sh --deps installs it)"; exit 1; }
VG="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
passed=0; failed=0
check() {   # check NAME CMD...: the command under memcheck must exit 0
    name=$1; shift
    t0=$(date +%s)
    if $VG "$@" >"$tmp/out" 2>&1; then
        echo "valgrind $name: ok ($(( $(date +%s) - t0 )) s)"; passed=$((passed + 1))
    else
        echo "valgrind $name: FAIL"; sed 's/^/    /' "$tmp/out" | tail -n 40; failed=$((failed + 1))
    fi
}
for f in "$@"; do
    check "unit tests *$f*" "$B/test_knob" "$f"
done
export KNOB_THREADS=2
check "knob fit" "$B/knob" fit --epochs 30 --out "$tmp/fit"
check "knob inspect" "$B/knob" inspect "$tmp/fit/fit.safetensors"
check "knob tokenize" "$B/knob" tokenize --text "Hello world! It's 日本 😀"
check "knob generate" "$B/knob" generate tests/data/old_checkpoints/gpt.safetensors --prompt "the" --max-tokens 20
printf 'the quick brown fox jumps over the lazy dog.\nhello world, hello knob.\n' >"$tmp/text.txt"
check "knob score" "$B/knob" score tests/data/old_checkpoints/gpt.safetensors "$tmp/text.txt"
printf 'hello\nthe dog\n' >"$tmp/chat.txt"
check "knob chat" sh -c "$VG $B/knob chat tests/data/old_checkpoints/gpt.safetensors --user 'you ' --bot 'bot ' --max-tokens 3 <$tmp/chat.txt"
echo "valgrind: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/bin/sh
# test_inspect.sh: `knob inspect` on a hand-built safetensors file (printf writes the 8-byte header
# length and the JSON header; no Python), then on a missing, a truncated, an empty and a garbage
# file: each must fail with exit 1 and one line on stderr that names the file.
# Run by tests/run.sh with $KNOB set to the binary's absolute path.
. "$(dirname "$0")/../cli_lib.sh"

# le64 N: N as 8 little-endian bytes (printf octal escapes are portable)
le64() {
    n=$1; i=0; fmt=
    while [ "$i" -lt 8 ]; do
        fmt="$fmt\\$(printf '%03o' $((n % 256)))"
        n=$((n / 256)); i=$((i + 1))
    done
    printf "$fmt"
}

# write_st FILE HEADER DATA_BYTES: a safetensors file with that header and that many zero bytes
write_st() {
    { le64 ${#2}; printf '%s' "$2"; [ "$3" -gt 0 ] && dd if=/dev/zero bs="$3" count=1 2>/dev/null; } >"$1"
}

# expect_fail FILE WHAT: exit 1, one line on stderr that names FILE, nothing on stdout
expect_fail() {
    "$KNOB" inspect "$1" >"$tmp/out" 2>"$tmp/err"; rc=$?
    first=$(head -n 1 "$tmp/err")
    [ "$rc" -eq 1 ] || fail "inspect $2: exit $rc, want 1 ($first)"
    case $first in
        "knob: error: $1"*) ;;
        *) fail "inspect $2: stderr '$first' does not start with 'knob: error: $1'" ;;
    esac
    [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "inspect $2: stderr has $(wc -l <"$tmp/err") lines, want 1"
    [ -s "$tmp/out" ] && fail "inspect $2: wrote to stdout"
}

# --- a valid file -------------------------------------------------------------------------------
# w: F32 (2, 3) = 24 bytes; b: F32 (3) = 12 bytes; metadata with a quote and a backslash to escape.
hdr='{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"F32","shape":[3],"data_offsets":[24,36]},"__metadata__":{"format":"pt","note":"say \"hi\" \\ bye"}}'
st="$tmp/model.safetensors"
write_st "$st" "$hdr" 36
[ "$(wc -c <"$st")" -eq $((8 + ${#hdr} + 36)) ] || fail "test file has the wrong size"

"$KNOB" inspect "$st" >"$tmp/out" 2>"$tmp/err" || fail "inspect valid file: exit $? ($(head -n 1 "$tmp/err"))"
[ -s "$tmp/err" ] && fail "inspect valid file: wrote to stderr: $(head -n 1 "$tmp/err")"
grep -q '^name  *dtype  *shape  *elements  *bytes$' "$tmp/out" || fail "inspect: no table header"
grep -q '^w  *F32  *(2, 3)  *6  *24$' "$tmp/out" || fail "inspect: row for w is missing or wrong"
grep -q '^b  *F32  *(3)  *3  *12$' "$tmp/out" || fail "inspect: row for b is missing or wrong"
grep -q '^2 tensors, 9 parameters' "$tmp/out" || fail "inspect: total parameter count is not 9"
grep -q '^  format  *pt$' "$tmp/out" || fail "inspect: metadata 'format' missing"
grep -q 'say "hi" \\ bye' "$tmp/out" || fail "inspect: metadata 'note' missing"
# the table's columns line up: 'F32' starts at the same column on both rows
c1=$(grep '^w ' "$tmp/out" | awk '{ print index($0, "F32") }')
c2=$(grep '^b ' "$tmp/out" | awk '{ print index($0, "F32") }')
[ "$c1" = "$c2" ] || fail "inspect: dtype column not aligned ($c1 vs $c2)"

# --- --json -------------------------------------------------------------------------------------
"$KNOB" inspect --json "$st" >"$tmp/json" 2>"$tmp/err" || fail "inspect --json: exit $?"
for want in "\"file\": \"$st\"" '"name": "w", "dtype": "F32", "shape": [2, 3], "offsets": [0, 24]' \
            '"name": "b", "dtype": "F32", "shape": [3], "offsets": [24, 36]' '"n_params": 9' \
            '"format": "pt"' '"note": "say \"hi\" \\ bye"'; do
    grep -q -F -e "$want" "$tmp/json" || fail "inspect --json: no '$want'"
done
[ "$(head -n 1 "$tmp/json")" = "{" ] || fail "inspect --json: does not start with '{'"
[ "$(tail -n 1 "$tmp/json")" = "}" ] || fail "inspect --json: does not end with '}'"
# A real JSON parser when one is at hand (not required).
if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import json, sys; d = json.load(sys.stdin); assert d["n_params"] == 9, d' \
        <"$tmp/json" || fail "inspect --json: python3 could not parse it"
elif command -v jq >/dev/null 2>&1; then
    jq -e '.n_params == 9' <"$tmp/json" >/dev/null || fail "inspect --json: jq could not parse it"
fi

# A long metadata value is cut at 200 characters in the table, kept whole in JSON.
long=$(printf '%0300d' 0)
write_st "$tmp/long.safetensors" "{\"__metadata__\":{\"k\":\"$long\"}}" 0
"$KNOB" inspect "$tmp/long.safetensors" >"$tmp/out" 2>"$tmp/err" || fail "inspect long: exit $?"
grep -q "^  k  $(printf '%0200d' 0)\\.\\.\\.\$" "$tmp/out" || fail "inspect: long value not cut at 200 with '...'"
grep -q '^0 tensors, 0 parameters' "$tmp/out" || fail "inspect: empty file does not say 0 tensors"
"$KNOB" inspect --json "$tmp/long.safetensors" >"$tmp/json" 2>"$tmp/err" || fail "inspect --json long: exit $?"
grep -q -F "\"k\": \"$long\"" "$tmp/json" || fail "inspect --json: long value was cut"
grep -q -F '"tensors": [],' "$tmp/json" || fail "inspect --json: empty tensor list is not []"

# --- broken files -------------------------------------------------------------------------------
expect_fail "$tmp/missing.safetensors" "a missing file"
dd if="$st" of="$tmp/trunc.safetensors" bs=1 count=50 2>/dev/null
expect_fail "$tmp/trunc.safetensors" "a truncated file"
dd if="$st" of="$tmp/short.safetensors" bs=1 count=5 2>/dev/null
expect_fail "$tmp/short.safetensors" "a 5-byte file"
: >"$tmp/empty.safetensors"
expect_fail "$tmp/empty.safetensors" "an empty file"
printf 'this is not a safetensors file, just some words\n' >"$tmp/garbage.safetensors"
expect_fail "$tmp/garbage.safetensors" "a garbage file"
write_st "$tmp/badjson.safetensors" '{"w": [not json' 0
expect_fail "$tmp/badjson.safetensors" "a header that is not JSON"
write_st "$tmp/range.safetensors" '{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}' 12
expect_fail "$tmp/range.safetensors" "offsets past the data"
mkdir "$tmp/dir.safetensors"
expect_fail "$tmp/dir.safetensors" "a directory"

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all checks passed"

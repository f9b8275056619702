#!/bin/sh
# test_tokenize.sh: `knob tokenize` (output formats, --ids, --allow-special, --decode, stdin and
# files, byte-exact round trips of binary input) and `knob bpe train` (files written, round trip,
# usage errors). Failures must be exit 1 (2 for usage) with one line on stderr.
# GPT-2 parts are skipped, with a message, when data/gpt2 is absent.
# Run by tests/run.sh with $KNOB set to the binary's absolute path.
. "$(dirname "$0")/../cli_lib.sh"

# expect_fail CODE WHAT CMD...: exit CODE, one line on stderr, nothing on stdout
expect_fail() {
    code=$1; what=$2; shift 2
    "$@" >"$tmp/out" 2>"$tmp/err" </dev/null; rc=$?
    [ "$rc" -eq "$code" ] || fail "$what: exit $rc, want $code ($(head -n 1 "$tmp/err"))"
    [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "$what: stderr has $(wc -l <"$tmp/err") lines, want 1"
    [ -s "$tmp/out" ] && fail "$what: wrote to stdout"
}

# --- byte tokenizer (no data needed) --------------------------------------------------------------
out=$("$KNOB" tokenize --tokenizer byte --ids --text 'Hi!') || fail "byte --ids: exit $?"
[ "$out" = "72 105 33" ] || fail "byte --ids: got '$out', want '72 105 33'"
# binary input, every byte value, round-trips through --ids and --decode
i=0; fmt=
while [ $i -lt 256 ]; do fmt="$fmt\\$(printf '%03o' $i)"; i=$((i + 1)); done
printf "$fmt$fmt" >"$tmp/bin"
[ "$(wc -c <"$tmp/bin")" -eq 512 ] || fail "test file has the wrong size"
"$KNOB" tokenize --tokenizer byte --ids "$tmp/bin" >"$tmp/ids" || fail "byte file: exit $?"
"$KNOB" tokenize --tokenizer byte --decode "$tmp/ids" >"$tmp/back" || fail "byte --decode: exit $?"
cmp -s "$tmp/bin" "$tmp/back" || fail "byte tokenizer: binary file does not round-trip"

# --- usage and input errors ----------------------------------------------------------------------
expect_fail 2 "unknown flag" "$KNOB" tokenize --idz --text a
expect_fail 2 "unknown tokenizer" "$KNOB" tokenize --tokenizer gpt3 --text a
expect_fail 2 "--ids with --json" "$KNOB" tokenize --tokenizer byte --ids --json --text a
expect_fail 2 "FILE and --text" "$KNOB" tokenize --tokenizer byte --text a "$tmp/bin"
expect_fail 1 "missing file" "$KNOB" tokenize --tokenizer byte "$tmp/nope.txt"
grep -q "$tmp/nope.txt" "$tmp/err" || fail "missing file: message does not name the file"
expect_fail 1 "decode: not a number" "$KNOB" tokenize --tokenizer byte --decode --text "1 2 x"
grep -q 'byte 4' "$tmp/err" || fail "decode: message does not give the position: $(cat "$tmp/err")"
expect_fail 1 "decode: id out of range" "$KNOB" tokenize --tokenizer byte --decode --text "65 256"
grep -q 'token id 256 at position 1' "$tmp/err" || fail "decode range: $(cat "$tmp/err")"
expect_fail 1 "char tokenizer: unknown character" "$KNOB" tokenize --tokenizer 'char:"ab"' --text abc
grep -q "'c' (U+0063) at byte 2" "$tmp/err" || fail "char tokenizer message: $(cat "$tmp/err")"
expect_fail 1 "bpe: missing folder" "$KNOB" tokenize --tokenizer "bpe:$tmp/none" --text a

# --- knob bpe train ------------------------------------------------------------------------------
mkdir -p "$tmp/corpus"
i=0
while [ $i -lt 200 ]; do
    echo "the cat sat on the mat; the dog ran after the cat. don't stop $i" ; i=$((i + 1))
done >"$tmp/corpus/a.txt"
printf 'caf\303\251 \346\227\245\346\234\254 the the the\n' >"$tmp/corpus/b.txt"
printf 'skip\000me' >"$tmp/corpus/c.bin"
printf 'index' >"$tmp/corpus/a.dat"
"$KNOB" bpe train "$tmp/corpus" --vocab 300 --out "$tmp/bpe" >"$tmp/out" 2>"$tmp/err" ||
    fail "bpe train: exit $? ($(head -n 1 "$tmp/err"))"
grep -q 'in 2 files (2 skipped)' "$tmp/out" || fail "bpe train: file counts wrong: $(head -n 1 "$tmp/out")"
grep -q 'vocabulary of 300' "$tmp/out" || fail "bpe train: vocabulary is not 300: $(cat "$tmp/out")"
[ "$(head -n 1 "$tmp/bpe/vocab.bpe")" = "#version: 0.2" ] || fail "bpe train: vocab.bpe header"
[ "$(wc -l <"$tmp/bpe/vocab.bpe")" -eq 44 ] || fail "bpe train: want 43 merges + header, got $(wc -l <"$tmp/bpe/vocab.bpe") lines"
grep -q '"<|endoftext|>": 299}$' "$tmp/bpe/encoder.json" || fail "bpe train: <|endoftext|> is not id 299"
out=$("$KNOB" tokenize --tokenizer "bpe:$tmp/bpe" --ids --text ' the cat') || fail "trained bpe: exit $?"
[ "$(echo "$out" | wc -w)" -eq 2 ] || fail "trained bpe: ' the cat' is '$out', want 2 tokens"
"$KNOB" tokenize --tokenizer "bpe:$tmp/bpe" --ids "$tmp/bin" >"$tmp/ids" || fail "trained bpe on binary: exit $?"
"$KNOB" tokenize --tokenizer "bpe:$tmp/bpe" --decode "$tmp/ids" >"$tmp/back" || fail "trained bpe --decode: exit $?"
cmp -s "$tmp/bin" "$tmp/back" || fail "trained bpe: binary file does not round-trip"
"$KNOB" bpe train "$tmp/corpus/a.txt" --vocab 280 --out "$tmp/bpe2" --json >"$tmp/out" || fail "bpe train --json: exit $?"
grep -q '"vocab_size": 280' "$tmp/out" || fail "bpe train --json: $(cat "$tmp/out")"
expect_fail 2 "bpe without train" "$KNOB" bpe
expect_fail 2 "bpe tain" "$KNOB" bpe tain "$tmp/corpus"
expect_fail 2 "bpe train without --out" "$KNOB" bpe train "$tmp/corpus"
expect_fail 2 "bpe train --vocab 10" "$KNOB" bpe train "$tmp/corpus" --vocab 10 --out "$tmp/x"
expect_fail 1 "bpe train missing corpus" "$KNOB" bpe train "$tmp/none.txt" --out "$tmp/x"
grep -q "$tmp/none.txt" "$tmp/err" || fail "bpe train missing corpus: message does not name it"
"$KNOB" bpe train --help | grep -q 'knob bpe train CORPUS' || fail "bpe train --help"
"$KNOB" help tokenize | grep -q -- '--allow-special' || fail "help tokenize"

# --- GPT-2 ---------------------------------------------------------------------------------------
# where knob looks (knob_data_dir): $KNOB_DATA, else data/ beside the build folder, else ./data
data=${KNOB_DATA:-}
if [ -z "$data" ]; then
    data=$(dirname "$(dirname "$KNOB")")/data
    [ -d "$data" ] || data=data
fi
if [ ! -f "$data/gpt2/encoder.json" ]; then
    echo "SKIP: GPT-2 parts: $data/gpt2/encoder.json is absent (scripts/setup.sh fetches it)"
    [ "$failures" -eq 0 ]
    exit
fi
out=$("$KNOB" tokenize --ids --text 'Hello world') || fail "gpt2 --ids: exit $?"
[ "$out" = "15496 995" ] || fail "gpt2 --ids: got '$out', want '15496 995'"
printf 'Hello world' | "$KNOB" tokenize >"$tmp/out" || fail "gpt2 stdin: exit $?"
printf '15496\t"Hello"\n995\t" world"\n' >"$tmp/want"
cmp -s "$tmp/out" "$tmp/want" || fail "gpt2 table output: $(cat "$tmp/out")"
printf 'a\tb\n\303' >"$tmp/odd.txt"    # tab, newline and an incomplete UTF-8 sequence
"$KNOB" tokenize "$tmp/odd.txt" >"$tmp/out" || fail "gpt2 odd file: exit $?"
grep -q '"\\t"' "$tmp/out" || fail "gpt2 table: tab not shown as \\t: $(cat "$tmp/out")"
grep -q '"\\n"' "$tmp/out" || fail "gpt2 table: newline not shown as \\n"
grep -q '"\\xc3"' "$tmp/out" || fail "gpt2 table: lone byte not shown as \\xc3"
# <|endoftext|>: ordinary text unless --allow-special
out=$("$KNOB" tokenize --ids --allow-special --text 'a<|endoftext|>b')
[ "$out" = "64 50256 65" ] || fail "--allow-special: got '$out', want '64 50256 65'"
out=$("$KNOB" tokenize --ids --text 'a<|endoftext|>b')
case " $out " in *" 50256 "*) fail "without --allow-special 50256 appeared: $out" ;; esac
[ "$(echo "$out" | wc -w)" -gt 3 ] || fail "without --allow-special: too few tokens: $out"
out=$("$KNOB" tokenize --decode --text '15496, 995, 50256')
[ "$out" = "Hello world<|endoftext|>" ] || fail "gpt2 --decode: got '$out'"
"$KNOB" tokenize --json --text 'Hello world' | grep -q '"n_bytes": 11, "n_tokens": 2, "ids": \[15496, 995\]' ||
    fail "gpt2 --json"
"$KNOB" tokenize --ids "$tmp/bin" >"$tmp/ids" || fail "gpt2 binary file: exit $?"
"$KNOB" tokenize --decode "$tmp/ids" >"$tmp/back" || fail "gpt2 --decode of binary: exit $?"
cmp -s "$tmp/bin" "$tmp/back" || fail "gpt2: binary file does not round-trip"

[ "$failures" -eq 0 ]

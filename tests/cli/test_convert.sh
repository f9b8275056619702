#!/bin/sh
# test_convert.sh: `knob convert` between the formats, starting from the tiny HF GPT-2 fixture
# (tests/data/gpt_tiny): HF folder -> llm.c f32 -> HF (no prefix) -> knob -> llm.c again must give
# a byte-identical llm.c file (every conversion exact); bf16 halves the data; the output format is
# picked from OUT's name; broken inputs fail with one line naming the file.
# Run by tests/run.sh (from the repository root) with $KNOB set to the binary's absolute path.
. "$(dirname "$0")/../cli_lib.sh"

tiny=tests/data/gpt_tiny
[ -f "$tiny/model.safetensors" ] || { fail "$tiny/model.safetensors missing (run from the repository root)"; exit 1; }

run() {   # run WHAT ARGS...: knob convert ARGS must succeed quietly on stderr
    what=$1; shift
    "$KNOB" convert "$@" >"$tmp/out" 2>"$tmp/err" || fail "$what: exit $? ($(head -n 1 "$tmp/err"))"
    [ -s "$tmp/err" ] && fail "$what: wrote to stderr: $(head -n 1 "$tmp/err")"
}

# --- a chain of exact conversions ---------------------------------------------------------------
run "hf -> llmc" "$tiny" "$tmp/a.bin"
grep -q "^$tiny (hf): 2 layers, 2 heads, n_embd 16, context 16, vocab 50, 7648 parameters, tokenizer gpt2$" "$tmp/out" \
    || fail "hf -> llmc: summary line wrong: $(head -n 1 "$tmp/out")"
# 1024-byte header + 4 bytes x (128 padded vocab rows x 16 + 16 x 16 + 2 layers x (12 x 256 + 13 x 16) + 2 x 16)
[ "$(wc -c <"$tmp/a.bin")" -eq $((1024 + 4 * (128 * 16 + 256 + 2 * (3072 + 208) + 32))) ] \
    || fail "llmc f32 file has $(wc -c <"$tmp/a.bin") bytes"
run "llmc -> hf" "$tmp/a.bin" "$tmp/hf"
[ -f "$tmp/hf/model.safetensors" ] && [ -f "$tmp/hf/config.json" ] || fail "llmc -> hf: folder incomplete"
grep -q '"n_positions": 16' "$tmp/hf/config.json" || fail "config.json lacks n_positions 16"
"$KNOB" inspect "$tmp/hf/model.safetensors" >"$tmp/insp" 2>&1 || fail "inspect hf output: exit $?"
grep -q '^h\.0\.mlp\.c_fc\.weight  *F32  *(16, 64)' "$tmp/insp" || fail "hf output: c_fc.weight not stored (in, out) = (16, 64)"
run "hf -> knob" "$tmp/hf" "$tmp/k.safetensors"
"$KNOB" inspect "$tmp/k.safetensors" >"$tmp/insp" 2>&1 || fail "inspect knob output: exit $?"
grep -q '^  knob\.model  *gpt$' "$tmp/insp" || fail "knob output lacks knob.model = gpt"
grep -q '^  tokenizer  *gpt2$' "$tmp/insp" || fail "knob output lacks tokenizer = gpt2"
grep -q '^h\.0\.mlp\.c_fc\.weight  *F32  *(64, 16)' "$tmp/insp" || fail "knob output: c_fc.weight not (out, in) = (64, 16)"
run "knob -> llmc" "$tmp/k.safetensors" "$tmp/b.bin" --to llmc
cmp -s "$tmp/a.bin" "$tmp/b.bin" || fail "llmc -> hf -> knob -> llmc changed the file"

# --- bf16 ---------------------------------------------------------------------------------------
run "llmc bf16" "$tmp/k.safetensors" "$tmp/h.bin" --bf16
[ "$(wc -c <"$tmp/h.bin")" -eq $((1024 + 2 * (128 * 16 + 256 + 2 * (3072 + 208) + 32))) ] \
    || fail "llmc bf16 file has $(wc -c <"$tmp/h.bin") bytes"
grep -q 'llmc bf16' "$tmp/out" || fail "bf16: summary does not say bf16"
run "bf16 -> f32" "$tmp/h.bin" "$tmp/h32.bin"
cmp -s "$tmp/a.bin" "$tmp/h32.bin" && fail "bf16 round trip kept every float32 bit (it should round)"
run "bf16 again" "$tmp/h32.bin" "$tmp/h16.bin" --bf16
cmp -s "$tmp/h.bin" "$tmp/h16.bin" || fail "rounding bf16 values to bf16 again changed them"

# --- errors -------------------------------------------------------------------------------------
# expect CODE WANT ARGS...: exit CODE, one line on stderr containing WANT, OUT not created
expect() {
    code=$1; want=$2; shift 2
    "$KNOB" convert "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?
    first=$(head -n 1 "$tmp/err")
    [ "$rc" -eq "$code" ] || fail "convert $*: exit $rc, want $code ($first)"
    case $first in *"$want"*) ;; *) fail "convert $*: stderr '$first' lacks '$want'" ;; esac
    [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "convert $*: stderr has $(wc -l <"$tmp/err") lines, want 1"
    [ -e "$tmp/never" ] && fail "convert $*: created the output"
}
expect 1 "$tmp/missing.bin: cannot open" "$tmp/missing.bin" "$tmp/never"
expect 2 "--bf16 applies to llm.c output only" "$tmp/a.bin" "$tmp/never" --to hf --bf16
expect 2 "--to" "$tmp/a.bin" "$tmp/never" --to onnx
expect 2 "knob convert" "$tmp/a.bin"
head -c 5000 "$tmp/a.bin" >"$tmp/cut.bin"
expect 1 "$tmp/cut.bin: truncated" "$tmp/cut.bin" "$tmp/never"
{ printf 'XXXX'; tail -c +5 "$tmp/a.bin"; } >"$tmp/magic.bin"
expect 1 "$tmp/magic.bin: not an llm.c checkpoint" "$tmp/magic.bin" "$tmp/never"
expect 1 "config.json: header length" "$tiny/config.json" "$tmp/never"
mkdir "$tmp/nocfg" && cp "$tiny/model.safetensors" "$tmp/nocfg/"
expect 1 "no config.json beside it" "$tmp/nocfg" "$tmp/never"

# --- knob embed and knob attention on the tiny model, with an 11-character tokenizer ---------------
run "with a char tokenizer" "$tiny" "$tmp/c.safetensors" --tokenizer 'char:" abcdefghij"'
grep -q 'tokenizer char:" abcdefghij"$' "$tmp/out" || fail "convert --tokenizer: summary lacks the tokenizer"
run "char model -> hf" "$tmp/c.safetensors" "$tmp/chf"
run "hf -> knob" "$tmp/chf" "$tmp/c2.safetensors"
grep -q '(hf): .*tokenizer char:" abcdefghij"$' "$tmp/out" || fail "an HF folder lost the char tokenizer"
run "char model -> llmc" "$tmp/c.safetensors" "$tmp/c.bin"
grep -q '^note: llmc files carry no tokenizer' "$tmp/out" || fail "llmc output of a char model: no note about the tokenizer"
"$KNOB" embed "$tmp/c.safetensors" a bad --top 3 --out "$tmp/emb" >"$tmp/out" 2>"$tmp/err" \
    || fail "embed: exit $? ($(head -n 1 "$tmp/err"))"
grep -q '50 tokens x 16 dimensions (wte); tokenizer char (11 ids)' "$tmp/out" || fail "embed: header line"
grep -q "^a (token 1 'a'), nearest by cosine:" "$tmp/out" || fail "embed: no section for 'a'"
grep -q "^bad (3 tokens: 'b' 'a' 'd'; their mean), nearest by cosine:" "$tmp/out" || fail "embed: 'bad' not cut into 3 tokens"
[ "$(grep -c '^   [123]\. [+-]0\.[0-9]\{4\}  ' "$tmp/out")" -eq 6 ] || fail "embed: want 3 neighbours per word"
head -n 1 "$tmp/emb/embed.svg" | grep -q '^<svg ' && tail -n 1 "$tmp/emb/embed.svg" | grep -q '^</svg>$' \
    || fail "embed: embed.svg is not a whole SVG document"
"$KNOB" attention "$tmp/c.safetensors" "abc ab" --out "$tmp/att" >"$tmp/out" 2>"$tmp/err" \
    || fail "attention: exit $? ($(head -n 1 "$tmp/err"))"
grep -q '^abc ab: 6 tokens: a b c ␣ a b$' "$tmp/out" || fail "attention: token line"
[ "$(grep -c '^    [01]    [01]  ' "$tmp/out")" -eq 4 ] || fail "attention: want a row for each of 2 layers x 2 heads"
for f in attention.svg attention_layer0.svg attention_layer1.svg; do
    tail -n 1 "$tmp/att/$f" 2>/dev/null | grep -q '^</svg>$' || fail "attention: $f missing or cut"
done
"$KNOB" attention "$tmp/c.safetensors" "abcabcabcabcabcab" --out "$tmp/att" >"$tmp/out" 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "TEXT is 17 tokens; the model's context holds 16" "$tmp/err" || fail "attention: text longer than the context"
"$KNOB" attention "$tmp/c.safetensors" "abz" --out "$tmp/att" >"$tmp/out" 2>"$tmp/err"
[ $? -eq 1 ] && grep -q "character 'z'" "$tmp/err" || fail "attention: a character outside the tokenizer"
"$KNOB" embed "$tmp/missing.safetensors" a >"$tmp/out" 2>"$tmp/err"
[ $? -eq 1 ] && grep -q "missing.safetensors: cannot open" "$tmp/err" || fail "embed: a missing model"

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all checks passed"

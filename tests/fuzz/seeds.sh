#!/bin/sh
# tests/fuzz/seeds.sh KNOB OUT: writes a seed corpus for every fuzz target into OUT/<target>/,
# made by knob itself and by printf (no third-party files): valid files of each format and a few
# near misses. Needs data/gpt2 for the GPT-2 tokenizer seeds (scripts/setup.sh --deps).
set -eu
KNOB=$1; OUT=$2
cd "$(dirname "$0")/../.."
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
for t in args bpe_files csv digits gpt2_decode gpt2_encode gpt_file gpt_hf idx image llmc_tokenizer safetensors serve_request tokens; do
    mkdir -p "$OUT/$t"
done

# safetensors: the fit models, a classifier checkpoint, a GPT; and a GPT in three formats
"$KNOB" --threads 1 fit --out "$w/fit" --epochs 20 >/dev/null
cp "$w/fit/fit.safetensors" "$OUT/safetensors/fit.safetensors"
"$KNOB" convert tests/data/gpt_tiny "$w/tiny.safetensors" >/dev/null
"$KNOB" convert tests/data/gpt_tiny "$w/tiny.bin" >/dev/null
"$KNOB" convert tests/data/gpt_tiny "$w/tiny16.bin" --bf16 >/dev/null
cp "$w/tiny.safetensors" "$OUT/safetensors/gpt.safetensors"
cp "$w/tiny.safetensors" "$w/tiny.bin" "$w/tiny16.bin" "$OUT/gpt_file/"
cp tests/data/gpt_tiny/model.safetensors "$OUT/safetensors/hf.safetensors"
printf '\010\000\000\000\000\000\000\000{}      ' >"$OUT/safetensors/empty.safetensors"
{ cat tests/data/gpt_tiny/config.json; printf '\n--\n'; cat tests/data/gpt_tiny/model.safetensors; } >"$OUT/gpt_hf/tiny"

# tokenizers: a small BPE learned from generated text; GPT-2's as an llm.c tokenizer file
i=0; while [ $i -lt 200 ]; do echo "the cat sat on the mat $i times, and the dog ran."; i=$((i + 1)); done >"$w/text.txt"
"$KNOB" bpe train "$w/text.txt" --vocab 300 --out "$w/bpe" >/dev/null
{ cat "$w/bpe/encoder.json"; printf '\n--\n'; cat "$w/bpe/vocab.bpe"; } >"$OUT/bpe_files/small"
"$KNOB" convert tests/data/gpt_tiny "$w/t2.safetensors" --tokenizer 'char:"ABCDEFGHIJKLMNOPQRSTUVWabcdefghijklmnopqrstuvwxyz"' --write-tokenizer "$w/byte_tok.bin" >/dev/null
cp "$w/byte_tok.bin" "$OUT/llmc_tokenizer/char.bin"

# the corpus token cache, from a tiny GPT run
printf 'hello world, hello knob.\n%.0s' $(seq 30) >"$w/corpus.txt"
"$KNOB" --threads 1 train-gpt "$w/corpus.txt" --layers 1 --heads 1 --embd 8 --block 8 --batch 2 --steps 1 \
    --warmup 0 --out "$w/gpt" >/dev/null
cp "$w/gpt/tokens.bin" "$OUT/tokens/tokens.bin"

# IDX (8x8 images, labels) and gzip of one; PGM and PNG images
oct() { printf '\\%03o' "$1"; }
{ printf '\000\000\010\003\000\000\000\002\000\000\000\010\000\000\000\010'; i=0; while [ $i -lt 128 ]; do printf "$(oct $((i * 2 % 256)))"; i=$((i + 1)); done; } >"$OUT/idx/images"
printf '\000\000\010\001\000\000\000\003\000\001\002' >"$OUT/idx/labels"
gzip -c "$OUT/idx/images" >"$OUT/idx/images.gz"
{ printf 'P5\n4 3\n255\n'; printf '\000\100\200\377\000\100\200\377\000\100\200\377'; } >"$OUT/image/small.pgm"
printf 'P2\n# a comment\n2 2\n15\n0 5\n10 15\n' >"$OUT/image/ascii.pgm"
mkidx() {
    { printf '\000\000\010\003\000\000\000\006\000\000\000\010\000\000\000\010'; i=0; while [ $i -lt 384 ]; do printf "$(oct $((i * 7 % 256)))"; i=$((i + 1)); done; } >"$1/train-images-idx3-ubyte"
    printf '\000\000\010\001\000\000\000\006\000\001\002\000\001\002' >"$1/train-labels-idx1-ubyte"
    cp "$1/train-images-idx3-ubyte" "$1/t10k-images-idx3-ubyte"; cp "$1/train-labels-idx1-ubyte" "$1/t10k-labels-idx1-ubyte"
}
mkdir -p "$w/d"; mkidx "$w/d"
"$KNOB" --threads 1 train --dataset "idx:$w/d" --val 2 --model cnn --conv 2 --hidden 4 --epochs 1 --batch-size 2 \
    --out "$w/cls" >/dev/null 2>&1
for p in "$w"/cls/*.png; do cp "$p" "$OUT/image/"; done

# CSV, digits, flags, text and ids
printf 'x,y\n1,2\n2,4.5\n3,6.1\n# comment\n4,8\n' >"$OUT/csv/plain.csv"
printf '1,1e3\n2,-0.5\n\n3, 4\n' >"$OUT/csv/spaces.csv"
{ printf '{"data":['; i=0; while [ $i -lt 784 ]; do [ $i -gt 0 ] && printf ','; printf '0.%d' $((i % 10)); i=$((i + 1)); done; printf ']}'; } >"$OUT/digits/one.json"
printf '{"data": [0, 1, 0.5]}' >"$OUT/digits/short.json"
printf -- '--int\0005\000--lr\0000.01\000pos\000--flag' >"$OUT/args/a"
printf -- '--optim=adam\000--seed\00018446744073709551615\000--name\000\000--in' >"$OUT/args/b"
printf 'Hello world! It'"'"'s 2026. \346\227\245\346\234\254 \360\237\230\200\n\tcode(x) = 42;' >"$OUT/gpt2_encode/mixed"
printf '\377\376 bad \300\200 bytes<|endoftext|>' >"$OUT/gpt2_encode/invalid"
printf '\017\074\000\000\343\003\000\000\000\304\000\000\377\377\377\377' >"$OUT/gpt2_decode/ids"

# knob serve's request bodies (fuzz_serve_request): a completion, a chat with logprobs, token ids
printf '{"prompt":"hello","max_tokens":4,"temperature":0,"stop":["\\n","lo"],"echo":true,"logprobs":2,"seed":3}' \
    >"$OUT/serve_request/completion.json"
printf '{"model":"m","messages":[{"role":"system","content":"be nice"},{"role":"user","content":[{"type":"text","text":"hi"}]}],"stream":true,"logprobs":true,"top_logprobs":5,"stream_options":{"include_usage":true}}' \
    >"$OUT/serve_request/chat.json"
printf '{"prompt":[1,2,255],"tokens":[104,105],"content":"h\\u00e9"}' >"$OUT/serve_request/ids.json"

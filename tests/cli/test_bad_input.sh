#!/bin/sh
# test_bad_input.sh: every command of `knob help`, given bad input, answers with one line on stderr
# that names the file or flag at fault, exits 1 (error) or 2 (usage), prints nothing on stdout and
# leaves the work folder as it was (no new file, no changed file, no *.tmp.* left behind).
#
# Two kinds of case, both run by `try`:
# - numeric flags, generated from each command's --help (its flag table): below the minimum, above
#   the maximum, -1, 0 where 0 is out of range, nan, inf, 1e309, 99999999999999999999, 12abc, an
#   empty string, and the flag with its value missing at the end of argv;
# - files, from the table at the end: a missing path, an empty file, a folder where a file is
#   expected and a file where a folder is expected, /dev/null, and files of the wrong kind (a fit
#   checkpoint, a CNN classifier, a GPT, a GPT whose tokenizer metadata was edited to a larger one).
. "$(dirname "$0")/../cli_lib.sh"
cd "$(dirname "$0")/../.."

W=$tmp/w                         # the folder whose listing must not change
mkdir -p "$W/folder" "$W/out"
M=$W/missing.safetensors         # does not exist
E=$W/empty.safetensors; : >"$E"  # empty
D=$W/folder                      # an empty folder
F=$W/plain.txt                   # a text file where a folder is expected
printf 'the quick brown fox jumps over the lazy dog.\nhello world.\n' >"$F"
C=$W/corpus.txt; cp "$F" "$C"
O=$W/out                         # output folder, empty
IMG=$W/img.pgm; printf 'P5\n2 2\n255\n\000\377\377\000' >"$IMG"
printf 'x,y\n1,2\n2,nan\n3,4\n' >"$W/nan.csv"
printf 'x,y\n1,2\n2,1e309\n3,4\n' >"$W/huge.csv"
printf 'x,y\n1,2\n2,12abc\n3,4\n' >"$W/junk.csv"
printf 'QQQQ\n' >"$W/q.txt"                                          # not in the GPT's characters
printf 'P5\n99999999 99999999\n255\n' >"$W/huge.pgm"                # header sizes out of range
printf 'P5\n2 2\n255\n\000' >"$W/short.pgm"                         # truncated pixels
R=$PWD
FIT=$R/tests/data/old_checkpoints/fit.safetensors
CNN=$R/tests/data/old_checkpoints/cnn.safetensors
GPT=$R/tests/data/old_checkpoints/gpt.safetensors
HF=$R/tests/data/gpt_tiny
# the GPT with its char tokenizer (30 ids) swapped for byte (256): same header length, padded
BIG=$W/gpt-byte.safetensors
perl -0777 -pe 's/("tokenizer":)"char:\\"\\\\n ,\.abcdefghijklmnopqrstuvwxyz\\""/$1 . "\"byte\"" . (" " x (length($&) - length($1) - 6))/e' \
    "$GPT" >"$BIG" || fail "cannot make $BIG"
cmp -s "$GPT" "$BIG" && fail "the tokenizer edit did not change $BIG"

listing() { find "$W" \( -type d -printf '%p/\n' \) -o -printf '%p %s %T@\n' | sort; }
listing >"$tmp/before"
n_cases=0

# try RC WANT ARGS...: `knob ARGS` exits RC (1, 2, or 12 for either), writes exactly one line on
# stderr, containing WANT, nothing on stdout, and leaves $W as it was.
try() {
    want_rc=$1; want=$2; shift 2
    n_cases=$((n_cases + 1))
    # run in $W, so that a default output folder ("out") would show in its listing
    (cd "$W" && exec timeout 20 "$KNOB" "$@") >"$tmp/out" 2>"$tmp/err" </dev/null
    rc=$?
    what="knob $*"
    case $want_rc in
    12) [ $rc -eq 1 ] || [ $rc -eq 2 ] || fail "$what: exit $rc, want 1 or 2 ($(head -c 200 "$tmp/err"))" ;;
    *)  [ $rc -eq "$want_rc" ] || fail "$what: exit $rc, want $want_rc ($(head -c 200 "$tmp/err"))" ;;
    esac
    [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "$what: $(wc -l <"$tmp/err") lines on stderr: $(head -c 300 "$tmp/err")"
    grep -qF -- "$want" "$tmp/err" || fail "$what: stderr does not name '$want': $(head -c 200 "$tmp/err")"
    [ -s "$tmp/out" ] && fail "$what: wrote on stdout: $(head -c 100 "$tmp/out")"
    listing >"$tmp/after"
    if ! cmp -s "$tmp/before" "$tmp/after"; then
        fail "$what: changed $W: $(diff "$tmp/before" "$tmp/after" | grep '^[<>]' | head -3 | tr '\n' ' ')"
        rm -rf "$O"; mkdir -p "$O"; listing >"$tmp/before"
    fi
}

# ------------------------------------------------------------------------------------------------
# Numeric flags, from --help. Each command's positionals are valid ones, so the flag is the fault.
base() {
    case $1 in
    inspect) echo "$FIT" ;;
    eval) echo "$CNN" ;;
    predict) echo "$CNN $IMG" ;;
    tokenize) echo "$C" ;;
    bpe) echo "train $C --out $O/bpe" ;;
    ngram|train-gpt) echo "$C" ;;
    convert) echo "$GPT $O/x.safetensors" ;;
    embed) echo "$GPT the" ;;
    attention|next) echo "$GPT hello" ;;
    generate|chat) echo "$GPT" ;;
    score) echo "$GPT $C" ;;
    esac
}

# "--flag META ... (lo to hi)" -> "flag lo hi"; "(at least lo)" -> "flag lo -"; a seed -> "flag - -"
numeric_flags() {
    "$KNOB" "$@" --help | sed -n 's/^  --\([a-z-]*\) [^ ][^ ]*  .*(\(-\{0,1\}[0-9.e+-]*\) to \(-\{0,1\}[0-9.e+-]*\))$/\1 \2 \3/p
s/^  --\([a-z-]*\) [^ ][^ ]*  .*(at least \([0-9.e+-]*\))$/\1 \2 -/p
s/^  --\(seed\) N  .*\]$/\1 - -/p'
}
value_flags() { "$KNOB" "$@" --help | sed -n 's/^  --\([a-z-]*\) [^ ][^ ]*  .*/\1/p'; }

is_int() { case $1 in *[!0-9-]*|'') return 1 ;; esac; }
outside() {   # lo hi: values just outside [lo, hi]
    lo=$1 hi=$2
    if [ "$lo" != - ]; then
        if is_int "$lo"; then echo $((lo - 1)); else awk "BEGIN { print $lo / 10 }"; fi
        is_int "$lo" || ! awk "BEGIN { exit !($lo > 0) }" || echo 0
        awk "BEGIN { exit !($lo > 0) }" && echo -1
    else
        echo -1
    fi
    if [ "$hi" != - ]; then
        if is_int "$hi"; then echo $((hi + 1)); else awk "BEGIN { print $hi * 10 }"; fi
    fi
}

for cmd in "" fit inspect train eval predict tokenize bpe ngram convert embed attention train-gpt generate score next chat; do
    if [ -z "$cmd" ]; then set --; else set -- "$cmd"; fi
    b=$(base "$cmd")
    numeric_flags "$@" >"$tmp/flags"
    while read -r flag lo hi; do
        for v in $(outside "$lo" "$hi") nan inf -inf 1e309 99999999999999999999 12abc 0x10 ''; do
            if [ -z "$cmd" ]; then try 2 "--$flag" --$flag "$v" help
            else try 2 "--$flag" "$@" $b --$flag "$v"; fi
        done
        [ -n "$cmd" ] && try 2 "--$flag" "$@" $b "--$flag="
    done <"$tmp/flags"
    for flag in $(value_flags "$@"); do   # the value missing at the end of argv
        try 2 "--$flag" "$@" $b --$flag
    done
done

# ------------------------------------------------------------------------------------------------
# Files. One case a line: EXIT|NAME THE MESSAGE MUST CONTAIN|ARGUMENTS (expanded by the shell).
while IFS='|' read -r rc want args; do
    case $rc in ''|'#'*) continue ;; esac
    eval "set -- $args"
    eval "want=\"$want\""
    try "$rc" "$want" "$@"
done <<'EOF'
# fit
1|$M|fit --csv $M --out $O
1|$E|fit --csv $E --out $O
1|$D|fit --csv $D --out $O
1|/dev/null|fit --csv /dev/null --out $O
1|$GPT|fit --csv $GPT --out $O
1|$C|fit --csv $C --out $O
1|nan.csv|fit --csv $W/nan.csv --out $O
1|huge.csv|fit --csv $W/huge.csv --out $O
1|junk.csv|fit --csv $W/junk.csv --out $O
1|$F|fit --out $F --epochs 1
1|$F|fit --out $F/sub --epochs 1
# inspect
1|$M|inspect $M
1|$E|inspect $E
1|$D|inspect $D
1|/dev/null|inspect /dev/null
1|$C|inspect $C
1|$IMG|inspect $IMG
# train
1|$M|train --resume $M --out $O
1|$E|train --resume $E --out $O
1|$D|train --resume $D --out $O
1|/dev/null|train --resume /dev/null --out $O
1|$FIT|train --resume $FIT --out $O
1|$GPT|train --resume $GPT --out $O
1|$M|train --data $M --out $O
1|$F|train --data $F --out $O
1|$D|train --data $D --out $O
1|$M|train --dataset idx:$M --out $O
1|$F|train --dataset idx:$F --out $O
1|$D|train --dataset idx:$D --out $O
12|--dataset|train --dataset nosuch --out $O
1|$F|train --out $F
# eval
1|$M|eval $M
1|$E|eval $E
1|$D|eval $D
1|/dev/null|eval /dev/null
1|$FIT|eval $FIT
1|$GPT|eval $GPT
1|$D|eval $CNN --dataset idx:$D
12|$F|eval $CNN --data $F
# predict
1|$M|predict $CNN $M
1|$E|predict $CNN $E
1|$D|predict $CNN $D
1|/dev/null|predict $CNN /dev/null
1|$GPT|predict $CNN $GPT
1|$C|predict $CNN $C
1|huge.pgm|predict $CNN $W/huge.pgm
1|short.pgm|predict $CNN $W/short.pgm
1|$M|predict $M $IMG
1|$E|predict $E $IMG
1|$D|predict $D $IMG
1|$FIT|predict $FIT $IMG
1|$GPT|predict $GPT $IMG
# tokenize
1|$M|tokenize $M
1|$D|tokenize $D
1|$M|tokenize --tokenizer bpe:$M --text hi
1|$F|tokenize --tokenizer bpe:$F --text hi
1|$D|tokenize --tokenizer bpe:$D --text hi
1|$M|tokenize --tokenizer llmc:$M --decode --text 1
1|$E|tokenize --tokenizer llmc:$E --decode --text 1
1|$D|tokenize --tokenizer llmc:$D --decode --text 1
1|$GPT|tokenize --tokenizer llmc:$GPT --decode --text 1
12|--tokenizer|tokenize --tokenizer nosuch --text hi
12|--tokenizer|tokenize --tokenizer char: --text hi
12|--text|tokenize --decode --text 12abc
12|--text|tokenize --decode --text 99999999999999999999
12|--text|tokenize --decode --text -1
12|--text|tokenize --decode --text 70000
# bpe
1|$M|bpe train $M --out $O/bpe
1|$E|bpe train $E --out $O/bpe
1|$D|bpe train $D --out $O/bpe
1|/dev/null|bpe train /dev/null --out $O/bpe
1|$F|bpe train $C --out $F
2|--out|bpe train $C
2|nosuch|bpe nosuch $C --out $O/bpe
# ngram
1|$M|ngram $M
12|$E|ngram $E
1|$D|ngram $D
1|/dev/null|ngram /dev/null
# convert
1|$M|convert $M $O/x.safetensors
1|$E|convert $E $O/x.safetensors
1|$D|convert $D $O/x.bin
1|/dev/null|convert /dev/null $O/x.bin
1|$FIT|convert $FIT $O/x.bin
1|$CNN|convert $CNN $O/x.bin
1|$C|convert $C $O/x.bin
1|$F|convert $GPT $F/x.bin
1|$D|convert $GPT $D --to llmc
1|$D|convert $GPT $O/x.bin --write-tokenizer $D
12|byte|convert $HF $O/x.safetensors --tokenizer byte
1|$M|convert $GPT $O/x.safetensors --tokenizer bpe:$M
12|--tokenizer|convert $GPT $O/x.safetensors --tokenizer nosuch
# embed
1|$M|embed $M the --out $O
1|$E|embed $E the --out $O
1|$D|embed $D the --out $O
1|$FIT|embed $FIT the --out $O
1|$CNN|embed $CNN the --out $O
1|$F|embed $GPT the --out $F
# attention
1|$M|attention $M hello --out $O
1|$E|attention $E hello --out $O
1|$D|attention $D hello --out $O
1|$FIT|attention $FIT hello --out $O
1|$CNN|attention $CNN hello --out $O
1|$F|attention $GPT hello --out $F
# train-gpt
1|$M|train-gpt $M --out $O/g
1|$E|train-gpt $E --out $O/g
1|$D|train-gpt $D --out $O/g
1|/dev/null|train-gpt /dev/null --out $O/g
1|$M|train-gpt --resume $M --out $O/g
1|$E|train-gpt --resume $E --out $O/g
1|$D|train-gpt --resume $D --out $O/g
1|$FIT|train-gpt --resume $FIT --out $O/g
1|$CNN|train-gpt --resume $CNN --out $O/g
1|$M|train-gpt $C --tokenizer bpe:$M --out $O/g
1|$F|train-gpt $C --tokenizer bpe:$F --out $O/g
1|$D|train-gpt $C --tokenizer bpe:$D --out $O/g
1|$F|train-gpt $C --out $F
12|--heads|train-gpt $C --heads 3 --embd 8 --out $O/g
# generate
1|$M|generate $M
1|$E|generate $E
1|$D|generate $D
1|/dev/null|generate /dev/null
1|$FIT|generate $FIT
1|$CNN|generate $CNN
1|$BIG|generate $BIG
# score
1|$M|score $M $C
1|$FIT|score $FIT $C
1|$CNN|score $CNN $C
1|$BIG|score $BIG $C
1|$M|score $GPT $M
12|$E|score $GPT $E
1|$D|score $GPT $D
1|/dev/null|score $GPT /dev/null
# next
1|$M|next $M hello
1|$D|next $D hello
1|$FIT|next $FIT hello
1|$CNN|next $CNN hello
1|$BIG|next $BIG hello
# chat
1|$M|chat $M
1|$D|chat $D
1|$FIT|chat $FIT
1|$CNN|chat $CNN
1|$BIG|chat $BIG
1|--text|tokenize --tokenizer 'char:"ab"' --text hi
1|$C|tokenize --tokenizer 'char:"ab"' $C
# flags that a resumed run takes from its checkpoint
2|--model|train --resume $CNN --model mlp --out $O
2|--kernel|train --resume $CNN --kernel=5 --out $O
2|--layers|train-gpt $C --resume $GPT --layers 2 --out $O/g
2|--tokenizer|train-gpt $C --resume $GPT --tokenizer byte --out $O/g
# words and texts the model's tokenizer cannot encode
1|QQ|embed $GPT QQ --out $O
1|q.txt|score $GPT $W/q.txt
1|q.txt|train-gpt $W/q.txt --resume $GPT --out $O
2|word 1|embed $GPT '' --out $O
1|--prompt|generate $GPT --prompt QQ
1|TEXT|next $GPT QQ
1|--user|chat $GPT
1|--bot|chat $GPT --user 'hi, '
2|TEXT|attention $GPT '' --out $O
# more /dev/null
1|/dev/null|eval /dev/null
1|/dev/null|predict /dev/null $IMG
1|/dev/null|train-gpt --resume /dev/null --out $O/g
1|/dev/null|embed /dev/null the --out $O
1|/dev/null|attention /dev/null hello --out $O
1|/dev/null|next /dev/null hello
1|/dev/null|chat /dev/null
1|/dev/null|ngram /dev/null
# empty names
1|file name is empty|inspect ''
1|file name is empty|generate ''
1|file name is empty|tokenize ''
1|file name is empty|ngram ''
1|file name is empty|score $GPT ''
1|file name is empty|predict $CNN ''
1|file name is empty|train --resume '' --out $O
1|file name is empty|train-gpt '' --out $O/g
2|--hidden|train --hidden '' --out $O
2|--conv|train --model cnn --conv '' --out $O
2|--name|train --name '' --out $O
2|--name|train --name ../escape --out $O
2|--data|train --data '' --out $O
2|--out|fit --out ''
2|--out|train --out ''
2|--out|train-gpt $C --out ''
1|--out|train --out $F/sub
1|--out|train-gpt $C --out $F
2|--out|embed $GPT the --out ''
2|--write-tokenizer|convert $GPT $O/x.bin --write-tokenizer ''
1|--errors|eval $CNN --errors $D
1|--errors|eval $CNN --errors $M/x.png
# help
2|nosuch|help nosuch
2|nosuch|nosuch
EOF

echo "test_bad_input: $n_cases cases, $failures failed"
[ "$failures" -eq 0 ]

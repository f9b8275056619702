#!/bin/sh
# test_kill_resume.sh: runs that survive kill -9. For `knob train --model mlp`, `--model cnn` (a
# generated IDX folder) and `knob train-gpt` (a generated corpus): a reference run that never
# stops; then the same run SIGKILLed at a random moment and resumed (--resume once a checkpoint
# exists, else started over), 20 times in a row, then let finish. After every kill the checkpoint
# on disk must load (knob eval / knob generate) and no temp file may be left as its only copy; the
# final checkpoints must be byte-identical to the reference's (same thread count).
#
# The kill moments are drawn from a seeded generator (KILL_SEED=N reproduces a run; the seed is
# printed) as fractions of the reference run's duration, so they land before, between and during
# checkpoint writes whatever the machine's speed. Timing never decides the test: a run that ends
# before its kill just ends the kill loop. Printed per model: the kills and how many of them found
# a checkpoint already on disk.
. "$(dirname "$0")/../cli_lib.sh"

seed=${KILL_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
echo "kill seed $seed (rerun with KILL_SEED=$seed)"
KILLS=20

# the kill moments: KILLS fractions in [0, 1) per model, from one seeded stream
LC_ALL=C awk -v s="$seed" -v n=$((3 * KILLS)) 'BEGIN { srand(s); for (i = 0; i < n; i++) printf "%.4f\n", rand() }' \
    >"$tmp/fracs"

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# an IDX folder: N training images of 8x8 in three classes (left half, right half, top half bright,
# with a little deterministic texture) and 30 test images
mkidx_big() {
    mkdir -p "$1"
    for part in "train $2" "t10k 30"; do
        set -- "$1" $part
        LC_ALL=C awk -v n="$3" '
            function be(x) { printf "%c%c%c%c", int(x / 16777216) % 256, int(x / 65536) % 256, int(x / 256) % 256, x % 256 }
            BEGIN { printf "%c%c%c%c", 0, 0, 8, 3; be(n); be(8); be(8)
                    for (i = 0; i < n; i++) { k = i % 3
                        for (r = 0; r < 8; r++) for (c = 0; c < 8; c++) {
                            v = k == 0 ? c < 4 : k == 1 ? c >= 4 : r < 4; t = (i * 7 + r * 3 + c * 5) % 40
                            printf "%c", v ? 215 + t : t } } }' >"$1/$2-images-idx3-ubyte"
        LC_ALL=C awk -v n="$3" '
            function be(x) { printf "%c%c%c%c", int(x / 16777216) % 256, int(x / 65536) % 256, int(x / 256) % 256, x % 256 }
            BEGIN { printf "%c%c%c%c", 0, 0, 8, 1; be(n); for (i = 0; i < n; i++) printf "%c", i % 3 }' \
            >"$1/$2-labels-idx1-ubyte"
    done
}
mkidx_big "$tmp/d" 600
[ "$(wc -c <"$tmp/d/train-images-idx3-ubyte")" -eq $((16 + 600 * 64)) ] || fail "generated IDX has the wrong size"
LC_ALL=C awk 'BEGIN { srand(7); n = split("the cat sat on a mat while dog ran far and fox jumped over log", w, " ")
    for (l = 0; l < 300; l++) { s = ""; for (i = 0; i < 8; i++) s = s w[int(rand() * n) + 1] " "; print s } }' \
    >"$tmp/corpus.txt"

# check_after_kill KIND DIR CKPT: the checkpoint loads if it exists. (A temp file beside it is a
# write the kill cut short; its target holds the previous version, or never existed when the kill
# hit the first write. The final run sweeps such files.)
check_after_kill() {
    [ -e "$3" ] || return 1
    case $1 in
        gpt) "$KNOB" generate "$3" --prompt a --max-tokens 2 --temperature 0 >/dev/null 2>"$tmp/load.err" ;;
        *) "$KNOB" eval "$3" >/dev/null 2>"$tmp/load.err" ;;
    esac || fail "$1: after kill $k the checkpoint does not load: $(head -n 1 "$tmp/load.err")"
    return 0
}

# run_killed KIND CKPT FRAC_OFFSET START_ARGS... : the reference is in $tmp/ref-KIND, the killed
# runs in $tmp/kill-KIND; $resume_args are the flags a resume needs besides --resume and --out
run_killed() {
    kind=$1; name=$2; off=$3; shift 3
    ref="$tmp/ref-$kind"; dir="$tmp/kill-$kind"
    t0=$(now_ms)
    "$KNOB" "$@" --out "$ref" >"$tmp/ref-$kind.txt" 2>&1 || { fail "$kind reference run failed: $(tail -n 1 "$tmp/ref-$kind.txt")"; return; }
    dur=$(($(now_ms) - t0))
    k=0; with_ckpt=0; finished=0
    while [ $k -lt $KILLS ]; do
        frac=$(sed -n "$((off + k + 1))p" "$tmp/fracs")
        # every fourth kill within 30 ms of the start (start-up, loading, the first checkpoint), the
        # others within a twelfth of the reference's time: 20 kills use up most of the run's work
        delay=$(LC_ALL=C awk -v d="$dur" -v f="$frac" -v k=$k 'BEGIN { printf "%.3f", k % 4 ? d * f / 12000 : f * 0.03 }')
        if [ -e "$dir/$name" ]; then
            "$KNOB" $resume_args --resume "$dir/$name" --out "$dir" >"$tmp/run.txt" 2>&1 &
        else
            "$KNOB" "$@" --out "$dir" >"$tmp/run.txt" 2>&1 &
        fi
        pid=$!
        sleep "$delay"
        kill -9 "$pid" 2>/dev/null
        { wait "$pid"; rc=$?; } 2>/dev/null
        if [ "$rc" -ne 137 ]; then
            # 0: it ran to the end before its kill; a resume of a run whose last checkpoint was
            # written before the kill (all epochs done) says so and ends too
            [ "$rc" -eq 0 ] || grep -q 'the run already has' "$tmp/run.txt" ||
                fail "$kind: run $k exited $rc before its kill: $(tail -n 1 "$tmp/run.txt")"
            finished=1
            break
        fi
        k=$((k + 1))
        check_after_kill "$kind" "$dir" "$dir/$name" && with_ckpt=$((with_ckpt + 1))
    done
    if [ "$finished" -eq 0 ]; then
        if [ -e "$dir/$name" ]; then
            "$KNOB" $resume_args --resume "$dir/$name" --out "$dir" >"$tmp/run.txt" 2>&1 ||
                grep -q 'the run already has' "$tmp/run.txt"
        else
            "$KNOB" "$@" --out "$dir" >"$tmp/run.txt" 2>&1
        fi || { fail "$kind: the final run failed: $(tail -n 1 "$tmp/run.txt")"; return; }
    fi
    echo "$kind: reference $dur ms; $k kills, $with_ckpt of them after a checkpoint existed"
    for f in "$ref"/*.safetensors; do
        cmp -s "$f" "$dir/$(basename "$f")" || fail "$kind: $(basename "$f") after $k kills differs from the reference"
    done
    for t in "$dir"/*.tmp.*; do
        [ -e "$t" ] || continue
        # a run that wrote its checkpoints to the end swept what the killed runs left
        grep -q 'the run already has' "$tmp/run.txt" || fail "$kind: a killed run's temp file is still there: $t"
    done
}

resume_args="--threads 1 train"
run_killed mlp idx-mlp.safetensors 0 --threads 1 train --dataset "idx:$tmp/d" --val 60 --model mlp --hidden 16 \
    --epochs 120 --batch-size 8 --lr 0.01
run_killed cnn idx-cnn.safetensors $KILLS --threads 1 train --dataset "idx:$tmp/d" --val 60 --model cnn --conv 4,6 \
    --hidden 8 --epochs 40 --batch-size 8 --lr 0.01 --shift 1 --noise 0.05
resume_args="--threads 1 train-gpt --ckpt-every 10 --eval-every 100 --eval-batches 2"
run_killed gpt gpt.safetensors $((2 * KILLS)) --threads 1 train-gpt "$tmp/corpus.txt" --tokenizer char --layers 1 \
    --heads 2 --embd 16 --block 16 --batch 4 --steps 1000 --dropout 0.1 --ckpt-every 10 --eval-every 100 --eval-batches 2

[ "$failures" -eq 0 ]

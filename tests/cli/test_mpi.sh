#!/bin/sh
# test_mpi.sh: data-parallel training under mpirun (src/train/dist.c, docs/DISTRIBUTED.md), on one
# machine with --oversubscribe: a tiny GPT (knob train-gpt) and a tiny classifier (knob train).
#   - the loss of every step with 2 and 3 ranks agrees with one process on the same global batch
#     to 1e-5 relative over 200 steps (printed: the largest difference seen), and so does ZeRO-1
#     (--shard-optimizer);
#   - two runs with the same N write byte-identical checkpoints;
#   - a checkpoint written with 2 ranks resumes with 1 and with 3, and the finished runs agree
#     with the uninterrupted one;
#   - a rank killed with SIGKILL stops the job (rank 0 names the step and the rank it waited for),
#     the last checkpoint loads and resumes; a rank that hangs (SIGSTOP) stops it after
#     KNOB_DIST_TIMEOUT with a message naming that rank;
#   - ranks started with different model flags, training flags or corpora stop at the start with
#     a message naming the rank and what differs.
# Skips (with a message) only where mpirun is absent or the binary was built without MPI.
#
# OpenMPI in a container: as root it needs its two ALLOW_RUN_AS_ROOT variables; shared-memory
# (vader) transport between the ranks. Under ASan (make asan) OpenMPI keeps allocations until exit
# that LeakSanitizer reports as leaks: knob_dist_exit runs the leak check before MPI_Finalize
# unloads OpenMPI's plugins, and tests/mpi_lsan.supp suppresses what OpenMPI's libraries and
# plugins hold (full stacks, fast_unwind_on_malloc=0, so their frames are seen through libraries
# built without frame pointers), for this test only; knob's own leaks are still reported.
. "$(dirname "$0")/../cli_lib.sh"

command -v mpirun >/dev/null 2>&1 || { echo "skip: mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev)"; exit 0; }
if ! "$KNOB" train-gpt --help 2>&1 | grep -q -- --shard-optimizer; then fail "train-gpt has no --shard-optimizer"; fi

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$(cd "$(dirname "$0")/.." && pwd)/mpi_lsan.supp:fast_unwind_on_malloc=0"
MPIRUN="mpirun --oversubscribe --bind-to none"

# the binary knows whether it has MPI: one process of two under a build without it refuses
if ! $MPIRUN -np 2 "$KNOB" train-gpt --steps 1 --out "$tmp/probe" /nonexistent >"$tmp/probe.out" 2>&1 &&
    grep -q "built without MPI" "$tmp/probe.out"; then
    echo "skip: this knob was built without MPI"
    exit 0
fi

LC_ALL=C awk 'BEGIN { srand(7); n = split("the cat sat on a mat while dog ran far and fox jumped over log", w, " ")
    for (l = 0; l < 300; l++) { s = ""; for (i = 0; i < 8; i++) s = s w[int(rand() * n) + 1] " "; print s } }' \
    >"$tmp/corpus.txt"
sed 's/cat/bat/g' "$tmp/corpus.txt" >"$tmp/other.txt"

# a tiny GPT; global batch 6 windows x 2 micro-batches: 2 ranks take one micro-batch each, 3 ranks
# split each micro-batch's rows
G="--layers 2 --heads 2 --embd 32 --block 16 --batch 6 --accum 2 --warmup 10 --lr 3e-3 --eval-every 100 --eval-batches 3 --log-every 1"
T="timeout 120"   # a hang fails the test instead of stalling it

# compare A B WHAT: two --loss-log files: every step's loss agrees to 1e-5 relative; prints the largest difference
compare() {
    cp "$1" "$tmp/a"; cp "$2" "$tmp/b"
    [ -s "$tmp/a" ] && [ "$(wc -l <"$tmp/a")" -eq "$(wc -l <"$tmp/b")" ] || { fail "$3: loss logs differ in length"; return; }
    r=$(paste "$tmp/a" "$tmp/b" | awk '$1 != $3 { bad = 1 } { d = $2 - $4; if (d < 0) d = -d; d /= $2; if (d > m) m = d }
        END { if (bad) print "steps"; else printf "%.3g\n", m }')
    echo "$3: largest relative loss difference over $(wc -l <"$tmp/a") steps: $r"
    [ "$r" != steps ] || { fail "$3: the step numbers differ"; return; }
    awk -v r="$r" 'BEGIN { exit !(r <= 1e-5) }' || fail "$3: losses differ by $r (relative) > 1e-5"
}

# ---- the sum is in rank order (tests/test_dist.c, under 3 ranks) ------------------------------------
UNIT="$(dirname "$KNOB")/test_knob"
if [ -x "$UNIT" ]; then
    $T $MPIRUN -np 3 "$UNIT" dist_rank_order >"$tmp/unit.log" 2>&1 || fail "rank order: $(grep -v '^ok' "$tmp/unit.log" | head -n 3)"
    [ "$(grep -c '^ok   dist_rank_order' "$tmp/unit.log")" -eq 3 ] || fail "rank order: not passed on all 3 ranks"
else
    fail "no $UNIT next to $KNOB"
fi

# ---- one process vs 2 and 3 ranks, 200 steps; ZeRO-1 --------------------------------------------
$T "$KNOB" --threads 1 train-gpt "$tmp/corpus.txt" $G --steps 200 --out "$tmp/n1" --loss-log "$tmp/n1.loss" \
    >"$tmp/n1.log" 2>&1 || fail "one process: $(tail -n 1 "$tmp/n1.log")"
for n in 2 3; do
    $T $MPIRUN -np $n "$KNOB" --threads 1 train-gpt "$tmp/corpus.txt" $G --steps 200 --out "$tmp/n$n" \
        --loss-log "$tmp/n$n.loss" >"$tmp/n$n.log" 2>&1 || fail "$n ranks: $(tail -n 3 "$tmp/n$n.log")"
    grep -q "^Ranks: $n processes" "$tmp/n$n.log" || fail "$n ranks: no 'Ranks:' line"
    [ "$(grep -c '^step 1/200 ' "$tmp/n$n.log")" -eq 1 ] || fail "$n ranks: not rank 0 alone printed"
    compare "$tmp/n1.loss" "$tmp/n$n.loss" "1 process vs $n ranks"
done
$T $MPIRUN -np 2 "$KNOB" --threads 1 train-gpt "$tmp/corpus.txt" $G --steps 200 --shard-optimizer --out "$tmp/z2" \
    --loss-log "$tmp/z2.loss" >"$tmp/z2.log" 2>&1 || fail "ZeRO-1: $(tail -n 3 "$tmp/z2.log")"
grep -q "optimizer state sharded" "$tmp/z2.log" || fail "ZeRO-1: not reported as sharded"
compare "$tmp/n1.loss" "$tmp/z2.loss" "1 process vs 2 ranks with --shard-optimizer"
compare "$tmp/n2.loss" "$tmp/z2.loss" "2 ranks vs 2 ranks with --shard-optimizer"

# ---- same N, same bits; ZeRO-1's checkpoint holds all the moments -------------------------------
$T $MPIRUN -np 2 "$KNOB" --threads 1 train-gpt "$tmp/corpus.txt" $G --steps 200 --out "$tmp/n2b" >"$tmp/n2b.log" 2>&1 ||
    fail "2 ranks again: $(tail -n 3 "$tmp/n2b.log")"
cmp -s "$tmp/n2/gpt.safetensors" "$tmp/n2b/gpt.safetensors" || fail "two runs with 2 ranks wrote different checkpoints"
$T $MPIRUN -np 3 "$KNOB" --threads 1 train-gpt "$tmp/corpus.txt" $G --steps 200 --out "$tmp/n3b" >"$tmp/n3b.log" 2>&1 ||
    fail "3 ranks again: $(tail -n 3 "$tmp/n3b.log")"
cmp -s "$tmp/n3/gpt.safetensors" "$tmp/n3b/gpt.safetensors" || fail "two runs with 3 ranks wrote different checkpoints"
"$KNOB" inspect "$tmp/z2/gpt.safetensors" >"$tmp/z2.inspect" 2>&1 || fail "ZeRO-1 checkpoint: $(head -n 1 "$tmp/z2.inspect")"
"$KNOB" inspect "$tmp/n2/gpt.safetensors" >"$tmp/n2.inspect" 2>&1
grep optim "$tmp/z2.inspect" | awk '{ print $1, $2, $3 }' >"$tmp/z2.names"
grep optim "$tmp/n2.inspect" | awk '{ print $1, $2, $3 }' >"$tmp/n2.names"
[ -s "$tmp/z2.names" ] && cmp -s "$tmp/z2.names" "$tmp/n2.names" || fail "ZeRO-1's checkpoint lacks moments of some tensors"

# ---- resume across a change of N -----------------------------------------------------------------
$T $MPIRUN -np 2 "$KNOB" --threads 1 train-gpt "$tmp/corpus.txt" $G --steps 200 --stop-after 100 --out "$tmp/r" \
    >"$tmp/r.log" 2>&1 || fail "2 ranks, stop after 100: $(tail -n 3 "$tmp/r.log")"
cp "$tmp/r/gpt.safetensors" "$tmp/r100.safetensors"
R="--resume $tmp/r100.safetensors --log-every 1 --eval-every 100 --eval-batches 3"
"$KNOB" --threads 1 train-gpt $R --out "$tmp/r1" --loss-log "$tmp/r1.loss" >"$tmp/r1.log" 2>&1 ||
    fail "resume with 1 process: $(tail -n 1 "$tmp/r1.log")"
$T $MPIRUN -np 3 "$KNOB" --threads 1 train-gpt $R --out "$tmp/r3" --loss-log "$tmp/r3.loss" >"$tmp/r3.log" 2>&1 ||
    fail "resume with 3 ranks: $(tail -n 3 "$tmp/r3.log")"
$T $MPIRUN -np 2 "$KNOB" --threads 1 train-gpt $R --out "$tmp/r2" --shard-optimizer >"$tmp/r2.log" 2>&1 ||
    fail "resume with 2 ranks and ZeRO-1: $(tail -n 3 "$tmp/r2.log")"
cmp -s "$tmp/r2/gpt.safetensors" "$tmp/n2/gpt.safetensors" ||
    fail "2 ranks to step 100, resumed with 2 ranks and ZeRO-1: not the uninterrupted 2 ranks' bits"
awk '$1 > 100' "$tmp/n1.loss" >"$tmp/n1.tail"
compare "$tmp/n1.tail" "$tmp/r1.loss" "uninterrupted 1 process vs 2 ranks to step 100 then 1 process"
compare "$tmp/n1.tail" "$tmp/r3.loss" "uninterrupted 1 process vs 2 ranks to step 100 then 3 ranks"
grep -q "^Resuming .* at step 100 of 200" "$tmp/r3.log" || fail "resume with 3 ranks: not at step 100"

# ---- the classifier: one process vs 2 and 3 ranks ------------------------------------------------
# an IDX folder of 8x8 images in three classes (as test_kill_resume.sh makes)
mkidx() {
    mkdir -p "$1"
    for part in "train 240" "t10k 30"; do
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
mkidx "$tmp/d"
V="train --dataset idx:$tmp/d --val 30 --model mlp --hidden 16 --dropout 0 --epochs 3 --batch-size 12 --lr 0.01 --seed 3"
$T "$KNOB" --threads 1 $V --out "$tmp/v1" >"$tmp/v1.log" 2>&1 || fail "classifier, one process: $(tail -n 1 "$tmp/v1.log")"
for n in 2 3; do
    $T $MPIRUN -np $n "$KNOB" --threads 1 $V --out "$tmp/v$n" >"$tmp/v$n.log" 2>&1 ||
        fail "classifier, $n ranks: $(tail -n 3 "$tmp/v$n.log")"
    # the epoch lines: train loss and validation loss (4 decimals) must be the same
    a=$(grep -o 'train loss [0-9.]*\|val loss [0-9.]*' "$tmp/v1.log" | tr '\n' ' ')
    b=$(grep -o 'train loss [0-9.]*\|val loss [0-9.]*' "$tmp/v$n.log" | tr '\n' ' ')
    echo "classifier, 1 process: $a"
    echo "classifier, $n ranks:   $b"
    [ -n "$a" ] && [ "$a" = "$b" ] || fail "classifier: $n ranks' losses differ from one process's"
    [ -s "$tmp/v$n/idx-mlp.safetensors" ] && [ -s "$tmp/v$n/idx-mlp-best.safetensors" ] ||
        fail "classifier, $n ranks: no checkpoints written"
done
# with dropout the ranks draw their own masks: the same N still gives the same bits
for k in a b; do
    $T $MPIRUN -np 2 "$KNOB" --threads 1 $V --dropout 0.3 --out "$tmp/vd$k" >"$tmp/vd$k.log" 2>&1 ||
        fail "classifier with dropout, 2 ranks: $(tail -n 3 "$tmp/vd$k.log")"
done
cmp -s "$tmp/vda/idx-mlp.safetensors" "$tmp/vdb/idx-mlp.safetensors" ||
    fail "classifier with dropout: two runs with 2 ranks wrote different checkpoints"

# ---- a killed rank, a hung rank -------------------------------------------------------------------
# rank 1 runs under a wrapper that waits for rank 0's first checkpoint, then kills (or stops) it
cat >"$tmp/fault.sh" <<'EOF'
#!/bin/sh
# fault.sh SIGNAL CKPT KNOB ARGS...: run knob; once CKPT exists send it SIGNAL (for KILL, also die)
sig=$1 ckpt=$2; shift 2
"$@" & pid=$!
echo $pid >"$ckpt.pid"   # the test ends a stopped one by this id
while [ ! -e "$ckpt" ] && kill -0 $pid 2>/dev/null; do sleep 0.05; done
kill -s "$sig" $pid 2>/dev/null
[ "$sig" = KILL ] && kill -s KILL $$
wait $pid
EOF
GL="$tmp/corpus.txt $G --steps 100000 --ckpt-every 20"
$T $MPIRUN -np 1 "$KNOB" --threads 1 train-gpt $GL --out "$tmp/k" : \
    -np 1 sh "$tmp/fault.sh" KILL "$tmp/k/gpt.safetensors" "$KNOB" --threads 1 train-gpt $GL --out "$tmp/k" \
    >"$tmp/k.log" 2>&1
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "killed rank: exit $rc (0: it went on; 124: it hung)"
grep -q "rank 0 stopped at step [0-9]* while waiting for rank 1" "$tmp/k.log" ||
    fail "killed rank: no message naming the step and rank 1: $(grep -i 'error\|rank' "$tmp/k.log" | head -n 3)"
grep -q "rank 1 .*exited on signal 9\|rank 1 .*signal 9" "$tmp/k.log" || fail "killed rank: mpirun did not name rank 1"
echo "killed rank: $(grep 'knob: error' "$tmp/k.log" | head -n 1)"
"$KNOB" generate "$tmp/k/gpt.safetensors" --prompt a --max-tokens 2 --temperature 0 >/dev/null 2>"$tmp/kg.err" ||
    fail "killed rank: the last checkpoint does not load: $(head -n 1 "$tmp/kg.err")"
at=$("$KNOB" --threads 1 train-gpt --resume "$tmp/k/gpt.safetensors" --stop-after 2 --out "$tmp/k" 2>&1 | sed -n 's/^Resuming .* at step \([0-9]*\) .*/\1/p')
[ -n "$at" ] && [ "$at" -ge 20 ] && [ $((at % 20)) -eq 0 ] || fail "killed rank: the checkpoint does not resume (step '$at')"

KNOB_DIST_TIMEOUT=3 $T $MPIRUN -np 1 "$KNOB" --threads 1 train-gpt $GL --out "$tmp/h" : \
    -np 1 sh "$tmp/fault.sh" STOP "$tmp/h/gpt.safetensors" "$KNOB" --threads 1 train-gpt $GL --out "$tmp/h" \
    >"$tmp/h.log" 2>&1
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "hung rank: exit $rc (0: it went on; 124: nothing stopped it)"
grep -q "step [0-9]*: rank 0 had no answer from rank 1 in 3 s" "$tmp/h.log" ||
    fail "hung rank: no timeout message naming rank 1: $(grep -i 'error' "$tmp/h.log" | head -n 2)"
echo "hung rank: $(grep 'knob: error' "$tmp/h.log" | head -n 1)"
[ -s "$tmp/h/gpt.safetensors.pid" ] && kill -s KILL "$(cat "$tmp/h/gpt.safetensors.pid")" 2>/dev/null

# ---- mismatched settings ---------------------------------------------------------------------------
mismatch() {   # mismatch WHAT EXPECTED ARGS-OF-RANK-1...
    what=$1 want=$2; shift 2
    $T $MPIRUN -np 1 "$KNOB" --threads 1 train-gpt "$tmp/corpus.txt" $G --steps 5 --out "$tmp/m" : \
        -np 1 "$KNOB" --threads 1 train-gpt "$@" --out "$tmp/m" >"$tmp/m.log" 2>&1
    rc=$?
    [ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "mismatched $what: exit $rc"
    grep -q "$want" "$tmp/m.log" || fail "mismatched $what: no message '$want': $(grep error "$tmp/m.log" | head -n 2)"
    [ "$(grep -c 'knob: error' "$tmp/m.log")" -eq 1 ] || fail "mismatched $what: not exactly one error line"
}
mismatch "model flags" "rank 1 and rank 0 differ in their model settings" \
    "$tmp/corpus.txt" $(echo "$G" | sed 's/--embd 32/--embd 16/') --steps 5
mismatch "training flags" "rank 1 and rank 0 differ in their training settings" "$tmp/corpus.txt" $G --steps 5 --lr 1e-3
mismatch "run flags" "rank 1 and rank 0 differ in their run settings" "$tmp/corpus.txt" $G --steps 5 --stop-after 2
mismatch "corpus" "rank 1 and rank 0 differ in their corpus" "$tmp/other.txt" $G --steps 5
mismatch "tokenizer" "rank 1 and rank 0 differ in their \(model settings\|tokenizer\)" "$tmp/corpus.txt" $G --steps 5 --tokenizer byte

[ "$failures" -eq 0 ]

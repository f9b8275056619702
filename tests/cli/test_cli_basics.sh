#!/bin/sh
# test_cli_basics.sh: the knob binary's front door: exit codes and the first line of stderr for
# help, --version, unknown commands, bad global flags and bad command flags. Every error must be
# exactly one line on stderr, nothing on stdout, exit 2 for usage errors.
# Run by tests/run.sh with $KNOB set to the binary's absolute path.
. "$(dirname "$0")/../cli_lib.sh"

# run ARGS...: runs knob, keeps rc, stdout and stderr
run() { "$KNOB" "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?; }

# expect_rc WANT: after run
expect_rc() { [ "$rc" -eq "$1" ] || fail "knob $args: exit $rc, want $1 (stderr: $(head -n 1 "$tmp/err"))"; }

# expect_usage_error FIXED-SUBSTRING ARGS...: exit 2, one line on stderr containing the text, no stdout
expect_usage_error() {
    want=$1; shift; args="$*"
    run "$@"
    expect_rc 2
    first=$(head -n 1 "$tmp/err")
    case $first in
        *"$want"*) ;;
        *) fail "knob $args: stderr '$first' does not contain '$want'" ;;
    esac
    case $first in
        knob*error:*) ;;
        *) fail "knob $args: stderr '$first' does not look like 'knob ...: error: ...'" ;;
    esac
    [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "knob $args: stderr has $(wc -l <"$tmp/err") lines, want 1"
    [ -s "$tmp/out" ] && fail "knob $args: wrote to stdout on a usage error"
}

# --- no command, help, version -----------------------------------------------------------------
args=""; run
expect_rc 2
head -n 1 "$tmp/err" | grep -q '^usage: knob' || fail "knob: stderr does not start with usage"
grep -q 'inspect' "$tmp/err" || fail "knob: help on stderr does not list inspect"
[ -s "$tmp/out" ] && fail "knob: printed help to stdout, want stderr"

for h in help --help -h; do
    args=$h; run "$h"
    expect_rc 0
    grep -q '^usage: knob' "$tmp/out" || fail "knob $h: stdout has no usage line"
    for c in fit inspect help --threads --version; do
        grep -q -e "$c" "$tmp/out" || fail "knob $h: does not mention $c"
    done
    [ -s "$tmp/err" ] && fail "knob $h: wrote to stderr: $(head -n 1 "$tmp/err")"
done

args=--version; run --version
expect_rc 0
[ "$(cat "$tmp/out")" = "knob 0.1.0" ] || fail "knob --version printed '$(cat "$tmp/out")'"

# --- unknown commands ---------------------------------------------------------------------------
expect_usage_error "knob: error: unknown command 'fitt' (did you mean 'fit'?); see 'knob help'" fitt
expect_usage_error "unknown command 'inspct' (did you mean 'inspect'?)" inspct
expect_usage_error "unknown command 'zzz'; see 'knob help'" zzz
expect_usage_error "unknown command 'fitt' (did you mean 'fit'?)" help fitt

# --- help CMD is CMD --help ---------------------------------------------------------------------
for c in fit inspect; do
    "$KNOB" help "$c" >"$tmp/a" 2>&1 || fail "knob help $c: exit $?"
    "$KNOB" "$c" --help >"$tmp/b" 2>&1 || fail "knob $c --help: exit $?"
    "$KNOB" "$c" -h >"$tmp/c" 2>&1 || fail "knob $c -h: exit $?"
    cmp -s "$tmp/a" "$tmp/b" || fail "knob help $c and knob $c --help differ"
    cmp -s "$tmp/a" "$tmp/c" || fail "knob help $c and knob $c -h differ"
    head -n 1 "$tmp/a" | grep -q "^usage: knob $c" || fail "knob help $c: first line is not 'usage: knob $c ...'"
done
# --help wins over other mistakes on the same line
args="fit --lr abc --help"; run fit --lr abc --help
expect_rc 0

# --- global flags -------------------------------------------------------------------------------
expect_usage_error "--threads 0 is out of range [1, 1024]" --threads 0 inspect x
expect_usage_error "--threads 2000 is out of range [1, 1024]" --threads=2000 inspect x
expect_usage_error "--threads: 'abc' is not an integer" --threads abc inspect x
expect_usage_error "--threads: '2.5' is not an integer" --threads 2.5 inspect x
expect_usage_error "--threads needs a value (N)" --threads
expect_usage_error "unknown flag '--thread' (did you mean '--threads'?)" --thread 2 inspect x
expect_usage_error "--version takes no value" --version=1

args="KNOB_THREADS=abc inspect x"
KNOB_THREADS=abc "$KNOB" inspect x >"$tmp/out" 2>"$tmp/err"; rc=$?
expect_rc 2
grep -q "KNOB_THREADS='abc'" "$tmp/err" || fail "KNOB_THREADS=abc: stderr '$(head -n 1 "$tmp/err")'"

args="--threads 2 help"; run --threads 2 help
expect_rc 0
args="KNOB_THREADS=3 --help"
KNOB_THREADS=3 "$KNOB" --help >"$tmp/out" 2>"$tmp/err"; rc=$?
expect_rc 0
grep -q -e '--threads N .*\[3\]' "$tmp/out" || fail "KNOB_THREADS=3 knob --help does not show 3 as the thread count"

# --- command flags (the parser, through real commands) --------------------------------------------
expect_usage_error "knob inspect: error: unknown flag '--jsn' (did you mean '--json'?)" inspect --jsn x
expect_usage_error "knob fit: error: unknown flag '--lr0' (did you mean '--lr'?)" fit --lr0 0.1
expect_usage_error "unknown flag '--zzzzzz'; see 'knob fit --help'" fit --zzzzzz
expect_usage_error "--json takes no value" inspect --json=yes x
expect_usage_error "--lr needs a value (FLOAT)" fit --lr
expect_usage_error "--lr: 'abc' is not a number" fit --lr abc
expect_usage_error "--lr: '1e-3x' is not a number" fit --lr=1e-3x
expect_usage_error "--lr: 'nan' is not a finite number" fit --lr nan
expect_usage_error "--lr: 'inf' is not a finite number" fit --lr inf
expect_usage_error "--lr 50 is out of range" fit --lr 50
expect_usage_error "--optim 'adan' is not one of sgd, adam, adamw" fit --optim adan
expect_usage_error "knob inspect: error: expected 1 argument (FILE), got 0" inspect
expect_usage_error "knob inspect: error: expected 1 argument (FILE), got 2" inspect a b
expect_usage_error "knob inspect: error: expected 1 argument (FILE), got 0" inspect --json

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all checks passed"

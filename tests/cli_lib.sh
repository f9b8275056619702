# tests/cli_lib.sh: sourced by every tests/cli/*.sh. Checks $KNOB (set by tests/run.sh to the
# binary's absolute path), makes a temp folder $tmp removed on exit, and counts failures:
# `fail MESSAGE` prints it and marks the script failed; end a script with `[ "$failures" -eq 0 ]`.
KNOB=${KNOB:-$PWD/build/knob}
[ -x "$KNOB" ] || { echo "FAIL: $KNOB is not an executable"; exit 1; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

#!/bin/sh
# test_guide.sh: every command docs/GUIDE.md names runs as written. The commands are the lines of its
# ```sh blocks, run in order in a fresh folder (so out/ lands there) with `knob` meaning $KNOB; each
# must exit 0.
. "$(dirname "$0")/../cli_lib.sh"
guide="$(cd "$(dirname "$0")/../.." && pwd)/docs/GUIDE.md"
[ -f "$guide" ] || { echo "FAIL: no $guide"; exit 1; }
awk '/^```sh$/ { on = 1; next } /^```/ { on = 0 } on && /^knob / { print }' "$guide" >"$tmp/commands"
n=$(wc -l <"$tmp/commands")
[ "$n" -ge 15 ] || fail "GUIDE.md names only $n commands"
mkdir "$tmp/run"
i=0
while IFS= read -r cmd; do
    i=$((i + 1))
    t0=$(date +%s)
    (cd "$tmp/run" && knob() { "$KNOB" "$@"; } && eval "$cmd") >"$tmp/out.$i" 2>&1 </dev/null ||
        fail "GUIDE.md command $i exited $?: $cmd: $(tail -n 3 "$tmp/out.$i")"
    echo "ok   $(($(date +%s) - t0)) s  $cmd"
done <"$tmp/commands"
[ -s "$tmp/run/out/gpt/attention.svg" ] || fail "the GUIDE's attention command wrote no out/gpt/attention.svg"
[ "$failures" -eq 0 ]

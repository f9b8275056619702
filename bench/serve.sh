#!/bin/sh
# bench/serve.sh MODEL [TOKENS]: knob serve's speed against knob generate on this machine (ratios,
# never pass/fail). Prints the load (uptime), then: knob generate's decode tokens/s; one streamed
# client's decode tokens/s over HTTP (from curl's first byte to its last); the time to first token
# of a 400-token prompt; and the total tokens/s of 1, 2, 4 and 8 clients at once (--parallel 8).
# A GPT-2 124M-shaped model with random weights is what docs/SERVE.md reports.
set -u
M=$1; N=${2:-48}
K=${KNOB:-build/knob}
uptime
p16="The quick brown fox jumps over the lazy dog, and then it runs far away"
"$K" generate "$M" --prompt "$p16" --max-tokens "$N" --temperature 0 --json | sed 's/.*"tokens":/generate: tokens /'
"$K" serve "$M" --port 0 --parallel 8 --quiet >/tmp/knob-bench-serve.$$ 2>&1 &
pid=$!
for _ in $(seq 1 600); do grep -q 'http://' /tmp/knob-bench-serve.$$ && break; sleep 0.1; done
url=http://127.0.0.1:$(sed -n 's/.*http:\/\/127\.0\.0\.1:\([0-9]*\) .*/\1/p' /tmp/knob-bench-serve.$$)
one() {   # one MAX_TOKENS PROMPT: "first_byte total" seconds of a streamed greedy completion
    curl -s -N -m 600 -o /dev/null -w '%{time_starttransfer} %{time_total}\n' \
        -d "{\"prompt\":\"$2\",\"max_tokens\":$1,\"temperature\":0,\"stream\":true}" "$url/v1/completions"
}
one 2 "warm up" >/dev/null
one "$N" "$p16" | awk -v n="$N" '{ printf "serve, 1 client: first token %.3f s, decode %.2f tokens/s (%d tokens)\n", $1, (n - 1) / ($2 - $1), n }'
p400=$(awk 'BEGIN { for (i = 0; i < 399; i++) printf " hello"; }')
one 1 "$p400" | awk '{ printf "serve: time to first token, 400-token prompt: %.3f s\n", $1 }'
for c in 1 2 4 8; do
    t0=$(date +%s.%N)
    pids=""
    for i in $(seq 1 "$c"); do one "$N" "$p16 $i" >/dev/null & pids="$pids $!"; done
    for q in $pids; do wait "$q"; done
    t1=$(date +%s.%N)
    echo "$c $t0 $t1" | awk -v n="$N" '{ printf "serve, %d clients: %.2f tokens/s in total (%d x %d tokens in %.1f s)\n", $1, $1 * n / ($3 - $2), $1, n, $3 - $2 }'
done
curl -s "$url/metrics" | grep -E '^knob_(decode_steps|decode_rows|completion_tokens)_total'
kill -INT "$pid"; wait "$pid"
rm -f /tmp/knob-bench-serve.$$
uptime

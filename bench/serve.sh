#!/bin/sh
# bench/serve.sh MODEL [TOKENS]: knob serve's speed against knob generate on this machine (ratios,
# never pass/fail). Prints the load (uptime), then: knob generate's decode tokens/s; over HTTP
# (bench/serve_client.mjs, node): one streamed client's decode tokens/s (first text chunk to last)
# and time to first token; the time to first token of a 400-token prompt; and the total tokens/s
# of 1, 2, 4 and 8 clients at once (--parallel 8). docs/SERVE.md reports a GPT-2 124M-shaped model
# with random weights.
set -u
M=$1; N=${2:-48}
K=${KNOB:-build/knob}
cd "$(dirname "$0")/.."
uptime
p16="The quick brown fox jumps over the lazy dog, and then it runs far away"
"$K" generate "$M" --prompt "$p16" --max-tokens "$N" --temperature 0 --json | sed 's/.*"prompt_tokens":/generate: prompt_tokens /'
p400=$(awk 'BEGIN { for (i = 0; i < 399; i++) printf " hello"; }')
"$K" generate "$M" --prompt "$p400" --max-tokens 1 --temperature 0 --json | sed 's/.*"prompt_tokens":/generate, 400-token prompt: prompt_tokens /'
"$K" serve "$M" --port 0 --parallel 8 --quiet >/tmp/knob-bench-serve.$$ 2>&1 &
pid=$!
for _ in $(seq 1 600); do grep -q 'http://' /tmp/knob-bench-serve.$$ && break; sleep 0.1; done
url=http://127.0.0.1:$(sed -n 's/.*http:\/\/127\.0\.0\.1:\([0-9]*\) .*/\1/p' /tmp/knob-bench-serve.$$)
node bench/serve_client.mjs "$url" 1 2 "warm up" >/dev/null
echo "serve, 1 client, $N tokens:"; node bench/serve_client.mjs "$url" 1 "$N" "$p16"
echo "serve, 400-token prompt:"; node bench/serve_client.mjs "$url" 1 2 "$p400"
for c in ${CLIENTS:-1 2 4 8}; do node bench/serve_client.mjs "$url" "$c" "$N" "$p16" | tail -n 1; done
curl -s "$url/metrics" | grep -E '^knob_(decode_steps|decode_rows|completion_tokens)_total'
kill -INT "$pid"; wait "$pid"
rm -f /tmp/knob-bench-serve.$$
uptime

#!/bin/sh
# test_serve_load.sh: knob serve under load and bad input, on a free loopback port.
# Load: 16 concurrent clients x 20 requests each, half streamed, every 5th cut off mid-stream by
# its client (curl -m): every request that ran to its end got a status (200, or 503 when the
# queue was full) and a body that ends as it should; nothing hangs (every curl has a limit);
# the server's RSS after the second half is within 8 MB of after the first (warm-up).
# Bad input while it serves: a truncated body with a wrong Content-Length, a 10 MB body, a slow
# client sending its body at one byte a second, raw garbage instead of HTTP; then it still answers.
# KNOB_SERVE_STEP_DELAY_MS slows the tiny model's steps so that requests overlap and cuts land
# mid-stream. Run by tests/run.sh (from the repository root) with $KNOB set.
. "$(dirname "$0")/../cli_lib.sh"
. "$(dirname "$0")/../serve/lib.sh"
serve_model
# under ASan, freed memory waits in a quarantine (256 MB) before reuse: keep it small, so that RSS
# measures what the server keeps (a plain build ignores the variable)
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4:thread_local_quarantine_size_kb=64
export ASAN_OPTIONS
KNOB_SERVE_STEP_DELAY_MS=${SERVE_DELAY_MS:-2} serve_start --parallel 4 --queue 12 --quiet

rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status"; }

client() {   # client I FROM TO: requests FROM..TO of client I
    i=$1; j=$2
    while [ "$j" -le "$3" ]; do
        o="$tmp/r.$i.$j"
        case $(( (i + j) % 4 )) in
        0) curl -s -m 30 -o "$o" -w '%{http_code}' -d '{"prompt":"User: hi","max_tokens":20}' "$url/v1/completions" >"$o.code" ;;
        1) curl -s -N -m 30 -o "$o" -w '%{http_code}' -d '{"messages":[{"role":"user","content":"hi"}],"max_tokens":20,"stream":true,"logprobs":true,"top_logprobs":5}' \
               "$url/v1/chat/completions" >"$o.code" ;;
        2) curl -s -m 30 -o "$o" -w '%{http_code}' -d '{"messages":[{"role":"user","content":"a cat"}],"max_tokens":12}' "$url/v1/chat/completions" >"$o.code" ;;
        3) if [ $(( j % 5 )) -eq 0 ]; then   # cut mid-stream: curl gives up after 0.15 s of 200 tokens
               curl -s -N -m 0.15 -o "$o" -d '{"prompt":"hi","max_tokens":200,"stream":true}' "$url/v1/completions" >/dev/null
               echo cut >"$o.code"
           else
               curl -s -N -m 30 -o "$o" -w '%{http_code}' -d '{"prompt":"hi","max_tokens":16,"stream":true}' "$url/v1/completions" >"$o.code"
           fi ;;
        esac
        j=$((j + 1))
    done
}

round() {   # round FROM TO: 16 clients at once
    pids=""
    for i in $(seq 1 16); do
        client "$i" "$1" "$2" &
        pids="$pids $!"
    done
    for p in $pids; do wait "$p"; done
}

round 1 10
rss1=$(rss)
# bad input while the second half runs
round 11 20 &
load=$!
printf 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"prompt":' >"$tmp/trunc.req"
curl -s -m 10 -o "$tmp/big.body" -w '%{http_code}' --data-binary @/dev/stdin "$url/v1/completions" >"$tmp/big.code" <<EOF2
$(head -c 10485760 /dev/zero | tr '\0' ' ')
EOF2
curl -s -m 20 --limit-rate 1 -o "$tmp/slow.body" -w '%{http_code}' -d '{  }' "$url/tokenize" >"$tmp/slow.code" &
slow=$!
# served meanwhile (503 is fair while the load fills the queue: try again)
for _ in $(seq 1 50); do
    st=$(post /v1/completions '{"prompt":"User: hi","max_tokens":4}')
    [ "$st" = 503 ] || break
    sleep 0.1
done
want 200 "$st" "a request while the slow client sends"
wait "$load"
wait "$slow"
rss2=$(rss)

total=0; ok=0; busy=0; cut=0
for f in "$tmp"/r.*.*.code; do
    total=$((total + 1)); c=$(cat "$f"); b=${f%.code}
    case $c in
    200) ok=$((ok + 1))
         case $b in
         *) if grep -q '^data: ' "$b"; then
                [ "$(tail -n 2 "$b" | head -n 1)" = "data: [DONE]" ] || fail "$(basename "$b"): stream does not end with [DONE]"
            else
                grep -q '"finish_reason":"\(stop\|length\)"' "$b" || fail "$(basename "$b"): no finish_reason: $(head -c 200 "$b")"
            fi ;;
         esac ;;
    503) busy=$((busy + 1)); grep -q '"code":"server_busy"' "$b" || fail "$(basename "$b"): 503 without server_busy" ;;
    cut) cut=$((cut + 1)) ;;
    *) fail "$(basename "$b"): status '$c': $(head -c 200 "$b" 2>/dev/null)" ;;
    esac
done
[ "$total" -eq 320 ] || fail "$total requests recorded, want 320"
[ "$ok" -gt 100 ] || fail "only $ok of 320 requests answered 200 ($busy busy)"
echo "load: $ok ok, $busy busy (503), $cut cut by their clients; RSS ${rss1} kB after warm-up, ${rss2} kB at the end"
[ $((rss2 - rss1)) -lt 8192 ] || fail "RSS grew from $rss1 kB to $rss2 kB"

[ "$(cat "$tmp/big.code")" = 413 ] || fail "10 MB body: status $(cat "$tmp/big.code")"
[ "$(cat "$tmp/slow.code")" = 400 ] && grep -q "'content' must be a string" "$tmp/slow.body" \
    || fail "slow client: status $(cat "$tmp/slow.code"): $(cat "$tmp/slow.body")"
# a body shorter than its Content-Length, then the client goes: nothing answered, nothing stuck
if command -v timeout >/dev/null; then
    curl -s -m 2 -o /dev/null -H 'Content-Length: 100' --data-binary '{"prompt":' "$url/v1/completions" 2>/dev/null
    curl -s -m 5 -o /dev/null --data-binary @"$tmp/trunc.req" "$url/nothing" 2>/dev/null
fi
printf '\001\002garbage\r\n\r\n' | curl -s -m 5 -o /dev/null -X 'GAR BAGE' "$url/" 2>/dev/null
want 200 "$(get /health)" "health after the load" '"slots_processing":0'
want 200 "$(get /metrics)" "metrics after the load" 'knob_cancelled_total [1-9]'
serve_stop
[ "$failures" -eq 0 ]

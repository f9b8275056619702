#!/bin/sh
# test_serve.sh: knob serve over raw HTTP (Debian curl) on a free loopback port, with a tiny GPT:
# every endpoint, streaming included, with bodies checked; greedy output over HTTP equals
# `knob generate --temperature 0`; every error status (400 with the field named, 401, 404, 405,
# 413, 503) in OpenAI's {"error": {...}} shape; SIGINT and SIGTERM stop it cleanly.
# Run by tests/run.sh (from the repository root) with $KNOB set.
. "$(dirname "$0")/../cli_lib.sh"
. "$(dirname "$0")/../serve/lib.sh"
serve_model

serve_start --parallel 2
grep -q "on http://127.0.0.1:$port (model 'gpt', 2 parallel" "$tmp/serve.out" || fail "address line: $(cat "$tmp/serve.out")"

# the small routes
want 200 "$(get /health)" health '"status":"ok","slots_idle":2,"slots_processing":0'
want 200 "$(get /v1/models)" models '"data":\[{"id":"gpt","object":"model"'
want 200 "$(get /v1/models/gpt)" "models/gpt" '^{"id":"gpt","object":"model".*"context_length":256}$'
want 404 "$(get /v1/models/nope)" "models/nope" '"error":{"message":"model .nope. not found'
want 200 "$(get /)" page '<title>knob chat</title>'
grep -q 'src=\|href="http' "$tmp/body" && fail "page: refers to something outside itself"
want 200 "$(post /tokenize '{"content":"hello"}')" tokenize '^{"tokens":\[[0-9]*,[0-9]*,[0-9]*,[0-9]*,[0-9]*\]}$'
ids=$(sed 's/.*\[\(.*\)\].*/\1/' "$tmp/body")
want 200 "$(post /detokenize "{\"tokens\":[$ids]}")" detokenize '^{"content":"hello"}$'
want 200 "$(post /tokenize '{"content":"hi","with_pieces":true}')" "tokenize with_pieces" '{"id":[0-9]*,"piece":"h"},{"id":[0-9]*,"piece":"i"}'

# greedy completion == knob generate --temperature 0, and the usage counts
"$KNOB" generate "$M" --prompt "User: hello" --max-tokens 24 --temperature 0 --json >"$tmp/gen.json" 2>&1 || fail "generate: $(cat "$tmp/gen.json")"
want 200 "$(post /v1/completions '{"model":"gpt","prompt":"User: hello","max_tokens":24,"temperature":0}')" completion \
    '"object":"text_completion"'
g=$(sed 's/.*"text":\("[^"]*"\),"prompt_tokens.*/\1/' "$tmp/gen.json")
h=$(sed 's/.*"text":\("[^"]*"\),"logprobs".*/\1/' "$tmp/body")
[ -n "$g" ] && [ "$g" = "$h" ] || fail "greedy over HTTP $h differs from knob generate $g"
grep -q '"finish_reason":"length"}\],"usage":{"prompt_tokens":11,"completion_tokens":24,"total_tokens":35}' "$tmp/body" \
    || fail "completion usage/finish: $(cat "$tmp/body")"
# the same, streamed: the chunks' texts joined are the same text, then [DONE]
want 200 "$(post /v1/completions '{"prompt":"User: hello","max_tokens":24,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}' -N)" \
    "stream completion" 'data: \[DONE\]'
s=$(grep '^data: {' "$tmp/body" | grep -v '"choices":\[\]' | sed 's/.*"text":"\(\([^"\\]\|\\.\)*\)".*/\1/' | tr -d '\n')
[ "\"$s\"" = "$g" ] || fail "streamed text \"$s\" differs from $g"
grep -q '"finish_reason":"length"' "$tmp/body" || fail "stream: no finish_reason"
grep -q '"choices":\[\],"usage":{"prompt_tokens":11,"completion_tokens":24' "$tmp/body" || fail "stream: no usage chunk"
[ "$(tail -n 2 "$tmp/body" | head -n 1)" = "data: [DONE]" ] || fail "stream does not end with data: [DONE]"
# echo, stop, logprobs, seed
want 200 "$(post /v1/completions '{"prompt":"User: hello","max_tokens":24,"temperature":0,"echo":true,"logprobs":3}')" echo \
    "\"text\":\"User: hello${h#\"}"
grep -q '"logprobs":{"tokens":\[' "$tmp/body" && grep -q '"text_offset":\[11,12,' "$tmp/body" \
    || fail "completion logprobs: $(head -c 400 "$tmp/body")"
stop=$(echo "$h" | cut -c 6-7)
want 200 "$(post /v1/completions "{\"prompt\":\"User: hello\",\"max_tokens\":24,\"temperature\":0,\"stop\":[\"$stop\"]}")" stop \
    '"finish_reason":"stop"'
t=$(sed 's/.*"text":"\([^"]*\)".*/\1/' "$tmp/body")
case "$t" in *"$stop"*) fail "stop string '$stop' in the text '$t'" ;; esac
case "${h#\"}" in "$t$stop"*) ;; *) fail "stopped text '$t' is not the greedy text '$h' cut before '$stop'" ;; esac
post /v1/completions '{"prompt":"User: hello","max_tokens":30,"temperature":1,"seed":7}' >/dev/null; cp "$tmp/body" "$tmp/s1"
post /v1/completions '{"prompt":"User: hello","max_tokens":30,"temperature":1,"seed":7}' >/dev/null
[ "$(sed 's/.*"text"//' "$tmp/s1")" = "$(sed 's/.*"text"//' "$tmp/body")" ] || fail "same seed, different text"

# chat, plain and streamed, with top_logprobs
want 200 "$(post /v1/chat/completions '{"messages":[{"role":"system","content":"be nice."},{"role":"user","content":"hello there"}],"max_tokens":12,"temperature":0}')" \
    chat '"object":"chat.completion".*"message":{"role":"assistant","content":"'
# the template: "System: be nice.\nUser: hello there\nAssistant:" is 45 characters
grep -q '"usage":{"prompt_tokens":45,' "$tmp/body" || fail "chat template: prompt tokens: $(cat "$tmp/body")"
want 200 "$(post /v1/chat/completions '{"messages":[{"role":"user","content":"hello"}],"max_tokens":8,"stream":true,"logprobs":true,"top_logprobs":5}' -N)" \
    "chat stream" '"delta":{"role":"assistant","content":""}'
grep -q '"top_logprobs":\[{"token":"[^"]*","logprob":-[0-9.e-]*,"bytes":\[[0-9]*\]},{' "$tmp/body" || fail "chat stream: top_logprobs: $(head -c 600 "$tmp/body")"
if command -v node >/dev/null; then   # every token's candidates: 5, most likely first, the chosen one's logprob
    node -e 'const fs = require("fs"); let n = 0;
        for (const l of fs.readFileSync(process.argv[1], "utf8").split("\n")) {
            if (!l.startsWith("data: {")) continue;
            const c = JSON.parse(l.slice(6)).choices[0];
            for (const t of (c.logprobs && c.logprobs.content) || []) {
                n++;
                if (t.top_logprobs.length !== 5) throw new Error("candidates: " + t.top_logprobs.length);
                for (let i = 1; i < 5; i++) if (t.top_logprobs[i].logprob > t.top_logprobs[i - 1].logprob) throw new Error("order");
                const p = t.top_logprobs.reduce((s, x) => s + Math.exp(x.logprob), 0);
                if (!(p > 0 && p <= 1.0001)) throw new Error("probabilities sum to " + p);
                const same = t.top_logprobs.find((x) => x.token === t.token);
                if (same && Math.abs(same.logprob - t.logprob) > 1e-6) throw new Error("chosen logprob differs");
            }
        }
        if (n !== 8) throw new Error(n + " tokens with logprobs, want 8");' "$tmp/body" 2>"$tmp/node.err" \
        || fail "chat stream logprobs: $(tail -n 1 "$tmp/node.err")"
fi
grep -q '"chat.completion.chunk"' "$tmp/body" && grep -q 'data: \[DONE\]' "$tmp/body" || fail "chat stream: chunks or [DONE] missing"

# metrics count what was done
want 200 "$(get /metrics)" metrics '^knob_completion_tokens_total [1-9]'
grep -q '^# TYPE knob_queue_depth gauge$' "$tmp/body" && grep -q '^knob_requests_total [0-9]' "$tmp/body" \
    && grep -q '^knob_tokens_per_second [0-9]' "$tmp/body" || fail "metrics: $(head -c 400 "$tmp/body")"

# errors: status, OpenAI's shape, the field named
e() {   # e STATUS PATH BODY PATTERN
    want "$1" "$(post "$2" "$3")" "error $3" "$4"
    grep -q '^{"error":{"message":"\([^"\\]\|\\.\)*","type":"[a-z_]*","param":null,"code":"[a-z_]*"}}$' "$tmp/body" \
        || fail "error shape for $3: $(cat "$tmp/body")"
}
e 400 /v1/completions '{"prompt": "hi", "max_tokens": ' 'malformed JSON'
e 400 /v1/completions '{"prompt":"hi"} x' 'text after the JSON value'
e 400 /v1/completions '[1,2]' 'must be a JSON object'
e 400 /v1/completions '{"prompt":"hi","max_tokens":-5}' "'max_tokens' must be an integer in \[1, 1000000\]"
e 400 /v1/completions '{"prompt":"hi","max_tokens":1e300}' "'max_tokens' must be an integer"
e 400 /v1/completions '{"prompt":"hi","max_tokens":"ten"}' "'max_tokens' must be an integer"
e 400 /v1/completions '{"prompt":"hi","temperature":"hot"}' "'temperature' must be a number"
e 400 /v1/completions '{"prompt":"hi","top_p":7}' "'top_p' must be a number in \[0, 1\]"
e 400 /v1/completions '{"prompt":"hi","n":2}' "'n' must be an integer in \[1, 1\]"
e 400 /v1/completions '{"prompt":"hi","stream":"yes"}' "'stream' must be true or false"
e 400 /v1/completions '{"prompt":"hi","stop":[1]}' "'stop' must be a string or an array"
e 400 /v1/completions '{"prompt":{"a":1}}' "'prompt' must be a string"
e 400 /v1/completions '{"prompt":"hi \u00e9"}' "'prompt'.*"
e 400 /v1/chat/completions '{"messages":[]}' "'messages' must be a non-empty array"
e 400 /v1/chat/completions '{"messages":[{"role":"robot","content":"hi"}]}' "'messages\[0\].role' must be"
e 400 /v1/chat/completions '{"messages":[{"role":"user","content":5}]}' "'messages\[0\].content' must be a string"
e 404 /v1/completions '{"model":"gpt-4","prompt":"hi"}' "model 'gpt-4' not found"
long=$(awk 'BEGIN { for (i = 0; i < 300; i++) printf "hello "; }')
e 400 /v1/completions "{\"prompt\":\"$long\"}" 'the prompt has 1800 tokens, and the context holds 256'
grep -q '"code":"context_length_exceeded"' "$tmp/body" || fail "context error code: $(cat "$tmp/body")"
e 400 /tokenize '{"content":7}' "'content' must be a string"
e 400 /detokenize '{"tokens":[99999]}' "'tokens\[0\]' must be a token id"
printf '{"prompt":"\377\376"}' >"$tmp/bad.json"
want 400 "$(curl -s -m 20 -o "$tmp/body" -w '%{http_code}' --data-binary @"$tmp/bad.json" "$url/v1/completions")" "invalid UTF-8" \
    'invalid UTF-8 at byte 11'
want 404 "$(get /nope)" "unknown path" '"code":"not_found"'
want 405 "$(get /v1/completions)" "GET on a POST route" 'use POST'
head -c 2000000 /dev/zero | tr '\0' 'a' >"$tmp/big"
want 413 "$(curl -s -m 20 -o "$tmp/body" -w '%{http_code}' --data-binary @"$tmp/big" "$url/v1/completions")" "2 MB body" \
    'more than 1048576 bytes'
want 200 "$(get /health)" "health after the errors" '"status":"ok"'
serve_stop

# --api-key: 401 without it or with another, in constant time; / and /health stay open
KNOB_SERVE_STEP_DELAY_MS=20 serve_start --api-key sekrit --parallel 1 --queue 1
want 401 "$(get /v1/models)" "no key" '"code":"invalid_api_key"'
want 401 "$(get /v1/models -H 'Authorization: Bearer sekriT')" "wrong key" 'invalid API key'
want 401 "$(get /v1/models -H 'Authorization: Bearer sekrit2')" "longer key" 'invalid API key'
want 200 "$(get /v1/models -H 'Authorization: Bearer sekrit')" "right key" '"id":"gpt"'
want 200 "$(get /health)" "health without a key"
want 200 "$(get /)" "page without a key"
# a full queue: one running, one waiting, the third gets 503
curl -s -m 30 -o "$tmp/q1" -H 'Authorization: Bearer sekrit' -d '{"prompt":"hi","max_tokens":40}' "$url/v1/completions" &
c1=$!
sleep 0.2
curl -s -m 30 -o "$tmp/q2" -H 'Authorization: Bearer sekrit' -d '{"prompt":"hi","max_tokens":5}' "$url/v1/completions" &
c2=$!
sleep 0.2
want 503 "$(post /v1/completions '{"prompt":"hi","max_tokens":5}' -H 'Authorization: Bearer sekrit')" "queue full" '"code":"server_busy"'
wait "$c1" "$c2"
grep -q '"finish_reason"' "$tmp/q1" && grep -q '"finish_reason"' "$tmp/q2" || fail "the two queued requests: $(cat "$tmp/q1" "$tmp/q2")"
serve_stop

# SIGTERM in the middle of a streamed reply: the stream ends (finish_reason and [DONE]), exit 0
KNOB_SERVE_STEP_DELAY_MS=20 serve_start --ctx 200
curl -s -N -m 30 -o "$tmp/cut" -d '{"prompt":"hi","max_tokens":190,"stream":true}' "$url/v1/completions" &
cpid=$!
# wait for the stream to start (on a loaded machine curl may take a while to connect), then cut it
i=0
while [ ! -s "$tmp/cut" ] && [ "$i" -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
[ -s "$tmp/cut" ] || fail "SIGTERM: the streamed reply did not start within 30 s"
kill -TERM "$pid"
wait "$cpid"
wait "$pid"; rc=$?
[ "$rc" -eq 0 ] || fail "SIGTERM: exit $rc"
grep -q 'stopping' "$tmp/serve.err" || fail "SIGTERM: no 'stopping' line: $(cat "$tmp/serve.err")"
tail -n 2 "$tmp/cut" | grep -q 'data: \[DONE\]' || fail "stream cut by SIGTERM did not end with [DONE]: $(tail -c 200 "$tmp/cut")"
grep -q '"finish_reason":"length"' "$tmp/cut" || fail "stream cut by SIGTERM: no finish_reason"

# bad flags and files: one line, exit 1 or 2
"$KNOB" serve "$M" --port 70000 >/dev/null 2>"$tmp/e1"; rc=$?
[ "$rc" -eq 2 ] || fail "--port 70000: exit $rc"
"$KNOB" serve "$M" --host nowhere --port 0 >/dev/null 2>"$tmp/e2"; rc=$?
[ "$rc" -eq 2 ] && grep -q "not an IPv4 address" "$tmp/e2" || fail "--host nowhere: exit $rc: $(cat "$tmp/e2")"
"$KNOB" serve "$M" --ctx 999 --port 0 >/dev/null 2>"$tmp/e3"; rc=$?
[ "$rc" -eq 2 ] && grep -q "ctx 999 is outside \[2, 256\]" "$tmp/e3" || fail "--ctx 999: exit $rc: $(cat "$tmp/e3")"
"$KNOB" serve "$tmp/none.safetensors" --port 0 >/dev/null 2>"$tmp/e4"; rc=$?
[ "$rc" -eq 1 ] && [ "$(wc -l <"$tmp/e4")" -eq 1 ] || fail "missing model: exit $rc: $(cat "$tmp/e4")"
[ "$failures" -eq 0 ]

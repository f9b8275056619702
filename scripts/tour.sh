#!/bin/sh
# scripts/tour.sh [TOUR FLAGS]: the main command. Sets up (packages that are missing, the data, the
# build: scripts/setup.sh), then runs `knob tour` with the flags given, e.g. --quick or --chapter 13.
# Its pictures and the report page land in out/tour/ (--out DIR to change that).
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
exec build/knob tour "$@"

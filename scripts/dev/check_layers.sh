#!/bin/sh
# check_layers.sh BUILD: checks the call graph of the built objects against the layer order of
# DESIGN.md. For every object under BUILD/src and BUILD/cli whose source still exists (a stale
# object left by a moved file is skipped) it reads the symbols it defines and the ones it uses
# (nm), joins them into file -> file edges, and fails when
#   - a file uses a symbol defined by a file of a higher layer (the one sanctioned exception: the
#     op files under src/ops call graph.c's node constructor, and graph.c walks the op table in
#     src/ops/ops.c), or
#   - files call each other in a loop (any cycle of two or more files; cli/tour.c's chapter table,
#     which names each chapter's function in cli/tour_*.c while the chapters call the framework
#     back, closes no loop, like graph.c's op table), or
#   - a file lies in a folder that is not a layer, or
#   - a file includes a project header other than the shared ones, or
#   - a cli/ file includes knob_internal.h or uses a knob_ symbol that include/knob.h does not
#     name (the CLI calls the library through the public header only), or
#   - a file other than the one chosen in DESIGN.md includes a dependency's header (cJSON only in
#     src/core/json.c, PCRE2 only in src/text/bpe.c, libpng only in src/io/image.c, zlib only in
#     src/io/idx.c and image.c, libmicrohttpd only under src/serve/, MPI only under src/train/).
# Prints each violation on a line of its own and "layers: ok (N files, M edges)" when there are none.
#
# What it cannot see: a symbol reference is an edge whether it is a call or an address stored in a
# table, but a call through a pointer handed over at run time (a callback, or graph.c calling an
# op's forward through knob_ops) is no edge at all; nor are macros and static inline functions in
# the headers, calls within one file, or tests/, examples/ and bench/ (not checked).
set -eu
B=${1:-build}
# LAYERS_SRC: the source tree the objects were built from (default: this checkout; the layer test
# points it at a made-up tree to prove the checker fails on violations)
cd "$(dirname "$0")/../.."
[ -d "$B/src" ] || { echo "check_layers: $B/src not found; build first" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for o in $(find "$B/src" "$B/cli" -name '*.o' | sort); do
    f=${o#"$B"/}
    f=${f%.o}.c
    [ -f "${LAYERS_SRC:-.}/$f" ] || continue   # stale: its source moved or was removed
    nm "$o" | awk -v f="$f" '$1 ~ /^[0-9a-f]+$/ && $2 ~ /^[TDBRVW]$/ { print "D", f, $3 }
                             $1 == "U" { print "U", f, $2 }'
done > "$tmp/syms"

awk '
function layer(f) {
    if (f ~ /^src\/core\//) return 1;   if (f ~ /^src\/kernels\//) return 2
    if (f ~ /^src\/ops\//) return 3;    if (f ~ /^src\/graph\//) return 4
    if (f ~ /^src\/io\//) return 5;     if (f ~ /^src\/text\//) return 6
    if (f ~ /^src\/data\//) return 7;   if (f ~ /^src\/train\//) return 8
    if (f ~ /^src\/models\//) return 9; if (f ~ /^src\/serve\//) return 10
    if (f ~ /^cli\//) return 11
    return 0
}
$1 == "D" { def[$3] = $2; files[$2] = 1 }
$1 == "U" { n_use++; uf[n_use] = $2; us[n_use] = $3; files[$2] = 1 }
END {
    bad = 0
    for (i = 1; i <= n_use; i++) {
        if (!(us[i] in def)) continue
        a = uf[i]; b = def[us[i]]
        if (a == b) continue
        sanctioned = (a ~ /^src\/ops\// && b == "src/graph/graph.c") || (a == "src/graph/graph.c" && b == "src/ops/ops.c")
        if (layer(a) && layer(b) > layer(a) && !sanctioned) {   # a file outside the layers is reported once, below
            printf "upward call: %s (layer %d) uses %s from %s (layer %d)\n", a, layer(a), us[i], b, layer(b)
            bad++
        }
        if (a == "src/graph/graph.c" && b == "src/ops/ops.c") continue   # the table walk closes no loop
        if (a == "cli/tour.c" && b ~ /^cli\/tour_/) continue             # nor does the tour chapter table
        key = a SUBSEP b
        if (!(key in edge)) { edge[key] = us[i]; n_out[a]++; out[a, n_out[a]] = b; n_edges++ }
    }
    # cycles: depth-first search with colours (0 new, 1 on the stack, 2 done)
    for (f in files) if (!color[f]) {
        sp = 1; st[1] = f; it[1] = 0; color[f] = 1
        while (sp > 0) {
            v = st[sp]
            if (it[sp] < n_out[v]) {
                it[sp]++; w = out[v, it[sp]]
                if (color[w] == 1) {
                    path = w
                    for (k = sp; k >= 1 && st[k] != w; k--) path = st[k] " -> " path
                    printf "loop: %s -> %s (%s)\n", w, path, edge[v, w]
                    bad++
                } else if (!color[w]) { sp++; st[sp] = w; it[sp] = 0; color[w] = 1 }
            } else { color[v] = 2; sp-- }
        }
    }
    for (f in files) if (!layer(f)) {
        printf "no layer: %s is in a folder that is not a layer of DESIGN.md\n", f
        bad++
    }
    n_files = 0; for (f in files) n_files++
    if (bad) { printf "layers: %d violation%s\n", bad, bad == 1 ? "" : "s"; exit 1 }
    printf "layers: ok (%d files, %d edges)\n", n_files, n_edges
}' "$tmp/syms" > "$tmp/report" && calls_ok=1 || calls_ok=0

# includes: src/ files include knob.h and knob_internal.h, cli/ files knob.h and cli.h; each
# dependency's header is included by its one file
for f in $(find src cli -name '*.c' -o -name '*.h' | sort); do
    grep -o '^#include "[^"]*"' "$f" | sed 's/#include "\(.*\)"/\1/' | while read -r h; do
        case $f:$h in
        cli/*:knob_internal.h) echo "internal: $f includes knob_internal.h; the CLI uses include/knob.h only" ;;
        *:knob.h|*:knob_internal.h|*:cli.h) ;;
        cli/tour*:tour.h) ;;   # the contract between the tour's framework and its chapters
        *) echo "include: $f includes \"$h\" (only knob.h, knob_internal.h and cli.h are shared headers, and tour.h among cli/tour*)" ;;
        esac
    done
    grep -o '^#include <[^>]*>' "$f" | sed 's/#include <\(.*\)>/\1/' | while read -r h; do
        case $h in
        cjson/*)       case $f in src/core/json.c) continue ;; esac; dep="cJSON (src/core/json.c)" ;;
        pcre2.h)       case $f in src/text/bpe.c) continue ;; esac; dep="PCRE2 (src/text/bpe.c)" ;;
        png.h)         case $f in src/io/image.c) continue ;; esac; dep="libpng (src/io/image.c)" ;;
        zlib.h)        case $f in src/io/idx.c|src/io/image.c) continue ;; esac; dep="zlib (src/io/idx.c, image.c)" ;;
        microhttpd.h)  case $f in src/serve/*) continue ;; esac; dep="libmicrohttpd (src/serve/)" ;;
        mpi.h)         case $f in src/train/*) continue ;; esac; dep="MPI (src/train/)" ;;
        *) continue ;;
        esac
        echo "dependency: $f includes <$h>; only $dep may"
    done
done > "$tmp/inc"
# the CLI calls the library through the public header only: every knob_ symbol a cli/ object uses
# is named in include/knob.h
grep -o 'knob_[A-Za-z0-9_]*' include/knob.h | sort -u > "$tmp/public"
awk '$1 == "U" && $2 ~ /^cli\// && $3 ~ /^knob_/ { print $2, $3 }' "$tmp/syms" | sort -u |
while read -r f sym; do
    grep -qx "$sym" "$tmp/public" || echo "internal: $f uses $sym, which include/knob.h does not declare"
done >> "$tmp/inc"
if [ -s "$tmp/inc" ] || [ "$calls_ok" = 0 ]; then
    # one verdict line for both reports (the call report's own is its last line)
    n=$(wc -l < "$tmp/inc")
    if [ "$calls_ok" = 0 ]; then
        sed '$d' "$tmp/report"
        n=$((n + $(grep -c -v '^layers:' "$tmp/report")))
    fi
    cat "$tmp/inc"
    echo "layers: $n violation$([ "$n" = 1 ] || echo s)"
    exit 1
fi
cat "$tmp/report"

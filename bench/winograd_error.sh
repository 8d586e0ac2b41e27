#!/usr/bin/env bash
# bench/winograd_error.sh: what the option --winograd M (ResNet 3x3 stride-1
# convolutions by Winograd F(MxM, 3x3), docs/ALGORITHM.md §18) changes in
# the numbers, against the default (the convolution's own sum):
#
#   1. every location of the demo's backbone (demo/backbone: a small ResNet
#      really trained on Fashion-MNIST, 52 locations) on the 1000 test
#      images of each demo task: h2t taps with --winograd 2 and 4 against
#      the default, per location max |diff| / max |default| (test/npycmp);
#      the table gives the worst and the median location over the tasks;
#   2. with --resnet50 DIR (a ResNet-50 model directory, e.g. bench/task.sh's
#      /tmp/h2t-task/r50: random weights), the same on the first 8 test
#      images of the demo's fashion task, resized to 224 px;
#   3. with --demo: `h2t demo` with --winograd 4 against the default: each
#      task's test accuracy (Linear, Head2Toe) and the grid point CV chose;
#      with --other-build H2T also that h2t's demo with the default
#      convolution (e.g. the PORTABLE=1 build, whose last bits differ: how
#      far last-bit changes alone move the demo's choices).
#
# Usage: bench/winograd_error.sh [--resnet50 DIR] [--demo [--other-build H2T]] [--h2t ./h2t] [--out FILE]
#   --out   the markdown table (default bench/results/winograd-error.md)
# Needs only h2t and test/npycmp (make test-bins builds it); about 1 minute,
# plus ~1 minute with --resnet50, plus two demo runs (~3 minutes each on 2
# cores) with --demo.
set -euo pipefail
cd "$(dirname "$0")/.."
. test/npy.sh

H2T=./h2t OUT=bench/results/winograd-error.md R50= DEMO=0 OTHER=
while [ $# -gt 0 ]; do
    case $1 in
    --resnet50) R50=${2:?--resnet50 needs a model directory}; shift ;;
    --demo) DEMO=1 ;;
    --other-build) OTHER=${2:?--other-build needs an h2t}; shift ;;
    --h2t) H2T=${2:?--h2t needs a path}; shift ;;
    --out) OUT=${2:?--out needs a file}; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "winograd_error.sh: unknown argument '$1' (see --help)" >&2; exit 1 ;;
    esac
    shift
done
[ -x "$H2T" ] || { echo "winograd_error.sh: --h2t: '$H2T' is not an executable (run make)" >&2; exit 1; }
NPYCMP=$(ls build/*/npycmp 2>/dev/null | head -n 1 || true)
[ -n "$NPYCMP" ] || { echo "winograd_error.sh: test/npycmp is not built (run make test-bins)" >&2; exit 1; }
[ -z "$OTHER" ] || [ -x "$OTHER" ] || { echo "winograd_error.sh: --other-build: '$OTHER' is not an executable" >&2; exit 1; }
[ -z "$R50" ] || [ -f "$R50/config.txt" ] || { echo "winograd_error.sh: --resnet50: no $R50/config.txt" >&2; exit 1; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$(dirname "$OUT")"

# ratios MODEL IMAGES LABEL: taps with --winograd 0, 2, 4; appends "label m location ratio" lines to $W/ratios
ratios() {
    local model=$1 images=$2 label=$3
    "$H2T" taps --model "$model" --images "$images" --out "$W/taps0" --batch 16 --quiet >/dev/null
    for m in 2 4; do
        "$H2T" taps --model "$model" --images "$images" --out "$W/taps$m" --batch 16 --winograd $m --quiet >/dev/null
        for f in "$W"/taps0/*.npy; do
            loc=$(basename "$f" .npy)
            line=$("$NPYCMP" "$W/taps$m/$loc.npy" "$f" 1 || true)
            # n=... max_abs=A max_rel=... max|ref|=R tol=...: the ratio A / R
            echo "$line" | awk -v l="$label" -v m=$m -v loc="$loc" '{
                for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                r = v["max|ref|"] > 0 ? v["max_abs"] / v["max|ref|"] : v["max_abs"]
                printf "%s %s %s %.3g\n", l, m, loc, r }' >>"$W/ratios"
        done
        rm -rf "$W/taps$m"
    done
    rm -rf "$W/taps0"
}

echo "winograd_error.sh: the demo's backbone on each task's test images" >&2
tasks=$(awk -F'\t' '!/^#/ { print $1 }' demo/tasks/tasks.tsv)
for t in $tasks; do ratios demo/backbone "demo/tasks/$t/test_images.npy" demo; done
if [ -n "$R50" ]; then
    echo "winograd_error.sh: ResNet-50 ($R50) on 8 images at 224 px" >&2
    # the first 8 test images of the demo's fashion task ([1000, 28, 28] uint8), resized by h2t to 224
    npy_rows demo/tasks/fashion/test_images.npy "$W/first8.npy" 8 '|u1' "8, 28, 28" $((28 * 28))
    ratios "$R50" "$W/first8.npy" resnet50
fi

# the table: per (label, m), the worst location and the median over locations (and tasks)
{
    echo "# --winograd against the default convolution"
    echo
    echo "\`bench/winograd_error.sh${R50:+ --resnet50 $R50}$([ $DEMO = 1 ] && echo ' --demo')${OTHER:+ --other-build $OTHER}\` ($(date -u +%Y-%m-%d), $(uname -m)):"
    echo "per location, max |winograd - default| / max |default| over the images (demo: the 1000 test"
    echo "images of each of the 4 tasks, each task a row of ratios; resnet50: 8 images at 224 px)."
    echo
    echo "| backbone | M | median location | worst location | worst ratio |"
    echo "|---|---|---|---|---|"
    for l in demo resnet50; do
        for m in 2 4; do
            grep "^$l $m " "$W/ratios" 2>/dev/null | sort -k4 -g | awk -v l=$l -v m=$m '
                { loc[NR] = $3; r[NR] = $4 }
                END { if (NR) printf "| %s | %s | %.2g | %s | %.2g |\n", l, m, r[int((NR + 1) / 2)], loc[NR], r[NR] }'
        done
    done
} >"$W/table.md"

if [ $DEMO = 1 ]; then
    for m in 0 4; do
        echo "winograd_error.sh: h2t demo --winograd $m" >&2
        "$H2T" demo --out "$W/demo$m" --report "$W/demo$m.json" --winograd $m --quiet >"$W/demo$m.txt"
    done
    if [ -n "$OTHER" ]; then
        echo "winograd_error.sh: $OTHER demo" >&2
        "$OTHER" demo --out "$W/demoother" --quiet >"$W/demoother.txt"
    fi
    {
        echo
        echo "\`h2t demo\` with the default convolution and with \`--winograd 4\` (test accuracy; the"
        echo "grid point and features CV chose are in each task's report.json):"
        echo
        echo '```'
        echo "default:"; cat "$W/demo0.txt"
        echo "--winograd 4:"; cat "$W/demo4.txt"
        [ -n "$OTHER" ] && { echo "$OTHER (another build), default convolution:"; cat "$W/demoother.txt"; }
        echo '```'
        echo
        same=0; total=0
        for t in $tasks; do
            for meth in head2toe linear; do
                total=$((total + 1))
                a=$W/demo0/$t/$meth/selected.npy b=$W/demo4/$t/$meth/selected.npy
                if [ -f "$a" ] && cmp -s "$a" "$b"; then same=$((same + 1)); fi
            done
        done
        echo "Selected features identical (selected.npy byte for byte) in $same of $total task x method runs."
    } >>"$W/table.md"
fi
mv "$W/table.md" "$OUT.tmp" && mv "$OUT.tmp" "$OUT"
cat "$OUT"

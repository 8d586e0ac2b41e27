#!/bin/sh
# test/cli_experiments.sh: `h2t demo --experiments` (docs/ALGORITHM.md §17)
# on the bundled backbone with a tiny grid (T 16, 10 steps) and one task:
#   - a subset of the experiments writes its figures (complete SVG files)
#     and experiments.md with one row each, the reference fits and a verdict;
#   - Fig. 7 left's diagonal -- the task's head on its own final selection,
#     trained as --select-from does -- is exactly the task's Head2Toe accuracy;
#   - the build without OpenMP writes the same bytes (same seed, same files);
#   - refusals: an unknown experiment, --report with --experiments.
H2T=${H2T_BIN:-./h2t}
H2T_NOOMP=${H2T_BIN_NOOMP:-$H2T}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
ROOT=$(pwd)

ok() { echo "PASS cli_experiments: $1"; }
bad() { echo "FAIL cli_experiments: $1"; }
check() { if [ "$1" = 0 ]; then ok "$2"; else bad "$2"; fi; }
refused() { [ "$1" = 1 ] && [ "$(wc -l <"$2")" = 1 ]; }
svg_ok() { head -c 200 "$1" | grep -q '^<?xml' && tail -n 1 "$1" | grep -q '^</svg>$'; }

mkdir -p "$T/mini"
cat >"$T/mini/demo.cfg" <<CFG
model = $ROOT/demo/backbone
tasks = $ROOT/demo/tasks/tasks.tsv
target_size = 16
lr = 0.1
steps = 10
coef = 1e-3
fraction = 0.05,0.2
linear_lr = 0.1
linear_steps = 10
CFG
E=fig6,fig7-transfer,fig11-offset
"$H2T" demo --dir "$T/mini" --out "$T/a" --tasks clevr_count --experiments $E --quiet >"$T/out" 2>"$T/err"
rc=$?
n=0
for f in experiments.md fig6.svg fig7_transfer.svg fig11_offset.svg; do [ -s "$T/a/$f" ] || { echo "missing $f"; n=1; }; done
for f in "$T"/a/*.svg; do svg_ok "$f" || { echo "bad svg $f"; n=1; }; done
[ $rc = 0 ] && [ $n = 0 ] && [ "$(grep -c '^| Fig\. ' "$T/a/experiments.md")" = 3 ] &&
    [ "$(grep -c '| \*\*\(agree\|disagree\|inconclusive\)\*\* |' "$T/a/experiments.md")" = 3 ] &&
    grep -q '^| clevr_count | out | ' "$T/a/experiments.md" && ! grep -q 'Table 6' "$T/a/experiments.md"
check $? "demo --experiments $E: 3 figures, 3 rows with verdicts, the reference fits $(head -c 200 "$T/err")"
ref=$(sed -n 's/^| clevr_count | out | [0-9.]*% | \([0-9.]*\)% |.*/\1/p' "$T/a/experiments.md")
diag=$(sed -n 's/^| clevr_count | \*\*\([0-9.]*\)\*\* |$/\1/p' "$T/a/experiments.md")
[ -n "$ref" ] && [ "$ref" = "$diag" ]
check $? "Fig. 7 left: the task's head on its own selection gives its Head2Toe accuracy ($diag% = $ref%)"
"$H2T_NOOMP" demo --dir "$T/mini" --out "$T/b" --tasks clevr_count --experiments $E --quiet >/dev/null 2>&1
rc=$?
n=0
for f in "$T"/a/*; do cmp -s "$f" "$T/b/$(basename "$f")" || { echo "differs: $(basename "$f")"; n=1; }; done
[ $rc = 0 ] && [ $n = 0 ]
check $? "demo --experiments: the build without OpenMP writes the same bytes ($(ls "$T/a" | wc -l) files)"

"$H2T" demo --dir "$T/mini" --out "$T/c" --experiments fig99 >/dev/null 2>"$T/e"
rc=$?
refused $rc "$T/e" && grep -q "no experiment 'fig99'" "$T/e" && [ ! -e "$T/c" ]
check $? "demo refuses an unknown experiment, writing nothing: $(cat "$T/e")"
"$H2T" demo --dir "$T/mini" --out "$T/c" --experiments --report "$T/r.json" >/dev/null 2>"$T/e"
rc=$?
refused $rc "$T/e" && grep -q -- '--report' "$T/e" && [ ! -e "$T/c" ] && [ ! -e "$T/r.json" ]
check $? "demo refuses --report with --experiments: $(cat "$T/e")"
exit 0

#!/bin/sh
# test/cli_select.sh: the selection options of `h2t fit` (docs/ALGORITHM.md
# §15, §16) end to end on the committed fixture test/fixtures/lasso:
#   - --select-from a fit's own directory gives that fit's head (same
#     W.npy, same selection) and so exactly its accuracy under `h2t eval`;
#   - every --score runs through fit (chi2 on a non-negative copy) and is
#     recorded in report.json;
#   - --keep-offset, --average-over, --score-interpolation and
#     --train-fraction are recorded, and reproducible (same bytes twice,
#     and from the build without OpenMP).
H2T=${H2T_BIN:-./h2t}
H2T_NOOMP=${H2T_BIN_NOOMP:-$H2T}
FX=test/fixtures/lasso
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

ok() { echo "PASS cli_select: $1"; }
bad() { echo "FAIL cli_select: $1"; }
check() { if [ "$1" = 0 ]; then ok "$2"; else bad "$2"; fi; }
acc() { awk '/^accuracy/ { print $2, $3 }' "$1"; }

C="--features $FX/X.npy --labels $FX/y.npy --layout $FX/X.layout.tsv --lr 0.05 --steps 60 --quiet"

# ---- --select-from its own selection
"$H2T" fit $C --coef 1e-2 --fraction 0.1 --out "$T/a" >/dev/null 2>"$T/err" &&
    "$H2T" fit $C --select-from "$T/a" --out "$T/b" >/dev/null 2>>"$T/err" &&
    "$H2T" eval --head "$T/a" --features $FX/X.npy --labels $FX/y.npy >"$T/ea" 2>>"$T/err" &&
    "$H2T" eval --head "$T/b" --features $FX/X.npy --labels $FX/y.npy >"$T/eb" 2>>"$T/err"
rc=$?
[ $rc = 0 ] && cmp -s "$T/a/W.npy" "$T/b/W.npy" && cmp -s "$T/a/selected.npy" "$T/b/selected.npy" &&
    [ "$(acc "$T/ea")" = "$(acc "$T/eb")" ] && grep -q '"score": "given"' "$T/b/report.json"
check $? "fit --select-from its own selection: the same W.npy and selection, the same accuracy ($(acc "$T/eb")) $(head -c 200 "$T/err")"
"$H2T" fit $C --select-from "$T/a" --lr 0.05,0.01 --steps 30,60 --out "$T/c" >/dev/null 2>"$T/err"
rc=$?
[ $rc = 0 ] && [ "$(wc -l <"$T/c/cv.tsv")" = 5 ] && grep -q '"features_kept": 4,' "$T/c/report.json"
check $? "fit --select-from cross-validates lr x steps only (4 points, 4 features) $(head -c 200 "$T/err")"

# ---- every score through fit
n=0
for s in l2 l1 linf layer layer-group variance random f-classif; do
    if ! "$H2T" fit $C --coef 1e-2 --fraction 0.25 --score $s --out "$T/s_$s" >/dev/null 2>"$T/err" ||
        ! grep -q "\"score\": \"$s\"" "$T/s_$s/report.json"; then
        echo "score $s: $(head -c 200 "$T/err")"; n=1
    fi
done
check $n "fit --score l2, l1, linf, layer, layer-group, variance, random, f-classif: each runs and is recorded"
"$H2T" fit $C --coef 1e-2 --fraction 0.1 --score l2 --out "$T/l2b" >/dev/null 2>&1 &&
    cmp -s "$T/a/W.npy" "$T/l2b/W.npy" && cmp -s "$T/a/selected.npy" "$T/l2b/selected.npy"
check $? "fit --score l2 is the default (same head)"
# layer: 10 features of one location (block1 or pre_logits: 10 each; block2: its first 10)
sel=$(grep '"kept": [1-9]' "$T/s_layer/report.json" | wc -l)
[ "$sel" = 1 ]
check $? "fit --score layer keeps whole locations: one location holds all 10 kept features"

# ---- the other options: recorded, reproducible, thread-independent
O="--coef 1e-2 --fraction 0.1 --score f-classif --keep-offset 2 --average-over 2 --score-interpolation 0.3 --train-fraction 0.5 --cv"
"$H2T" fit $C $O --out "$T/o1" >/dev/null 2>"$T/err" && "$H2T" fit $C $O --out "$T/o2" >/dev/null 2>&1 &&
    "$H2T_NOOMP" fit $C $O --out "$T/o3" >/dev/null 2>&1
rc=$?
[ $rc = 0 ] && cmp -s "$T/o1/W.npy" "$T/o2/W.npy" && cmp -s "$T/o1/cv.tsv" "$T/o2/cv.tsv" &&
    cmp -s "$T/o1/W.npy" "$T/o3/W.npy" && cmp -s "$T/o1/selected.npy" "$T/o3/selected.npy" &&
    grep -q '"selection": {"score": "f-classif", "average_over": 2, "keep_offset": 2, "score_interpolation": 0.3}' "$T/o1/report.json" &&
    grep -q '"train_fraction": 0.5,' "$T/o1/report.json" && grep -q '"examples_used": 148,' "$T/o1/report.json"
check $? "fit: offset, averaging, interpolation and a training subset are recorded and reproducible (twice, without OpenMP) $(head -c 200 "$T/err")"
exit 0

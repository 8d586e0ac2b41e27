#!/bin/sh
# test/cli_lasso.sh: `h2t score`, `h2t fit`, `h2t eval` end to end on the
# committed fixture test/fixtures/lasso (n=300, D=40 in 3 locations, K=4,
# features 3, 17, 25, 38 informative), and their refusals of bad input
# (exit status 1, one line on stderr, no output left behind).
H2T=${H2T_BIN:-./h2t}
. test/npy.sh
H2T_NOOMP=${H2T_BIN_NOOMP:-$H2T}
FX=test/fixtures/lasso
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

ok() { echo "PASS cli_lasso: $1"; }
bad() { echo "FAIL cli_lasso: $1"; }
check() { if [ "$1" = 0 ]; then ok "$2"; else bad "$2"; fi; }

# ---- score
"$H2T" score --features $FX/X.npy --labels $FX/y.npy --init $FX/W0.npy --lr 0.05 --steps 10 --coef 0.01 \
    --out "$T/s" >"$T/out" 2>"$T/err"
rc=$?
[ $rc = 0 ] && [ -s "$T/s/W.npy" ] && [ -s "$T/s/b.npy" ] && [ -s "$T/s/scores.npy" ] && [ -s "$T/s/loss.tsv" ]
check $? "score writes W.npy b.npy scores.npy loss.tsv (rc $rc)"
# the first loss is the numpy reference's 1.63456132 (test/lasso_ref.py)
awk -F'\t' 'NR == 2 { d = $3 - 1.63456132; if (d < 0) d = -d; exit !(d < 1e-5) }' "$T/s/loss.tsv" &&
    [ "$(wc -l <"$T/s/loss.tsv")" = 11 ]
check $? "score loss.tsv: 10 steps, first loss matches the numpy reference"
"$H2T_NOOMP" score --features $FX/X.npy --labels $FX/y.npy --init $FX/W0.npy --lr 0.05 --steps 10 --coef 0.01 \
    --out "$T/s1" --quiet >/dev/null 2>&1
cmp -s "$T/s/W.npy" "$T/s1/W.npy" && cmp -s "$T/s/scores.npy" "$T/s1/scores.npy"
check $? "score: the build without OpenMP writes the same bytes"
"$H2T" score --features $FX/X.npy --labels $FX/y.npy --seed 3 --steps 5 --out "$T/g1" --quiet >/dev/null 2>&1
"$H2T" score --features $FX/X.npy --labels $FX/y.npy --seed 3 --steps 5 --out "$T/g2" --quiet >/dev/null 2>&1
"$H2T" score --features $FX/X.npy --labels $FX/y.npy --seed 4 --steps 5 --out "$T/g3" --quiet >/dev/null 2>&1
cmp -s "$T/g1/W.npy" "$T/g2/W.npy" && ! cmp -s "$T/g1/W.npy" "$T/g3/W.npy"
check $? "score: Glorot init is reproducible for a seed and changes with it"

# ---- fit (head2toe with CV), then eval
"$H2T" fit --features $FX/X.npy --labels $FX/y.npy --layout $FX/X.layout.tsv --lr 0.05 --steps 60 \
    --coef 1e-2,1e-4 --fraction 0.1,0.5 --out "$T/f" --quiet >"$T/out" 2>"$T/err"
rc=$?
for f in selected.npy W.npy b.npy cv.tsv report.json layout.tsv; do [ -s "$T/f/$f" ] || rc="$rc missing $f"; done
check "$rc" "fit writes selected.npy W.npy b.npy cv.tsv report.json layout.tsv"
[ "$(wc -l <"$T/f/cv.tsv")" = 5 ] && grep -q '"method": "head2toe"' "$T/f/report.json" &&
    grep -q '"cross_validated": true' "$T/f/report.json" && grep -q '"features_kept": 4,' "$T/f/report.json"
check $? "fit: 4 grid points in cv.tsv; report: head2toe, cross-validated, 4 features kept"
"$H2T_NOOMP" fit --features $FX/X.npy --labels $FX/y.npy --layout $FX/X.layout.tsv --lr 0.05 --steps 60 \
    --coef 1e-2,1e-4 --fraction 0.1,0.5 --out "$T/f1" --quiet >/dev/null 2>&1
cmp -s "$T/f/W.npy" "$T/f1/W.npy" && cmp -s "$T/f/selected.npy" "$T/f1/selected.npy" && cmp -s "$T/f/cv.tsv" "$T/f1/cv.tsv"
check $? "fit: the build without OpenMP writes the same head, selection and cv.tsv"
# the informative features are 3 | 17, 25 | 38 over the locations 10 | 20 | 10
grep -q '"location": "block1", "dim": 10, "kept": 1' "$T/f/report.json" &&
    grep -q '"location": "block2", "dim": 20, "kept": 2' "$T/f/report.json" &&
    grep -q '"location": "pre_logits", "dim": 10, "kept": 1' "$T/f/report.json"
check $? "fit: kept per location 1, 2, 1 (the planted features)"
"$H2T" eval --head "$T/f" --features $FX/X.npy --labels $FX/y.npy --out "$T/e.json" >"$T/out" 2>"$T/err"
rc=$?
acc=$(awk '/^accuracy/ { print $2 }' "$T/out")
[ $rc = 0 ] && awk -v a="$acc" 'BEGIN { exit !(a > 0.9) }' && grep -q '"per_class"' "$T/e.json" &&
    [ "$(grep -c '^  class' "$T/out")" = 4 ]
check $? "eval: accuracy $acc > 0.9 on the training set, 4 per-class lines, JSON written"
for m in linear all-l1 all-l2 all-l21; do
    extra="--coef 1e-4"
    [ $m = linear ] && extra=""
    "$H2T" fit --method $m --features $FX/X.npy --labels $FX/y.npy --layout $FX/X.layout.tsv --lr 0.05 \
        --steps 60 $extra --out "$T/$m" --quiet >"$T/out" 2>&1 &&
        "$H2T" eval --head "$T/$m" --features $FX/X.npy --labels $FX/y.npy >"$T/out" 2>&1
    rc=$?
    acc=$(awk '/^accuracy/ { print $2 }' "$T/out")
    [ $rc = 0 ] && awk -v a="$acc" 'BEGIN { exit !(a > 0.5) }'
    check $? "fit --method $m + eval: accuracy $acc"
done
grep -q '"features_kept": 10,' "$T/linear/report.json"
check $? "fit --method linear keeps the 10 pre_logits features"
"$H2T" fit --help >/dev/null && "$H2T" score --help >/dev/null && "$H2T" eval --help >/dev/null
check $? "--help of score, fit, eval"

# ---- refusals: status 1, one line on stderr naming the problem, no output
# ---- the grid across processes: 4 shards (run at once, in any order) + collect = one run, byte for byte
G="--features $FX/X.npy --labels $FX/y.npy --layout $FX/X.layout.tsv --lr 0.05,0.1 --steps 20,40 --coef 1e-2,1e-4 \
   --fraction 0.1,0.5 --quiet"
"$H2T" fit $G --out "$T/g1" >/dev/null 2>&1
for k in 3 1 0 2; do "$H2T" fit $G --grid-shard $k/4 --out "$T/parts" >/dev/null 2>"$T/err.$k" & done
wait
"$H2T" fit $G --collect "$T/parts" --out "$T/g4" >/dev/null 2>"$T/err"
rc=$?
n=0
for f in cv.tsv selected.npy W.npy b.npy; do cmp -s "$T/g1/$f" "$T/g4/$f" || { n=1; echo "differs: $f"; }; done
[ $rc = 0 ] && [ $n = 0 ] && [ "$(ls "$T/parts" | wc -l)" = 4 ] &&
    [ "$(grep -c . "$T/parts/cv.part.0-of-4.tsv")" = 23 ] &&
    [ "$(grep -v '"seconds"' "$T/g1/report.json")" = "$(grep -v '"seconds"' "$T/g4/report.json")" ]
check $? "fit --grid-shard K/4 x 4 + --collect = one run: cv.tsv, selected.npy, W.npy, b.npy, report byte-identical ($(head -c 200 "$T/err"))"
# the same 4 shards started by GNU parallel, as README shows (xargs -P 4 where parallel is not installed)
if command -v parallel >/dev/null 2>&1; then
    runner="GNU parallel"
    parallel --will-cite -j 4 "$H2T" fit $G --grid-shard {}/4 --out "$T/pp" ::: 0 1 2 3 >/dev/null 2>"$T/err.p"
else
    runner="xargs -P 4 (GNU parallel not installed)"
    printf '%s\n' 0 1 2 3 | xargs -P 4 -I{} "$H2T" fit $G --grid-shard {}/4 --out "$T/pp" >/dev/null 2>"$T/err.p"
fi
"$H2T" fit $G --collect "$T/pp" --out "$T/gp" >/dev/null 2>"$T/err"
rc=$?
n=0
for f in cv.tsv selected.npy W.npy b.npy; do cmp -s "$T/g1/$f" "$T/gp/$f" || { n=1; echo "differs: $f"; }; done
[ $rc = 0 ] && [ $n = 0 ] && [ "$(ls "$T/pp" | wc -l)" = 4 ] &&
    [ "$(grep -v '"seconds"' "$T/g1/report.json")" = "$(grep -v '"seconds"' "$T/gp/report.json")" ]
check $? "fit --grid-shard K/4 under $runner + --collect = one run: cv.tsv, selected.npy, W.npy, b.npy, report (accuracies) byte-identical ($(head -c 200 "$T/err.p"))"
mkdir -p "$T/three" && cp "$T"/parts/cv.part.[012]-of-4.tsv "$T/three/"
mkdir -p "$T/other" && "$H2T" fit $G --seed 1 --grid-shard 3/4 --out "$T/other" >/dev/null 2>&1

refuse() { # name, expected word in the message, command...
    name=$1; word=$2; shift 2
    rm -rf "$T/x"
    "$@" >"$T/out" 2>"$T/err"
    rc=$?
    n=$(wc -l <"$T/err")
    if [ $rc = 1 ] && [ "$n" = 1 ] && grep -q -- "$word" "$T/err" && [ ! -e "$T/x" ]; then
        ok "refuses $name: $(cat "$T/err")"
    else
        bad "refuses $name: rc $rc, $n stderr lines, want '$word': $(head -c 300 "$T/err")"
    fi
}
printf 'location\toffset\tdim\tpool\nblock1\t0\t10\t-1\nblock2\t11\t20\t-1\npre_logits\t30\t10\t-1\n' >"$T/gap.tsv"
printf 'location\toffset\tdim\tpool\nblock1\t0\t10\t-1\nblock2\t10\t20\t-1\n' >"$T/short.tsv"
printf 'location\toffset\tdim\tpool\na\t0\t10\t-1\nb\t10\t20\t-1\nc\t30\t10\t-1\n' >"$T/nopre.tsv"
# 300 int64 labels, all 7 (the head has K = 4)
{
    npy_header '<i8' "300,"
    i=0
    while [ $i -lt 300 ]; do printf '\007\000\000\000\000\000\000\000'; i=$((i + 1)); done
} >"$T/y7.npy"
S="$H2T score --labels $FX/y.npy --out $T/x"
F="$H2T fit --labels $FX/y.npy --layout $FX/X.layout.tsv --out $T/x --lr 0.05 --steps 5"
refuse "a missing features file" "nothere.npy" $S --features "$T/nothere.npy"
refuse "labels of the wrong shape" "W0.npy" "$H2T" score --features $FX/X.npy --labels $FX/W0.npy --out "$T/x"
refuse "an --init of the wrong shape" "X.npy" $S --features $FX/X.npy --init $FX/X.npy
refuse "--lr -1" "--lr" $S --features $FX/X.npy --lr -1
refuse "--steps 0" "--steps" $S --features $FX/X.npy --steps 0
refuse "--classes below the labels" "--classes" $S --features $FX/X.npy --classes 2
refuse "an unknown flag" "--bogus" $S --features $FX/X.npy --bogus 1
refuse "fit --method foo" "--method" $F --features $FX/X.npy --method foo
refuse "fit --steps 1.5" "--steps" $F --features $FX/X.npy --steps 1.5
refuse "fit --fraction 2" "--fraction" $F --features $FX/X.npy --fraction 2
refuse "fit --coef with linear" "--coef" $F --features $FX/X.npy --method linear --coef 1e-3
refuse "fit without --layout" "--layout" "$H2T" fit --features $FX/X.npy --labels $FX/y.npy --out "$T/x"
refuse "a layout with a gap" "gap.tsv" "$H2T" fit --features $FX/X.npy --labels $FX/y.npy --layout "$T/gap.tsv" --out "$T/x"
refuse "a layout of the wrong size" "short.tsv" "$H2T" fit --features $FX/X.npy --labels $FX/y.npy --layout "$T/short.tsv" --out "$T/x"
refuse "linear without pre_logits" "pre_logits" "$H2T" fit --method linear --features $FX/X.npy --labels $FX/y.npy \
    --layout "$T/nopre.tsv" --out "$T/x"
refuse "--grid-shard 4/4" "--grid-shard" $F --features $FX/X.npy --grid-shard 4/4
refuse "--grid-shard 1" "K/N" $F --features $FX/X.npy --grid-shard 1
refuse "--grid-shard with --collect" "one or the other" $F --features $FX/X.npy --grid-shard 0/2 --collect "$T/parts"
refuse "--collect of a missing folder" "nowhere" $F --features $FX/X.npy --collect "$T/nowhere"
refuse "--collect with a shard missing" "shard 3 of 4 is missing" "$H2T" fit $G --out "$T/x" --collect "$T/three"
refuse "--collect of a part of another run" "another run" "$H2T" fit $G --out "$T/x" --collect "$T/three,$T/other"
refuse "--collect of a shard given twice" "twice" "$H2T" fit $G --out "$T/x" --collect "$T/parts,$T/three"
refuse "eval of a missing head" "nohead" "$H2T" eval --head "$T/nohead" --features $FX/X.npy --labels $FX/y.npy --out "$T/x"
refuse "eval with labels outside the head" "K = 4" "$H2T" eval --head "$T/f" --features $FX/X.npy \
    --labels "$T/y7.npy" --out "$T/x"
exit 0

#!/bin/sh
# test/cli_reference.sh: the reference build's h2t (make REFERENCE=1: every
# fast kernel replaced by its plain twin, naive GEMM in double) against the
# fast build's, end to end on the committed fixtures: `h2t taps` (every
# location) and `h2t features` on the two ResNets and the ViT, `h2t score`
# and `h2t fit` on the lasso fixture. make test passes both binaries
# (H2T_BIN_REF, H2T_BIN_FAST) and builds test/npycmp.c, which compares two
# .npy files as check_close does: max |fast - ref| <= TOL * max |ref|.
#
# Tolerances, and the largest differences measured as max |fast - ref| /
# max |ref| per tensor (gcc 12 on x86-64 with AVX-512; the default build,
# which uses FMA, and PORTABLE=1's -O2 without -march, which does not):
#   taps, every location      5e-6   default: resnet_v15 4.5e-7, resnet_v2
#                                    4.8e-7, vit 6.4e-7 (pre_logits);
#                                    PORTABLE: 6.4e-7, 5.8e-7, 9.6e-7
#   features, T 16/64/100000  5e-6   default 2.0e-7, 2.3e-7, 4.8e-7;
#                                    PORTABLE 3.6e-7, 1.4e-7, 6.5e-7
#   score, fit: W, b, scores  1e-6   default 1.5e-7, PORTABLE 1.6e-7
#   fit: selected features, cv.tsv   the same bytes (they are, in both)
# The differences are float sums in the fast kernels against double sums,
# and our exp/erf polynomials against libm: a few units in the last place.
# Bugs move them far more: gelu_erf_ref with sqrt(2.01) for sqrt(2) moves
# the ViT's taps by 5e-4 of their largest magnitude, conv2d_ep_ref skipping
# its ReLU moves the ResNets' by 0.3 and more (both tried).
H2T_FAST=${H2T_BIN_FAST:-}
H2T_REF=${H2T_BIN_REF:-}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

ok() { echo "PASS cli_reference: $1"; }
bad() { echo "FAIL cli_reference: $1"; }
check() { if [ "$1" = 0 ]; then ok "$2"; else bad "$2"; fi; }

if [ -z "$H2T_FAST" ] || [ -z "$H2T_REF" ] || [ "$H2T_FAST" = "$H2T_REF" ]; then
    echo "SKIP cli_reference: needs H2T_BIN_FAST and H2T_BIN_REF, two builds (make test sets them)"
    exit 0
fi
NPYCMP=${H2T_NPYCMP:-$(dirname "$H2T_FAST")/npycmp}
[ -x "$NPYCMP" ] || NPYCMP=$(dirname "$H2T_REF")/npycmp
if [ ! -x "$H2T_FAST" ] || [ ! -x "$H2T_REF" ] || [ ! -x "$NPYCMP" ]; then
    bad "missing binary: $H2T_FAST, $H2T_REF or $NPYCMP"
    exit 0
fi

# within NAME TOL FAST.npy REF.npy: one check line with npycmp's numbers
within() {
    line=$("$NPYCMP" "$3" "$4" "$2" 2>&1)
    check $? "$1: $line"
}

# ---- taps and features on the three fixture models
all_bytes_same=1
for fx in resnet_v15 resnet_v2 vit; do
    FX=test/fixtures/$fx
    for v in fast ref; do
        if [ $v = fast ]; then H=$H2T_FAST; else H=$H2T_REF; fi
        "$H" taps --model $FX/model --images $FX/images.npy --out "$T/$fx.$v" --taps all --quiet \
            >/dev/null 2>"$T/err" || bad "$fx: h2t taps ($v build) failed: $(head -c 300 "$T/err")"
        "$H" features --model $FX/model --images $FX/images.npy --target-size 16,64,100000 \
            --out "$T/$fx.$v.F.npy" --quiet >/dev/null 2>"$T/err" ||
            bad "$fx: h2t features ($v build) failed: $(head -c 300 "$T/err")"
    done
    n=$(ls "$T/$fx.fast" | wc -l)
    [ "$n" = "$(wc -l <$FX/expected/order.txt)" ] && [ "$(ls "$T/$fx.ref" | wc -l)" = "$n" ]
    check $? "$fx: h2t taps --taps all writes the same $n locations from both builds"
    for f in "$T/$fx.fast"/*.npy; do
        name=$(basename "$f" .npy)
        within "$fx: h2t taps $name" 5e-6 "$f" "$T/$fx.ref/$name.npy"
        cmp -s "$f" "$T/$fx.ref/$name.npy" || all_bytes_same=0
    done
    for ts in 16 64 100000; do
        within "$fx: h2t features --target-size $ts" 5e-6 "$T/$fx.fast.F.T$ts.npy" "$T/$fx.ref.F.T$ts.npy"
        cmp -s "$T/$fx.fast.F.T$ts.layout.tsv" "$T/$fx.ref.F.T$ts.layout.tsv"
        check $? "$fx: h2t features --target-size $ts: the same layout"
    done
done
# (were the two the same build, every check above would pass trivially)
[ $all_bytes_same = 0 ]
check $? "the two builds run different code: some tap differs in its last bits"

# ---- score and fit on the lasso fixture
FX=test/fixtures/lasso
for v in fast ref; do
    if [ $v = fast ]; then H=$H2T_FAST; else H=$H2T_REF; fi
    "$H" score --features $FX/X.npy --labels $FX/y.npy --init $FX/W0.npy --lr 0.05 --steps 10 --coef 0.01 \
        --out "$T/score.$v" --quiet >/dev/null 2>"$T/err" || bad "h2t score ($v build) failed: $(head -c 300 "$T/err")"
    "$H" fit --features $FX/X.npy --labels $FX/y.npy --layout $FX/X.layout.tsv --lr 0.05 --steps 60 \
        --coef 1e-2,1e-4 --fraction 0.1,0.5 --out "$T/fit.$v" --quiet >/dev/null 2>"$T/err" ||
        bad "h2t fit ($v build) failed: $(head -c 300 "$T/err")"
done
for f in W b scores; do within "h2t score $f.npy" 1e-6 "$T/score.fast/$f.npy" "$T/score.ref/$f.npy"; done
cmp -s "$T/fit.fast/selected.npy" "$T/fit.ref/selected.npy"
check $? "h2t fit: the same selected features"
cmp -s "$T/fit.fast/cv.tsv" "$T/fit.ref/cv.tsv"
check $? "h2t fit: the same cv.tsv (grid, features kept, fold accuracies)"
for f in W b; do within "h2t fit $f.npy" 1e-6 "$T/fit.fast/$f.npy" "$T/fit.ref/$f.npy"; done
exit 0

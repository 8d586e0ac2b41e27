#!/bin/sh
# test/cli_taps.sh: `h2t taps` end to end on the committed ResNet fixtures
# (test/make_fixtures.py): every location written with the right shape, the
# same bytes with 1 and 2 OpenMP threads and from the build without OpenMP,
# --taps selecting a subset, and refusals of bad input (exit status 1, one
# line on stderr, no output directory left behind). The values themselves
# are checked against PyTorch by test/test_resnet.c.
H2T=${H2T_BIN:-./h2t}
. test/npy.sh
H2T_NOOMP=${H2T_BIN_NOOMP:-$H2T}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

ok() { echo "PASS cli_taps: $1"; }
bad() { echo "FAIL cli_taps: $1"; }
check() { if [ "$1" = 0 ]; then ok "$2"; else bad "$2"; fi; }

# same_dirs A B: every .npy of A is byte-identical in B, and B has no others
same_dirs() {
    [ "$(ls "$1" | wc -l)" = "$(ls "$2" | wc -l)" ] || return 1
    for f in "$1"/*.npy; do cmp -s "$f" "$2/$(basename "$f")" || return 1; done
}

for fx in resnet_v15 resnet_v2; do
    FX=test/fixtures/$fx
    nloc=$(wc -l <$FX/expected/order.txt)
    OMP_NUM_THREADS=2 "$H2T" taps --model $FX/model --images $FX/images.npy --out "$T/$fx.2" --batch 2 \
        >"$T/out" 2>"$T/err"
    rc=$?
    [ $rc = 0 ] && [ "$(ls "$T/$fx.2" | wc -l)" = "$nloc" ] && grep -q "^taps: $nloc locations of " "$T/out" &&
        [ -z "$(ls "$T/$fx.2" | grep -v '\.npy$')" ]
    check $? "$fx: writes all $nloc locations, no temporary files left (rc $rc)"
    OMP_NUM_THREADS=1 "$H2T" taps --model $FX/model --images $FX/images.npy --out "$T/$fx.1" --batch 2 \
        --quiet >/dev/null 2>&1
    same_dirs "$T/$fx.2" "$T/$fx.1"
    check $? "$fx: every location bitwise identical with OMP_NUM_THREADS=1 and 2"
    "$H2T_NOOMP" taps --model $FX/model --images $FX/images.npy --out "$T/$fx.n" --batch 2 --quiet \
        >/dev/null 2>&1
    same_dirs "$T/$fx.2" "$T/$fx.n"
    check $? "$fx: every location bitwise identical from the build without OpenMP"
done

# shapes in the .npy headers: conv map [n, H, W, C], vectors [n, C]
D=$T/resnet_v15.2
head -c 128 "$D/after_root.npy" | grep -q "'shape': (3, 10, 10, 6)" &&
    head -c 128 "$D/block2_unit1_layer2.npy" | grep -q "'shape': (3, 5, 5, 12)" &&
    head -c 128 "$D/pre_logits.npy" | grep -q "'shape': (3, 192)" &&
    head -c 128 "$D/logits.npy" | grep -q "'shape': (3, 10)" &&
    head -c 128 "$T/resnet_v2.2/after_root.npy" | grep -q "'shape': (2, 12, 12, 4)"
check $? "shapes: after_root [3,10,10,6], block2_unit1_layer2 [3,5,5,12], pre_logits [3,192], logits [3,10]"

# --taps: a subset, the same bytes as in the full run
FX=test/fixtures/resnet_v15
"$H2T" taps --model $FX/model --images $FX/images.npy --out "$T/sub" --taps logits,after_root --quiet \
    >/dev/null 2>&1
[ "$(ls "$T/sub" | wc -l)" = 2 ] && cmp -s "$T/sub/logits.npy" "$D/logits.npy" &&
    cmp -s "$T/sub/after_root.npy" "$D/after_root.npy"
check $? "--taps logits,after_root writes those two, same bytes as a full run with another batch size"

"$H2T" taps --help >"$T/out" 2>&1 && grep -q -- "--images" "$T/out" && grep -q -- "--taps" "$T/out"
check $? "taps --help"

# ---- refusals: exit 1, one line on stderr, no output directory
# mknpy_u8 FILE SHAPE BYTES: a uint8 .npy of shape (SHAPE), zeros
mknpy_u8() {
    { npy_header '|u1' "$2"; head -c "$3" /dev/zero; } >"$1"
}
mknpy_u8 "$T/two_channels.npy" "2, 8, 8, 2" 256
mknpy_u8 "$T/no_images.npy" "0, 8, 8, 3" 0
refuse() {
    what=$1; shift
    "$H2T" taps "$@" --out "$T/r" >"$T/out" 2>"$T/err"
    rc=$?
    [ $rc = 1 ] && [ "$(wc -l <"$T/err")" = 1 ] && [ ! -e "$T/r" ]
    check $? "refuses $what: $(cat "$T/err")"
}
refuse "a missing model directory" --model "$T/nope" --images $FX/images.npy
refuse "float images" --model $FX/model --images $FX/model/logits.b.npy
refuse "a missing images file" --model $FX/model --images "$T/none.npy"
refuse "images with 2 channels" --model $FX/model --images "$T/two_channels.npy"
refuse "an empty image file" --model $FX/model --images "$T/no_images.npy"
refuse "an unknown flag" --model $FX/model --images $FX/images.npy --bogus 1
refuse "an unknown location" --model $FX/model --images $FX/images.npy --taps after_root,block9_unit1_layer0
refuse "--batch 0" --model $FX/model --images $FX/images.npy --batch 0
exit 0

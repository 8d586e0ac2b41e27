#!/bin/sh
# test/cli_features.sh: `h2t features` and `h2t join` end to end on the
# committed fixture models (test/fixtures/resnet_v15, test/fixtures/vit):
# several target sizes from one pass equal separate runs, results do not
# depend on the batch size, the thread count or OpenMP, joined shards equal
# one run byte for byte, --select writes the selected columns, and bad
# input is refused (exit status 1, one line on stderr, nothing written).
# The values themselves are checked by test/test_features.c (arithmetic)
# and test/parity_features.py (against PyTorch).
H2T=${H2T_BIN:-./h2t}
H2T_NOOMP=${H2T_BIN_NOOMP:-$H2T}
RN=test/fixtures/resnet_v15/model
VT=test/fixtures/vit/model
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

ok() { echo "PASS cli_features: $1"; }
bad() { echo "FAIL cli_features: $1"; }
check() { if [ "$1" = 0 ]; then ok "$2"; else bad "$2"; fi; }

. test/npy.sh
# npy_u8 N H W C FILE: random uint8 images [N, H, W, C] (fixed seed)
npy_u8() {
    { npy_header '|u1' "$1, $2, $3, $4"
      LC_ALL=C awk -v n=$(( $1 * $2 * $3 * $4 )) 'BEGIN { srand(7); for (i = 0; i < n; i++) printf "%c", int(rand() * 256) }'
    } >"$5"
}
# npy_i64 FILE v1 v2 ...: int64 vector
npy_i64() {
    f=$1; shift
    { npy_header '<i8' "$#,"
      for v in "$@"; do
          i=0
          while [ $i -lt 8 ]; do printf "\\$(printf %03o $((v % 256)))"; v=$((v / 256)); i=$((i + 1)); done
      done
    } >"$f"
}
# refuse NAME OUTFILE h2t-args...: exit 1, exactly one line on stderr, OUTFILE absent
refuse() {
    name=$1; out=$2; shift 2
    "$H2T" "$@" >"$T/rout" 2>"$T/rerr"
    rc=$?
    if [ $rc = 1 ] && [ "$(wc -l <"$T/rerr")" = 1 ] && [ ! -e "$out" ] && ! ls "$out".tmp.* >/dev/null 2>&1; then
        ok "refuses $name: $(cat "$T/rerr")"
    else
        bad "refuses $name (rc $rc, stderr: $(head -c 300 "$T/rerr"))"
    fi
}

if [ ! -f $RN/config.txt ]; then
    bad "fixture model $RN is missing"
    exit 1
fi

npy_u8 10 20 20 3 "$T/x.npy"
npy_u8 3 9 13 1 "$T/g.npy"

# ---- one run, help, progress
"$H2T" features --help >"$T/out" 2>&1 && grep -q -- '--target-size' "$T/out" && grep -q -- '--shard' "$T/out"
check $? "features --help lists the flags"
"$H2T" features --model $RN --images "$T/x.npy" --target-size 64 --out "$T/F.npy" --batch 4 >"$T/out" 2>"$T/err"
rc=$?
[ $rc = 0 ] && [ -s "$T/F.npy" ] && [ -s "$T/F.layout.tsv" ] &&
    head -1 "$T/F.layout.tsv" | grep -q '^location	offset	dim	pool	shape	pooled$'
check $? "features writes F.npy and F.layout.tsv with its header (rc $rc)"
grep -q 'img/s' "$T/err" && grep -q 'ETA' "$T/err"
check $? "features: progress on stderr (images, img/s, ETA)"
"$H2T" features --model $RN --images "$T/x.npy" --target-size 64 --out "$T/Fq.npy" --quiet 2>"$T/err" >/dev/null
[ ! -s "$T/err" ] && cmp -s "$T/F.npy" "$T/Fq.npy"
check $? "features --quiet: nothing on stderr, same bytes"
# the offsets of the layout are contiguous and D is the column count in the header
awk -F'\t' 'NR > 1 { if ($2 != d) bad = 1; d += $3 } END { print d; exit bad }' "$T/F.layout.tsv" >"$T/d" &&
    head -c 128 "$T/F.npy" | grep -q "(10, $(cat "$T/d"))"
check $? "features: layout offsets contiguous, D = $(cat "$T/d") = columns of F.npy"

# ---- several target sizes from one pass == separate runs
"$H2T" features --model $RN --images "$T/x.npy" --target-size 16,64,100000 --out "$T/M.npy" --quiet >/dev/null 2>&1
rc=$?
"$H2T" features --model $RN --images "$T/x.npy" --target-size 16 --out "$T/F16.npy" --quiet >/dev/null 2>&1
"$H2T" features --model $RN --images "$T/x.npy" --target-size 100000 --out "$T/F100k.npy" --quiet >/dev/null 2>&1
[ $rc = 0 ] && cmp -s "$T/M.T64.npy" "$T/F.npy" && cmp -s "$T/M.T16.npy" "$T/F16.npy" &&
    cmp -s "$T/M.T100000.npy" "$T/F100k.npy" && cmp -s "$T/M.T64.layout.tsv" "$T/F.layout.tsv" &&
    cmp -s "$T/M.T16.layout.tsv" "$T/F16.layout.tsv" && [ ! -e "$T/M.npy" ]
check $? "features --target-size 16,64,100000: M.T<T>.npy + layouts equal three separate runs"
! cmp -s "$T/F16.npy" "$T/F.npy"
check $? "features: different T give different features"

# ---- invariance: batch size, threads, OpenMP
"$H2T" features --model $RN --images "$T/x.npy" --target-size 64 --out "$T/b1.npy" --batch 1 --quiet >/dev/null 2>&1
"$H2T" features --model $RN --images "$T/x.npy" --target-size 64 --out "$T/b7.npy" --batch 7 --quiet >/dev/null 2>&1
cmp -s "$T/b1.npy" "$T/F.npy" && cmp -s "$T/b7.npy" "$T/F.npy"
check $? "features: --batch 1, 4, 7 give the same bytes"
OMP_NUM_THREADS=1 "$H2T" features --model $RN --images "$T/x.npy" --target-size 64 --out "$T/t1.npy" --batch 4 \
    --quiet >/dev/null 2>&1
OMP_NUM_THREADS=2 "$H2T" features --model $RN --images "$T/x.npy" --target-size 64 --out "$T/t2.npy" --batch 4 \
    --quiet >/dev/null 2>&1
"$H2T_NOOMP" features --model $RN --images "$T/x.npy" --target-size 64 --out "$T/t0.npy" --batch 4 \
    --quiet >/dev/null 2>&1
cmp -s "$T/t1.npy" "$T/F.npy" && cmp -s "$T/t2.npy" "$T/F.npy" && cmp -s "$T/t0.npy" "$T/F.npy"
check $? "features: OMP_NUM_THREADS 1 and 2 and the build without OpenMP give the same bytes"

# ---- --winograd 4: other bits than the default, within 1e-4 of their largest
# magnitude (test/test_winograd.c bounds each convolution); still the same
# bytes for any batch, thread count and OpenMP; refused for a ViT and for M 3
NPYCMP=${H2T_NPYCMP:-$(dirname "$H2T")/npycmp}
[ -x "$NPYCMP" ] || NPYCMP=$(dirname "$H2T_NOOMP")/npycmp
OMP_NUM_THREADS=2 "$H2T" features --model $RN --images "$T/x.npy" --target-size 64 --out "$T/w2.npy" --batch 4 \
    --winograd 4 --quiet >/dev/null 2>&1
rc=$?
OMP_NUM_THREADS=1 "$H2T" features --model $RN --images "$T/x.npy" --target-size 64 --out "$T/w1.npy" --batch 3 \
    --winograd 4 --quiet >/dev/null 2>&1
"$H2T_NOOMP" features --model $RN --images "$T/x.npy" --target-size 64 --out "$T/w0.npy" --batch 1 \
    --winograd 4 --quiet >/dev/null 2>&1
[ $rc = 0 ] && cmp -s "$T/w1.npy" "$T/w2.npy" && cmp -s "$T/w0.npy" "$T/w2.npy" && cmp -s "$T/w2.layout.tsv" "$T/F.layout.tsv"
check $? "features --winograd 4: the same bytes for batch 4/3/1, 2 and 1 threads, without OpenMP; the same layout"
if cmp -s "$T/w2.npy" "$T/F.npy"; then
    # the same bytes only from the reference build (make REFERENCE=1 test), which ignores the option
    [ -n "${H2T_BIN_REF:-}" ] && [ "$H2T_BIN_REF" = "$H2T" ]
    check $? "features --winograd 4: the default's bytes (allowed only in the reference build, which ignores it)"
else
    [ -x "$NPYCMP" ] && ${H2T_EXEC:-} "$NPYCMP" "$T/w2.npy" "$T/F.npy" 1e-4 >/dev/null
    check $? "features --winograd 4: not the default's bits, within 1e-4 of them ($(${H2T_EXEC:-} "$NPYCMP" "$T/w2.npy" "$T/F.npy" 1e-4 2>&1 | head -n 1))"
fi
refuse "--winograd 3" "$T/w3.npy" features --model $RN --images "$T/x.npy" --target-size 64 --out "$T/w3.npy" --winograd 3
if [ -f $VT/config.txt ]; then
    refuse "--winograd on a ViT" "$T/wv.npy" features --model $VT --images "$T/x.npy" --target-size 64 --out "$T/wv.npy" \
        --winograd 2
fi

# ---- shards: 3 slices (3, 3, 4 images) with another batch size, joined
for k in 0 1 2; do
    "$H2T" features --model $RN --images "$T/x.npy" --target-size 16,64 --out "$T/s$k.npy" --shard $k/3 \
        --batch 2 --quiet >/dev/null 2>&1 || bad "shard $k/3 failed"
done
head -c 128 "$T/s2.T64.npy" | grep -q "(4, "
check $? "features --shard 2/3 of 10 images has 4 rows"
"$H2T" join --out "$T/J.npy" "$T/s0.T64.npy" "$T/s1.T64.npy" "$T/s2.T64.npy" >"$T/out" 2>&1
rc=$?
[ $rc = 0 ] && cmp -s "$T/J.npy" "$T/F.npy" && cmp -s "$T/J.layout.tsv" "$T/F.layout.tsv"
check $? "join of 3 shards == one run, byte for byte (npy and layout) (rc $rc)"
"$H2T" join --out "$T/J16.npy" "$T/s0.T16.npy" "$T/s1.T16.npy" "$T/s2.T16.npy" >/dev/null 2>&1 &&
    cmp -s "$T/J16.npy" "$T/F16.npy"
check $? "join of 3 shards at T 16 == one run"
# 10 images in 11 shards: shard 0 is [0, 0)
"$H2T" features --model $RN --images "$T/x.npy" --target-size 64 --out "$T/e.npy" --shard 0/11 --quiet \
    >/dev/null 2>&1 && head -c 128 "$T/e.npy" | grep -q "(0, $(cat "$T/d"))" &&
    "$H2T" join --out "$T/J2.npy" "$T/e.npy" "$T/F.npy" "$T/e.npy" >/dev/null 2>&1 && cmp -s "$T/J2.npy" "$T/F.npy"
check $? "features: an empty shard (0/11 of 10 images) writes [0, D]; joining it changes nothing"

# ---- --select: selected columns only
D=$(cat "$T/d")
npy_i64 "$T/sel.npy" 0 3 4 17 $((D - 2)) $((D - 1))
"$H2T" features --model $RN --images "$T/x.npy" --target-size 64 --select "$T/sel.npy" --layout "$T/F.layout.tsv" \
    --out "$T/S.npy" --quiet >"$T/out" 2>"$T/err"
rc=$?
[ $rc = 0 ] && head -c 128 "$T/S.npy" | grep -q "(10, 6)" && [ ! -e "$T/S.layout.tsv" ]
check $? "features --select 6 indices: S.npy [10, 6] (rc $rc $(cat "$T/err"))"
"$H2T" features --model $RN --images "$T/x.npy" --target-size 64 --select "$T/sel.npy" --layout "$T/F.layout.tsv" \
    --out "$T/S2.npy" --quiet --shard 1/2 --batch 3 >/dev/null 2>&1 &&
    "$H2T" features --model $RN --images "$T/x.npy" --target-size 64 --select "$T/sel.npy" \
    --layout "$T/F.layout.tsv" --out "$T/S1.npy" --quiet --shard 0/2 >/dev/null 2>&1 &&
    "$H2T" join --out "$T/SJ.npy" "$T/S1.npy" "$T/S2.npy" >/dev/null 2>&1 && cmp -s "$T/SJ.npy" "$T/S.npy"
check $? "features --select in 2 shards, joined == one run"

# ---- ViT fixture (token maps): several T, threads
if [ -f $VT/config.txt ]; then
    "$H2T" features --model $VT --images "$T/x.npy" --target-size 8,100,5000 --out "$T/V.npy" --batch 3 --taps all \
        --quiet >/dev/null 2>"$T/err"
    rc=$?
    "$H2T" features --model $VT --images "$T/x.npy" --target-size 100 --out "$T/V100.npy" --batch 10 --taps all \
        --quiet >/dev/null 2>&1
    OMP_NUM_THREADS=1 "$H2T_NOOMP" features --model $VT --images "$T/x.npy" --target-size 100 --out "$T/V100b.npy" \
        --batch 1 --taps all --quiet >/dev/null 2>&1
    [ $rc = 0 ] && cmp -s "$T/V.T100.npy" "$T/V100.npy" && cmp -s "$T/V100b.npy" "$T/V100.npy" &&
        grep -q '^encoded_sequence' "$T/V100.layout.tsv"
    check $? "features on the ViT fixture: 3 T from one pass == a separate run; batch/thread/OpenMP invariant"
    "$H2T" features --model $VT --images "$T/g.npy" --target-size 100 --out "$T/Vg.npy" --quiet >/dev/null 2>&1 &&
        head -c 128 "$T/Vg.npy" | grep -q "(3, "
    check $? "features on the ViT fixture: grayscale [3, 9, 13, 1] images (tiled to 3 channels)"
else
    bad "fixture model $VT is missing"
fi

# ---- refusals
O="$T/r.npy"
refuse "a missing --model" "$O" features --images "$T/x.npy" --target-size 64 --out "$O"
refuse "an unknown flag" "$O" features --model $RN --images "$T/x.npy" --target-size 64 --out "$O" --bogus 1
refuse "--target-size 0" "$O" features --model $RN --images "$T/x.npy" --target-size 0 --out "$O"
refuse "--target-size 1.5" "$O" features --model $RN --images "$T/x.npy" --target-size 1.5 --out "$O"
refuse "a repeated target size" "$T/r.T64.npy" features --model $RN --images "$T/x.npy" --target-size 64,64 --out "$O"
refuse "--out without .npy" "$T/r.txt" features --model $RN --images "$T/x.npy" --target-size 64 --out "$T/r.txt"
refuse "--shard 3/3" "$O" features --model $RN --images "$T/x.npy" --target-size 64 --out "$O" --shard 3/3
refuse "--shard 1" "$O" features --model $RN --images "$T/x.npy" --target-size 64 --out "$O" --shard 1
refuse "--batch 0" "$O" features --model $RN --images "$T/x.npy" --target-size 64 --out "$O" --batch 0
refuse "an unknown tap" "$O" features --model $RN --images "$T/x.npy" --target-size 64 --out "$O" --taps nosuch
refuse "--select without --layout" "$O" features --model $RN --images "$T/x.npy" --target-size 64 --out "$O" \
    --select "$T/sel.npy"
refuse "--select with two target sizes" "$T/r.T16.npy" features --model $RN --images "$T/x.npy" --target-size 16,64 \
    --out "$O" --select "$T/sel.npy" --layout "$T/F.layout.tsv"
refuse "--select with a layout of another T" "$O" features --model $RN --images "$T/x.npy" --target-size 16 \
    --out "$O" --select "$T/sel.npy" --layout "$T/F.layout.tsv"
npy_i64 "$T/sel2.npy" 3 3
refuse "--select indices not ascending" "$O" features --model $RN --images "$T/x.npy" --target-size 64 \
    --out "$O" --select "$T/sel2.npy" --layout "$T/F.layout.tsv"
npy_i64 "$T/sel3.npy" 0 "$D"
refuse "--select index >= D" "$O" features --model $RN --images "$T/x.npy" --target-size 64 \
    --out "$O" --select "$T/sel3.npy" --layout "$T/F.layout.tsv"
refuse "images that are not [n, H, W, C]" "$O" features --model $RN --images "$T/sel.npy" --target-size 64 --out "$O"
refuse "a missing images file" "$O" features --model $RN --images "$T/none.npy" --target-size 64 --out "$O"
refuse "a model directory without config.txt" "$O" features --model "$T" --images "$T/x.npy" --target-size 64 --out "$O"
refuse "join of files with different columns" "$O" join --out "$O" "$T/F.npy" "$T/F16.npy"
cp "$T/F16.layout.tsv" "$T/Fq.layout.tsv"
refuse "join of shards with different layouts" "$O" join --out "$O" "$T/F.npy" "$T/Fq.npy"
refuse "join without inputs" "$O" join --out "$O"
# --out in folders that do not exist yet: created, as mkdir -p (taps too)
"$H2T" features --model $RN --images "$T/x.npy" --target-size 64 --out "$T/new/deeper/F.npy" --quiet &&
    cmp -s "$T/new/deeper/F.npy" "$T/F.npy"
check $? "--out in missing folders: they are created, the same bytes"
"$H2T" taps --model $RN --images "$T/x.npy" --out "$T/new2/taps/" --quiet >/dev/null && [ -f "$T/new2/taps/after_root.npy" ]
check $? "taps --out DIR/ in a missing folder: created"
: >"$T/afile"
refuse "--out under a file (features)" "$T/afile/F.npy" features --model $RN --images "$T/x.npy" --target-size 64 \
    --out "$T/afile/F.npy" --quiet
refuse "--out under a file (taps)" "$T/afile/taps" taps --model $RN --images "$T/x.npy" --out "$T/afile/taps" --quiet
exit 0

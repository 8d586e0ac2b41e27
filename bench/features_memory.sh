#!/bin/sh
# bench/features_memory.sh: peak memory (max RSS) of `h2t features` on
# N images (default 2000) with full-size ResNet-50 (torchvision layout,
# random weights) at T = 8192, where D = 524,904: holding every row would
# take N x D x 4 bytes (4.2 GB for 2000 images); streaming holds a batch.
# The images are 32x32 uint8 (the model resizes them to 224) to keep the
# input file small. Needs /usr/bin/python3 with torch + torchvision (for
# the export only) and GNU time (/usr/bin/time). Runs with nice; on 2 cores
# it takes several minutes.
# Usage: sh bench/features_memory.sh [N] [BATCH] [T]     (from the repo root)
set -e
H2T=${H2T:-./h2t}
N=${1:-2000}
BATCH=${2:-16}
TS=${3:-8192}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

/usr/bin/python3 - "$W" "$N" <<'EOF'
import sys, numpy as np, torch, torchvision
d, n = sys.argv[1], int(sys.argv[2])
torch.manual_seed(0)
torch.save(torchvision.models.resnet50(weights=None).state_dict(), f"{d}/rn50.pth")
np.save(f"{d}/x.npy", np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8))
EOF
/usr/bin/python3 weights/export.py --arch resnet50 --checkpoint "$W/rn50.pth" --out "$W/rn50" >/dev/null

/usr/bin/time -v nice -n 10 "$H2T" features --model "$W/rn50" --images "$W/x.npy" --target-size "$TS" \
    --out "$W/F.npy" --batch "$BATCH" 2>"$W/err" >"$W/out" || { cat "$W/err"; exit 1; }
cat "$W/out"
grep -E 'img/s' "$W/err" | tail -1
rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$W/err")
wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { print $2 }' "$W/err")
D=$(awk -F'\t' 'NR > 1 { d += $3 } END { print d }' "$W/F.layout.tsv")
echo "features_memory: n $N, batch $BATCH, T $TS, D $D: max RSS $((rss / 1024)) MiB, wall $wall," \
     "all rows would be $((N * D * 4 / 1048576)) MiB, one batch of rows $((BATCH * D * 4 / 1048576)) MiB" \
     "(threads ${OMP_NUM_THREADS:-all}, $(uname -m))"

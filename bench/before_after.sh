#!/bin/sh
# bench/before_after.sh REV [ROUNDS]: the speed of this tree's h2t against
# the h2t of git revision REV (built from `git archive REV` in a temporary
# folder with the same make flags), measured in one run, interleaved
# (old, new, old, new, ...) ROUNDS times (default 3), on 2 threads:
#   ./h2t bench --arch resnet50 / vit_b_16 --seconds 10   img/s
#   ./h2t score, n = 1000, D = 100,000, K = 10, 200 steps  seconds of the loop
# Prints each measurement, then the best of the rounds per program and the
# ratio new / old (> 1: the new one is faster). Needs /usr/bin/python3 with
# numpy (the feature matrix). Run on a quiet machine.
#   e.g. bench/before_after.sh b1af1ca 3 | tee bench/results/before-after-readable-core.txt
set -e
REV=${1:?usage: bench/before_after.sh REV [ROUNDS]}
ROUNDS=${2:-3}
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
make -s h2t >/dev/null
mkdir "$T/old" && git archive "$REV" | tar -x -C "$T/old"
make -s -C "$T/old" h2t >/dev/null
$PY -c "
import numpy as np
rng = np.random.default_rng(0)
np.save('$T/X.npy', rng.standard_normal((1000, 100000), dtype=np.float32) * np.float32(0.003))
np.save('$T/y.npy', rng.integers(0, 10, 1000).astype(np.int64))"
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive
echo "bench/before_after.sh $REV ($(git rev-parse --short "$REV")) vs this tree ($(git rev-parse --short HEAD)$(git diff --quiet || echo ', modified')):"
echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores, 2 threads;" \
    "load average before $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$ROUNDS"); do
    for who in old new; do
        h=./h2t
        [ $who = old ] && h=$T/old/h2t
        for a in resnet50 vit_b_16; do
            v=$($h bench --arch $a --seconds 10 --quiet | sed 's/.*: \([0-9.]*\) img\/s$/\1/')
            echo "round $r $who $a $v img/s"
        done
        s=$($h score --features "$T/X.npy" --labels "$T/y.npy" --lr 0.01 --coef 1e-5 --steps 200 --out "$T/s" --quiet |
            sed -n 's/.* 200 steps in \([0-9.]*\) s.*/\1/p')
        echo "round $r $who score $s s"
    done
done | tee "$T/log"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
awk '{ k = $4; v = $5 + 0; w = $3
       if (k == "score") { if (!(w k in b) || v < b[w k]) b[w k] = v } else if (v > b[w k]) b[w k] = v }
     END {
       printf "best of the rounds: ResNet-50 old %.2f new %.2f img/s (new/old %.3f); ViT-B/16 old %.2f new %.2f img/s (%.3f);" \
              " scoring run old %.2f new %.2f s (old/new %.3f)\n", b["oldresnet50"], b["newresnet50"],
              b["newresnet50"] / b["oldresnet50"], b["oldvit_b_16"], b["newvit_b_16"], b["newvit_b_16"] / b["oldvit_b_16"],
              b["oldscore"], b["newscore"], b["oldscore"] / b["newscore"] }' "$T/log"

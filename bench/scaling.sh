#!/bin/sh
# bench/scaling.sh [THREADS...]: thread scaling of the two things a task
# spends its time on, at each thread count (default: 1 2 4 8 16, those
# above the core count skipped):
#   forward   ./h2t bench --arch resnet50 and --arch vit_b_16 (batch 16, 224 px,
#             random weights made in C, every location computed): img/s
#   scoring   ./h2t score on n = 1000, D = 100,000, K = 10, 100 steps, batch 128
#             (the group-lasso scoring run): steps/s and feature-steps/s
# and a markdown table with the speed-up over 1 thread. Results are
# identical for any thread count (the suite checks it); this measures only
# time. Needs /usr/bin/python3 with numpy for the feature matrix (400 MB in
# $TMPDIR). Run on a quiet machine.
#   e.g. bench/scaling.sh 1 2 > bench/results/scaling-2cores.md
set -e
H2T=${H2T:-./h2t}
PY=${PYTHON:-/usr/bin/python3}
SECONDS_PER=${SECONDS_PER:-10}
CORES=$(nproc)
THREADS=${*:-1 2 4 8 16}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
$PY -c "
import numpy as np
rng = np.random.default_rng(0)
np.save('$T/X.npy', rng.standard_normal((1000, 100000), dtype=np.float32) * np.float32(0.003))
np.save('$T/y.npy', rng.integers(0, 10, 1000).astype(np.int64))"
echo "bench/scaling.sh: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $CORES cores;" \
    "load average before $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| threads | ResNet-50 img/s | speed-up | ViT-B/16 img/s | speed-up | scoring steps/s | speed-up |"
echo "|---|---|---|---|---|---|---|"
r1= v1= s1=
for t in $THREADS; do
    [ "$t" -le "$CORES" ] || { echo "| $t | (skipped: $CORES cores) | | | | | |"; continue; }
    export OMP_NUM_THREADS=$t OMP_WAIT_POLICY=passive
    r=$($H2T bench --arch resnet50 --seconds "$SECONDS_PER" --quiet | sed 's/.*: \([0-9.]*\) img\/s$/\1/')
    v=$($H2T bench --arch vit_b_16 --seconds "$SECONDS_PER" --quiet | sed 's/.*: \([0-9.]*\) img\/s$/\1/')
    s=$($H2T score --features "$T/X.npy" --labels "$T/y.npy" --lr 0.01 --coef 1e-5 --steps 100 --out "$T/s" --quiet |
        sed -n 's/.* 100 steps in \([0-9.]*\) s.*/\1/p')
    s=$(awk "BEGIN { printf \"%.2f\", 100 / $s }")
    r1=${r1:-$r} v1=${v1:-$v} s1=${s1:-$s}
    echo "| $t | $r | $(awk "BEGIN { printf \"%.2fx\", $r / $r1 }") | $v | $(awk "BEGIN { printf \"%.2fx\", $v / $v1 }")" \
        "| $s | $(awk "BEGIN { printf \"%.2fx\", $s / $s1 }") |"
done
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg); feature-steps/s = steps/s x 100,000"

#!/bin/sh
# bench/score_vs_torch.sh [THREADS]: one scoring run (docs/ALGORITHM.md §6) with
# n = 1000, D = 100,000, K = 50, 200 steps, batch 128, in h2t and in the same
# loop written in PyTorch (CPU, bench/score_torch.py), on the same data, the
# same initial head and the same number of threads, one after the other.
# Prints both times (the training loop alone, and h2t's whole command), their
# ratio (torch / h2t, training loops), the load average before and after,
# and the largest difference between the two final heads.
# Needs /usr/bin/python3 with numpy and torch; about 1 GB of disk in $TMPDIR.
set -e
H2T=${H2T:-./h2t}
PY=${PYTHON:-/usr/bin/python3}
THREADS=${1:-2}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores; threads $THREADS"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
$PY bench/score_torch.py make --out "$T" --n 1000 --d 100000 --k 50
ARGS="--lr 0.01 --coef 1e-5 --steps 200"
start=$(date +%s.%N)
OMP_NUM_THREADS=$THREADS $H2T score --features "$T/X.npy" --labels "$T/y.npy" --init "$T/W0.npy" $ARGS \
    --out "$T/h2t" --quiet | sed 's/^score:/h2t:/' | tee "$T/h2t.txt"
end=$(date +%s.%N)
echo "h2t: whole command (with reading 400 MB of features, writing W) $(awk "BEGIN { printf \"%.2f\", $end - $start }") s"
OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX} OMP_NUM_THREADS=$THREADS \
    $PY bench/score_torch.py run --data "$T" $ARGS --threads "$THREADS" --out "$T/torch_W.npy" | tee "$T/torch.txt"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
a=$(sed -n 's/.* steps in \([0-9.]*\) s.*/\1/p' "$T/h2t.txt")
b=$(sed -n 's/.* steps in \([0-9.]*\) s.*/\1/p' "$T/torch.txt")
echo "training loop: torch $b s / h2t $a s = $(awk "BEGIN { printf \"%.2f\", $b / $a }")x"
$PY -c "
import numpy as np
a = np.load('$T/h2t/W.npy'); b = np.load('$T/torch_W.npy')
print(f'max |W_h2t - W_torch| = {np.abs(a - b).max():.3g} (max |W| {np.abs(b).max():.3g})')"

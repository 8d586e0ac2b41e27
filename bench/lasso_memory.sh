#!/bin/sh
# bench/lasso_memory.sh [D] [STEPS]: peak memory of `h2t score` and `h2t fit`
# on n = 1000 examples with D features (default 3,000,000, the size of the
# official largest grid point, ResNet-50 at T = 40000), K = 10, a few steps.
# The feature matrix alone is 4 n D bytes (12 GB at D = 3M); the heads add
# 3 D K floats (W and Adam's m, v); nothing else grows with n x D, and no
# fold copies the matrix (folds index rows). Needs /usr/bin/python3 with
# numpy and 4 n D bytes free in $TMPDIR. Uses /usr/bin/time -v if present.
set -e
H2T=${H2T:-./h2t}
PY=${PYTHON:-/usr/bin/python3}
D=${1:-3000000}
STEPS=${2:-5}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
$PY - "$T" "$D" <<'PYEOF'
import sys, numpy as np
out, d, n, k = sys.argv[1], int(sys.argv[2]), 1000, 10
rng = np.random.default_rng(0)
X = np.lib.format.open_memmap(f"{out}/X.npy", mode="w+", dtype=np.float32, shape=(n, d))
for i in range(0, n, 10):
    X[i:i + 10] = rng.standard_normal((10, d), dtype=np.float32) / np.float32(np.sqrt(d / 10))
X.flush()
np.save(f"{out}/y.npy", (np.arange(n) % k).astype(np.int64))
with open(f"{out}/X.layout.tsv", "w") as f:
    f.write("location\toffset\tdim\tpool\n")
    for i in range(10):
        f.write(f"loc{i}\t{i * d // 10}\t{(i + 1) * d // 10 - i * d // 10}\t0\n")
print(f"wrote X [{n}, {d}] float32 ({4 * n * d / 2**30:.1f} GiB)")
PYEOF
run() {
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -v "$@" 2>"$T/time" >"$T/out" || { cat "$T/time"; exit 1; }
        cat "$T/out"
        grep -E "Maximum resident|Elapsed" "$T/time"
    else
        "$@"
    fi
}
echo "== h2t score, D=$D, $STEPS steps"
run $H2T score --features "$T/X.npy" --labels "$T/y.npy" --steps "$STEPS" --lr 0.01 --coef 1e-3 --out "$T/s" --quiet
echo "== h2t fit (head2toe, one grid point, F 0.001), D=$D, $STEPS steps"
run $H2T fit --features "$T/X.npy" --labels "$T/y.npy" --layout "$T/X.layout.tsv" --steps "$STEPS" --lr 0.01 \
    --coef 1e-3 --fraction 0.001 --out "$T/f" --quiet

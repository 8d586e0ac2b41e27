#!/bin/sh
# bench/score_limits.sh [THREADS]: how close a scoring step (docs/ALGORITHM.md
# §6, the fused step of §11) comes to the machine's limits. Measures the
# memory read bandwidth (bench/stream.c) and the GEMM peak (`h2t bench
# --gemm`, n 2048), then times scoring steps on n = 1000, D = 200,000,
# K = 10, batch 128 (random features, bench/score_torch.py make):
#   one head        `h2t score`, 200 steps
#   four heads      `h2t fit` on one fold with lr 0.1, 0.01 x coef 1e-3, 1e-5:
#                   the four scoring runs trained side by side, 200 steps
#                   (the unit's time, with one tiny F head)
# and prints per step the bytes that must come from memory (one batch of
# X's rows, 128 x D x 4: a step reads it for the next logits, and the next
# step again for its gradient, from cache where it fits; W, m, v read and
# written, 6 x 4 D K per head), the multiply-adds (X^T G and X W: 4 x 128
# x D x K flops per head), and the achieved GB/s and GFLOP/s against the
# two limits. Needs /usr/bin/python3 with numpy and 1 GB in $TMPDIR.
set -e
H2T=${H2T:-./h2t}
PY=${PYTHON:-/usr/bin/python3}
THREADS=${1:-$(nproc)}
export OMP_NUM_THREADS=$THREADS OMP_WAIT_POLICY=passive
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores; threads $THREADS"
${CC:-cc} -std=c11 -D_POSIX_C_SOURCE=200809L -O3 -march=native -fopenmp bench/stream.c -o "$T/stream"
bw=$("$T/stream" | sed -n 's/read GB\/s: \([0-9.]*\).*/\1/p')
peak=$($H2T bench --gemm --sizes 2048 --seconds 3 2>&1 | sed -n 's/.* \([0-9.]*\) GFLOP\/s.*/\1/p' | tail -1)
echo "limits: memory read $bw GB/s, GEMM (n 2048) $peak GFLOP/s"
D=200000 K=10 S=200
$PY bench/score_torch.py make --out "$T" --n 1000 --d $D --k $K >/dev/null
$H2T score --features "$T/X.npy" --labels "$T/y.npy" --lr 0.01 --coef 1e-3 --steps $S --out "$T/s" --quiet >"$T/one.txt"
one=$(sed -n 's/.* steps in \([0-9.]*\) s.*/\1/p' "$T/one.txt")
$H2T fit --features "$T/X.npy" --labels "$T/y.npy" --layout "$T/X.layout.tsv" --lr 0.1,0.01 --coef 1e-3,1e-5 \
    --steps $S --fraction 0.001 --grid-shard 0/5 --out "$T/f" 2>"$T/four.txt" >/dev/null
four=$(sed -n 's/^fit: cv fold [0-9]*\/5 lr 0.1 steps [0-9]* coef 0.001: .*(\([0-9.]*\) s)$/\1/p' "$T/four.txt")
awk -v D=$D -v K=$K -v S=$S -v one="$one" -v four="$four" -v bw="$bw" -v peak="$peak" 'BEGIN {
    x = 128 * D * 4
    for (h = 1; h <= 4; h *= 4) {
        t = (h == 1 ? one : four) / S
        bytes = x + h * 6 * 4 * D * K; flops = h * 4 * 128 * D * K
        printf "%d head%s: %.1f ms per step; %.0f MB moved: %.1f GB/s (%.0f%% of read bandwidth); %.2f GFLOP: %.1f GFLOP/s (%.0f%% of GEMM)\n",
            h, (h > 1 ? "s side by side" : ""), t * 1e3, bytes / 1e6, bytes / t / 1e9, 100 * bytes / t / 1e9 / bw,
            flops / 1e9, flops / t / 1e9, 100 * flops / t / 1e9 / peak
    }
}'

#!/bin/sh
# bench/gemm_vs_openblas.sh: GFLOP/s of h2t's gemm() (gemm.c) against
# OpenBLAS sgemm (through numpy's float32 matmul, SkylakeX kernel) on square
# C[n,n] = A[n,n] B[n,n], same thread count for both. Not part of `make test`.
#
#   bench/gemm_vs_openblas.sh            # sizes 1024 2048 3072 4096, 2 threads
#   THREADS=1 REPS=5 SECS=2 SIZES="1024 4096" bench/gemm_vs_openblas.sh
#   BASE=/tmp/old_gemm.c bench/gemm_vs_openblas.sh   # also time an older gemm.c
#
# Needs /usr/bin/python3 with numpy linked to OpenBLAS (Debian:
# apt-get install libopenblas0-pthread; the reference libblas3 is ~50x
# slower); the script stops if numpy has no OpenBLAS loaded.
#
# The two are interleaved (h2t n, OpenBLAS n, h2t n, ...) REPS times, each
# measurement a fresh process timing repeated products for SECS seconds
# after a warm-up; the table shows the best of all (the machine may be
# shared, the best run is the least disturbed) and ratio = h2t / OpenBLAS.
# A load average near or above the core count makes both numbers noisy.
set -eu
cd "$(dirname "$0")/.."

THREADS=${THREADS:-2}
REPS=${REPS:-5}
SECS=${SECS:-1}
SIZES=${SIZES:-1024 2048 3072 4096}
PY=${PYTHON:-/usr/bin/python3}
B=build/native-omp

tmp=$(mktemp -d /tmp/gemm_vs_openblas.XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM

# bench_gemm on the objects `make` builds (see bench/bench_gemm.c), with
# the Makefile's flags for them
make -s "$B/gemm.o" "$B/tensor.o" "$B/util.o"
cmd=$(make -n -W gemm.c "$B/gemm.o" | grep -- '-c gemm.c' | head -n 1)
CC=${cmd%% *}
CFLAGS=$(echo "$cmd" | sed 's/^[^ ]* //; s/ -c gemm.c.*//; s/  */ /g')
# shellcheck disable=SC2086
$CC $CFLAGS -iquote . bench/bench_gemm.c "$B/gemm.o" "$B/tensor.o" "$B/util.o" -lm -o "$tmp/bench_gemm"
if [ -n "${BASE:-}" ]; then # another gemm.c to compare with, e.g. an older one
    # shellcheck disable=SC2086
    $CC $CFLAGS -iquote . -c "$BASE" -o "$tmp/base.o"
    # shellcheck disable=SC2086
    $CC $CFLAGS -iquote . bench/bench_gemm.c "$tmp/base.o" "$B/tensor.o" "$B/util.o" -lm -o "$tmp/bench_base"
fi

cat >"$tmp/np_gemm.py" <<'EOF'
import sys, time
import numpy as np
n, secs = int(sys.argv[1]), float(sys.argv[2])
maps = open("/proc/self/maps").read()
if "openblas" not in maps:
    sys.exit("gemm_vs_openblas: numpy is not using OpenBLAS (install libopenblas0-pthread)")
rng = np.random.default_rng(1)
a = (rng.random((n, n), dtype=np.float32) - 0.5)
b = (rng.random((n, n), dtype=np.float32) - 0.5)
c = np.empty((n, n), dtype=np.float32)
np.matmul(a, b, out=c)  # warm-up: threads started, pages touched
best, runs, end = 1e30, 0, time.perf_counter() + secs
while time.perf_counter() < end or runs < 2:
    t = time.perf_counter()
    np.matmul(a, b, out=c)
    best = min(best, time.perf_counter() - t)
    runs += 1
print("%.1f" % (2.0 * n * n * n / best * 1e-9))
EOF

export OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS" OPENBLAS_CORETYPE=SkylakeX

core=$(OPENBLAS_VERBOSE=2 "$PY" -c 'import numpy as np; a = np.ones((64, 64), np.float32); a @ a' 2>&1 |
       sed -n 's/^Core: //p' | head -n 1)
lib=$("$PY" -c 'import numpy as np; a = np.ones((64, 64), np.float32); a @ a
print(sorted({l.split()[-1] for l in open("/proc/self/maps") if "blas" in l.lower()})[0])')
echo "machine:  $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(nproc) cores"
echo "load:     $(uptime | sed 's/.*load average: //') (1, 5, 15 min)"
echo "threads:  $THREADS (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS)"
echo "h2t:      $($CC --version | head -n 1): $CFLAGS"
echo "OpenBLAS: $lib, core ${core:-unknown} (OPENBLAS_CORETYPE=SkylakeX), numpy $("$PY" -c 'import numpy; print(numpy.__version__)')"
echo "runs:     best of $REPS x ${SECS}s each, interleaved${BASE:+; base: h2t built from $BASE}"
gflops() { "$1" "$SECS" "$2" | awk '{for (i = 2; i <= NF; i++) if ($i == "GFLOP/s") { print $(i - 1); exit }}'; }
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (b > a ? b : a) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
if [ -n "${BASE:-}" ]; then
    printf '%6s %14s %18s %7s %14s %9s\n' size "h2t GFLOP/s" "OpenBLAS GFLOP/s" ratio "base GFLOP/s" "h2t/base"
else
    printf '%6s %14s %18s %7s\n' size "h2t GFLOP/s" "OpenBLAS GFLOP/s" ratio
fi
for n in $SIZES; do
    h=0 o=0 b=0 r=0
    while [ "$r" -lt "$REPS" ]; do
        h=$(max "$h" "$(gflops "$tmp/bench_gemm" "$n")")
        o=$(max "$o" "$("$PY" "$tmp/np_gemm.py" "$n" "$SECS")")
        [ -n "${BASE:-}" ] && b=$(max "$b" "$(gflops "$tmp/bench_base" "$n")")
        r=$((r + 1))
    done
    if [ -n "${BASE:-}" ]; then
        printf '%6s %14s %18s %7s %14s %9s\n' "$n" "$h" "$o" "$(ratio "$h" "$o")" "$b" "$(ratio "$h" "$b")"
    else
        printf '%6s %14s %18s %7s\n' "$n" "$h" "$o" "$(ratio "$h" "$o")"
    fi
done
echo "load:     $(uptime | sed 's/.*load average: //') (after)"

#!/bin/sh
# bench/threads_vs_processes.sh: how much of a second core h2t's threads
# get, against what two independent processes get from the same two cores.
# For the forward (ResNet-50, ViT-B/16) and the GEMM (n^3), in rounds, each
# round running, one after the other:
#   one     OMP_NUM_THREADS=1, one process, alone (batch B/2 for the forward)
#   threads OMP_NUM_THREADS=2, one process (batch B)
#   procs   two OMP_NUM_THREADS=1 processes at once, pinned to cores 0 and 1
#           with taskset when it is there (batch B/2 each); their sum
# and prints each round, then the best of the rounds and the two ratios:
#   threads / one    what the second thread adds (2.00 = all of a core)
#   threads / procs  < 1: the threads of one process lose that much
#                    against two processes sharing nothing but the machine
#                    (caches, memory): the cost of splitting one product
#                    over two threads (more packing, a barrier per product,
#                    smaller tiles)
# Usage: bench/threads_vs_processes.sh [--rounds 3] [--seconds 5] [--batch 16]
#        [--gemm-size 1024] [--h2t ./h2t] [--out FILE]
# Time: about rounds x (3 x 2 forward + 3 GEMM) x seconds, ~3 minutes with
# the defaults. Run it on a quiet machine of 2 cores or more.
set -eu

ROUNDS=3
SECS=5
BATCH=16
GSIZE=1024
H2T=./h2t
OUT=
die() { echo "threads_vs_processes.sh: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=${2:?--rounds needs a number}; shift 2 ;;
        --seconds) SECS=${2:?--seconds needs a number}; shift 2 ;;
        --batch) BATCH=${2:?--batch needs an even number}; shift 2 ;;
        --gemm-size) GSIZE=${2:?--gemm-size needs a number}; shift 2 ;;
        --h2t) H2T=${2:?--h2t needs a path}; shift 2 ;;
        --out) OUT=${2:?--out needs a file}; shift 2 ;;
        --help|-h) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (try --help)" ;;
    esac
done
case "$ROUNDS$SECS$BATCH$GSIZE" in *[!0-9]*) die "--rounds, --seconds, --batch, --gemm-size: whole numbers" ;; esac
[ "$ROUNDS" -ge 1 ] && [ "$BATCH" -ge 2 ] && [ $((BATCH % 2)) -eq 0 ] || die "--rounds >= 1, --batch even and >= 2"
[ -x "$H2T" ] || die "$H2T: not an executable (run make first)"
HALF=$((BATCH / 2))
PIN0= PIN1= PINNED=none
if command -v taskset >/dev/null 2>&1 && taskset -c 1 true 2>/dev/null; then PIN0="taskset -c 0" PIN1="taskset -c 1" PINNED="taskset, cores 0 and 1"; fi

# the number on h2t bench's last line: "...: N img/s" or "...: N GFLOP/s"
num() { tail -n 1 | sed -n 's/.*: \([0-9.]*\) \(img\|GFLOP\)\/s$/\1/p'; }
fwd() { OMP_NUM_THREADS=$1 $3 "$H2T" bench --arch "$2" --batch "$4" --seconds "$SECS" --quiet 2>&1 | num; }
gem() { OMP_NUM_THREADS=$1 $2 "$H2T" bench --gemm --sizes "$GSIZE" --seconds "$SECS" --quiet 2>&1 | num; }
both() { # $1: fwd ARCH | gemm; the two pinned processes at once, their sum
    f0=$(mktemp) f1=$(mktemp)
    if [ "$1" = gemm ]; then gem 1 "$PIN0" >"$f0" & gem 1 "$PIN1" >"$f1"; wait
    else fwd 1 "$2" "$PIN0" "$HALF" >"$f0" & fwd 1 "$2" "$PIN1" "$HALF" >"$f1"; wait; fi
    awk -v a="$(cat "$f0")" -v b="$(cat "$f1")" 'BEGIN { if (a == "" || b == "") print ""; else printf "%.2f\n", a + b }'
    rm -f "$f0" "$f1"
}
best() { awk -v x="$1" -v y="$2" 'BEGIN { print (y == "" || x + 0 > y + 0) ? x : y }'; }
ratio() { awk -v x="$1" -v y="$2" 'BEGIN { if (y + 0 > 0) printf "%.2f", x / y; else print "-" }'; }

TABLE=$(mktemp) RLOG=$(mktemp)
trap 'rm -f "$TABLE" "$RLOG"' EXIT
echo "threads_vs_processes.sh: $ROUNDS round(s), $SECS s each, batch $BATCH (one: $HALF), GEMM $GSIZE^3, pinning: $PINNED; load $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo ?)" >&2
for what in resnet50 vit_b_16 gemm; do
    B1= B2= BP=
    for r in $(seq "$ROUNDS"); do
        if [ "$what" = gemm ]; then o=$(gem 1 "$PIN0"); t=$(gem 2 ""); p=$(both gemm)
        else o=$(fwd 1 "$what" "$PIN0" "$HALF"); t=$(fwd 2 "$what" "" "$BATCH"); p=$(both fwd "$what"); fi
        [ -n "$o" ] && [ -n "$t" ] && [ -n "$p" ] || die "$what: a run printed no number (run $H2T bench by hand to see why)"
        echo "$what round $r: one $o, threads $t, procs $p" | tee -a "$RLOG" >&2
        B1=$(best "$o" "$B1") B2=$(best "$t" "$B2") BP=$(best "$p" "$BP")
    done
    unit="img/s"; [ "$what" = gemm ] && unit="GFLOP/s" && what="GEMM $GSIZE^3"
    echo "| $what | $B1 | $B2 | $BP | $unit | $(ratio "$B2" "$B1") | $(ratio "$B2" "$BP") |" >>"$TABLE"
done

report() {
    echo "# One process's 2 threads against 2 processes of 1 thread"
    echo
    echo "bench/threads_vs_processes.sh --rounds $ROUNDS --seconds $SECS --batch $BATCH --gemm-size $GSIZE"
    echo "($(date -u +%Y-%m-%d), $(nproc 2>/dev/null || echo ?) cores, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1); best of the rounds;"
    echo "one: 1 thread alone, batch $HALF; threads: 2 threads, batch $BATCH; procs: two 1-thread processes at once, batch $HALF each, summed)"
    echo
    echo "| what | one | threads | procs | unit | threads / one | threads / procs |"
    echo "|---|---|---|---|---|---|---|"
    cat "$TABLE"
    echo
    echo "Every round (the spread is part of the result):"
    echo
    sed 's/^/    /' "$RLOG"
}
if [ -n "$OUT" ]; then
    report >"$OUT.tmp" && mv "$OUT.tmp" "$OUT" && cat "$OUT"
else
    report
fi

#!/usr/bin/env bash
# bench/compare.sh: forward throughput of h2t next to PyTorch and ONNX Runtime
# (CPU, fp32, same batch, same number of threads), measured in one run; writes
# a markdown table (the README's performance table comes from it).
#
# Usage: bench/compare.sh [--threads 2] [--batch 16] [--seconds 10] [--rounds 1]
#                         [--arch "resnet50 vit_b_16"] [--winograd 4] [--h2t ./h2t] [--out FILE]
#   (also from the environment: THREADS, BATCH, TIME_S, ROUNDS, ARCHS, WINOGRAD, H2T, OUT,
#    VENV = virtual environment with PyPI torch/torchvision/onnx/onnxruntime,
#    default /work/venv-bench)
#   e.g. bench/compare.sh --out bench/results/forward-2threads.md
#
# Contenders, each a fresh process per measurement, for each arch:
#   h2t          OMP_NUM_THREADS=T ./h2t bench --arch A --batch B --seconds S
#                (random weights made in C; every location computed)
#   h2t-winograd ResNet-50 only: the same with --winograd M (its 3x3 stride-1
#                convolutions by Winograd F(MxM, 3x3): not the default's bits,
#                docs/ALGORITHM.md §18); --winograd 0 leaves it out
#   torch-debian /usr/bin/python3 (Debian python3-torch 1.13 + OpenBLAS),
#                OPENBLAS_CORETYPE=SkylakeX on AVX-512 machines (Debian's
#                OpenBLAS picks a slow kernel otherwise)
#   torch-pypi   $VENV/bin/python (a current PyPI torch)
#   ort          ONNX Runtime from $VENV on the torchvision model exported with
#                torch.onnx.export (opset 17, static batch B, random weights);
#                intra_op_num_threads T, inter_op 1, sequential, all graph opts
# The PyTorch/ORT runs are bench/compare_torch.py: torchvision model, random
# weights, eval(), torch.inference_mode(), default (NCHW) memory format,
# torch.set_num_threads(T). Every process gets OMP_NUM_THREADS,
# MKL_NUM_THREADS and OPENBLAS_NUM_THREADS = T. Each measurement is: build
# the model, one warm-up batch, then timed batches until S seconds have passed
# (at least 2); img/s is the mean over the timed batches. With --rounds R the
# contenders run interleaved (h2t, torch-debian, torch-pypi, ort, h2t, ...)
# R times and the best round counts. A contender that is not installed is
# reported as "skipped: not installed".
#
# Then the limits the table is read against: the machine's fp32 multiply-add
# peak (bench/peak.c), h2t's GEMM and ONNX Runtime's MatMul on 1024^3 (the
# kernels under both forwards), and each model's flops per image; the table
# gives each contender's share of the peak.
#
# Time: about S + setup (2-15 s) per contender and round, plus the two ONNX
# exports (~20 s): with the defaults (2 threads, S = 10, 1 round) about
# 3-5 minutes on the 2-core development machine (ViT-B/16 runs ~4 img/s, so
# one batch of 16 takes ~4 s there and a measurement is warm-up + 3 batches).
# Run it on a quiet machine: it prints the load average before and after.
set -euo pipefail

THREADS=${THREADS:-2}
BATCH=${BATCH:-16}
TIME_S=${TIME_S:-10}
ROUNDS=${ROUNDS:-1}
ARCHS=${ARCHS:-"resnet50 vit_b_16"}
WINOGRAD=${WINOGRAD:-4}
H2T=${H2T:-./h2t}
OUT=${OUT:-}
VENV=${VENV:-/work/venv-bench}
SYS_PY=${SYS_PY:-/usr/bin/python3}

die() { echo "compare.sh: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
    case "$1" in
        --threads) THREADS=${2:?--threads needs a number}; shift 2 ;;
        --batch) BATCH=${2:?--batch needs a number}; shift 2 ;;
        --seconds) TIME_S=${2:?--seconds needs a number}; shift 2 ;;
        --rounds) ROUNDS=${2:?--rounds needs a number}; shift 2 ;;
        --arch) ARCHS=${2:?--arch needs a name}; shift 2 ;;
        --winograd) WINOGRAD=${2:?--winograd needs 0, 2 or 4}; shift 2 ;;
        --h2t) H2T=${2:?--h2t needs a path}; shift 2 ;;
        --out) OUT=${2:?--out needs a file}; shift 2 ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done
for v in THREADS BATCH ROUNDS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "--${v,,}: expected a positive integer, got '${!v}'"
done
[[ $TIME_S =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--seconds: expected a number, got '$TIME_S'"
for a in $ARCHS; do
    [[ $a == resnet50 || $a == vit_b_16 ]] || die "--arch: expected resnet50 and/or vit_b_16, got '$a'"
done
[[ $WINOGRAD =~ ^[024]$ ]] || die "--winograd: expected 0 (leave it out), 2 or 4, got '$WINOGRAD'"
[ -x "$H2T" ] || die "--h2t: '$H2T' is not an executable (run make)"
"$H2T" bench --help >/dev/null 2>&1 || die "--h2t: '$H2T' has no bench command (run make)"

HERE=$(cd "$(dirname "$0")" && pwd)
HELPER=$HERE/compare_torch.py
TMP=$(mktemp -d /tmp/h2t_compare.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS
if grep -q -m1 -w avx512f /proc/cpuinfo 2>/dev/null; then
    export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX}
fi

# ---- who is installed
VPY=$VENV/bin/python
has() { "$1" -c "import $2" >/dev/null 2>&1; }
CONTENDERS="h2t"
[ "$WINOGRAD" != 0 ] && CONTENDERS+=" h2t-winograd"
has "$SYS_PY" "torch, torchvision" && CONTENDERS+=" torch-debian"
has "$VPY" "torch, torchvision" && CONTENDERS+=" torch-pypi"
EXPORT_PY=""
if has "$VPY" "onnxruntime, numpy"; then
    if has "$VPY" "torch, torchvision, onnx"; then EXPORT_PY=$VPY
    elif has "$SYS_PY" "torch, torchvision"; then EXPORT_PY=$SYS_PY; fi
    [ -n "$EXPORT_PY" ] && CONTENDERS+=" ort"
fi

# ---- one measurement: prints "mean best cpu" (img/s, img/s, threads note), or "failed"
measure() {  # contender arch
    local c=$1 a=$2 log=$TMP/$1-$2.log out
    echo "compare.sh: $c $a ..." >&2
    case $c in
        h2t) out=$( { TIMEFORMAT='%U %S %R'; time "$H2T" bench --arch "$a" --batch "$BATCH" --seconds "$TIME_S" \
                      --quiet 2>"$log"; } 2>"$TMP/h2t.time") ;;
        h2t-winograd) out=$( { TIMEFORMAT='%U %S %R'; time "$H2T" bench --arch "$a" --batch "$BATCH" \
                               --seconds "$TIME_S" --winograd "$WINOGRAD" --quiet 2>"$log"; } 2>"$TMP/h2t.time") ;;
        torch-debian) out=$("$SYS_PY" "$HELPER" --engine torch --arch "$a" --batch "$BATCH" --threads "$THREADS" \
                            --seconds "$TIME_S" 2>"$log") ;;
        torch-pypi) out=$("$VPY" "$HELPER" --engine torch --arch "$a" --batch "$BATCH" --threads "$THREADS" \
                          --seconds "$TIME_S" 2>"$log") ;;
        ort) out=$("$VPY" "$HELPER" --engine ort --onnx "$TMP/$a.onnx" --arch "$a" --batch "$BATCH" \
                   --threads "$THREADS" --seconds "$TIME_S" 2>"$log") ;;
    esac || { echo "compare.sh: $c $a failed:" >&2; tail -5 "$log" >&2; echo failed; return; }
    printf '%s\n' "$out" >>"$TMP/runs.txt"
    local last mean best cpu
    last=$(printf '%s\n' "$out" | tail -n 1)
    cpu=$(printf '%s\n' "$out" | sed -n 's/.*: \([0-9.]*\) cores busy while timed$/\1/p' | tail -n 1)
    if [ -z "$cpu" ]; then  # h2t: its thread count, and CPU time / wall time of the whole process
        cpu=$(printf '%s\n' "$last" | sed -n 's/.*, \([0-9]*\) threads\{0,1\},.*/\1/p')
        cpu="${cpu:-?}_threads_$(awk '{ printf "%.2f", ($1 + $2) / $3 }' "$TMP/h2t.time" 2>/dev/null || echo '?')"
    fi
    mean=$(printf '%s\n' "$last" | sed -n 's/.*[ :]\([0-9.]*\) img\/s$/\1/p')
    best=$(printf '%s\n' "$last" | sed -n 's/.*best batch \([0-9.]*\) img\/s.*/\1/p')
    [ -n "$mean" ] || { echo "compare.sh: $c $a: no 'N img/s' on the last line: $last" >&2; echo failed; return; }
    echo "compare.sh:   $last" >&2
    echo "$mean ${best:--} ${cpu:--}"
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
T0=$(date +%s)
declare -A MEAN BEST CPU
for a in $ARCHS; do
    if [[ " $CONTENDERS " == *" ort "* ]]; then
        echo "compare.sh: exporting $a to ONNX with $EXPORT_PY ..." >&2
        if ! "$EXPORT_PY" "$HELPER" --export "$TMP/$a.onnx" --arch "$a" --batch "$BATCH" \
                >>"$TMP/export.log" 2>&1; then
            echo "compare.sh: ONNX export of $a failed:" >&2; tail -5 "$TMP/export.log" >&2
        fi
    fi
    for _ in $(seq "$ROUNDS"); do
        for c in $CONTENDERS; do
            [ "$c" = h2t-winograd ] && [ "$a" != resnet50 ] && continue
            if [ "$c" = ort ] && [ ! -f "$TMP/$a.onnx" ]; then res=failed; else res=$(measure "$c" "$a"); fi
            read -r m b u <<<"$res"
            # keep the best round (by mean img/s)
            if [ "$m" != failed ] && { [ -z "${MEAN[$c,$a]:-}" ] || [ "${MEAN[$c,$a]}" = failed ] ||
                    awk -v x="$m" -v y="${MEAN[$c,$a]}" 'BEGIN { exit !(x > y) }'; }; then
                MEAN[$c,$a]=$m BEST[$c,$a]=$b CPU[$c,$a]=$u
            elif [ -z "${MEAN[$c,$a]:-}" ]; then
                MEAN[$c,$a]=failed BEST[$c,$a]=- CPU[$c,$a]=-
            fi
        done
    done
done
# ---- the machine's limits: its multiply-add peak (bench/peak.c, built like
# h2t's fast build), a 1024^3 GEMM in h2t and in ONNX Runtime (best of the
# rounds), and each model's flops per image (bench/compare_torch.py --flops)
echo "compare.sh: limits (FMA peak, GEMM 1024, flops per image) ..." >&2
PEAK=failed GEMM_H2T=failed GEMM_ORT=-
pflags=()
grep -q -m1 -w avx512f /proc/cpuinfo 2>/dev/null && pflags=(-mprefer-vector-width=512)
if "${CC:-cc}" -std=c11 -D_POSIX_C_SOURCE=200809L -O3 -march=native -fno-math-errno -fopenmp "${pflags[@]}" \
        "$HERE/peak.c" -o "$TMP/peak" -lm >"$TMP/peak.log" 2>&1; then
    PEAK=$("$TMP/peak" | sed -n 's/^peak GFLOP\/s: \([0-9.]*\).*/\1/p')
fi
best_of() { awk -v x="$1" -v y="$2" 'BEGIN { if (y == "" || y == "-" || y == "failed" || x + 0 > y + 0) print x; else print y }'; }
for _ in $(seq "$ROUNDS"); do
    g=$("$H2T" bench --gemm --sizes 1024 --seconds 3 --quiet 2>&1 | sed -n 's/.* \([0-9.]*\) GFLOP\/s$/\1/p' | tail -n 1)
    [ -n "$g" ] && GEMM_H2T=$(best_of "$g" "$GEMM_H2T")
    if [[ " $CONTENDERS " == *" ort "* ]]; then
        g=$("$VPY" "$HELPER" --matmul 1024 --threads "$THREADS" --seconds 3 2>>"$TMP/matmul.log" |
            sed -n 's/^matmul 1024: \([0-9.]*\) GFLOP\/s$/\1/p')
        [ -n "$g" ] && GEMM_ORT=$(best_of "$g" "$GEMM_ORT")
    fi
done
declare -A FLOPS
FPY=""
has "$SYS_PY" "torch, torchvision" && FPY=$SYS_PY
[ -z "$FPY" ] && has "$VPY" "torch, torchvision" && FPY=$VPY
for a in $ARCHS; do
    FLOPS[$a]=-
    [ -n "$FPY" ] && FLOPS[$a]=$("$FPY" "$HELPER" --flops --arch "$a" 2>/dev/null | sed -n 's/^flops per image: //p')
    [ -n "${FLOPS[$a]}" ] || FLOPS[$a]=-
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
T1=$(date +%s)

# ---- the report
ver() { "$1" "$HELPER" --versions 2>/dev/null || echo "absent"; }
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
flags=$(make -s -n -B h2t 2>/dev/null | grep -m1 -- ' -c ' | sed 's/ -c .*//; s/  */ /g' || true)
blas=$(dpkg-query -W -f '${Package} ${Version}' libopenblas0-pthread 2>/dev/null || echo "OpenBLAS: unknown")
REPORT=$TMP/report.md
{
    echo "# Forward throughput: h2t, PyTorch, ONNX Runtime (batch $BATCH, $THREADS threads)"
    echo
    echo "Made by \`bench/compare.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') in $((T1 - T0)) s."
    echo
    echo "- machine: ${cpu:-unknown CPU}, $(nproc) cores available ($(nproc --all) online); threads $THREADS;"\
         "load average before $LOAD0, after $LOAD1"
    echo "- h2t: $("${CC:-cc}" --version | head -n 1); ${flags:-flags unknown}"
    echo "- torch-debian: $(ver "$SYS_PY"); $blas; OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
    echo "- venv ($VENV): $(ver "$VPY")"
    echo "- ONNX model exported with $( [ -n "$EXPORT_PY" ] && "$EXPORT_PY" -c 'import torch; print("torch", torch.__version__)' 2>/dev/null || echo "-"), opset 17, static batch $BATCH"
    echo "- each: a fresh process, warm-up batch, then batches of $BATCH random 224x224 fp32 images for >= $TIME_S s"\
         "(at least 2); img/s = mean over them; best of $ROUNDS interleaved round(s);"\
         "OMP/MKL/OPENBLAS_NUM_THREADS=$THREADS; CPU use = process CPU time / wall time while timed"\
         "(PyTorch, ORT; ORT's spinning threads count as busy; for h2t the whole process, set-up included)"
    echo "- limits: multiply-add peak (bench/peak.c, $THREADS threads) $PEAK GFLOP/s;"\
         "GEMM 1024x1024x1024 (best of $ROUNDS round(s)): h2t $GEMM_H2T GFLOP/s, ONNX Runtime MatMul $GEMM_ORT GFLOP/s"
    for a in $ARCHS; do
        echo "- $a: ${FLOPS[$a]} flops per image (bench/compare_torch.py --flops: 2 per multiply-add)"
    done
    echo "- % of peak: img/s x flops per image / the multiply-add peak (for h2t-winograd: the convolution's"\
         "flops, not the fewer it does)"
    [ "$WINOGRAD" != 0 ] && echo "- h2t-winograd: h2t bench --winograd $WINOGRAD, ResNet-50's 3x3 stride-1 convolutions"\
         "by Winograd F(${WINOGRAD}x$WINOGRAD, 3x3): an option, off by default, not the default's bits"\
         "(docs/ALGORITHM.md §18, bench/winograd_error.sh)"
    echo
    echo "| arch | contender | img/s | best batch img/s | h2t / contender | h2t-winograd / contender | % of peak | CPU use |"
    echo "|---|---|---:|---:|---:|---:|---:|---|"
    for a in $ARCHS; do
        h=${MEAN[h2t,$a]:-failed} hw=${MEAN[h2t-winograd,$a]:-failed}
        for c in h2t h2t-winograd torch-debian torch-pypi ort; do
            [ "$c" = h2t-winograd ] && { [ "$WINOGRAD" = 0 ] || [ "$a" != resnet50 ]; } && continue
            m=${MEAN[$c,$a]:-}
            if [ -z "$m" ]; then
                echo "| $a | $c | skipped: not installed | | | | | |"
            elif [ "$m" = failed ]; then
                echo "| $a | $c | failed | | | | | |"
            else
                pct=$(awk -v m="$m" -v f="${FLOPS[$a]}" -v p="$PEAK" \
                      'BEGIN { if (f + 0 > 0 && p + 0 > 0) printf "%.0f%%", 100 * m * f / 1e9 / p; else print "-" }')
                ratio=- wratio=-
                [ "$h" != failed ] && ratio=$(awk -v x="$h" -v y="$m" 'BEGIN { printf "%.2f", x / y }')
                [ "$hw" != failed ] && wratio=$(awk -v x="$hw" -v y="$m" 'BEGIN { printf "%.2f", x / y }')
                u=${CPU[$c,$a]}
                case $u in
                    *_threads_*) u="${u%%_*} OpenMP threads, ${u##*_} cores busy (whole process)" ;;
                    -) ;;
                    *) u="$u cores busy" ;;
                esac
                echo "| $a | $c | $m | ${BEST[$c,$a]} | $ratio | $wratio | $pct | $u |"
            fi
        done
    done
    if [ -s "$TMP/export.log" ] && grep -qi 'warn' "$TMP/export.log"; then
        echo
        echo "ONNX export warnings: $(grep -ci 'warn' "$TMP/export.log") lines (first: $(grep -i -m1 'warn' "$TMP/export.log" | cut -c1-160))"
    fi
} >"$REPORT"
cat "$REPORT"
if [ -n "$OUT" ]; then
    mkdir -p "$(dirname "$OUT")"
    cp "$REPORT" "$OUT.tmp" && mv "$OUT.tmp" "$OUT"
    echo "compare.sh: wrote $OUT" >&2
fi

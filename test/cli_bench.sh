#!/bin/sh
# test/cli_bench.sh: `h2t bench` runs both torchvision architectures with
# random weights made in C (no files; at 64 px to keep the suite fast under
# the sanitizers) and the GEMM benchmark, and prints
# what the comparison scripts (bench/compare.sh) parse: a last line ending
# in "N img/s", one "GFLOP/s" line per size. Timings are not checked (the
# machine is shared); that the networks are torchvision's is checked by
# test/test_random.c, and refusals by test/cli_refusals.sh.
H2T=${H2T_BIN:-./h2t}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

ok() { echo "PASS cli_bench: $1"; }
bad() { echo "FAIL cli_bench: $1"; }

# h2t ARGS: the command with its output in $T/out and $T/err, line ends
# made '\n' (Windows writes text as "\r\n"); sets rc
h2t() {
    "$H2T" "$@" >"$T/out.raw" 2>"$T/err.raw"
    rc=$?
    tr -d '\r' <"$T/out.raw" >"$T/out"
    tr -d '\r' <"$T/err.raw" >"$T/err"
}

# positive NUMBER: a number > 0
positive() { awk -v x="$1" 'BEGIN { exit !(x + 0 > 0) }'; }

# OMP_NUM_THREADS=2 gives 2 threads, or 1 in a build without OpenMP
threads="2 threads"
[ "${H2T_OPENMP:-1}" = 0 ] && threads="1 thread"
for arch in resnet50 vit_b_16; do
    OMP_NUM_THREADS=2 h2t bench --arch $arch --input-size 64 --batch 1 --seconds 0
    last=$(tail -n 1 "$T/out")
    rate=$(echo "$last" | sed -n 's/.* \([0-9.][0-9.]*\) img\/s$/\1/p')
    if [ $rc = 0 ] && [ "$(wc -l <"$T/out")" = 1 ] && positive "$rate" &&
        echo "$last" | grep -q "^bench: $arch, batch 1, $threads, 2 batches" && grep -q "random weights" "$T/err"; then
        ok "$arch: random weights, last line '$last'"
    else
        bad "$arch: rc $rc, stdout '$(head -c 300 "$T/out")', stderr '$(head -c 300 "$T/err")'"
    fi
done

OMP_NUM_THREADS=2 h2t bench --arch resnet50 --input-size 64 --batch 2 --seconds 0 --quiet --winograd 4
if [ $rc = 0 ] && grep -q "^bench: resnet50, Winograd F(4x4, 3x3)\( ignored (reference build)\)\{0,1\}, batch 2, .* img/s$" "$T/out"; then
    ok "--winograd 4: '$(cat "$T/out")'"
else
    bad "--winograd 4: rc $rc, stdout '$(head -c 300 "$T/out")', stderr '$(head -c 300 "$T/err")'"
fi
h2t bench --arch vit_b_16 --input-size 32 --batch 1 --seconds 0 --quiet --winograd 4
if [ $rc = 1 ] && [ ! -s "$T/out" ] && [ "$(wc -l <"$T/err")" = 1 ] && grep -q "only a ResNet" "$T/err"; then
    ok "--winograd on a ViT refused: $(cat "$T/err")"
else
    bad "--winograd on a ViT: rc $rc, stdout '$(head -c 300 "$T/out")', stderr '$(head -c 300 "$T/err")'"
fi

h2t bench --model test/fixtures/resnet_v15/model --batch 2 --seconds 0 --quiet
if [ $rc = 0 ] && [ ! -s "$T/err" ] && grep -q "^bench: test/fixtures/resnet_v15/model, batch 2, .* img/s$" "$T/out"; then
    ok "--model DIR times a model directory, --quiet prints nothing on stderr"
else
    bad "--model: rc $rc, stdout '$(head -c 300 "$T/out")', stderr '$(head -c 300 "$T/err")'"
fi

h2t bench --gemm --sizes 64,100 --seconds 0
n=$(grep -c "^bench: gemm [0-9]*x[0-9]*x[0-9]*, .*: [0-9.]* GFLOP/s$" "$T/out")
if [ $rc = 0 ] && [ "$n" = 2 ] && grep -q "gemm 100x100x100" "$T/out"; then
    ok "--gemm: one GFLOP/s line per size"
else
    bad "--gemm: rc $rc, $n GFLOP/s lines (want 2): $(head -c 300 "$T/out")"
fi
exit 0

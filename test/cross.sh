#!/bin/sh
# test/cross.sh [TARGET...]: the portable build (PORTABLE=1) on other
# architectures, word sizes, float units and compilers, each running the
# suite (test/run.sh), then the byte identity of what they write.
#
# Targets (default: all; `make cross CROSS_TARGETS="s390x i686"` for some):
#   x86_64    gcc, this machine: the reference for the byte comparison
#   s390x     big-endian, 64-bit      qemu-s390x    (s390x-linux-gnu-gcc)
#   ppc64     big-endian, 64-bit      qemu-ppc64    (powerpc64-linux-gnu-gcc)
#   aarch64   64-bit                  qemu-aarch64  (aarch64-linux-gnu-gcc)
#   armhf     32-bit                  qemu-arm      (arm-linux-gnueabihf-gcc)
#   riscv64   64-bit                  qemu-riscv64  (riscv64-linux-gnu-gcc)
#   i686      32-bit x86, SSE2 float (-msse2 -mfpmath=sse), run directly
#   i686-x87  32-bit x86, x87 float (FLT_EVAL_METHOD 2), run directly
#   tcc       tcc on this machine (no OpenMP)
#   clang     clang on this machine
#   mingw     Windows x86-64 (x86_64-w64-mingw32-gcc, static), under wine;
#             its bytes are compared but not required to match (Windows'
#             C library has its own tanhf, exp and pow)
# i686 binaries run on the x86-64 kernel with Debian's i386 cross libraries
# (libc6-dev-i386-cross), linked to find them; qemu-i386 7.2 hangs on
# OpenMP threads. Debian's gcc-multilib conflicts with its cross compilers,
# hence i686-linux-gnu-gcc rather than gcc -m32.
#
# Under qemu (50-150x slower for this float-heavy code) the suite leaves
# out, to stay within CI's time: cli_demo (h2t demo + run end to end, 4-8
# min per target), test_random (torchvision's full ResNet-50 and ViT-B/16
# with random weights, 2 min per target; architecture, not arithmetic: the
# byte comparison below runs both backbones' kernels on every target) and
# cli_bench (timings mean nothing there). Every other C unit test and
# cli_*.sh script runs. Natively run targets (x86_64, i686, i686-x87, tcc,
# clang, mingw) run the whole suite. CROSS_FULL=1 runs everything
# everywhere.
#
# CROSS_DEADLINE=EPOCH_SECONDS (CI): a target that would start after it is
# reported "not run (time budget)" and does not fail the run; .ci/run
# gives one to the legs the issue calls optional (armhf, ppc64, riscv64).
#
# Byte identity: every target runs the same h2t commands (the demo
# ResNet-50 on the first 50 clevr_count training images at T 256; the
# fixture ViT with the erf and tanh GELU on the same images; a head2toe
# head fitted on those features) and the SHA-256 of each output must equal
# the x86_64 build's. i686-x87 is checked for correctness (its suite) but
# not for identity: x87 arithmetic rounds differently (docs/PORTING.md).
#
# Output: per target "TARGET: N passed, M failed (SECONDS s)", then
# "bytes TARGET: identical" or what differs; exit status 0 iff every
# target ran, passed and (where required) matched. Logs: build/cross/.
cd "$(dirname "$0")/.." || exit 2
. test/npy.sh
ALL="x86_64 s390x ppc64 aarch64 armhf riscv64 i686 i686-x87 tcc clang mingw"
TARGETS=${*:-$ALL}
OUT=build/cross
mkdir -p "$OUT"
JOBS=${JOBS:-2}
t_start=$(date +%s)
export WINEDEBUG=${WINEDEBUG:--all} WINEPREFIX=${WINEPREFIX:-$(pwd)/$OUT/wine} # a prefix of our own
status=0

# conf TARGET: sets cc, exec (emulator command), cflags, ldflags, emulated
conf() {
    cc= exec= cflags= ldflags= emulated=0 exe= tool=
    case $1 in
    x86_64) cc=gcc ;;
    s390x) cc=s390x-linux-gnu-gcc exec="qemu-s390x -L /usr/s390x-linux-gnu" emulated=1 ;;
    ppc64) cc=powerpc64-linux-gnu-gcc exec="qemu-ppc64 -L /usr/powerpc64-linux-gnu" emulated=1 ;;
    aarch64) cc=aarch64-linux-gnu-gcc exec="qemu-aarch64 -L /usr/aarch64-linux-gnu" emulated=1 ;;
    armhf) cc=arm-linux-gnueabihf-gcc exec="qemu-arm -L /usr/arm-linux-gnueabihf" emulated=1 ;;
    riscv64) cc=riscv64-linux-gnu-gcc exec="qemu-riscv64 -L /usr/riscv64-linux-gnu" emulated=1 ;;
    i686 | i686-x87)
        cc=i686-linux-gnu-gcc
        ldflags="-Wl,--dynamic-linker=/usr/i686-linux-gnu/lib/ld-linux.so.2 -Wl,-rpath,/usr/i686-linux-gnu/lib"
        if [ "$1" = i686 ]; then cflags="-msse2 -mfpmath=sse"; fi ;;
    tcc) cc=tcc ;;
    clang) cc=clang ;;
    mingw) # wine through test/wine_retry.sh: a start that wine itself fails is retried (and counted)
        cc=x86_64-w64-mingw32-gcc exec="sh $(pwd)/test/wine_retry.sh" tool=wine ldflags=-static exe=.exe ;;
    *) return 1 ;;
    esac
}

# build TARGET: the OpenMP and the no-OpenMP flavour in build/cross/TARGET{,-noomp}
build() {
    for omp in 0 1; do
        d=$OUT/$1; [ $omp = 1 ] || d=$OUT/$1-noomp
        noomp=; [ $omp = 1 ] || noomp=NO_OMP=1
        make --no-print-directory -j"$JOBS" PORTABLE=1 $noomp CC="$cc" B="$d" EXTRA_CFLAGS="$cflags" \
            EXTRA_LDFLAGS="$ldflags" test-bins || return 1
    done
}

# identity TARGET: the outputs compared across targets, their SHA-256 in build/cross/TARGET.sha256
identity() {
    d=$OUT/$1.bytes
    rm -rf "$d" && mkdir -p "$d" || return 1
    t=$1
    run() { $exec "$OUT/$t/h2t$exe" "$@" --quiet; }
    C=demo/tasks/clevr_count
    npy_rows "$C/train_images.npy" "$d/x50.npy" 50 "|u1" "50, 28, 28" 784 &&
    npy_rows "$C/train_labels.npy" "$d/y50.npy" 50 "<i8" "50," 8 || return 1
    # the tanh GELU: the fixture ViT with gelu = tanh (same weights)
    mkdir -p "$d/vit_tanh"
    cp test/fixtures/vit/model/*.npy "$d/vit_tanh/"
    sed 's/^gelu = .*/gelu = tanh/' test/fixtures/vit/model/config.txt >"$d/vit_tanh/config.txt"
    run features --model demo/backbone --images "$d/x50.npy" --target-size 256 --out "$d/resnet.npy" &&
    run features --model test/fixtures/vit/model --images "$d/x50.npy" --target-size 64,256 --out "$d/vit_erf.npy" &&
    run features --model "$d/vit_tanh" --images "$d/x50.npy" --target-size 256 --out "$d/vit_tanh.npy" &&
    run taps --model demo/backbone --images "$d/x50.npy" --taps all --out "$d/taps_resnet" &&
    run taps --model "$d/vit_tanh" --images "$d/x50.npy" --taps all --out "$d/taps_vit_tanh" &&
    run fit --features "$d/resnet.npy" --labels "$d/y50.npy" --layout "$d/resnet.layout.tsv" --lr 0.1 \
        --steps 30 --coef 1e-3 --fraction 0.05,0.2 --out "$d/head" || return 1
    rm -rf "$d/vit_tanh" "$d/x50.npy" "$d/y50.npy"
    # the bytes of every .npy written (report.json holds timings; cv.tsv and layouts are text from these)
    (cd "$d" && find . -name '*.npy' | LC_ALL=C sort | xargs sha256sum) >"$OUT/$t.sha256"
}

for t in $TARGETS; do
    rm -f "$OUT/$t.sha256" # compare only what this run wrote
    if [ -n "${CROSS_DEADLINE:-}" ] && [ "$(date +%s)" -ge "$CROSS_DEADLINE" ]; then
        echo "$t: not run (time budget: CROSS_DEADLINE passed)"
        continue
    fi
    if ! conf "$t"; then
        echo "$t: unknown target (known: $ALL)"
        status=1
        continue
    fi
    [ -n "$tool" ] || tool=${exec%% *}
    if ! command -v "$cc" >/dev/null 2>&1 || { [ -n "$tool" ] && ! command -v "$tool" >/dev/null 2>&1; }; then
        echo "$t: NOT RUN: $cc${tool:+ or $tool} is not installed (.ci/run lists the Debian packages)"
        status=1
        continue
    fi
    start=$(date +%s)
    if ! build "$t" >"$OUT/$t.build.log" 2>&1; then
        echo "$t: build FAILED ($(grep -m1 -i 'error' "$OUT/$t.build.log"); log: $OUT/$t.build.log)"
        status=1
        continue
    fi
    omp=$(make --no-print-directory -s PORTABLE=1 CC="$cc" B="$OUT/$t" EXTRA_CFLAGS="$cflags" show-config |
        sed -n 's/.*HAVE_OMP=//p')
    skip=
    if [ "${CROSS_FULL:-0}" != 1 ]; then
        [ "$emulated" = 1 ] && skip="cli_demo cli_bench test_random"
    fi
    # one wineserver for the whole leg: one that exits between two of the
    # hundreds of h2t starts can reset the next client's connection. It
    # needs the prefix's directory: on a fresh one (CI) `wineserver -p`
    # fails, and each wine start then brings its own short-lived server
    # (the likely way CI's mingw leg lost a check on 2026-12-01)
    if [ "$t" = mingw ]; then
        mkdir -p "$WINEPREFIX" && wineserver -p ||
            echo "$t: note: no persistent wineserver (wineserver -p failed); starts may be retried"
    fi
    export WINE_RETRY_LOG="$OUT/$t.retries"; rm -f "$WINE_RETRY_LOG"
    H2T_EXEC="$exec" H2T_OPENMP=$omp H2T_SKIP="$skip" OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} \
        sh test/run.sh "$OUT/$t" "$OUT/$t-noomp" >"$OUT/$t.log" 2>&1
    rc=$?
    identity "$t" >"$OUT/$t.bytes.log" 2>&1 || { echo "$t: byte-identity commands FAILED: $(tail -n 1 "$OUT/$t.bytes.log")"; rc=1; }
    [ "$t" = mingw ] && wineserver -k 2>/dev/null
    end=$(date +%s)
    fails=$(grep '^FAIL' "$OUT/$t.log" | head -n 5 | cut -c1-200)
    retries=$(grep -c . "$WINE_RETRY_LOG" 2>/dev/null)
    echo "$t: $(tail -n 1 "$OUT/$t.log") ($((end - start)) s${skip:+; left out: $skip}${retries:+; wine failed to run a program $retries times, retried: $WINE_RETRY_LOG})"
    [ -n "$fails" ] && echo "$fails" | sed 's/^/    /'
    [ $rc = 0 ] || status=1
done

# ---- byte identity against x86_64
ref=$OUT/x86_64.sha256
if [ ! -s "$ref" ]; then
    echo "bytes: no x86_64 reference (run the x86_64 target too)"
    status=1
else
    for t in $TARGETS; do
        [ "$t" = x86_64 ] && continue
        f=$OUT/$t.sha256
        [ -s "$f" ] || continue
        if [ "$t" = i686-x87 ] || [ "$t" = mingw ]; then
            echo "bytes $t: $(grep -cFxf "$ref" "$f") of $(grep -c . "$f") files identical to x86_64" \
                "(not required: $([ "$t" = mingw ] && echo "another C library's libm" || echo "x87 arithmetic"))"
            continue
        fi
        if cmp -s "$ref" "$f"; then
            echo "bytes $t: identical ($(grep -c . "$f") files)"
        else
            echo "bytes $t: DIFFERENT: $(diff "$ref" "$f" | sed -n 's/^> [0-9a-f]*  //p' | tr '\n' ' ')"
            status=1
        fi
    done
fi
echo "cross: $(($(date +%s) - t_start)) s in all"
exit $status

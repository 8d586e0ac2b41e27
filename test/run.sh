#!/bin/sh
# test/run.sh BUILD_DIR [NOOMP_BUILD_DIR [MORE_TEST_DIR...]]: runs every
# test binary in BUILD_DIR, then those in each MORE_TEST_DIR (e.g. the
# kernel tests built with x87 float evaluation; a missing one is skipped),
# and every test/cli_*.sh, counts PASS/FAIL lines, and ends with
# "N passed, M failed". A binary or script that exits non-zero without a
# FAIL line (a crash) counts as one failure. Exit status: 0 iff M == 0.
# Environment:
#   H2T_EXEC   a command that runs a binary of another architecture, e.g.
#              "qemu-s390x" (test/cross.sh); every test binary and h2t run
#              through it
#   H2T_OPENMP 0 when the binaries were built without OpenMP (default 1)
#   H2T_SKIP   names of tests to leave out (test_random cli_demo ...): each
#              is reported as "SKIP name" and counted in neither total
#   H2T_BIN_FAST, H2T_BIN_REF  the fast and reference builds' h2t (set by
#              make test), for test/cli_reference.sh
#   H2T_NPYCMP test/npycmp for the shell tests (default BUILD_DIR/npycmp)
B=${1:?usage: test/run.sh BUILD_DIR [NOOMP_BUILD_DIR [MORE_TEST_DIR...]]}
NB=${2:-$B}
shift; [ $# -gt 0 ] && shift
EXE=
[ -f "$B/h2t.exe" ] && EXE=.exe
export H2T_BIN="$B/h2t$EXE" H2T_BIN_NOOMP="$NB/h2t$EXE" H2T_OPENMP=${H2T_OPENMP:-1}
# test/npycmp (shell tests compare .npy files with it), run through H2T_EXEC like the binaries
export H2T_NPYCMP=${H2T_NPYCMP:-$B/npycmp$EXE}
wrap=
if [ -n "${H2T_EXEC:-}" ]; then
    # the scripts call "$H2T_BIN ARGS": give them one-line wrappers
    wrap=$(mktemp -d)
    printf '#!/bin/sh\nexec %s "%s" "$@"\n' "$H2T_EXEC" "$(cd "$B" && pwd)/h2t$EXE" >"$wrap/h2t"
    printf '#!/bin/sh\nexec %s "%s" "$@"\n' "$H2T_EXEC" "$(cd "$NB" && pwd)/h2t$EXE" >"$wrap/h2t-noomp"
    chmod +x "$wrap/h2t" "$wrap/h2t-noomp"
    H2T_BIN="$wrap/h2t" H2T_BIN_NOOMP="$wrap/h2t-noomp"
fi
skipped() { case " ${H2T_SKIP:-} " in *" $1 "*) echo "SKIP $1"; return 0 ;; esac; return 1; }
# libgomp's threads spin while they wait; on a busy machine (a shared CI
# runner) that turns into 10-20x slowdowns. Results do not depend on it.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
log=$(mktemp); pass=0; fail=0
run_one() {
    name=$1; shift
    out=$(mktemp)
    t0=$(date +%s)
    "$@" >"$out" 2>&1; rc=$?
    cat "$out"
    echo "-- $name: $(($(date +%s) - t0)) s"
    p=$(grep -c '^PASS ' "$out"); f=$(grep -c '^FAIL ' "$out")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL $name exited with status $rc"; f=1
    fi
    pass=$((pass + p)); fail=$((fail + f))
    rm -f "$out"
}
for t in "$B"/test_*; do
    [ -x "$t" ] || continue
    skipped "$(basename "$t" $EXE)" && continue
    echo "== $t"
    run_one "$t" ${H2T_EXEC:-} "$t"
done
for d in "$@"; do
    for t in "$d"/test_*; do
        [ -x "$t" ] || continue
        echo "== $t"
        run_one "$t" "$t"
    done
done
for s in test/cli_*.sh; do
    [ -f "$s" ] || continue
    skipped "$(basename "$s" .sh)" && continue
    echo "== $s"
    run_one "$s" sh "$s"
done
rm -f "$log"
[ -n "$wrap" ] && rm -rf "$wrap"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

#!/bin/sh
# test/run.sh BUILD_DIR [NOOMP_BUILD_DIR [MORE_TEST_DIR...]]: runs every
# test binary in BUILD_DIR, then those in each MORE_TEST_DIR (e.g. the
# kernel tests built with x87 float evaluation; a missing one is skipped),
# and every test/cli_*.sh, counts PASS/FAIL lines, and ends with
# "N passed, M failed". A binary or script that exits non-zero without a
# FAIL line (a crash) counts as one failure. Exit status: 0 iff M == 0.
# H2T_BIN_FAST and H2T_BIN_REF (fast and reference builds' h2t, set by make
# test) reach test/cli_reference.sh through the environment.
B=${1:?usage: test/run.sh BUILD_DIR [NOOMP_BUILD_DIR [MORE_TEST_DIR...]]}
NB=${2:-$B}
shift; [ $# -gt 0 ] && shift
export H2T_BIN="$B/h2t" H2T_BIN_NOOMP="$NB/h2t"
# libgomp's threads spin while they wait; on a busy machine (a shared CI
# runner) that turns into 10-20x slowdowns. Results do not depend on it.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
log=$(mktemp); pass=0; fail=0
run_one() {
    name=$1; shift
    out=$(mktemp)
    "$@" >"$out" 2>&1; rc=$?
    cat "$out"
    p=$(grep -c '^PASS ' "$out"); f=$(grep -c '^FAIL ' "$out")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL $name exited with status $rc"; f=1
    fi
    pass=$((pass + p)); fail=$((fail + f))
    rm -f "$out"
}
for t in "$B"/test_*; do
    [ -x "$t" ] || continue
    echo "== $t"
    run_one "$t" "$t"
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
    echo "== $s"
    run_one "$s" sh "$s"
done
rm -f "$log"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

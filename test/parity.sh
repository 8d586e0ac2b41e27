#!/bin/sh
# test/parity.sh H2T PYTHON: runs every test/parity_*.py (PyTorch references)
# with PYTHON, passing the h2t binary; counts PASS/FAIL lines like run.sh.
H2T=${1:-./h2t}
PY=${2:-/usr/bin/python3}
if ! "$PY" -c 'import torch, torchvision, numpy' 2>/dev/null; then
    echo "parity: $PY cannot import torch, torchvision and numpy" >&2
    echo "        (apt-get install -y python3-numpy python3-torch python3-torchvision)" >&2
    exit 1
fi
pass=0; fail=0
for s in test/parity_*.py; do
    [ -f "$s" ] || continue
    echo "== $s"
    out=$(mktemp)
    "$PY" "$s" --h2t "$H2T" >"$out" 2>&1; rc=$?
    cat "$out"
    p=$(grep -c '^PASS ' "$out"); f=$(grep -c '^FAIL ' "$out")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then echo "FAIL $s exited with status $rc"; f=1; fi
    pass=$((pass + p)); fail=$((fail + f))
    rm -f "$out"
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

#!/bin/sh
# test/cli_demo.sh: `h2t demo` and `h2t run` end to end on the bundled
# backbone and two bundled tasks with a tiny grid (a few seconds; the real
# demo takes minutes): the table, the JSON report's schema, the figures,
# `h2t run` reproducing the demo's Head2Toe number, the same numbers from
# the build without OpenMP, and refusals of bad input (exit status 1, one
# line on stderr).
H2T=${H2T_BIN:-./h2t}
H2T_NOOMP=${H2T_BIN_NOOMP:-$H2T}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
ROOT=$(pwd)

ok() { echo "PASS cli_demo: $1"; }
bad() { echo "FAIL cli_demo: $1"; }
check() { if [ "$1" = 0 ]; then ok "$2"; else bad "$2"; fi; }
# one line on stderr, exit status 1
refused() { [ "$1" = 1 ] && [ "$(wc -l <"$2")" = 1 ]; }
svg_ok() { head -c 200 "$1" | grep -q '^<?xml' && tail -n 1 "$1" | grep -q '^</svg>$'; }

mkdir -p "$T/mini"
cat >"$T/mini/demo.cfg" <<EOF
model = $ROOT/demo/backbone
tasks = $ROOT/demo/tasks/tasks.tsv
target_size = 64
lr = 0.1
steps = 30
coef = 1e-3
fraction = 0.05,0.2
linear_lr = 0.1
linear_steps = 30
EOF

# ---- the demo on two tasks
"$H2T" demo --dir "$T/mini" --out "$T/out" --report "$T/r.json" --tasks fashion,clevr_count --quiet \
    >"$T/table" 2>"$T/err"
rc=$?
check $rc "demo runs (rc $rc: $(head -c 300 "$T/err"))"
grep -q '^task .*Linear .*Head2Toe .*gain' "$T/table" && grep -q '^fashion  *in ' "$T/table" &&
    grep -q '^clevr_count  *out ' "$T/table" && ! grep -q '^dsprites' "$T/table"
check $? "demo prints the table: header, fashion (in), clevr_count (out), only the tasks asked for"
tr -d ' \n' <"$T/r.json" >"$T/r.flat"
grep -q '^{"backbone":.*"tasks":\[{"name":"fashion","ood":false,' "$T/r.flat" &&
    grep -q '{"name":"clevr_count","ood":true,' "$T/r.flat" &&
    [ "$(grep -o '"linear":0\.[0-9]*' "$T/r.flat" | wc -l)" = 2 ] &&
    [ "$(grep -o '"head2toe":[01]\.*[0-9]*' "$T/r.flat" | wc -l)" = 2 ] &&
    grep -q '"top_locations":\["' "$T/r.flat" && tail -c 4 "$T/r.flat" | grep -q ']}$'
check $? "demo --report: tasks with name, ood, linear, head2toe (fractions), top locations"
n=0
for f in accuracy.svg locations.svg clevr_count/head2toe/locations.svg clevr_count/head2toe/validation.svg \
    fashion/report.json fashion/head2toe/selected.npy fashion/linear/test.json; do
    [ -s "$T/out/$f" ] || { echo "missing $f"; n=1; }
done
for f in "$T"/out/*.svg "$T"/out/*/head2toe/*.svg; do svg_ok "$f" || { echo "bad svg $f"; n=1; }; done
check $n "demo writes the summary figures, per-task runs and figures (complete SVG files)"
[ -d "$T/out/fashion" ] && ! ls "$T"/out/fashion/train_features* >/dev/null 2>&1
check $? "demo removes the training feature files"

# ---- h2t run reproduces the demo's Head2Toe number for clevr_count
C=demo/tasks/clevr_count
"$H2T" run --model demo/backbone --train-images $C/train_images.npy --train-labels $C/train_labels.npy \
    --test-images $C/test_images.npy --test-labels $C/test_labels.npy --target-size 64 --lr 0.1 --steps 30 \
    --coef 1e-3 --fraction 0.05,0.2 --out "$T/run" --quiet >"$T/run.out" 2>"$T/run.err"
rc=$?
want=$(sed -n 's/.*"name":"clevr_count".*"head2toe":\([0-9.]*\),.*/\1/p' "$T/r.flat")
got=$(tr -d ' \n' <"$T/run/report.json" | sed -n 's/.*"method":"head2toe".*"test_accuracy":\([0-9.]*\),.*/\1/p')
[ $rc = 0 ] && [ -n "$want" ] && [ "$want" = "$got" ]
check $? "run reproduces the demo's head2toe accuracy on clevr_count ($got vs $want)"
grep -q '"task": "' "$T/run/report.json" && grep -q '"validation_curves"' "$T/run/report.json" &&
    grep -q '"seconds": {"train_features"' "$T/run/report.json" && svg_ok "$T/run/head2toe/locations.svg" &&
    svg_ok "$T/run/head2toe/validation.svg" && [ -s "$T/run/head2toe/test.json" ]
check $? "run writes report.json (task, curves, timings), test.json and both figures"
# --winograd 4 (docs/ALGORITHM.md §18): the run completes and its report records the option (0 in the
# reference build, which ignores it); the default run records 0
"$H2T" run --model demo/backbone --train-images $C/train_images.npy --train-labels $C/train_labels.npy \
    --test-images $C/test_images.npy --test-labels $C/test_labels.npy --target-size 64 --lr 0.1 --steps 30 \
    --coef 1e-3 --fraction 0.05,0.2 --winograd 4 --out "$T/runw" --quiet >/dev/null 2>"$T/runw.err"
rc=$?
want_w=4
[ -n "${H2T_BIN_REF:-}" ] && [ "$H2T_BIN_REF" = "$H2T" ] && want_w=0
[ $rc = 0 ] && grep -q "\"winograd\": $want_w" "$T/runw/report.json" && grep -q '"winograd": 0' "$T/run/report.json" &&
    [ -s "$T/runw/head2toe/test.json" ]
check $? "run --winograd 4: completes, report.json records \"winograd\": $want_w (the default run 0) $(head -c 200 "$T/runw.err")"
# two backbone passes: the training one to the deepest default location, the
# test one stopped after the deepest location holding a selected feature
deepest=$(awk '/"name": / && /"kept": [1-9]/ { sub(/.*"name": "/, ""); sub(/".*/, ""); d = $0 } END { print d }' "$T/run/report.json")
tr -d ' \n' <"$T/run/report.json" >"$T/run.flat"
grep -q '"backbone_passes":\[{"for":"trainingfeatures","images":1000,"locations_computed":52,"of":52,"stopped_after":"logits"' "$T/run.flat" &&
    grep -q "{\"for\":\"testfeaturesoftheselectedfeatures\",\"images\":1000,\"locations_computed\":[0-9]*,\"of\":52,\"stopped_after\":\"$deepest\"" "$T/run.flat" &&
    [ -n "$deepest" ]
check $? "run: report.json records 2 backbone passes of 1000 images, the test pass stopped after $deepest (the deepest selected location)"
# locations of blocks 1 and 2 only: both passes stop early, after block2's last location
taps=after_root
for u in 1_unit1 1_unit2 1_unit3 2_unit1 2_unit2 2_unit3 2_unit4; do
    for l in 0 1 2; do taps="$taps,block${u}_layer$l"; done
done
"$H2T" run --model demo/backbone --train-images $C/train_images.npy --train-labels $C/train_labels.npy \
    --test-images $C/test_images.npy --test-labels $C/test_labels.npy --target-size 64 --lr 0.1 --steps 30 \
    --coef 1e-3 --fraction 0.05 --taps "$taps" --out "$T/early" --quiet >/dev/null 2>"$T/early.err"
rc=$?
deepest=$(awk '/"name": / && /"kept": [1-9]/ { sub(/.*"name": "/, ""); sub(/".*/, ""); d = $0 } END { print d }' "$T/early/report.json")
tr -d ' \n' <"$T/early/report.json" >"$T/early.flat"
[ $rc = 0 ] && grep -q '"for":"trainingfeatures","images":1000,"locations_computed":22,"of":52,"stopped_after":"block2_unit4_layer2"' "$T/early.flat" &&
    n=$(sed -n "s/.*\"for\":\"testfeaturesoftheselectedfeatures\",\"images\":1000,\"locations_computed\":\([0-9]*\),\"of\":52,\"stopped_after\":\"$deepest\".*/\1/p" "$T/early.flat") &&
    [ -n "$n" ] && [ "$n" -le 22 ]
check $? "run --taps (blocks 1-2): the training pass stops after block2_unit4_layer2 (22 of 52 locations), the test pass after $deepest ($n locations) $(head -c 200 "$T/early.err")"

# the grid across processes: 4 shards of h2t run started by GNU parallel, as README shows (xargs -P 4
# where parallel is not installed), + --collect = one run (the one run trains a fold's 4 scoring runs
# together, each shard only its own)
R="--model demo/backbone --train-images $C/train_images.npy --train-labels $C/train_labels.npy
   --test-images $C/test_images.npy --test-labels $C/test_labels.npy --target-size 32,64 --lr 0.1,0.01 --steps 20
   --coef 1e-3,1e-5 --fraction 0.05,0.2 --method head2toe,linear --no-figures --quiet"
"$H2T" run $R --out "$T/r1" >/dev/null 2>&1
if command -v parallel >/dev/null 2>&1; then
    runner="GNU parallel"
    parallel --will-cite -j 4 "$H2T" run $R --grid-shard {}/4 --out "$T/rparts" ::: 0 1 2 3 >/dev/null 2>&1
else
    runner="xargs -P 4 (GNU parallel not installed)"
    printf '%s\n' 0 1 2 3 | xargs -P 4 -I{} "$H2T" run $R --grid-shard {}/4 --out "$T/rparts" >/dev/null 2>&1
fi
"$H2T" run $R --collect "$T/rparts" --out "$T/r2" >/dev/null 2>"$T/err"
rc=$?
n=0
for f in head2toe/cv.tsv head2toe/selected.npy head2toe/W.npy linear/cv.tsv linear/W.npy head2toe/test.json; do
    cmp -s "$T/r1/$f" "$T/r2/$f" || { n=1; echo "differs: $f"; }
done
[ $rc = 0 ] && [ $n = 0 ] && [ ! -e "$T/rparts/report.json" ] &&
    [ "$(grep accuracy "$T/r1/report.json")" = "$(grep accuracy "$T/r2/report.json")" ]
check $? "run --grid-shard K/4 under $runner + --collect = one run (heads, CV tables, accuracies) $(head -c 200 "$T/err")"

"$H2T_NOOMP" demo --dir "$T/mini" --out "$T/out1" --report "$T/r1.json" --tasks fashion,clevr_count --quiet \
    >/dev/null 2>&1
grep -o '"\(linear\|head2toe\|fraction\)": [0-9.e-]*' "$T/r.json" >"$T/a"
grep -o '"\(linear\|head2toe\|fraction\)": [0-9.e-]*' "$T/r1.json" >"$T/b"
[ -s "$T/a" ] && cmp -s "$T/a" "$T/b"
check $? "demo: the build without OpenMP gives the same accuracies"

# ---- refusals
"$H2T" demo --dir "$T/nowhere" --out "$T/o2" >/dev/null 2>"$T/e"
rc=$?
refused $rc "$T/e" && grep -q 'nowhere/demo.cfg' "$T/e"
check $? "demo refuses a missing demo.cfg: $(cat "$T/e")"
mkdir -p "$T/badkey" && { cat "$T/mini/demo.cfg"; echo "lerning_rate = 3"; } >"$T/badkey/demo.cfg"
"$H2T" demo --dir "$T/badkey" --out "$T/o3" >/dev/null 2>"$T/e"
rc=$?
refused $rc "$T/e" && grep -q 'lerning_rate' "$T/e"
check $? "demo refuses an unknown demo.cfg key: $(cat "$T/e")"
mkdir -p "$T/badtsv" && sed "s#^tasks = .*#tasks = $T/badtsv/tasks.tsv#" "$T/mini/demo.cfg" >"$T/badtsv/demo.cfg"
printf '# name\tood\tclasses\tdescription\nfashion\tmaybe\t10\tx\n' >"$T/badtsv/tasks.tsv"
"$H2T" demo --dir "$T/badtsv" --out "$T/o4" >/dev/null 2>"$T/e"
rc=$?
refused $rc "$T/e" && grep -q 'tasks.tsv:2' "$T/e"
check $? "demo refuses a malformed task line, naming file:line: $(cat "$T/e")"
"$H2T" demo --dir "$T/mini" --out "$T/o5" --tasks nosuch --quiet >/dev/null 2>"$T/e"
rc=$?
refused $rc "$T/e" && grep -q 'nosuch' "$T/e" && [ ! -e "$T/o5" ]
check $? "demo refuses an unknown task name, writing nothing: $(cat "$T/e")"
"$H2T" run --model demo/backbone --train-images $C/train_images.npy --train-labels $C/train_labels.npy \
    --test-images $C/test_images.npy --test-labels $C/test_labels.npy --method head2toe,bogus --out "$T/o6" \
    >/dev/null 2>"$T/e"
rc=$?
refused $rc "$T/e" && grep -q 'bogus' "$T/e" && [ ! -e "$T/o6" ]
check $? "run refuses an unknown method before doing anything: $(cat "$T/e")"
"$H2T" run --model demo/backbone --train-images $C/train_images.npy --train-labels $C/test_labels.npy \
    --test-images $C/test_images.npy --test-labels demo/tasks/fashion/no_such.npy --out "$T/o7" --quiet \
    >/dev/null 2>"$T/e"
rc=$?
refused $rc "$T/e" && grep -q 'no_such.npy' "$T/e" && [ ! -e "$T/o7" ]
check $? "run refuses a missing labels file, naming it, writing nothing: $(cat "$T/e")"
"$H2T" run --model demo/backbone --train-images $C/train_images.npy --train-labels demo/tasks/fashion/train_labels.npy \
    --test-images $C/test_images.npy --test-labels $C/test_labels.npy --target-size 64 --lr 0.1 --steps 5 \
    --fraction 0.1 --out "$T/o8" --quiet >/dev/null 2>"$T/e"
rc=$?
[ $rc = 0 ]
check $? "run accepts test labels that use fewer classes than the training labels (rc $rc)"
"$H2T" run --model demo/backbone --train-images $C/train_images.npy --train-labels $C/train_labels.npy \
    --test-images $C/train_images.npy --test-labels "$T/r.json" --out "$T/o9" --quiet >/dev/null 2>"$T/e"
rc=$?
refused $rc "$T/e" && grep -q 'r.json' "$T/e"
check $? "run refuses a labels file that is not .npy: $(cat "$T/e")"
exit 0

#!/usr/bin/env bash
# bench/task.sh: one VTAB-1k-sized task end to end, timed per stage -- the
# benchmark of what a user waits for.
#
#   ResNet-50 (torchvision topology, random weights saved to a .pth and
#   exported with weights/export.py --checkpoint, 224 px), 1000 training
#   and 10,000 test images (synthetic uint8 224x224x3, fixed seed, 10
#   classes, each class a different mean colour plus noise so that the
#   heads have something to learn), then
#     h2t run --target-size 1024,8192 --lr 0.1,0.01 --steps 500 --coef 1e-3,1e-5
#             --fraction <the paper's eight> --method head2toe,linear   (5-fold CV)
#   and a table of wall time per stage (training features, CV at each T,
#   final heads, test features, total) from the run's report.json.
#
# Usage: bench/task.sh [--quick] [--threads N] [--h2t ./h2t] [--work DIR] [--out FILE]
#   --quick     1000 test images instead of 10,000 (the same CV: 4.9 minutes
#               on the 2-core Zen 5 host, the full run 7.9 minutes; 6.6 and
#               13.5 on an earlier Xeon; bench/results/task-*-2threads.md)
#   --threads   OMP_NUM_THREADS (default: all cores)
#   --work      where the model and images go (default /tmp/h2t-task; reused when present)
#   --out       the stage table (default bench/results/task-<full|quick>-<N>threads.md)
# Needs /usr/bin/python3 with numpy and torch/torchvision (Debian's python3-torch
# python3-torchvision) for the export and the images; h2t itself needs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0 THREADS=$(nproc) H2T=./h2t WORK=/tmp/h2t-task OUT=
while [ $# -gt 0 ]; do
    case $1 in
    --quick) QUICK=1 ;;
    --threads) THREADS=$2; shift ;;
    --h2t) H2T=$2; shift ;;
    --work) WORK=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h|--help) sed -n '2,/^set -/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "task.sh: unknown argument '$1' (see --help)" >&2; exit 1 ;;
    esac
    shift
done
NTEST=$([ $QUICK = 1 ] && echo 1000 || echo 10000)
MODE=$([ $QUICK = 1 ] && echo quick || echo full)
OUT=${OUT:-bench/results/task-$MODE-${THREADS}threads.md}
PY=/usr/bin/python3
[ -x "$H2T" ] || { echo "task.sh: $H2T not found (run make first)" >&2; exit 1; }
$PY -c 'import numpy, torch, torchvision' 2>/dev/null ||
    { echo "task.sh: $PY needs numpy, torch, torchvision (apt-get install python3-torch python3-torchvision)" >&2; exit 1; }
mkdir -p "$WORK" "$(dirname "$OUT")"

# ---- the model: torchvision ResNet-50, random weights (seed 0), through the converter
if [ ! -f "$WORK/r50/config.txt" ]; then
    $PY -c "
import torch, torchvision
torch.manual_seed(0)
torch.save(torchvision.models.resnet50(weights=None).state_dict(), '$WORK/r50.pth')"
    $PY weights/export.py --source torchvision --arch resnet50 --checkpoint "$WORK/r50.pth" --out "$WORK/r50" >/dev/null
fi

# ---- the images: 10 classes, class c has mean colour c/9 * (200, 120, 40) + 30, noise sd 40
make_images() { # N SEED PREFIX
    [ -f "$WORK/$3_images.npy" ] && return 0
    $PY - "$1" "$2" "$WORK/$3" <<'EOF'
import sys
import numpy as np
n, seed, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(seed)
y = rng.integers(0, 10, n).astype(np.int64)
x = np.empty((n, 224, 224, 3), np.uint8)
for i in range(0, n, 500):
    c = y[i:i + 500, None, None, None] / 9.0 * np.array([200, 120, 40]) + 30
    x[i:i + 500] = np.clip(c + rng.normal(0, 40, (len(c), 224, 224, 3)), 0, 255).astype(np.uint8)
np.save(prefix + '_images.npy', x)
np.save(prefix + '_labels.npy', y)
EOF
}
make_images 1000 1 train
make_images "$NTEST" 2 "test$NTEST"

# ---- the task
uptime
export OMP_NUM_THREADS=$THREADS OMP_WAIT_POLICY=passive
start=$(date +%s.%N)
"$H2T" run --model "$WORK/r50" --train-images "$WORK/train_images.npy" --train-labels "$WORK/train_labels.npy" \
    --test-images "$WORK/test${NTEST}_images.npy" --test-labels "$WORK/test${NTEST}_labels.npy" \
    --target-size 1024,8192 --lr 0.1,0.01 --steps 500 --coef 1e-3,1e-5 \
    --fraction 0.0005,0.001,0.002,0.005,0.01,0.02,0.05,0.1 --method head2toe,linear --no-figures \
    --task "bench/task.sh $MODE" --out "$WORK/run-$MODE"
end=$(date +%s.%N)
uptime

# ---- the stage table from report.json
$PY - "$WORK/run-$MODE/report.json" "$OUT" "$MODE" "$THREADS" "$NTEST" "$(awk "BEGIN { print $end - $start }")" <<'EOF'
import json, platform, subprocess, sys
rep, out, mode, threads, ntest, wall = sys.argv[1:]
r = json.load(open(rep))
m = {x['method']: x for x in r['methods']}
h, l = m['head2toe'], m['linear']
ts = [t['T'] for t in r['target_sizes']]
cpu = subprocess.run(['sh', '-c', "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
                     capture_output=True, text=True).stdout.strip()
rows = [('training features (1000 images, every T, one pass)', r['seconds']['train_features'])]
for i, t in enumerate(ts):
    rows.append((f'head2toe: cross-validation at T {t} (D {r["target_sizes"][i]["D"]})', h['seconds']['cv'][i]))
rows.append(('linear: cross-validation (pre_logits)', l['seconds']['cv'][0]))
rows.append(('final heads (head2toe + linear)', h['seconds']['final'] + l['seconds']['final']))
rows.append((f'test features ({ntest} images, the selected features only)', r['seconds']['test_features']))
rows.append(('total (h2t run)', r['seconds']['total']))
with open(out, 'w') as f:
    f.write(f'bench/task.sh --{mode}: {cpu}, {threads} threads, {platform.machine()}\n\n' if mode == 'quick' else
            f'bench/task.sh: {cpu}, {threads} threads, {platform.machine()}\n\n')
    f.write('| stage | seconds |\n|---|---|\n')
    for name, s in rows:
        f.write(f'| {name} | {s:.1f} |\n')
    f.write(f'\nwall clock of the h2t process: {float(wall):.1f} s ({float(wall) / 60:.1f} min)\n')
    for x in (h, l):
        f.write(f'\n{x["method"]}: T {x["target_size"]}, {x["features"]} of {x["features_total"]} features, '
                f'lr {x["lr"]}, steps {x["steps"]}, coef {x["coef"]}, F {x["fraction"]}, '
                f'validation {x["validation_accuracy"]:.4f}, test {x["test_accuracy"]:.4f}\n')
    p = r['backbone_passes']
    f.write(f'\nbackbone passes: training {p[0]["images"]} images to {p[0]["stopped_after"]}, '
            f'test {p[1]["images"]} images to {p[1]["stopped_after"]} '
            f'({p[1]["locations_computed"]} of {p[1]["of"]} locations)\n')
print(open(out).read())
EOF

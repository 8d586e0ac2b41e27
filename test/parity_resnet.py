#!/usr/bin/python3
"""test/parity_resnet.py: full-size ResNet-50 in h2t against PyTorch, run by
`make parity` (test/parity.sh).

  1. torchvision resnet50 (v1.5) with random weights and random BatchNorm
     statistics (test/ref_resnet.py randomize_: running mean ~ N(0, 0.1),
     running var ~ U(0.5, 1.5), gamma ~ N(1, 0.2), beta ~ N(0, 0.1)), saved
     as a state_dict, converted with weights/export.py --checkpoint, run by
     `h2t taps` on 2 random 224x224 uint8 images, and compared with
     PyTorch forward hooks at all 52 locations;
  2. the same for the paper's pre-activation v2 (test/ref_resnet.py
     ResNetV2, 3,4,6,3 units, width 64, 1000 classes) with the official TF
     code's conventions: BN eps 1e-3, zero-padded stem pool, [-1, 1] input
     normalization, input 240x240;
  3. ResNet-50 forward throughput next to PyTorch's, measured in this run
     by bench/resnet_vs_torch.py (batch 16, 2 threads).
Each location passes when max |h2t - torch| <= 1e-4 * max |torch|.
Usage: /usr/bin/python3 test/parity_resnet.py [--h2t ./h2t] [--keep DIR]
       [--no-bench]"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import ref_resnet  # noqa: E402
from make_fixtures import normalize  # noqa: E402

TOL = 1e-4
NIMG = 2


def report(ok, msg):
    print(('PASS ' if ok else 'FAIL ') + 'parity_resnet: ' + msg, flush=True)


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        print(r.stdout + r.stderr, file=sys.stderr)
        raise RuntimeError(f'failed: {" ".join(cmd)}')
    return r.stdout


def parity(name, model, export_args, size, norm, h2t, tmp, seed):
    ckpt = os.path.join(tmp, name + '.pth')
    torch.save(model.state_dict(), ckpt)
    mdir, tdir = os.path.join(tmp, name + '_model'), os.path.join(tmp, name + '_taps')
    print(run([sys.executable, 'weights/export.py', '--checkpoint', ckpt, '--out', mdir] + export_args)
          .strip().splitlines()[-1], flush=True)
    os.remove(ckpt)
    images = np.random.default_rng(seed).integers(0, 256, (NIMG, size, size, 3), dtype=np.uint8)
    ipath = os.path.join(tmp, name + '_images.npy')
    np.save(ipath, images)
    print(run([h2t, 'taps', '--model', mdir, '--images', ipath, '--out', tdir, '--batch', str(NIMG),
               '--quiet']).strip(), flush=True)
    torch.set_num_threads(2)
    order, want = ref_resnet.taps(model, normalize(images, norm))
    got_names = sorted(f[:-4] for f in os.listdir(tdir) if f.endswith('.npy'))
    report(len(order) == 52 and got_names == sorted(order),
           f'{name}: h2t writes the {len(order)} locations PyTorch has ({len(got_names)} files)')
    worst = 0.0
    for loc in order:
        ref = want[loc]
        got = np.load(os.path.join(tdir, loc + '.npy'))
        if got.shape != ref.shape:
            report(False, f'{name} {loc}: shape {list(got.shape)}, PyTorch {list(ref.shape)}')
            continue
        err = float(np.abs(got.astype(np.float64) - ref).max())
        mag = float(np.abs(ref).max())
        rel = err / mag if mag > 0 else err
        worst = max(worst, rel)
        report(np.isfinite(got).all() and rel <= TOL,
               f'{name} {loc} {list(ref.shape)} max_abs={err:.3g} max|ref|={mag:.3g} rel={rel:.3g} tol={TOL:g}')
    print(f'parity_resnet: {name}: worst location error {worst:.3g} of its max magnitude', flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--h2t', default='./h2t')
    ap.add_argument('--keep', metavar='DIR', help='keep models and taps in DIR')
    ap.add_argument('--no-bench', action='store_true', help='skip the throughput comparison')
    args = ap.parse_args()
    h2t = os.path.abspath(args.h2t)
    tmp = args.keep or tempfile.mkdtemp(prefix='h2t_parity_resnet_')
    os.makedirs(tmp, exist_ok=True)
    try:
        torch.manual_seed(0)
        tv = ref_resnet.randomize_(torchvision.models.resnet50(weights=None), seed=10)
        parity('torchvision_v1.5', tv, ['--source', 'torchvision', '--arch', 'resnet50'], 224, 'imagenet',
               h2t, tmp, seed=11)
        del tv
        v2 = ref_resnet.randomize_(ref_resnet.ResNetV2((3, 4, 6, 3), 64, 1000, eps=1e-3, padding='symmetric',
                                                       pool_padding='zero'), seed=20)
        parity('paper_v2', v2, ['--source', 'timm', '--arch', 'resnetv2_50', '--bn-eps', '1e-3',
                                '--pool-padding', 'zero', '--input-size', '240', '--normalize', 'inception'],
               240, 'inception', h2t, tmp, seed=21)
        del v2
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    if not args.no_bench:
        r = subprocess.run([sys.executable, 'bench/resnet_vs_torch.py', '--h2t', h2t], cwd=ROOT,
                           capture_output=True, text=True)
        print(r.stdout.strip())
        report(r.returncode == 0, 'bench/resnet_vs_torch.py ran' + ('' if r.returncode == 0 else ': ' + r.stderr))


if __name__ == '__main__':
    main()

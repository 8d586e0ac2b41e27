#!/usr/bin/python3
"""test/parity_timm_resnet.py: the timm paths of weights/convert_resnet.py
against timm's own forward. Runs only where timm is installed (prints one
line and exits 0 otherwise), so `make parity` works without it.

For timm's resnetv2_50 (pre-activation, BatchNorm) and resnet50 (v1.5),
built without downloading (random weights, random BatchNorm statistics,
test/ref_resnet.py randomize_):
  1. the state_dict converts with weights/export.py --source timm
     --checkpoint, and the converter's default input normalization is the
     one timm's pretrained_cfg names;
  2. `h2t taps` on 2 random 224x224 images matches timm's forward hooks at
     all 52 locations within 1e-4 of each tensor's max magnitude;
  3. (resnetv2_50) the repo's PyTorch v2 reference, test/ref_resnet.py
     ResNetV2, loads timm's state_dict strictly and gives the same logits,
     so the reference used by test/make_fixtures.py and
     test/parity_resnet.py is timm's architecture.
Usage: python3 test/parity_timm_resnet.py [--h2t ./h2t] [--arch NAME]"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
TOL = 1e-4


def report(ok, msg):
    print(('PASS ' if ok else 'FAIL ') + 'parity_timm_resnet: ' + msg, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--h2t', default='./h2t')
    ap.add_argument('--arch', action='append', help='resnetv2_50 and/or resnet50 (default both)')
    args = ap.parse_args()
    try:
        import timm
    except ImportError:
        print('parity_timm_resnet: timm is not installed; skipped')
        return
    import ref_resnet
    from make_fixtures import normalize
    h2t = os.path.abspath(args.h2t)
    print(f'parity_timm_resnet: timm {timm.__version__}, torch {torch.__version__}', flush=True)
    tmp = tempfile.mkdtemp(prefix='h2t_parity_timm_')
    try:
        for arch in args.arch or ['resnetv2_50', 'resnet50']:
            torch.manual_seed(0)
            model = ref_resnet.randomize_(timm.create_model(arch, pretrained=False), seed=30)
            ckpt, mdir = os.path.join(tmp, arch + '.pth'), os.path.join(tmp, arch)
            torch.save(model.state_dict(), ckpt)
            r = subprocess.run([sys.executable, 'weights/export.py', '--source', 'timm', '--arch', arch,
                                '--checkpoint', ckpt, '--out', mdir], cwd=ROOT, capture_output=True, text=True)
            report(r.returncode == 0, f'{arch}: export.py --source timm --checkpoint: '
                   + (r.stdout.strip().splitlines()[-1] if r.returncode == 0 else r.stderr.strip()))
            if r.returncode != 0:
                continue
            cfg = dict(line.split(' = ', 1) for line in open(os.path.join(mdir, 'config.txt')).read().splitlines()
                       if ' = ' in line)
            mean = tuple(round(float(v), 3) for v in model.pretrained_cfg.get('mean', ()))
            timm_norm = {(0.485, 0.456, 0.406): 'imagenet', (0.5, 0.5, 0.5): 'inception'}.get(mean, str(mean))
            report(cfg['normalize'] == timm_norm,
                   f'{arch}: converter normalize = {cfg["normalize"]}, timm pretrained_cfg mean {mean} ({timm_norm})')

            images = np.random.default_rng(31).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
            ipath, tdir = os.path.join(tmp, 'images.npy'), os.path.join(tmp, arch + '_taps')
            np.save(ipath, images)
            r = subprocess.run([h2t, 'taps', '--model', mdir, '--images', ipath, '--out', tdir, '--quiet'],
                               capture_output=True, text=True)
            if r.returncode != 0:
                report(False, f'{arch}: h2t taps: {r.stderr.strip()}')
                continue
            x = normalize(images, cfg['normalize'])
            order, want = ref_resnet.taps(model, x)
            report(len(order) == 52, f'{arch}: timm has {len(order)} locations')
            worst, bad = 0.0, []
            for loc in order:
                got = np.load(os.path.join(tdir, loc + '.npy'))
                ref = want[loc]
                rel = float(np.abs(got - ref).max() / np.abs(ref).max()) if got.shape == ref.shape else np.inf
                worst = max(worst, rel)
                if not rel <= TOL:
                    bad.append(f'{loc} {rel:.3g}')
            report(not bad, f'{arch}: all {len(order)} locations of h2t vs timm within {TOL:g}, worst {worst:.3g}'
                   + (': ' + ', '.join(bad[:5]) if bad else ''))
            if arch == 'resnetv2_50':
                ref = ref_resnet.ResNetV2().eval()
                ref.load_state_dict(model.state_dict(), strict=True)
                with torch.no_grad():
                    a, b = model(x), ref(x)
                err = float((a - b).abs().max() / a.abs().max())
                report(err <= 1e-5, f'{arch}: test/ref_resnet.py ResNetV2 loads timm\'s state_dict strictly, '
                       f'logits agree to {err:.3g}')
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()

#!/usr/bin/python3
"""bench/vit_vs_torch.py: ViT-B/16 forward throughput, h2t next to PyTorch
(CPU), measured one after the other in the same run.

The model is full-size torchvision vit_b_16 with random weights (the numbers
do not depend on the values), exported with weights/export.py. Both run
batches of --batch 224x224 images with --threads threads:
  h2t:     `OMP_NUM_THREADS=T h2t taps --taps logits` on uint8 images; the
           img/s h2t prints (preprocessing + forward + writing the logits;
           not the model load), after a warm-up run of one batch
  PyTorch: torch.set_num_threads(T), model(x) under torch.no_grad() on the
           already normalized float batch, after one warm-up batch, with
           OPENBLAS_CORETYPE=SkylakeX unless the environment sets it (Debian's
           OpenBLAS otherwise may pick a slow kernel on this machine)
and the logits of the two are compared (max |difference| / max |logits|).
Usage: /usr/bin/python3 bench/vit_vs_torch.py [--h2t ./h2t] [--threads 2]
       [--batch 16] [--batches 2]"""
import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault('OPENBLAS_CORETYPE', 'SkylakeX')   # before torch loads OpenBLAS

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'test'))
import make_fixtures_vit as ref  # noqa: E402


def cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown CPU'


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--h2t', default='./h2t')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--batches', type=int, default=2, help='timed batches (after one warm-up batch)')
    args = ap.parse_args()
    h2t, T, B = os.path.abspath(args.h2t), args.threads, args.batch
    print(f'machine: {cpu_name()}, {os.cpu_count()} cores; threads {T}, batch {B}, {args.batches} timed batches')
    tmp = tempfile.mkdtemp(prefix='h2t_bench_vit_')
    try:
        torch.manual_seed(0)
        model = ref.randomize_(torchvision.models.vit_b_16(weights=None), seed=16)
        ckpt = os.path.join(tmp, 'vit_b_16.pth')
        torch.save(model.state_dict(), ckpt)
        mdir = os.path.join(tmp, 'model')
        subprocess.run([sys.executable, 'weights/export.py', '--source', 'torchvision', '--arch', 'vit_b_16',
                        '--checkpoint', ckpt, '--out', mdir], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        os.remove(ckpt)
        n = B * args.batches
        images = np.random.default_rng(2).integers(0, 256, (n, 224, 224, 3), dtype=np.uint8)
        ipath = os.path.join(tmp, 'images.npy')

        # ---- h2t: a warm-up run of one batch, then the timed run
        env = dict(os.environ, OMP_NUM_THREADS=str(T))
        np.save(ipath, images[:B])
        subprocess.run([h2t, 'taps', '--model', mdir, '--images', ipath, '--out', os.path.join(tmp, 'w'),
                        '--batch', str(B), '--taps', 'logits', '--quiet'], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        np.save(ipath, images)
        out = subprocess.run([h2t, 'taps', '--model', mdir, '--images', ipath, '--out', os.path.join(tmp, 't'),
                              '--batch', str(B), '--taps', 'logits', '--quiet'], env=env, check=True,
                             capture_output=True, text=True).stdout
        m = re.search(r'\(([\d.]+) s, ([\d.]+) img/s\)', out)
        h2t_ips = float(m.group(2))
        got = np.load(os.path.join(tmp, 't', 'logits.npy'))

        # ---- PyTorch
        torch.set_num_threads(T)
        x = ref.normalize(images, 'imagenet')
        with torch.no_grad():
            model(x[:B])
            t0 = time.perf_counter()
            want = torch.cat([model(x[i:i + B]) for i in range(0, n, B)]).numpy()
            secs = time.perf_counter() - t0
        torch_ips = n / secs
        err = float(np.abs(got - want).max() / np.abs(want).max())
        print(f'h2t:     {h2t_ips:7.2f} img/s  ({n} images, batch {B}, OMP_NUM_THREADS={T})')
        print(f'PyTorch: {torch_ips:7.2f} img/s  (torch {torch.__version__}, set_num_threads({T}), batch {B}, '
              f'OPENBLAS_CORETYPE={os.environ.get("OPENBLAS_CORETYPE")})')
        print(f'h2t / PyTorch = {h2t_ips / torch_ips:.2f}; logits agree to {err:.2g} of their max magnitude')
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()

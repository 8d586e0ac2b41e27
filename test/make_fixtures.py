#!/usr/bin/python3
"""test/make_fixtures.py: the small ResNet fixtures of test/test_resnet.c and
test/cli_taps.sh. Offline tool (PyTorch via /usr/bin/python3); its output
is committed, `make test` never runs it.

For each variant it builds a reduced ResNet with random weights and random
BatchNorm statistics (test/ref_resnet.py), saves a checkpoint, converts it
with weights/export.py (the real converter path), writes a few uint8
images and the expected value of every location computed by PyTorch:

  test/fixtures/resnet_v15/   torchvision's own ResNet/Bottleneck classes,
                              stem width 6, units 1,1,2,1, 10 classes,
                              input 40x40 RGB, ImageNet normalization,
                              PyTorch conventions (eps 1e-5, symmetric
                              padding, pool padding ignored)
  test/fixtures/resnet_v2/    the pre-activation reference ResNetV2, stem
                              width 4, units 2,1,1,2, 7 classes, input 48x48
                              grayscale [n, H, W], [-1, 1] normalization,
                              the TF conventions (eps 1e-3, "same" conv
                              padding, zero pool padding)
each holding model/ (config.txt + tensors), images.npy (uint8, already at
the input size, so the TF1 resize is the identity and only the
normalization is applied) and expected/<location>.npy ([n, H, W, C] or
[n, C], float32). The units exercise strided and projection shortcuts and
identity shortcuts. Deterministic: fixed seeds, one thread.

  /usr/bin/python3 test/make_fixtures.py
"""
import os
import shutil
import subprocess
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import ref_resnet  # noqa: E402

MEAN = {'imagenet': (np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)),
        'inception': (np.full(3, 0.5, np.float32), np.full(3, 0.5, np.float32))}


def normalize(img, how):
    """uint8 [n, H, W, 3] -> float32 [n, 3, H, W] as model.c does."""
    mean, std = MEAN[how]
    x = (img.astype(np.float32) / 255.0 - mean) / std
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def export(ckpt, out, extra):
    cmd = [sys.executable, os.path.join('weights', 'export.py'), '--checkpoint', ckpt, '--out', out,
           '--force'] + extra
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        sys.exit(f'export failed: {" ".join(cmd)}\n{r.stderr}')
    print(r.stdout.strip().splitlines()[-1])


def make(name, model, export_args, images, norm):
    d = os.path.join(HERE, 'fixtures', name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, 'expected'))
    ckpt = os.path.join('test', 'fixtures', name + '.pth')     # relative: config.txt quotes the command
    torch.save(model.state_dict(), os.path.join(ROOT, ckpt))
    try:
        export(ckpt, os.path.join('test', 'fixtures', name, 'model'), export_args)
    finally:
        os.remove(os.path.join(ROOT, ckpt))
    np.save(os.path.join(d, 'images.npy'), images)
    rgb = images if images.ndim == 4 else np.repeat(images[..., None], 3, axis=3)
    order, taps = ref_resnet.taps(model, normalize(rgb, norm))
    for loc in order:
        np.save(os.path.join(d, 'expected', loc + '.npy'), taps[loc])
    with open(os.path.join(d, 'expected', 'order.txt'), 'w') as f:
        f.write('\n'.join(order) + '\n')
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)
    print(f'{d}: {len(order)} locations, {size / 1024:.0f} KiB, max |logits| {np.abs(taps["logits"]).max():.3g}, '
          f'max |pre_logits_pre_pooling| {np.abs(taps["pre_logits_pre_pooling"]).max():.3g}')


def main():
    torch.set_num_threads(1)
    rng = np.random.default_rng(20220717)

    torch.manual_seed(1)
    v15 = ref_resnet.randomize_(ref_resnet.TinyTorchvisionResNet((1, 1, 2, 1), 6, 10), seed=1)
    make('resnet_v15', v15,
         ['--source', 'torchvision', '--arch', 'resnet50', '--input-size', '40', '--normalize', 'imagenet'],
         rng.integers(0, 256, (3, 40, 40, 3), dtype=np.uint8), 'imagenet')

    torch.manual_seed(2)
    v2 = ref_resnet.randomize_(ref_resnet.ResNetV2((2, 1, 1, 2), 4, 7, eps=1e-3, padding='same',
                                                   pool_padding='zero'), seed=2)
    make('resnet_v2', v2,
         ['--source', 'timm', '--arch', 'resnetv2_50', '--input-size', '48', '--normalize', 'inception',
          '--bn-eps', '1e-3', '--padding', 'same', '--pool-padding', 'zero'],
         rng.integers(0, 256, (2, 48, 48), dtype=np.uint8), 'inception')


if __name__ == '__main__':
    main()

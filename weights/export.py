#!/usr/bin/python3
"""weights/export.py: a pretrained backbone -> a model directory for h2t.

  /usr/bin/python3 weights/export.py --source torchvision --arch resnet50 --out models/resnet50
  /usr/bin/python3 weights/export.py --source timm --arch resnetv2_50 --checkpoint F.pth --out DIR

A model directory holds config.txt (`key = value`, read by model.c and the
backbone file) and one float32 C-order .npy per tensor under its canonical
name (weights/README). This file is the stable interface: flag parsing and
the writer. The framework-specific work lives next to it, one module per
family, imported only when needed:
  convert_resnet.py   --arch resnet50 | resnetv2_50 (torchvision, timm)
  convert_vit.py      --arch vit_b_16 | vit_base_patch16_224, --source jax
Each exposes convert(args) -> (tensors {name: np.ndarray}, config {key: str})
and may expose add_arguments(parser) for its own flags. The config must
name arch, input_size and normalize.

The directory is written under a temporary name next to --out and renamed
when complete; an existing --out is refused unless --force.
"""
import argparse
import importlib
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = ('torchvision', 'timm', 'jax')


def fail(msg):
    print(f'export: {msg}', file=sys.stderr)
    sys.exit(1)


def converter_name(source, arch):
    """The module that converts this source/arch, or None."""
    if source == 'jax' or (arch or '').startswith('vit'):
        return 'convert_vit'
    if arch in ('resnet50', 'resnetv2_50'):
        return 'convert_resnet'
    return None


def parse_args(argv):
    # first pass: which converter (it may add flags of its own)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument('--source', default='torchvision')
    pre.add_argument('--arch')
    known, _ = pre.parse_known_args(argv)

    p = argparse.ArgumentParser(
        prog='weights/export.py',
        description='Convert a pretrained backbone into a model directory for h2t '
                    '(config.txt + one float32 .npy per tensor; see weights/README).')
    p.add_argument('--source', choices=SOURCES, default='torchvision',
                   help='framework the weights come from (default torchvision)')
    p.add_argument('--arch', required=True,
                   help='resnet50 (torchvision, timm), resnetv2_50 (timm), vit_b_16 (torchvision), '
                        'vit_base_patch16_224 (timm), or a ViT of --source jax')
    p.add_argument('--checkpoint', metavar='FILE',
                   help='weights file instead of the source\'s pretrained download')
    p.add_argument('--out', required=True, metavar='DIR', help='model directory to write')
    p.add_argument('--input-size', type=int, metavar='S',
                   help='images are resized to S x S (default per arch: 224)')
    p.add_argument('--normalize', choices=('imagenet', 'inception'),
                   help='input normalization: imagenet mean/std or inception [-1, 1] (default per source)')
    p.add_argument('--force', action='store_true', help='replace an existing --out directory')
    mod = None
    name = converter_name(known.source, known.arch)
    if name:
        sys.path.insert(0, HERE)
        try:
            mod = importlib.import_module(name)
        except ImportError as e:
            fail(f'--arch {known.arch}: cannot import weights/{name}.py: {e}')
        if hasattr(mod, 'add_arguments'):
            mod.add_arguments(p)
    args = p.parse_args(argv)
    if mod is None:
        fail(f'--arch {args.arch}: unknown (resnet50, resnetv2_50, vit_b_16, vit_base_patch16_224, or --source jax)')
    if args.input_size is not None and not 8 <= args.input_size <= 4096:
        fail(f'--input-size {args.input_size}: expected 8 to 4096')
    return args, mod


def write_model_dir(out, tensors, config, command, force):
    """Every tensor as <name>.npy plus config.txt, into a temporary directory
    renamed to out when complete."""
    for key in ('arch', 'input_size', 'normalize'):
        if key not in config:
            fail(f'internal error: the converter gave no config key {key}')
    for name, arr in tensors.items():
        if not all(c.isalnum() or c in '._' for c in name):
            fail(f'internal error: tensor name {name!r}')
        if not np.all(np.isfinite(arr)):
            fail(f'{name}: holds NaN or infinite values; refusing to write it')
    out = out.rstrip('/') or out
    if os.path.exists(out) and not force:
        fail(f'--out {out}: exists (pass --force to replace it)')
    tmp = f'{out}.tmp.{os.getpid()}'
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        total = 0
        width = max(len(n) for n in tensors)
        for name in sorted(tensors):
            arr = np.ascontiguousarray(tensors[name], dtype=np.float32)
            np.save(os.path.join(tmp, name + '.npy'), arr)
            total += arr.size
            print(f'  {name:<{width}}  {list(arr.shape)}')
        with open(os.path.join(tmp, 'config.txt'), 'w') as f:
            f.write('# written by weights/export.py ' + command.replace('\n', ' ') + '\n')
            for key, value in config.items():
                if '\n' in str(value) or '#' in str(value):
                    fail(f'internal error: config value {key} = {value!r}')
                f.write(f'{key} = {value}\n')
        if os.path.exists(out):
            shutil.rmtree(out)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return total


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args, mod = parse_args(argv)
    tensors, config = mod.convert(args)
    if not tensors:
        fail('the converter produced no tensors')
    total = write_model_dir(args.out, tensors, config, ' '.join(argv), args.force)
    desc = ', '.join(f'{k} {v}' for k, v in config.items() if k != 'arch')
    print(f'export: {len(tensors)} tensors, {total:,} parameters, {config["arch"]} ({desc}) -> {args.out}')


if __name__ == '__main__':
    main()

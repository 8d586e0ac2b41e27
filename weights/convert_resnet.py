"""weights/convert_resnet.py: ResNet-50 checkpoints -> the canonical tensors
and config of resnet.c (weights/README describes both). Called by
weights/export.py, which parses the flags and writes the model directory.

Sources and layouts:
  --source torchvision --arch resnet50     torchvision v1.5 (pretrained
                                           IMAGENET1K_V1 without
                                           --checkpoint: needs internet)
  --source timm --arch resnet50            timm's resnet50 (the same v1.5
                                           layout as torchvision)
  --source timm --arch resnetv2_50         timm's pre-activation ResNetV2
                                           with BatchNorm (and
                                           test/ref_resnet.py's ResNetV2)
Without --checkpoint the timm models come from timm (imported only then).
A --checkpoint may hold a state_dict, {'state_dict': ...} / {'model': ...},
or a whole pickled nn.Module. Units per block and all widths come from the
state dict, so reduced-width models convert too.

Framework quirks resolved here: OIHW conv weights -> HWIO, [out, in] dense
(or timm's 1x1-conv head) -> [in, out], BatchNorm buffers renamed, PyTorch
BN eps 1e-5 (read from the modules of a pickled model when they say
otherwise), ImageNet mean/std or [-1, 1] input normalization from the
source's own preprocessing config.
"""
import os
import re
import sys

import numpy as np

ARCHES = ('resnet50', 'resnetv2_50')


def fail(msg):
    print(f'export: {msg}', file=sys.stderr)
    sys.exit(1)


def add_arguments(parser):
    g = parser.add_argument_group('ResNet options')
    g.add_argument('--bn-eps', type=float, default=None,
                   help='BatchNorm epsilon (default: from a pickled model, else 1e-5, PyTorch\'s)')
    g.add_argument('--padding', choices=('symmetric', 'same'), default='symmetric',
                   help='conv padding convention: symmetric (k-1)/2 (PyTorch, TF fixed_padding) or TF "same"')
    g.add_argument('--pool-padding', choices=('ignore', 'zero'), default='ignore',
                   help='stem max pool: padded cells ignored (PyTorch) or zeros (TF fixed_padding, timm "fixed")')


# ---------------------------------------------------------------------------
# getting a state dict

def load_checkpoint(path):
    """(state_dict of numpy float32 arrays, the model's BN eps or None)."""
    import pickle

    import torch
    if not os.path.isfile(path):
        fail(f'--checkpoint {path}: no such file')
    try:
        try:    # tensors and plain containers only (torch >= 1.13)
            obj = torch.load(path, map_location='cpu', weights_only=True)
        except TypeError:   # torch < 1.13 has no weights_only (and unpickles anything)
            obj = torch.load(path, map_location='cpu')
        except (pickle.UnpicklingError, RuntimeError):
            # a whole pickled nn.Module, which torch >= 2.6 refuses by default:
            # weights_only=False unpickles it, running code from the file (trusted files only)
            obj = torch.load(path, map_location='cpu', weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unpickling problem is the file's
        fail(f'{path}: cannot load with torch.load: {e}')
    return state_dict_of(obj, path)


def state_dict_of(obj, where):
    import torch
    eps = None
    if isinstance(obj, torch.nn.Module):
        eps_set = {m.eps for m in obj.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
        if len(eps_set) > 1:
            fail(f'{where}: BatchNorm layers use different eps {sorted(eps_set)}; resnet.c takes one')
        eps = eps_set.pop() if eps_set else None
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ('state_dict', 'model', 'model_state_dict'):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        fail(f'{where}: expected a state_dict, {{"state_dict": ...}} or a pickled nn.Module')
    sd = {}
    for k, v in obj.items():
        if not hasattr(v, 'detach'):
            continue
        k = k[len('module.'):] if k.startswith('module.') else k
        sd[k] = v.detach().cpu().float().numpy()
    return sd, eps


def pretrained(args):
    """(state dict, eps, normalize) of the source's pretrained model."""
    if args.source == 'torchvision':
        if args.arch != 'resnet50':
            fail(f'--source torchvision has no --arch {args.arch} (use --source timm for resnetv2_50)')
        import torchvision
        model = torchvision.models.resnet50(weights='IMAGENET1K_V1')   # downloads once (needs internet)
        sd, eps = state_dict_of(model, 'torchvision resnet50')
        return sd, eps, 'imagenet'
    try:
        import timm
    except ImportError:
        fail('--source timm needs the timm package (pip install timm), or pass --checkpoint FILE')
    model = timm.create_model(args.arch, pretrained=True)
    sd, eps = state_dict_of(model, f'timm {args.arch}')
    return sd, eps, normalize_of(getattr(model, 'pretrained_cfg', {}) or {}, f'timm {args.arch}')


def normalize_of(cfg, where):
    mean = tuple(round(float(v), 3) for v in cfg.get('mean', ()))
    if mean == (0.485, 0.456, 0.406):
        return 'imagenet'
    if mean == (0.5, 0.5, 0.5):
        return 'inception'
    fail(f'{where}: input mean {mean} is neither ImageNet\'s nor [-1, 1]; pass --normalize')


# ---------------------------------------------------------------------------
# renaming + relayout

BN_PARTS = {'weight': 'gamma', 'bias': 'beta', 'running_mean': 'mean', 'running_var': 'var'}
BN = r'(weight|bias|running_mean|running_var)'

# (pattern on the source key, canonical name builder, kind)
V15_RULES = [
    (r'conv1\.weight', lambda m: 'root.conv.w', 'conv'),
    (r'bn1\.' + BN, lambda m: f'root.bn.{BN_PARTS[m[1]]}', 'vec'),
    (r'layer(\d)\.(\d+)\.conv(\d)\.weight', lambda m: f'block{m[1]}.unit{int(m[2]) + 1}.conv{m[3]}.w', 'conv'),
    (r'layer(\d)\.(\d+)\.bn(\d)\.' + BN,
     lambda m: f'block{m[1]}.unit{int(m[2]) + 1}.bn{m[3]}.{BN_PARTS[m[4]]}', 'vec'),
    (r'layer(\d)\.(\d+)\.downsample\.0\.weight', lambda m: f'block{m[1]}.unit{int(m[2]) + 1}.proj.w', 'conv'),
    (r'layer(\d)\.(\d+)\.downsample\.1\.' + BN,
     lambda m: f'block{m[1]}.unit{int(m[2]) + 1}.proj_bn.{BN_PARTS[m[3]]}', 'vec'),
    (r'fc\.weight', lambda m: 'logits.w', 'dense'),
    (r'fc\.bias', lambda m: 'logits.b', 'vec'),
]

V2_RULES = [
    (r'stem\.conv\.weight', lambda m: 'root.conv.w', 'conv'),
    (r'stages\.(\d)\.blocks\.(\d+)\.norm(\d)\.' + BN,
     lambda m: f'block{int(m[1]) + 1}.unit{int(m[2]) + 1}.bn{m[3]}.{BN_PARTS[m[4]]}', 'vec'),
    (r'stages\.(\d)\.blocks\.(\d+)\.conv(\d)\.weight',
     lambda m: f'block{int(m[1]) + 1}.unit{int(m[2]) + 1}.conv{m[3]}.w', 'conv'),
    (r'stages\.(\d)\.blocks\.(\d+)\.downsample\.conv\.weight',
     lambda m: f'block{int(m[1]) + 1}.unit{int(m[2]) + 1}.proj.w', 'conv'),
    (r'norm\.' + BN, lambda m: f'final_bn.{BN_PARTS[m[1]]}', 'vec'),
    (r'head\.fc\.weight', lambda m: 'logits.w', 'dense'),
    (r'head\.fc\.bias', lambda m: 'logits.b', 'vec'),
]


def relayout(arr, kind, key):
    if kind == 'conv':          # PyTorch [Cout, Cin, KH, KW] -> HWIO [KH, KW, Cin, Cout]
        if arr.ndim != 4:
            fail(f'{key}: expected a 4-d conv weight, found shape {list(arr.shape)}')
        return arr.transpose(2, 3, 1, 0)
    if kind == 'dense':         # [K, C] or timm's 1x1 conv [K, C, 1, 1] -> [C, K]
        if arr.ndim == 4 and arr.shape[2:] == (1, 1):
            arr = arr[:, :, 0, 0]
        if arr.ndim != 2:
            fail(f'{key}: expected a dense weight [classes, C], found shape {list(arr.shape)}')
        return arr.T
    if arr.ndim != 1:
        fail(f'{key}: expected a vector, found shape {list(arr.shape)}')
    return arr


def rename(sd, rules, layout, where):
    tensors, left = {}, []
    for key, arr in sd.items():
        if key.endswith('num_batches_tracked'):
            continue
        for pattern, name, kind in rules:
            m = re.fullmatch(pattern, key)
            if m:
                tensors[name(m)] = np.ascontiguousarray(relayout(arr, kind, key), dtype=np.float32)
                break
        else:
            left.append(key)
    if left:
        fail(f'{where}: {len(left)} tensors are not part of a {layout} ResNet-50: '
             + ', '.join(left[:6]) + (' ...' if len(left) > 6 else ''))
    return tensors


def units_of(tensors, v2, where):
    """Units per block, checking each unit has all of its tensors."""
    units = []
    for b in range(1, 5):
        n = 0
        while f'block{b}.unit{n + 1}.conv1.w' in tensors:
            n += 1
        if n == 0:
            fail(f'{where}: block {b} has no units (is this a ResNet-50 state dict?)')
        units.append(n)
    need = ['root.conv.w', 'logits.w', 'logits.b'] + (
        [f'final_bn.{p}' for p in BN_PARTS.values()] if v2 else [f'root.bn.{p}' for p in BN_PARTS.values()])
    for b, n in enumerate(units, 1):
        for k in range(1, n + 1):
            for j in (1, 2, 3):
                need.append(f'block{b}.unit{k}.conv{j}.w')
                need += [f'block{b}.unit{k}.bn{j}.{p}' for p in BN_PARTS.values()]
    missing = [t for t in need if t not in tensors]
    if missing:
        fail(f'{where}: incomplete checkpoint, missing {", ".join(missing[:6])}' + (' ...' if len(missing) > 6 else ''))
    return units


# ---------------------------------------------------------------------------

def convert(args):
    if args.arch not in ARCHES:
        fail(f'--arch {args.arch}: convert_resnet knows {", ".join(ARCHES)}')
    if args.source not in ('torchvision', 'timm'):
        fail(f'--source {args.source}: ResNets come from torchvision or timm')
    v2 = args.arch == 'resnetv2_50'
    if v2 and args.source == 'torchvision':
        fail('--arch resnetv2_50 is a timm model: use --source timm')
    if args.checkpoint:
        sd, eps = load_checkpoint(args.checkpoint)
        normalize = 'inception' if v2 else 'imagenet'    # timm resnetv2_50 / torchvision defaults
        where = args.checkpoint
    else:
        sd, eps, normalize = pretrained(args)
        where = f'{args.source} {args.arch}'
    if v2 and 'conv1.weight' in sd:
        fail(f'{where}: this is a post-activation (v1.5) state dict; use --arch resnet50')
    if not v2 and 'stem.conv.weight' in sd:
        fail(f'{where}: this is a pre-activation (timm ResNetV2) state dict; use --source timm --arch resnetv2_50')
    tensors = rename(sd, V2_RULES if v2 else V15_RULES, 'timm ResNetV2' if v2 else 'torchvision', where)
    units = units_of(tensors, v2, where)
    eps = args.bn_eps if args.bn_eps is not None else (eps if eps is not None else 1e-5)
    config = {
        'arch': 'resnet50',
        'variant': 'v2' if v2 else 'v1.5',
        'units': ','.join(str(u) for u in units),
        'input_size': str(args.input_size or 224),
        'normalize': args.normalize or normalize,
        'bn_eps': repr(float(eps)),
        'padding': args.padding,
        'pool_padding': args.pool_padding,
    }
    return tensors, config

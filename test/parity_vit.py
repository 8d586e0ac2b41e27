#!/usr/bin/python3
"""test/parity_vit.py: h2t's ViT against PyTorch (run by `make parity`).

  1. vit_b_16: full-size torchvision ViT-B/16 with random weights (every
     parameter, LayerNorm gains included; test/make_fixtures_vit.py's
     randomize_) -> weights/export.py --source torchvision --checkpoint ->
     `h2t taps --taps all` on 2 images at 224 -> all 54 locations (53 + logits)
     against PyTorch forward hooks, within 1e-4 of each tensor's largest
     magnitude.
  2. jax: a tiny torchvision ViT with tanh GELU and a representation layer,
     written in Google's Flax .npz layout (with the 'opt/target/' prefix of
     some releases) -> --source jax -> h2t taps -> every location against
     PyTorch with the same (tanh) GELU.
  3. timm (only where timm imports; else a SKIP line): a tiny ViT without
     representation layer written as Google .npz and loaded by timm's own
     Flax reader: timm's outputs must match the torchvision model the .npz
     was written from (checks our .npz writer independently of our reader),
     and the model directory converted from the pickled timm model
     (--source timm) must hold bitwise the tensors and config of the one
     converted from the .npz (--source jax); and full-size timm
     vit_base_patch16_224 with random weights, saved as a state dict ->
     --source timm -> h2t taps -> all 54 locations against timm's forward.
Prints one PASS/FAIL line per check with max abs / max relative errors.

  /usr/bin/python3 test/parity_vit.py --h2t ./h2t
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import make_fixtures_vit as ref  # noqa: E402

TOL = 1e-4
failed = 0


def report(ok, line):
    global failed
    failed += not ok
    print(('PASS ' if ok else 'FAIL ') + line, flush=True)


def close(name, got, want, tol=TOL):
    if got.shape != want.shape:
        report(False, f'{name}: shape {list(got.shape)}, PyTorch {list(want.shape)}')
        return
    d = np.abs(got.astype(np.float64) - want.astype(np.float64))
    ref_max = float(np.abs(want).max())
    max_abs = float(d.max()) if d.size else 0.0
    rel = d / np.maximum(np.abs(want), 1e-30)
    ok = bool(np.isfinite(got).all()) and max_abs <= tol * (ref_max if ref_max > 0 else 1.0)
    report(ok, f'{name} n={want.size} max_abs={max_abs:.3g} max_rel={float(rel.max()):.3g} '
               f'max|ref|={ref_max:.3g} tol={tol:g}')


def h2t_taps(h2t, model_dir, images, out, batch=2):
    cmd = [h2t, 'taps', '--model', model_dir, '--images', images, '--out', out, '--taps', 'all',
           '--batch', str(batch), '--quiet']
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        report(False, f'{" ".join(cmd)}: exit {r.returncode}: {r.stderr.strip()}')
        return None
    return {f[:-4]: np.load(os.path.join(out, f)) for f in os.listdir(out) if f.endswith('.npy')}


def compare_all(tag, names, got, want):
    if got is None:
        return
    if sorted(got) != sorted(names):
        report(False, f'{tag}: h2t wrote {len(got)} locations, PyTorch has {len(names)}: '
                      f'{sorted(set(got) ^ set(names))[:6]}')
    for name in names:
        if name in got:
            close(f'{tag} {name}', got[name], want[name])


def export(args, out):
    cmd = [sys.executable, os.path.join(ROOT, 'weights', 'export.py'), '--out', out, '--force'] + args
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        report(False, f'export {" ".join(args)}: {r.stderr.strip()}')
        return False
    return True


# ---------------------------------------------------------------------------

def full_vit_b_16(h2t, tmp):
    import torchvision
    t0 = time.time()
    torch.manual_seed(0)
    model = ref.randomize_(torchvision.models.vit_b_16(weights=None), seed=16)
    ckpt = os.path.join(tmp, 'vit_b_16.pth')
    torch.save(model.state_dict(), ckpt)
    d = os.path.join(tmp, 'vit_b_16')
    if not export(['--source', 'torchvision', '--arch', 'vit_b_16', '--checkpoint', ckpt], d):
        return
    os.remove(ckpt)
    rng = np.random.default_rng(224)
    images = rng.integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    img_path = os.path.join(tmp, 'images224.npy')
    np.save(img_path, images)
    t1 = time.time()
    got = h2t_taps(h2t, d, img_path, os.path.join(tmp, 'taps_b16'))
    t2 = time.time()
    names, want = ref.taps(model, ref.normalize(images, 'imagenet'))
    print(f'vit_b_16: export {t1 - t0:.1f} s, h2t taps (load + 2 images) {t2 - t1:.1f} s, '
          f'PyTorch {time.time() - t2:.1f} s; {len(names)} locations', flush=True)
    compare_all('vit_b_16', names, got, want)


def jax_round_trip(h2t, tmp, images_path, images):
    torch.manual_seed(5)
    model = ref.randomize_(ref.tiny_vit(gelu='tanh'), seed=5)
    npz = os.path.join(tmp, 'tiny_tanh.npz')
    ref.to_jax_npz(model, npz, prefix='opt/target/')
    d = os.path.join(tmp, 'jax_tiny')
    if not export(['--source', 'jax', '--arch', 'vit_tiny', '--checkpoint', npz, '--normalize', 'imagenet'], d):
        return
    _, config = ref.read_model_dir(d)
    report(config.get('gelu') == 'tanh' and config.get('ln_eps') == '1e-06' and config.get('heads') == '4'
           and config.get('representation') == '32',
           f'jax config: gelu {config.get("gelu")}, ln_eps {config.get("ln_eps")}, heads {config.get("heads")}, '
           f'representation {config.get("representation")}')
    got = h2t_taps(h2t, d, images_path, os.path.join(tmp, 'taps_jax'))
    names, want = ref.taps(model, ref.normalize(images, 'imagenet'))
    compare_all('jax', names, got, want)


def timm_checks(h2t, tmp, images, full):
    try:
        import timm
    except ImportError:
        print('SKIP timm: the timm package is not installed (pip install timm) -- unchecked')
        return
    t = ref.TINY
    torch.manual_seed(6)
    tv = ref.randomize_(ref.tiny_vit(gelu='tanh', representation_size=None), seed=6)
    npz = os.path.join(tmp, 'tiny_norep.npz')
    ref.to_jax_npz(tv, npz)
    tm = timm.create_model('vit_base_patch16_224', pretrained=False, img_size=t['image_size'],
                           patch_size=t['patch_size'], embed_dim=t['hidden_dim'], depth=t['num_layers'],
                           num_heads=t['num_heads'], mlp_ratio=t['mlp_dim'] / t['hidden_dim'],
                           num_classes=t['num_classes'], act_layer='gelu_tanh')
    tm.load_pretrained(npz)      # timm's own reader of Google's layout
    tm.eval()
    x = ref.normalize(images, 'imagenet')
    with torch.no_grad():
        names, want = ref.taps(tv, x)
        feats = tm.forward_features(x).numpy()
        logits = tm.forward_head(torch.from_numpy(feats)).numpy()
    close(f'timm {timm.__version__} reading our .npz: encoded_sequence vs torchvision', feats,
          want['encoded_sequence'])
    close(f'timm {timm.__version__} reading our .npz: logits vs torchvision', logits, want['logits'])

    pickled = os.path.join(tmp, 'timm_tiny.pth')
    torch.save(tm, pickled)
    a, b = os.path.join(tmp, 'from_jax'), os.path.join(tmp, 'from_timm')
    if export(['--source', 'jax', '--arch', 'vit_tiny', '--checkpoint', npz], a) and \
            export(['--source', 'timm', '--arch', 'vit_base_patch16_224', '--checkpoint', pickled], b):
        diff = ref.same_model_dirs(a, b)
        report(diff is None, 'timm export (pickled timm model) == jax export (.npz): '
                             + (diff or 'same tensors, bitwise, and same config'))
    if full:
        full_timm(h2t, tmp, timm)


def full_timm(h2t, tmp, timm):
    """Full-size timm vit_base_patch16_224, random weights (LayerNorm gains
    included), saved as a state dict -> --source timm -> every location
    against timm's own forward (hooks)."""
    torch.manual_seed(7)
    model = timm.create_model('vit_base_patch16_224', pretrained=False)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g)
            if name in ('cls_token', 'pos_embed'):
                p.copy_(0.5 * r)
            elif p.ndim == 1 and 'norm' in name:
                p.copy_(1 + 0.2 * r if name.endswith('weight') else 0.1 * r)
            elif p.ndim == 1:
                p.copy_(0.1 * r)
            else:
                p.copy_(r / np.sqrt(p[0].numel()))
    model.eval()
    ckpt = os.path.join(tmp, 'timm_b16.pth')
    torch.save(model.state_dict(), ckpt)
    d = os.path.join(tmp, 'timm_b16')
    if not export(['--source', 'timm', '--arch', 'vit_base_patch16_224', '--checkpoint', ckpt], d):
        return
    os.remove(ckpt)
    _, config = ref.read_model_dir(d)
    report(config.get('normalize') == 'inception' and config.get('gelu') == 'erf' and config.get('heads') == '12',
           f'timm vit_base_patch16_224 config: normalize {config.get("normalize")}, gelu {config.get("gelu")}, '
           f'heads {config.get("heads")}')
    images = np.random.default_rng(225).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    img_path = os.path.join(tmp, 'images224_timm.npy')
    np.save(img_path, images)
    got = h2t_taps(h2t, d, img_path, os.path.join(tmp, 'taps_timm'))
    names, want = ref.timm_taps(model, ref.normalize(images, 'inception'))
    compare_all(f'timm {timm.__version__} vit_base_patch16_224', names, got, want)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--h2t', default='./h2t')
    p.add_argument('--skip-full', action='store_true', help='skip the full-size vit_b_16 run')
    args = p.parse_args()
    h2t = os.path.abspath(args.h2t)
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory(prefix='h2t_parity_vit_') as tmp:
        rng = np.random.default_rng(32)
        images = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
        images_path = os.path.join(tmp, 'images32.npy')
        np.save(images_path, images)
        jax_round_trip(h2t, tmp, images_path, images)
        timm_checks(h2t, tmp, images, not args.skip_full)
        if not args.skip_full:
            full_vit_b_16(h2t, tmp)
    print(f'parity_vit: {failed} failed')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())

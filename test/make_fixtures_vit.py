#!/usr/bin/python3
"""test/make_fixtures_vit.py: the small ViT fixture of test/test_vit.c, and
the PyTorch reference pieces that test/parity_vit.py shares. Offline tool
(PyTorch via /usr/bin/python3); its output is committed, `make test` never
runs it.

It builds torchvision's own VisionTransformer at a tiny size (input 32x32,
patch 8 -> 17 tokens, depth 2, width 64, 4 heads, MLP 128, representation
layer 32, 10 classes) with random weights (every parameter, LayerNorm gains
and biases included, so a mix-up of any two tensors shows), saves its state
dict, converts it with weights/export.py (the real converter path), and
writes

  test/fixtures/vit/model/             config.txt + tensors
  test/fixtures/vit/images.npy         3 uint8 RGB images, already 32x32 (the
                                       TF1 resize is the identity; only the
                                       ImageNet normalization applies)
  test/fixtures/vit/expected/<loc>.npy every location from PyTorch forward
                                       hooks: tokens [n, T, C], vectors [n, C]
  test/fixtures/vit/expected/order.txt the location names in depth order

It also checks, before writing, that the JAX-layout writer below round-trips:
the same model written as Google's .npz and converted with --source jax gives
bitwise the same tensors as the torchvision export (only the config's GELU
differs). Deterministic: fixed seeds, one thread.

  /usr/bin/python3 test/make_fixtures_vit.py
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

MEAN = {'imagenet': (np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)),
        'inception': (np.full(3, 0.5, np.float32), np.full(3, 0.5, np.float32))}

TINY = dict(image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128,
            num_classes=10, representation_size=32)


# ---------------------------------------------------------------------------
# models

def tiny_vit(gelu='erf', **kw):
    import torchvision
    args = dict(TINY)
    args.update(kw)
    model = torchvision.models.VisionTransformer(**args)
    if gelu == 'tanh':
        for layer in model.encoder.layers:
            layer.mlp[1] = torch.nn.GELU(approximate='tanh')
    return model


@torch.no_grad()
def randomize_(model, seed):
    """Every parameter random, at scales that keep every location busy:
    dense/conv weights N(0, 1/fan_in), biases N(0, 0.1^2), LayerNorm gains
    1 + N(0, 0.2^2), class token and position embeddings N(0, 0.5^2)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        r = torch.randn(p.shape, generator=g)
        if name.endswith('class_token') or name.endswith('pos_embedding'):
            p.copy_(0.5 * r)
        elif p.ndim == 1 and 'ln' in name.split('.')[-2]:
            p.copy_(1 + 0.2 * r if name.endswith('weight') else 0.1 * r)
        elif p.ndim == 1:
            p.copy_(0.1 * r)
        else:
            fan_in = p[0].numel()
            p.copy_(r / np.sqrt(fan_in))
    return model.eval()


def normalize(img, how):
    """uint8 [n, H, W, 3] -> float32 [n, 3, H, W] as model.c does."""
    mean, std = MEAN[how]
    x = (img.astype(np.float32) / 255.0 - mean) / std
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


# ---------------------------------------------------------------------------
# the locations, from forward hooks on torchvision's VisionTransformer

def location_names(depth):
    names = ['root_output_with_cls', 'position_embedded_input']
    for i in range(depth):
        names += [f'encoder_{i}_pre_attn', f'encoder_{i}_attn', f'encoder_{i}_mlp_1', f'encoder_{i}_mlp_2']
    return names + ['encoded_sequence', 'cls_embedded', 'pre_logits', 'logits']


@torch.no_grad()
def taps(model, x):
    """{location: float32 numpy [n, ...]} for a batch x [n, 3, S, S]."""
    out = {}

    def keep(name):
        def hook(module, inputs, output=None):
            t = inputs[0] if output is None else output
            t = t[0] if isinstance(t, tuple) else t   # MultiheadAttention -> (out, weights)
            out[name] = t.detach().float().numpy().copy()
        return hook

    hooks = [model.encoder.register_forward_pre_hook(keep('root_output_with_cls')),
             model.encoder.layers.register_forward_pre_hook(keep('position_embedded_input')),
             model.encoder.ln.register_forward_hook(keep('encoded_sequence'))]
    for i, layer in enumerate(model.encoder.layers):
        hooks += [layer.ln_1.register_forward_hook(keep(f'encoder_{i}_pre_attn')),
                  layer.self_attention.register_forward_hook(keep(f'encoder_{i}_attn')),
                  layer.mlp[1].register_forward_hook(keep(f'encoder_{i}_mlp_1')),   # after the GELU
                  layer.mlp[3].register_forward_hook(keep(f'encoder_{i}_mlp_2'))]   # before the residual add
    if hasattr(model.heads, 'act'):
        hooks.append(model.heads.act.register_forward_hook(keep('pre_logits')))
    try:
        out['logits'] = model(x).detach().float().numpy()
    finally:
        for h in hooks:
            h.remove()
    out['cls_embedded'] = out['encoded_sequence'][:, 0].copy()
    if 'pre_logits' not in out:
        out['pre_logits'] = out['cls_embedded']
    names = location_names(len(model.encoder.layers))
    assert sorted(names) == sorted(out), (sorted(names), sorted(out))
    return names, out


@torch.no_grad()
def timm_taps(model, x):
    """The same locations from a timm VisionTransformer (class token, no
    register tokens, Identity norm_pre / LayerScale / fc_norm)."""
    out = {}

    def keep(name, pre=False):
        def hook(module, inputs, output=None):
            t = inputs[0] if pre else output
            out[name] = t.detach().float().numpy().copy()
        return hook

    hooks = [model.patch_embed.register_forward_hook(keep('patches')),
             model.blocks.register_forward_pre_hook(keep('position_embedded_input', pre=True)),
             model.norm.register_forward_hook(keep('encoded_sequence'))]
    for i, b in enumerate(model.blocks):
        hooks += [b.norm1.register_forward_hook(keep(f'encoder_{i}_pre_attn')),
                  b.attn.register_forward_hook(keep(f'encoder_{i}_attn')),
                  b.mlp.act.register_forward_hook(keep(f'encoder_{i}_mlp_1')),
                  b.mlp.fc2.register_forward_hook(keep(f'encoder_{i}_mlp_2'))]
    try:
        out['logits'] = model(x).detach().float().numpy()
    finally:
        for h in hooks:
            h.remove()
    p = out.pop('patches')
    cls = model.cls_token.detach().float().numpy()
    out['root_output_with_cls'] = np.concatenate([np.broadcast_to(cls, (p.shape[0], 1, p.shape[2])), p], axis=1)
    out['cls_embedded'] = out['encoded_sequence'][:, 0].copy()
    out['pre_logits'] = out['cls_embedded']
    names = location_names(len(model.blocks))
    assert sorted(names) == sorted(out), (sorted(names), sorted(out))
    return names, out


# ---------------------------------------------------------------------------
# Google's Flax .npz layout (google-research/vision_transformer), written
# from a torchvision model: the inverse of weights/convert_vit.py's reader

def to_jax_npz(model, path, prefix=''):
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    C = model.hidden_dim
    H = model.encoder.layers[0].self_attention.num_heads
    dh = C // H
    w = {'embedding/kernel': sd['conv_proj.weight'].transpose(2, 3, 1, 0),    # HWIO
         'embedding/bias': sd['conv_proj.bias'],
         'cls': sd['class_token'],                                              # [1, 1, C]
         'Transformer/posembed_input/pos_embedding': sd['encoder.pos_embedding'],   # [1, T, C]
         'Transformer/encoder_norm/scale': sd['encoder.ln.weight'],
         'Transformer/encoder_norm/bias': sd['encoder.ln.bias'],
         'head/kernel': sd['heads.head.weight'].T,
         'head/bias': sd['heads.head.bias']}
    if 'heads.pre_logits.weight' in sd:
        w['pre_logits/kernel'] = sd['heads.pre_logits.weight'].T
        w['pre_logits/bias'] = sd['heads.pre_logits.bias']
    for i in range(len(model.encoder.layers)):
        s = f'encoder.layers.encoder_layer_{i}.'
        p = f'Transformer/encoderblock_{i}/'
        a = p + 'MultiHeadDotProductAttention_1/'
        wi, bi = sd[s + 'self_attention.in_proj_weight'], sd[s + 'self_attention.in_proj_bias']
        for j, n in enumerate(('query', 'key', 'value')):
            w[a + n + '/kernel'] = wi[j * C:(j + 1) * C].T.reshape(C, H, dh)   # [C, heads, dh]
            w[a + n + '/bias'] = bi[j * C:(j + 1) * C].reshape(H, dh)
        w[a + 'out/kernel'] = sd[s + 'self_attention.out_proj.weight'].T.reshape(H, dh, C)
        w[a + 'out/bias'] = sd[s + 'self_attention.out_proj.bias']
        w[p + 'LayerNorm_0/scale'], w[p + 'LayerNorm_0/bias'] = sd[s + 'ln_1.weight'], sd[s + 'ln_1.bias']
        w[p + 'LayerNorm_2/scale'], w[p + 'LayerNorm_2/bias'] = sd[s + 'ln_2.weight'], sd[s + 'ln_2.bias']
        w[p + 'MlpBlock_3/Dense_0/kernel'], w[p + 'MlpBlock_3/Dense_0/bias'] = sd[s + 'mlp.0.weight'].T, sd[s + 'mlp.0.bias']
        w[p + 'MlpBlock_3/Dense_1/kernel'], w[p + 'MlpBlock_3/Dense_1/bias'] = sd[s + 'mlp.3.weight'].T, sd[s + 'mlp.3.bias']
    np.savez(path, **{prefix + k: np.ascontiguousarray(v) for k, v in w.items()})


# ---------------------------------------------------------------------------
# running weights/export.py, reading a model directory

def export(args, out):
    cmd = [sys.executable, os.path.join('weights', 'export.py'), '--out', out, '--force'] + args
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        sys.exit(f'export failed: {" ".join(cmd)}\n{r.stderr}')
    return r.stdout.strip().splitlines()[-1]


def read_model_dir(d):
    """({name: array}, {key: value}) of a model directory."""
    tensors = {f[:-4]: np.load(os.path.join(d, f)) for f in os.listdir(d) if f.endswith('.npy')}
    config = {}
    with open(os.path.join(d, 'config.txt')) as f:
        for line in f:
            line = line.split('#')[0].strip()
            if line:
                k, v = (s.strip() for s in line.split('=', 1))
                config[k] = v
    return tensors, config


def same_model_dirs(a, b, ignore_keys=()):
    """None if both directories hold bitwise-equal tensors and equal configs
    (but ignore_keys), else a description of the first difference."""
    ta, ca = read_model_dir(a)
    tb, cb = read_model_dir(b)
    if sorted(ta) != sorted(tb):
        return f'tensor names differ: {sorted(set(ta) ^ set(tb))}'
    for n in sorted(ta):
        if ta[n].shape != tb[n].shape or ta[n].tobytes() != tb[n].tobytes():
            return f'{n}: differs (shapes {ta[n].shape} vs {tb[n].shape})'
    for k in sorted(set(ca) | set(cb)):
        if k not in ignore_keys and ca.get(k) != cb.get(k):
            return f'config {k}: {ca.get(k)} vs {cb.get(k)}'
    return None


# ---------------------------------------------------------------------------

def main():
    torch.set_num_threads(1)
    torch.manual_seed(3)
    model = randomize_(tiny_vit(), seed=3)
    d = os.path.join(HERE, 'fixtures', 'vit')
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, 'expected'))
    ckpt = os.path.join('test', 'fixtures', 'vit.pth')      # relative: config.txt quotes the command
    torch.save(model.state_dict(), os.path.join(ROOT, ckpt))
    try:
        print(export(['--source', 'torchvision', '--arch', 'vit_tiny', '--heads', '4', '--checkpoint', ckpt],
                     os.path.join('test', 'fixtures', 'vit', 'model')))
    finally:
        os.remove(os.path.join(ROOT, ckpt))

    # the JAX layout round trip: same tensors through --source jax
    with tempfile.TemporaryDirectory() as tmp:
        npz = os.path.join(tmp, 'tiny.npz')
        to_jax_npz(model, npz)
        export(['--source', 'jax', '--arch', 'vit_tiny', '--checkpoint', npz], os.path.join(tmp, 'jax'))
        diff = same_model_dirs(os.path.join(d, 'model'), os.path.join(tmp, 'jax'),
                               ignore_keys=('gelu', 'normalize'))
        if diff:
            sys.exit(f'JAX round trip: {diff}')
        print('JAX round trip: the same tensors')

    rng = np.random.default_rng(20220718)
    images = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    np.save(os.path.join(d, 'images.npy'), images)
    names, out = taps(model, normalize(images, 'imagenet'))
    for name in names:
        np.save(os.path.join(d, 'expected', name + '.npy'), np.ascontiguousarray(out[name], dtype=np.float32))
    with open(os.path.join(d, 'expected', 'order.txt'), 'w') as f:
        f.write('\n'.join(names) + '\n')
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)
    print(f'{d}: {len(names)} locations, {size / 1024:.0f} KiB; max |x|: '
          + ', '.join(f'{n} {np.abs(out[n]).max():.3g}' for n in ('position_embedded_input', 'encoder_1_attn',
                                                                 'encoder_1_mlp_1', 'pre_logits', 'logits')))


if __name__ == '__main__':
    main()

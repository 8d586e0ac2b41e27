"""weights/convert_vit.py: Vision Transformer checkpoints -> the canonical
tensors and config of vit.c (weights/README, section ViT, describes both).
Called by weights/export.py, which parses the flags and writes the model
directory.

Sources:
  --source torchvision --arch vit_b_16     torchvision's VisionTransformer
                                           (pretrained IMAGENET1K_V1 without
                                           --checkpoint: needs internet)
  --source timm --arch vit_base_patch16_224
                                           timm's VisionTransformer (timm is
                                           imported only here); --checkpoint
                                           may be a timm state dict or a
                                           Google .npz that timm loads
  --source jax --checkpoint ViT-B_16.npz   the original Google checkpoints
                                           (google-research/vision_transformer);
                                           numpy only
A torchvision/timm --checkpoint may hold a state_dict, {'state_dict': ...} /
{'model': ...}, or a whole pickled nn.Module (which also carries the number
of heads, LayerNorm eps and GELU flavour). For a state dict the heads come
from --arch (or --heads); every width comes from the tensor shapes.

Framework quirks resolved here, so that vit.c sees one layout:
  - patch embedding: PyTorch OIHW conv -> HWIO [P, P, 3, C]; Flax is HWIO
  - dense weights: PyTorch [out, in] -> [in, out]; Flax kernels are [in, out]
  - attention: torchvision in_proj [3C, C] / timm qkv [3C, C] (rows q, k, v)
    -> qkv.w [C, 3C]; Flax query/key/value kernels [C, heads, C/heads] and
    biases [heads, C/heads] flattened head-major and concatenated q, k, v;
    Flax out kernel [heads, C/heads, C] -> [C, C]
  - class token [1, 1, C] -> [C]; position embeddings [1, T, C] -> [T, C]
    (token 0 is the class token's, then patches row-major: the same in all
    three sources)
  - GELU: exact (erf) in PyTorch models (read from the modules of a pickled
    model), tanh-approximate for Flax (jax.nn.gelu's default)
  - LayerNorm eps: 1e-6 in all three (read from the modules when present)
  - representation layer (dense + tanh before the head): torchvision
    heads.pre_logits, old timm pre_logits.fc, Flax pre_logits
  - timm LayerScale (ls1/ls2 gamma), when present, is folded into the out
    and mlp2 dense layers
  - normalization: torchvision ImageNet mean/std, Flax [-1, 1] (inception),
    timm from the model's pretrained config
"""
import math
import sys

import numpy as np

# torchvision's ViTs: (heads, width, patch); heads are the one knob the shapes do not tell
TORCHVISION_ARCHES = {'vit_b_16': (12, 768, 16), 'vit_b_32': (12, 768, 32), 'vit_l_16': (16, 1024, 16),
                      'vit_l_32': (16, 1024, 32), 'vit_h_14': (16, 1280, 14)}
# model.h holds 128 locations: 2 + 4 per block + 4 (ViT-L: 24 blocks; ViT-H: 32 do not fit)
MAX_DEPTH = 30


def fail(msg):
    print(f'export: {msg}', file=sys.stderr)
    sys.exit(1)


def add_arguments(parser):
    g = parser.add_argument_group('ViT options')
    g.add_argument('--heads', type=int, default=None,
                   help='attention heads (default: from a pickled model, the .npz shapes, or --arch)')
    g.add_argument('--gelu', choices=('erf', 'tanh'), default=None,
                   help='GELU flavour (default: erf for PyTorch models unless the model says tanh; tanh for jax)')
    g.add_argument('--ln-eps', type=float, default=None,
                   help='LayerNorm epsilon (default: from a pickled model, else 1e-6)')


# ---------------------------------------------------------------------------
# the canonical layout (one place that checks every shape)

def canonical(src, where):
    """src: dict with numpy arrays already in canonical layout:
    patch_w [P,P,3,C], patch_b [C], cls [C], pos [T,C], blocks: list of dicts
    (ln1_g ln1_b qkv_w qkv_b out_w out_b ln2_g ln2_b mlp1_w mlp1_b mlp2_w
    mlp2_b), norm_g, norm_b, rep_w/rep_b (or None), head_w [R|C,K], head_b [K].
    Returns (tensors, dims)."""
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)   # noqa: E731
    P, P2, three, C = src['patch_w'].shape
    if P != P2 or three != 3:
        fail(f'{where}: patch embedding {list(src["patch_w"].shape)}: expected [P, P, 3, C]')
    T = src['pos'].shape[0]
    G = math.isqrt(T - 1) if T > 1 else 0
    if src['pos'].shape != (T, C) or G * G != T - 1:
        fail(f'{where}: position embeddings {list(src["pos"].shape)}: expected [1 + G*G, {C}]')
    L = len(src['blocks'])
    if L == 0:
        fail(f'{where}: no encoder blocks found')
    if L > MAX_DEPTH:
        fail(f'{where}: depth {L}: h2t holds at most {MAX_DEPTH} encoder blocks (MODEL_MAX_LOCATIONS in model.h)')
    M = src['blocks'][0]['mlp1_w'].shape[1]
    R = src['rep_w'].shape[1] if src.get('rep_w') is not None else 0
    K = src['head_b'].shape[0]
    want = {'patch_embed.w': (P, P, 3, C), 'patch_embed.b': (C,), 'cls': (C,), 'pos_embed': (T, C),
            'final_ln.gamma': (C,), 'final_ln.beta': (C,), 'logits.w': (R or C, K), 'logits.b': (K,)}
    t = {'patch_embed.w': src['patch_w'], 'patch_embed.b': src['patch_b'], 'cls': src['cls'],
         'pos_embed': src['pos'], 'final_ln.gamma': src['norm_g'], 'final_ln.beta': src['norm_b'],
         'logits.w': src['head_w'], 'logits.b': src['head_b']}
    if R:
        want['pre_logits.w'], want['pre_logits.b'] = (C, R), (R,)
        t['pre_logits.w'], t['pre_logits.b'] = src['rep_w'], src['rep_b']
    parts = {'ln1.gamma': ('ln1_g', (C,)), 'ln1.beta': ('ln1_b', (C,)),
             'qkv.w': ('qkv_w', (C, 3 * C)), 'qkv.b': ('qkv_b', (3 * C,)),
             'out.w': ('out_w', (C, C)), 'out.b': ('out_b', (C,)),
             'ln2.gamma': ('ln2_g', (C,)), 'ln2.beta': ('ln2_b', (C,)),
             'mlp1.w': ('mlp1_w', (C, M)), 'mlp1.b': ('mlp1_b', (M,)),
             'mlp2.w': ('mlp2_w', (M, C)), 'mlp2.b': ('mlp2_b', (C,))}
    for i, b in enumerate(src['blocks']):
        for name, (key, shape) in parts.items():
            want[f'encoder_{i}.{name}'] = shape
            t[f'encoder_{i}.{name}'] = b[key]
    for name, shape in want.items():
        if tuple(t[name].shape) != shape:
            fail(f'{where}: {name}: expected shape {list(shape)}, found {list(t[name].shape)}')
    dims = {'patch': P, 'width': C, 'depth': L, 'mlp_dim': M, 'representation': R, 'classes': K,
            'input_size': G * P}
    return {k: f32(v) for k, v in t.items()}, dims


def make_config(dims, heads, gelu, eps, normalize, args, where):
    C = dims['width']
    if not heads or C % heads:
        fail(f'{where}: {heads} heads do not divide the width {C} (pass --heads)')
    size = dims['input_size']
    if args.input_size is not None and args.input_size != size:
        fail(f'--input-size {args.input_size}: the position embeddings are for {size}x{size} '
             f'({(size // dims["patch"]) ** 2} patches); resizing them is not supported')
    return {
        'arch': 'vit',
        'input_size': str(size),
        'normalize': args.normalize or normalize,
        'patch': str(dims['patch']),
        'width': str(C),
        'depth': str(dims['depth']),
        'heads': str(heads),
        'mlp_dim': str(dims['mlp_dim']),
        'ln_eps': repr(float(args.ln_eps if getattr(args, 'ln_eps', None) is not None else eps)),
        'gelu': getattr(args, 'gelu', None) or gelu,
        'representation': str(dims['representation']),
        'classes': str(dims['classes']),
    }


# ---------------------------------------------------------------------------
# PyTorch models (torchvision, timm): state dict + what the modules say

def torch_load(path):
    import torch
    if path.endswith('.npz'):
        fail(f'{path}: an .npz archive: use --source jax (Google\'s Flax layout) or --source timm')
    try:
        # weights_only=False: a pickled nn.Module is accepted (torch >= 2.6 refuses it by default);
        # unpickling runs code from the file, as weights/README says: use files you trust
        try:
            return torch.load(path, map_location='cpu', weights_only=False)
        except TypeError:   # torch < 1.13 has no weights_only
            return torch.load(path, map_location='cpu')
    except Exception as e:  # noqa: BLE001 - any unpickling problem is the file's
        fail(f'{path}: cannot load with torch.load: {e}')


def state_dict_of(obj, where):
    """{key: float32 numpy} from a module, a state dict or a wrapper dict."""
    import torch
    if isinstance(obj, torch.nn.Module):
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
        if hasattr(v, 'detach'):
            k = k[len('module.'):] if k.startswith('module.') else k
            sd[k] = v.detach().cpu().float().numpy()
    return sd


def module_facts(model, where):
    """(heads, gelu, eps) as a PyTorch ViT module says; None where it is silent."""
    import torch
    heads = None
    for m in model.modules():
        if isinstance(m, torch.nn.MultiheadAttention) or (hasattr(m, 'num_heads') and hasattr(m, 'qkv')):
            heads = m.num_heads
            break
    eps = {m.eps for m in model.modules() if isinstance(m, torch.nn.LayerNorm)}
    if len(eps) > 1:
        fail(f'{where}: LayerNorms use different eps {sorted(eps)}; vit.c takes one')
    kinds = set()
    for m in model.modules():
        if isinstance(m, torch.nn.GELU):
            kinds.add('tanh' if getattr(m, 'approximate', 'none') == 'tanh' else 'erf')
        elif type(m).__name__ in ('GELUTanh', 'QuickGELU'):
            kinds.add('tanh' if type(m).__name__ == 'GELUTanh' else 'quick')
    if len(kinds) > 1 or 'quick' in kinds:
        fail(f'{where}: MLP activations {sorted(kinds)}: vit.c has one GELU, exact or tanh')
    return heads, (kinds.pop() if kinds else None), (eps.pop() if eps else None)


def take(sd, key, where):
    if key not in sd:
        fail(f'{where}: missing tensor {key}')
    return sd.pop(key)


def check_empty(sd, where, what):
    left = sorted(sd)
    if left:
        fail(f'{where}: {len(left)} tensors are not part of a {what}: '
             + ', '.join(left[:6]) + (' ...' if len(left) > 6 else ''))


def from_torchvision_sd(sd, where):
    """torchvision VisionTransformer state dict -> canonical src dict."""
    sd = dict(sd)
    src = {'patch_w': take(sd, 'conv_proj.weight', where).transpose(2, 3, 1, 0),
           'patch_b': take(sd, 'conv_proj.bias', where),
           'cls': take(sd, 'class_token', where).reshape(-1),
           'pos': take(sd, 'encoder.pos_embedding', where)[0],
           'blocks': []}
    i = 0
    while f'encoder.layers.encoder_layer_{i}.ln_1.weight' in sd:
        p = f'encoder.layers.encoder_layer_{i}.'
        t = lambda k: take(sd, p + k, where)   # noqa: E731
        # torchvision >= 0.13 names the MLP's linears mlp.0 / mlp.3, older mlp.linear_1 / linear_2
        l1, l2 = ('mlp.0', 'mlp.3') if p + 'mlp.0.weight' in sd else ('mlp.linear_1', 'mlp.linear_2')
        src['blocks'].append({
            'ln1_g': t('ln_1.weight'), 'ln1_b': t('ln_1.bias'),
            'qkv_w': t('self_attention.in_proj_weight').T, 'qkv_b': t('self_attention.in_proj_bias'),
            'out_w': t('self_attention.out_proj.weight').T, 'out_b': t('self_attention.out_proj.bias'),
            'ln2_g': t('ln_2.weight'), 'ln2_b': t('ln_2.bias'),
            'mlp1_w': t(l1 + '.weight').T, 'mlp1_b': t(l1 + '.bias'),
            'mlp2_w': t(l2 + '.weight').T, 'mlp2_b': t(l2 + '.bias')})
        i += 1
    src['norm_g'], src['norm_b'] = take(sd, 'encoder.ln.weight', where), take(sd, 'encoder.ln.bias', where)
    if 'heads.pre_logits.weight' in sd:
        src['rep_w'] = take(sd, 'heads.pre_logits.weight', where).T
        src['rep_b'] = take(sd, 'heads.pre_logits.bias', where)
    src['head_w'], src['head_b'] = take(sd, 'heads.head.weight', where).T, take(sd, 'heads.head.bias', where)
    check_empty(sd, where, 'torchvision VisionTransformer')
    return src


def from_timm_sd(sd, where):
    """timm VisionTransformer state dict -> canonical src dict."""
    sd = dict(sd)
    src = {'patch_w': take(sd, 'patch_embed.proj.weight', where).transpose(2, 3, 1, 0),
           'patch_b': take(sd, 'patch_embed.proj.bias', where),
           'cls': take(sd, 'cls_token', where).reshape(-1),
           'pos': take(sd, 'pos_embed', where)[0],
           'blocks': []}
    C = src['cls'].shape[0]
    i = 0
    while f'blocks.{i}.norm1.weight' in sd:
        p = f'blocks.{i}.'
        t = lambda k: take(sd, p + k, where)   # noqa: E731
        b = {'ln1_g': t('norm1.weight'), 'ln1_b': t('norm1.bias'),
             'qkv_w': t('attn.qkv.weight').T,
             'qkv_b': sd.pop(p + 'attn.qkv.bias', np.zeros(3 * C, np.float32)),   # qkv_bias=False models
             'out_w': t('attn.proj.weight').T, 'out_b': t('attn.proj.bias'),
             'ln2_g': t('norm2.weight'), 'ln2_b': t('norm2.bias'),
             'mlp1_w': t('mlp.fc1.weight').T, 'mlp1_b': t('mlp.fc1.bias'),
             'mlp2_w': t('mlp.fc2.weight').T, 'mlp2_b': t('mlp.fc2.bias')}
        # LayerScale: gamma * (x W + b) = x (W * gamma) + b * gamma
        for ls, w, bias in (('ls1.gamma', 'out_w', 'out_b'), ('ls2.gamma', 'mlp2_w', 'mlp2_b')):
            if p + ls in sd:
                g = sd.pop(p + ls)
                b[w], b[bias] = b[w] * g[None, :], b[bias] * g
        src['blocks'].append(b)
        i += 1
    src['norm_g'], src['norm_b'] = take(sd, 'norm.weight', where), take(sd, 'norm.bias', where)
    if 'pre_logits.fc.weight' in sd:   # timm < 0.6 with a representation layer
        src['rep_w'] = take(sd, 'pre_logits.fc.weight', where).T
        src['rep_b'] = take(sd, 'pre_logits.fc.bias', where)
    if 'head.weight' not in sd:
        fail(f'{where}: no classifier (head.weight): export the model with its head (num_classes > 0)')
    src['head_w'], src['head_b'] = take(sd, 'head.weight', where).T, take(sd, 'head.bias', where)
    check_empty(sd, where, 'class-token ViT that vit.c runs (no fc_norm, register tokens, qk-norm, ...)')
    return src


def torchvision_model(args):
    """(state dict, heads, gelu, eps, where) for --source torchvision."""
    import torch
    arch = args.arch
    if args.checkpoint:
        where = args.checkpoint
        obj = torch_load(where)
        if isinstance(obj, torch.nn.Module):
            heads, gelu, eps = module_facts(obj, where)
            return state_dict_of(obj, where), heads, gelu, eps, where
        sd = state_dict_of(obj, where)
        if arch in TORCHVISION_ARCHES and getattr(args, 'heads', None) is None:
            heads, width, patch = TORCHVISION_ARCHES[arch]
            found = sd['conv_proj.weight'].shape if 'conv_proj.weight' in sd else None
            if found is not None and (found[0], found[2]) != (width, patch):
                fail(f'{where}: width {found[0]}, patch {found[2]}: not torchvision {arch} (width {width}, patch '
                     f'{patch}); for another size pass --heads N')
            return sd, heads, None, None, where
        return sd, None, None, None, where
    if arch not in TORCHVISION_ARCHES:
        fail(f'--arch {arch}: torchvision has {", ".join(TORCHVISION_ARCHES)}')
    import torchvision
    where = f'torchvision {arch}'
    model = getattr(torchvision.models, arch)(weights='IMAGENET1K_V1')   # downloads once (needs internet)
    heads, gelu, eps = module_facts(model, where)
    return state_dict_of(model, where), heads, gelu, eps, where


def timm_model(args):
    """(state dict, heads, gelu, eps, normalize, where) for --source timm."""
    try:
        import timm
        import torch
    except ImportError:
        fail('--source timm needs the timm package (pip install timm)')
    where = args.checkpoint or f'timm {args.arch}'
    if args.checkpoint and not args.checkpoint.endswith('.npz'):
        obj = torch_load(args.checkpoint)
        if isinstance(obj, torch.nn.Module):
            model = obj
        else:
            sd = state_dict_of(obj, where)
            if 'head.weight' not in sd or 'pos_embed' not in sd:
                fail(f'{where}: not a timm ViT state dict (no head.weight / pos_embed)')
            K, T = sd['head.weight'].shape[0], sd['pos_embed'].shape[1]
            try:
                model = timm.create_model(args.arch, pretrained=False, num_classes=K)
                grid = model.patch_embed.grid_size
                if 1 + grid[0] * grid[1] != T:
                    fail(f'{where}: {T} position embeddings, but timm {args.arch} has {1 + grid[0] * grid[1]}')
                model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
            except (RuntimeError, KeyError) as e:
                fail(f'{where}: does not load into timm {args.arch}: {str(e).splitlines()[0]}')
    elif args.checkpoint:     # a Google .npz, loaded by timm's own Flax mapping
        K = None
        with np.load(args.checkpoint) as z:
            for key in ('head/bias', 'opt/target/head/bias'):
                if key in z:
                    K = z[key].shape[-1]
        model = timm.create_model(args.arch, pretrained=False, **({'num_classes': K} if K else {}))
        model.load_pretrained(args.checkpoint)
    else:
        model = timm.create_model(args.arch, pretrained=True)   # downloads once (needs internet)
    if getattr(model, 'global_pool', 'token') != 'token' or getattr(model, 'num_prefix_tokens', 1) != 1 \
            or getattr(model, 'no_embed_class', False) or getattr(model, 'cls_token', None) is None:
        fail(f'{where}: vit.c runs class-token ViTs (global_pool "token", one prefix token, class token '
             'position-embedded)')
    heads, gelu, eps = module_facts(model, where)
    return state_dict_of(model, where), heads, gelu, eps, normalize_of(model, where), where


def normalize_of(model, where):
    cfg = getattr(model, 'pretrained_cfg', None) or {}
    mean = tuple(round(float(v), 3) for v in cfg.get('mean', (0.5, 0.5, 0.5)))
    if mean == (0.485, 0.456, 0.406):
        return 'imagenet'
    if mean == (0.5, 0.5, 0.5):
        return 'inception'
    fail(f'{where}: input mean {mean} is neither ImageNet\'s nor [-1, 1]; pass --normalize')


# ---------------------------------------------------------------------------
# Google's Flax .npz (google-research/vision_transformer)

def from_jax_npz(path):
    """(canonical src dict, heads, where). Key layout (prefix '' or
    'opt/target/'): embedding/{kernel,bias}, cls, Transformer/posembed_input/
    pos_embedding, Transformer/encoderblock_{i}/{LayerNorm_0, LayerNorm_2,
    MultiHeadDotProductAttention_1/{query,key,value,out}, MlpBlock_3/Dense_{0,1}},
    Transformer/encoder_norm, pre_logits (optional), head."""
    where = path
    try:
        z = np.load(path)
        w = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - any parsing problem is the file's
        fail(f'{path}: cannot read as an .npz archive: {e}')
    prefix = 'opt/target/' if 'opt/target/embedding/kernel' in w else ''
    if 'params/embedding/kernel' in w or 'params/img/embedding/kernel' in w:
        fail(f'{path}: a big_vision checkpoint; only the original vision_transformer layout is supported')
    if prefix + 'conv_root/kernel' in w:
        fail(f'{path}: a hybrid ResNet+ViT checkpoint; vit.c runs plain ViTs')
    w = {k[len(prefix):]: v for k, v in w.items() if k.startswith(prefix)}
    if 'embedding/kernel' not in w:
        fail(f'{path}: no embedding/kernel: not a ViT checkpoint of the original vision_transformer layout')
    t = lambda k: take(w, k, where).astype(np.float32)   # noqa: E731
    src = {'patch_w': t('embedding/kernel'), 'patch_b': t('embedding/bias'),
           'cls': t('cls').reshape(-1),
           'pos': t('Transformer/posembed_input/pos_embedding')[0], 'blocks': []}
    heads = None
    i = 0
    while f'Transformer/encoderblock_{i}/LayerNorm_0/scale' in w:
        p = f'Transformer/encoderblock_{i}/'
        a = p + 'MultiHeadDotProductAttention_1/'
        q, k, v = (t(a + n + '/kernel') for n in ('query', 'key', 'value'))   # [C, heads, dh]
        if q.ndim != 3 or k.shape != q.shape or v.shape != q.shape:
            fail(f'{where}: {a}query/kernel: expected [C, heads, C/heads], found {list(q.shape)}')
        C, H, dh = q.shape
        heads = heads or H
        if H != heads:
            fail(f'{where}: block {i} has {H} heads, block 0 {heads}')
        qb, kb, vb = (t(a + n + '/bias').reshape(-1) for n in ('query', 'key', 'value'))   # [heads, dh]
        src['blocks'].append({
            'ln1_g': t(p + 'LayerNorm_0/scale'), 'ln1_b': t(p + 'LayerNorm_0/bias'),
            'qkv_w': np.concatenate([q.reshape(C, H * dh), k.reshape(C, H * dh), v.reshape(C, H * dh)], axis=1),
            'qkv_b': np.concatenate([qb, kb, vb]),
            'out_w': t(a + 'out/kernel').reshape(H * dh, -1),                      # [heads, dh, C]
            'out_b': t(a + 'out/bias'),
            'ln2_g': t(p + 'LayerNorm_2/scale'), 'ln2_b': t(p + 'LayerNorm_2/bias'),
            'mlp1_w': t(p + 'MlpBlock_3/Dense_0/kernel'), 'mlp1_b': t(p + 'MlpBlock_3/Dense_0/bias'),
            'mlp2_w': t(p + 'MlpBlock_3/Dense_1/kernel'), 'mlp2_b': t(p + 'MlpBlock_3/Dense_1/bias')})
        i += 1
    src['norm_g'], src['norm_b'] = t('Transformer/encoder_norm/scale'), t('Transformer/encoder_norm/bias')
    if 'pre_logits/kernel' in w:
        src['rep_w'], src['rep_b'] = t('pre_logits/kernel'), t('pre_logits/bias')
    src['head_w'], src['head_b'] = t('head/kernel'), t('head/bias')
    check_empty(w, where, 'ViT checkpoint of the original layout')
    return src, heads, where


# ---------------------------------------------------------------------------

def convert(args):
    if args.source == 'jax':
        if not args.checkpoint:
            fail('--source jax needs --checkpoint FILE.npz (e.g. ViT-B_16.npz from the vision_transformer release)')
        src, heads, where = from_jax_npz(args.checkpoint)
        gelu, eps, normalize = 'tanh', 1e-6, 'inception'
    elif args.source == 'torchvision':
        sd, heads, gelu, eps, where = torchvision_model(args)
        src = from_torchvision_sd(sd, where)
        normalize = 'imagenet'
    elif args.source == 'timm':
        if not args.arch:
            fail('--source timm needs --arch (e.g. vit_base_patch16_224)')
        sd, heads, gelu, eps, normalize, where = timm_model(args)
        src = from_timm_sd(sd, where)
    else:
        fail(f'--source {args.source}: ViTs come from torchvision, timm or jax')
    if getattr(args, 'heads', None) is not None:
        heads = args.heads
    if heads is None:
        fail(f'{where}: the number of heads is unknown for --arch {args.arch}: pass --heads N')
    tensors, dims = canonical(src, where)
    config = make_config(dims, heads, gelu or 'erf', eps if eps is not None else 1e-6, normalize, args, where)
    return tensors, config

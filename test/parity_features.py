#!/usr/bin/python3
"""test/parity_features.py: `h2t features` against PyTorch + numpy, run by
`make parity`.

For full-size torchvision ResNet-50 (random weights, random BatchNorm
statistics) and ViT-B/16 (random weights), seeded:
  1. export the model with weights/export.py --checkpoint (once per model);
  2. run `h2t features` on 2 random images at several target sizes from one
     pass (ResNet-50: T = 512, 8192, 40000; ViT-B/16: T = 768, 15360, 32448);
  3. compute every default location with PyTorch forward hooks (docs/ALGORITHM.md
     §2), pool and normalize it with the numpy implementation of
     §4-§5 below (written from docs/ALGORITHM.md, not from pooling.c), and
     compare each location's slice: max |h2t - ref| <= 1e-4 * max |ref| of
     the slice; the layout's names, offsets and dims exactly; D exactly.
Prints PASS/FAIL lines with the measured numbers (worst location per T).
Usage: /usr/bin/python3 test/parity_features.py [--h2t ./h2t] [--keep DIR]
       [--only resnet50|vit_b_16]"""
import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TOL = 1e-4
NIMG = 2


def report(ok, msg):
    print(("PASS " if ok else "FAIL ") + "parity_features: " + msg, flush=True)


# ---------------------------------------------------------------------------
# docs/ALGORITHM.md §4 and §5 in numpy (float32 means, as the official TF code)

def pool_np(x, T):
    """x: [N, H, W, C], [N, Tk, C] or [N, C] -> ([N, dim], pool)."""
    N = x.shape[0]
    C = x.shape[-1]
    if x.ndim == 2:
        return x.astype(np.float32), -1
    if x.ndim == 4:
        H = x.shape[1]
        p = 0
        if C < T:
            n = int(math.sqrt(T // C))
            p = H // n
        if p == 0:
            return x.mean(axis=(1, 2), dtype=np.float32), 0
        g = H // p
        y = x[:, :g * p, :g * p, :].reshape(N, g, p, g, p, C).mean(axis=(2, 4), dtype=np.float32)
        return y.reshape(N, -1), p
    Tk = x.shape[1]
    p = 0
    if C < T:
        groups = T / C
        p = int(Tk / groups)
    if p == 0:
        return x.mean(axis=1, dtype=np.float32), 0
    g = Tk // p
    y = x[:, :g * p, :].reshape(N, g, p, C).mean(axis=2, dtype=np.float32)
    return y.reshape(N, -1), p


def normalize_np(y):
    n = np.sqrt((y.astype(np.float64) ** 2).sum(axis=1, keepdims=True))
    return np.where(n > 0, y / np.where(n > 0, n, 1), 0).astype(np.float32)


# ---------------------------------------------------------------------------
# Locations with forward hooks (docs/ALGORITHM.md §2), channels last

def nhwc(t):
    t = t.detach()
    return (t.permute(0, 2, 3, 1) if t.ndim == 4 else t).contiguous().numpy().astype(np.float32)


def resnet_locations(net, x):
    out = []
    hooks = []

    def pre(name):
        def f(mod, inp):
            out.append((name, nhwc(inp[0])))
        return f

    def post(name, fn=lambda o: o):
        def f(mod, inp, o):
            out.append((name, nhwc(fn(o))))
        return f

    hooks.append(net.maxpool.register_forward_hook(post("after_root")))
    for i, layer in enumerate([net.layer1, net.layer2, net.layer3, net.layer4]):
        for k, unit in enumerate(layer):
            base = f"block{i + 1}_unit{k + 1}"
            hooks.append(unit.conv1.register_forward_pre_hook(pre(base + "_layer0")))
            hooks.append(unit.conv2.register_forward_pre_hook(pre(base + "_layer1")))
            hooks.append(unit.conv3.register_forward_pre_hook(pre(base + "_layer2")))
    hooks.append(net.layer4.register_forward_hook(post("pre_logits_pre_pooling")))
    hooks.append(net.avgpool.register_forward_hook(post("pre_logits", lambda o: o.flatten(1))))
    hooks.append(net.fc.register_forward_hook(post("logits")))
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    return out


def vit_locations(net, x):
    out = []
    hooks = []
    enc = net.encoder

    def pre(name):
        def f(mod, inp):
            out.append((name, nhwc(inp[0])))
        return f

    def post(name, fn=lambda o: o):
        def f(mod, inp, o):
            out.append((name, nhwc(fn(o))))
        return f

    hooks.append(enc.register_forward_pre_hook(pre("root_output_with_cls")))
    hooks.append(enc.layers.register_forward_pre_hook(pre("position_embedded_input")))
    for i, blk in enumerate(enc.layers):
        hooks.append(blk.ln_1.register_forward_hook(post(f"encoder_{i}_pre_attn")))
        hooks.append(blk.self_attention.register_forward_hook(post(f"encoder_{i}_attn", lambda o: o[0])))
        hooks.append(blk.mlp[1].register_forward_hook(post(f"encoder_{i}_mlp_1")))
        hooks.append(blk.mlp[3].register_forward_hook(post(f"encoder_{i}_mlp_2")))
    hooks.append(enc.ln.register_forward_hook(post("encoded_sequence")))
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    seq = dict(out)["encoded_sequence"]
    out.append(("cls_embedded", seq[:, 0, :].copy()))
    out.append(("pre_logits", seq[:, 0, :].copy()))  # no representation layer in torchvision's ViT-B/16
    return out


# ---------------------------------------------------------------------------

def preprocess(imgs, S):
    """uint8 [N, H, W, 3] -> TF1 legacy bilinear resize to S, ImageNet mean/std, NCHW."""
    N, H, W, _ = imgs.shape

    def axis(n_in):
        src = np.arange(S) * (n_in / S)
        i0 = np.floor(src).astype(np.int64)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, (src - i0).astype(np.float32)

    y0, y1, fy = axis(H)
    x0, x1, fx = axis(W)
    im = imgs.astype(np.float32)
    top = im[:, y0][:, :, x0] * (1 - fx)[None, None, :, None] + im[:, y0][:, :, x1] * fx[None, None, :, None]
    bot = im[:, y1][:, :, x0] * (1 - fx)[None, None, :, None] + im[:, y1][:, :, x1] * fx[None, None, :, None]
    out = top * (1 - fy)[None, :, None, None] + bot * fy[None, :, None, None]
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    out = (out / 255.0 - mean) / std
    return torch.from_numpy(np.ascontiguousarray(out.transpose(0, 3, 1, 2)))


def read_layout(path):
    rows = []
    with open(path) as f:
        head = f.readline()
        assert head.startswith("location"), head
        for line in f:
            p = line.split()
            rows.append((p[0], int(p[1]), int(p[2]), int(p[3])))
    return rows


def run(cmd):
    t = time.time()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    return time.time() - t


def export(kind, net, d):
    ckpt = os.path.join(d, f"{kind}.pth")
    torch.save(net.state_dict(), ckpt)
    mdir = os.path.join(d, kind)
    run([sys.executable, os.path.join(ROOT, "weights", "export.py"), "--arch", kind, "--checkpoint", ckpt,
         "--out", mdir])
    return mdir


def check_model(name, kind, net, targets, h2t, d, imgs):
    mdir = export(kind, net, d)
    out = os.path.join(d, f"{kind}_F.npy")
    secs = run([h2t, "features", "--model", mdir, "--images", os.path.join(d, "x.npy"), "--target-size",
                ",".join(str(t) for t in targets), "--out", out, "--batch", str(NIMG), "--quiet"])
    x = preprocess(imgs, 224)
    locs = resnet_locations(net, x) if kind == "resnet50" else vit_locations(net, x)
    report(len(locs) == (52 if kind == "resnet50" else 53),
           f"{name}: {len(locs)} locations from PyTorch hooks; h2t features ran {len(targets)} T in {secs:.1f} s")
    base = out[:-4]
    for T in targets:
        F = np.load(f"{base}.T{T}.npy")
        lay = read_layout(f"{base}.T{T}.layout.tsv")
        ref_layout, off, worst, worst_loc, bad = [], 0, 0.0, "", []
        for lname, a in locs:
            y, p = pool_np(a, T)
            y = normalize_np(y)
            ref_layout.append((lname, off, y.shape[1], p))
            if len(ref_layout) <= len(lay) and lay[len(ref_layout) - 1][:3] == (lname, off, y.shape[1]):
                got = F[:, off:off + y.shape[1]]
                err = float(np.abs(got - y).max())
                scale = float(np.abs(y).max()) or 1.0
                if err / scale > worst:
                    worst, worst_loc = err / scale, lname
                if not err <= TOL * scale:
                    bad.append(f"{lname} (err {err:.3g}, max|ref| {scale:.3g})")
            off += y.shape[1]
        report(lay == ref_layout,
               f"{name} T={T}: layout names, offsets, dims, pools exact ({len(lay)} locations)"
               + ("" if lay == ref_layout else f": first difference at "
                  f"{next((a, b) for a, b in zip(lay + [None] * 99, ref_layout) if a != b)}"))
        report(F.shape == (NIMG, off), f"{name} T={T}: D = {F.shape[1]} (reference {off})")
        report(not bad and lay == ref_layout,
               f"{name} T={T}: every location within {TOL:g} x max|ref| (worst {worst:.3g} at {worst_loc})"
               + (f"; over: {', '.join(bad[:5])}" if bad else ""))


def randomize_bn(net, g):
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            C = m.num_features
            m.running_mean.copy_(torch.randn(C, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(C, generator=g) * 0.5 + 0.75)
            m.weight.data.copy_(torch.rand(C, generator=g) * 0.5 + 0.75)
            m.bias.data.copy_(torch.randn(C, generator=g) * 0.1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--h2t", default="./h2t")
    ap.add_argument("--keep", help="work in this directory (kept) instead of a temporary one")
    ap.add_argument("--only", choices=["resnet50", "vit_b_16"])
    a = ap.parse_args()
    d = a.keep or tempfile.mkdtemp(prefix="parity_features.")
    os.makedirs(d, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(NIMG, 64, 48, 3), dtype=np.uint8)  # resized to 224 by both sides
    np.save(os.path.join(d, "x.npy"), imgs)
    try:
        if a.only in (None, "resnet50"):
            net = torchvision.models.resnet50(weights=None).eval()
            randomize_bn(net, torch.Generator().manual_seed(1))
            check_model("ResNet-50", "resnet50", net, [512, 8192, 40000], a.h2t, d, imgs)
        if a.only in (None, "vit_b_16"):
            net = torchvision.models.vit_b_16(weights=None).eval()
            check_model("ViT-B/16", "vit_b_16", net, [768, 15360, 32448], a.h2t, d, imgs)
    except Exception as e:  # noqa: BLE001
        report(False, f"{type(e).__name__}: {e}")
    finally:
        if not a.keep:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""train_backbone.py: pretrain the demo's small backbone on Fashion-MNIST.

The network is ResNet-50's topology (torchvision v1.5 bottleneck units,
3-4-6-3 units per stage, 7x7 stride-2 stem + max-pool) at 1/8 of its width
(stem 8 channels, bottleneck widths 8/16/32/64, unit outputs 32/64/128/256).
Its state dict has torchvision's key names exactly (conv1, bn1,
layer1..layer4 with conv1/bn1/conv2/bn2/conv3/bn3/downsample.0/.1, fc), so
weights/export.py --source torchvision --checkpoint converts it.

Input: the 28x28 image, TF1 legacy bilinear resize to 32x32 (what h2t does:
resize_bilinear_tf1), gray tiled to 3 channels, x/255*2-1 (`normalize =
inception`). Training images: the 58000 of the Fashion-MNIST training set
that are not held out for the demo's in-distribution task (fmnist.py).

Recipe (defaults): SGD momentum 0.9 (Nesterov), lr 0.1 with cosine decay
to 0 per step, batch 128, weight decay 5e-4 (not on BN/bias), 12 epochs;
augmentation: random crop of the 28x28 image zero-padded by 2, random
horizontal flip. Everything seeded; run with a fixed thread count to get
the same bytes again.

  /usr/bin/python3 demo/train_backbone.py --out /work/demo_ckpt/backbone.pth
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
from torchvision.models.resnet import Bottleneck

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fmnist  # noqa: E402


class SmallResNet(nn.Module):
    """torchvision.models.resnet.ResNet with the stem width `base` instead of
    64 (stage widths base, 2 base, 4 base, 8 base; outputs x4)."""

    def __init__(self, base=8, units=(3, 4, 6, 3), num_classes=10):
        super().__init__()
        self.inplanes = base
        self.conv1 = nn.Conv2d(3, base, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._stage(base, units[0], 1)
        self.layer2 = self._stage(base * 2, units[1], 2)
        self.layer3 = self._stage(base * 4, units[2], 2)
        self.layer4 = self._stage(base * 8, units[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(base * 8 * Bottleneck.expansion, num_classes)
        for m in self.modules():   # torchvision's initialization
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _stage(self, planes, n, stride):
        down = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            down = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * Bottleneck.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * Bottleneck.expansion))
        layers = [Bottleneck(self.inplanes, planes, stride, down)]
        self.inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, n)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class Preprocess:
    """uint8 [n,28,28] -> float [n,3,S,S]: TF1 bilinear resize, x/255*2-1."""

    def __init__(self, n_in, size):
        self.R = torch.from_numpy(fmnist.tf1_resize_matrix(n_in, size))

    def __call__(self, imgs):
        x = torch.from_numpy(np.array(imgs, dtype=np.float32))
        x = self.R @ x @ self.R.T                   # [n, S, S], 0..255
        x = x / 255.0 * 2.0 - 1.0
        return x.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


def augment(imgs, rng, pad=2):
    """Random crop of the zero-padded image + random horizontal flip."""
    n, h, w = imgs.shape
    p = np.pad(imgs, ((0, 0), (pad, pad), (pad, pad)))
    dy = rng.integers(0, 2 * pad + 1, n)
    dx = rng.integers(0, 2 * pad + 1, n)
    rows = dy[:, None] + np.arange(h)[None, :]               # [n, h]
    cols = dx[:, None] + np.arange(w)[None, :]               # [n, w]
    out = p[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    flip = rng.random(n) < 0.5
    out[flip] = out[flip, :, ::-1]
    return out


@torch.no_grad()
def accuracy(model, prep, x, y, batch=500):
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        pred = model(prep(x[i:i + batch])).argmax(1).numpy()
        correct += int((pred == y[i:i + batch]).sum())
    return correct / len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="checkpoint (.pth state dict); a .json summary is written next to it")
    ap.add_argument("--data-dir", default=fmnist.DATA_DIR)
    ap.add_argument("--base", type=int, default=8, help="stem width (torchvision ResNet-50: 64)")
    ap.add_argument("--units", default="3,4,6,3")
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--wd", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="use only this many training images (smoke test)")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    units = tuple(int(u) for u in a.units.split(","))

    xtr, ytr = fmnist.load("train", a.data_dir)
    xte, yte = fmnist.load("t10k", a.data_dir)
    keep, held = fmnist.split_indices(len(xtr))
    xtr, ytr = xtr[keep], ytr[keep]
    if a.limit:
        xtr, ytr = xtr[:a.limit], ytr[:a.limit]
    print(f"train {len(xtr)} images (held out {len(held)}), test {len(xte)}", file=sys.stderr)

    model = SmallResNet(a.base, units, 10)
    nparam = sum(p.numel() for p in model.parameters())
    prep = Preprocess(28, a.input_size)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": a.wd},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=a.lr, momentum=0.9, nesterov=True)
    steps_per_epoch = math.ceil(len(xtr) / a.batch)
    total = steps_per_epoch * a.epochs
    step = 0
    t0 = time.time()
    for epoch in range(a.epochs):
        model.train()
        order = rng.permutation(len(xtr))
        loss_sum, seen = 0.0, 0
        for i in range(0, len(xtr), a.batch):
            idx = order[i:i + a.batch]
            x = prep(augment(xtr[idx], rng))
            y = torch.from_numpy(ytr[idx])
            for g in opt.param_groups:
                g["lr"] = a.lr * 0.5 * (1 + math.cos(math.pi * step / total))
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            loss_sum += loss.item() * len(idx)
            seen += len(idx)
        acc = accuracy(model, prep, xte, yte)
        print(f"epoch {epoch + 1}/{a.epochs}  loss {loss_sum / seen:.4f}  test acc {acc:.4f}  "
              f"{time.time() - t0:.0f}s", file=sys.stderr)

    acc = accuracy(model, prep, xte, yte)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    torch.save(model.state_dict(), a.out)
    summary = {"checkpoint": os.path.basename(a.out), "params": nparam, "base": a.base,
               "units": list(units), "input_size": a.input_size, "normalize": "inception",
               "epochs": a.epochs, "batch": a.batch, "lr": a.lr, "weight_decay": a.wd,
               "seed": a.seed, "threads": a.threads, "train_images": len(xtr),
               "fashion_mnist_test_accuracy": acc, "seconds": round(time.time() - t0, 1)}
    with open(os.path.splitext(a.out)[0] + ".json", "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

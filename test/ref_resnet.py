"""test/ref_resnet.py: PyTorch references for resnet.c, used by
test/make_fixtures.py (small committed fixtures) and test/parity_resnet.py
(full-size ResNet-50). Offline tools only; never part of the C build.

- ResNetV2: the paper's pre-activation ResNet v2 with BatchNorm, written
  here from the paper / the official TF code (BN -> ReLU -> conv; stride on
  the 3x3 conv; projection shortcut from the pre-activated input; final
  BN + ReLU before pooling), independent of resnet.c. Parameter names follow
  timm's ResNetV2 (resnetv2_50), so its state_dict converts with
  `weights/export.py --source timm --arch resnetv2_50 --checkpoint F.pth`.
  Options cover the conventions resnet.c supports: bn eps, conv padding
  'symmetric' ((k-1)/2, PyTorch and the TF code's fixed_padding) or 'same'
  (TF SAME), and stem pool padding 'ignore' (PyTorch MaxPool2d) or 'zero'
  (TF fixed_padding + VALID pool).
- tiny_torchvision_resnet: torchvision's own ResNet/Bottleneck classes
  (v1.5) at a reduced width, so the v1.5 reference is torchvision's code.
- randomize_: random weights and random BatchNorm statistics.
- taps: every Head2Toe location (docs/ALGORITHM.md §2) of either model through
  forward hooks, as NHWC numpy arrays.
"""
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.resnet import Bottleneck


# ---------------------------------------------------------------------------
# ResNet v2 (pre-activation, BatchNorm), timm's parameter names

class Conv(nn.Conv2d):
    """Bias-free conv; padding 'symmetric' or 'same' (TF: out = ceil(in/s),
    the odd pixel of padding at the bottom/right)."""

    def __init__(self, cin, cout, k, stride=1, padding='symmetric'):
        super().__init__(cin, cout, k, stride=stride, bias=False,
                         padding=(k - 1) // 2 if padding == 'symmetric' else 0)
        self.same = padding == 'same'

    def forward(self, x):
        if self.same:
            k, s = self.kernel_size[0], self.stride[0]
            h, w = x.shape[-2:]
            ph = max((-(-h // s) - 1) * s + k - h, 0)
            pw = max((-(-w // s) - 1) * s + k - w, 0)
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return super().forward(x)


class BNReLU(nn.BatchNorm2d):
    def forward(self, x):
        return F.relu(super().forward(x))


class DownsampleConv(nn.Module):
    def __init__(self, cin, cout, stride, padding):
        super().__init__()
        self.conv = Conv(cin, cout, 1, stride, padding)

    def forward(self, x):
        return self.conv(x)


class PreActBottleneck(nn.Module):
    def __init__(self, cin, cout, stride, proj, eps, padding):
        super().__init__()
        mid = cout // 4
        self.downsample = DownsampleConv(cin, cout, stride, padding) if proj else None
        self.norm1 = BNReLU(cin, eps=eps)
        self.conv1 = Conv(cin, mid, 1, 1, padding)
        self.norm2 = BNReLU(mid, eps=eps)
        self.conv2 = Conv(mid, mid, 3, stride, padding)
        self.norm3 = BNReLU(mid, eps=eps)
        self.conv3 = Conv(mid, cout, 1, 1, padding)

    def forward(self, x):
        p = self.norm1(x)                                   # pre-activation
        shortcut = self.downsample(p) if self.downsample is not None else x
        y = self.conv1(p)
        y = self.conv2(self.norm2(y))
        y = self.conv3(self.norm3(y))
        return y + shortcut


class Stage(nn.Module):
    def __init__(self, cin, cout, stride, depth, eps, padding):
        super().__init__()
        self.blocks = nn.Sequential(*[
            PreActBottleneck(cin if i == 0 else cout, cout, stride if i == 0 else 1, i == 0, eps, padding)
            for i in range(depth)])

    def forward(self, x):
        return self.blocks(x)


class Head(nn.Module):
    def __init__(self, c, classes):
        super().__init__()
        self.fc = nn.Conv2d(c, classes, 1, bias=True)      # timm: use_conv=True

    def forward(self, x):
        return self.fc(x.mean((2, 3), keepdim=True)).flatten(1)


class ResNetV2(nn.Module):
    def __init__(self, units=(3, 4, 6, 3), width=64, classes=1000, eps=1e-5, padding='symmetric',
                 pool_padding='ignore'):
        super().__init__()
        stem = OrderedDict(conv=Conv(3, width, 7, 2, padding))
        if pool_padding == 'zero':
            stem['pad'] = nn.ConstantPad2d(1, 0.0)
            stem['pool'] = nn.MaxPool2d(3, 2, 0)
        else:
            stem['pool'] = nn.MaxPool2d(3, 2, 1)
        self.stem = nn.Sequential(stem)
        chans = [width * 4 * 2 ** i for i in range(4)]
        cin, stages = width, []
        for i, (d, c) in enumerate(zip(units, chans)):
            stages.append(Stage(cin, c, 1 if i == 0 else 2, d, eps, padding))
            cin = c
        self.stages = nn.Sequential(*stages)
        self.norm = BNReLU(cin, eps=eps)
        self.head = Head(cin, classes)

    def forward(self, x):
        return self.head(self.norm(self.stages(self.stem(x))))


# ---------------------------------------------------------------------------
# torchvision v1.5 at a reduced width (torchvision's own classes)

class TinyTorchvisionResNet(torchvision.models.resnet.ResNet):
    """torchvision.models.resnet.ResNet with stem width `width` (64 in
    ResNet-50) and bottleneck widths width * 1, 2, 4, 8; forward and
    parameter names are torchvision's."""

    def __init__(self, units, width, classes):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = width, 1, 1, 64
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(Bottleneck, width, units[0])
        self.layer2 = self._make_layer(Bottleneck, width * 2, units[1], stride=2)
        self.layer3 = self._make_layer(Bottleneck, width * 4, units[2], stride=2)
        self.layer4 = self._make_layer(Bottleneck, width * 8, units[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width * 8 * Bottleneck.expansion, classes)


# ---------------------------------------------------------------------------
# random weights and BatchNorm statistics

@torch.no_grad()
def randomize_(model, seed):
    """Conv weights He-normal (fan in), BN gamma ~ N(1, 0.2), beta ~ N(0, 0.1),
    running mean ~ N(0, 0.1), running var ~ U(0.5, 1.5); dense/head weights
    N(0, 1/fan_in), bias N(0, 0.1). Deterministic for a seed."""
    g = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm2d):
            c = mod.num_features
            mod.weight.copy_(1 + 0.2 * torch.randn(c, generator=g))
            mod.bias.copy_(0.1 * torch.randn(c, generator=g))
            mod.running_mean.copy_(0.1 * torch.randn(c, generator=g))
            mod.running_var.copy_(0.5 + torch.rand(c, generator=g))
        elif isinstance(mod, (nn.Conv2d, nn.Linear)):
            w = mod.weight
            fan_in = w[0].numel()
            is_head = isinstance(mod, nn.Linear) or mod.bias is not None
            std = (1.0 if is_head else 2.0) / fan_in
            w.copy_(torch.randn(w.shape, generator=g) * std ** 0.5)
            if mod.bias is not None:
                mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=g))
    return model.eval()


# ---------------------------------------------------------------------------
# the Head2Toe locations through hooks

def _nhwc(t):
    t = t.detach()
    return (t.permute(0, 2, 3, 1) if t.dim() == 4 else t).contiguous().numpy().astype(np.float32)


@torch.no_grad()
def taps(model, x):
    """x: [N, 3, S, S] float. Returns (names in depth order, {name: array}),
    conv maps NHWC. Works for ResNetV2 above, timm's resnetv2_50 and
    resnet50, and torchvision's ResNets."""
    out, order, hooks = {}, [], []

    def save(name, t):
        order.append(name)
        out[name] = _nhwc(t)

    v2 = hasattr(model, 'stages')         # ResNetV2 here or timm's; else torchvision / timm resnet50
    hooks.append((model.stem if v2 else model.maxpool).register_forward_hook(
        lambda m, i, o: save('after_root', o)))
    layers = [s.blocks for s in model.stages] if v2 else [model.layer1, model.layer2, model.layer3, model.layer4]
    for bi, blocks in enumerate(layers):
        for ui, blk in enumerate(blocks):
            for li, conv in enumerate((blk.conv1, blk.conv2, blk.conv3)):
                name = f'block{bi + 1}_unit{ui + 1}_layer{li}'
                hooks.append(conv.register_forward_pre_hook(lambda m, i, name=name: save(name, i[0])))
    if v2:
        hooks.append(model.norm.register_forward_hook(lambda m, i, o: save('pre_logits_pre_pooling', o)))
        hooks.append(model.head.fc.register_forward_pre_hook(lambda m, i: save('pre_logits', i[0].flatten(1))))
    else:
        pool = model.avgpool if hasattr(model, 'avgpool') else model.global_pool   # torchvision / timm
        hooks.append(pool.register_forward_pre_hook(lambda m, i: save('pre_logits_pre_pooling', i[0])))
        hooks.append(model.fc.register_forward_pre_hook(lambda m, i: save('pre_logits', i[0])))
    logits = model(x)
    for h in hooks:
        h.remove()
    save('logits', logits)
    return order, out

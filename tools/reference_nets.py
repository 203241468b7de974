"""Reference checkpoints and outputs for face-nets' parity tests (PyTorch from PyPI, CPU).

    python tools/reference_nets.py crates/face-nets/tests/fixtures

For each architecture: build it in PyTorch with arcface_torch's module and key layout (written
here from its definition, so widths can be reduced to keep the committed file small), fill
every parameter and buffer (BatchNorm running statistics and PReLU slopes included) from a fixed
seed, save the state dict as `<name>.pth` (torch.save zip format) and the eval-mode output for a
deterministic input as `<name>.json`. The input is x[i] = 0.5·sin(0.37·i) over the flattened
[2, 3, S, S] tensor, so the Rust test rebuilds it without a fixture.
"""
import json
import os
import sys

import torch
from torch import nn

out = sys.argv[1]
os.makedirs(out, exist_ok=True)


def conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


class IBasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.conv1 = conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = downsample

    def forward(self, x):
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (self.downsample(x) if self.downsample is not None else x)


class IResNet(nn.Module):
    def __init__(self, layers, width=64, num_features=512, size=112):
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width, eps=1e-5)
        self.prelu = nn.PReLU(width)
        self.layer1 = self._make_layer(width, layers[0])
        self.layer2 = self._make_layer(2 * width, layers[1])
        self.layer3 = self._make_layer(4 * width, layers[2])
        self.layer4 = self._make_layer(8 * width, layers[3])
        self.bn2 = nn.BatchNorm2d(8 * width, eps=1e-5)
        self.dropout = nn.Dropout(p=0.0)
        f = size
        for _ in range(4):
            f = (f + 1) // 2
        self.fc = nn.Linear(8 * width * f * f, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-5)

    def _make_layer(self, planes, blocks):
        # Every stage starts with stride 2, so its first block always has the 1×1 shortcut.
        down = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, 2, bias=False), nn.BatchNorm2d(planes, eps=1e-5))
        layers = [IBasicBlock(self.inplanes, planes, 2, down)]
        self.inplanes = planes
        layers += [IBasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))


def randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.75)
            elif name.endswith("prelu.weight"):
                t.copy_(torch.rand(t.shape, generator=g) * 0.3)
            else:
                fan = t[0].numel() if t.dim() > 1 else 1
                t.copy_(torch.randn(t.shape, generator=g) / fan ** 0.5 * (1.0 if t.dim() > 1 else 0.1))
                if name.endswith(".weight") and t.dim() == 1:
                    t.add_(1.0)


def deterministic_input(size):
    n = 2 * 3 * size * size
    i = torch.arange(n, dtype=torch.float64)
    return (0.5 * torch.sin(0.37 * i)).float().reshape(2, 3, size, size)


# Key layout check against arcface_torch's published naming (full width r18).
ref = IResNet([2, 2, 2, 2])
keys = set(ref.state_dict())
for k in ["conv1.weight", "prelu.weight", "layer1.0.bn1.running_var", "layer1.0.downsample.0.weight",
          "layer1.0.downsample.1.weight", "layer4.1.conv2.weight", "bn2.bias", "fc.weight", "features.running_mean"]:
    assert k in keys, k
assert ref.state_dict()["fc.weight"].shape == (512, 512 * 49)

cases = {"iresnet18_w8": dict(layers=[2, 2, 2, 2], width=8, num_features=32)}
for name, kw in cases.items():
    torch.manual_seed(0)
    m = IResNet(**kw)
    randomise(m, 1)
    m.eval()
    torch.save(m.state_dict(), os.path.join(out, f"{name}.pth"))
    with torch.no_grad():
        y = m(deterministic_input(112))
    json.dump({"config": kw, "torch": torch.__version__, "output": y.tolist()},
              open(os.path.join(out, f"{name}.json"), "w"))
    print(name, tuple(y.shape), os.path.getsize(os.path.join(out, f"{name}.pth")), "bytes")

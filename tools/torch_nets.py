"""PyTorch definitions of arcface_torch's iResNet, MobileFaceNet (`mbf`) and ViT, written from
its published layout (arcface_torch is not on PyPI), and of torchvision's ResNet-50 and
facenet-pytorch's InceptionResnetV1 with configurable widths; facekit's own token ViT
(`TokenViT`, the PyTorch class of an exported LAFS/DINO student); plus the fixed-seed fill and
the deterministic input every fixture script shares. Imported by tools/reference_nets.py (which
asserts the key layouts against torchvision and facenet-pytorch), tools/reference_onnx.py and
tools/check_torch_export.py.
"""
import math

import torch
from torch import nn
from torch.nn import functional as F

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
    """Every parameter and buffer from one seed, at magnitudes that keep activations O(1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.75)
            elif name.endswith("prelu.weight") or (name.endswith(".weight") and "layers.2" in name and t.dim() == 1):
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


class ConvBlock(nn.Module):
    def __init__(self, cin, cout, kernel=1, stride=1, padding=0, groups=1, act=True):
        super().__init__()
        mods = [nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        if act:
            mods.append(nn.PReLU(cout))
        self.layers = nn.Sequential(*mods)

    def forward(self, x):
        return self.layers(x)


class DepthWise(nn.Module):
    def __init__(self, cin, cout, residual, stride, groups):
        super().__init__()
        self.residual = residual
        self.layers = nn.Sequential(
            ConvBlock(cin, groups),
            ConvBlock(groups, groups, 3, stride, 1, groups=groups),
            ConvBlock(groups, cout, act=False),
        )

    def forward(self, x):
        return x + self.layers(x) if self.residual else self.layers(x)


class Residual(nn.Module):
    def __init__(self, c, blocks, groups):
        super().__init__()
        self.layers = nn.Sequential(*[DepthWise(c, c, True, 1, groups) for _ in range(blocks)])

    def forward(self, x):
        return self.layers(x)


class Flatten(nn.Module):
    def forward(self, x):
        return x.view(x.size(0), -1)


class GDC(nn.Module):
    def __init__(self, num_features):
        super().__init__()
        self.layers = nn.Sequential(
            ConvBlock(512, 512, 7, 1, 0, groups=512, act=False),
            Flatten(),
            nn.Linear(512, num_features, bias=False),
            nn.BatchNorm1d(num_features),
        )

    def forward(self, x):
        return self.layers(x)


class MobileFaceNet(nn.Module):
    def __init__(self, num_features=512, blocks=(1, 4, 6, 2), scale=2):
        super().__init__()
        c1, c2 = 64 * scale, 128 * scale
        self.layers = nn.ModuleList([ConvBlock(3, c1, 3, 2, 1)])
        if blocks[0] == 1:
            self.layers.append(ConvBlock(c1, c1, 3, 1, 1, groups=64))
        else:
            self.layers.append(Residual(c1, blocks[0], 128))
        self.layers.extend([
            DepthWise(c1, c1, False, 2, 128),
            Residual(c1, blocks[1], 128),
            DepthWise(c1, c2, False, 2, 256),
            Residual(c2, blocks[2], 256),
            DepthWise(c2, c2, False, 2, 512),
            Residual(c2, blocks[3], 256),
        ])
        self.conv_sep = ConvBlock(c2, 512)
        self.features = GDC(num_features)

    def forward(self, x):
        for f in self.layers:
            x = f(x)
        return self.features(self.conv_sep(x))


class FaceMlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.ReLU6()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class FaceAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class FaceBlock(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = FaceAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = FaceMlp(dim, 4 * dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch, dim):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class FaceViT(nn.Module):
    """arcface_torch's VisionTransformer (norm_layer="ln"), eval path (no patch masking)."""

    def __init__(self, img=112, patch=9, dim=256, depth=12, heads=8, num_features=512):
        super().__init__()
        n = (img // patch) ** 2
        self.n, self.dim = n, dim
        self.patch_embed = PatchEmbed(patch, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, n, dim))
        self.blocks = nn.ModuleList([FaceBlock(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.feature = nn.Sequential(
            nn.Linear(dim * n, dim, bias=False), nn.BatchNorm1d(dim, eps=2e-5),
            nn.Linear(dim, num_features, bias=False), nn.BatchNorm1d(num_features, eps=2e-5))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))

    def forward(self, x):
        x = self.patch_embed(x) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.feature(self.norm(x).reshape(x.shape[0], self.n * self.dim))


class Bottleneck(nn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = downsample

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


class ResNet(nn.Module):
    """torchvision's ResNet-50 layout (v1.5: stride on the 3×3), with a configurable base width."""

    def __init__(self, layers=(3, 4, 6, 3), width=64, num_classes=1000):
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(width, layers[0], 1)
        self.layer2 = self._make_layer(2 * width, layers[1], 2)
        self.layer3 = self._make_layer(4 * width, layers[2], 2)
        self.layer4 = self._make_layer(8 * width, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32 * width, num_classes)

    def _make_layer(self, planes, blocks, stride):
        down = None
        if stride != 1 or self.inplanes != planes * 4:
            down = nn.Sequential(nn.Conv2d(self.inplanes, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4))
        layers = [Bottleneck(self.inplanes, planes, stride, down)]
        self.inplanes = planes * 4
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class BasicConv2d(nn.Module):
    def __init__(self, cin, cout, kernel, stride, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class Block35(nn.Module):
    def __init__(self, d, scale):
        super().__init__()
        self.scale = scale
        c, b = 256 // d, 32 // d
        self.branch0 = BasicConv2d(c, b, 1, 1)
        self.branch1 = nn.Sequential(BasicConv2d(c, b, 1, 1), BasicConv2d(b, b, 3, 1, 1))
        self.branch2 = nn.Sequential(BasicConv2d(c, b, 1, 1), BasicConv2d(b, b, 3, 1, 1), BasicConv2d(b, b, 3, 1, 1))
        self.conv2d = nn.Conv2d(3 * b, c, 1, 1)

    def forward(self, x):
        out = self.conv2d(torch.cat((self.branch0(x), self.branch1(x), self.branch2(x)), 1))
        return F.relu(out * self.scale + x)


class Block17(nn.Module):
    def __init__(self, d, scale):
        super().__init__()
        self.scale = scale
        c, b = 896 // d, 128 // d
        self.branch0 = BasicConv2d(c, b, 1, 1)
        self.branch1 = nn.Sequential(BasicConv2d(c, b, 1, 1), BasicConv2d(b, b, (1, 7), 1, (0, 3)),
                                     BasicConv2d(b, b, (7, 1), 1, (3, 0)))
        self.conv2d = nn.Conv2d(2 * b, c, 1, 1)

    def forward(self, x):
        out = self.conv2d(torch.cat((self.branch0(x), self.branch1(x)), 1))
        return F.relu(out * self.scale + x)


class Block8(nn.Module):
    def __init__(self, d, scale=1.0, relu=True):
        super().__init__()
        self.scale, self.use_relu = scale, relu
        c, b = 1792 // d, 192 // d
        self.branch0 = BasicConv2d(c, b, 1, 1)
        self.branch1 = nn.Sequential(BasicConv2d(c, b, 1, 1), BasicConv2d(b, b, (1, 3), 1, (0, 1)),
                                     BasicConv2d(b, b, (3, 1), 1, (1, 0)))
        self.conv2d = nn.Conv2d(2 * b, c, 1, 1)

    def forward(self, x):
        out = self.conv2d(torch.cat((self.branch0(x), self.branch1(x)), 1)) * self.scale + x
        return F.relu(out) if self.use_relu else out


class Mixed6a(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.branch0 = BasicConv2d(256 // d, 384 // d, 3, 2)
        self.branch1 = nn.Sequential(BasicConv2d(256 // d, 192 // d, 1, 1), BasicConv2d(192 // d, 192 // d, 3, 1, 1),
                                     BasicConv2d(192 // d, 256 // d, 3, 2))
        self.branch2 = nn.MaxPool2d(3, stride=2)

    def forward(self, x):
        return torch.cat((self.branch0(x), self.branch1(x), self.branch2(x)), 1)


class Mixed7a(nn.Module):
    def __init__(self, d):
        super().__init__()
        c, b = 896 // d, 256 // d
        self.branch0 = nn.Sequential(BasicConv2d(c, b, 1, 1), BasicConv2d(b, 384 // d, 3, 2))
        self.branch1 = nn.Sequential(BasicConv2d(c, b, 1, 1), BasicConv2d(b, b, 3, 2))
        self.branch2 = nn.Sequential(BasicConv2d(c, b, 1, 1), BasicConv2d(b, b, 3, 1, 1), BasicConv2d(b, b, 3, 2))
        self.branch3 = nn.MaxPool2d(3, stride=2)

    def forward(self, x):
        return torch.cat((self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)), 1)


class InceptionResnetV1(nn.Module):
    """facenet-pytorch's layout with every width divided by `d` (d=1 is the published network)."""

    def __init__(self, d=1, num_classes=None):
        super().__init__()
        self.conv2d_1a = BasicConv2d(3, 32 // d, 3, 2)
        self.conv2d_2a = BasicConv2d(32 // d, 32 // d, 3, 1)
        self.conv2d_2b = BasicConv2d(32 // d, 64 // d, 3, 1, 1)
        self.maxpool_3a = nn.MaxPool2d(3, stride=2)
        self.conv2d_3b = BasicConv2d(64 // d, 80 // d, 1, 1)
        self.conv2d_4a = BasicConv2d(80 // d, 192 // d, 3, 1)
        self.conv2d_4b = BasicConv2d(192 // d, 256 // d, 3, 2)
        self.repeat_1 = nn.Sequential(*[Block35(d, 0.17) for _ in range(5)])
        self.mixed_6a = Mixed6a(d)
        self.repeat_2 = nn.Sequential(*[Block17(d, 0.10) for _ in range(10)])
        self.mixed_7a = Mixed7a(d)
        self.repeat_3 = nn.Sequential(*[Block8(d, 0.20) for _ in range(5)])
        self.block8 = Block8(d, relu=False)
        self.avgpool_1a = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.6)
        self.last_linear = nn.Linear(1792 // d, 512 // d, bias=False)
        self.last_bn = nn.BatchNorm1d(512 // d, eps=0.001)
        if num_classes:
            self.logits = nn.Linear(512 // d, num_classes)

    def forward(self, x):
        for name in ["conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b", "conv2d_4a", "conv2d_4b",
                     "repeat_1", "mixed_6a", "repeat_2", "mixed_7a", "repeat_3", "block8", "avgpool_1a"]:
            x = getattr(self, name)(x)
        x = self.last_bn(self.last_linear(x.view(x.shape[0], -1)))
        return F.normalize(x, p=2, dim=1)


class TokenBlock(nn.Module):
    """DINO's pre-LN block (timm names): qkv with bias, exact-GELU MLP, LayerNorm eps 1e-6."""

    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = FaceAttention(dim, heads)
        self.attn.qkv = nn.Linear(dim, 3 * dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = FaceMlp(dim, hidden)
        self.mlp.act = nn.GELU()

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def token_centres(image_size, patch, layout):
    """Token centres in pixels, (x, y), row by row (face-nets `TokenInput::centres`)."""
    def grid(n, step, off):
        return [(off + (c + 0.5) * step - 0.5, off + (r + 0.5) * step - 0.5) for r in range(n) for c in range(n)]
    kind, v = next(iter(layout.items()))
    if kind == "grid":
        return grid(v["n"], float(patch), (image_size - v["n"] * patch) / 2.0)
    if kind == "dense":
        return grid(v["n"], image_size / v["n"], 0.0)
    return [tuple(p) for p in v["points"]]


class TokenViT(nn.Module):
    """facekit's token ViT (face-nets `TokenVit`, the LAFS/DINO-pretrained backbone), the PyTorch
    class its `facekit export --format torch` state dict loads into.

    Each token is a `patch`-pixel patch cut at a fixed centre of the aligned face by bilinear
    sampling (the face padded with -1, the ArcFace-normalised black), flattened channel by
    channel. Its embedding is `patch_embed(patch) + coord_embed([x, y, sin/cos(2^f pi x),
    sin/cos(2^f pi y)]) + slot_embed(i)` with (x, y) the centre scaled to [-1, 1]; the class token
    is prepended, then DINO blocks and a final LayerNorm; the output is the class token.
    """

    def __init__(self, dim, depth, heads, mlp_ratio, patch, max_slots, coord_freqs, image_size, centres):
        super().__init__()
        self.patch, self.freqs, self.size = patch, coord_freqs, image_size
        self.centres = centres
        self.patch_embed = nn.Linear(3 * patch * patch, dim)
        self.coord_embed = nn.Linear(2 + 4 * coord_freqs, dim)
        self.slot_embed = nn.Embedding(max_slots, dim) if max_slots > 0 else None
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList([TokenBlock(dim, heads, mlp_ratio * dim) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def tokens(self, x):
        n, c, h, w = x.shape
        p, half = self.patch, (self.patch - 1) / 2.0
        origins = [(cx - half, cy - half) for cx, cy in self.centres]
        # Pad (with -1) so that every sample and its right/lower neighbour lie inside.
        lo = min([0.0] + [math.floor(v) for o in origins for v in o])
        hi_x = max([0.0] + [math.floor(o[0]) + p + 1 - w for o in origins])
        hi_y = max([0.0] + [math.floor(o[1]) + p + 1 - h for o in origins])
        pad = int(max(-lo, hi_x, hi_y, 0.0))
        x = F.pad(x, (pad, pad, pad, pad), value=-1.0)
        out = []
        for ox, oy in origins:
            fx, fy = ox - math.floor(ox), oy - math.floor(oy)
            ix, iy = math.floor(ox) + pad, math.floor(oy) + pad
            acc = 0
            for dy, dx, wt in [(0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)), (1, 0, (1 - fx) * fy), (1, 1, fx * fy)]:
                if wt > 1e-6:
                    acc = acc + wt * x[:, :, iy + dy:iy + dy + p, ix + dx:ix + dx + p]
            out.append(acc.reshape(n, 1, c * p * p))
        return torch.cat(out, 1)

    def forward(self, x):
        n = x.shape[0]
        t = len(self.centres)
        coords = torch.tensor([[(cx + 0.5) / self.size * 2 - 1, (cy + 0.5) / self.size * 2 - 1]
                               for cx, cy in self.centres], dtype=torch.float32)[None].expand(n, t, 2)
        if self.freqs:
            freqs = torch.tensor([math.pi * 2 ** i for i in range(self.freqs)], dtype=torch.float32)
            angles = coords[..., None] * freqs
            waves = torch.cat([angles.sin(), angles.cos()], 3).reshape(n, t, 4 * self.freqs)
            coords = torch.cat([coords, waves], 2)
        e = self.patch_embed(self.tokens(x)) + self.coord_embed(coords)
        if self.slot_embed is not None:
            e = e + self.slot_embed(torch.arange(t))[None]
        x = torch.cat([self.cls_token.expand(n, 1, -1), e], 1)
        for b in self.blocks:
            x = b(x)
        return self.norm(x)[:, 0]

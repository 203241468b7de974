"""Checks facekit's PyTorch-layout exports against PyTorch itself (face-nets `export`).

    cargo run -p face-nets --release --example export_fixtures -- crates/face-nets/tests/fixtures/export
    python tools/check_torch_export.py crates/face-nets/tests/fixtures/export [FILE.safetensors …]

For each `<arch>.safetensors` (or the files named), builds the PyTorch face model the export
describes: the architecture's reference class as `backbone` (tools/torch_nets.py, the classes
whose key layouts tools/reference_nets.py asserts against arcface_torch, torchvision and
facenet-pytorch) and facekit's multitask head as `head`, and loads the file with
`load_state_dict(strict=True)`. It then runs the fixture scripts' deterministic input and checks
the outputs against facekit's (`<arch>.facekit.json`, when there) to 1e-4. PyTorch's outputs go
to `<arch>.torch.json`, which the Rust test `export::torch_export_matches_pytorch` reads.
Needs torch and safetensors (PyPI), and open_clip_torch for the CLIP tower.
"""
import glob
import json
import os
import sys

import torch
from safetensors.torch import load_file
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_nets import (FaceViT, InceptionResnetV1, IResNet, MobileFaceNet, ResNet, TokenViT,  # noqa: E402
                        deterministic_input, token_centres)


class EmbeddingHead(nn.Module):
    def __init__(self, features, dim, batch_norm=True):
        super().__init__()
        self.linear = nn.Linear(features, dim, bias=not batch_norm)
        self.bn = nn.BatchNorm1d(dim, eps=1e-5) if batch_norm else None

    def forward(self, f):
        x = self.linear(f)
        return F.normalize(self.bn(x) if self.bn is not None else x, dim=1)


class LinearHead(nn.Module):
    def __init__(self, features, out):
        super().__init__()
        self.linear = nn.Linear(features, out)


class MultiTaskHead(nn.Module):
    def __init__(self, features, dim, bins):
        super().__init__()
        self.embedding = EmbeddingHead(features, dim)
        self.age = LinearHead(features, bins)
        self.gender = LinearHead(features, 1)


class FaceModel(nn.Module):
    """facekit's face model in PyTorch: `backbone` (a reference class) and `head`."""

    def __init__(self, backbone, features, dim, bins):
        super().__init__()
        self.backbone = backbone
        self.head = MultiTaskHead(features, dim, bins)

    def features(self, x):
        b = self.backbone
        if isinstance(b, InceptionResnetV1):  # its forward normalises; the head takes last_bn
            for name in ["conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b", "conv2d_4a",
                         "conv2d_4b", "repeat_1", "mixed_6a", "repeat_2", "mixed_7a", "repeat_3", "block8",
                         "avgpool_1a"]:
                x = getattr(b, name)(x)
            return b.last_bn(b.last_linear(x.view(x.shape[0], -1)))
        if isinstance(b, ResNet):  # the pooled features; a classifier `fc`, if any, is not used
            x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
            x = b.layer4(b.layer3(b.layer2(b.layer1(x))))
            return torch.flatten(b.avgpool(x), 1)
        return b(x)

    def forward(self, x):
        f = self.features(x)
        return (self.head.embedding(f), torch.softmax(self.head.age.linear(f), dim=1),
                torch.sigmoid(self.head.gender.linear(f)).reshape(-1))


def backbone(config):
    arch = config["arch"]
    if arch == "iresnet":
        return IResNet(config["layers"], width=config["base_width"], num_features=config["num_features"],
                       size=config["input_size"]), config["num_features"]
    if arch == "mobilefacenet":
        return MobileFaceNet(config["num_features"], tuple(config["blocks"]), config["scale"]), config["num_features"]
    if arch == "resnet":
        m = ResNet(tuple(config["layers"]), width=config["base_width"], num_classes=config["num_classes"] or 1)
        if config["num_classes"] is None:
            m.fc = nn.Identity()
        return m, 32 * config["base_width"]
    if arch == "inception_resnet_v1":
        d = config["width_divisor"]
        return InceptionResnetV1(d=d), 512 // d
    if arch == "vit":
        return FaceViT(img=config["image_size"], patch=config["patch_size"], dim=config["embed_dim"],
                       depth=config["depth"], heads=config["num_heads"],
                       num_features=config["num_features"]), config["num_features"]
    if arch == "clip_vit":
        from open_clip.transformer import QuickGELU, VisionTransformer
        act = QuickGELU if config["quick_gelu"] else nn.GELU
        return VisionTransformer(image_size=config["image_size"], patch_size=config["patch_size"],
                                 width=config["width"], layers=config["layers"], heads=config["heads"],
                                 mlp_ratio=4.0, output_dim=config["output_dim"], act_layer=act), config["output_dim"]
    if arch == "token_vit":
        inp = config.get("input") or {"image_size": 112, "layout": {"grid": {"n": 112 // config["patch_size"]}}}
        centres = token_centres(inp["image_size"], config["patch_size"], inp["layout"])
        return TokenViT(config["embed_dim"], config["depth"], config["num_heads"], config["mlp_ratio"],
                        config["patch_size"], config["max_slots"], config["coord_freqs"], inp["image_size"],
                        centres), config["embed_dim"]
    raise SystemExit(f"no PyTorch class for {arch}")


def check(path):
    side = json.load(open(path + ".json"))
    cfg = side["model"]
    net, features = backbone(dict(cfg["backbone"]))
    model = FaceModel(net, features, cfg["embedding_dim"], len(cfg["age_bins"]))
    state = load_file(path)
    model.load_state_dict(state, strict=True)  # raises on any missing or unexpected key
    model.eval()
    size = json.load(open(path.replace(".safetensors", ".facekit.json")))["input_size"] \
        if os.path.exists(path.replace(".safetensors", ".facekit.json")) else 112
    with torch.no_grad():
        emb, age, male = model(deterministic_input(size))
    out = {"torch": torch.__version__, "input_size": size, "embedding": emb.flatten().tolist(),
           "age_probs": age.flatten().tolist(), "p_male": male.tolist()}
    ours_path = path.replace(".safetensors", ".facekit.json")
    if os.path.exists(ours_path):
        ours = json.load(open(ours_path))
        for k in ["embedding", "age_probs", "p_male"]:
            d = (torch.tensor(ours[k]) - torch.tensor(out[k])).abs().max().item()
            out[f"max_diff_{k}"] = d
            assert d < 1e-4, f"{path}: {k} differs from facekit's by {d}"
    with open(path.replace(".safetensors", ".torch.json"), "w") as f:
        json.dump(out, f)
    print(os.path.basename(path), side["backbone_class"], f"{len(state)} tensors, strict load ok;",
          {k: f"{v:.1e}" for k, v in out.items() if k.startswith("max_diff")})


if __name__ == "__main__":
    args = sys.argv[1:]
    files = [a for a in args if a.endswith(".safetensors")] or sorted(glob.glob(os.path.join(args[0], "*.safetensors")))
    for p in files:
        check(p)

"""Reference checkpoints and outputs for face-nets' parity tests (PyTorch from PyPI, CPU).

    python tools/reference_nets.py crates/face-nets/tests/fixtures [--cache DIR]

Needs torch, torchvision, facenet-pytorch 2.6.0, open_clip_torch, onnx (see docs/BENCHMARKS.md).

For each architecture: build it in PyTorch in the key layout of its checkpoint family, fill
every parameter and buffer (BatchNorm running statistics and PReLU slopes included) from a fixed
seed, save the state dict as `<name>.pth` (torch.save zip format) and the eval-mode output for a
deterministic input as `<name>.json`. The input is x[i] = 0.5·sin(0.37·i) over the flattened
[2, 3, S, S] tensor, so the Rust tests rebuild it without a fixture.

Where the original library is on PyPI the network is that library's own class (torchvision
ResNet-50's key set, facenet-pytorch's InceptionResnetV1 and open_clip's VisionTransformer);
arcface_torch (iResNet, MobileFaceNet, its ViT) is not on PyPI, so those are written here from
its definitions and their key names and shapes are asserted against the published layout.
Committed fixtures use reduced widths to stay small; full-size iResNet-50 and MobileFaceNet
checkpoints and their ONNX exports go to the cache directory (default ~/.cache/facekit/nets),
used by the optional full-size test and by the benchmark.
"""
import argparse
import json
import math
import os

import torch
from torch import nn
from torch.nn import functional as F

# arcface_torch's classes (not on PyPI), shared with reference_onnx.py.
from torch_nets import FaceViT, InceptionResnetV1, IResNet, MobileFaceNet, ResNet, deterministic_input, randomise

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--cache", default=os.path.expanduser("~/.cache/facekit/nets"))
ap.add_argument("--skip-full", action="store_true", help="do not write the full-size cache files")
args = ap.parse_args()
out = args.out
os.makedirs(out, exist_ok=True)


def assert_same_layout(ours, theirs, what):
    a = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    b = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert a == b, f"{what}: key/shape mismatch: {sorted(set(a.items()) ^ set(b.items()))[:6]}"


def save_case(name, model, size, config, directory=out, state=None, extra=None):
    model.eval()
    path = os.path.join(directory, f"{name}.pth")
    torch.save(state if state is not None else model.state_dict(), path)
    with torch.no_grad():
        y = model(deterministic_input(size))
    doc = {"config": config, "input_size": size, "torch": torch.__version__, "output": y.tolist()}
    doc.update(extra or {})
    with open(os.path.join(directory, f"{name}.json"), "w") as f:
        json.dump(doc, f)
    print(name, tuple(y.shape), os.path.getsize(path), "bytes")
    return y


# ---------------------------------------------------------------- iResNet (arcface_torch)
# Key layout check against arcface_torch's published naming (full width r18).
ref = IResNet([2, 2, 2, 2])
keys = set(ref.state_dict())
for k in ["conv1.weight", "prelu.weight", "layer1.0.bn1.running_var", "layer1.0.downsample.0.weight",
          "layer1.0.downsample.1.weight", "layer4.1.conv2.weight", "bn2.bias", "fc.weight", "features.running_mean"]:
    assert k in keys, k
assert ref.state_dict()["fc.weight"].shape == (512, 512 * 49)

torch.manual_seed(0)
m = IResNet(layers=[2, 2, 2, 2], width=8, num_features=32)
randomise(m, 1)
save_case("iresnet18_w8", m, 112, dict(layers=[2, 2, 2, 2], width=8, num_features=32))


# ---------------------------------------------------------------- ResNet-50 (torchvision)

import torchvision  # noqa: E402

tv = torchvision.models.resnet50(weights=None)
ours = ResNet()
assert_same_layout(ours, tv, "resnet50")
randomise(tv, 7)
ours.load_state_dict(tv.state_dict())
tv.eval()
ours.eval()
with torch.no_grad():
    x = deterministic_input(64)
    d = (tv(x) - ours(x)).abs().max().item()
assert d < 1e-4, f"ResNet-50 written here differs from torchvision's by {d}"
torch.manual_seed(0)
m = ResNet(width=8, num_classes=10)
randomise(m, 2)
save_case("resnet50_w8", m, 96, dict(width=8, num_classes=10))


# ---------------------------------------------------------------- MobileFaceNet (arcface_torch mbf)
mbf = MobileFaceNet()
keys = {k: tuple(v.shape) for k, v in mbf.state_dict().items()}
for k, shape in [("layers.0.layers.0.weight", (128, 3, 3, 3)), ("layers.1.layers.0.weight", (128, 2, 3, 3)),
                 ("layers.2.layers.1.layers.0.weight", (128, 1, 3, 3)), ("layers.3.layers.3.layers.2.layers.1.running_var", (128,)),
                 ("layers.5.layers.5.layers.0.layers.2.weight", (256,)), ("conv_sep.layers.2.weight", (512,)),
                 ("features.layers.0.layers.0.weight", (512, 1, 7, 7)), ("features.layers.2.weight", (512, 512)),
                 ("features.layers.3.running_mean", (512,))]:
    assert keys.get(k) == shape, (k, keys.get(k))
torch.manual_seed(0)
m = MobileFaceNet(num_features=64, blocks=(2, 2, 2, 1), scale=1)
randomise(m, 3)
save_case("mbf_small", m, 112, dict(num_features=64, blocks=[2, 2, 2, 1], scale=1))


# ---------------------------------------------------------------- Inception-ResNet-V1 (facenet-pytorch)
from facenet_pytorch import InceptionResnetV1 as FacenetIRV1  # noqa: E402


fn = FacenetIRV1(classify=True, num_classes=8631)
ours = InceptionResnetV1(num_classes=8631)
assert_same_layout(ours, fn, "inception_resnet_v1")
randomise(fn, 11)
ours.load_state_dict(fn.state_dict())
fn.classify = False
fn.eval()
ours.eval()
with torch.no_grad():
    x = deterministic_input(160)
    d = (fn(x) - ours(x)).abs().max().item()
assert d < 1e-4, f"Inception-ResNet-V1 written here differs from facenet-pytorch's by {d}"
torch.manual_seed(0)
m = InceptionResnetV1(d=8, num_classes=20)  # vggface2-style checkpoint: `logits` present, unused
randomise(m, 4)
save_case("inception_resnet_v1_d8", m, 160, dict(width_divisor=8, logits=20))


# ---------------------------------------------------------------- ViT (arcface_torch vit_t / vit_s)
vit_t = FaceViT()
keys = {k: tuple(v.shape) for k, v in vit_t.state_dict().items()}
for k, shape in [("patch_embed.proj.weight", (256, 3, 9, 9)), ("pos_embed", (1, 144, 256)),
                 ("blocks.11.attn.qkv.weight", (768, 256)), ("blocks.0.attn.proj.bias", (256,)),
                 ("blocks.0.mlp.fc1.weight", (1024, 256)), ("norm.weight", (256,)),
                 ("feature.0.weight", (256, 256 * 144)), ("feature.1.running_var", (256,)),
                 ("feature.2.weight", (512, 256)), ("feature.3.bias", (512,)), ("mask_token", (1, 1, 256))]:
    assert keys.get(k) == shape, (k, keys.get(k))
assert "blocks.0.attn.qkv.bias" not in keys
torch.manual_seed(0)
m = FaceViT(dim=32, depth=2, heads=4, num_features=24)
randomise(m, 5)
save_case("vit_face_small", m, 112, dict(dim=32, depth=2, heads=4, num_features=24))


# ---------------------------------------------------------------- CLIP / FaRL ViT-B/16 visual tower
import open_clip  # noqa: E402
from open_clip.transformer import QuickGELU, VisionTransformer as ClipVisionTransformer  # noqa: E402

full = open_clip.create_model("ViT-B-16-quickgelu", pretrained=None)
vis = {k: tuple(v.shape) for k, v in full.state_dict().items() if k.startswith("visual.")}
assert vis["visual.conv1.weight"] == (768, 3, 16, 16) and vis["visual.proj"] == (768, 512)
assert vis["visual.positional_embedding"] == (197, 768) and len(vis) == 152
torch.manual_seed(0)
small = ClipVisionTransformer(image_size=224, patch_size=16, width=32, layers=2, heads=4, mlp_ratio=4.0,
                              output_dim=16, act_layer=QuickGELU)
small_keys = {"visual." + k for k in small.state_dict()}
full_keys = {k for k in vis if not k.startswith("visual.transformer.resblocks.") or ".resblocks.0." in k or ".resblocks.1." in k}
assert small_keys == full_keys, sorted(small_keys ^ full_keys)[:6]
randomise(small, 6)
# A FaRL-style checkpoint: {"state_dict": {"visual.*": …, text tower…, "logit_scale": …}}.
farl = {"visual." + k: v for k, v in small.state_dict().items()}
g = torch.Generator().manual_seed(9)
for k in ["positional_embedding", "text_projection", "token_embedding.weight", "transformer.resblocks.0.ln_1.weight",
          "transformer.resblocks.0.attn.in_proj_weight", "ln_final.weight"]:
    farl[k] = torch.randn((77, 32) if "proj_weight" not in k else (96, 32), generator=g)
farl["transformer.resblocks.0.ln_1.weight"] = torch.randn(32, generator=g)
farl["ln_final.weight"] = torch.randn(32, generator=g)
farl["logit_scale"] = torch.tensor(4.6052)
save_case("clip_vit_b16_small", small, 224, dict(width=32, layers=2, heads=4, patch=16, output_dim=16),
          state={"state_dict": farl, "epoch": 64})


# ---------------------------------------------------------------- margin losses (arcface_torch)
def arcface_logits(cos, labels, s, m, easy_margin=False):
    """arcface_torch's ArcFace class: cos(θ+m) on the target, with its threshold fallback."""
    logits = cos.clone()
    idx = torch.arange(len(labels))
    t = logits[idx, labels]
    sin_t = torch.sqrt(1.0 - t * t)
    cos_tm = t * math.cos(m) - sin_t * math.sin(m)
    if easy_margin:
        final = torch.where(t > 0, cos_tm, t)
    else:
        final = torch.where(t > math.cos(math.pi - m), cos_tm, t - math.sin(math.pi - m) * m)
    logits[idx, labels] = final
    return logits * s


def combined_logits(cos, labels, s, m1, m2, m3):
    logits = cos.clone()
    idx = torch.arange(len(labels))
    t = logits[idx, labels]
    logits[idx, labels] = torch.cos(m1 * torch.acos(t.clamp(-1, 1)) + m2) - m3
    return logits * s


g = torch.Generator().manual_seed(12)
emb = F.normalize(torch.randn(6, 8, generator=g, dtype=torch.float64), dim=1)
w = F.normalize(torch.randn(5, 8, generator=g, dtype=torch.float64), dim=1)
cos = emb @ w.T
labels = torch.tensor([0, 1, 2, 3, 4, 1])
cos[5, 1] = -0.95  # θ + m > π: exercises the threshold branch
cases = {}
for name, fn_ in [("arcface", lambda c: arcface_logits(c, labels, 64.0, 0.5)),
                  ("arcface_easy", lambda c: arcface_logits(c, labels, 64.0, 0.5, easy_margin=True)),
                  ("cosface", lambda c: combined_logits(c, labels, 64.0, 1.0, 0.0, 0.4)),
                  ("combined", lambda c: combined_logits(c, labels, 32.0, 0.9, 0.3, 0.15)),
                  ("softmax", lambda c: c * 30.0)]:
    c = cos.clone().requires_grad_(True)
    logits = fn_(c)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    cases[name] = {"logits": logits.tolist(), "loss": loss.item(), "grad": c.grad.tolist()}
with open(os.path.join(out, "margin_losses.json"), "w") as f:
    json.dump({"cos": cos.tolist(), "labels": labels.tolist(), "cases": cases}, f)
print("margin_losses", {k: round(v["loss"], 4) for k, v in cases.items()})


# ---------------------------------------------------------------- full-size models (cache, not committed)
if not args.skip_full:
    os.makedirs(args.cache, exist_ok=True)
    for name, model, size in [("iresnet50", IResNet([3, 4, 14, 3]), 112), ("mbf", MobileFaceNet(), 112)]:
        torch.manual_seed(0)
        randomise(model, 21)
        # Random weights through 50 blocks give outputs in the hundreds; rescale the final
        # BatchNorm1d so the embedding is O(1), like a trained model's, and 1e-4 is meaningful.
        model.eval()
        final_bn = model.features if isinstance(model, IResNet) else model.features.layers[3]
        with torch.no_grad():
            spread = model(deterministic_input(size)).std().item()
            final_bn.weight.div_(spread)
            final_bn.bias.div_(spread)
        save_case(name, model, size, {}, directory=args.cache)
        onnx_path = os.path.join(args.cache, f"{name}.onnx")
        torch.onnx.export(model, deterministic_input(size), onnx_path, input_names=["input"],
                          output_names=["embedding"], dynamic_axes={"input": {0: "n"}, "embedding": {0: "n"}},
                          opset_version=17, dynamo=False)
        print(onnx_path, os.path.getsize(onnx_path), "bytes")

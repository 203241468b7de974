"""Anchor for face-nets' export bench (`cargo bench -p face-nets --bench export`): the same
architectures in PyTorch (tools/torch_nets.py IResNet and FaceViT plus facekit's head, as
tools/check_torch_export.py builds it), on the same machine and threads.

    python tools/bench_export_torch.py [--threads 2] [--repeat 5]

Times, median of `--repeat`: safetensors.torch.save_file of the state dict, load_file +
load_state_dict(strict=True) into a fresh model, torch.onnx.export (TorchScript exporter, opset 17,
dynamic batch axis), and onnxruntime InferenceSession creation on that file.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import onnxruntime as ort
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_nets import FaceViT, IResNet  # noqa: E402
from check_torch_export import FaceModel  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--repeat", type=int, default=5)
args = ap.parse_args()
torch.set_num_threads(args.threads)


class Exportable(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x)


def timed(fn):
    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def build(layers, width, dim):
    if layers == "vit_t":  # arcface_torch vit_t: 256 wide, 12 blocks, 8 heads
        return FaceModel(FaceViT(dim=256, depth=12, heads=8, num_features=dim), dim, dim, 101).eval()
    return FaceModel(IResNet(layers, width=width, num_features=dim), dim, dim, 101).eval()


tmp = tempfile.mkdtemp()
for name, layers, width, dim in [("student_r18w16", [2, 2, 2, 2], 16, 128), ("iresnet50", [3, 4, 14, 3], 64, 512),
                                 ("vit_t", "vit_t", None, 512)]:
    m = build(layers, width, dim)
    st = os.path.join(tmp, name + ".safetensors")
    onnx_path = os.path.join(tmp, name + ".onnx")
    state = {k: v.contiguous() for k, v in m.state_dict().items()}
    w = timed(lambda: save_file(state, st))

    def read():
        fresh = build(layers, width, dim)
        fresh.load_state_dict(load_file(st), strict=True)

    r = timed(read)
    x = torch.zeros(1, 3, 112, 112)
    with torch.no_grad():
        e = timed(lambda: torch.onnx.export(Exportable(m), x, onnx_path, input_names=["input"],
                                            output_names=["embedding", "age_probs", "p_male"],
                                            dynamic_axes={"input": {0: "n"}}, opset_version=17, dynamo=False))
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    s = timed(lambda: ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"]))
    print(f"{name}: safetensors write {w:.1f} ms, read+load_state_dict {r:.1f} ms, "
          f"torch.onnx.export {e:.1f} ms, onnxruntime session {s:.1f} ms "
          f"(torch {torch.__version__}, onnxruntime {ort.__version__})")

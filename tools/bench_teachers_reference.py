"""Anchors for the face-teachers and face-detect benches, same models, inputs and batches.

    python tools/bench_teachers_reference.py [--threads 2] [--seconds 10] [--load]

- onnxruntime (each graph optimisation level of `--opt`, `--threads` intra-op threads) on models/fr_feature.onnx
  at batch 1 (its graph is traced at batch 1, so batch 32 runs 32 calls), and on
  models/age-v1.onnx + models/gender-v1.onnx at batch 32, on the parity fixture crops;
- facenet-pytorch 2.6.0 `MTCNN(keep_all=True).detect` on CPU (`torch.set_num_threads(--threads)`)
  on data/faces/obama.jpg and t1.jpg.
Prints images/s for each, to put beside `cargo bench -p face-teachers` and `-p face-detect`.
With `--load`, prints only onnxruntime's session creation (file → ready session, median of 15)
for fr_feature.onnx and for age-v1.onnx + gender-v1.onnx, beside the `teachers_load` bench
(`cargo bench -p face-teachers --bench teachers -- teachers_load`; that load also hashes the files
and runs the load-time checks).
"""
import argparse
import glob
import os
import time

import numpy as np
import onnxruntime as ort
import torch
from facenet_pytorch import MTCNN
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--seconds", type=float, default=10.0)
ap.add_argument("--load", action="store_true")
ap.add_argument("--opt", default="all,basic",
                help="onnxruntime graph optimisation levels to measure, comma-separated (all, extended, basic); "
                     "on AVX-512 hosts `all` (NCHWc layout) was 3x slower than `basic` for fr_feature and 1.5x for "
                     "age+gender, so the anchor is the best of the levels")
args = ap.parse_args()


def rate(fn, per_call):
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        fn()
        n += 1
    return n * per_call / (time.perf_counter() - start)


def crops(size, n):
    files = sorted(glob.glob(os.path.join(ROOT, "crates/face-teachers/tests/fixtures/crops", f"*_{size}.png")))
    out = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    return np.stack([out[i % len(out)] for i in range(n)])


so = ort.SessionOptions()
so.intra_op_num_threads = args.threads
so.inter_op_num_threads = 1


def session(name):
    return ort.InferenceSession(os.path.join(ROOT, "models", name), so, providers=["CPUExecutionProvider"])


if args.load:
    for label, names in [("fr_feature", ["fr_feature.onnx"]), ("age+gender", ["age-v1.onnx", "gender-v1.onnx"])]:
        times = []
        for _ in range(15):
            t = time.perf_counter()
            for n in names:
                session(n)
            times.append(time.perf_counter() - t)
        print(f"onnxruntime {ort.__version__} load {label}: median {1e3 * float(np.median(times)):.1f} ms")
    raise SystemExit(0)
mean = np.array([122.782, 117.001, 104.298], dtype=np.float32)
x112 = ((crops(112, 32).astype(np.float32) - 127.0) / 128.0).transpose(0, 3, 1, 2).copy()
x64 = ((crops(64, 32).astype(np.float32) - mean) / 256.0).transpose(0, 3, 1, 2).copy()
x32 = ((crops(32, 32).astype(np.float32) - mean) / 256.0).transpose(0, 3, 1, 2).copy()

for level in args.opt.split(","):
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, f"ORT_ENABLE_{level.upper()}")
    fr = session("fr_feature.onnx")
    age = session("age-v1.onnx")
    gender = session("gender-v1.onnx")
    print(f"onnxruntime {ort.__version__}, {args.threads} threads, graph optimisation {level}")
    print(f"fr_feature b1:       {rate(lambda: fr.run(None, {'input': x112[:1]}), 1):8.1f} img/s")
    print(f"fr_feature b32 (32x b1): {rate(lambda: [fr.run(None, {'input': x112[i:i + 1]}) for i in range(32)], 32):8.1f} img/s")
    print(f"age+gender b32:      {rate(lambda: (age.run(None, {'images': x64}), gender.run(None, {'images': x32})), 32):8.1f} img/s")
    print(f"age-v1 b32:          {rate(lambda: age.run(None, {'images': x64}), 32):8.1f} img/s")

torch.set_num_threads(args.threads)
mtcnn = MTCNN(keep_all=True, device="cpu")
for name in ["obama.jpg", "t1.jpg"]:
    img = Image.open(os.path.join(ROOT, "data/faces", name)).convert("RGB")
    with torch.no_grad():
        r = rate(lambda: mtcnn.detect(img, landmarks=True), 1)
    print(f"facenet-pytorch MTCNN {name}: {r:8.2f} img/s (torch {torch.__version__})")

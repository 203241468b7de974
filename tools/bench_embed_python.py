"""The Python anchor for `facekit embed` end to end: photo → largest face → ArcFace crop → embedding.

    python tools/bench_embed_python.py [--threads 2] [--images data/dev-faces/images] [--repeat 3]

Per photo, as `facekit embed IMAGES… --model teacher` does:
- decode (PIL), facenet-pytorch 2.6.0 `MTCNN(keep_all=True).detect(..., landmarks=True)` on CPU
  (`torch.set_num_threads(--threads)`), keep the largest box;
- a similarity transform (Umeyama, least squares) of its 5 points onto the ArcFace 112 template,
  bilinear warp (PIL);
- `(x - 127) / 128` per channel (fr_feature's recipe), RGB, NCHW; models/fr_feature.onnx on
  onnxruntime (`--threads` intra-op threads, batch 1: the graph is traced at batch 1).

Prints the whole-process wall time of one pass (imports and model loads included, as a shell
`time facekit embed …` measures) and the steady images/s of the loop alone (median of
`--repeat` passes), to put beside facekit's.
"""
import argparse
import glob
import os
import time

T0 = time.perf_counter()

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from facenet_pytorch import MTCNN  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--images", default=os.path.join(ROOT, "data/dev-faces/images"))
ap.add_argument("--repeat", type=int, default=3)
args = ap.parse_args()

torch.set_num_threads(args.threads)
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)


def similarity(src, dst):
    """The least-squares similarity (Umeyama 1991) taking src points onto dst: 2x3 matrix."""
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    e = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[1, 1] = -1
    r = u @ e @ vt
    scale = (sig * np.diag(e)).sum() / (s**2).sum(axis=1).mean()
    m = np.zeros((2, 3))
    m[:, :2] = scale * r
    m[:, 2] = md - scale * r @ ms
    return m


def crop(img, points):
    m = similarity(points, ARCFACE_112)
    inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]  # PIL maps output pixels to input
    return img.transform((112, 112), Image.AFFINE, inv.flatten().tolist(), resample=Image.BILINEAR)


so = ort.SessionOptions()
so.intra_op_num_threads = args.threads
so.inter_op_num_threads = 1
fr = ort.InferenceSession(os.path.join(ROOT, "models/fr_feature.onnx"), so, providers=["CPUExecutionProvider"])
mtcnn = MTCNN(keep_all=True, device="cpu")
files = sorted(f for f in glob.glob(os.path.join(args.images, "**", "*"), recursive=True) if os.path.isfile(f))


def one_pass():
    found = 0
    for f in files:
        img = Image.open(f).convert("RGB")
        boxes, _, points = mtcnn.detect(img, landmarks=True)
        if boxes is None:
            continue
        boxes = np.asarray(boxes, dtype=np.float64)
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        pts = np.asarray(points[int(np.argmax(areas))], dtype=np.float64)
        face = np.asarray(crop(img, pts), dtype=np.float32)
        x = ((face - 127.0) / 128.0).transpose(2, 0, 1)[None].copy()
        fr.run(None, {"input": x})
        found += 1
    return found


start = time.perf_counter()
found = one_pass()
first = time.perf_counter()
print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, {args.threads} threads, {len(files)} photos, {found} faces")
print(f"whole process, one pass (imports + loads + photos): {first - T0:.2f} s")
times = [first - start]
for _ in range(args.repeat - 1):
    t = time.perf_counter()
    one_pass()
    times.append(time.perf_counter() - t)
med = float(np.median(times))
print(f"loop alone: median {med:.2f} s = {len(files) / med:.2f} photos/s over {len(times)} passes")

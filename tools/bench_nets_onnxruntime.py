"""Anchor for face-nets' forward bench: onnxruntime on the same networks.

    python tools/reference_nets.py crates/face-nets/tests/fixtures   # writes the .onnx files
    python tools/make_nets_onnx.py          # or this, without PyTorch (the same graphs)
    python tools/bench_nets_onnxruntime.py [--cache DIR] [--threads 2]

Batch 32, 112×112, eval mode; images/s over repeated runs after a warm-up, and the GFLOP/s that
implies, counting 2 FLOPs per multiply-add of every convolution and linear layer (counted from
the ONNX graph's shapes, so the same figure serves the Rust bench).
"""
import argparse
import os
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import shape_inference

ap = argparse.ArgumentParser()
ap.add_argument("--cache", default=os.path.expanduser("~/.cache/facekit/nets"))
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--seconds", type=float, default=20.0)
ap.add_argument("--opt", default="all,basic",
                help="graph optimisation levels to measure, comma-separated (all, extended, basic); the anchor "
                     "is the best of them (`all`'s NCHWc layout wins on iResNet-50 and loses on some graphs)")
args = ap.parse_args()
BATCH = 32


def gflops_per_image(path):
    model = shape_inference.infer_shapes(onnx.load(path))
    g = model.graph
    shapes = {}
    for vi in list(g.value_info) + list(g.input) + list(g.output):
        dims = [d.dim_value if d.HasField("dim_value") else 1 for d in vi.type.tensor_type.shape.dim]
        shapes[vi.name] = dims
    inits = {i.name: list(i.dims) for i in g.initializer}
    macs = 0
    for node in g.node:
        if node.op_type == "Conv":
            w = inits[node.input[1]]
            out = shapes[node.output[0]]
            macs += int(np.prod(out[1:])) * int(np.prod(w[1:]))
        elif node.op_type in ("Gemm", "MatMul"):
            w = inits.get(node.input[1])
            if w is not None:
                macs += int(np.prod(w))
    return 2 * macs / 1e9


def bench(fn):
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds or n < 3:
        fn()
        n += 1
    return n * BATCH / (time.perf_counter() - start)


x = np.random.default_rng(0).normal(0, 0.5, (BATCH, 3, 112, 112)).astype(np.float32)
for name in ["iresnet50", "mbf"]:
    path = os.path.join(args.cache, f"{name}.onnx")
    gf = gflops_per_image(path)
    for level in args.opt.split(","):
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, f"ORT_ENABLE_{level.upper()}")
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        ips = bench(lambda: sess.run(None, {"input": x}))
        print(f"{name}: {gf:.3f} GFLOP/image; onnxruntime {ort.__version__} ({args.threads} threads, {level}): "
              f"{ips:.2f} images/s = {ips * gf:.1f} GFLOP/s")

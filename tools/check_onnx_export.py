"""Runs facekit's ONNX exports in onnxruntime (face-nets `export::write_onnx`).

    cargo run -p face-nets --release --example export_fixtures -- crates/face-nets/tests/fixtures/export
    python tools/check_onnx_export.py crates/face-nets/tests/fixtures/export [FILE.onnx …]

For each `<arch>.onnx` (or the files named): checks the graph with onnx.checker, runs it in
onnxruntime (2 intra-op threads, all graph optimisations) at batch 2 on the fixture scripts'
deterministic input and at batch 3 (the dynamic batch axis), and checks the four named outputs
against facekit's (`<arch>.facekit.json`) to 1e-4. onnxruntime's batch-2 outputs go to
`<arch>.onnxruntime.json`, which the Rust test `export::onnx_export_matches_onnxruntime` reads.
Needs onnx, onnxruntime and torch (for the shared deterministic input).
"""
import glob
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_nets import deterministic_input  # noqa: E402

OUTPUTS = ["embedding", "age_probs", "expected_age", "p_male"]


def check(path):
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == OUTPUTS, [o.name for o in sess.get_outputs()]
    inp = sess.get_inputs()[0]
    size = inp.shape[2]
    x = deterministic_input(size).numpy()
    ys = dict(zip(OUTPUTS, sess.run(None, {inp.name: x})))
    x3 = np.concatenate([x, x[:1]], axis=0)
    y3 = dict(zip(OUTPUTS, sess.run(None, {inp.name: x3})))
    for k in OUTPUTS:
        assert y3[k].shape[0] == 3 and np.abs(y3[k][:2] - ys[k]).max() < 1e-5, k
    ours = json.load(open(path.replace(".onnx", ".facekit.json")))
    diffs = {}
    for k in OUTPUTS:
        d = float(np.abs(np.array(ours[k], dtype=np.float32) - ys[k].ravel()).max())
        diffs[k] = d
        tol = 1e-3 if k == "expected_age" else 1e-4  # years
        assert d < tol, f"{path}: {k} differs from facekit's by {d}"
    doc = {"onnxruntime": ort.__version__, "input_size": size, **{k: ys[k].ravel().tolist() for k in OUTPUTS},
           "max_diff_vs_facekit": diffs}
    with open(path.replace(".onnx", ".onnxruntime.json"), "w") as f:
        json.dump(doc, f)
    ops = sorted({n.op_type for n in model.graph.node})
    print(os.path.basename(path), f"{len(model.graph.node)} nodes {ops};", {k: f"{v:.1e}" for k, v in diffs.items()})


args = sys.argv[1:]
files = [a for a in args if a.endswith(".onnx")] or sorted(glob.glob(os.path.join(args[0], "*.onnx")))
for p in files:
    check(p)

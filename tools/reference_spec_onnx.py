"""A tiny ONNX graph shaped like insightface's `genderage.onnx`, for the teacher-spec tests
(crates/face-teachers/tests/teachers/spec.rs).

    python tools/reference_spec_onnx.py crates/face-teachers/tests/fixtures/spec

Writes `genderage_tiny.onnx` (onnx.helper, opset 17, weights from a fixed seed): input `data`
[N, 3, 32, 32] → Conv 3→4 (3×3, stride 2) → Relu → GlobalAveragePool → Flatten → Gemm 4→3,
output `fc1` [N, 3]: two gender logits (female, male) then age / 100, as insightface's model
lays them out. The test reads it through a spec (`columns`, `logits` with `male_index`,
`years` with `scale` 100) and checks the readings against the graph's raw output.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(19)
w = numpy_helper.from_array((rng.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32), "w")
b = numpy_helper.from_array((rng.standard_normal(4) * 0.1).astype(np.float32), "b")
fwa = rng.standard_normal((3, 4)) * 0.5
# Age / 100 near 0.35 (a small age row and bias) so the readings stay inside 0…100 years.
fwa[2] *= 0.1
fw = numpy_helper.from_array(fwa.astype(np.float32), "fw")
fb = numpy_helper.from_array(np.array([0.1, -0.2, 0.35], dtype=np.float32), "fb")
nodes = [
    helper.make_node("Conv", ["data", "w", "b"], ["c"], name="conv", strides=[2, 2], pads=[1, 1, 1, 1]),
    helper.make_node("Relu", ["c"], ["r"], name="relu"),
    helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
    helper.make_node("Flatten", ["g"], ["f"], name="flat"),
    helper.make_node("Gemm", ["f", "fw", "fb"], ["fc1"], name="fc1", transB=1),
]
graph = helper.make_graph(
    nodes, "genderage_tiny",
    [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["n", 3, 32, 32])],
    [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["n", 3])],
    [w, b, fw, fb])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
onnx.checker.check_model(model)
path = os.path.join(out, "genderage_tiny.onnx")
onnx.save(model, path)
print(path, os.path.getsize(path), "bytes")

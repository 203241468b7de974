"""ONNX fixtures for face-nets' executor tests (crates/face-nets/tests/nets/onnx.rs).

    python tools/reference_onnx.py crates/face-nets/tests/fixtures/onnx

Needs torch, onnx and onnxruntime (PyPI). Writes, for small arcface_torch networks filled from
a fixed seed (tools/torch_nets.py):
- `<name>.onnx`: `torch.onnx.export` (TorchScript exporter, opset 17) of the eval-mode network,
  input `input` with a dynamic batch axis, output `embedding`;
- `<name>.json`: the onnxruntime output (2 intra-op threads, all graph optimisations) and the
  PyTorch output on the deterministic inputs x[i] = 0.5·sin(0.37·i) over [2, 3, 112, 112] and
  [3, 3, 112, 112] (the second checks the dynamic batch axis).

`ops_zoo.onnx` / `.json`: a hand-built graph of the operators and attributes the exports above
do not reach (Conv → BatchNorm → PRelu and Conv → Mul/Add → residual → Relu chains, pools with
ceil_mode and count_include_pad on asymmetric pads, reflect Pad, Gemm with transB/alpha/beta,
broadcasting Sub/Div/Mul, Sigmoid, Clip, Softmax) with onnxruntime's outputs for a [2, 3, 12, 12]
input; and four small graphs for the load-time checks, built with onnx.helper:
- `unsupported_op.onnx`: Conv → TopK; the executor must refuse TopK, naming the node;
- `unsupported_attr.onnx`: a Conv with `auto_pad = SAME_UPPER` (the executor takes explicit pads only);
- `wrong_size.onnx`: a Conv net declaring a 64×64 input (a spec that says 112 must be refused);
- `batch_one.onnx`: a graph declared for one image that centres it on its own mean, which a
  batch run at once would mix (the executor must run it image by image).
"""
import argparse
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper

from torch_nets import FaceViT, IResNet, MobileFaceNet, deterministic_input, randomise

ap = argparse.ArgumentParser()
ap.add_argument("out")
args = ap.parse_args()
os.makedirs(args.out, exist_ok=True)


def ort_run(path, x):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]


def export(name, model, config):
    model.eval()
    path = os.path.join(args.out, f"{name}.onnx")
    torch.onnx.export(model, deterministic_input(112), path, input_names=["input"], output_names=["embedding"],
                      dynamic_axes={"input": {0: "n"}, "embedding": {0: "n"}}, opset_version=17, dynamo=False)
    cases = []
    for n in (2, 3):
        x = deterministic_input(112) if n == 2 else (0.5 * torch.sin(0.37 * torch.arange(
            n * 3 * 112 * 112, dtype=torch.float64))).float().reshape(n, 3, 112, 112)
        with torch.no_grad():
            y_torch = model(x).numpy()
        y_ort = ort_run(path, x)
        print(name, n, "torch vs onnxruntime", float(np.abs(y_torch - y_ort).max()))
        cases.append({"batch": n, "onnxruntime": y_ort.tolist(), "torch": y_torch.tolist()})
    ops = sorted({node.op_type for node in onnx.load(path).graph.node})
    doc = {"config": config, "input_size": 112, "torch": torch.__version__, "onnxruntime": ort.__version__,
           "opset": 17, "ops": ops, "cases": cases}
    with open(os.path.join(args.out, f"{name}.json"), "w") as f:
        json.dump(doc, f)
    print(name, ops, os.path.getsize(path), "bytes")


torch.manual_seed(0)
m = IResNet(layers=[2, 2, 2, 2], width=8, num_features=32)
randomise(m, 1)
export("iresnet18_w8", m, dict(layers=[2, 2, 2, 2], width=8, num_features=32))

torch.manual_seed(0)
m = MobileFaceNet(num_features=64, blocks=(2, 2, 2, 1), scale=1)
randomise(m, 3)
export("mbf_small", m, dict(num_features=64, blocks=[2, 2, 2, 1], scale=1))

torch.manual_seed(0)
m = FaceViT(dim=32, depth=2, heads=4, num_features=24)
randomise(m, 5)
export("vit_face_small", m, dict(dim=32, depth=2, heads=4, num_features=24))


# ------------------------------------------------------------------ a graph of many operators
# Conv → BatchNorm → PRelu, Conv → Mul/Add (per channel) → residual Add → Relu (both fuse),
# pools with ceil_mode and count_include_pad on asymmetric pads, reflect Pad, Gemm with
# transB/alpha/beta, Softmax, and broadcasting elementwise ops, each output checked.
def init(name, value):
    return numpy_helper.from_array(np.asarray(value, np.float32), name)


def randn(*shape, scale=1.0):
    return rng.standard_normal(shape) * scale


rng = np.random.default_rng(7)
zoo_inits = [
    init("w1", randn(8, 3, 3, 3, scale=0.3)), init("b1", randn(8, scale=0.1)),
    init("gamma", 1 + randn(8, scale=0.1)), init("beta", randn(8, scale=0.1)),
    init("mean", randn(8, scale=0.1)), init("var", rng.uniform(0.5, 1.5, 8)),
    init("slope", rng.uniform(0, 0.3, (8, 1, 1))),
    init("w2", randn(8, 8, 3, 3, scale=0.15)), init("scale", 1 + randn(1, 8, 1, 1, scale=0.1)),
    init("shift", randn(1, 8, 1, 1, scale=0.1)),
    init("wg", randn(10, 8, scale=0.3)), init("cg", randn(10, scale=0.1)),
    init("half", 0.5), init("row", randn(8, scale=0.5)), init("lo", 0.1), init("hi", 2.0),
    numpy_helper.from_array(np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64), "pads"),
]
nodes = [
    helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
    helper.make_node("BatchNormalization", ["c1", "gamma", "beta", "mean", "var"], ["n1"], epsilon=1e-3),
    helper.make_node("PRelu", ["n1", "slope"], ["a"]),
    helper.make_node("Conv", ["a", "w2"], ["c2"], pads=[1, 1, 1, 1]),
    helper.make_node("Mul", ["c2", "scale"], ["m2"]),
    helper.make_node("Add", ["m2", "shift"], ["s2"]),
    helper.make_node("Add", ["a", "s2"], ["sum"]),
    helper.make_node("Relu", ["sum"], ["r"]),
    helper.make_node("MaxPool", ["r"], ["pooled_max"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                     ceil_mode=1),
    helper.make_node("AveragePool", ["r"], ["pooled_avg"], kernel_shape=[3, 3], strides=[2, 2],
                     pads=[0, 0, 1, 1], ceil_mode=1, count_include_pad=0),
    helper.make_node("AveragePool", ["r"], ["pooled_avg_pad"], kernel_shape=[2, 2], strides=[2, 2],
                     pads=[1, 1, 1, 1], count_include_pad=1),
    helper.make_node("Pad", ["r", "pads"], ["padded"], mode="reflect"),
    helper.make_node("GlobalAveragePool", ["r"], ["g"]),
    helper.make_node("Flatten", ["g"], ["gf"]),
    helper.make_node("Gemm", ["gf", "wg", "cg"], ["logits"], alpha=0.5, beta=2.0, transB=1),
    helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    helper.make_node("Sigmoid", ["gf"], ["sg"]),
    helper.make_node("Sub", ["sg", "half"], ["centred"]),
    helper.make_node("Clip", ["gf", "lo", "hi"], ["clipped"]),
    helper.make_node("Div", ["centred", "clipped"], ["ratio"]),
    helper.make_node("Mul", ["ratio", "row"], ["mixed"]),
]
outs = ["probabilities", "pooled_max", "pooled_avg", "pooled_avg_pad", "padded", "mixed"]
out_dims = [["n", 10], ["n", 8, 7, 7], ["n", 8, 6, 6], ["n", 8, 7, 7], ["n", 8, 15, 15], ["n", 8]]
zoo = helper.make_graph(nodes, "ops_zoo", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, 12, 12])],
                        [helper.make_tensor_value_info(o, TensorProto.FLOAT, dims) for o, dims in zip(outs, out_dims)], zoo_inits)
zoo_model = helper.make_model(zoo, opset_imports=[helper.make_opsetid("", 19)])
onnx.checker.check_model(zoo_model)
zoo_path = os.path.join(args.out, "ops_zoo.onnx")
onnx.save(zoo_model, zoo_path)
x = (0.5 * np.sin(0.37 * np.arange(2 * 3 * 12 * 12))).astype(np.float32).reshape(2, 3, 12, 12)
so = ort.SessionOptions()
so.intra_op_num_threads = 2
sess = ort.InferenceSession(zoo_path, so, providers=["CPUExecutionProvider"])
ys = sess.run(outs, {"input": x})
with open(os.path.join(args.out, "ops_zoo.json"), "w") as f:
    json.dump({"onnxruntime": ort.__version__, "outputs": {o: {"shape": list(y.shape), "values": y.ravel().tolist()}
                                                          for o, y in zip(outs, ys)}}, f)
print("ops_zoo", {o: y.shape for o, y in zip(outs, ys)})


# ------------------------------------------------------------------ bad graphs
def save(graph, name):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(args.out, name))


rng = np.random.default_rng(0)
w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
k = numpy_helper.from_array(np.array([2], np.int64), "k")
save(helper.make_graph(
    [helper.make_node("Conv", ["input", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
     helper.make_node("Flatten", ["c"], ["f"], name="flatten"),
     helper.make_node("TopK", ["f", "k"], ["values", "indices"], name="best_two")],
    "unsupported_op", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, 8, 8])],
    [helper.make_tensor_value_info("values", TensorProto.FLOAT, ["n", 2])], [w, k]), "unsupported_op.onnx")

save(helper.make_graph(
    [helper.make_node("Conv", ["input", "w"], ["embedding"], name="same_conv", auto_pad="SAME_UPPER")],
    "unsupported_attr", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, 8, 8])],
    [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["n", 4, 8, 8])], [w]), "unsupported_attr.onnx")

save(helper.make_graph(
    [helper.make_node("Conv", ["input", "w"], ["c"], name="conv", strides=[2, 2]),
     helper.make_node("GlobalAveragePool", ["c"], ["g"], name="pool"),
     helper.make_node("Flatten", ["g"], ["embedding"], name="flatten")],
    "wrong_size", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, 64, 64])],
    [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["n", 4])], [w]), "wrong_size.onnx")
# A graph declared for one image whose reshape-free arithmetic mixes a batch (a mean over
# every axis): run batched it would differ, so the executor must run it image by image.
save(helper.make_graph(
    [helper.make_node("ReduceMean", ["input"], ["mean"], name="mean_all", axes=[0, 1, 2, 3], keepdims=1),
     helper.make_node("Sub", ["input", "mean"], ["centred"], name="centre"),
     helper.make_node("Flatten", ["centred"], ["embedding"], name="flatten")],
    "batch_one", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 4, 4])],
    [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, 48])]), "batch_one.onnx")
print("bad graphs written")

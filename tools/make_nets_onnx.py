"""Writes iResNet-50 and MobileFaceNet (`mbf`) as ONNX graphs for the onnxruntime anchor, without
PyTorch: the same layers, shapes and operator order as arcface_torch's classes (and as
face-nets' modules), eval mode, random weights (the same FLOPs as trained ones).

    python tools/make_nets_onnx.py [--cache DIR]      # then tools/bench_nets_onnxruntime.py

tools/reference_nets.py exports the same networks through torch.onnx when PyTorch is installed;
this script serves machines without it. BatchNormalization nodes stay in the graph, as
torch.onnx leaves them; onnxruntime folds them into the convolutions when it loads the file.
"""
import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ap = argparse.ArgumentParser()
ap.add_argument("--cache", default=os.path.expanduser("~/.cache/facekit/nets"))
args = ap.parse_args()
rng = np.random.default_rng(0)


class Graph:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, kind):
        self.n += 1
        return f"{kind}{self.n}"

    def param(self, shape, scale):
        name = self.name("p")
        value = (rng.standard_normal(shape) * scale).astype(np.float32)
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def conv(self, x, cin, cout, k, stride, pad, groups=1):
        fan_in = cin // groups * k * k
        w = self.param([cout, cin // groups, k, k], (2.0 / fan_in) ** 0.5)
        y = self.name("conv")
        self.nodes.append(helper.make_node("Conv", [x, w], [y], kernel_shape=[k, k], strides=[stride, stride],
                                           pads=[pad] * 4, group=groups))
        return y

    def bn(self, x, c):
        gamma = self.param([c], 0.1)
        beta = self.param([c], 0.1)
        mean = self.param([c], 0.1)
        var = self.name("var")
        self.inits.append(numpy_helper.from_array(rng.uniform(0.5, 1.5, c).astype(np.float32), var))
        y = self.name("bn")
        self.nodes.append(helper.make_node("BatchNormalization", [x, gamma, beta, mean, var], [y], epsilon=1e-5))
        return y

    def prelu(self, x, c):
        slope = self.name("slope")
        self.inits.append(numpy_helper.from_array(np.full((c, 1, 1), 0.25, np.float32), slope))
        y = self.name("prelu")
        self.nodes.append(helper.make_node("PRelu", [x, slope], [y]))
        return y

    def add(self, a, b):
        y = self.name("add")
        self.nodes.append(helper.make_node("Add", [a, b], [y]))
        return y

    def head(self, x, flat, features):
        f = self.name("flat")
        self.nodes.append(helper.make_node("Flatten", [x], [f], axis=1))
        w = self.param([features, flat], (1.0 / flat) ** 0.5)
        y = self.name("fc")
        self.nodes.append(helper.make_node("Gemm", [f, w], [y], transB=1))
        bn = self.name("bn1d")
        gamma, beta, mean = self.param([features], 0.1), self.param([features], 0.1), self.param([features], 0.1)
        var = self.name("var")
        self.inits.append(numpy_helper.from_array(np.ones(features, np.float32), var))
        self.nodes.append(helper.make_node("BatchNormalization", [y, gamma, beta, mean, var], [bn]))
        return bn

    def save(self, out, path):
        model = helper.make_model(
            helper.make_graph(self.nodes, "net",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 112, 112])],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", 512])],
                              self.inits),
            opset_imports=[helper.make_opsetid("", 17)])
        onnx.checker.check_model(model)
        onnx.save(model, path)
        print("wrote", path)


def iresnet50(path):
    g = Graph()
    x = g.prelu(g.bn(g.conv("input", 3, 64, 3, 1, 1), 64), 64)
    cin = 64
    for planes, blocks in [(64, 3), (128, 4), (256, 14), (512, 3)]:
        for i in range(blocks):
            stride = 2 if i == 0 else 1
            out = g.bn(x, cin)
            out = g.prelu(g.bn(g.conv(out, cin, planes, 3, 1, 1), planes), planes)
            out = g.bn(g.conv(out, planes, planes, 3, stride, 1), planes)
            identity = x
            if stride != 1 or cin != planes:
                identity = g.bn(g.conv(x, cin, planes, 1, stride, 0), planes)
            x = g.add(out, identity)
            cin = planes
    x = g.bn(x, 512)
    g.save(g.head(x, 512 * 7 * 7, 512), path)


def mbf(path):
    g = Graph()

    def block(x, cin, cout, k, s, p, groups, act):
        y = g.bn(g.conv(x, cin, cout, k, s, p, groups), cout)
        return g.prelu(y, cout) if act else y

    def depthwise(x, cin, cout, residual, stride, groups):
        y = block(x, cin, groups, 1, 1, 0, 1, True)
        y = block(y, groups, groups, 3, stride, 1, groups, True)
        y = block(y, groups, cout, 1, 1, 0, 1, False)
        return g.add(x, y) if residual else y

    c1, c2 = 128, 256
    x = block("input", 3, c1, 3, 2, 1, 1, True)
    x = block(x, c1, c1, 3, 1, 1, 64, True)
    x = depthwise(x, c1, c1, False, 2, 128)
    for _ in range(4):
        x = depthwise(x, c1, c1, True, 1, 128)
    x = depthwise(x, c1, c2, False, 2, 256)
    for _ in range(6):
        x = depthwise(x, c2, c2, True, 1, 256)
    x = depthwise(x, c2, c2, False, 2, 512)
    for _ in range(2):
        x = depthwise(x, c2, c2, True, 1, 256)
    x = block(x, c2, 512, 1, 1, 0, 1, True)
    x = block(x, 512, 512, 7, 1, 0, 512, False)
    g.save(g.head(x, 512, 512), path)


os.makedirs(args.cache, exist_ok=True)
iresnet50(os.path.join(args.cache, "iresnet50.onnx"))
mbf(os.path.join(args.cache, "mbf.onnx"))

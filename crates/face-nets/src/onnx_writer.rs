//! Writing a face model as an ONNX graph (opset 17): each backbone family writes its own
//! nodes next to its `forward` (`write_onnx`), through the [`OnnxWriter`] here. BatchNorm
//! layers that follow a convolution or a linear layer are folded into it as they are written
//! (`fold::fold_conv` / `fold_linear`); the others become `BatchNormalization` nodes.

use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, LayerNorm, Linear, PRelu, PaddingConfig2d};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use onnx_ir::{GraphProto, ModelProto, TensorProto, ValueInfoProto};
use protobuf::Message;

use crate::error::{NetsError, Result};
use crate::fold::{fold_conv, fold_linear};

/// The opset the writer targets.
pub const OPSET: i64 = 17;

/// An attribute value.
pub(crate) enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
}

/// Builds the graph of one model: named constants (initialisers) and nodes in order.
pub(crate) struct OnnxWriter {
    graph: GraphProto,
    next: usize,
}

/// ONNX's `[top, left, bottom, right]` pads of a layer's padding.
fn fixed_pads(padding: &PaddingConfig2d, layer: &str) -> Result<[usize; 4]> {
    match padding {
        PaddingConfig2d::Valid => Ok([0; 4]),
        PaddingConfig2d::Explicit(top, left, bottom, right) => Ok([*top, *left, *bottom, *right]),
        PaddingConfig2d::Same => Err(NetsError::Config {
            name: "padding",
            message: format!("a `Same`-padded {layer} has no fixed ONNX pads"),
        }),
    }
}

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Vec<f32>> {
    crate::to_f32_vec(t)
}

impl OnnxWriter {
    pub(crate) fn new(name: &str) -> Self {
        let mut graph = GraphProto::new();
        graph.name = name.to_owned();
        Self { graph, next: 0 }
    }

    fn fresh(&mut self, stem: &str) -> String {
        self.next += 1;
        format!("{stem}_{}", self.next)
    }

    /// A float constant.
    pub(crate) fn constant(&mut self, stem: &str, dims: &[usize], data: Vec<f32>) -> String {
        let name = self.fresh(stem);
        let mut t = TensorProto::new();
        t.name = name.clone();
        t.data_type = 1; // FLOAT
        t.dims = dims.iter().map(|&d| d as i64).collect();
        t.float_data = data;
        self.graph.initializer.push(t);
        name
    }

    /// An int64 constant (shapes, axes).
    pub(crate) fn constant_i64(&mut self, stem: &str, data: Vec<i64>) -> String {
        let name = self.fresh(stem);
        let mut t = TensorProto::new();
        t.name = name.clone();
        t.data_type = 7; // INT64
        t.dims = vec![data.len() as i64];
        t.int64_data = data;
        self.graph.initializer.push(t);
        name
    }

    /// A node with one output named `output` (or a fresh name).
    pub(crate) fn node_named(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<(&str, Attr)>,
        output: Option<&str>,
    ) -> String {
        let out = output.map_or_else(|| self.fresh(&op.to_lowercase()), str::to_owned);
        self.graph.node.push(Default::default());
        let n = self.graph.node.len();
        let node = &mut self.graph.node[n - 1];
        node.op_type = op.to_owned();
        node.name = format!("{}_{n}", op.to_lowercase());
        node.input = inputs.iter().map(|s| (*s).to_owned()).collect();
        node.output = vec![out.clone()];
        for (name, value) in attrs {
            node.attribute.push(Default::default());
            let k = node.attribute.len();
            let a = &mut node.attribute[k - 1];
            a.name = name.to_owned();
            match value {
                Attr::Int(i) => {
                    a.i = i;
                    a.type_ = protobuf::EnumOrUnknown::from_i32(2); // INT
                }
                Attr::Ints(v) => {
                    a.ints = v;
                    a.type_ = protobuf::EnumOrUnknown::from_i32(7); // INTS
                }
                Attr::Float(f) => {
                    a.f = f;
                    a.type_ = protobuf::EnumOrUnknown::from_i32(1); // FLOAT
                }
            }
        }
        out
    }

    /// A node with a fresh output name.
    pub(crate) fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        self.node_named(op, inputs, attrs, None)
    }

    /// A convolution, with the BatchNorm that follows it folded in.
    pub(crate) fn conv<B: Backend>(
        &mut self,
        conv: &Conv2d<B>,
        bn: Option<&BatchNorm<B>>,
        x: &str,
    ) -> Result<String> {
        self.conv_padded(conv, bn, x, None)
    }

    /// [`OnnxWriter::conv`] with zero padding `[top, left, bottom, right]` given here instead
    /// of the layer's own (a network that pads its input before an unpadded convolution).
    pub(crate) fn conv_padded<B: Backend>(
        &mut self,
        conv: &Conv2d<B>,
        bn: Option<&BatchNorm<B>>,
        x: &str,
        pads: Option<[usize; 4]>,
    ) -> Result<String> {
        let conv = match bn {
            Some(bn) => fold_conv(conv.clone(), bn.clone()).0,
            None => conv.clone(),
        };
        let w = conv.weight.val();
        let dims = w.dims();
        let weight = self.constant("conv_w", &dims, host(w)?);
        let bias = match &conv.bias {
            Some(b) => Some(self.constant("conv_b", &[dims[0]], host(b.val())?)),
            None => None,
        };
        let pads = match (pads, &conv.padding) {
            (Some(p), PaddingConfig2d::Valid | PaddingConfig2d::Explicit(0, 0, 0, 0)) => p,
            (Some(_), _) => {
                return Err(NetsError::Config {
                    name: "padding",
                    message: "an input padding on a convolution that pads itself".into(),
                })
            }
            (None, own) => fixed_pads(own, "convolution")?,
        };
        let mut inputs = vec![x, weight.as_str()];
        if let Some(b) = &bias {
            inputs.push(b);
        }
        let [k0, k1] = conv.kernel_size;
        Ok(self.node(
            "Conv",
            &inputs,
            vec![
                ("kernel_shape", Attr::Ints(vec![k0 as i64, k1 as i64])),
                (
                    "strides",
                    Attr::Ints(conv.stride.iter().map(|&s| s as i64).collect()),
                ),
                (
                    "dilations",
                    Attr::Ints(conv.dilation.iter().map(|&s| s as i64).collect()),
                ),
                ("group", Attr::Int(conv.groups as i64)),
                // ONNX: [top, left, bottom, right].
                ("pads", Attr::Ints(pads.iter().map(|&p| p as i64).collect())),
            ],
        ))
    }

    /// An inference BatchNorm of `[N, C, …]`.
    pub(crate) fn batch_norm<B: Backend>(&mut self, bn: &BatchNorm<B>, x: &str) -> Result<String> {
        let c = bn.gamma.val().dims()[0];
        let g = self.constant("bn_scale", &[c], host(bn.gamma.val())?);
        let b = self.constant("bn_bias", &[c], host(bn.beta.val())?);
        let m = self.constant("bn_mean", &[c], host(bn.running_mean.value())?);
        let v = self.constant("bn_var", &[c], host(bn.running_var.value())?);
        Ok(self.node(
            "BatchNormalization",
            &[x, &g, &b, &m, &v],
            vec![("epsilon", Attr::Float(bn.epsilon as f32))],
        ))
    }

    /// PReLU of `[N, C, H, W]` (the slopes broadcast over channels).
    pub(crate) fn prelu<B: Backend>(&mut self, p: &PRelu<B>, x: &str) -> Result<String> {
        let a = p.alpha.val();
        let c = a.dims()[0];
        let dims: Vec<usize> = if c == 1 { vec![1] } else { vec![c, 1, 1] };
        let slope = self.constant("prelu_slope", &dims, host(a)?);
        Ok(self.node("PRelu", &[x, &slope], vec![]))
    }

    /// A linear layer (Burn's `[in, out]` weight as Gemm's B), with the BatchNorm1d that
    /// follows it folded in.
    pub(crate) fn linear<B: Backend>(
        &mut self,
        linear: &Linear<B>,
        bn: Option<&BatchNorm<B>>,
        x: &str,
    ) -> Result<String> {
        self.linear_named(linear, bn, x, None)
    }

    pub(crate) fn linear_named<B: Backend>(
        &mut self,
        linear: &Linear<B>,
        bn: Option<&BatchNorm<B>>,
        x: &str,
        output: Option<&str>,
    ) -> Result<String> {
        let linear = match bn {
            Some(bn) => fold_linear(linear.clone(), bn.clone()).0,
            None => linear.clone(),
        };
        let w = linear.weight.val();
        let dims = w.dims();
        let weight = self.constant("linear_w", &dims, host(w)?);
        let mut inputs = vec![x.to_owned(), weight];
        if let Some(b) = &linear.bias {
            inputs.push(self.constant("linear_b", &[dims[1]], host(b.val())?));
        }
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        Ok(self.node_named("Gemm", &refs, vec![], output))
    }

    /// A float tensor as a constant, with its own shape.
    pub(crate) fn tensor<B: Backend, const D: usize>(
        &mut self,
        stem: &str,
        t: Tensor<B, D>,
    ) -> Result<String> {
        let dims = t.dims();
        Ok(self.constant(stem, &dims, host(t)?))
    }

    /// A float scalar constant.
    pub(crate) fn scalar(&mut self, value: f32) -> String {
        self.constant("scalar", &[], vec![value])
    }

    /// `Reshape` to `dims` (0 copies the input's axis, −1 is inferred).
    pub(crate) fn reshape(&mut self, x: &str, dims: Vec<i64>) -> String {
        let shape = self.constant_i64("shape", dims);
        self.node("Reshape", &[x, &shape], vec![])
    }

    /// `Transpose` by `perm`.
    pub(crate) fn transpose(&mut self, x: &str, perm: Vec<i64>) -> String {
        self.node("Transpose", &[x], vec![("perm", Attr::Ints(perm))])
    }

    /// `Slice` of `[start, end)` along each of `axes`.
    pub(crate) fn slice(&mut self, x: &str, axes: Vec<i64>, starts: Vec<i64>, ends: Vec<i64>) -> String {
        let starts = self.constant_i64("starts", starts);
        let ends = self.constant_i64("ends", ends);
        let axes = self.constant_i64("axes", axes);
        self.node("Slice", &[x, &starts, &ends, &axes], vec![])
    }

    /// Constant `Pad`: `pads` is ONNX's `[begin of each axis…, end of each axis…]`.
    pub(crate) fn pad(&mut self, x: &str, pads: Vec<i64>, value: f32) -> String {
        let pads = self.constant_i64("pads", pads);
        let value = self.scalar(value);
        self.node("Pad", &[x, &pads, &value], vec![])
    }

    /// `LayerNormalization` over the last axis (ε given by the network: Burn keeps a layer
    /// norm's ε private).
    pub(crate) fn layer_norm<B: Backend>(&mut self, ln: &LayerNorm<B>, eps: f64, x: &str) -> Result<String> {
        let gamma = ln.gamma.val();
        let d = gamma.dims()[0];
        let scale = self.constant("ln_scale", &[d], host(gamma)?);
        let bias = match &ln.beta {
            Some(b) => host(b.val())?,
            None => vec![0.0; d],
        };
        let bias = self.constant("ln_bias", &[d], bias);
        Ok(self.node(
            "LayerNormalization",
            &[x, &scale, &bias],
            vec![("axis", Attr::Int(-1)), ("epsilon", Attr::Float(eps as f32))],
        ))
    }

    /// A linear layer over the last axis of a tensor of any rank (`MatMul` by Burn's `[in, out]`
    /// weight, then `Add` of the bias).
    pub(crate) fn matmul<B: Backend>(&mut self, linear: &Linear<B>, x: &str) -> Result<String> {
        let w = self.tensor("linear_w", linear.weight.val())?;
        let y = self.node("MatMul", &[x, &w], vec![]);
        Ok(match &linear.bias {
            Some(b) => {
                let b = self.tensor("linear_b", b.val())?;
                self.node("Add", &[&y, &b], vec![])
            }
            None => y,
        })
    }

    /// `MaxPool` with the layer's kernel, strides, padding, dilation and ceil mode.
    pub(crate) fn max_pool(&mut self, pool: &MaxPool2d, x: &str) -> Result<String> {
        let pads = fixed_pads(&pool.padding, "pool")?;
        let ints = |v: &[usize]| Attr::Ints(v.iter().map(|&k| k as i64).collect());
        Ok(self.node(
            "MaxPool",
            &[x],
            vec![
                ("kernel_shape", ints(&pool.kernel_size)),
                ("strides", ints(&pool.stride)),
                ("dilations", ints(&pool.dilation)),
                ("pads", ints(&pads)),
                ("ceil_mode", Attr::Int(i64::from(pool.ceil_mode))),
            ],
        ))
    }

    /// The finished model: one float image input `input` `[n, 3, size, size]` and the named
    /// outputs with their widths (`None`: `[n]`).
    pub(crate) fn finish(mut self, size: usize, outputs: &[(&str, Option<usize>)]) -> Result<Vec<u8>> {
        let value = |name: &str, dims: &[Option<usize>]| {
            let mut v = ValueInfoProto::new();
            v.name = name.to_owned();
            let t = v.type_.mut_or_insert_default().mut_tensor_type();
            t.elem_type = 1;
            let shape = t.shape.mut_or_insert_default();
            for d in dims {
                shape.dim.push(Default::default());
                if let Some(last) = shape.dim.last_mut() {
                    match d {
                        Some(n) => last.set_dim_value(*n as i64),
                        None => last.set_dim_param("n".into()),
                    }
                }
            }
            v
        };
        self.graph
            .input
            .push(value("input", &[None, Some(3), Some(size), Some(size)]));
        for (name, width) in outputs {
            let dims: Vec<Option<usize>> = match width {
                Some(w) => vec![None, Some(*w)],
                None => vec![None],
            };
            self.graph.output.push(value(name, &dims));
        }
        let mut model = ModelProto::new();
        model.ir_version = 8;
        model.producer_name = "facekit".into();
        model.producer_version = env!("CARGO_PKG_VERSION").into();
        model.opset_import.push(Default::default());
        if let Some(op) = model.opset_import.last_mut() {
            op.domain = String::new();
            op.version = OPSET;
        }
        model.graph = protobuf::MessageField::some(self.graph);
        model
            .write_to_bytes()
            .map_err(|e| NetsError::Readback(format!("ONNX serialisation: {e}")))
    }
}

//! Writing a face model as an ONNX graph (opset 17): each backbone family writes its own
//! nodes next to its `forward` (`write_onnx`), through the [`OnnxWriter`] here. BatchNorm
//! layers that follow a convolution or a linear layer are folded into it as they are written
//! (`fold::fold_conv` / `fold_linear`); the others become `BatchNormalization` nodes.

use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear, PRelu, PaddingConfig2d};
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
}

/// Builds the graph of one model: named constants (initialisers) and nodes in order.
pub(crate) struct OnnxWriter {
    graph: GraphProto,
    next: usize,
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
        let pads = match &conv.padding {
            PaddingConfig2d::Valid => [0; 4],
            PaddingConfig2d::Explicit(top, left, bottom, right) => [*top, *left, *bottom, *right],
            PaddingConfig2d::Same => {
                return Err(NetsError::Config {
                    name: "padding",
                    message: "a `Same`-padded convolution has no fixed ONNX pads".into(),
                })
            }
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
        let out = self.node("BatchNormalization", &[x, &g, &b, &m, &v], vec![]);
        // epsilon is a float attribute.
        let n = self.graph.node.len();
        let node = &mut self.graph.node[n - 1];
        node.attribute.push(Default::default());
        let a = node
            .attribute
            .last_mut()
            .ok_or_else(|| NetsError::Readback("attribute".into()))?;
        a.name = "epsilon".into();
        a.f = bn.epsilon as f32;
        a.type_ = protobuf::EnumOrUnknown::from_i32(1); // FLOAT
        Ok(out)
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

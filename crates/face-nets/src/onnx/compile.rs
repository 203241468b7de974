//! From onnx-ir's typed nodes to the executor's program: weights on the device as Burn modules,
//! attributes checked, convolution chains fused, every value given a slot.

use std::collections::{HashMap, HashSet};

use burn::module::{Param, RunningState};
use burn::nn::conv::Conv2d;
use burn::nn::pool::{AvgPool2d, MaxPool2d};
use burn::nn::{BatchNorm, LayerNormConfig, Linear, PRelu, PaddingConfig2d};
use burn::tensor::backend::Backend;
use burn::tensor::ops::PadMode;
use burn::tensor::{DType, Tensor, TensorData};
use onnx_ir::node::padding::{AutoPad, PaddingConfig2d as OnnxPadding};
use onnx_ir::{ArgType, Argument, Node, OnnxGraph, TensorDataExt};

use super::eval::{Binary, ConvAct, ConvPost, FusedConv, Op, Reduce, Unary};
use super::value::{Dyn, Scalar, Value};

/// One operation with the slots it reads and writes.
#[derive(Debug)]
pub(super) struct Step<B: Backend> {
    /// The node's name (onnx-ir's), for errors.
    pub node: String,
    /// The operator, for errors.
    pub op_name: String,
    pub op: Op<B>,
    /// A slot per input; `None` for an absent optional input.
    pub inputs: Vec<Option<usize>>,
    pub outputs: Vec<usize>,
}

/// The compiled graph.
#[derive(Debug)]
pub(super) struct Program<B: Backend> {
    pub steps: Vec<Step<B>>,
    /// Values known at load (constants), by slot.
    pub consts: Vec<(usize, Value<B>)>,
    pub slots: usize,
    pub input: usize,
    pub outputs: Vec<usize>,
    /// Per slot, the last step that reads it; `usize::MAX` for values that must outlive the
    /// run (constants, graph outputs).
    pub last_use: Vec<usize>,
}

/// A load-time refusal: the node, the operator, what is not supported and why.
#[derive(Debug)]
pub(super) struct Refusal {
    pub node: String,
    pub op: String,
    pub what: String,
    pub reason: String,
}

type Load<T> = Result<T, Refusal>;

/// onnx-ir's operator name of a node (the first word of its display).
pub(super) fn op_name(node: &Node) -> String {
    node.to_string()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_string()
}

/// An argument's value when it is known at load (an initialiser or a `Constant` node).
fn constant(arg: &Argument) -> Option<TensorData> {
    (arg.is_static() || arg.is_constant())
        .then(|| arg.value())
        .flatten()
}

fn is_int(dtype: DType) -> bool {
    !matches!(
        dtype,
        DType::F64 | DType::F32 | DType::F16 | DType::BF16 | DType::Flex32
    )
}

/// A constant as a value of the kind its type says.
fn const_value<B: Backend>(data: TensorData, ty: &ArgType, device: &B::Device) -> Option<Value<B>> {
    let int = is_int(data.dtype);
    let scalar = |d: &TensorData| {
        Some(if int {
            Scalar::Int(d.scalar_i64().ok()?)
        } else {
            Scalar::Float(d.scalar_f64().ok()?)
        })
    };
    match ty {
        ArgType::Shape(_) => Some(Value::Shape(data.to_i64_vec().ok()?)),
        ArgType::ScalarNative(_) | ArgType::ScalarTensor(_) => scalar(&data).map(Value::Scalar),
        ArgType::Tensor(_) if data.shape.is_empty() => scalar(&data).map(Value::Scalar),
        ArgType::Tensor(_) if int => {
            let dims = data.shape.to_vec();
            Some(Value::Ints(data.to_i64_vec().ok()?, dims))
        }
        ArgType::Tensor(_) => Dyn::from_data(data, device).map(Value::Tensor),
    }
}

struct Compiler<'a, B: Backend> {
    nodes: &'a [Node],
    device: &'a B::Device,
    slot_of: HashMap<String, usize>,
    slots: usize,
    consts: Vec<(usize, Value<B>)>,
    /// `Constant` nodes not yet given a slot (materialised on first use).
    pending: HashMap<String, usize>,
    /// Node indices that read each value.
    readers: HashMap<String, Vec<usize>>,
    graph_outputs: HashSet<String>,
}

/// What a conv chain absorbed: the nodes after the Conv and what they became.
struct Chain<B: Backend> {
    nodes: Vec<usize>,
    post: ConvPost<B>,
    residual: Option<String>,
    act: ConvAct<B>,
}

pub(super) fn compile<B: Backend>(graph: &OnnxGraph, device: &B::Device) -> Load<Program<B>> {
    let nodes = &graph.nodes[..];
    let mut readers: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        for arg in node.inputs() {
            if !arg.name.is_empty() {
                readers.entry(arg.name.clone()).or_default().push(i);
            }
        }
    }
    let mut c = Compiler {
        nodes,
        device,
        slot_of: HashMap::new(),
        slots: 0,
        consts: Vec::new(),
        pending: HashMap::new(),
        readers,
        graph_outputs: graph.outputs.iter().map(|a| a.name.clone()).collect(),
    };
    let input = c.new_slot(&graph.inputs[0].name);

    // Plan the fused chains first: each is emitted where its last node stood, once the
    // residual it adds has been computed.
    let mut chain_end: HashMap<usize, (usize, Chain<B>)> = HashMap::new();
    let mut absorbed = HashSet::new();
    for (i, node) in nodes.iter().enumerate() {
        if let Node::Conv2d(conv) = node {
            let co = constant(&conv.inputs[1]).map_or(0, |w| w.shape[0]);
            let chain = c.chain(&conv.outputs[0].name, co, &absorbed);
            absorbed.extend(chain.nodes.iter().copied());
            let end = chain.nodes.last().copied().unwrap_or(i);
            chain_end.insert(end, (i, chain));
        }
    }

    let mut steps = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        if let Node::Constant(_) = node {
            c.pending.insert(node.outputs()[0].name.clone(), i);
            continue;
        }
        if let Some((conv_at, chain)) = chain_end.remove(&i) {
            steps.push(c.fused(conv_at, chain)?);
            continue;
        }
        if absorbed.contains(&i) || matches!(node, Node::Conv2d(_)) {
            continue;
        }
        steps.push(c.step(node)?);
    }

    let outputs = graph
        .outputs
        .iter()
        .map(|a| {
            c.slot(a)?.ok_or_else(|| Refusal {
                node: a.name.clone(),
                op: "output".into(),
                what: "the graph output".into(),
                reason: "no node computes it".into(),
            })
        })
        .collect::<Load<Vec<_>>>()?;
    let mut last_use = vec![0; c.slots];
    for (s, step) in steps.iter().enumerate() {
        for slot in step.inputs.iter().flatten() {
            last_use[*slot] = s;
        }
    }
    for &slot in outputs.iter().chain(c.consts.iter().map(|(s, _)| s)) {
        last_use[slot] = usize::MAX;
    }
    Ok(Program {
        steps,
        consts: c.consts,
        slots: c.slots,
        input,
        outputs,
        last_use,
    })
}

fn refuse(node: &Node, what: impl Into<String>, reason: impl Into<String>) -> Refusal {
    Refusal {
        node: node.name().to_string(),
        op: op_name(node),
        what: what.into(),
        reason: reason.into(),
    }
}

/// The per-channel vector of a constant that broadcasts over `[N, C, H, W]` along C only
/// (shapes `[1, C, 1, 1]`, `[C, 1, 1]`, or one value for every channel), `co` values long.
fn per_channel(data: &TensorData, co: usize) -> Option<Vec<f32>> {
    let dims: Vec<usize> = data.shape.to_vec();
    if dims.len() > 4 {
        return None;
    }
    let mut lifted = vec![1; 4 - dims.len()];
    lifted.extend(&dims);
    let values = data.clone().convert::<f32>().to_vec::<f32>().ok()?;
    match lifted[..] {
        [1, c, 1, 1] if c == co => Some(values),
        [1, 1, 1, 1] => Some(vec![values[0]; co]),
        _ => None,
    }
}

/// A constant's values as f32, or a refusal naming `what`.
fn floats(node: &Node, data: TensorData, what: &str) -> Load<Vec<f32>> {
    data.convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| refuse(node, what, format!("{e:?}")))
}

fn tensor1<B: Backend>(values: Vec<f32>, device: &B::Device) -> Tensor<B, 1> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

impl<B: Backend> Compiler<'_, B> {
    fn new_slot(&mut self, name: &str) -> usize {
        let s = self.slots;
        self.slots += 1;
        if !name.is_empty() {
            self.slot_of.insert(name.to_string(), s);
        }
        s
    }

    /// The slot holding `arg`: a computed value, a `Constant` node's output, or an
    /// initialiser (given a slot here); `None` for an absent optional input.
    fn slot(&mut self, arg: &Argument) -> Load<Option<usize>> {
        if arg.is_optional() {
            return Ok(None);
        }
        if let Some(&s) = self.slot_of.get(&arg.name) {
            return Ok(Some(s));
        }
        let data = match self.pending.get(&arg.name) {
            Some(&i) => self.nodes[i].inputs().first().and_then(constant),
            None => constant(arg),
        };
        let Some(data) = data else {
            return Err(Refusal {
                node: arg.name.clone(),
                op: "value".into(),
                what: format!("the value `{}`", arg.name),
                reason: "no node computes it and it is not a constant".into(),
            });
        };
        let value = const_value::<B>(data, &arg.ty, self.device).ok_or_else(|| Refusal {
            node: arg.name.clone(),
            op: "constant".into(),
            what: format!("the constant `{}` of type {}", arg.name, arg.ty),
            reason: "its data cannot be read as that type".into(),
        })?;
        let s = self.new_slot(&arg.name);
        self.consts.push((s, value));
        Ok(Some(s))
    }

    /// The one node reading `name`, when exactly one does and it is not a graph output.
    fn sole_reader(&self, name: &str, taken: &HashSet<usize>) -> Option<usize> {
        if self.graph_outputs.contains(name) {
            return None;
        }
        match self.readers.get(name).map(Vec::as_slice) {
            Some([j]) if !taken.contains(j) => Some(*j),
            _ => None,
        }
    }

    /// The nodes after a convolution that fold into its call: BatchNormalization or a
    /// per-channel `Mul` (+ `Add`), then a residual `Add`, then `Relu` or a per-channel `PRelu`.
    ///
    /// A node an earlier chain took is not taken again (an `Add` of two convolutions' outputs
    /// belongs to the first; the other is its residual).
    fn chain(&self, conv_out: &str, co: usize, taken: &HashSet<usize>) -> Chain<B> {
        let mut chain = Chain {
            nodes: Vec::new(),
            post: ConvPost::None,
            residual: None,
            act: ConvAct::Identity,
        };
        let mut cur = conv_out.to_string();
        let other = |node: &Node, cur: &str| -> Option<Argument> {
            let ins = node.inputs();
            match ins {
                [a, b] if a.name == cur => Some(b.clone()),
                [a, b] if b.name == cur => Some(a.clone()),
                _ => None,
            }
        };
        // The BatchNorm or the affine pair.
        if let Some(j) = self.sole_reader(&cur, taken) {
            match &self.nodes[j] {
                Node::BatchNormalization(bn) if bn.inputs[0].name == cur => {
                    if let Some(module) = self.batch_norm(&self.nodes[j], co) {
                        chain.post = ConvPost::Bn(Box::new(module));
                        chain.nodes.push(j);
                        cur = bn.outputs[0].name.clone();
                    }
                }
                node @ Node::Mul(m) => {
                    let scale = other(node, &cur)
                        .and_then(|a| constant(&a))
                        .and_then(|d| per_channel(&d, co));
                    if let Some(scale) = scale {
                        chain.nodes.push(j);
                        cur = m.outputs[0].name.clone();
                        let mut shift = vec![0.0; co];
                        if let Some(k) = self.sole_reader(&cur, taken) {
                            if let node @ Node::Add(a) = &self.nodes[k] {
                                let found = other(node, &cur)
                                    .and_then(|a| constant(&a))
                                    .and_then(|d| per_channel(&d, co));
                                if let Some(found) = found {
                                    shift = found;
                                    chain.nodes.push(k);
                                    cur = a.outputs[0].name.clone();
                                }
                            }
                        }
                        let as4 = |v: Vec<f32>| tensor1::<B>(v, self.device).reshape([1, co, 1, 1]);
                        chain.post = ConvPost::Affine(as4(scale), as4(shift));
                    }
                }
                _ => {}
            }
        }
        // The residual.
        if let Some(j) = self.sole_reader(&cur, taken) {
            if let node @ Node::Add(a) = &self.nodes[j] {
                if let Some(res) = other(node, &cur) {
                    let rank4 = matches!(&res.ty, ArgType::Tensor(t) if t.rank == 4);
                    if rank4 && constant(&res).is_none() && res.name != cur {
                        chain.residual = Some(res.name.clone());
                        chain.nodes.push(j);
                        cur = a.outputs[0].name.clone();
                    }
                }
            }
        }
        // The activation.
        if let Some(j) = self.sole_reader(&cur, taken) {
            match &self.nodes[j] {
                Node::Relu(r) if r.inputs[0].name == cur => {
                    chain.act = ConvAct::Relu;
                    chain.nodes.push(j);
                }
                Node::PRelu(p) if p.inputs[0].name == cur => {
                    if let Some(slope) = p
                        .inputs
                        .get(1)
                        .and_then(constant)
                        .and_then(|d| per_channel(&d, co))
                    {
                        chain.act = ConvAct::PRelu(PRelu {
                            alpha: Param::from_tensor(tensor1(slope, self.device)),
                            alpha_value: 0.0,
                        });
                        chain.nodes.push(j);
                    }
                }
                _ => {}
            }
        }
        chain
    }

    /// An eval-mode BatchNorm module from a node whose parameters are constants of `c` values.
    fn batch_norm(&self, node: &Node, c: usize) -> Option<BatchNorm<B>> {
        let Node::BatchNormalization(bn) = node else {
            return None;
        };
        let onnx_ir::node::batch_norm::BatchNormConfig::Static(cfg) = &bn.config else {
            return None;
        };
        let vec = |k: usize| -> Option<Tensor<B, 1>> {
            let d = constant(bn.inputs.get(k)?)?;
            let v = d.convert::<f32>().to_vec::<f32>().ok()?;
            (v.len() == c).then(|| tensor1(v, self.device))
        };
        Some(BatchNorm {
            gamma: Param::from_tensor(vec(1)?),
            beta: Param::from_tensor(vec(2)?),
            running_mean: RunningState::new(vec(3)?),
            running_var: RunningState::new(vec(4)?),
            momentum: cfg.momentum,
            epsilon: cfg.epsilon,
        })
    }

    fn conv(&self, node: &Node) -> Load<Conv2d<B>> {
        let Node::Conv2d(n) = node else {
            return Err(refuse(node, "the node", "not a convolution"));
        };
        let cfg = &n.config;
        let weight = constant(&n.inputs[1]).ok_or_else(|| {
            refuse(
                node,
                "weights computed at run time",
                "the weights must be constants",
            )
        })?;
        let bias =
            match n.inputs.get(2).filter(|a| !a.is_optional()) {
                Some(b) => Some(constant(b).ok_or_else(|| {
                    refuse(node, "a bias computed at run time", "the bias must be a constant")
                })?),
                None => None,
            };
        let padding = match (&cfg.auto_pad, &cfg.padding) {
            (AutoPad::NotSet | AutoPad::Valid, OnnxPadding::Valid) => PaddingConfig2d::Valid,
            (AutoPad::NotSet, OnnxPadding::Explicit(t, l, b, r)) => PaddingConfig2d::Explicit(*t, *l, *b, *r),
            (other, _) => {
                return Err(refuse(
                    node,
                    format!("attribute auto_pad = {other:?}"),
                    "only explicit pads are supported",
                ))
            }
        };
        let to_device = |d: TensorData| Tensor::<B, 1>::from_data(d.convert::<f32>(), self.device);
        let w = weight.convert::<f32>();
        Ok(Conv2d {
            weight: Param::from_tensor(Tensor::from_data(w, self.device)),
            bias: bias.map(|b| Param::from_tensor(to_device(b))),
            stride: cfg.stride,
            kernel_size: cfg.kernel_size,
            dilation: cfg.dilation,
            groups: cfg.groups,
            padding,
        })
    }

    fn fused(&mut self, conv_at: usize, chain: Chain<B>) -> Load<Step<B>> {
        let node = &self.nodes[conv_at];
        let conv = self.conv(node)?;
        let x = self.slot(&node.inputs()[0])?;
        let residual = match &chain.residual {
            Some(name) => Some(*self.slot_of.get(name).ok_or_else(|| {
                refuse(
                    node,
                    format!("the residual `{name}`"),
                    "it is computed after the chain that adds it",
                )
            })?),
            None => None,
        };
        let last = chain.nodes.last().map_or(node, |&j| &self.nodes[j]);
        let out_name = last.outputs()[0].name.clone();
        let mut label = op_name(node);
        for &j in &chain.nodes {
            label.push('+');
            label.push_str(&op_name(&self.nodes[j]));
        }
        let mut inputs = vec![x];
        if residual.is_some() {
            inputs.push(residual);
        }
        Ok(Step {
            node: node.name().to_string(),
            op_name: label,
            op: Op::Conv(Box::new(FusedConv {
                conv,
                post: chain.post,
                act: chain.act,
            })),
            inputs,
            outputs: vec![self.new_slot(&out_name)],
        })
    }

    /// A node other than a fused chain: its operation and the inputs it reads at run time.
    fn step(&mut self, node: &Node) -> Load<Step<B>> {
        let (op, read): (Op<B>, Vec<usize>) = self.op(node)?;
        let inputs = read
            .iter()
            .map(|&k| match node.inputs().get(k) {
                Some(arg) => self.slot(arg),
                None => Ok(None),
            })
            .collect::<Load<Vec<_>>>()?;
        let outputs = match &op {
            Op::Split { .. } => node.outputs().iter().map(|a| self.new_slot(&a.name)).collect(),
            _ => vec![self.new_slot(&node.outputs()[0].name)],
        };
        Ok(Step {
            node: node.name().to_string(),
            op_name: op_name(node),
            op,
            inputs,
            outputs,
        })
    }

    /// The operation of `node` and the indices of the inputs it reads at run time.
    fn op(&self, node: &Node) -> Load<(Op<B>, Vec<usize>)> {
        let all: Vec<usize> = (0..node.inputs().len()).collect();
        let first = vec![0];
        let dynamic = |what: &str| refuse(node, what.to_string(), "only constant values are supported here");
        Ok(match node {
            Node::BatchNormalization(_) => {
                let c = node
                    .inputs()
                    .get(1)
                    .and_then(constant)
                    .map_or(0, |d| d.num_elements());
                let bn = self.batch_norm(node, c).ok_or_else(|| {
                    refuse(
                        node,
                        "statistics or scale computed at run time, or training mode",
                        "only an eval-mode BatchNormalization with constant parameters is supported",
                    )
                })?;
                (Op::BatchNorm(bn), first)
            }
            Node::PRelu(_) => (Op::PRelu, vec![0, 1]),
            Node::Linear(n) => {
                let w = constant(&n.inputs[1]).ok_or_else(|| dynamic("weights computed at run time"))?;
                let w: Tensor<B, 2> = Tensor::from_data(w.convert::<f32>(), self.device);
                let w = if n.config.transpose_weight {
                    w.transpose()
                } else {
                    w
                };
                let outputs = w.dims()[1];
                let bias = self.bias(node, 2, outputs, || format!("the layer has {outputs} outputs"))?;
                (
                    Op::Linear(Linear {
                        weight: Param::from_tensor(w),
                        bias,
                    }),
                    first,
                )
            }
            Node::Gemm(n) => (
                Op::Gemm {
                    alpha: f64::from(n.config.alpha),
                    beta: f64::from(n.config.beta),
                    trans_a: n.config.trans_a != 0,
                    trans_b: n.config.trans_b != 0,
                },
                all,
            ),
            Node::MatMul(_) => (Op::MatMul, all),
            Node::Add(_) => (Op::Binary(Binary::Add), all),
            Node::Sub(_) => (Op::Binary(Binary::Sub), all),
            Node::Mul(_) => (Op::Binary(Binary::Mul), all),
            Node::Div(_) => (Op::Binary(Binary::Div), all),
            Node::Pow(_) => (Op::Binary(Binary::Pow), all),
            Node::Relu(_) => (Op::Unary(Unary::Relu), first),
            Node::Sigmoid(_) => (Op::Unary(Unary::Sigmoid), first),
            Node::Tanh(_) => (Op::Unary(Unary::Tanh), first),
            Node::Exp(_) => (Op::Unary(Unary::Exp), first),
            Node::Log(_) => (Op::Unary(Unary::Log), first),
            Node::Sqrt(_) => (Op::Unary(Unary::Sqrt), first),
            Node::Neg(_) => (Op::Unary(Unary::Neg), first),
            Node::Abs(_) => (Op::Unary(Unary::Abs), first),
            Node::Reciprocal(_) => (Op::Unary(Unary::Reciprocal), first),
            Node::Erf(_) => (Op::Unary(Unary::Erf), first),
            Node::Gelu(_) => (Op::Unary(Unary::Gelu), first),
            Node::LeakyRelu(n) => (Op::LeakyRelu(n.config.alpha), first),
            Node::Clip(n) => {
                use onnx_ir::node::clip::ClipInput;
                let bound = |b: &Option<ClipInput>| match b {
                    None => Ok(None),
                    Some(ClipInput::Static(v)) => Ok(Some(*v)),
                    Some(ClipInput::Runtime(_)) => Err(dynamic("bounds computed at run time")),
                };
                (Op::Clip(bound(&n.config.min)?, bound(&n.config.max)?), first)
            }
            Node::Softmax(n) => (Op::Softmax(n.config.axis), first),
            Node::LayerNormalization(n) => {
                let gamma = n
                    .inputs
                    .get(1)
                    .and_then(constant)
                    .ok_or_else(|| dynamic("a scale computed at run time"))?;
                let gamma = floats(node, gamma, "the scale")?;
                let d = gamma.len();
                let mut norm = LayerNormConfig::new(d)
                    .with_epsilon(n.config.epsilon)
                    .init::<B>(self.device);
                norm.gamma = Param::from_tensor(tensor1(gamma, self.device));
                norm.beta = self.bias(node, 2, d, || format!("the scale has {d}"))?;
                if node.outputs().len() > 1
                    && node.outputs()[1..]
                        .iter()
                        .any(|o| self.readers.contains_key(&o.name))
                {
                    return Err(refuse(
                        node,
                        "the Mean / InvStdDev outputs",
                        "only the normalised output is computed",
                    ));
                }
                (Op::LayerNorm(norm, n.config.epsilon), first)
            }
            Node::MaxPool2d(n) => {
                let c = &n.config;
                let padding = self.pool_padding(node, &c.auto_pad, &c.padding)?;
                let pool = MaxPool2d {
                    stride: c.strides,
                    kernel_size: c.kernel_size,
                    padding,
                    dilation: c.dilation,
                    ceil_mode: c.ceil_mode,
                };
                (Op::MaxPool(pool), first)
            }
            Node::AveragePool2d(n) => {
                let c = &n.config;
                if c.dilation != [1, 1] {
                    return Err(refuse(
                        node,
                        format!("attribute dilations = {:?}", c.dilation),
                        "average pooling is supported without dilation",
                    ));
                }
                let padding = self.pool_padding(node, &AutoPad::NotSet, &c.padding)?;
                let pool = AvgPool2d {
                    stride: c.strides,
                    kernel_size: c.kernel_size,
                    padding,
                    count_include_pad: c.count_include_pad,
                    ceil_mode: c.ceil_mode,
                };
                (Op::AvgPool(pool), first)
            }
            Node::GlobalAveragePool(_) => (Op::GlobalAvgPool, first),
            Node::Pad(n) => {
                use onnx_ir::node::pad::{ConstantValueInput, PadInput, PadMode as OnnxPadMode};
                let pads = match &n.config.pads {
                    PadInput::Static(p) => p.clone(),
                    PadInput::Runtime(_) => return Err(dynamic("pads computed at run time")),
                };
                let value = match &n.config.constant_value {
                    ConstantValueInput::Static(v) => *v,
                    ConstantValueInput::Runtime(_) => {
                        return Err(dynamic("a pad value computed at run time"))
                    }
                };
                let mode = match n.config.mode {
                    OnnxPadMode::Constant => PadMode::Constant(value),
                    OnnxPadMode::Reflect => PadMode::Reflect,
                    OnnxPadMode::Edge => PadMode::Edge,
                };
                (Op::Pad(pads, mode), first)
            }
            Node::Flatten(n) => (Op::Flatten(n.config.axis), first),
            Node::Reshape(n) => {
                use onnx_ir::node::reshape::ReshapeInput;
                let one_image = match &n.inputs[0].ty {
                    ArgType::Tensor(t) => {
                        t.static_shape.as_ref().and_then(|s| s.first().copied()) == Some(Some(1))
                    }
                    _ => false,
                };
                match &n.config.shape {
                    ReshapeInput::Static(s) => (
                        Op::Reshape(Some(s.clone()), one_image && s.first() == Some(&1)),
                        first,
                    ),
                    ReshapeInput::Runtime(r) => (Op::Reshape(None, false), vec![0, r.input_index]),
                }
            }
            Node::Transpose(n) => {
                let perm = n
                    .config
                    .perm
                    .iter()
                    .map(|&p| {
                        usize::try_from(p)
                            .map_err(|_| refuse(node, format!("perm {:?}", n.config.perm), "negative axis"))
                    })
                    .collect::<Load<Vec<_>>>()?;
                (Op::Transpose(perm), first)
            }
            Node::Concat(n) => (Op::Concat(n.config.axis), all),
            Node::Split(n) => {
                use onnx_ir::node::split::SplitSizesInput;
                let parts = node.outputs().len();
                let sizes = match (&n.config.split_sizes, n.config.split_size) {
                    (Some(SplitSizesInput::Static(s)), _) => Some(s.clone()),
                    (Some(SplitSizesInput::Runtime(_)), _) => {
                        return Err(dynamic("split sizes computed at run time"))
                    }
                    (None, _) => None,
                };
                (
                    Op::Split {
                        axis: n.config.axis,
                        sizes,
                        parts,
                    },
                    first,
                )
            }
            Node::Squeeze(n) => {
                use onnx_ir::node::squeeze::SqueezeInput;
                let axes = match &n.config.axes {
                    Some(SqueezeInput::Static(a)) => Some(a.clone()),
                    Some(SqueezeInput::Runtime(_)) => return Err(dynamic("axes computed at run time")),
                    None => None,
                };
                (Op::Squeeze(axes), first)
            }
            Node::Unsqueeze(n) => {
                use onnx_ir::node::unsqueeze::UnsqueezeConfig;
                match &n.config {
                    UnsqueezeConfig::Static(a) => (Op::Unsqueeze(a.clone()), first),
                    UnsqueezeConfig::Runtime(_) => return Err(dynamic("axes computed at run time")),
                }
            }
            Node::Gather(n) => (Op::Gather(n.config.axis), vec![0, 1]),
            Node::Slice(n) => {
                use onnx_ir::node::slice::SliceInput;
                let get = |s: &SliceInput| match s {
                    SliceInput::Static(v) => Ok(v.clone()),
                    SliceInput::Runtime(_) => Err(dynamic("slice bounds computed at run time")),
                };
                let starts = get(&n.config.starts)?;
                let ends = get(&n.config.ends)?;
                let axes = n.config.axes.as_ref().map(get).transpose()?.unwrap_or_default();
                let steps = n.config.steps.as_ref().map(get).transpose()?.unwrap_or_default();
                if let Some(s) = steps.iter().find(|&&s| s < 1) {
                    return Err(refuse(
                        node,
                        format!("step {s}"),
                        "only positive slice steps are supported",
                    ));
                }
                (Op::Slice(starts, ends, axes, steps), first)
            }
            Node::Shape(n) => (Op::Shape(n.config.start, n.config.end), first),
            Node::Cast(n) => (Op::Cast(n.config.to), first),
            Node::ReduceMean(n) => (
                Op::Reduce(Reduce::Mean, n.config.dims.clone(), n.config.keepdims),
                first,
            ),
            Node::ReduceSum(n) => (
                Op::Reduce(Reduce::Sum, n.config.dims.clone(), n.config.keepdims),
                first,
            ),
            Node::ReduceMax(n) => (
                Op::Reduce(Reduce::Max, n.config.dims.clone(), n.config.keepdims),
                first,
            ),
            Node::Identity(_) => (Op::Identity, first),
            Node::Dropout(_) => {
                if node.outputs().len() > 1 && self.readers.contains_key(&node.outputs()[1].name) {
                    return Err(refuse(
                        node,
                        "the mask output",
                        "inference computes no dropout mask",
                    ));
                }
                (Op::Identity, first)
            }
            other => {
                return Err(refuse(
                    other,
                    format!("the {} operator", op_name(other)),
                    "the executor does not implement it",
                ))
            }
        })
    }

    /// The optional constant vector at input `k` as a parameter of `len` values (a bias);
    /// `expected` says what sets that length, for the refusal.
    fn bias(
        &self,
        node: &Node,
        k: usize,
        len: usize,
        expected: impl FnOnce() -> String,
    ) -> Load<Option<Param<Tensor<B, 1>>>> {
        let Some(arg) = node.inputs().get(k).filter(|a| !a.is_optional()) else {
            return Ok(None);
        };
        let data = constant(arg).ok_or_else(|| {
            refuse(
                node,
                "a bias computed at run time",
                "only constant values are supported here",
            )
        })?;
        let v = floats(node, data, "the bias")?;
        if v.len() != len {
            return Err(refuse(node, format!("a bias of {} values", v.len()), expected()));
        }
        Ok(Some(Param::from_tensor(tensor1(v, self.device))))
    }

    fn pool_padding(&self, node: &Node, auto: &AutoPad, pad: &OnnxPadding) -> Load<PaddingConfig2d> {
        match (auto, pad) {
            (AutoPad::NotSet | AutoPad::Valid, OnnxPadding::Valid) => Ok(PaddingConfig2d::Valid),
            (AutoPad::NotSet, OnnxPadding::Explicit(t, l, b, r)) => {
                Ok(PaddingConfig2d::Explicit(*t, *l, *b, *r))
            }
            (other, _) => Err(refuse(
                node,
                format!("attribute auto_pad = {other:?}"),
                "only explicit pads are supported",
            )),
        }
    }
}

//! ONNX models at run time, on any Burn backend.
//!
//! [`OnnxModel::load`] reads an `.onnx` file, parses it with `onnx-ir` (burn-onnx's own parser:
//! attributes checked, opset defaults applied, initialisers lifted), and turns its nodes into a
//! program of Burn operations with the weights on the device. [`OnnxModel::run`] executes it on
//! an input tensor; the same file runs on NdArray, Candle or CUDA.
//!
//! - **Fused like the hand-written networks.** A convolution followed by BatchNormalization (or
//!   by a per-channel `Mul`/`Add` pair), a residual `Add` and `Relu`/`PRelu` becomes one call of
//!   [`crate::ops::conv2d_fused`] / [`crate::ops::conv2d_affine`]; linear layers, pools, GELU and
//!   BatchNorm go through the same [`crate::ops`] calls as the backbones. On the default CPU
//!   device that is the fast engine.
//! - **Refused, never guessed.** An operator, an attribute or a constant the executor does not
//!   implement is refused when the file loads, naming the node, the operator and what is not
//!   supported (see [`OnnxError`]). Operators: Conv (2-D), BatchNormalization, PRelu, Relu,
//!   LeakyRelu, Sigmoid, Tanh, Gelu, Erf, Exp, Log, Sqrt, Neg, Abs, Reciprocal, Add, Sub, Mul, Div,
//!   Pow, MatMul, Gemm, Flatten, Reshape, Transpose, Concat, Split, Squeeze, Unsqueeze, Gather,
//!   Slice, Shape, Cast, Constant, Identity, Dropout, MaxPool, AveragePool, GlobalAveragePool,
//!   Softmax, Clip, Pad, LayerNormalization, ReduceMean, ReduceSum, ReduceMax — with numpy
//!   broadcasting and `count_include_pad` / `ceil_mode` as ONNX defines them.
//! - **One image input.** Face models take one `[N, C, H, W]` tensor. A graph exported with a
//!   fixed batch of 1 (like the bundled `fr_feature.onnx`) still takes any batch: its reshapes
//!   whose leading 1 is that batch copy the input's first axis instead, when a probe at load
//!   shows this gives the same outputs as running image by image; otherwise it runs image by
//!   image. onnxruntime refuses such a batch.
//!
//! ```no_run
//! use burn::backend::NdArray;
//! use burn::tensor::Tensor;
//! use face_nets::onnx::OnnxModel;
//!
//! let device = Default::default();
//! let model = OnnxModel::<NdArray>::load("models/fr_feature.onnx", &device)?;
//! let x = Tensor::<NdArray, 4>::zeros([2, 3, 112, 112], &device);
//! let outputs = model.run(x)?;
//! let embedding = outputs.tensor::<2>(&model.outputs()[0].name)?; // [2, 512]
//! # Ok::<(), face_nets::onnx::OnnxError>(())
//! ```

mod compile;
mod eval;
mod value;

use std::fmt;
use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use protobuf::Message;

use compile::{Program, Refusal};
use value::{Dyn, Value};

/// Errors of loading and running an ONNX model; each names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnnxError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Read {
        /// The model file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid ONNX model (protobuf, graph or type inference).
    #[error("{file}: not a valid ONNX model: {reason}")]
    Parse {
        /// The model file.
        file: PathBuf,
        /// What the parser reported.
        reason: String,
    },
    /// The graph uses something the executor does not implement.
    #[error("{file}: node `{node}` ({op}): {what} is not supported ({reason})")]
    Unsupported {
        /// The model file.
        file: PathBuf,
        /// The node's name (the file's own where the check ran on it, onnx-ir's otherwise).
        node: String,
        /// The operator.
        op: String,
        /// The operator, attribute or value not supported.
        what: String,
        /// Why, or what is supported instead.
        reason: String,
    },
    /// The graph's inputs are not one image tensor.
    #[error("{file}: {reason}")]
    Inputs {
        /// The model file.
        file: PathBuf,
        /// What is wrong with the inputs.
        reason: String,
    },
    /// An input tensor whose shape the graph does not take.
    #[error("{file}: input `{input}` is declared {declared}, got a tensor of shape {got:?}")]
    InputShape {
        /// The model file.
        file: PathBuf,
        /// The graph input.
        input: String,
        /// Its declared shape (`?` for a free axis).
        declared: String,
        /// The shape given.
        got: Vec<usize>,
    },
    /// A requested output is not in the graph.
    #[error("{file}: the graph has no output `{name}` (its outputs: {available})")]
    NoOutput {
        /// The model file.
        file: PathBuf,
        /// The name asked for.
        name: String,
        /// The graph's output names.
        available: String,
    },
    /// An output is not a float tensor of the rank asked for.
    #[error("{file}: output `{name}` is {found}, not a rank-{rank} tensor")]
    OutputKind {
        /// The model file.
        file: PathBuf,
        /// The output.
        name: String,
        /// What it is.
        found: String,
        /// The rank asked for.
        rank: usize,
    },
    /// A node could not compute on the values it received.
    #[error("{file}: node `{node}` ({op}): {reason}")]
    Run {
        /// The model file.
        file: PathBuf,
        /// The node (onnx-ir's name).
        node: String,
        /// The operator.
        op: String,
        /// What went wrong.
        reason: String,
    },
}

/// A graph input or output: its name and declared dimensions (`None` for a free axis).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnnxIo {
    /// The name in the file.
    pub name: String,
    /// The declared dimensions; `None` where the axis is symbolic or unknown.
    pub dims: Vec<Option<usize>>,
}

impl fmt::Display for OnnxIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self
            .dims
            .iter()
            .map(|d| d.map_or("?".to_string(), |d| d.to_string()))
            .collect();
        write!(f, "{} [{}]", self.name, dims.join(", "))
    }
}

/// An ONNX model loaded for a backend: its program, weights on the device.
pub struct OnnxModel<B: Backend> {
    file: PathBuf,
    input: OnnxIo,
    outputs: Vec<OnnxIo>,
    program: Program<B>,
    device: B::Device,
    /// A graph declared for one image runs whole batches (checked by a probe at load).
    batched: bool,
}

impl<B: Backend> fmt::Debug for OnnxModel<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnnxModel")
            .field("file", &self.file)
            .field("input", &self.input)
            .field("outputs", &self.outputs)
            .field("steps", &self.program.steps.len())
            .finish()
    }
}

/// The operators the executor implements, as ONNX names them (checked on the file before
/// onnx-ir parses it, so the error names the file's own node).
const SUPPORTED: &[&str] = &[
    "Conv",
    "BatchNormalization",
    "PRelu",
    "Relu",
    "LeakyRelu",
    "Sigmoid",
    "Tanh",
    "Gelu",
    "Erf",
    "Exp",
    "Log",
    "Sqrt",
    "Neg",
    "Abs",
    "Reciprocal",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "MatMul",
    "Gemm",
    "Flatten",
    "Reshape",
    "Transpose",
    "Concat",
    "Split",
    "Squeeze",
    "Unsqueeze",
    "Gather",
    "Slice",
    "Shape",
    "Cast",
    "Constant",
    "Identity",
    "Dropout",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Softmax",
    "Clip",
    "Pad",
    "LayerNormalization",
    "ReduceMean",
    "ReduceSum",
    "ReduceMax",
];

/// The names and declared dimensions of the file's image input and its outputs, after checking
/// every node's operator (and the attributes onnx-ir would not check) against [`SUPPORTED`].
fn scan(file: &Path, bytes: &[u8]) -> Result<(OnnxIo, Vec<OnnxIo>), OnnxError> {
    let model = onnx_ir::ModelProto::parse_from_bytes(bytes).map_err(|e| OnnxError::Parse {
        file: file.to_path_buf(),
        reason: e.to_string(),
    })?;
    let graph = model.graph.as_ref().ok_or_else(|| OnnxError::Parse {
        file: file.to_path_buf(),
        reason: "the model has no graph".into(),
    })?;
    for (i, node) in graph.node.iter().enumerate() {
        let name = if node.name.is_empty() {
            format!("#{i}")
        } else {
            node.name.clone()
        };
        let unsupported = |what: String, reason: &str| OnnxError::Unsupported {
            file: file.to_path_buf(),
            node: name.clone(),
            op: node.op_type.clone(),
            what,
            reason: reason.to_string(),
        };
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(unsupported(
                format!("the operator {}::{}", node.domain, node.op_type),
                "only the default ONNX domain is implemented",
            ));
        }
        if !SUPPORTED.contains(&node.op_type.as_str()) {
            return Err(unsupported(
                format!("the {} operator", node.op_type),
                "the executor does not implement it",
            ));
        }
        for attr in &node.attribute {
            let text = String::from_utf8_lossy(&attr.s);
            if node.op_type == "Gelu" && attr.name == "approximate" && text != "none" {
                return Err(unsupported(
                    format!("attribute approximate = {text}"),
                    "only the exact GELU is implemented",
                ));
            }
        }
    }
    let initialisers: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let io = |v: &onnx_ir::ValueInfoProto| {
        let dims = v
            .type_
            .as_ref()
            .and_then(|t| t.tensor_type().shape.as_ref())
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| d.dim_value().try_into().ok().filter(|&d: &usize| d > 0))
                    .collect()
            })
            .unwrap_or_default();
        OnnxIo {
            name: v.name.clone(),
            dims,
        }
    };
    let inputs: Vec<OnnxIo> = graph
        .input
        .iter()
        .filter(|v| !initialisers.contains(v.name.as_str()))
        .map(io)
        .collect();
    let [input] = &inputs[..] else {
        let names: Vec<String> = inputs.iter().map(ToString::to_string).collect();
        return Err(OnnxError::Inputs {
            file: file.to_path_buf(),
            reason: format!(
                "the executor runs graphs of one image input; this one has {} ({})",
                names.len(),
                names.join(", ")
            ),
        });
    };
    if input.dims.len() != 4 {
        return Err(OnnxError::Inputs {
            file: file.to_path_buf(),
            reason: format!("the input {input} is not an image batch [N, C, H, W]"),
        });
    }
    Ok((input.clone(), graph.output.iter().map(io).collect()))
}

impl<B: Backend> OnnxModel<B> {
    /// Reads, checks and compiles an ONNX file for `device`.
    pub fn load(file: impl AsRef<Path>, device: &B::Device) -> Result<Self, OnnxError> {
        let file = file.as_ref();
        let bytes = std::fs::read(file).map_err(|source| OnnxError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        Self::from_bytes(file, &bytes, device)
    }

    /// Compiles an ONNX model held in memory; `file` names it in errors.
    pub fn from_bytes(file: impl AsRef<Path>, bytes: &[u8], device: &B::Device) -> Result<Self, OnnxError> {
        let file = file.as_ref().to_path_buf();
        let (input, outputs) = scan(&file, bytes)?;
        // onnx-ir asserts on a few malformed graphs; a panic there is this file's error.
        // Its simplification passes stay off: they fold shape arithmetic from the shapes the
        // exporter recorded for one sample batch, which bakes that batch into a ViT's reshapes.
        let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            onnx_ir::OnnxGraphBuilder::new()
                .simplify(false)
                .parse_bytes(bytes)
        }));
        let graph = match parsed {
            Ok(Ok(g)) => g,
            Ok(Err(e)) => {
                return Err(OnnxError::Parse {
                    file,
                    reason: e.to_string(),
                })
            }
            Err(panic) => {
                let reason = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "the parser stopped".into());
                return Err(OnnxError::Parse { file, reason });
            }
        };
        if graph.inputs.len() != 1 || graph.outputs.len() != outputs.len() {
            return Err(OnnxError::Parse {
                file,
                reason: format!(
                    "the parsed graph has {} inputs and {} outputs, the file declares 1 and {}",
                    graph.inputs.len(),
                    graph.outputs.len(),
                    outputs.len()
                ),
            });
        }
        let program = compile::compile::<B>(&graph, device).map_err(|r: Refusal| OnnxError::Unsupported {
            file: file.clone(),
            node: r.node,
            op: r.op,
            what: r.what,
            reason: r.reason,
        })?;
        let mut model = Self {
            file,
            input,
            outputs,
            program,
            device: device.clone(),
            batched: false,
        };
        model.batched = model.input.dims[0] != Some(1) || model.probe_batching();
        Ok(model)
    }

    /// Whether a graph declared for one image gives, on a batch of two different images run
    /// at once (its batch-1 reshapes copying the batch axis), the outputs it gives image by
    /// image, to 1e-5 of their largest value.
    fn probe_batching(&self) -> bool {
        let Some(dims) = self.input.dims[1..]
            .iter()
            .copied()
            .collect::<Option<Vec<usize>>>()
        else {
            return false;
        };
        let len = 2 * dims.iter().product::<usize>();
        let values: Vec<f32> = (0..len).map(|i| (0.5 * (0.37 * i as f64).sin()) as f32).collect();
        let x = Tensor::<B, 4>::from_data(
            burn::tensor::TensorData::new(values, [2, dims[0], dims[1], dims[2]]),
            &self.device,
        );
        let apart = (0..2)
            .map(|i| self.run_once(x.clone().narrow(0, i, 1), false))
            .collect::<Result<Vec<_>, _>>()
            .and_then(|parts| self.join(parts));
        let (Ok(apart), Ok(together)) = (apart, self.run_once(x, true)) else {
            return false;
        };
        apart.into_iter().zip(together).all(|(a, b)| match (a, b) {
            (Value::Tensor(a), Value::Tensor(b)) if a.dims() == b.dims() => {
                let (Some(a), Some(b)) = (to_vec(a), to_vec(b)) else {
                    return false;
                };
                let scale = a
                    .iter()
                    .fold(0.0f32, |m, v| m.max(v.abs()))
                    .max(f32::MIN_POSITIVE);
                a.iter().zip(&b).all(|(x, y)| (x - y).abs() <= 1e-5 * scale)
            }
            _ => false,
        })
    }

    /// Whether a graph declared for one image runs whole batches at once (see the module doc).
    pub fn runs_batched(&self) -> bool {
        self.batched
    }

    /// The file the model was loaded from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The image input: its name and declared `[N, C, H, W]`.
    pub fn input(&self) -> &OnnxIo {
        &self.input
    }

    /// The outputs, in the file's order.
    pub fn outputs(&self) -> &[OnnxIo] {
        &self.outputs
    }

    /// The output `name`, or an error listing the graph's outputs: what a teacher spec's
    /// output names are checked with when it loads.
    pub fn output(&self, name: &str) -> Result<&OnnxIo, OnnxError> {
        self.outputs
            .iter()
            .find(|o| o.name == name)
            .ok_or_else(|| OnnxError::NoOutput {
                file: self.file.clone(),
                name: name.to_string(),
                available: self
                    .outputs
                    .iter()
                    .map(|o| o.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The number of operations after fusion (for reports).
    pub fn steps(&self) -> usize {
        self.program.steps.len()
    }

    /// Checks that the graph takes `channels × height × width` images (axes the file leaves
    /// free take any size): what a teacher spec's input recipe must agree with.
    pub fn check_input(&self, channels: usize, height: usize, width: usize) -> Result<(), OnnxError> {
        let want = [channels, height, width];
        let fits = self.input.dims[1..]
            .iter()
            .zip(want)
            .all(|(d, w)| d.is_none_or(|d| d == w));
        if fits {
            Ok(())
        } else {
            Err(self.shape_error(vec![0, channels, height, width]))
        }
    }

    fn shape_error(&self, got: Vec<usize>) -> OnnxError {
        let declared = self.input.to_string();
        OnnxError::InputShape {
            file: self.file.clone(),
            input: self.input.name.clone(),
            declared: declared[self.input.name.len() + 1..].to_string(),
            got,
        }
    }

    /// Runs the graph on a batch of images; the outputs by name.
    ///
    /// A graph whose batch axis is declared as 1 takes a larger batch too: at once where the
    /// probe at load allowed it ([`Self::runs_batched`]), otherwise one image at a time with
    /// the outputs joined along their first axis.
    pub fn run(&self, x: Tensor<B, 4>) -> Result<OnnxOutputs<B>, OnnxError> {
        let dims = x.dims();
        let fits = self
            .input
            .dims
            .iter()
            .zip(dims)
            .enumerate()
            .all(|(i, (d, g))| d.is_none_or(|d| d == g || (i == 0 && d == 1)));
        if !fits || dims[0] == 0 {
            return Err(self.shape_error(dims.to_vec()));
        }
        let values = if self.input.dims[0] == Some(1) && dims[0] > 1 && !self.batched {
            let mut parts: Vec<Vec<Value<B>>> = Vec::with_capacity(dims[0]);
            for i in 0..dims[0] {
                parts.push(self.run_once(x.clone().narrow(0, i, 1), false)?);
            }
            self.join(parts)?
        } else {
            self.run_once(x, self.batched)?
        };
        Ok(OnnxOutputs {
            file: self.file.clone(),
            names: self.outputs.iter().map(|o| o.name.clone()).collect(),
            values,
        })
    }

    /// Per-image outputs joined along their first axis.
    fn join(&self, parts: Vec<Vec<Value<B>>>) -> Result<Vec<Value<B>>, OnnxError> {
        let mut per_output: Vec<Vec<Dyn<B>>> = (0..self.outputs.len()).map(|_| Vec::new()).collect();
        for values in parts {
            for (k, v) in values.into_iter().enumerate() {
                match v {
                    Value::Tensor(t) if t.dims().first() == Some(&1) => per_output[k].push(t),
                    other => {
                        return Err(OnnxError::Run {
                            file: self.file.clone(),
                            node: self.outputs[k].name.clone(),
                            op: "output".into(),
                            reason: format!(
                                "the graph takes one image at a time, and this output ({}) has no batch axis to join along",
                                other.describe()
                            ),
                        })
                    }
                }
            }
        }
        Ok(per_output
            .into_iter()
            .map(|ts| Value::Tensor(Dyn::cat(ts, 0).expect("one part per image")))
            .collect())
    }

    fn run_once(&self, x: Tensor<B, 4>, batched: bool) -> Result<Vec<Value<B>>, OnnxError> {
        let p = &self.program;
        let mut values: Vec<Option<Value<B>>> = (0..p.slots).map(|_| None).collect();
        for (slot, v) in &p.consts {
            values[*slot] = Some(v.clone());
        }
        values[p.input] = Some(Value::Tensor(Dyn::R4(x)));
        for (s, step) in p.steps.iter().enumerate() {
            let mut args = Vec::with_capacity(step.inputs.len());
            for (k, input) in step.inputs.iter().enumerate() {
                let Some(slot) = *input else {
                    args.push(None);
                    continue;
                };
                // The last read of a value moves it, so the op may reuse its buffer.
                let last = p.last_use[slot] == s && !step.inputs[k + 1..].contains(&Some(slot));
                let v = if last {
                    values[slot].take()
                } else {
                    values[slot].clone()
                };
                args.push(v);
            }
            let out = step
                .op
                .eval(args, step.outputs.len(), batched, &self.device)
                .map_err(|reason| OnnxError::Run {
                    file: self.file.clone(),
                    node: step.node.clone(),
                    op: step.op_name.clone(),
                    reason,
                })?;
            for (slot, v) in step.outputs.iter().zip(out) {
                values[*slot] = Some(v);
            }
        }
        p.outputs
            .iter()
            .zip(&self.outputs)
            .map(|(&slot, io)| {
                values[slot].clone().ok_or_else(|| OnnxError::Run {
                    file: self.file.clone(),
                    node: io.name.clone(),
                    op: "output".into(),
                    reason: "no value was computed".into(),
                })
            })
            .collect()
    }
}

/// A tensor's values on the host; `None` when they cannot be read back.
fn to_vec<B: Backend>(t: Dyn<B>) -> Option<Vec<f32>> {
    let n = t.dims().iter().product();
    crate::to_f32_vec(t.reshape(&[n])?.into_tensor::<1>()?).ok()
}

/// The outputs of one [`OnnxModel::run`], by the file's output names.
#[derive(Debug)]
pub struct OnnxOutputs<B: Backend> {
    file: PathBuf,
    names: Vec<String>,
    values: Vec<Value<B>>,
}

impl<B: Backend> OnnxOutputs<B> {
    /// The output names, in the file's order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The output `name` as a float tensor of rank `D`.
    pub fn tensor<const D: usize>(&self, name: &str) -> Result<Tensor<B, D>, OnnxError> {
        let k = self
            .names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| OnnxError::NoOutput {
                file: self.file.clone(),
                name: name.to_string(),
                available: self.names.join(", "),
            })?;
        let kind = |found: String| OnnxError::OutputKind {
            file: self.file.clone(),
            name: name.to_string(),
            found,
            rank: D,
        };
        match &self.values[k] {
            Value::Tensor(t) => t
                .clone()
                .into_tensor::<D>()
                .ok_or_else(|| kind(self.values[k].describe())),
            other => Err(kind(other.describe())),
        }
    }
}

//! The executor's operations and what each computes on its input values.
//!
//! An error here is a run-time one (a shape the graph cannot take); everything that can be
//! refused from the file alone is refused when it loads (`compile.rs`).

use burn::nn::conv::Conv2d;
use burn::nn::pool::{AvgPool2d, MaxPool2d};
use burn::nn::{BatchNorm, LayerNorm, Linear, PRelu};
use burn::tensor::backend::Backend;
use burn::tensor::ops::PadMode;
use burn::tensor::{activation, DType, Int, Tensor, TensorData};

use super::value::{each_rank, same_rank, Dyn, Scalar, Value};
use crate::ops::{self, Activation};

/// What follows the convolution of a fused chain, before the residual and the activation.
#[derive(Debug)]
pub(super) enum ConvPost<B: Backend> {
    None,
    /// An eval-mode BatchNormalization.
    Bn(Box<BatchNorm<B>>),
    /// `· scale + shift`, each `[1, C, 1, 1]`: a graph's affine layer as `Mul` and `Add`.
    Affine(Tensor<B, 4>, Tensor<B, 4>),
}

/// The activation ending a fused chain.
#[derive(Debug)]
pub(super) enum ConvAct<B: Backend> {
    Identity,
    Relu,
    PRelu(PRelu<B>),
}

/// `act(post(conv(x)) + residual)`: one call of the fused convolution ops.
#[derive(Debug)]
pub(super) struct FusedConv<B: Backend> {
    pub conv: Conv2d<B>,
    pub post: ConvPost<B>,
    pub act: ConvAct<B>,
}

/// Elementwise operations of two operands, with numpy broadcasting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
}

/// Elementwise operations of one operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unary {
    Relu,
    Sigmoid,
    Tanh,
    Exp,
    Log,
    Sqrt,
    Neg,
    Abs,
    Reciprocal,
    Erf,
    /// The exact GELU, `x·Φ(x)`.
    Gelu,
}

/// Reductions over a set of axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reduce {
    Mean,
    Sum,
    Max,
}

/// One executable operation.
#[derive(Debug)]
pub(super) enum Op<B: Backend> {
    /// Inputs: x, then the residual when there is one.
    Conv(Box<FusedConv<B>>),
    BatchNorm(BatchNorm<B>),
    /// `max(x, 0) + slope · min(x, 0)`; input 1 is the slope, broadcast to x.
    PRelu,
    Linear(Linear<B>),
    /// `alpha · A'·B' + beta · C`, with A' and B' transposed as flagged.
    Gemm {
        alpha: f64,
        beta: f64,
        trans_a: bool,
        trans_b: bool,
    },
    MatMul,
    Binary(Binary),
    Unary(Unary),
    LeakyRelu(f64),
    Clip(Option<f64>, Option<f64>),
    Softmax(usize),
    /// The norm and its ε (which [`ops::layer_norm`] takes: Burn keeps the norm's private).
    LayerNorm(LayerNorm<B>, f64),
    MaxPool(MaxPool2d),
    AvgPool(AvgPool2d),
    GlobalAvgPool,
    /// `(before, after)` per axis.
    Pad(Vec<(usize, usize)>, PadMode),
    Flatten(usize),
    /// The target shape, or `None` when it is input 1; and whether its leading 1 is the batch
    /// of a graph exported for one image (read as "copy the input's first axis" when the
    /// model runs such a graph batched, see `OnnxModel::load`).
    Reshape(Option<Vec<i64>>, bool),
    /// The axis order (empty: reversed).
    Transpose(Vec<usize>),
    Concat(usize),
    /// The sizes along `axis`, or `None` for equal parts, one per output.
    Split {
        axis: usize,
        sizes: Option<Vec<usize>>,
        parts: usize,
    },
    /// The axes to drop (`None`: every size-1 axis).
    Squeeze(Option<Vec<i64>>),
    Unsqueeze(Vec<i64>),
    /// Input 1 holds the indices.
    Gather(usize),
    /// starts, ends, axes, steps (all static).
    Slice(Vec<i64>, Vec<i64>, Vec<i64>, Vec<i64>),
    Shape(usize, usize),
    Cast(DType),
    Reduce(Reduce, Vec<usize>, bool),
    Identity,
}

type Run<T> = Result<T, String>;

/// The input at `k`, required.
fn arg<B: Backend>(inputs: &mut [Option<Value<B>>], k: usize) -> Run<Value<B>> {
    inputs
        .get_mut(k)
        .and_then(Option::take)
        .ok_or_else(|| format!("input {k} is missing"))
}

/// The input at `k` as a float tensor.
fn tensor<B: Backend>(inputs: &mut [Option<Value<B>>], k: usize) -> Run<Dyn<B>> {
    match arg(inputs, k)? {
        Value::Tensor(t) => Ok(t),
        other => Err(format!(
            "input {k} must be a float tensor, got {}",
            other.describe()
        )),
    }
}

/// The input at `k` as a typed tensor of rank `D`.
fn typed<B: Backend, const D: usize>(inputs: &mut [Option<Value<B>>], k: usize) -> Run<Tensor<B, D>> {
    let t = tensor(inputs, k)?;
    let dims = t.dims();
    t.into_tensor::<D>()
        .ok_or_else(|| format!("input {k} must have rank {D}, got shape {dims:?}"))
}

/// The input at `k` as integers (a shape, an integer tensor or a scalar).
fn ints<B: Backend>(inputs: &mut [Option<Value<B>>], k: usize) -> Run<(Vec<i64>, Vec<usize>)> {
    match arg(inputs, k)? {
        Value::Shape(s) => {
            let n = s.len();
            Ok((s, vec![n]))
        }
        Value::Ints(v, dims) => Ok((v, dims)),
        Value::Scalar(Scalar::Int(i)) => Ok((vec![i], vec![])),
        other => Err(format!("input {k} must hold integers, got {}", other.describe())),
    }
}

/// An axis index in `0..rank` from ONNX's signed form.
fn axis(a: i64, rank: usize) -> Run<usize> {
    let r = rank as i64;
    let a = if a < 0 { a + r } else { a };
    if (0..r).contains(&a) {
        Ok(a as usize)
    } else {
        Err(format!("axis {a} is out of range for rank {rank}"))
    }
}

/// The numpy broadcast of two shapes, or `None` when they do not broadcast.
fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let at = |s: &[usize], i: usize| (i + s.len()).checked_sub(rank).map_or(1, |j| s[j]);
    (0..rank)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y || y == 1 => Some(x),
            (1, y) => Some(y),
            _ => None,
        })
        .collect()
}

/// Two tensors brought to the rank of the larger, after checking they broadcast.
fn aligned<B: Backend>(a: Dyn<B>, b: Dyn<B>) -> Run<(Dyn<B>, Dyn<B>)> {
    let (da, db) = (a.dims(), b.dims());
    let out = broadcast(&da, &db).ok_or_else(|| format!("shapes {da:?} and {db:?} do not broadcast"))?;
    let rank = out.len();
    let lift = |t: Dyn<B>| {
        t.lift(rank)
            .ok_or_else(|| format!("rank {rank} is beyond the executor's"))
    };
    Ok((lift(a)?, lift(b)?))
}

fn binary_tensors<B: Backend>(op: Binary, a: Dyn<B>, b: Dyn<B>) -> Run<Dyn<B>> {
    let (a, b) = aligned(a, b)?;
    let out = match op {
        Binary::Add => same_rank!(a, b, (x, y) => x.add(y)),
        Binary::Sub => same_rank!(a, b, (x, y) => x.sub(y)),
        Binary::Mul => same_rank!(a, b, (x, y) => x.mul(y)),
        Binary::Div => same_rank!(a, b, (x, y) => x.div(y)),
        Binary::Pow => same_rank!(a, b, (x, y) => x.powf(y)),
    };
    out.ok_or_else(|| "operands of different ranks".to_string())
}

fn binary_tensor_scalar<B: Backend>(op: Binary, t: Dyn<B>, s: f64, scalar_first: bool) -> Dyn<B> {
    match (op, scalar_first) {
        (Binary::Add, _) => each_rank!(t, x => x.add_scalar(s)),
        (Binary::Mul, _) => each_rank!(t, x => x.mul_scalar(s)),
        (Binary::Sub, false) => each_rank!(t, x => x.sub_scalar(s)),
        (Binary::Sub, true) => each_rank!(t, x => x.neg().add_scalar(s)),
        (Binary::Div, false) => each_rank!(t, x => x.div_scalar(s)),
        (Binary::Div, true) => each_rank!(t, x => x.recip().mul_scalar(s)),
        (Binary::Pow, false) => each_rank!(t, x => x.powf_scalar(s)),
        // s^x = exp(x · ln s)
        (Binary::Pow, true) => each_rank!(t, x => x.mul_scalar(s.ln()).exp()),
    }
}

fn binary_scalars(op: Binary, a: Scalar, b: Scalar) -> Run<Scalar> {
    Ok(match (a, b) {
        (Scalar::Int(x), Scalar::Int(y)) => Scalar::Int(match op {
            Binary::Add => x.wrapping_add(y),
            Binary::Sub => x.wrapping_sub(y),
            Binary::Mul => x.wrapping_mul(y),
            Binary::Div if y == 0 => return Err("integer division by zero".into()),
            // ONNX integer division truncates, as Rust's does.
            Binary::Div => x / y,
            Binary::Pow => {
                let e =
                    u32::try_from(y).map_err(|_| format!("integer power {y} is negative or too large"))?;
                x.checked_pow(e).ok_or_else(|| format!("{x}^{y} overflows"))?
            }
        }),
        (a, b) => {
            let (x, y) = (a.as_f64(), b.as_f64());
            Scalar::Float(match op {
                Binary::Add => x + y,
                Binary::Sub => x - y,
                Binary::Mul => x * y,
                Binary::Div => x / y,
                Binary::Pow => x.powf(y),
            })
        }
    })
}

/// Shape arithmetic: elementwise on the integers, a scalar broadcast to every element.
fn binary_ints(op: Binary, a: &[i64], b: &[i64]) -> Run<Vec<i64>> {
    let n = a.len().max(b.len());
    let at = |v: &[i64], i: usize| if v.len() == 1 { v[0] } else { v[i] };
    if !(a.len() == b.len() || a.len() == 1 || b.len() == 1) {
        return Err(format!(
            "shapes of {} and {} values do not broadcast",
            a.len(),
            b.len()
        ));
    }
    (0..n)
        .map(
            |i| match binary_scalars(op, Scalar::Int(at(a, i)), Scalar::Int(at(b, i)))? {
                Scalar::Int(v) => Ok(v),
                Scalar::Float(_) => unreachable!("integer operands give an integer"),
            },
        )
        .collect()
}

fn binary<B: Backend>(op: Binary, a: Value<B>, b: Value<B>) -> Run<Value<B>> {
    Ok(match (a, b) {
        (Value::Tensor(a), Value::Tensor(b)) => Value::Tensor(binary_tensors(op, a, b)?),
        (Value::Tensor(t), Value::Scalar(s)) => Value::Tensor(binary_tensor_scalar(op, t, s.as_f64(), false)),
        (Value::Scalar(s), Value::Tensor(t)) => Value::Tensor(binary_tensor_scalar(op, t, s.as_f64(), true)),
        (Value::Scalar(a), Value::Scalar(b)) => Value::Scalar(binary_scalars(op, a, b)?),
        (Value::Shape(a), Value::Shape(b)) => Value::Shape(binary_ints(op, &a, &b)?),
        (Value::Shape(a), Value::Scalar(Scalar::Int(b))) => Value::Shape(binary_ints(op, &a, &[b])?),
        (Value::Scalar(Scalar::Int(a)), Value::Shape(b)) => Value::Shape(binary_ints(op, &[a], &b)?),
        (Value::Shape(a), Value::Ints(b, _)) | (Value::Ints(b, _), Value::Shape(a))
            if op == Binary::Add || op == Binary::Mul =>
        {
            Value::Shape(binary_ints(op, &a, &b)?)
        }
        (a, b) => return Err(format!("cannot combine {} with {}", a.describe(), b.describe())),
    })
}

fn unary<B: Backend>(op: Unary, v: Value<B>) -> Run<Value<B>> {
    let t = match v {
        Value::Tensor(t) => t,
        Value::Scalar(s) => {
            let x = s.as_f64();
            let y = match op {
                Unary::Neg => {
                    return Ok(Value::Scalar(match s {
                        Scalar::Int(i) => Scalar::Int(-i),
                        Scalar::Float(f) => Scalar::Float(-f),
                    }))
                }
                Unary::Sqrt => x.sqrt(),
                Unary::Exp => x.exp(),
                Unary::Log => x.ln(),
                Unary::Abs => x.abs(),
                Unary::Reciprocal => 1.0 / x,
                other => return Err(format!("{other:?} of a scalar is not supported")),
            };
            return Ok(Value::Scalar(Scalar::Float(y)));
        }
        other => return Err(format!("{op:?} of {}", other.describe())),
    };
    Ok(Value::Tensor(match op {
        Unary::Relu => each_rank!(t, x => activation::relu(x)),
        Unary::Sigmoid => each_rank!(t, x => activation::sigmoid(x)),
        Unary::Tanh => each_rank!(t, x => x.tanh()),
        Unary::Exp => each_rank!(t, x => x.exp()),
        Unary::Log => each_rank!(t, x => x.log()),
        Unary::Sqrt => each_rank!(t, x => x.sqrt()),
        Unary::Neg => each_rank!(t, x => x.neg()),
        Unary::Abs => each_rank!(t, x => x.abs()),
        Unary::Reciprocal => each_rank!(t, x => x.recip()),
        Unary::Erf => each_rank!(t, x => x.erf()),
        Unary::Gelu => each_rank!(t, x => ops::gelu(x)),
    }))
}

/// ONNX MatMul on two tensors: batch axes broadcast, rank-1 operands promoted and demoted.
fn matmul<B: Backend>(a: Dyn<B>, b: Dyn<B>) -> Run<Dyn<B>> {
    let (da, db) = (a.dims(), b.dims());
    let (a1, b1) = (da.len() == 1, db.len() == 1);
    let a = if a1 {
        a.reshape(&[1, da[0]]).ok_or("reshape")?
    } else {
        a
    };
    let b = if b1 {
        b.reshape(&[db[0], 1]).ok_or("reshape")?
    } else {
        b
    };
    let (ea, eb) = (a.dims(), b.dims());
    let (k1, k2) = (ea[ea.len() - 1], eb[eb.len() - 2]);
    if k1 != k2 {
        return Err(format!(
            "MatMul of {da:?} by {db:?}: inner sizes {k1} and {k2} differ"
        ));
    }
    let batch = broadcast(&ea[..ea.len() - 2], &eb[..eb.len() - 2])
        .ok_or_else(|| format!("MatMul of {da:?} by {db:?}: batch axes do not broadcast"))?;
    let expand = |t: Dyn<B>, last: [usize; 2]| -> Run<Dyn<B>> {
        let mut dims = batch.clone();
        dims.extend(last);
        let t = t.lift(dims.len()).ok_or("rank")?;
        if t.dims() == dims {
            return Ok(t);
        }
        Ok(each_rank!(t, x => x.expand(shape_of(&dims))))
    };
    let (m, n) = (ea[ea.len() - 2], eb[eb.len() - 1]);
    let a = expand(a, [m, k1])?;
    let b = expand(b, [k1, n])?;
    let y = match (a, b) {
        (Dyn::R2(x), Dyn::R2(y)) => Dyn::R2(ops::matmul(x, y)),
        (a, b) => same_rank!(a, b, (x, y) => x.matmul(y)).ok_or("operands of different ranks")?,
    };
    let mut out = batch;
    if !a1 {
        out.push(m);
    }
    if !b1 {
        out.push(n);
    }
    if out.len() == y.rank() {
        return Ok(y);
    }
    if out.is_empty() {
        out.push(1);
    }
    y.reshape(&out).ok_or_else(|| "rank beyond the executor's".into())
}

/// A `burn` shape from dimensions (ranks checked by the caller).
fn shape_of<const D: usize>(dims: &[usize]) -> [usize; D] {
    let mut out = [0; D];
    out.copy_from_slice(dims);
    out
}

/// ONNX Reshape's target: 0 copies the input's dimension, -1 takes what is left.
fn reshape_target(input: &[usize], target: &[i64]) -> Run<Vec<usize>> {
    let total: usize = input.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &d) in target.iter().enumerate() {
        out.push(match d {
            0 => *input
                .get(i)
                .ok_or_else(|| format!("0 at axis {i} copies an axis the input lacks"))?,
            -1 if infer.is_none() => {
                infer = Some(i);
                1
            }
            d if d > 0 => d as usize,
            d => return Err(format!("invalid target dimension {d} in {target:?}")),
        });
    }
    let known: usize = out.iter().product();
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(format!("cannot reshape {input:?} into {target:?}"));
        }
        out[i] = total / known;
    }
    if out.iter().product::<usize>() != total {
        return Err(format!(
            "cannot reshape {input:?} ({total} values) into {target:?}"
        ));
    }
    Ok(out)
}

fn reshape<B: Backend>(t: Dyn<B>, dims: &[usize]) -> Run<Dyn<B>> {
    t.reshape(dims)
        .ok_or_else(|| format!("rank {} is beyond the executor's", dims.len()))
}

fn gather<B: Backend>(
    data: Value<B>,
    index: (Vec<i64>, Vec<usize>),
    ax: usize,
    device: &B::Device,
) -> Run<Value<B>> {
    let (idx, idx_dims) = index;
    match data {
        Value::Shape(s) => {
            let pick = |i: i64| axis(i, s.len()).map(|a| s[a]);
            if idx_dims.is_empty() {
                Ok(Value::Scalar(Scalar::Int(pick(idx[0])?)))
            } else {
                Ok(Value::Shape(idx.iter().map(|&i| pick(i)).collect::<Run<_>>()?))
            }
        }
        Value::Tensor(t) => {
            let dims = t.dims();
            let ax = axis(ax as i64, dims.len())?;
            let picked: Vec<i64> = idx
                .iter()
                .map(|&i| axis(i, dims[ax]).map(|a| a as i64))
                .collect::<Run<_>>()?;
            let n = picked.len();
            let indices = Tensor::<B, 1, Int>::from_data(TensorData::new(picked, [n]), device);
            let selected = each_rank!(t, x => x.select(ax, indices.clone()));
            let mut out: Vec<usize> = dims[..ax].to_vec();
            out.extend(&idx_dims);
            out.extend(&dims[ax + 1..]);
            if out.is_empty() {
                out.push(1);
            }
            Ok(Value::Tensor(reshape(selected, &out)?))
        }
        other => Err(format!("Gather from {}", other.describe())),
    }
}

/// ONNX Slice's ranges on an axis of `len`: negatives count from the end, then clamped.
fn slice_range(len: usize, start: i64, end: i64, step: i64) -> Run<(usize, usize, usize)> {
    if step < 1 {
        return Err(format!("slice step {step} (only positive steps are supported)"));
    }
    let l = len as i64;
    let clamp = |v: i64| (if v < 0 { v + l } else { v }).clamp(0, l) as usize;
    let (s, e) = (clamp(start), clamp(end));
    Ok((s, e.max(s), step as usize))
}

fn slice<B: Backend>(
    v: Value<B>,
    starts: &[i64],
    ends: &[i64],
    axes: &[i64],
    steps: &[i64],
) -> Run<Value<B>> {
    match v {
        Value::Shape(s) => {
            let (a, b, step) = slice_range(s.len(), starts[0], ends[0], steps.first().copied().unwrap_or(1))?;
            Ok(Value::Shape(s[a..b].iter().step_by(step).copied().collect()))
        }
        Value::Tensor(t) => {
            let dims = t.dims();
            let mut ranges: Vec<(usize, usize, usize)> = dims.iter().map(|&d| (0, d, 1)).collect();
            for (i, (&s, &e)) in starts.iter().zip(ends).enumerate() {
                let a = match axes.get(i) {
                    Some(&a) => axis(a, dims.len())?,
                    None => i,
                };
                let (s, e, step) = slice_range(dims[a], s, e, steps.get(i).copied().unwrap_or(1))?;
                if s == e {
                    return Err(format!(
                        "the slice of axis {a} is empty (empty tensors are not supported)"
                    ));
                }
                ranges[a] = (s, e, step);
            }
            Ok(Value::Tensor(t.slice(&ranges)))
        }
        other => Err(format!("Slice of {}", other.describe())),
    }
}

fn concat<B: Backend>(parts: Vec<Value<B>>, ax: usize) -> Run<Value<B>> {
    if parts.iter().all(|p| matches!(p, Value::Tensor(_))) {
        let tensors: Vec<Dyn<B>> = parts
            .into_iter()
            .filter_map(|p| match p {
                Value::Tensor(t) => Some(t),
                _ => None,
            })
            .collect();
        let first = tensors.first().ok_or("no inputs")?.dims();
        for t in &tensors[1..] {
            let d = t.dims();
            let fits = d.len() == first.len()
                && d.iter()
                    .zip(&first)
                    .enumerate()
                    .all(|(i, (a, b))| i == ax || a == b);
            if !fits {
                return Err(format!("cannot join {first:?} and {d:?} along axis {ax}"));
            }
        }
        return Dyn::cat(tensors, ax)
            .map(Value::Tensor)
            .ok_or_else(|| "no inputs".into());
    }
    let mut out = Vec::new();
    for p in parts {
        match p {
            Value::Shape(s) => out.extend(s),
            Value::Ints(v, _) => out.extend(v),
            Value::Scalar(Scalar::Int(i)) => out.push(i),
            other => return Err(format!("cannot join {} into a shape", other.describe())),
        }
    }
    Ok(Value::Shape(out))
}

fn reduce<B: Backend>(t: Dyn<B>, kind: Reduce, dims: &[usize], keep: bool) -> Run<Dyn<B>> {
    let shape = t.dims();
    let axes: Vec<usize> = if dims.is_empty() {
        (0..shape.len()).collect()
    } else {
        dims.to_vec()
    };
    if let Some(bad) = axes.iter().find(|&&a| a >= shape.len()) {
        return Err(format!("axis {bad} is out of range for shape {shape:?}"));
    }
    let mut y = t;
    for &a in &axes {
        y = match kind {
            Reduce::Mean => each_rank!(y, x => x.mean_dim(a)),
            Reduce::Sum => each_rank!(y, x => x.sum_dim(a)),
            Reduce::Max => each_rank!(y, x => x.max_dim(a)),
        };
    }
    if keep {
        return Ok(y);
    }
    let mut out: Vec<usize> = shape
        .iter()
        .enumerate()
        .filter(|(i, _)| !axes.contains(i))
        .map(|(_, &d)| d)
        .collect();
    if out.is_empty() {
        out.push(1);
    }
    reshape(y, &out)
}

impl<B: Backend> Op<B> {
    /// The operation on its inputs (`None` for an absent optional input); one value per output.
    ///
    /// `batched`: a graph declared for one image runs a whole batch (see `Op::Reshape`).
    pub(super) fn eval(
        &self,
        mut inputs: Vec<Option<Value<B>>>,
        outputs: usize,
        batched: bool,
        device: &B::Device,
    ) -> Run<Vec<Value<B>>> {
        let inp = &mut inputs[..];
        let one = |v: Dyn<B>| Ok(vec![Value::Tensor(v)]);
        match self {
            Op::Conv(fused) => {
                let x = typed::<B, 4>(inp, 0)?;
                let residual = match inp.get(1).map(Option::is_some) {
                    Some(true) => Some(typed::<B, 4>(inp, 1)?),
                    _ => None,
                };
                check_conv(&fused.conv, &x, residual.as_ref())?;
                let act = match &fused.act {
                    ConvAct::Identity => Activation::Identity,
                    ConvAct::Relu => Activation::Relu,
                    ConvAct::PRelu(p) => Activation::PRelu(p),
                };
                let y = match &fused.post {
                    ConvPost::None => ops::conv2d_fused(&fused.conv, None, x, residual, act),
                    ConvPost::Bn(bn) => ops::conv2d_fused(&fused.conv, Some(&**bn), x, residual, act),
                    ConvPost::Affine(scale, shift) => {
                        ops::conv2d_affine(&fused.conv, scale.clone(), shift.clone(), x, residual, act)
                    }
                };
                one(Dyn::R4(y))
            }
            Op::BatchNorm(bn) => {
                let t = tensor(inp, 0)?;
                let dims = t.dims();
                let c = bn.gamma.dims()[0];
                if dims.len() < 2 || dims[1] != c {
                    return Err(format!("BatchNormalization of {c} channels on shape {dims:?}"));
                }
                one(each_rank!(t, x => ops::batch_norm(bn, x)))
            }
            Op::PRelu => {
                let x = tensor(inp, 0)?;
                let slope = tensor(inp, 1)?;
                let (dx, ds) = (x.dims(), slope.dims());
                if broadcast(&dx, &ds).as_deref() != Some(&dx[..]) {
                    return Err(format!("a slope of shape {ds:?} does not broadcast to {dx:?}"));
                }
                let pos = each_rank!(x.clone(), t => t.clamp_min(0.0));
                let neg = each_rank!(x, t => t.clamp_max(0.0));
                let neg = binary_tensors(Binary::Mul, neg, slope)?;
                one(binary_tensors(Binary::Add, pos, neg)?)
            }
            Op::Linear(layer) => {
                let t = tensor(inp, 0)?;
                let dims = t.dims();
                let [d_in, _] = layer.weight.dims();
                if dims.last() != Some(&d_in) || dims.len() < 2 {
                    return Err(format!("a linear layer of {d_in} inputs on shape {dims:?}"));
                }
                one(each_rank!(t, x => ops::linear(layer, x)))
            }
            Op::Gemm {
                alpha,
                beta,
                trans_a,
                trans_b,
            } => {
                let a = typed::<B, 2>(inp, 0)?;
                let b = typed::<B, 2>(inp, 1)?;
                let a = if *trans_a { a.transpose() } else { a };
                let b = if *trans_b { b.transpose() } else { b };
                let y = matmul(Dyn::R2(a), Dyn::R2(b))?;
                let y = if *alpha == 1.0 {
                    y
                } else {
                    binary_tensor_scalar(Binary::Mul, y, *alpha, false)
                };
                let y = match inp.get(2).map(Option::is_some) {
                    Some(true) => {
                        let c = tensor(inp, 2)?;
                        let c = if *beta == 1.0 {
                            c
                        } else {
                            binary_tensor_scalar(Binary::Mul, c, *beta, false)
                        };
                        let (dy, dc) = (y.dims(), c.dims());
                        if broadcast(&dy, &dc).as_deref() != Some(&dy[..]) {
                            return Err(format!("C of shape {dc:?} does not broadcast to {dy:?}"));
                        }
                        binary_tensors(Binary::Add, y, c)?
                    }
                    _ => y,
                };
                one(y)
            }
            Op::MatMul => {
                let a = tensor(inp, 0)?;
                let b = tensor(inp, 1)?;
                one(matmul(a, b)?)
            }
            Op::Binary(op) => {
                let a = arg(inp, 0)?;
                let b = arg(inp, 1)?;
                Ok(vec![binary(*op, a, b)?])
            }
            Op::Unary(op) => Ok(vec![unary(*op, arg(inp, 0)?)?]),
            Op::LeakyRelu(alpha) => one(each_rank!(tensor(inp, 0)?, x => activation::leaky_relu(x, *alpha))),
            Op::Clip(min, max) => {
                let t = tensor(inp, 0)?;
                one(match (min, max) {
                    (Some(a), Some(b)) => each_rank!(t, x => x.clamp(*a, *b)),
                    (Some(a), None) => each_rank!(t, x => x.clamp_min(*a)),
                    (None, Some(b)) => each_rank!(t, x => x.clamp_max(*b)),
                    (None, None) => t,
                })
            }
            Op::Softmax(ax) => {
                let t = tensor(inp, 0)?;
                let ax = axis(*ax as i64, t.rank())?;
                one(each_rank!(t, x => activation::softmax(x, ax)))
            }
            Op::LayerNorm(norm, eps) => {
                let t = tensor(inp, 0)?;
                let dims = t.dims();
                let d = norm.gamma.dims()[0];
                if dims.last() != Some(&d) {
                    return Err(format!("a layer norm over {d} features on shape {dims:?}"));
                }
                one(each_rank!(t, x => ops::layer_norm(norm, *eps, x)))
            }
            Op::MaxPool(pool) => one(Dyn::R4(ops::max_pool2d(pool, typed::<B, 4>(inp, 0)?))),
            Op::AvgPool(pool) => one(Dyn::R4(ops::avg_pool2d(pool, typed::<B, 4>(inp, 0)?))),
            Op::GlobalAvgPool => {
                let x = typed::<B, 4>(inp, 0)?;
                let [n, c, h, w] = x.dims();
                one(Dyn::R4(
                    x.reshape([n, c, h * w]).mean_dim(2).reshape([n, c, 1, 1]),
                ))
            }
            Op::Pad(pads, mode) => {
                let t = tensor(inp, 0)?;
                let dims = t.dims();
                if pads.len() != dims.len() {
                    return Err(format!("{} pad pairs for shape {dims:?}", pads.len()));
                }
                if let PadMode::Reflect = mode {
                    if let Some((i, _)) = pads.iter().enumerate().find(|(i, p)| p.0.max(p.1) >= dims[*i]) {
                        return Err(format!(
                            "reflect padding of axis {i} is not smaller than its size {}",
                            dims[i]
                        ));
                    }
                }
                one(each_rank!(t, x => x.pad(pads.clone(), *mode)))
            }
            Op::Flatten(ax) => {
                let t = tensor(inp, 0)?;
                let dims = t.dims();
                let ax = (*ax).min(dims.len());
                let outer: usize = dims[..ax].iter().product();
                one(reshape(t, &[outer, dims[ax..].iter().product()])?)
            }
            Op::Reshape(target, batch_first) => {
                let t = tensor(inp, 0)?;
                let mut target = match target {
                    Some(s) => s.clone(),
                    None => ints(inp, 1)?.0,
                };
                if batched && *batch_first {
                    target[0] = 0;
                }
                let dims = reshape_target(&t.dims(), &target)?;
                one(reshape(t, &dims)?)
            }
            Op::Transpose(perm) => {
                let t = tensor(inp, 0)?;
                let rank = t.rank();
                let perm: Vec<usize> = if perm.is_empty() {
                    (0..rank).rev().collect()
                } else {
                    perm.clone()
                };
                let mut seen = perm.clone();
                seen.sort_unstable();
                if seen != (0..rank).collect::<Vec<_>>() {
                    return Err(format!("{perm:?} is not a permutation of {rank} axes"));
                }
                one(t.permute(&perm))
            }
            Op::Concat(ax) => {
                let parts = (0..inp.len()).map(|k| arg(inp, k)).collect::<Run<Vec<_>>>()?;
                Ok(vec![concat(parts, *ax)?])
            }
            Op::Split {
                axis: ax,
                sizes,
                parts,
            } => {
                let t = tensor(inp, 0)?;
                let dims = t.dims();
                let len = *dims
                    .get(*ax)
                    .ok_or_else(|| format!("axis {ax} of shape {dims:?}"))?;
                let sizes = match sizes {
                    Some(s) => s.clone(),
                    None => {
                        let each = len.div_ceil((*parts).max(1));
                        (0..*parts)
                            .map(|i| each.min(len.saturating_sub(i * each)))
                            .collect()
                    }
                };
                if sizes.iter().sum::<usize>() != len || sizes.len() != outputs || sizes.contains(&0) {
                    return Err(format!(
                        "cannot split {len} along axis {ax} into {sizes:?} ({outputs} outputs)"
                    ));
                }
                let mut start = 0;
                let mut out = Vec::with_capacity(sizes.len());
                for s in sizes {
                    let mut ranges: Vec<(usize, usize, usize)> = dims.iter().map(|&d| (0, d, 1)).collect();
                    ranges[*ax] = (start, start + s, 1);
                    out.push(Value::Tensor(t.clone().slice(&ranges)));
                    start += s;
                }
                Ok(out)
            }
            Op::Squeeze(axes) => match arg(inp, 0)? {
                Value::Tensor(t) => {
                    let dims = t.dims();
                    let drop: Vec<usize> = match axes {
                        Some(a) => a.iter().map(|&a| axis(a, dims.len())).collect::<Run<_>>()?,
                        None => (0..dims.len()).filter(|&i| dims[i] == 1).collect(),
                    };
                    if let Some(&bad) = drop.iter().find(|&&a| dims[a] != 1) {
                        return Err(format!("cannot squeeze axis {bad} of shape {dims:?}"));
                    }
                    let mut out: Vec<usize> = (0..dims.len())
                        .filter(|i| !drop.contains(i))
                        .map(|i| dims[i])
                        .collect();
                    if out.is_empty() {
                        out.push(1);
                    }
                    one(reshape(t, &out)?)
                }
                Value::Shape(s) if s.len() == 1 => Ok(vec![Value::Scalar(Scalar::Int(s[0]))]),
                other => Err(format!("Squeeze of {}", other.describe())),
            },
            Op::Unsqueeze(axes) => match arg(inp, 0)? {
                Value::Tensor(t) => {
                    let dims = t.dims();
                    let rank = dims.len() + axes.len();
                    let at: Vec<usize> = axes.iter().map(|&a| axis(a, rank)).collect::<Run<_>>()?;
                    let mut rest = dims.into_iter();
                    let out: Vec<usize> = (0..rank)
                        .map(|i| {
                            if at.contains(&i) {
                                1
                            } else {
                                rest.next().unwrap_or(1)
                            }
                        })
                        .collect();
                    one(reshape(t, &out)?)
                }
                Value::Scalar(Scalar::Int(i)) => Ok(vec![Value::Shape(vec![i])]),
                other => Err(format!("Unsqueeze of {}", other.describe())),
            },
            Op::Gather(ax) => {
                let data = arg(inp, 0)?;
                let index = ints(inp, 1)?;
                Ok(vec![gather(data, index, *ax, device)?])
            }
            Op::Slice(starts, ends, axes, steps) => Ok(vec![slice(arg(inp, 0)?, starts, ends, axes, steps)?]),
            Op::Shape(start, end) => {
                let dims: Vec<i64> = match arg(inp, 0)? {
                    Value::Tensor(t) => t.dims().into_iter().map(|d| d as i64).collect(),
                    Value::Shape(s) => vec![s.len() as i64],
                    other => return Err(format!("Shape of {}", other.describe())),
                };
                let end = (*end).min(dims.len());
                Ok(vec![Value::Shape(dims[(*start).min(end)..end].to_vec())])
            }
            Op::Cast(to) => {
                let v = arg(inp, 0)?;
                let float = matches!(to, DType::F32 | DType::F64 | DType::F16 | DType::BF16);
                Ok(vec![match (v, float) {
                    (Value::Tensor(t), true) => Value::Tensor(t),
                    (Value::Scalar(s), true) => Value::Scalar(Scalar::Float(s.as_f64())),
                    (Value::Scalar(s), false) => Value::Scalar(Scalar::Int(s.as_f64() as i64)),
                    (v @ (Value::Shape(_) | Value::Ints(..)), false) => v,
                    (v, _) => return Err(format!("Cast of {} to {to:?} is not supported", v.describe())),
                }])
            }
            Op::Reduce(kind, dims, keep) => one(reduce(tensor(inp, 0)?, *kind, dims, *keep)?),
            Op::Identity => Ok(vec![arg(inp, 0)?]),
        }
    }
}

/// The checks Burn's convolution would panic on, as an error naming the shapes.
fn check_conv<B: Backend>(conv: &Conv2d<B>, x: &Tensor<B, 4>, residual: Option<&Tensor<B, 4>>) -> Run<()> {
    let [_, c, h, w] = x.dims();
    let [_, cg, kh, kw] = conv.weight.dims();
    if c != cg * conv.groups {
        return Err(format!(
            "the input has {c} channels, the weights expect {} ({cg} per group × {} groups)",
            cg * conv.groups,
            conv.groups
        ));
    }
    let (t, l, b, r) = match conv.padding {
        burn::nn::PaddingConfig2d::Explicit(t, l, b, r) => (t, l, b, r),
        _ => (0, 0, 0, 0),
    };
    let reach = |k: usize, d: usize| d * (k - 1) + 1;
    if h + t + b < reach(kh, conv.dilation[0]) || w + l + r < reach(kw, conv.dilation[1]) {
        return Err(format!("a {h}×{w} input is smaller than the {kh}×{kw} kernel"));
    }
    if let Some(res) = residual {
        let oh = (h + t + b - reach(kh, conv.dilation[0])) / conv.stride[0] + 1;
        let ow = (w + l + r - reach(kw, conv.dilation[1])) / conv.stride[1] + 1;
        let co = conv.weight.dims()[0];
        let [rn, rc, rh, rw] = res.dims();
        let out = [x.dims()[0], co, oh, ow];
        if broadcast(&out, &[rn, rc, rh, rw]).as_deref() != Some(&out[..]) {
            return Err(format!(
                "the residual {:?} does not broadcast to the output {out:?}",
                res.dims()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast(&[2, 3, 4, 4], &[1, 3, 1, 1]), Some(vec![2, 3, 4, 4]));
        assert_eq!(broadcast(&[4], &[2, 3, 1]), Some(vec![2, 3, 4]));
        assert_eq!(broadcast(&[2, 3], &[3, 3]), None);
    }

    #[test]
    fn reshape_targets_copy_and_infer() {
        assert_eq!(reshape_target(&[2, 512, 1, 1], &[0, -1]).unwrap(), vec![2, 512]);
        assert_eq!(reshape_target(&[2, 6], &[3, -1, 2]).unwrap(), vec![3, 2, 2]);
        assert!(reshape_target(&[2, 6], &[5, -1]).is_err());
        assert!(reshape_target(&[2, 6], &[-1, -1]).is_err());
        assert!(reshape_target(&[2, 6], &[4, 4]).is_err());
    }

    #[test]
    fn slices_clamp_as_onnx_says() {
        assert_eq!(slice_range(5, 0, i64::MAX, 1).unwrap(), (0, 5, 1));
        assert_eq!(slice_range(5, -2, -1, 1).unwrap(), (3, 4, 1));
        assert_eq!(slice_range(5, 4, 2, 1).unwrap(), (4, 4, 1));
        assert!(slice_range(5, 0, 5, -1).is_err());
    }

    #[test]
    fn integer_arithmetic_truncates_and_refuses_zero() {
        assert_eq!(
            binary_scalars(Binary::Div, Scalar::Int(-7), Scalar::Int(2)).unwrap(),
            Scalar::Int(-3)
        );
        assert!(binary_scalars(Binary::Div, Scalar::Int(1), Scalar::Int(0)).is_err());
        assert_eq!(binary_ints(Binary::Mul, &[2, 3], &[4]).unwrap(), vec![8, 12]);
    }
}

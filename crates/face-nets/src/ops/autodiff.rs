//! Training on NdArray f32: the convolution as one autodiff op with its own backward.
//!
//! Under `Autodiff<NdArray<f32>>` (the `cpu` training device) the forward pass runs the fast
//! kernels of `cpu.rs` and the backward pass computes `∂L/∂x` and `∂L/∂W` as GEMMs over the same
//! unfolded patches ([`cpu::conv2d_backward`]). Burn's own backward for NdArray lowers both to
//! its direct convolutions, the slowest part of a CPU training step.
//!
//! A training-mode BatchNorm is one op too ([`batch_norm`]): batch statistics in two passes
//! straight over NCHW (Burn's transposes the input to `[C, N·H·W]`, a copy, twice), the running
//! averages updated exactly as `BatchNorm::forward` does, and the backward in two passes. The
//! bias, the residual and the activation stay ordinary Burn ops on the graph.
//!
//! Linear layers and the exact GELU are ops too ([`linear`], [`gelu`]): the linear layer's
//! gradients are two GEMMs that read `Wᵀ` and `xᵀ` through their strides (Burn's backward
//! copies both transposes first), and GELU's backward is the exact derivative in one pass.
//!
//! Depthwise and thin grouped convolutions, `Same` padding, other checkpointing strategies and
//! other backends take the composed path (`Conv2d::forward`).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, NdArray};
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};
use burn_ndarray::NdArrayTensor;

use super::cpu::{self, ConvShape};
use super::xent;
use super::{cast, conv_shape, dense, view_as, with_matrix, with_values};

type Inner = NdArray<f32>;
type Train = Autodiff<Inner>;

/// `conv.forward(x)` (bias included) through the fast forward and backward kernels when `B` is
/// `Autodiff<NdArray<f32>>` and the shape is one they take; `Err(x)` (untouched) otherwise.
#[allow(clippy::result_large_err)]
pub(super) fn conv2d<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    if !is_train(&x) {
        return Err(x);
    }
    let Some(shape) = conv_shape(conv, &x, None).filter(|s| !cpu::is_direct(s)) else {
        return Err(x);
    };
    let y = conv2d_train(same(x), same(conv.weight.val()), shape);
    let mut y: Tensor<B, 4> = same(y);
    if let Some(bias) = &conv.bias {
        y = y + bias.val().reshape([1, shape.co, 1, 1]);
    }
    Ok(y)
}

/// Whether `x` is an f32 tensor of `Autodiff<NdArray<f32>>`: what the ops here take.
fn is_train<B: Backend, const D: usize>(x: &Tensor<B, D>) -> bool {
    std::any::TypeId::of::<B>() == std::any::TypeId::of::<Train>() && x.dtype() == burn::tensor::DType::F32
}

/// [`cast`] where the types are known to match: every caller runs after [`is_train`] has
/// checked that `B` is `Autodiff<NdArray<f32>>`.
fn same<T: 'static, U: 'static>(value: T) -> U {
    match cast(value) {
        Ok(u) => u,
        Err(_) => unreachable!("B is Autodiff<NdArray<f32>> (checked by is_train)"),
    }
}

/// The tensor primitive of `Autodiff<NdArray<f32>>`: the NdArray value and its graph node.
type Primitive = burn::tensor::ops::FloatTensor<Train>;

/// Puts `out` on the graph as the output of `step` over `parents`; when a parent is tracked,
/// `state` builds the backward step's state from the parents' NdArray values.
fn record<T: Backward<Inner, N>, const N: usize>(
    step: T,
    parents: [Primitive; N],
    out: NdArrayTensor,
    state: impl FnOnce([NdArrayTensor; N]) -> T::State,
) -> Primitive {
    let nodes = parents.each_ref().map(|p| p.node.clone());
    match step.prepare::<NoCheckpointing>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(state(parents.map(|p| p.primitive)), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

/// The backward step of one convolution: holds the input and weight (the graph keeps them
/// alive until the backward pass, as Burn's own convolution does).
#[derive(Debug)]
struct ConvBackward;

impl Backward<Inner, 2> for ConvBackward {
    type State = (NdArrayTensor, NdArrayTensor, ConvShape);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w] = ops.parents;
        let dy = grads.consume::<Inner>(&ops.node);
        let (x, w, s) = ops.state;
        let (dx, dw) = with_values(&x, |x| {
            with_values(&w, |w| {
                with_values(&dy, |dy| {
                    cpu::conv2d_backward(x, w, dy, &s, node_x.is_some(), node_w.is_some())
                })
            })
        });
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<Inner>(node.id, tensor(dx, vec![s.n, s.c, s.h, s.w]));
        }
        if let (Some(node), Some(dw)) = (node_w, dw) {
            let shape = vec![s.co, s.c / s.groups, s.kh, s.kw];
            grads.register::<Inner>(node.id, tensor(dw, shape));
        }
    }
}

fn tensor(values: Vec<f32>, shape: Vec<usize>) -> NdArrayTensor {
    NdArrayTensor::from_data(TensorData::new(values, shape))
}

fn conv2d_train(x: Tensor<Train, 4>, w: Tensor<Train, 4>, s: ConvShape) -> Tensor<Train, 4> {
    let x = x.into_primitive().tensor();
    let w = w.into_primitive().tensor();
    let [ho, wo] = s.output().unwrap_or([0, 0]);
    let out = with_values(&x.primitive, |x| {
        with_values(&w.primitive, |w| {
            cpu::conv2d(x, w, cpu::Affine::default(), None, cpu::Act::Identity, &s)
        })
    });
    let out = tensor(out, vec![s.n, s.co, ho, wo]);
    let y = record(ConvBackward, [x, w], out, |[x, w]| (x, w, s));
    Tensor::from_primitive(TensorPrimitive::Float(y))
}

/// `bn.forward(x)` in training mode (batch statistics; the running mean and variance updated
/// with the module's momentum, as Burn does) as one op with its own backward, when `B` is
/// `Autodiff<NdArray<f32>>`; `Err(x)` (untouched) otherwise.
#[allow(clippy::result_large_err)]
pub(super) fn batch_norm<B: Backend, const D: usize>(
    bn: &BatchNorm<B>,
    x: Tensor<B, D>,
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    if !is_train(&x) || D < 2 || bn.gamma.dims() != [x.dims()[1]] {
        return Err(x);
    }
    let dims = x.dims();
    let c = dims[1];
    let device = x.device();
    let (gamma, beta) = (same(bn.gamma.val()), same(bn.beta.val()));
    let (y, mean, var) = batch_norm_train::<D>(same(x), gamma, beta, dims.to_vec(), bn.epsilon);
    let y: Tensor<B, D> = same(y);
    let m = bn.momentum;
    let stat = |v: Vec<f32>| Tensor::<B, 1>::from_data(TensorData::new(v, [c]), &device);
    let running_mean = bn.running_mean.value_sync().to_device(&device);
    let running_var = bn.running_var.value_sync().to_device(&device);
    bn.running_mean.update(
        running_mean
            .mul_scalar(1.0 - m)
            .add(stat(mean).mul_scalar(m))
            .detach(),
    );
    bn.running_var.update(
        running_var
            .mul_scalar(1.0 - m)
            .add(stat(var).mul_scalar(m))
            .detach(),
    );
    Ok(y)
}

/// The backward step of a training-mode BatchNorm.
#[derive(Debug)]
struct BatchNormBackward;

/// The input and its shape, the batch mean and `1/σ`, `γ`, and `[n, c, plane]`.
type BatchNormState = (
    NdArrayTensor,
    Vec<usize>,
    Vec<f32>,
    Vec<f32>,
    Vec<f32>,
    [usize; 3],
);

impl Backward<Inner, 3> for BatchNormBackward {
    type State = BatchNormState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let dy = grads.consume::<Inner>(&ops.node);
        let (x, shape, mean, inv_std, gamma, dims) = ops.state;
        let (dx, dgamma, dbeta) = with_values(&x, |x| {
            with_values(&dy, |dy| {
                cpu::batch_norm_backward(x, dy, dims, &mean, &inv_std, &gamma, node_x.is_some())
            })
        });
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<Inner>(node.id, tensor(dx, shape));
        }
        if let Some(node) = node_gamma {
            grads.register::<Inner>(node.id, tensor(dgamma, vec![dims[1]]));
        }
        if let Some(node) = node_beta {
            grads.register::<Inner>(node.id, tensor(dbeta, vec![dims[1]]));
        }
    }
}

/// `(y, batch mean, batch biased variance)`.
fn batch_norm_train<const D: usize>(
    x: Tensor<Train, D>,
    gamma: Tensor<Train, 1>,
    beta: Tensor<Train, 1>,
    shape: Vec<usize>,
    epsilon: f64,
) -> (Tensor<Train, D>, Vec<f32>, Vec<f32>) {
    let (n, c, plane) = (shape[0], shape[1], shape[2..].iter().product::<usize>());
    let x = x.into_primitive().tensor();
    let gamma = gamma.into_primitive().tensor();
    let beta = beta.into_primitive().tensor();
    let g = with_values(&gamma.primitive, <[f32]>::to_vec);
    let b = with_values(&beta.primitive, <[f32]>::to_vec);
    // One read of the input (a copy when it is not contiguous) for both passes.
    let (out, mean, var, inv_std) = with_values(&x.primitive, |v| {
        let (mean, var) = cpu::channel_moments(v, n, c, plane);
        let inv_std: Vec<f32> = var
            .iter()
            .map(|v| (1.0 / (f64::from(*v) + epsilon).sqrt()) as f32)
            .collect();
        let scale: Vec<f32> = (0..c).map(|ch| g[ch] * inv_std[ch]).collect();
        let shift: Vec<f32> = (0..c).map(|ch| b[ch] - mean[ch] * scale[ch]).collect();
        let out = cpu::channel_affine(v, c, plane, &scale, &shift);
        (out, mean, var, inv_std)
    });
    let out = tensor(out, shape.clone());
    let state = |[x, _, _]: [NdArrayTensor; 3]| (x, shape, mean.clone(), inv_std, g, [n, c, plane]);
    let y = record(BatchNormBackward, [x, gamma, beta], out, state);
    (Tensor::from_primitive(TensorPrimitive::Float(y)), mean, var)
}

/// `layer.forward(x)` (`shape` = `[m, k, n]` from [`super::linear_shape`]) as one op with its own
/// backward when `B` is `Autodiff<NdArray<f32>>`; `Err(x)` (untouched) otherwise.
#[allow(clippy::result_large_err)]
pub(super) fn linear<B: Backend, const D: usize>(
    layer: &Linear<B>,
    x: Tensor<B, D>,
    shape: [usize; 3],
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    if !is_train(&x) {
        return Err(x);
    }
    let b = layer.bias.as_ref().map(|b| same(b.val()));
    Ok(same(linear_train::<D>(
        same(x),
        same(layer.weight.val()),
        b,
        shape,
    )))
}

/// `a.matmul(b)` (`shape` = `[m, k, n]`) as the linear op without bias when `B` is
/// `Autodiff<NdArray<f32>>`; `Err((a, b))` (untouched) otherwise.
#[allow(clippy::type_complexity, clippy::result_large_err)]
pub(super) fn matmul<B: Backend>(
    a: Tensor<B, 2>,
    b: Tensor<B, 2>,
    shape: [usize; 3],
) -> Result<Tensor<B, 2>, (Tensor<B, 2>, Tensor<B, 2>)> {
    if !is_train(&a) {
        return Err((a, b));
    }
    Ok(same(linear_train::<2>(same(a), same(b), None, shape)))
}

/// The backward step of a linear layer, with two parents (input, weight) or three (and bias).
#[derive(Debug)]
struct LinearBackward;

/// The input, the weight, the input's shape and `[m, k, n]`.
type LinearState = (NdArrayTensor, NdArrayTensor, Vec<usize>, [usize; 3]);

impl<const N: usize> Backward<Inner, N> for LinearBackward {
    type State = LinearState;

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Inner>(&ops.node);
        let (x, w, x_shape, [m, k, n]) = ops.state;
        let node = |i: usize| ops.parents.get(i).and_then(|p| p.as_ref()).map(|p| p.id);
        let want = [0, 1, 2].map(|i| node(i).is_some());
        let [dx, dw, db] = with_values(&x, |x| {
            with_matrix(&w, |w| {
                with_values(&dy, |dy| {
                    // SAFETY: `w` addresses the weight's k × n values, alive for the call.
                    unsafe { dense::linear_backward(x, w, dy, [m, k, n], want) }
                })
            })
        });
        for (i, (grad, shape)) in [(dx, x_shape), (dw, vec![k, n]), (db, vec![n])]
            .into_iter()
            .enumerate()
        {
            if let (Some(id), Some(grad)) = (node(i), grad) {
                grads.register::<Inner>(id, tensor(grad, shape));
            }
        }
    }
}

fn linear_train<const D: usize>(
    x: Tensor<Train, D>,
    w: Tensor<Train, 2>,
    b: Option<Tensor<Train, 1>>,
    shape: [usize; 3],
) -> Tensor<Train, D> {
    let x_shape = x.dims().to_vec();
    let mut dims = x_shape.clone();
    if let Some(last) = dims.last_mut() {
        *last = shape[2];
    }
    let x = x.into_primitive().tensor();
    let w = w.into_primitive().tensor();
    let b = b.map(|b| b.into_primitive().tensor());
    let bias = b.as_ref().map(|b| with_values(&b.primitive, <[f32]>::to_vec));
    let out = with_values(&x.primitive, |xv| {
        with_matrix(&w.primitive, |wm| {
            // SAFETY: `wm` addresses the weight's k × n values, alive for the call.
            unsafe { dense::linear(xv, wm, bias.as_deref(), shape) }
        })
    });
    let out = tensor(out, dims);
    let y = match b {
        Some(b) => record(LinearBackward, [x, w, b], out, |[x, w, _]| (x, w, x_shape, shape)),
        None => record(LinearBackward, [x, w], out, |[x, w]| (x, w, x_shape, shape)),
    };
    Tensor::from_primitive(TensorPrimitive::Float(y))
}

/// `gelu(x)` as one op whose backward is GELU's exact derivative, when `B` is
/// `Autodiff<NdArray<f32>>`; `Err(x)` (untouched) otherwise.
#[allow(clippy::result_large_err)]
pub(super) fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Result<Tensor<B, D>, Tensor<B, D>> {
    if !is_train(&x) {
        return Err(x);
    }
    let x: Tensor<Train, D> = same(x);
    let shape = x.dims().to_vec();
    let x = x.into_primitive().tensor();
    let out = tensor(with_values(&x.primitive, dense::gelu), shape.clone());
    let y = record(GeluBackward, [x], out, |[x]| (x, shape));
    Ok(same(Tensor::<Train, D>::from_primitive(TensorPrimitive::Float(
        y,
    ))))
}

/// The backward step of GELU: holds the input.
#[derive(Debug)]
struct GeluBackward;

impl Backward<Inner, 1> for GeluBackward {
    type State = (NdArrayTensor, Vec<usize>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let dy = grads.consume::<Inner>(&ops.node);
        let (x, shape) = ops.state;
        if let Some(node) = node {
            let dx = with_values(&x, |x| with_values(&dy, |dy| dense::gelu_backward(x, dy)));
            grads.register::<Inner>(node.id, tensor(dx, shape));
        }
    }
}

/// LayerNorm over the last dimension (`γ`, optional `β`, epsilon `eps`) as one op whose
/// backward is [`dense::layer_norm_backward`], when `B` is `Autodiff<NdArray<f32>>`; `Err`
/// (untouched) otherwise. Burn's composed LayerNorm records nine ops, each a serial pass on
/// NdArray, forward and backward.
#[allow(clippy::result_large_err, clippy::type_complexity)]
pub(super) fn layer_norm<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    gamma: Tensor<B, 1>,
    beta: Option<Tensor<B, 1>>,
    eps: f64,
) -> Result<Tensor<B, D>, (Tensor<B, D>, Tensor<B, 1>, Option<Tensor<B, 1>>)> {
    if !is_train(&x) {
        return Err((x, gamma, beta));
    }
    let x: Tensor<Train, D> = same(x);
    let shape = x.dims().to_vec();
    let x = x.into_primitive().tensor();
    let gamma = same::<_, Tensor<Train, 1>>(gamma).into_primitive().tensor();
    let beta = beta.map(|b| same::<_, Tensor<Train, 1>>(b).into_primitive().tensor());
    let beta_values = beta.as_ref().map(|b| with_values(&b.primitive, <[f32]>::to_vec));
    let (out, stats) = with_values(&x.primitive, |xv| {
        with_values(&gamma.primitive, |g| {
            dense::layer_norm(xv, g, beta_values.as_deref(), eps as f32)
        })
    });
    let out = tensor(out, shape.clone());
    let y = match beta {
        Some(b) => record(LayerNormBackward, [x, gamma, b], out, |[x, g, _]| {
            (x, g, stats, shape)
        }),
        None => record(LayerNormBackward, [x, gamma], out, |[x, g]| (x, g, stats, shape)),
    };
    Ok(same(Tensor::<Train, D>::from_primitive(TensorPrimitive::Float(
        y,
    ))))
}

/// The backward step of a LayerNorm, with two parents (input, γ) or three (and β).
#[derive(Debug)]
struct LayerNormBackward;

/// The input, γ, each row's `(mean, rstd)` and the input's shape.
type LayerNormState = (NdArrayTensor, NdArrayTensor, Vec<[f32; 2]>, Vec<usize>);

impl<const N: usize> Backward<Inner, N> for LayerNormBackward {
    type State = LayerNormState;

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Inner>(&ops.node);
        let (x, gamma, stats, shape) = ops.state;
        let node = |i: usize| ops.parents.get(i).and_then(|p| p.as_ref()).map(|p| p.id);
        let d = shape.last().copied().unwrap_or(0);
        let (dx, dgamma, dbeta) = with_values(&x, |x| {
            with_values(&gamma, |g| {
                with_values(&dy, |dy| dense::layer_norm_backward(x, g, &stats, dy))
            })
        });
        for (i, (grad, shape)) in [(dx, shape), (dgamma, vec![d]), (dbeta, vec![d])]
            .into_iter()
            .enumerate()
        {
            if let Some(id) = node(i) {
                grads.register::<Inner>(id, tensor(grad, shape));
            }
        }
    }
}

/// [`super::l2_normalize`] as one op whose backward is [`dense::l2_normalize_backward`], when
/// `B` is `Autodiff<NdArray<f32>>`; `Err(x)` (untouched) otherwise. Burn's composed form
/// (square, sum, square root, clamp, divide) is five serial passes each way; over DINO's
/// 256 × 65 536 prototypes that was the largest part of a LAFS step's calling thread.
#[allow(clippy::result_large_err)]
pub(super) fn l2_normalize<B: Backend>(
    x: Tensor<B, 2>,
    dim: usize,
    eps: f32,
) -> Result<Tensor<B, 2>, Tensor<B, 2>> {
    if !is_train(&x) {
        return Err(x);
    }
    let x: Tensor<Train, 2> = same(x);
    let dims = x.dims();
    let x = x.into_primitive().tensor();
    let (out, norms) = with_values(&x.primitive, |v| dense::l2_normalize(v, dims, dim, eps));
    let out = tensor(out, dims.to_vec());
    let y = record(NormalizeBackward, [x], out, |[x]| (x, dims, dim, eps, norms));
    Ok(same(Tensor::<Train, 2>::from_primitive(TensorPrimitive::Float(
        y,
    ))))
}

/// The backward step of an L2 normalisation: the input, its shape, the dimension, the clamp
/// and the unclamped norms.
#[derive(Debug)]
struct NormalizeBackward;

impl Backward<Inner, 1> for NormalizeBackward {
    type State = (NdArrayTensor, [usize; 2], usize, f32, Vec<f32>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let dy = grads.consume::<Inner>(&ops.node);
        let (x, dims, dim, eps, norms) = ops.state;
        if let Some(node) = node {
            let dx = with_values(&x, |x| {
                with_values(&dy, |dy| {
                    dense::l2_normalize_backward(x, dims, dim, eps, &norms, dy)
                })
            });
            grads.register::<Inner>(node.id, tensor(dx, dims.to_vec()));
        }
    }
}

/// [`super::reshape`] under `Autodiff<NdArray<f32>>`: the output shares the input's buffer
/// when it is contiguous, and the backward reshapes the gradient back the same way; `Err(x)`
/// (untouched) on any other backend or layout.
#[allow(clippy::result_large_err)]
pub(super) fn reshape<B: Backend, const D: usize, const D2: usize>(
    x: Tensor<B, D>,
    shape: [usize; D2],
) -> Result<Tensor<B, D2>, Tensor<B, D>> {
    if !is_train(&x) {
        return Err(x);
    }
    let x: Tensor<Train, D> = same(x);
    let from = x.dims().to_vec();
    let x = x.into_primitive().tensor();
    let out = match view_as(x.primitive.clone(), &shape) {
        Ok(out) => out,
        Err(_) => {
            return Err(same(Tensor::<Train, D>::from_primitive(TensorPrimitive::Float(
                x,
            ))));
        }
    };
    let y = record(ReshapeBackward, [x], out, |_| from);
    Ok(same(Tensor::<Train, D2>::from_primitive(TensorPrimitive::Float(
        y,
    ))))
}

/// The backward step of a reshape: the input's shape.
#[derive(Debug)]
struct ReshapeBackward;

impl Backward<Inner, 1> for ReshapeBackward {
    type State = Vec<usize>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let dy = grads.consume::<Inner>(&ops.node);
        if let Some(node) = node {
            let shape = ops.state;
            let dx = match view_as(dy, &shape) {
                Ok(dx) => dx,
                Err(dy) => {
                    let values = with_values(&dy, <[f32]>::to_vec);
                    tensor(values, shape)
                }
            };
            grads.register::<Inner>(node.id, dx);
        }
    }
}

/// [`super::view_cross_entropy`] as one op whose backward is [`xent::backward`], when `B` is
/// `Autodiff<NdArray<f32>>`; `Err` (untouched) otherwise. The targets are read as constants.
#[allow(clippy::result_large_err)]
pub(super) fn view_cross_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 2>,
    weights: &[f32],
    views: xent::Views,
    temperature: f32,
) -> Result<Tensor<B, 1>, (Tensor<B, 2>, Tensor<B, 2>)> {
    if !is_train(&logits) || !is_train(&targets) {
        return Err((logits, targets));
    }
    let x = same::<_, Tensor<Train, 2>>(logits).into_primitive().tensor();
    let q = same::<_, Tensor<Train, 2>>(targets)
        .into_primitive()
        .tensor()
        .primitive;
    let loss = with_values(&x.primitive, |xv| {
        with_values(&q, |qv| xent::forward(xv, qv, weights, views, temperature))
    });
    let out = tensor(vec![loss as f32], vec![1]);
    let weights = weights.to_vec();
    let y = record(CrossEntropyBackward, [x], out, |[x]| {
        (x, q, weights, views, temperature)
    });
    Ok(same(Tensor::<Train, 1>::from_primitive(TensorPrimitive::Float(
        y,
    ))))
}

/// The backward step of [`view_cross_entropy`]: the logits, the targets, the pair weights, the
/// layout and the temperature.
#[derive(Debug)]
struct CrossEntropyBackward;

impl Backward<Inner, 1> for CrossEntropyBackward {
    type State = (NdArrayTensor, NdArrayTensor, Vec<f32>, xent::Views, f32);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let dy = grads.consume::<Inner>(&ops.node);
        let (x, q, w, views, temperature) = ops.state;
        if let Some(node) = node {
            let dy = with_values(&dy, |d| d.first().copied().unwrap_or(0.0));
            let dx = with_values(&x, |x| {
                with_values(&q, |q| xent::backward(x, q, &w, views, temperature, dy))
            });
            grads.register::<Inner>(node.id, tensor(dx, vec![views.views * views.n, views.k]));
        }
    }
}

/// [`super::attention`] under `Autodiff<NdArray<f32>>`: one op whose backward
/// ([`dense::attention_backward`]) reuses the forward's probabilities; `Err(qkv)` (untouched)
/// on any other backend.
#[allow(clippy::result_large_err)]
pub(super) fn attention<B: Backend>(
    qkv: Tensor<B, 3>,
    shape: dense::AttentionShape,
) -> Result<Tensor<B, 3>, Tensor<B, 3>> {
    if !is_train(&qkv) {
        return Err(qkv);
    }
    let qkv: Tensor<Train, 3> = same(qkv);
    let dims = qkv.dims().to_vec();
    let qkv = qkv.into_primitive().tensor();
    let (out, probs) = with_values(&qkv.primitive, |v| dense::attention(v, shape));
    let out = tensor(out, vec![shape.batch, shape.tokens, shape.width]);
    let y = record(AttentionBackward, [qkv], out, |[qkv]| (qkv, dims, probs, shape));
    Ok(same(Tensor::<Train, 3>::from_primitive(TensorPrimitive::Float(
        y,
    ))))
}

/// The backward step of the attention op: holds the packed input and the probabilities.
#[derive(Debug)]
struct AttentionBackward;

impl Backward<Inner, 1> for AttentionBackward {
    type State = (NdArrayTensor, Vec<usize>, Vec<f32>, dense::AttentionShape);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let dy = grads.consume::<Inner>(&ops.node);
        let (qkv, dims, probs, shape) = ops.state;
        if let Some(node) = node {
            let dqkv = with_values(&qkv, |x| {
                with_values(&dy, |dy| dense::attention_backward(x, &probs, dy, shape))
            });
            grads.register::<Inner>(node.id, tensor(dqkv, dims));
        }
    }
}

//! Fused convolutions for every network here: `act(BN(conv(x)) + residual)` in one call.
//!
//! [`conv2d_fused`] takes Burn's own modules (`Conv2d`, an optional eval-mode `BatchNorm`, an
//! optional residual, an activation), so checkpoints, records and every backend stay as they
//! are. Two implementations sit behind it:
//!
//! - **NdArray f32, inference** (the CPU device of the `facekit` program): the fast kernels of
//!   `cpu.rs` — im2col + packed GEMM (the `gemm` crate's AVX-512 or AVX2/FMA kernels, chosen at
//!   run time) per image and group, a direct kernel for depthwise and thin grouped convolutions,
//!   and one epilogue pass that applies the BatchNorm (folded into a
//!   per-channel scale and shift with its running statistics), the bias, the residual and the
//!   activation. The tensors are read in place, with no copy in.
//! - **NdArray f32 under autodiff** (the `cpu` training device): the convolution is one autodiff
//!   op whose forward runs the same kernels and whose backward computes `∂L/∂x` and `∂L/∂W` as
//!   GEMMs over the same unfolded patches, and the training-mode BatchNorm ([`batch_norm`]) is
//!   one op with its own backward (`autodiff.rs`); the bias, the residual and the activation are
//!   Burn's ops on the graph.
//! - **Every other backend** (Candle, Flex, CUDA and their autodiff): the same computation
//!   composed of Burn's ops — `Conv2d::forward`, `BatchNorm::forward`, add, the activation. A
//!   convolution the fast kernels do not take (`Same` padding; depthwise under autodiff) also
//!   runs here.
//!
//! The choice is made per call from the tensor's type, not by a trait bound, so every generic
//! `B: Backend` function keeps its signature (see docs/ARCHITECTURE.md, "fused operations").
//! The fast path is checked against the composed one by `tests/nets/ops.rs`.

mod autodiff;
mod cpu;

use std::any::Any;

use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PRelu, PaddingConfig2d};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};
use burn_ndarray::NdArrayTensor;

use crate::to_f32_vec;
use cpu::{Act, Affine, ConvShape};

/// The activation that ends a fused convolution.
#[derive(Debug, Clone, Copy)]
pub enum Activation<'a, B: Backend> {
    /// None: the convolution (and BatchNorm and residual) alone.
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// PReLU with the module's slope (one for all channels, or one per channel).
    PRelu(&'a PRelu<B>),
}

/// `conv.forward(x)`, on the fast CPU kernels where the backend allows.
pub fn conv2d<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    conv2d_fused(conv, None, x, None, Activation::Identity)
}

/// `act(bn(conv(x)) + residual)` — the residual is added after the BatchNorm and before the
/// activation (iResNet's and ResNet's order; MobileFaceNet's and the teachers' blocks have no
/// activation after the add).
///
/// On NdArray f32 it runs in one pass of the fast kernels with the BatchNorm's running
/// statistics (what `BatchNorm::forward` uses on a backend without autodiff); on any other
/// backend it is composed of the modules' own `forward`s, so the result is the same either way
/// (to float rounding; `tests/nets/ops.rs` bounds it).
pub fn conv2d_fused<B: Backend>(
    conv: &Conv2d<B>,
    bn: Option<&BatchNorm<B>>,
    x: Tensor<B, 4>,
    residual: Option<Tensor<B, 4>>,
    act: Activation<'_, B>,
) -> Tensor<B, 4> {
    if let Some(shape) = fast_shape(conv, &x, residual.as_ref()) {
        if let Some(params) = EpilogueParams::read(conv, bn, &act, shape.co) {
            return fast(conv, x, residual, &params, &shape);
        }
    }
    let mut y = match autodiff::conv2d(conv, x) {
        Ok(y) => y,
        Err(x) => conv.forward(x),
    };
    if let Some(bn) = bn {
        y = batch_norm(bn, y);
    }
    if let Some(r) = residual {
        y = y + r;
    }
    match act {
        Activation::Identity => y,
        Activation::Relu => burn::tensor::activation::relu(y),
        Activation::PRelu(p) => p.forward(y),
    }
}

/// `bn.forward(x)`: on NdArray f32 one pass of per-channel scale and shift (inference, running
/// statistics), under `Autodiff<NdArray<f32>>` one op with its own backward (training, batch
/// statistics, running averages updated as Burn does); Burn's own `forward` elsewhere.
pub fn batch_norm<B: Backend, const D: usize>(bn: &BatchNorm<B>, x: Tensor<B, D>) -> Tensor<B, D> {
    if D >= 2 && fast_inference(&x) {
        let dims = x.dims();
        let (c, plane) = (dims[1], dims[2..].iter().product::<usize>());
        if let Some((scale, shift)) = bn_scale_shift(bn, c, None) {
            let device = x.device();
            let out = Host::new(x).with(|v| cpu::channel_affine(v, c, plane, &scale, &shift));
            return Tensor::from_data(TensorData::new(out, dims), &device);
        }
    }
    match autodiff::batch_norm(bn, x) {
        Ok(y) => y,
        Err(x) => bn.forward(x),
    }
}

/// A BatchNorm's running statistics folded into a per-channel `(scale, shift)` (after a conv
/// `bias`, if any); `None` when a vector cannot be read back or has not `co` values.
fn bn_scale_shift<B: Backend>(
    bn: &BatchNorm<B>,
    co: usize,
    bias: Option<&[f32]>,
) -> Option<(Vec<f32>, Vec<f32>)> {
    let channels = |t: Tensor<B, 1>| to_f32_vec(t).ok().filter(|v| v.len() == co);
    let gamma = channels(bn.gamma.val())?;
    let beta = channels(bn.beta.val())?;
    let mean = channels(bn.running_mean.value())?;
    let var = channels(bn.running_var.value())?;
    let scale: Vec<f32> = gamma
        .iter()
        .zip(&var)
        .map(|(g, v)| (f64::from(*g) / (f64::from(*v) + bn.epsilon).sqrt()) as f32)
        .collect();
    // (conv + bias)·scale + β − μ·scale
    let shift = (0..co)
        .map(|c| beta[c] - mean[c] * scale[c] + bias.map_or(0.0, |b| b[c] * scale[c]))
        .collect();
    Some((scale, shift))
}

/// The shapes of a convolution the fast kernels take, or `None` (another backend, autodiff,
/// `Same` padding, channels that do not match the weights, an empty output).
fn fast_shape<B: Backend>(
    conv: &Conv2d<B>,
    x: &Tensor<B, 4>,
    residual: Option<&Tensor<B, 4>>,
) -> Option<ConvShape> {
    fast_inference(x).then(|| conv_shape(conv, x, residual)).flatten()
}

/// Whether `x` is an f32 NdArray tensor without autodiff: what the fast inference kernels take.
fn fast_inference<B: Backend, const D: usize>(x: &Tensor<B, D>) -> bool {
    is_ndarray::<B>() && !B::ad_enabled(&x.device()) && x.dtype() == burn::tensor::DType::F32
}

/// The shapes of `conv` on `x` (and a residual of the output's shape), on any backend; `None`
/// for `Same` padding, channels that do not match the weights or an empty output.
fn conv_shape<B: Backend>(
    conv: &Conv2d<B>,
    x: &Tensor<B, 4>,
    residual: Option<&Tensor<B, 4>>,
) -> Option<ConvShape> {
    let [n, c, h, w] = x.dims();
    let [co, cg, kh, kw] = conv.weight.dims();
    let pad = match conv.padding {
        PaddingConfig2d::Explicit(t, l, b, r) => [t, l, b, r],
        PaddingConfig2d::Valid => [0; 4],
        PaddingConfig2d::Same => return None,
    };
    let shape = ConvShape {
        n,
        c,
        h,
        w,
        co,
        kh,
        kw,
        stride: conv.stride,
        pad,
        dilation: conv.dilation,
        groups: conv.groups,
    };
    let groups_fit = conv.groups > 0 && c == cg * conv.groups && co % conv.groups == 0;
    let [ho, wo] = shape.output()?;
    let residual_fits = residual.is_none_or(|r| r.dims() == [n, co, ho, wo]);
    (groups_fit && residual_fits && n * co * ho * wo > 0 && conv.weight.dtype() == x.dtype()).then_some(shape)
}

fn is_ndarray<B: Backend>() -> bool {
    std::any::TypeId::of::<B::FloatTensorPrimitive>() == std::any::TypeId::of::<NdArrayTensor>()
}

/// The per-channel numbers of the epilogue, read to the host: the affine map (BatchNorm
/// folded from its running statistics, then the bias) and the activation's slopes.
struct EpilogueParams {
    scale: Option<Vec<f32>>,
    shift: Option<Vec<f32>>,
    act: EpilogueAct,
}

enum EpilogueAct {
    Identity,
    Relu,
    PRelu(Vec<f32>),
}

impl EpilogueParams {
    /// `None` when a tensor cannot be read back or its length does not match the `co` output
    /// channels (a BatchNorm, bias or slope built for another width): the composed body then
    /// runs, and Burn's own ops report the mismatch, rather than the kernels indexing past it.
    fn read<B: Backend>(
        conv: &Conv2d<B>,
        bn: Option<&BatchNorm<B>>,
        act: &Activation<'_, B>,
        co: usize,
    ) -> Option<Self> {
        let channels = |t: Tensor<B, 1>| to_f32_vec(t).ok().filter(|v| v.len() == co);
        let bias = match &conv.bias {
            Some(b) => Some(channels(b.val())?),
            None => None,
        };
        let (scale, shift) = match bn {
            Some(bn) => {
                let (scale, shift) = bn_scale_shift(bn, co, bias.as_deref())?;
                (Some(scale), Some(shift))
            }
            None => (None, bias),
        };
        let act = match act {
            Activation::Identity => EpilogueAct::Identity,
            Activation::Relu => EpilogueAct::Relu,
            Activation::PRelu(p) => {
                let slope = to_f32_vec(p.alpha.val()).ok()?;
                if slope.len() != 1 && slope.len() != co {
                    return None;
                }
                EpilogueAct::PRelu(slope)
            }
        };
        Some(Self { scale, shift, act })
    }
}

fn fast<B: Backend>(
    conv: &Conv2d<B>,
    x: Tensor<B, 4>,
    residual: Option<Tensor<B, 4>>,
    params: &EpilogueParams,
    shape: &ConvShape,
) -> Tensor<B, 4> {
    let device = x.device();
    let act = match &params.act {
        EpilogueAct::Identity => Act::Identity,
        EpilogueAct::Relu => Act::Relu,
        EpilogueAct::PRelu(slope) => Act::PRelu(slope),
    };
    let affine = Affine {
        scale: params.scale.as_deref(),
        shift: params.shift.as_deref(),
    };
    let x = Host::new(x);
    let w = Host::new(conv.weight.val());
    let r = residual.map(Host::new);
    let out = x.with(|x| {
        w.with(|w| match &r {
            Some(r) => r.with(|r| cpu::conv2d(x, w, affine, Some(r), act, shape)),
            None => cpu::conv2d(x, w, affine, None, act, shape),
        })
    });
    let [ho, wo] = shape.output().unwrap_or([0, 0]);
    Tensor::from_data(TensorData::new(out, [shape.n, shape.co, ho, wo]), &device)
}

/// An NdArray f32 tensor held for reading in place.
struct Host(Box<dyn Any>);

impl Host {
    /// `t` must be on NdArray (checked by [`fast_shape`]).
    fn new<B: Backend, const D: usize>(t: Tensor<B, D>) -> Self {
        let primitive = t.into_primitive();
        let primitive: B::FloatTensorPrimitive = match primitive {
            TensorPrimitive::Float(p) => p,
            q @ TensorPrimitive::QFloat(_) => q.tensor(),
        };
        Self(Box::new(primitive))
    }

    /// Runs `f` on the tensor's values in row-major order (a view when the tensor is
    /// contiguous, a copy otherwise).
    fn with<R>(&self, f: impl FnOnce(&[f32]) -> R) -> R {
        match self.0.downcast_ref::<NdArrayTensor>() {
            Some(t) => with_values(t, f),
            None => unreachable!("Host holds an NdArray tensor (checked by fast_shape)"),
        }
    }
}

/// Runs `f` on an NdArray f32 tensor's values in row-major order (a view when the tensor is
/// contiguous, a copy otherwise). Every tensor here is f32 (checked by the callers).
fn with_values<R>(t: &NdArrayTensor, f: impl FnOnce(&[f32]) -> R) -> R {
    match t {
        NdArrayTensor::F32(storage) => {
            let view = storage.view();
            let standard = view.as_standard_layout();
            f(standard.as_slice().unwrap_or(&[]))
        }
        _ => unreachable!("an NdArray f32 tensor (the dtype is checked before the fast path)"),
    }
}

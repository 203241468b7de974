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
//! - **Every other backend**, Autodiff included (training keeps Burn's gradients): the same
//!   computation composed of Burn's ops — `Conv2d::forward`, `BatchNorm::forward`, add, the
//!   activation. A convolution the fast kernels do not take (`Same` padding) also runs here.
//!
//! The choice is made per call from the tensor's type, not by a trait bound, so every generic
//! `B: Backend` function keeps its signature (see docs/ARCHITECTURE.md, "fused operations").
//! The fast path is checked against the composed one by `tests/nets/ops.rs`.

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
    let mut y = conv.forward(x);
    if let Some(bn) = bn {
        y = bn.forward(y);
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

/// The shapes of a convolution the fast kernels take, or `None` (another backend, autodiff,
/// `Same` padding, channels that do not match the weights, an empty output).
fn fast_shape<B: Backend>(
    conv: &Conv2d<B>,
    x: &Tensor<B, 4>,
    residual: Option<&Tensor<B, 4>>,
) -> Option<ConvShape> {
    if !is_ndarray::<B>() || B::ad_enabled(&x.device()) || x.dtype() != burn::tensor::DType::F32 {
        return None;
    }
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
                    .map(|c| beta[c] - mean[c] * scale[c] + bias.as_ref().map_or(0.0, |b| b[c] * scale[c]))
                    .collect();
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
            Some(NdArrayTensor::F32(storage)) => {
                let view = storage.view();
                let standard = view.as_standard_layout();
                f(standard.as_slice().unwrap_or(&[]))
            }
            _ => unreachable!("Host holds an NdArray f32 tensor (checked by fast_shape)"),
        }
    }
}

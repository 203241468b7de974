//! Fused convolutions for every network here: `act(BN(conv(x)) + residual)` in one call; and
//! the linear, GELU and attention layers of the transformers.
//!
//! [`conv2d_fused`] takes Burn's own modules (`Conv2d`, an optional eval-mode `BatchNorm`, an
//! optional residual, an activation), so checkpoints, records and every backend stay as they
//! are. Two implementations sit behind it:
//!
//! - **NdArray f32, inference** (the CPU device of the `facekit` program): the fast kernels of
//!   `cpu.rs` — im2col + packed GEMM (the `gemm` crate's AVX-512 or AVX2/FMA kernels, chosen at
//!   run time) per image and group, Winograd F(2×2, 3×3) for ungrouped 3×3 stride-1
//!   convolutions (16 GEMMs over transformed tiles, 2.25× fewer multiply-adds), a direct kernel
//!   for depthwise and thin grouped convolutions, and one epilogue pass that applies the BatchNorm (folded into a
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
//! [`conv2d_affine`] is the same call for a graph that writes its affine layer as `Mul`/`Add`
//! by per-channel constants (the dlib teachers' ONNX graphs, through the executor), and [`max_pool2d`] / [`avg_pool2d`]
//! are direct pooling passes on NdArray with Burn's pools elsewhere.
//!
//! The transformer layers have their own: [`linear`] (every linear layer) and [`matmul`], [`gelu`] (the exact
//! GELU), [`layer_norm`], [`l2_normalize`], [`reshape`] (keeps a contiguous buffer; Burn's
//! NdArray reshape copies) and the fused attention behind
//! [`crate::multi_head_attention`], on `dense.rs`'s kernels for NdArray inference and as
//! autodiff ops with their own backward for training.
//!
//! So does the rest of a training step: [`adamw_step`] (behind [`crate::FusedAdamW`]) and
//! [`ema`] update a parameter in one parallel pass (`update.rs`), and [`view_cross_entropy`]
//! scores student views against soft targets in one pass each way (`xent.rs`).
//!
//! A single image (batch 1) runs its convolution's bands of output rows in parallel, each
//! unfolded and multiplied on one thread, when it has two or more per thread; otherwise each
//! band's GEMM runs in parallel.
//!
//! The choice is made per call from the tensor's type, not by a trait bound, so every generic
//! `B: Backend` function keeps its signature (see docs/ARCHITECTURE.md, "fused operations").
//! The fast path is checked against the composed one by `tests/nets/ops.rs`.

mod autodiff;
#[macro_use]
mod cpu;
mod dense;
mod update;
mod xent;

use std::any::Any;

use burn::nn::conv::Conv2d;
use burn::nn::pool::{AvgPool2d, MaxPool2d};
use burn::nn::{BatchNorm, LayerNorm, Linear, PRelu, PaddingConfig2d};
use burn::tensor::backend::Backend;
use burn::tensor::ops::PadMode;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};
use burn_ndarray::NdArrayTensor;

use crate::to_f32_vec;
use cpu::{Act, Affine, ConvShape};
use dense::Matrix;

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
        Err(x) => composed_conv2d(conv, x),
    };
    if let Some(bn) = bn {
        y = batch_norm(bn, y);
    }
    finish(y, residual, act)
}

/// `act(conv(x) · scale + shift + residual)`, with `scale` and `shift` per output channel,
/// shaped `[1, C, 1, 1]`: an ONNX graph's affine layer written as `Mul` and `Add` after its
/// convolution (dlib's ResNets, the age and gender teachers). The order of the operations is the
/// graph's, so the composed body is the graph's own chain of Burn ops.
///
/// On NdArray f32 it runs in one pass of the fast kernels (the conv's bias folded into the
/// shift); a `scale` or `shift` of another shape takes the composed body, where broadcasting
/// applies as in the graph.
pub fn conv2d_affine<B: Backend>(
    conv: &Conv2d<B>,
    scale: Tensor<B, 4>,
    shift: Tensor<B, 4>,
    x: Tensor<B, 4>,
    residual: Option<Tensor<B, 4>>,
    act: Activation<'_, B>,
) -> Tensor<B, 4> {
    if let Some(shape) = fast_shape(conv, &x, residual.as_ref()) {
        if let Some(params) = EpilogueParams::affine(conv, &scale, &shift, &act, shape.co) {
            return fast(conv, x, residual, &params, &shape);
        }
    }
    finish(conv2d(conv, x).mul(scale).add(shift), residual, act)
}

/// The convolution composed of Burn's ops, for the backends without a fast path.
///
/// A strided 1×1 convolution without padding (the downsampling shortcut of iResNet and
/// ResNet) is written as the stride-1 convolution of the input's strided slice. It is the same
/// function, but Burn 0.21's CubeCL backends (wgpu, CUDA) compute a wrong input gradient for the
/// strided 1×1 convolution itself, so training through them would silently go astray
/// (`tests/cubecl.rs` in the workspace root shows both).
fn composed_conv2d<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let unpadded = matches!(
        conv.padding,
        PaddingConfig2d::Valid | PaddingConfig2d::Explicit(0, 0, 0, 0)
    );
    if conv.kernel_size != [1, 1] || conv.stride == [1, 1] || !unpadded {
        return conv.forward(x);
    }
    use burn::tensor::Slice;
    let [sh, sw] = conv.stride.map(|s| s as isize);
    let x = x.slice([
        Slice::new(0, None, 1),
        Slice::new(0, None, 1),
        Slice::new(0, None, sh),
        Slice::new(0, None, sw),
    ]);
    burn::tensor::module::conv2d(
        x,
        conv.weight.val(),
        conv.bias.as_ref().map(|b| b.val()),
        burn::tensor::ops::ConvOptions::new([1, 1], [0, 0], [1, 1], conv.groups),
    )
}

/// `act(y + residual)`: the composed bodies' common end.
fn finish<B: Backend>(
    y: Tensor<B, 4>,
    residual: Option<Tensor<B, 4>>,
    act: Activation<'_, B>,
) -> Tensor<B, 4> {
    let y = match residual {
        Some(r) => y + r,
        None => y,
    };
    match act {
        Activation::Identity => y,
        Activation::Relu => burn::tensor::activation::relu(y),
        Activation::PRelu(p) => p.forward(y),
    }
}

/// `pool.forward(x)`, with `ceil_mode` as PyTorch and ONNX define it on every backend: the
/// output size rounds up, a last window that would start in the bottom or right padding is
/// dropped, and windows are clipped to the input.
///
/// On NdArray f32 without autodiff it is one direct pass; elsewhere Burn's own pool, on the
/// input padded with −∞ (the explicit padding and the rows and columns a ceil-mode window
/// reaches) when there is padding, since burn-candle's pools have neither padding nor ceil
/// mode. `Same` padding always takes Burn's pool.
pub fn max_pool2d<B: Backend>(pool: &MaxPool2d, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let geometry = PoolGeometry {
        kernel: pool.kernel_size,
        stride: pool.stride,
        padding: &pool.padding,
        dilation: pool.dilation,
        ceil_mode: pool.ceil_mode,
    };
    if let Some(shape) = geometry.shape(x.dims()).filter(|_| fast_inference(&x)) {
        return fast_pool(x, &shape, cpu::Pool::Max);
    }
    let (Some([t, l, b, r]), Some([bottom, right])) = (geometry.pad(), geometry.ceil_extra(x.dims())) else {
        return pool.forward(x);
    };
    let (bottom, right) = if pool.ceil_mode { (bottom, right) } else { (0, 0) };
    // The padding (explicit, and what ceil mode reaches) as −∞ cells, then unpadded
    // floor-mode windows (burn-candle's pools take neither padding nor ceil mode).
    let valid = MaxPool2d {
        ceil_mode: false,
        padding: PaddingConfig2d::Valid,
        ..pool.clone()
    };
    if t + l + b + r + bottom + right == 0 {
        return valid.forward(x);
    }
    valid.forward(x.pad(
        (l, r + right, t, b + bottom),
        PadMode::Constant(f32::NEG_INFINITY),
    ))
}

/// `pool.forward(x)` as PyTorch and ONNX define it: `ceil_mode` rounds the output size up
/// (a last window starting in the bottom or right padding is dropped), and the divisor counts
/// the window's cells inside the input, plus those in the explicit padding when
/// `count_include_pad` is set — never those beyond it that ceil mode adds.
///
/// On NdArray f32 without autodiff one direct pass when the padding is symmetric and
/// `ceil_mode` is off; Burn's own pool for unpadded floor-mode windows; otherwise a
/// window sum over the zero-padded input divided by the same sum over a mask of the counted
/// cells (burn-candle has neither padding nor ceil mode in its pools).
pub fn avg_pool2d<B: Backend>(pool: &AvgPool2d, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let geometry = PoolGeometry {
        kernel: pool.kernel_size,
        stride: pool.stride,
        padding: &pool.padding,
        dilation: [1, 1],
        ceil_mode: false,
    };
    let symmetric = match pool.padding {
        PaddingConfig2d::Explicit(t, l, b, r) => t == b && l == r,
        PaddingConfig2d::Valid => true,
        PaddingConfig2d::Same => false,
    };
    if !pool.ceil_mode && symmetric && fast_inference(&x) {
        if let Some(shape) = geometry.shape(x.dims()) {
            let kind = cpu::Pool::Avg {
                count_pad: pool.count_include_pad,
            };
            return fast_pool(x, &shape, kind);
        }
    }
    let (Some([t, l, b, r]), Some(shape)) = (geometry.pad(), geometry.shape(x.dims())) else {
        return pool.forward(x);
    };
    if t + l + b + r == 0 && !pool.ceil_mode {
        // Without padding both divisors are the window size (burn-candle panics on the flag).
        let unpadded = AvgPool2d {
            count_include_pad: true,
            ..pool.clone()
        };
        return unpadded.forward(x);
    }
    let [_, _, h, w] = x.dims();
    // Rows and columns past the explicit padding that the last ceil-mode window reaches.
    let reach = |axis: usize| (shape.out[axis] - 1) * pool.stride[axis] + pool.kernel_size[axis];
    let extra_b = reach(0).saturating_sub(h + t + b);
    let extra_r = reach(1).saturating_sub(w + l + r);
    let windows = AvgPool2d {
        padding: PaddingConfig2d::Valid,
        ceil_mode: false,
        count_include_pad: true,
        ..pool.clone()
    };
    let zero = PadMode::Constant(0.0);
    let sums = windows.forward(x.clone().pad((l, r + extra_r, t, b + extra_b), zero));
    let ones = Tensor::<B, 4>::ones([1, 1, h, w], &x.device());
    let counted = if pool.count_include_pad {
        ones.pad((l, r, t, b), PadMode::Constant(1.0))
            .pad((0, extra_r, 0, extra_b), zero)
    } else {
        ones.pad((l, r + extra_r, t, b + extra_b), zero)
    };
    sums / windows.forward(counted)
}

/// A pooling module's settings, as the fast kernel reads them.
struct PoolGeometry<'a> {
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: &'a PaddingConfig2d,
    dilation: [usize; 2],
    ceil_mode: bool,
}

impl PoolGeometry<'_> {
    /// Top, left, bottom, right; `None` for `Same`.
    fn pad(&self) -> Option<[usize; 4]> {
        match *self.padding {
            PaddingConfig2d::Explicit(t, l, b, r) => Some([t, l, b, r]),
            PaddingConfig2d::Valid => Some([0; 4]),
            PaddingConfig2d::Same => None,
        }
    }

    /// The output length along one axis; `None` when no window fits, or (ceil mode) when
    /// the last window would start in the trailing padding.
    fn out_len(&self, axis: usize, len: usize) -> Option<usize> {
        let pad = self.pad()?;
        let (before, after) = (pad[axis], pad[axis + 2]);
        let (k, s, d) = (self.kernel[axis], self.stride[axis], self.dilation[axis]);
        let reach = d * k.checked_sub(1)? + 1;
        let span = (len + before + after).checked_sub(reach)?;
        if s == 0 || len == 0 {
            return None;
        }
        let out = if self.ceil_mode {
            span.div_ceil(s) + 1
        } else {
            span / s + 1
        };
        ((out - 1) * s < len + before).then_some(out)
    }

    /// The fast kernel's shape for an `[n, c, h, w]` input.
    fn shape(&self, [n, c, h, w]: [usize; 4]) -> Option<cpu::PoolShape> {
        let pad = self.pad()?;
        Some(cpu::PoolShape {
            planes: n * c,
            h,
            w,
            kernel: self.kernel,
            stride: self.stride,
            pad: [pad[0], pad[1]],
            dilation: self.dilation,
            out: [self.out_len(0, h)?, self.out_len(1, w)?],
        })
    }

    /// Rows and columns of −∞ to add below and to the right so that a floor-mode pool gives
    /// the ceil-mode output.
    fn ceil_extra(&self, [_, _, h, w]: [usize; 4]) -> Option<[usize; 2]> {
        let pad = self.pad()?;
        let extra = |axis: usize, len: usize| {
            let out = self.out_len(axis, len)?;
            let reach = self.dilation[axis] * (self.kernel[axis] - 1) + 1;
            Some(((out - 1) * self.stride[axis] + reach).saturating_sub(len + pad[axis] + pad[axis + 2]))
        };
        Some([extra(0, h)?, extra(1, w)?])
    }
}

fn fast_pool<B: Backend>(x: Tensor<B, 4>, shape: &cpu::PoolShape, kind: cpu::Pool) -> Tensor<B, 4> {
    let [n, c, _, _] = x.dims();
    let device = x.device();
    let out = Host::new(x).with(|v| cpu::pool2d(v, shape, kind));
    Tensor::from_data(TensorData::new(out, [n, c, shape.out[0], shape.out[1]]), &device)
}

/// `layer.forward(x)` for `x` of `[…, d_input]`.
///
/// On NdArray f32 it is one packed GEMM over all the leading dimensions (the `gemm` crate's
/// kernels, which Burn's NdArray matmul does not use) with the bias written before the product
/// accumulates onto it; under `Autodiff<NdArray<f32>>` one op whose backward computes
/// `∂L/∂x = dy·Wᵀ`, `∂L/∂W = xᵀ·dy` and `∂L/∂b` with the transposes read through their strides
/// rather than copied. Elsewhere, or for a weight or bias of another width, `Linear::forward`.
pub fn linear<B: Backend, const D: usize>(layer: &Linear<B>, x: Tensor<B, D>) -> Tensor<B, D> {
    let Some(shape) = linear_shape(layer, &x) else {
        return layer.forward(x);
    };
    if fast_inference(&x) {
        let bias = match &layer.bias {
            Some(b) => match channels(b.val(), shape[2]) {
                Some(b) => Some(b),
                None => return layer.forward(x),
            },
            None => None,
        };
        return fast_product(x, layer.weight.val(), bias.as_deref(), shape);
    }
    match autodiff::linear(layer, x, shape) {
        Ok(y) => y,
        Err(x) => layer.forward(x),
    }
}

/// `a.matmul(b)` for matrices, `[m, k]·[k, n]`, on the kernels of [`linear`]: one packed GEMM
/// on NdArray f32 (each operand read in place through its strides), and under
/// `Autodiff<NdArray<f32>>` one op whose backward computes `∂a = dy·bᵀ` and `∂b = aᵀ·dy` the
/// same way. Burn's `matmul` elsewhere, or when the inner sizes or dtypes differ.
pub fn matmul<B: Backend>(a: Tensor<B, 2>, b: Tensor<B, 2>) -> Tensor<B, 2> {
    let ([m, k], [k2, n]) = (a.dims(), b.dims());
    if k != k2 || a.dtype() != b.dtype() {
        return a.matmul(b);
    }
    if fast_inference(&a) {
        return fast_product(a, b, None, [m, k, n]);
    }
    match autodiff::matmul(a, b, [m, k, n]) {
        Ok(y) => y,
        Err((a, b)) => a.matmul(b),
    }
}

/// `x·w + bias` on NdArray f32 (`shape` = `[m, k, n]`, `x` of `[…, k]`), the weight read in
/// place through its strides: the inference body of [`linear`] and [`matmul`].
fn fast_product<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    w: Tensor<B, 2>,
    bias: Option<&[f32]>,
    shape: [usize; 3],
) -> Tensor<B, D> {
    let mut dims = x.dims();
    dims[D - 1] = shape[2];
    let device = x.device();
    let w = Host::new(w);
    let out = Host::new(x).with(|x| {
        w.with_matrix(|w| {
            // SAFETY: `w` addresses the k × n values of a tensor alive for the call.
            unsafe { dense::linear(x, w, bias, shape) }
        })
    });
    Tensor::from_data(TensorData::new(out, dims), &device)
}

/// `[m, k, n]` of `layer` on `x` (`m` the product of the leading dimensions), or `None` when the
/// input width, the bias or the dtype does not match the weight (Burn's own `forward` reports it).
fn linear_shape<B: Backend, const D: usize>(layer: &Linear<B>, x: &Tensor<B, D>) -> Option<[usize; 3]> {
    let [k, n] = layer.weight.dims();
    let dims = x.dims();
    let (last, lead) = dims.split_last()?;
    let bias_fits = layer.bias.as_ref().is_none_or(|b| b.dims() == [n]);
    (*last == k && bias_fits && layer.weight.dtype() == x.dtype()).then(|| [lead.iter().product(), k, n])
}

/// The exact GELU, `x·Φ(x)` (`burn::tensor::activation::gelu`).
///
/// On NdArray f32 it is one vectorised pass; under `Autodiff<NdArray<f32>>` one op whose
/// backward is the exact derivative `Φ(x) + x·φ(x)` in one pass (Burn's own backward
/// differentiates the tanh approximation instead, in eleven passes). Elsewhere Burn's `gelu`.
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    if fast_inference(&x) {
        let dims = x.dims();
        let device = x.device();
        let out = Host::new(x).with(dense::gelu);
        return Tensor::from_data(TensorData::new(out, dims), &device);
    }
    match autodiff::gelu(x) {
        Ok(y) => y,
        Err(x) => burn::tensor::activation::gelu(x),
    }
}

/// `norm` over the last dimension of `x` with epsilon `eps`: `(x − mean)/√(var + eps)·γ + β`,
/// the biased variance (Burn's `LayerNorm::forward`). Burn keeps a `LayerNorm`'s own epsilon
/// private, so the caller passes the one it built `norm` with; every path here uses `eps`.
///
/// On NdArray f32 it is one pass per row, rows in parallel; under `Autodiff<NdArray<f32>>` one
/// op whose backward is one pass per row too (Burn's composed LayerNorm is nine ops and as
/// many serial passes each way). Elsewhere, or for a γ or β of another width, Burn's
/// `layer_norm`.
pub fn layer_norm<B: Backend, const D: usize>(
    norm: &LayerNorm<B>,
    eps: f64,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    let d = x.dims()[D - 1];
    let gamma = norm.gamma.val();
    let beta = norm.beta.as_ref().map(|b| b.val());
    let fits =
        gamma.dims() == [d] && beta.as_ref().is_none_or(|b| b.dims() == [d]) && gamma.dtype() == x.dtype();
    if fits && fast_inference(&x) {
        let host_beta = match &beta {
            Some(b) => channels(b.clone(), d).map(Some),
            None => Some(None),
        };
        if let (Some(g), Some(b)) = (channels(gamma.clone(), d), host_beta) {
            let dims = x.dims();
            let device = x.device();
            let (out, _) = Host::new(x).with(|xv| dense::layer_norm(xv, &g, b.as_deref(), eps as f32));
            return Tensor::from_data(TensorData::new(out, dims), &device);
        }
    }
    let (x, gamma, beta) = if fits {
        match autodiff::layer_norm(x, gamma, beta, eps) {
            Ok(y) => return y,
            Err(parts) => parts,
        }
    } else {
        (x, gamma, beta)
    };
    let beta = beta.map(|b| b.into_primitive().tensor());
    Tensor::from_primitive(TensorPrimitive::Float(B::layer_norm(
        x.into_primitive().tensor(),
        gamma.into_primitive().tensor(),
        beta,
        eps,
    )))
}

/// `x` scaled to unit L2 norm along `dim` (1: each row, 0: each column), each norm clamped
/// below at `eps`, as `F.normalize(x, dim=dim, eps=eps)`.
///
/// On NdArray f32 it is two parallel passes; under `Autodiff<NdArray<f32>>` one op whose
/// backward is two more (`(dy − y·Σ dy⊙y)/‖x‖` along `dim`). Elsewhere composed of Burn's ops.
///
/// # Panics
/// When `dim` is not 0 or 1.
pub fn l2_normalize<B: Backend>(x: Tensor<B, 2>, dim: usize, eps: f64) -> Tensor<B, 2> {
    assert!(dim < 2, "l2_normalize: dimension {dim} of a matrix");
    if fast_inference(&x) {
        let dims = x.dims();
        let device = x.device();
        let (out, _) = Host::new(x).with(|v| dense::l2_normalize(v, dims, dim, eps as f32));
        return Tensor::from_data(TensorData::new(out, dims), &device);
    }
    match autodiff::l2_normalize(x, dim, eps as f32) {
        Ok(y) => y,
        Err(x) => {
            let norm = x.clone().powi_scalar(2).sum_dim(dim).sqrt().clamp_min(eps);
            x / norm
        }
    }
}

/// `x` reshaped to `shape` (row-major, as `Tensor::reshape`).
///
/// Burn 0.21's NdArray reshape copies the whole tensor even when it is contiguous (it builds a
/// view and turns the view into a new array). Here a contiguous NdArray f32 tensor keeps its
/// buffer, with or without autodiff (whose backward reshapes the gradient back the same way);
/// anything else takes `Tensor::reshape`.
///
/// # Panics
/// When the element counts differ, as `Tensor::reshape`.
pub fn reshape<B: Backend, const D: usize, const D2: usize>(
    x: Tensor<B, D>,
    shape: [usize; D2],
) -> Tensor<B, D2> {
    let from = x.shape().num_elements();
    let to: usize = shape.iter().product();
    assert_eq!(
        from,
        to,
        "reshape of {:?} ({from} elements) to {shape:?} ({to})",
        x.dims()
    );
    if fast_inference(&x) {
        return match view_as(into_ndarray(x), &shape) {
            Ok(t) => from_ndarray(t),
            Err(t) => from_ndarray::<B, D>(t).reshape(shape),
        };
    }
    match autodiff::reshape(x, shape) {
        Ok(y) => y,
        Err(x) => x.reshape(shape),
    }
}

/// `t` with the shape `shape` and the same buffer, when it is contiguous and owned; `Err(t)`
/// (untouched) otherwise.
fn view_as(t: NdArrayTensor, shape: &[usize]) -> Result<NdArrayTensor, NdArrayTensor> {
    let contiguous = match &t {
        NdArrayTensor::F32(storage) => !storage.is_borrowed() && storage.view().is_standard_layout(),
        _ => false,
    };
    if !contiguous {
        return Err(t);
    }
    let NdArrayTensor::F32(storage) = t else {
        unreachable!("checked above");
    };
    match storage.into_owned().into_shape_with_order(shape.to_vec()) {
        Ok(array) => Ok(NdArrayTensor::from(array)),
        Err(e) => unreachable!("a contiguous array of the same element count reshapes: {e}"),
    }
}

/// Soft-target cross-entropy between the views of a batch, summed:
/// `Σ_v Σ_i w[v·G + i] · Σ_r −⟨q[i·n + r], log_softmax(logits[v·n + r] / τ)⟩`.
///
/// `logits` `[V·n, K]` holds `V` student views of `n` images each, view-major; `targets`
/// `[G·n, K]` holds `G` target views (constants: no gradient flows into them); `weights`
/// `[V·G]` row-major weighs each (student view, target view) pair, 0 to skip one. DINO's loss is
/// this with `w = [v ≠ i] / (n · pairs)`.
///
/// On NdArray f32 (with or without autodiff) one parallel pass over the student's rows each
/// way, recomputing the softmax in the backward; elsewhere Burn's `log_softmax` and products.
///
/// # Panics
/// When the row counts are not `V·n` and `G·n` for `weights.len() = V·G`, or the widths differ.
pub fn view_cross_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 2>,
    n: usize,
    weights: &[f32],
    temperature: f64,
) -> Tensor<B, 1> {
    let [vn, k] = logits.dims();
    let [gn, k2] = targets.dims();
    assert!(
        n > 0 && vn % n == 0 && gn % n == 0 && k == k2 && weights.len() == (vn / n) * (gn / n),
        "view_cross_entropy: logits {vn}×{k}, targets {gn}×{k2}, {} weights for views of {n}",
        weights.len()
    );
    let views = xent::Views {
        n,
        k,
        views: vn / n,
        targets: gn / n,
    };
    if fast_inference(&logits) && fast_inference(&targets) {
        let device = logits.device();
        let (x, q) = (Host::new(logits), Host::new(targets));
        let loss = x.with(|x| q.with(|q| xent::forward(x, q, weights, views, temperature as f32)));
        return Tensor::from_data(TensorData::new(vec![loss as f32], [1]), &device);
    }
    let (logits, targets) =
        match autodiff::view_cross_entropy(logits, targets, weights, views, temperature as f32) {
            Ok(loss) => return loss,
            Err(parts) => parts,
        };
    let log_probs = burn::tensor::activation::log_softmax(logits.div_scalar(temperature), 1);
    let mut loss: Option<Tensor<B, 1>> = None;
    for v in 0..views.views {
        let mut target: Option<Tensor<B, 2>> = None;
        for i in 0..views.targets {
            let w = weights[v * views.targets + i];
            if w != 0.0 {
                let q = targets.clone().narrow(0, i * n, n).mul_scalar(w);
                target = Some(match target {
                    Some(t) => t + q,
                    None => q,
                });
            }
        }
        if let Some(t) = target {
            let term = (log_probs.clone().narrow(0, v * n, n) * t).sum().neg();
            loss = Some(match loss {
                Some(l) => l + term,
                None => term,
            });
        }
    }
    loss.unwrap_or_else(|| Tensor::zeros([1], &targets.device()))
}

/// The constants of one AdamW step on one parameter ([`adamw_step`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWStep {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first moment, β₁.
    pub beta_1: f32,
    /// Decay of the second moment, β₂.
    pub beta_2: f32,
    /// The denominator's ε.
    pub epsilon: f32,
    /// This step's number for the bias corrections: 1 on the first step.
    pub time: usize,
    /// Decoupled weight decay: the parameter is first scaled by `1 − lr·wd`; `None` for none.
    pub decay: Option<f64>,
    /// The gradient is first scaled to at most this L2 norm; `None` for no clipping.
    pub clip_norm: Option<f32>,
}

impl AdamWStep {
    /// The f32 constants every body uses, as Burn's ops round them.
    fn consts(&self, clip: Option<f32>) -> update::AdamConsts {
        let t = i32::try_from(self.time).unwrap_or(i32::MAX);
        let bias_2 = (1.0 - self.beta_2.powi(t)).sqrt();
        update::AdamConsts {
            clip,
            decay: self.decay.map(|f| f as f32),
            beta_1: self.beta_1,
            one_minus_beta_1: 1.0 - self.beta_1,
            beta_2: self.beta_2,
            one_minus_beta_2: 1.0 - self.beta_2,
            correction: bias_2 / (1.0 - self.beta_1.powi(t)),
            epsilon: self.epsilon * bias_2,
            lr: self.lr as f32,
        }
    }
}

/// One AdamW step on a parameter: the gradient clipped to `step.clip_norm` (Burn's
/// `GradientClipping::Norm`, per parameter), the parameter decayed by `step.decay`, then Burn's
/// `Adam` update with the moments `(m, v)` (`None` on the first step, as zeros). Returns the new
/// parameter and moments.
///
/// On NdArray f32 it is one parallel pass (two when clipping), in place where a tensor holds
/// its buffer alone; elsewhere, or for tensors of unequal shapes, Burn's ops in the order
/// `burn::optim::Adam` runs them (about fifteen passes). Both give the same bits but for the
/// clipping norm, which the pass sums in f64 blocks.
pub fn adamw_step<B: Backend, const D: usize>(
    param: Tensor<B, D>,
    grad: Tensor<B, D>,
    moments: Option<(Tensor<B, D>, Tensor<B, D>)>,
    step: &AdamWStep,
) -> (Tensor<B, D>, Tensor<B, D>, Tensor<B, D>) {
    let dims = param.dims();
    let fits = grad.dims() == dims
        && grad.dtype() == param.dtype()
        && moments
            .as_ref()
            .is_none_or(|(m, v)| m.dims() == dims && v.dims() == dims);
    let moments_fast = moments
        .as_ref()
        .is_none_or(|(m, v)| fast_inference(m) && fast_inference(v));
    if fits && moments_fast && fast_inference(&param) && fast_inference(&grad) {
        return adamw_fast(param, grad, moments, step);
    }
    let k = step.consts(None);
    let grad = match step.clip_norm {
        Some(max) => {
            let norm = grad.clone().square().sum().sqrt();
            let factor = (norm.add_scalar(f32::MIN_POSITIVE).recip().mul_scalar(max)).clamp_max(1.0);
            grad.mul(factor.unsqueeze())
        }
        None => grad,
    };
    let param = match k.decay {
        Some(f) => param.mul_scalar(f),
        None => param,
    };
    let (m, v) = match moments {
        Some((m, v)) => (
            m.mul_scalar(k.beta_1)
                .add(grad.clone().mul_scalar(k.one_minus_beta_1)),
            v.mul_scalar(k.beta_2)
                .add(grad.square().mul_scalar(k.one_minus_beta_2)),
        ),
        None => (
            grad.clone().mul_scalar(k.one_minus_beta_1),
            grad.square().mul_scalar(k.one_minus_beta_2),
        ),
    };
    let delta = m
        .clone()
        .mul_scalar(k.correction)
        .div(v.clone().sqrt().add_scalar(k.epsilon));
    (param - delta.mul_scalar(k.lr), m, v)
}

fn adamw_fast<B: Backend, const D: usize>(
    param: Tensor<B, D>,
    grad: Tensor<B, D>,
    moments: Option<(Tensor<B, D>, Tensor<B, D>)>,
    step: &AdamWStep,
) -> (Tensor<B, D>, Tensor<B, D>, Tensor<B, D>) {
    let dims = param.dims();
    let n = dims.iter().product();
    let grad = Host::new(grad);
    let clip = step
        .clip_norm
        .map(|max| grad.with(|g| update::clip_factor(g, max)));
    let k = step.consts(clip);
    let (mut m, mut v) = match moments {
        Some((m, v)) => (writable(into_ndarray(m), &dims), writable(into_ndarray(v), &dims)),
        None => {
            let zeros = || NdArrayTensor::from_data(TensorData::new(dense::zeroed(n), dims));
            (zeros(), zeros())
        }
    };
    let param = into_ndarray(param);
    let param = grad.with(|g| {
        let (Some(m), Some(v)) = (values_mut(&mut m), values_mut(&mut v)) else {
            unreachable!("writable() returns a contiguous tensor it holds alone");
        };
        updated(param, &dims, |p| update::adamw(p, g, m, v, &k))
    });
    (from_ndarray(param), from_ndarray(m), from_ndarray(v))
}

/// The teacher's exponential moving average, `teacher·m + student·(1 − m)` (each factor
/// rounded to f32 first, as Burn's `mul_scalar`).
///
/// On NdArray f32 one parallel pass, in place when the teacher's tensor holds its buffer alone;
/// elsewhere, or for tensors of unequal shapes, Burn's ops (three passes). Both give the same
/// bits.
pub fn ema<B: Backend, const D: usize>(
    teacher: Tensor<B, D>,
    student: Tensor<B, D>,
    momentum: f64,
) -> Tensor<B, D> {
    let (a, b) = (momentum as f32, (1.0 - momentum) as f32);
    if teacher.dims() == student.dims() && fast_inference(&teacher) && fast_inference(&student) {
        let dims = teacher.dims();
        let student = Host::new(student);
        let teacher = into_ndarray(teacher);
        let out = student.with(|s| updated(teacher, &dims, |t| update::blend(t, s, a, b)));
        return from_ndarray(out);
    }
    teacher.mul_scalar(a) + student.mul_scalar(b)
}

/// Scaled dot-product self-attention from packed `qkv` `[b, n, 3c]` over `heads` heads, on
/// NdArray f32: in inference one pass per sequence (q·kᵀ, the softmax and the product with v
/// on the packed input in place), under `Autodiff<NdArray<f32>>` one op whose backward reuses
/// the probabilities and writes the packed gradient directly. `Err(qkv)` (untouched) on any
/// other backend or shape, where [`crate::multi_head_attention`] composes it of Burn's ops.
#[allow(clippy::result_large_err)]
pub(crate) fn attention<B: Backend>(qkv: Tensor<B, 3>, heads: usize) -> Result<Tensor<B, 3>, Tensor<B, 3>> {
    let [batch, tokens, c3] = qkv.dims();
    let width = c3 / 3;
    if heads == 0 || c3 % 3 != 0 || width % heads != 0 {
        return Err(qkv);
    }
    let shape = dense::AttentionShape {
        batch,
        tokens,
        width,
        heads,
    };
    if fast_inference(&qkv) {
        let device = qkv.device();
        let (out, _) = Host::new(qkv).with(|v| dense::attention(v, shape));
        return Ok(Tensor::from_data(
            TensorData::new(out, [batch, tokens, width]),
            &device,
        ));
    }
    autodiff::attention(qkv, shape)
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
    let gamma = channels(bn.gamma.val(), co)?;
    let beta = channels(bn.beta.val(), co)?;
    let mean = channels(bn.running_mean.value(), co)?;
    let var = channels(bn.running_var.value(), co)?;
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

/// A per-channel vector read to the host; `None` when it cannot be read back or has not `co`
/// values (built for another width: the composed body then runs and Burn reports it).
fn channels<B: Backend, const D: usize>(t: Tensor<B, D>, co: usize) -> Option<Vec<f32>> {
    to_f32_vec(t).ok().filter(|v| v.len() == co)
}

/// The convolution's bias on the host: `Some(None)` without one, `None` when it cannot be read.
fn conv_bias<B: Backend>(conv: &Conv2d<B>, co: usize) -> Option<Option<Vec<f32>>> {
    match &conv.bias {
        Some(b) => channels(b.val(), co).map(Some),
        None => Some(None),
    }
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
        let bias = conv_bias(conv, co)?;
        let (scale, shift) = match bn {
            Some(bn) => {
                let (scale, shift) = bn_scale_shift(bn, co, bias.as_deref())?;
                (Some(scale), Some(shift))
            }
            None => (None, bias),
        };
        let act = EpilogueAct::read(act, co)?;
        Some(Self { scale, shift, act })
    }

    /// The epilogue of [`conv2d_affine`]: `(conv + bias) · scale + shift`, folded to
    /// `conv · scale + (bias · scale + shift)`; `None` unless both are `[1, co, 1, 1]`.
    fn affine<B: Backend>(
        conv: &Conv2d<B>,
        scale: &Tensor<B, 4>,
        shift: &Tensor<B, 4>,
        act: &Activation<'_, B>,
        co: usize,
    ) -> Option<Self> {
        let per_channel = |t: &Tensor<B, 4>| {
            (t.dims() == [1, co, 1, 1])
                .then(|| channels(t.clone(), co))
                .flatten()
        };
        let scale = per_channel(scale)?;
        let mut shift = per_channel(shift)?;
        if let Some(bias) = conv_bias(conv, co)? {
            shift
                .iter_mut()
                .zip(bias.iter().zip(&scale))
                .for_each(|(t, (b, s))| *t += b * s);
        }
        let act = EpilogueAct::read(act, co)?;
        Some(Self {
            scale: Some(scale),
            shift: Some(shift),
            act,
        })
    }
}

impl EpilogueAct {
    /// The activation's slopes read to the host; `None` for a PReLU of neither 1 nor `co` slopes.
    fn read<B: Backend>(act: &Activation<'_, B>, co: usize) -> Option<Self> {
        Some(match act {
            Activation::Identity => EpilogueAct::Identity,
            Activation::Relu => EpilogueAct::Relu,
            Activation::PRelu(p) => {
                let slope = to_f32_vec(p.alpha.val()).ok()?;
                if slope.len() != 1 && slope.len() != co {
                    return None;
                }
                EpilogueAct::PRelu(slope)
            }
        })
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

/// Moves a value to the type it already is (checked by `TypeId`), or hands it back.
fn cast<T: 'static, U: 'static>(value: T) -> Result<U, T> {
    let boxed: Box<dyn Any> = Box::new(value);
    match boxed.downcast::<U>() {
        Ok(u) => Ok(*u),
        Err(back) => match back.downcast::<T>() {
            Ok(t) => Err(*t),
            Err(_) => unreachable!("a box holds the value it was made from"),
        },
    }
}

/// The NdArray value of `t` (the caller has checked [`fast_inference`]; a quantised tensor is
/// dequantised first).
fn into_ndarray<B: Backend, const D: usize>(t: Tensor<B, D>) -> NdArrayTensor {
    let primitive: B::FloatTensorPrimitive = t.into_primitive().tensor();
    match cast(primitive) {
        Ok(t) => t,
        Err(_) => unreachable!("an NdArray tensor (checked by fast_inference)"),
    }
}

/// [`into_ndarray`]'s inverse.
fn from_ndarray<B: Backend, const D: usize>(t: NdArrayTensor) -> Tensor<B, D> {
    match cast::<NdArrayTensor, B::FloatTensorPrimitive>(t) {
        Ok(p) => Tensor::from_primitive(TensorPrimitive::Float(p)),
        Err(_) => unreachable!("B is NdArray (checked by fast_inference)"),
    }
}

/// The values of `t` for writing: `None` unless it is contiguous and holds its buffer alone.
fn values_mut(t: &mut NdArrayTensor) -> Option<&mut [f32]> {
    match t {
        NdArrayTensor::F32(storage) if storage.is_unique() => storage.ensure_owned().as_slice_mut(),
        _ => None,
    }
}

/// `t` itself when [`values_mut`] can write it, else a row-major copy of it (`dims` its shape).
fn writable(mut t: NdArrayTensor, dims: &[usize]) -> NdArrayTensor {
    if values_mut(&mut t).is_some() {
        return t;
    }
    let values = with_values(&t, <[f32]>::to_vec);
    NdArrayTensor::from_data(TensorData::new(values, dims.to_vec()))
}

/// Runs `pass` over `t`'s values (shape `dims`) as an [`update::Target`]: in place when `t` can
/// be written, else into a new buffer. Returns the updated tensor.
fn updated(mut t: NdArrayTensor, dims: &[usize], pass: impl FnOnce(update::Target<'_>)) -> NdArrayTensor {
    if let Some(values) = values_mut(&mut t) {
        pass(update::Target::InPlace(values));
        return t;
    }
    let shape = dims.to_vec();
    let n = shape.iter().product();
    let mut out: Vec<f32> = Vec::with_capacity(n);
    with_values(&t, |src| {
        pass(update::Target::Fresh(src, &mut out.spare_capacity_mut()[..n]))
    });
    // SAFETY: the pass wrote every one of the `n` elements (one output per input element).
    unsafe { out.set_len(n) };
    NdArrayTensor::from_data(TensorData::new(out, shape))
}

/// An NdArray f32 tensor held for reading in place.
struct Host(NdArrayTensor);

impl Host {
    /// `t` must be on NdArray (checked by [`fast_inference`] or [`fast_shape`]).
    fn new<B: Backend, const D: usize>(t: Tensor<B, D>) -> Self {
        Self(into_ndarray(t))
    }

    /// Runs `f` on the tensor's values in row-major order (a view when the tensor is
    /// contiguous, a copy otherwise).
    fn with<R>(&self, f: impl FnOnce(&[f32]) -> R) -> R {
        with_values(&self.0, f)
    }

    /// Runs `f` on a 2-D tensor as a strided matrix (in place, whatever its strides; a
    /// row-major copy when a stride is negative).
    fn with_matrix<R>(&self, f: impl FnOnce(Matrix) -> R) -> R {
        with_matrix(&self.0, f)
    }
}

/// Runs `f` on a 2-D NdArray f32 tensor as a strided matrix: in place whatever its strides (a
/// transposed weight is read as it lies), or a row-major copy when a stride is negative.
fn with_matrix<R>(t: &NdArrayTensor, f: impl FnOnce(Matrix) -> R) -> R {
    match t {
        NdArrayTensor::F32(storage) => {
            let view = storage.view();
            debug_assert_eq!(view.ndim(), 2);
            let strides = view.strides();
            if strides.len() == 2 && strides.iter().all(|s| *s >= 0) {
                return f(Matrix {
                    ptr: view.as_ptr(),
                    col_stride: strides[1],
                    row_stride: strides[0],
                });
            }
            let cols = view.shape().get(1).copied().unwrap_or(1);
            let standard = view.as_standard_layout();
            f(Matrix {
                ptr: standard.as_ptr(),
                col_stride: 1,
                row_stride: cols as isize,
            })
        }
        _ => unreachable!("an NdArray f32 tensor (the dtype is checked before the fast path)"),
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

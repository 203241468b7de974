//! BatchNorm folding: a trained network in inference form, each BatchNorm that follows a
//! convolution or a linear layer merged into that layer's weights and bias.
//!
//! With `s = γ / √(σ² + ε)` and `t = β − μ·s` from the running statistics,
//! `BN(W·x + b) = (s·W)·x + (s·b + t)`: the layer's weights are scaled per output channel and
//! its bias becomes `s·b + t`. The BatchNorm is then left as the identity map (`γ = 1`, `β = 0`,
//! `μ = 0`, `σ² = 1 − ε`), so the module keeps its type and its parameter ids and runs through
//! every function a trained one does; an exporter can drop the identity BatchNorms. A
//! convolution that had no bias gains one, so a folded network's record loads into a folded
//! network: [`crate::FaceModel`] notes `folded` in its saved configuration and
//! [`crate::load_model`] builds it folded before loading.
//!
//! A BatchNorm that no layer feeds directly (iResNet's pre-convolution `bn1`, which zero padding
//! separates from the convolution after it, and the `bn2` ending its feature map) stays as it
//! is. Folding uses the running statistics, so it is for inference: a network trained further
//! after folding trains a different model. The math runs on the model's own device.

use burn::module::{Module, Param, RunningState};
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// Networks whose BatchNorms can be folded into the layers before them for inference.
pub trait FoldBatchNorm {
    /// The same network with every foldable BatchNorm merged into the convolution or linear
    /// layer before it (see the module docs); outputs in eval mode match the unfolded network's
    /// to float rounding.
    #[must_use]
    fn fold_batch_norm(self) -> Self;
}

impl<T: FoldBatchNorm> FoldBatchNorm for Vec<T> {
    fn fold_batch_norm(self) -> Self {
        self.into_iter().map(FoldBatchNorm::fold_batch_norm).collect()
    }
}

impl<T: FoldBatchNorm> FoldBatchNorm for Option<T> {
    fn fold_batch_norm(self) -> Self {
        self.map(FoldBatchNorm::fold_batch_norm)
    }
}

/// `bn(conv(x))` as one convolution with bias, and the BatchNorm made the identity.
pub fn fold_conv<B: Backend>(mut conv: Conv2d<B>, bn: BatchNorm<B>) -> (Conv2d<B>, BatchNorm<B>) {
    let (scale, shift) = scale_shift(&bn);
    let co = scale.dims()[0];
    let per_channel = scale.clone().reshape([co, 1, 1, 1]);
    conv.weight = conv.weight.map(|w| w * per_channel);
    conv.bias = Some(folded_bias(conv.bias.take(), scale, shift));
    (conv, identity(bn))
}

/// `bn(linear(x))` as one linear layer with bias (Burn's weights are `[in, out]`), and the
/// BatchNorm made the identity.
pub fn fold_linear<B: Backend>(mut linear: Linear<B>, bn: BatchNorm<B>) -> (Linear<B>, BatchNorm<B>) {
    let (scale, shift) = scale_shift(&bn);
    let out = scale.dims()[0];
    let per_column = scale.clone().reshape([1, out]);
    linear.weight = linear.weight.map(|w| w * per_column);
    linear.bias = Some(folded_bias(linear.bias.take(), scale, shift));
    (linear, identity(bn))
}

/// `s = γ / √(σ² + ε)` and `t = β − μ·s`.
fn scale_shift<B: Backend>(bn: &BatchNorm<B>) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let scale = bn.gamma.val() / bn.running_var.value().add_scalar(bn.epsilon).sqrt();
    let shift = bn.beta.val() - bn.running_mean.value() * scale.clone();
    (scale, shift)
}

/// `s·b + t` (or `t` without a bias), keeping the bias's parameter id where there is one.
fn folded_bias<B: Backend>(
    bias: Option<Param<Tensor<B, 1>>>,
    scale: Tensor<B, 1>,
    shift: Tensor<B, 1>,
) -> Param<Tensor<B, 1>> {
    match bias {
        Some(b) => b.map(|b| b * scale + shift),
        None => Param::from_tensor(shift),
    }
}

/// The BatchNorm that maps `x` to `x` in inference: `γ = 1`, `β = 0`, `μ = 0`, `σ² = 1 − ε`.
fn identity<B: Backend>(mut bn: BatchNorm<B>) -> BatchNorm<B> {
    bn.gamma = bn.gamma.map(|g| g.ones_like());
    bn.beta = bn.beta.map(|b| b.zeros_like());
    let var = 1.0 - bn.epsilon;
    bn.running_var = replaced(bn.running_var, |v| v.ones_like().mul_scalar(var));
    bn.running_mean = replaced(bn.running_mean, |m| m.zeros_like());
    bn
}

/// A running state with a new value and the same id. (`RunningState::update` only queues a
/// value for the next sync, and a clone shares its storage with the original network.)
fn replaced<B: Backend>(
    state: RunningState<Tensor<B, 1>>,
    f: impl FnOnce(Tensor<B, 1>) -> Tensor<B, 1>,
) -> RunningState<Tensor<B, 1>> {
    let record = state.into_record();
    let id = record.id;
    RunningState::from_record(Param::initialized(id, f(record.val())))
}

//! Building blocks shared by the backbones, so each model file reads like its PyTorch original:
//! small constructors (convolution, BatchNorm with PyTorch's epsilon), pooling, L2
//! normalisation, multi-head attention, and the one pre-LN [`TransformerBlock`] every ViT here
//! (arcface_torch's, CLIP's and the token ViT of LAFS/DINO) is built from.

mod transformer;

pub use transformer::{Activation, LinearInit, Mlp, SelfAttention, TransformerBlock, TransformerBlockConfig};

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// A 2-D convolution with PyTorch's arguments: kernel `[kh, kw]`, symmetric padding `[ph, pw]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv<B: Backend>(
    cin: usize,
    cout: usize,
    kernel: [usize; 2],
    stride: usize,
    padding: [usize; 2],
    groups: usize,
    bias: bool,
    device: &B::Device,
) -> Conv2d<B> {
    let [ph, pw] = padding;
    Conv2dConfig::new([cin, cout], kernel)
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(ph, pw, ph, pw))
        .with_groups(groups)
        .with_bias(bias)
        .init(device)
}

/// BatchNorm with PyTorch's epsilon convention (`eps` inside the square root).
pub(crate) fn bn<B: Backend>(channels: usize, eps: f64, device: &B::Device) -> BatchNorm<B> {
    BatchNormConfig::new(channels).with_epsilon(eps).init(device)
}

/// Global average pooling: `[N, C, H, W]` → `[N, C]`.
pub(crate) fn global_avg_pool<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 2> {
    x.mean_dim(3).mean_dim(2).flatten(1, 3)
}

/// Rows scaled to unit L2 norm (`eps` guards the zero vector, as `F.normalize`):
/// [`crate::ops::l2_normalize`] along dimension 1.
pub fn l2_normalize<B: Backend>(x: Tensor<B, 2>, eps: f64) -> Tensor<B, 2> {
    crate::ops::l2_normalize(x, 1, eps)
}

/// Scaled dot-product self-attention over `heads` heads from packed projections: `qkv` is
/// `[B, N, 3C]` (q, k, v side by side, as PyTorch packs them); the result is `[B, N, C]`,
/// before the output projection.
///
/// On NdArray f32 (inference and training) it is one fused op (`ops::attention`); elsewhere it
/// is composed of Burn's ops as below.
pub fn multi_head_attention<B: Backend>(qkv: Tensor<B, 3>, heads: usize) -> Tensor<B, 3> {
    let qkv = match crate::ops::attention(qkv, heads) {
        Ok(y) => return y,
        Err(qkv) => qkv,
    };
    let [b, n, c3] = qkv.dims();
    let c = c3 / 3;
    let hd = c / heads;
    let split = |i: usize| {
        qkv.clone()
            .narrow(2, i * c, c)
            .reshape([b, n, heads, hd])
            .swap_dims(1, 2)
    };
    let scores = split(0)
        .matmul(split(1).swap_dims(2, 3))
        .mul_scalar((hd as f64).powf(-0.5));
    let attn = burn::tensor::activation::softmax(scores, 3);
    attn.matmul(split(2)).swap_dims(1, 2).reshape([b, n, c])
}

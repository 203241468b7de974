//! The pre-LN transformer block (Vaswani et al., 2017; the pre-norm form of ViT, Dosovitskiy et
//! al., 2021): `x + attn(norm1(x))`, then `x + mlp(norm2(x))`. The ViTs of this crate differ
//! only in settings, which are fields here rather than copies of the block:
//!
//! | network | MLP activation | qkv bias | LayerNorm ε | weights |
//! |---|---|---|---|---|
//! | arcface_torch ViT ([`crate::FaceVit`]) | ReLU6 | no | 1e-5 | Burn's default |
//! | CLIP / FaRL ([`crate::ClipVit`]) | QuickGELU (or GELU) | yes | 1e-5 | N(0, width^−½), zero biases |
//! | LAFS / DINO token ViT ([`crate::TokenVit`]) | GELU | yes | 1e-6 | N(0, 0.02), zero biases |
//!
//! Parameter names follow timm/arcface_torch (`norm1`, `attn.qkv`, `attn.proj`, `norm2`,
//! `mlp.fc1`, `mlp.fc2`); other layouts (CLIP's `in_proj_weight`, `c_fc`, …) load through their
//! model's key table.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::multi_head_attention;
use crate::error::Result;
use crate::onnx_writer::{Attr, OnnxWriter};
use crate::ops::layer_norm;

/// The MLP's activation.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `min(max(x, 0), 6)` (arcface_torch's ViT).
    Relu6,
    /// Exact GELU (timm, DINO).
    Gelu,
    /// `x·σ(1.702·x)` (OpenAI CLIP, FaRL).
    QuickGelu,
}

impl Activation {
    /// The activation, elementwise.
    pub fn apply<B: Backend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Self::Relu6 => x.clamp(0.0, 6.0),
            Self::Gelu => crate::ops::gelu(x),
            Self::QuickGelu => x.clone() * sigmoid(x.mul_scalar(1.702)),
        }
    }
}

/// How the block's linear layers are initialised.
#[derive(Config, Debug, Copy, PartialEq)]
pub enum LinearInit {
    /// Burn's default (Kaiming-uniform weights and biases).
    Default,
    /// Weights N(0, std²), biases zero (DINO uses std 0.02; CLIP width^−½ for the projections).
    Normal {
        /// Standard deviation of the weights.
        std: f64,
    },
}

/// Configuration of a [`TransformerBlock`].
#[derive(Config, Debug, PartialEq)]
pub struct TransformerBlockConfig {
    /// Token width.
    pub dim: usize,
    /// Attention heads (must divide `dim`).
    pub heads: usize,
    /// Hidden width of the MLP.
    pub mlp_hidden: usize,
    /// The MLP's activation.
    #[config(default = "Activation::Gelu")]
    pub activation: Activation,
    /// Bias on the packed q, k, v projection.
    #[config(default = true)]
    pub qkv_bias: bool,
    /// LayerNorm ε.
    #[config(default = 1e-5)]
    pub layer_norm_eps: f64,
    /// Run each linear layer over `[n, t, d]` as one `[n·t, d]` matrix product (faster on
    /// Burn's CPU backends than `n` small products against a broadcast weight; the result is
    /// the same up to float rounding).
    #[config(default = true)]
    pub tokenwise: bool,
    /// Initialisation of the linear layers.
    #[config(default = "LinearInit::Default")]
    pub init: LinearInit,
}

impl TransformerBlockConfig {
    fn linear<B: Backend>(&self, input: usize, output: usize, bias: bool, device: &B::Device) -> Linear<B> {
        match self.init {
            LinearInit::Default => LinearConfig::new(input, output).with_bias(bias).init(device),
            LinearInit::Normal { std } => {
                let mut l = LinearConfig::new(input, output)
                    .with_bias(false)
                    .with_initializer(Initializer::Normal { mean: 0.0, std })
                    .init(device);
                if bias {
                    l.bias = Some(Param::from_tensor(Tensor::zeros([output], device)));
                }
                l
            }
        }
    }

    /// Builds the block with random weights.
    ///
    /// # Panics
    /// When `heads` is zero or does not divide `dim` (the backbones' configs check this first).
    pub fn init<B: Backend>(&self, device: &B::Device) -> TransformerBlock<B> {
        assert!(
            self.heads > 0 && self.dim.is_multiple_of(self.heads),
            "{} heads do not divide width {}",
            self.heads,
            self.dim
        );
        let d = self.dim;
        let ln = || {
            LayerNormConfig::new(d)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        TransformerBlock {
            norm1: ln(),
            attn: SelfAttention {
                qkv: self.linear(d, 3 * d, self.qkv_bias, device),
                proj: self.linear(d, d, true, device),
                heads: self.heads,
                tokenwise: self.tokenwise,
            },
            norm2: ln(),
            layer_norm_eps: self.layer_norm_eps,
            mlp: Mlp {
                fc1: self.linear(d, self.mlp_hidden, true, device),
                fc2: self.linear(self.mlp_hidden, d, true, device),
                activation: self.activation,
                tokenwise: self.tokenwise,
            },
        }
    }
}

/// A linear layer over every token of `[n, t, d]`, as one `[n·t, d]` product when `tokenwise`.
fn over_tokens<B: Backend>(layer: &Linear<B>, x: Tensor<B, 3>, tokenwise: bool) -> Tensor<B, 3> {
    if !tokenwise {
        return crate::ops::linear(layer, x);
    }
    let [n, t, d] = x.dims();
    let y: Tensor<B, 2> = crate::ops::linear(layer, crate::ops::reshape(x, [n * t, d]));
    let out = y.dims()[1];
    crate::ops::reshape(y, [n, t, out])
}

/// Multi-head self-attention with a packed q, k, v projection.
#[derive(Module, Debug)]
pub struct SelfAttention<B: Backend> {
    /// `d → 3d`: q, k and v side by side.
    pub qkv: Linear<B>,
    /// The output projection.
    pub proj: Linear<B>,
    heads: usize,
    tokenwise: bool,
}

impl<B: Backend> SelfAttention<B> {
    /// `[n, t, d]` → `[n, t, d]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let qkv = over_tokens(&self.qkv, x, self.tokenwise);
        over_tokens(&self.proj, multi_head_attention(qkv, self.heads), self.tokenwise)
    }
}

/// Linear → activation → Linear.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// `d → hidden`.
    pub fc1: Linear<B>,
    /// `hidden → d`.
    pub fc2: Linear<B>,
    #[module(skip)]
    activation: Activation,
    tokenwise: bool,
}

impl<B: Backend> Mlp<B> {
    /// `[n, t, d]` → `[n, t, d]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let h = self.activation.apply(over_tokens(&self.fc1, x, self.tokenwise));
        over_tokens(&self.fc2, h, self.tokenwise)
    }
}

/// Pre-LN transformer block (see the module documentation).
#[derive(Module, Debug)]
pub struct TransformerBlock<B: Backend> {
    /// LayerNorm before attention.
    pub norm1: LayerNorm<B>,
    /// Self-attention.
    pub attn: SelfAttention<B>,
    /// LayerNorm before the MLP.
    pub norm2: LayerNorm<B>,
    /// The norms' ε, which [`ops::layer_norm`](crate::ops::layer_norm) needs (Burn keeps a
    /// `LayerNorm`'s own private). A constant: not part of the record.
    pub layer_norm_eps: f64,
    /// The MLP.
    pub mlp: Mlp<B>,
}

impl<B: Backend> TransformerBlock<B> {
    /// One block over a token sequence.
    ///
    /// # Shapes
    /// `[n, t, d]` → `[n, t, d]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let eps = self.layer_norm_eps;
        let x = x.clone() + self.attn.forward(layer_norm(&self.norm1, eps, x));
        x.clone() + self.mlp.forward(layer_norm(&self.norm2, eps, x))
    }
}

impl Activation {
    /// The activation as ONNX nodes (opset 17 has no `Gelu`: exact GELU is written with `Erf`).
    pub(crate) fn write_onnx(self, w: &mut OnnxWriter, x: &str) -> String {
        match self {
            Self::Relu6 => {
                let (lo, hi) = (w.scalar(0.0), w.scalar(6.0));
                w.node("Clip", &[x, &lo, &hi], vec![])
            }
            Self::Gelu => {
                let root2 = w.scalar(std::f32::consts::SQRT_2);
                let z = w.node("Div", &[x, &root2], vec![]);
                let erf = w.node("Erf", &[&z], vec![]);
                let one = w.scalar(1.0);
                let gate = w.node("Add", &[&erf, &one], vec![]);
                let y = w.node("Mul", &[x, &gate], vec![]);
                let half = w.scalar(0.5);
                w.node("Mul", &[&y, &half], vec![])
            }
            Self::QuickGelu => {
                let k = w.scalar(1.702);
                let z = w.node("Mul", &[x, &k], vec![]);
                let gate = w.node("Sigmoid", &[&z], vec![]);
                w.node("Mul", &[x, &gate], vec![])
            }
        }
    }
}

impl<B: Backend> SelfAttention<B> {
    /// Attention as ONNX nodes, `[n, t, d]` → `[n, t, d]`: q, k and v sliced from the packed
    /// projection, split into heads, `softmax(q·kᵀ / √hd)·v`, heads joined, projection.
    fn write_onnx(&self, w: &mut OnnxWriter, x: &str) -> Result<String> {
        let qkv = w.matmul(&self.qkv, x)?;
        let d = self.proj.weight.dims()[0] as i64;
        let (h, hd) = (self.heads as i64, d / self.heads as i64);
        let mut part = |i: i64, perm: Vec<i64>| {
            let p = w.slice(&qkv, vec![2], vec![i * d], vec![(i + 1) * d]);
            let p = w.reshape(&p, vec![0, 0, h, hd]);
            w.transpose(&p, perm)
        };
        let q = part(0, vec![0, 2, 1, 3]);
        let k = part(1, vec![0, 2, 3, 1]);
        let v = part(2, vec![0, 2, 1, 3]);
        let scores = w.node("MatMul", &[&q, &k], vec![]);
        let scale = w.scalar((hd as f32).powf(-0.5));
        let scores = w.node("Mul", &[&scores, &scale], vec![]);
        let attn = w.node("Softmax", &[&scores], vec![("axis", Attr::Int(3))]);
        let y = w.node("MatMul", &[&attn, &v], vec![]);
        let y = w.transpose(&y, vec![0, 2, 1, 3]);
        let y = w.reshape(&y, vec![0, 0, d]);
        w.matmul(&self.proj, &y)
    }
}

impl<B: Backend> TransformerBlock<B> {
    /// The block as ONNX nodes (as [`TransformerBlock::forward`]); `eps` is the network's
    /// LayerNorm ε.
    pub(crate) fn write_onnx(&self, w: &mut OnnxWriter, x: &str, eps: f64) -> Result<String> {
        let h = w.layer_norm(&self.norm1, eps, x)?;
        let a = self.attn.write_onnx(w, &h)?;
        let x = w.node("Add", &[x, &a], vec![]);
        let h = w.layer_norm(&self.norm2, eps, &x)?;
        let h = w.matmul(&self.mlp.fc1, &h)?;
        let h = self.mlp.activation.write_onnx(w, &h);
        let h = w.matmul(&self.mlp.fc2, &h)?;
        Ok(w.node("Add", &[&x, &h], vec![]))
    }
}

//! A ViT over an arbitrary token set: each token is a pixel patch with its own coordinates, so a
//! regular patch grid (plain ViT, DINO) and patches centred on facial landmarks (LAFS, the
//! "part" ViT) are the same network.
//!
//! A token's embedding is the sum of three parts:
//! - the linear projection of its `3 × p × p` patch;
//! - a coordinate encoding: `(x, y)` in `[−1, 1]` and their Fourier features
//!   `sin/cos(2^f · π · x)`, `f < coord_freqs`, through a linear layer — position information
//!   taken from where the patch was cut, so token order alone carries none;
//! - optionally a learned **slot** embedding (`max_slots > 0`): which landmark the token is
//!   supposed to be. LAFS' landmark shuffle moves tokens (patch and coordinates together)
//!   between slots, so the network cannot trust the slot alone.
//!
//! A class token is prepended; the blocks are DINO's pre-LN blocks (qkv with bias, GELU MLP,
//! LayerNorm ε = 1e-6), and the output is the normalised class token.

use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::gelu;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SslError};

/// Token ViT configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenVitConfig {
    /// Token width.
    pub embed_dim: usize,
    /// Transformer blocks.
    pub depth: usize,
    /// Attention heads (must divide `embed_dim`).
    pub num_heads: usize,
    /// MLP hidden width as a multiple of `embed_dim`.
    pub mlp_ratio: usize,
    /// Side of a token's pixel patch.
    pub patch_size: usize,
    /// Size of the slot-embedding table; 0 turns slot embeddings off.
    pub max_slots: usize,
    /// Fourier frequencies of the coordinate encoding.
    pub coord_freqs: usize,
}

impl Default for TokenVitConfig {
    /// ViT-Tiny (192 wide, 12 blocks, 3 heads) with 16-pixel patches.
    fn default() -> Self {
        Self::tiny()
    }
}

impl TokenVitConfig {
    /// ViT-Tiny: 192 wide, 12 blocks, 3 heads, MLP ×4, 16-pixel patches, 64 slots.
    pub fn tiny() -> Self {
        Self {
            embed_dim: 192,
            depth: 12,
            num_heads: 3,
            mlp_ratio: 4,
            patch_size: 16,
            max_slots: 64,
            coord_freqs: 6,
        }
    }

    /// ViT-Small: 384 wide, 12 blocks, 6 heads.
    pub fn small() -> Self {
        Self {
            embed_dim: 384,
            num_heads: 6,
            ..Self::tiny()
        }
    }

    /// Values of a patch token: `3 · patch_size²`.
    pub fn patch_values(&self) -> usize {
        3 * self.patch_size * self.patch_size
    }

    /// Checks the sizes.
    ///
    /// # Errors
    /// A zero size, or heads that do not divide the width.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("vit.embed_dim", self.embed_dim),
            ("vit.depth", self.depth),
            ("vit.num_heads", self.num_heads),
            ("vit.mlp_ratio", self.mlp_ratio),
            ("vit.patch_size", self.patch_size),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err(SslError::config(key, "must be positive"));
            }
        }
        if !self.embed_dim.is_multiple_of(self.num_heads) {
            return Err(SslError::config(
                "vit.num_heads",
                format!("{} heads do not divide width {}", self.num_heads, self.embed_dim),
            ));
        }
        if self.coord_freqs > 16 {
            return Err(SslError::config("vit.coord_freqs", "at most 16 frequencies"));
        }
        Ok(())
    }

    /// Builds the network with random weights (truncated-normal-like N(0, 0.02) linear layers).
    ///
    /// # Errors
    /// As [`TokenVitConfig::validate`].
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<TokenVit<B>> {
        self.validate()?;
        let d = self.embed_dim;
        let linear = |i: usize, o: usize| dense(i, o, device);
        let ln = || LayerNormConfig::new(d).with_epsilon(1e-6).init(device);
        let small = Distribution::Normal(0.0, 0.02);
        Ok(TokenVit {
            patch_embed: linear(self.patch_values(), d),
            coord_embed: linear(2 + 4 * self.coord_freqs, d),
            slot_embed: (self.max_slots > 0).then(|| {
                EmbeddingConfig::new(self.max_slots, d)
                    .with_initializer(Initializer::Normal { mean: 0.0, std: 0.02 })
                    .init(device)
            }),
            cls_token: Param::from_tensor(Tensor::random([1, 1, d], small, device)),
            blocks: (0..self.depth)
                .map(|_| Block {
                    norm1: ln(),
                    qkv: linear(d, 3 * d),
                    proj: linear(d, d),
                    norm2: ln(),
                    fc1: linear(d, self.mlp_ratio * d),
                    fc2: linear(self.mlp_ratio * d, d),
                    heads: self.num_heads,
                })
                .collect(),
            norm: ln(),
            coord_freqs: self.coord_freqs,
            patch_values: self.patch_values(),
            max_slots: self.max_slots,
        })
    }
}

/// A linear layer initialised as DINO's: weights N(0, 0.02²), biases zero (a random bias
/// would swamp the small signal of a freshly initialised deep MLP and make every image look
/// alike to the head).
pub(crate) fn dense<B: Backend>(input: usize, output: usize, device: &B::Device) -> Linear<B> {
    let mut l = LinearConfig::new(input, output)
        .with_initializer(Initializer::Normal { mean: 0.0, std: 0.02 })
        .init(device);
    l.bias = Some(Param::from_tensor(Tensor::zeros([output], device)));
    l
}

/// A batch of token sequences: `n` sequences of `t` tokens.
#[derive(Debug, Clone)]
pub struct TokenBatch<B: Backend> {
    /// Patch values, `[n, t, 3·p·p]` (channel-planar per patch, normalised).
    pub patches: Tensor<B, 3>,
    /// Token centres in view coordinates scaled to `[−1, 1]`, `[n, t, 2]` (x, y).
    pub coords: Tensor<B, 3>,
    /// Slot of each token (the landmark it stands for), `[n, t]`.
    pub slots: Tensor<B, 2, Int>,
}

impl<B: Backend> TokenBatch<B> {
    /// Sequences in the batch.
    pub fn len(&self) -> usize {
        self.patches.dims()[0]
    }

    /// `true` when the batch holds no sequence.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tokens per sequence.
    pub fn tokens(&self) -> usize {
        self.patches.dims()[1]
    }
}

/// DINO's pre-LN transformer block.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    norm1: LayerNorm<B>,
    qkv: Linear<B>,
    proj: Linear<B>,
    norm2: LayerNorm<B>,
    fc1: Linear<B>,
    fc2: Linear<B>,
    heads: usize,
}

/// A linear layer over every token of `[n, t, d]` as one `[n·t, d]` matrix product (Burn would
/// otherwise run `n` small products against a broadcast weight, slow for short sequences).
fn tokenwise<B: Backend>(layer: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [n, t, d] = x.dims();
    let y: Tensor<B, 2> = layer.forward(x.reshape([n * t, d]));
    let out = y.dims()[1];
    y.reshape([n, t, out])
}

impl<B: Backend> Block<B> {
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let qkv = tokenwise(&self.qkv, self.norm1.forward(x.clone()));
        let x = x + tokenwise(&self.proj, face_nets::multi_head_attention(qkv, self.heads));
        let h = gelu(tokenwise(&self.fc1, self.norm2.forward(x.clone())));
        x + tokenwise(&self.fc2, h)
    }
}

/// The token ViT (see the module documentation).
#[derive(Module, Debug)]
pub struct TokenVit<B: Backend> {
    patch_embed: Linear<B>,
    coord_embed: Linear<B>,
    slot_embed: Option<Embedding<B>>,
    cls_token: Param<Tensor<B, 3>>,
    blocks: Vec<Block<B>>,
    norm: LayerNorm<B>,
    coord_freqs: usize,
    patch_values: usize,
    max_slots: usize,
}

impl<B: Backend> TokenVit<B> {
    /// Output width.
    pub fn embed_dim(&self) -> usize {
        self.cls_token.dims()[2]
    }

    /// Values a token patch must have (`3 · p²`).
    pub fn patch_values(&self) -> usize {
        self.patch_values
    }

    /// Slots the slot embedding knows (0 when off).
    pub fn max_slots(&self) -> usize {
        self.max_slots
    }

    /// The coordinate encoding input: `[x, y, sin/cos(π 2^f x), sin/cos(π 2^f y)]`.
    fn coord_features(&self, coords: Tensor<B, 3>) -> Tensor<B, 3> {
        let [n, t, _] = coords.dims();
        let f = self.coord_freqs;
        if f == 0 {
            return coords;
        }
        let freqs: Vec<f32> = (0..f)
            .map(|i| std::f32::consts::PI * (1u32 << i) as f32)
            .collect();
        let freqs = Tensor::<B, 4>::from_data(TensorData::new(freqs, [1, 1, 1, f]), &coords.device());
        let angles = coords.clone().unsqueeze_dim::<4>(3) * freqs;
        let waves = Tensor::cat(vec![angles.clone().sin(), angles.cos()], 3).reshape([n, t, 4 * f]);
        Tensor::cat(vec![coords, waves], 2)
    }

    /// Token embeddings with the class token prepended, `[n, 1 + t, d]`.
    fn embed(&self, batch: &TokenBatch<B>) -> Tensor<B, 3> {
        let n = batch.len();
        let mut x = self.patch_embed.forward(batch.patches.clone())
            + self
                .coord_embed
                .forward(self.coord_features(batch.coords.clone()));
        if let Some(slots) = &self.slot_embed {
            x = x + slots.forward(batch.slots.clone());
        }
        let d = self.embed_dim();
        Tensor::cat(vec![self.cls_token.val().expand([n, 1, d]), x], 1)
    }

    /// Every normalised output token, class token first, `[n, 1 + t, d]`.
    pub fn forward_tokens(&self, batch: &TokenBatch<B>) -> Tensor<B, 3> {
        let x = self.blocks.iter().fold(self.embed(batch), |x, b| b.forward(x));
        self.norm.forward(x)
    }

    /// The representation: the normalised class token, `[n, d]`.
    pub fn forward(&self, batch: &TokenBatch<B>) -> Tensor<B, 2> {
        let x = self.forward_tokens(batch);
        let [n, _, d] = x.dims();
        x.narrow(1, 0, 1).reshape([n, d])
    }
}

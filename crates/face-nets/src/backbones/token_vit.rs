//! A ViT over an arbitrary token set: each token is a pixel patch with its own coordinates, so a
//! regular patch grid (plain ViT, DINO; Caron et al., 2021) and patches centred on facial
//! landmarks (LAFS, Sun et al., CVPR 2024) are the same network. face-ssl pretrains it.
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
//! A class token is prepended; the blocks are DINO's pre-LN [`TransformerBlock`]s (qkv with
//! bias, GELU MLP, LayerNorm ε = 1e-6), and the output is the normalised class token.
//!
//! As a [`Backbone`] it takes aligned faces: [`TokenInput`] says where the tokens of an
//! `S × S` face are cut (a centred grid, a dense grid over the face, or given points), so a
//! pretrained token ViT can seed a distillation student.

use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::Backbone;
use crate::blocks::{Activation, LinearInit, TransformerBlock, TransformerBlockConfig};
use crate::error::{NetsError, Result};

/// Where the tokens of an aligned `image_size × image_size` face are cut when the ViT runs as a
/// [`Backbone`] (slot `i` for token `i`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TokenLayout {
    /// An `n × n` grid of non-overlapping patches, centred in the image (DINO's tokens).
    Grid {
        /// Patches per side.
        n: usize,
    },
    /// An `n × n` grid of centres spread evenly over the whole image, `(k + ½)·S/n − ½` (the
    /// dense landmarks of LAFS, which sit on that grid in a template-aligned face).
    Dense {
        /// Centres per side.
        n: usize,
    },
    /// Given centres in pixels (`(x, y)`; e.g. the five ArcFace template points).
    Points {
        /// The centres.
        points: Vec<[f32; 2]>,
    },
}

/// The input of a token ViT used as a [`Backbone`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenInput {
    /// Side of the aligned face, pixels.
    pub image_size: usize,
    /// Where its tokens are cut.
    pub layout: TokenLayout,
}

impl TokenInput {
    /// Token centres in pixels for `patch`-pixel patches.
    pub fn centres(&self, patch: usize) -> Vec<[f32; 2]> {
        let s = self.image_size as f32;
        let grid = |n: usize, step: f32, off: f32| -> Vec<[f32; 2]> {
            (0..n)
                .flat_map(|r| {
                    (0..n).map(move |c| {
                        [
                            off + (c as f32 + 0.5) * step - 0.5,
                            off + (r as f32 + 0.5) * step - 0.5,
                        ]
                    })
                })
                .collect()
        };
        match &self.layout {
            TokenLayout::Grid { n } => {
                let off = (s - (n * patch) as f32) / 2.0;
                grid(*n, patch as f32, off)
            }
            TokenLayout::Dense { n } => grid(*n, s / *n as f32, 0.0),
            TokenLayout::Points { points } => points.clone(),
        }
    }

    /// Number of tokens.
    pub fn tokens(&self) -> usize {
        match &self.layout {
            TokenLayout::Grid { n } | TokenLayout::Dense { n } => n * n,
            TokenLayout::Points { points } => points.len(),
        }
    }
}

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
    /// The tokens of a face when used as a [`Backbone`] (face-ssl fills it from its views;
    /// absent: a centred grid of `⌊112 / patch_size⌋²` patches on 112-pixel faces).
    pub input: Option<TokenInput>,
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
            input: None,
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

    /// The backbone input in force: [`TokenVitConfig::input`], or its default.
    pub fn backbone_input(&self) -> TokenInput {
        self.input.clone().unwrap_or(TokenInput {
            image_size: 112,
            layout: TokenLayout::Grid {
                n: 112 / self.patch_size.max(1),
            },
        })
    }

    /// The configuration of one block: GELU MLP, qkv with bias, LayerNorm ε 1e-6, linear layers
    /// N(0, 0.02) with zero biases (DINO's initialisation).
    pub fn block(&self) -> TransformerBlockConfig {
        TransformerBlockConfig::new(self.embed_dim, self.num_heads, self.mlp_ratio * self.embed_dim)
            .with_activation(Activation::Gelu)
            .with_layer_norm_eps(1e-6)
            .with_init(LinearInit::Normal { std: 0.02 })
    }

    /// Checks the sizes.
    ///
    /// # Errors
    /// A zero size, heads that do not divide the width, too many Fourier frequencies, or a
    /// backbone input without tokens or with more tokens than slots.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &'static str, message: String| Err(NetsError::Config { name, message });
        for (name, v) in [
            ("embed_dim", self.embed_dim),
            ("depth", self.depth),
            ("num_heads", self.num_heads),
            ("mlp_ratio", self.mlp_ratio),
            ("patch_size", self.patch_size),
        ] {
            if v == 0 {
                return bad(name, "must be positive".into());
            }
        }
        if !self.embed_dim.is_multiple_of(self.num_heads) {
            return bad(
                "num_heads",
                format!("{} heads do not divide width {}", self.num_heads, self.embed_dim),
            );
        }
        if self.coord_freqs > 16 {
            return bad("coord_freqs", "at most 16 frequencies".into());
        }
        let input = self.backbone_input();
        let tokens = input.tokens();
        if tokens == 0 || input.image_size == 0 {
            return bad("input", format!("{input:?} has no tokens"));
        }
        if let TokenLayout::Grid { n } = input.layout {
            if n * self.patch_size > input.image_size {
                return bad(
                    "input",
                    format!(
                        "{n}×{n} patches of {} px do not fit {} px",
                        self.patch_size, input.image_size
                    ),
                );
            }
        }
        if let Some(p) = input
            .centres(self.patch_size)
            .iter()
            .find(|p| !(p[0].is_finite() && p[1].is_finite()))
        {
            return bad("input", format!("non-finite token centre {p:?}"));
        }
        if self.max_slots > 0 && tokens > self.max_slots {
            return bad(
                "max_slots",
                format!("{} slots, but the input has {tokens} tokens", self.max_slots),
            );
        }
        Ok(())
    }

    /// Builds the network with random weights (DINO's initialisation: N(0, 0.02) linear
    /// layers with zero biases).
    ///
    /// # Panics
    /// When [`TokenVitConfig::validate`] fails.
    pub fn init<B: Backend>(&self, device: &B::Device) -> TokenVit<B> {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let d = self.embed_dim;
        let linear = |i: usize, o: usize| dense(i, o, device);
        let small = Distribution::Normal(0.0, 0.02);
        let input = self.backbone_input();
        TokenVit {
            patch_embed: linear(self.patch_values(), d),
            coord_embed: linear(2 + 4 * self.coord_freqs, d),
            slot_embed: (self.max_slots > 0).then(|| {
                EmbeddingConfig::new(self.max_slots, d)
                    .with_initializer(Initializer::Normal { mean: 0.0, std: 0.02 })
                    .init(device)
            }),
            cls_token: Param::from_tensor(Tensor::random([1, 1, d], small, device)),
            blocks: (0..self.depth).map(|_| self.block().init(device)).collect(),
            norm: LayerNormConfig::new(d).with_epsilon(1e-6).init(device),
            coord_freqs: self.coord_freqs,
            patch_values: self.patch_values(),
            max_slots: self.max_slots,
            patch_size: self.patch_size,
            image_size: input.image_size,
            centres: input.centres(self.patch_size),
        }
    }
}

/// A linear layer initialised as DINO's: weights N(0, 0.02²), biases zero (a random bias
/// would swamp the small signal of a freshly initialised deep MLP and make every image look
/// alike to a projection head).
pub fn dense<B: Backend>(input: usize, output: usize, device: &B::Device) -> Linear<B> {
    let mut l = LinearConfig::new(input, output)
        .with_bias(false)
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

/// The token ViT (see the module documentation).
#[derive(Module, Debug)]
pub struct TokenVit<B: Backend> {
    patch_embed: Linear<B>,
    coord_embed: Linear<B>,
    slot_embed: Option<Embedding<B>>,
    cls_token: Param<Tensor<B, 3>>,
    blocks: Vec<TransformerBlock<B>>,
    norm: LayerNorm<B>,
    coord_freqs: usize,
    patch_values: usize,
    max_slots: usize,
    patch_size: usize,
    image_size: usize,
    #[module(skip)]
    centres: Vec<[f32; 2]>,
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
        let mut x = crate::ops::linear(&self.patch_embed, batch.patches.clone())
            + crate::ops::linear(&self.coord_embed, self.coord_features(batch.coords.clone()));
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

    /// The tokens of aligned faces, cut at the backbone input's centres with bilinear sampling
    /// (as face-data's `extract_patches`: a pixel outside the face counts as black, −1 after
    /// ArcFace normalisation).
    ///
    /// # Shapes
    /// `[n, 3, S, S]` (normalised) → a batch of `n` sequences of `t` tokens.
    pub fn tokenize(&self, x: Tensor<B, 4>) -> TokenBatch<B> {
        let [n, c, h, w] = x.dims();
        let p = self.patch_size;
        let half = (p as f32 - 1.0) / 2.0;
        let origins: Vec<[f32; 2]> = self.centres.iter().map(|q| [q[0] - half, q[1] - half]).collect();
        // Pad so that every sample (and its right/lower neighbour) lies inside.
        let lo = origins
            .iter()
            .flat_map(|o| [o[0], o[1]])
            .fold(0.0f32, |m, v| m.min(v.floor()));
        let hi_x = origins
            .iter()
            .fold(0.0f32, |m, o| m.max(o[0].floor() + p as f32 + 1.0 - w as f32));
        let hi_y = origins
            .iter()
            .fold(0.0f32, |m, o| m.max(o[1].floor() + p as f32 + 1.0 - h as f32));
        let pad = (-lo).max(hi_x).max(hi_y).max(0.0) as usize;
        let device = x.device();
        let x = if pad > 0 {
            let mut big = Tensor::<B, 4>::full([n, c, h + 2 * pad, w + 2 * pad], -1.0, &device);
            big = big.slice_assign([0..n, 0..c, pad..pad + h, pad..pad + w], x);
            big
        } else {
            x
        };
        let mut patches = Vec::with_capacity(origins.len());
        for o in &origins {
            let (fx, fy) = (o[0] - o[0].floor(), o[1] - o[1].floor());
            let (ix, iy) = (
                (o[0].floor() as isize + pad as isize) as usize,
                (o[1].floor() as isize + pad as isize) as usize,
            );
            let cut = |dy: usize, dx: usize| -> Tensor<B, 4> {
                x.clone()
                    .slice([0..n, 0..c, iy + dy..iy + dy + p, ix + dx..ix + dx + p])
            };
            let mut patch: Option<Tensor<B, 4>> = None;
            for (dy, dx, weight) in [
                (0, 0, (1.0 - fx) * (1.0 - fy)),
                (0, 1, fx * (1.0 - fy)),
                (1, 0, (1.0 - fx) * fy),
                (1, 1, fx * fy),
            ] {
                if weight > 1e-6 {
                    let term = cut(dy, dx).mul_scalar(weight);
                    patch = Some(match patch {
                        Some(acc) => acc + term,
                        None => term,
                    });
                }
            }
            let patch = patch.unwrap_or_else(|| cut(0, 0));
            patches.push(patch.reshape([n, 1, c * p * p]));
        }
        let t = origins.len();
        let s = self.image_size as f32;
        let coords: Vec<f32> = self
            .centres
            .iter()
            .flat_map(|q| [(q[0] + 0.5) / s * 2.0 - 1.0, (q[1] + 0.5) / s * 2.0 - 1.0])
            .collect();
        let coords = Tensor::<B, 3>::from_data(TensorData::new(coords, [1, t, 2]), &device).expand([n, t, 2]);
        let slots: Vec<i64> = (0..t as i64).collect();
        let slots = Tensor::<B, 2, Int>::from_data(TensorData::new(slots, [1, t]), &device).expand([n, t]);
        TokenBatch {
            patches: Tensor::cat(patches, 1),
            coords,
            slots,
        }
    }
}

impl<B: Backend> Backbone<B> for TokenVit<B> {
    fn feature_dim(&self) -> usize {
        self.embed_dim()
    }

    fn input_size(&self) -> usize {
        self.image_size
    }

    fn features(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        self.forward(&self.tokenize(x))
    }
}

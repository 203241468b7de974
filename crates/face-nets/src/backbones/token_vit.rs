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
use crate::onnx_writer::{Attr, OnnxWriter};

/// The LayerNorm ε of every norm in the network (DINO's).
const LN_EPS: f64 = 1e-6;

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
            .with_layer_norm_eps(LN_EPS)
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

    /// Builds the network and loads a PyTorch state dict of facekit's reference class (module
    /// names as here, `tools/torch_nets.py TokenViT`; the layout `face_nets::export` writes).
    ///
    /// # Errors
    /// As [`crate::weights::load_pytorch`], plus an invalid configuration.
    pub fn load_torch<B: Backend>(
        &self,
        path: &std::path::Path,
        device: &B::Device,
    ) -> Result<(TokenVit<B>, crate::weights::LoadReport)> {
        self.validate()?;
        let mut model = self.init(device);
        let report = crate::weights::load_pytorch(&mut model, path, &[], &[], None)?;
        Ok((model, report))
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
            norm: LayerNormConfig::new(d).with_epsilon(LN_EPS).init(device),
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
        crate::ops::layer_norm(&self.norm, LN_EPS, x)
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
        let (pad, cuts) = self.cuts(h, w);
        let device = x.device();
        let x = if pad > 0 {
            let mut big = Tensor::<B, 4>::full([n, c, h + 2 * pad, w + 2 * pad], -1.0, &device);
            big = big.slice_assign([0..n, 0..c, pad..pad + h, pad..pad + w], x);
            big
        } else {
            x
        };
        let mut patches = Vec::with_capacity(cuts.len());
        for cut in &cuts {
            let at = |dy: usize, dx: usize| -> Tensor<B, 4> {
                x.clone()
                    .slice([0..n, 0..c, cut.y + dy..cut.y + dy + p, cut.x + dx..cut.x + dx + p])
            };
            let mut patch: Option<Tensor<B, 4>> = None;
            for (dy, dx, weight) in cut.taps() {
                let term = at(dy, dx).mul_scalar(weight);
                patch = Some(match patch {
                    Some(acc) => acc + term,
                    None => term,
                });
            }
            let patch = patch.unwrap_or_else(|| at(0, 0));
            patches.push(patch.reshape([n, 1, c * p * p]));
        }
        let t = cuts.len();
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

/// Where one token's patch is read in the padded image: the top-left pixel of its
/// neighbourhood and the bilinear fractions.
#[derive(Debug, Clone, Copy)]
struct Cut {
    x: usize,
    y: usize,
    fx: f32,
    fy: f32,
}

impl Cut {
    /// The bilinear taps `(dy, dx, weight)` with a weight that counts (> 1e-6).
    fn taps(&self) -> Vec<(usize, usize, f32)> {
        let (fx, fy) = (self.fx, self.fy);
        [
            (0, 0, (1.0 - fx) * (1.0 - fy)),
            (0, 1, fx * (1.0 - fy)),
            (1, 0, (1.0 - fx) * fy),
            (1, 1, fx * fy),
        ]
        .into_iter()
        .filter(|t| t.2 > 1e-6)
        .collect()
    }
}

impl<B: Backend> TokenVit<B> {
    /// The padding of an `h × w` image (with −1) that keeps every sample of every token, and
    /// where each token is cut from the padded image.
    fn cuts(&self, h: usize, w: usize) -> (usize, Vec<Cut>) {
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
        let cuts = origins
            .iter()
            .map(|o| Cut {
                x: (o[0].floor() as isize + pad as isize) as usize,
                y: (o[1].floor() as isize + pad as isize) as usize,
                fx: o[0] - o[0].floor(),
                fy: o[1] - o[1].floor(),
            })
            .collect();
        (pad, cuts)
    }

    /// The network as ONNX nodes from aligned faces `x` `[N, 3, S, S]` to the normalised class
    /// token `[N, embed_dim]`, exactly as [`TokenVit::tokenize`] then [`TokenVit::forward`]:
    /// - the image is padded with −1, and each token's `(p+1)²` neighbourhood (`p²` when no
    ///   token falls between pixels) is sliced and flattened;
    /// - the patch projection and the bilinear weights are one matrix per token (one for all
    ///   when every token has the same fractions), applied by a batched `MatMul`;
    /// - the projection bias, the coordinate encoding, the slot embeddings and the class token
    ///   do not depend on the image: they are one constant `[1, 1 + t, d]`, added after a zero
    ///   row is padded in front for the class token.
    pub(crate) fn write_onnx(&self, w: &mut OnnxWriter, x: &str) -> Result<String> {
        let (s, p, d) = (self.image_size, self.patch_size, self.embed_dim());
        let (pad, cuts) = self.cuts(s, s);
        let device = self.cls_token.device();
        let x = if pad > 0 {
            let q = pad as i64;
            w.pad(x, vec![0, 0, q, q, 0, 0, q, q], -1.0)
        } else {
            x.to_owned()
        };
        let whole = cuts.iter().all(|c| c.taps().len() == 1 && c.taps()[0].2 == 1.0);
        let q = if whole { p } else { p + 1 };
        // One weight per distinct bilinear tap set, `[3·q·q, d]`.
        let proj = crate::to_f32_vec(self.patch_embed.weight.val())?;
        let effective = |cut: &Cut| -> Vec<f32> {
            let mut m = vec![0.0f32; 3 * q * q * d];
            for (dy, dx, weight) in if whole { vec![(0, 0, 1.0)] } else { cut.taps() } {
                for ch in 0..3 {
                    for y in 0..p {
                        for xx in 0..p {
                            let from = ((ch * p + y) * p + xx) * d;
                            let to = ((ch * q + y + dy) * q + xx + dx) * d;
                            for k in 0..d {
                                m[to + k] += weight * proj[from + k];
                            }
                        }
                    }
                }
            }
            m
        };
        let mut slices = Vec::with_capacity(cuts.len());
        for c in &cuts {
            let (x0, y0) = (c.x as i64, c.y as i64);
            let t = w.slice(&x, vec![2, 3], vec![y0, x0], vec![y0 + q as i64, x0 + q as i64]);
            slices.push(w.reshape(&t, vec![0, 1, (3 * q * q) as i64]));
        }
        let refs: Vec<&str> = slices.iter().map(String::as_str).collect();
        let tokens = w.node("Concat", &refs, vec![("axis", Attr::Int(1))]);
        let first = effective(&cuts[0]);
        let shared = whole || cuts.iter().all(|c| (c.fx, c.fy) == (cuts[0].fx, cuts[0].fy));
        let t = if shared {
            let m = w.constant("patch_w", &[3 * q * q, d], first);
            w.node("MatMul", &[&tokens, &m], vec![])
        } else {
            let all: Vec<f32> = cuts.iter().flat_map(effective).collect();
            let m = w.constant("patch_w", &[cuts.len(), 3 * q * q, d], all);
            let per_token = w.transpose(&tokens, vec![1, 0, 2]);
            let y = w.node("MatMul", &[&per_token, &m], vec![]);
            w.transpose(&y, vec![1, 0, 2])
        };
        let t = w.pad(&t, vec![0, 1, 0, 0, 0, 0], 0.0);
        // The image-independent part: the embedding of an all-zero patch batch.
        let mut zero = self.tokenize(Tensor::zeros([1, 3, s, s], &device));
        zero.patches = zero.patches.zeros_like();
        let constant = w.tensor("token_embed", self.embed(&zero))?;
        let mut t = w.node("Add", &[&t, &constant], vec![]);
        for b in &self.blocks {
            t = b.write_onnx(w, &t, LN_EPS)?;
        }
        let t = w.layer_norm(&self.norm, LN_EPS, &t)?;
        let cls = w.slice(&t, vec![1], vec![0], vec![1]);
        Ok(w.node("Flatten", &[&cls], vec![("axis", Attr::Int(1))]))
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

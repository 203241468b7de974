//! The ViT of insightface's arcface_torch (`vit_t`, `vit_s`, `vit_b`, `vit_l`; norm_layer "ln"):
//! 9×9 patches of a 112×112 face (12×12 = 144 tokens, no class token), learned position
//! embeddings, pre-LN blocks (bias-free qkv, ReLU6 MLP), a final LayerNorm, then every token
//! flattened into Linear → BatchNorm1d → Linear → BatchNorm1d (ε = 2e-5): the embedding.
//!
//! Training in arcface_torch drops a random `mask_ratio` of the tokens before the blocks and puts
//! the learned `mask_token` back in their places after the final norm; [`FaceVit::forward_masked`]
//! does the same, [`FaceVit::forward`] is the evaluation path.

use std::path::Path;

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Int, Tensor};

use super::Backbone;
use crate::blocks::{bn, conv, Activation, TransformerBlock, TransformerBlockConfig};
use crate::error::{NetsError, Result};
use crate::fold::{fold_linear, FoldBatchNorm};
use crate::onnx_writer::{Attr, OnnxWriter};
use crate::weights::{load_pytorch, LoadReport};

/// Checkpoint-key remaps from arcface_torch's ViT to this module (its `feature` Sequential).
pub(crate) const TORCH_KEYS: &[(&str, &str)] = &[
    (r"^feature\.0\.", "feature.fc1."),
    (r"^feature\.1\.", "feature.bn1."),
    (r"^feature\.2\.", "feature.fc2."),
    (r"^feature\.3\.", "feature.bn2."),
];

/// The inverse of [`TORCH_KEYS`], for `face_nets::export`.
pub(crate) const TORCH_EXPORT_KEYS: &[(&str, &str)] = &[
    (r"^feature\.fc1\.", "feature.0."),
    (r"^feature\.bn1\.", "feature.1."),
    (r"^feature\.fc2\.", "feature.2."),
    (r"^feature\.bn2\.", "feature.3."),
];

/// The LayerNorm ε of every norm in the network.
const LN_EPS: f64 = 1e-5;

/// Face ViT configuration.
#[derive(Config, Debug, PartialEq)]
pub struct FaceVitConfig {
    /// Token width.
    pub embed_dim: usize,
    /// Number of blocks.
    pub depth: usize,
    /// Attention heads (must divide `embed_dim`).
    #[config(default = 8)]
    pub num_heads: usize,
    /// Input side.
    #[config(default = 112)]
    pub image_size: usize,
    /// Patch side (and stride).
    #[config(default = 9)]
    pub patch_size: usize,
    /// MLP hidden width as a multiple of `embed_dim`.
    #[config(default = 4)]
    pub mlp_ratio: usize,
    /// Embedding size.
    #[config(default = 512)]
    pub num_features: usize,
    /// Share of tokens [`FaceVit::forward_masked`] drops (0.1 in arcface_torch's `vit_t`/`vit_s`).
    #[config(default = 0.1)]
    pub mask_ratio: f64,
}

impl FaceVitConfig {
    /// arcface_torch's `vit_t` (256 wide, 12 blocks).
    pub fn vit_t() -> Self {
        Self::new(256, 12)
    }

    /// arcface_torch's `vit_s` (512 wide, 12 blocks).
    pub fn vit_s() -> Self {
        Self::new(512, 12)
    }

    /// arcface_torch's `vit_b` (512 wide, 24 blocks).
    pub fn vit_b() -> Self {
        Self::new(512, 24)
    }

    /// arcface_torch's `vit_l` (768 wide, 24 blocks).
    pub fn vit_l() -> Self {
        Self::new(768, 24)
    }

    /// Tokens per image (`⌊S/P⌋²`).
    pub fn num_patches(&self) -> usize {
        (self.image_size / self.patch_size).pow(2)
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// Zero sizes, heads not dividing the width, a patch larger than the image, a mask ratio
    /// outside [0, 1).
    pub fn validate(&self) -> Result<()> {
        let bad = |name, message: String| Err(NetsError::Config { name, message });
        if self.embed_dim == 0 || self.depth == 0 || self.num_features == 0 || self.mlp_ratio == 0 {
            return bad(
                "embed_dim",
                "embed_dim, depth, num_features and mlp_ratio must be positive".into(),
            );
        }
        if self.num_heads == 0 || !self.embed_dim.is_multiple_of(self.num_heads) {
            return bad(
                "num_heads",
                format!(
                    "{} heads do not divide embed_dim {}",
                    self.num_heads, self.embed_dim
                ),
            );
        }
        if self.patch_size == 0 || self.patch_size > self.image_size {
            return bad(
                "patch_size",
                format!("patch {} vs image {}", self.patch_size, self.image_size),
            );
        }
        if !(0.0..1.0).contains(&self.mask_ratio) {
            return bad("mask_ratio", format!("{} is not in [0, 1)", self.mask_ratio));
        }
        Ok(())
    }

    /// The configuration of one block: ReLU6 MLP, bias-free qkv, LayerNorm ε 1e-5.
    pub fn block(&self) -> TransformerBlockConfig {
        TransformerBlockConfig::new(self.embed_dim, self.num_heads, self.mlp_ratio * self.embed_dim)
            .with_activation(Activation::Relu6)
            .with_qkv_bias(false)
            .with_layer_norm_eps(LN_EPS)
    }

    /// Builds the network with random weights.
    ///
    /// # Panics
    /// When [`FaceVitConfig::validate`] fails.
    pub fn init<B: Backend>(&self, device: &B::Device) -> FaceVit<B> {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let (d, n, p) = (self.embed_dim, self.num_patches(), self.patch_size);
        let ln = || LayerNormConfig::new(d).with_epsilon(LN_EPS).init(device);
        let small = Distribution::Normal(0.0, 0.02);
        FaceVit {
            patch_embed: PatchEmbed {
                proj: conv(3, d, [p, p], p, [0, 0], 1, true, device),
            },
            pos_embed: Param::from_tensor(Tensor::random([1, n, d], small, device)),
            blocks: (0..self.depth).map(|_| self.block().init(device)).collect(),
            norm: ln(),
            feature: FeatureHead {
                fc1: LinearConfig::new(d * n, d).with_bias(false).init(device),
                bn1: bn(d, 2e-5, device),
                fc2: LinearConfig::new(d, self.num_features)
                    .with_bias(false)
                    .init(device),
                bn2: bn(self.num_features, 2e-5, device),
            },
            mask_token: Param::from_tensor(Tensor::random([1, 1, d], small, device)),
            image_size: self.image_size,
            num_features: self.num_features,
            mask_ratio: self.mask_ratio,
        }
    }

    /// Builds the network and loads an arcface_torch ViT state dict.
    ///
    /// # Errors
    /// As [`crate::weights::load_pytorch`], plus an invalid configuration.
    pub fn load_torch<B: Backend>(
        &self,
        path: &Path,
        device: &B::Device,
    ) -> Result<(FaceVit<B>, LoadReport)> {
        self.validate()?;
        let mut model = self.init(device);
        let report = load_pytorch(&mut model, path, TORCH_KEYS, &[], None)?;
        Ok((model, report))
    }
}

/// Non-overlapping patch projection (a strided convolution).
#[derive(Module, Debug)]
pub struct PatchEmbed<B: Backend> {
    proj: Conv2d<B>,
}

/// Flattened tokens → Linear → BN → Linear → BN.
#[derive(Module, Debug)]
pub struct FeatureHead<B: Backend> {
    fc1: Linear<B>,
    bn1: BatchNorm<B>,
    fc2: Linear<B>,
    bn2: BatchNorm<B>,
}

/// arcface_torch's face ViT.
#[derive(Module, Debug)]
pub struct FaceVit<B: Backend> {
    patch_embed: PatchEmbed<B>,
    pos_embed: Param<Tensor<B, 3>>,
    blocks: Vec<TransformerBlock<B>>,
    norm: LayerNorm<B>,
    feature: FeatureHead<B>,
    mask_token: Param<Tensor<B, 3>>,
    image_size: usize,
    num_features: usize,
    mask_ratio: f64,
}

impl<B: Backend> FaceVit<B> {
    fn tokens(&self, x: Tensor<B, 4>) -> Tensor<B, 3> {
        let t: Tensor<B, 3> = crate::ops::conv2d(&self.patch_embed.proj, x).flatten(2, 3);
        t.swap_dims(1, 2) + self.pos_embed.val()
    }

    fn head(&self, t: Tensor<B, 3>) -> Tensor<B, 2> {
        let f = &self.feature;
        let x = crate::ops::batch_norm(&f.bn1, crate::ops::linear(&f.fc1, t.flatten(1, 2)));
        crate::ops::batch_norm(&f.bn2, crate::ops::linear(&f.fc2, x))
    }

    /// The blocks and the final norm over a token sequence (all tokens, or the kept ones).
    fn encode(&self, t: Tensor<B, 3>) -> Tensor<B, 3> {
        crate::ops::layer_norm(
            &self.norm,
            LN_EPS,
            self.blocks.iter().fold(t, |t, b| b.forward(t)),
        )
    }

    /// The normalised tokens, `[N, 3, S, S]` → `[N, num_patches, embed_dim]`.
    pub fn token_features(&self, x: Tensor<B, 4>) -> Tensor<B, 3> {
        self.encode(self.tokens(x))
    }

    /// The embedding (evaluation path, no masking), `[N, 3, S, S]` → `[N, num_features]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        self.head(self.token_features(x))
    }

    /// The training path of arcface_torch: a random `mask_ratio` of each image's tokens is
    /// dropped before the blocks and replaced by the learned mask token after the final norm.
    pub fn forward_masked(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let t = self.tokens(x);
        let [n, l, d] = t.dims();
        let keep = ((l as f64) * (1.0 - self.mask_ratio)) as usize;
        if keep == l {
            return self.head(self.encode(t));
        }
        let device = t.device();
        let noise = Tensor::<B, 2>::random([n, l], Distribution::Uniform(0.0, 1.0), &device);
        let (_, shuffle) = noise.sort_with_indices(1);
        let (_, restore) = shuffle.clone().float().sort_with_indices(1);
        let expand = |ids: Tensor<B, 2, Int>, len: usize| ids.unsqueeze_dim::<3>(2).expand([n, len, d]);
        let kept = t.gather(1, expand(shuffle.narrow(1, 0, keep), keep));
        let kept = self.encode(kept);
        let masks = self.mask_token.val().expand([n, l - keep, d]);
        let full = Tensor::cat(vec![kept, masks], 1).gather(1, expand(restore, l));
        self.head(full)
    }
}

impl<B: Backend> FaceVit<B> {
    /// The network as ONNX nodes from `x` to the `[N, num_features]` embedding (the
    /// evaluation path; the feature head's BatchNorms folded into its linear layers).
    pub(crate) fn write_onnx(&self, w: &mut OnnxWriter, x: &str) -> Result<String> {
        let [_, l, d] = self.pos_embed.dims();
        let t = w.conv(&self.patch_embed.proj, None, x)?;
        let t = w.reshape(&t, vec![0, d as i64, l as i64]);
        let t = w.transpose(&t, vec![0, 2, 1]);
        let pos = w.tensor("pos_embed", self.pos_embed.val())?;
        let mut t = w.node("Add", &[&t, &pos], vec![]);
        for b in &self.blocks {
            t = b.write_onnx(w, &t, LN_EPS)?;
        }
        let t = w.layer_norm(&self.norm, LN_EPS, &t)?;
        let t = w.node("Flatten", &[&t], vec![("axis", Attr::Int(1))]);
        let f = &self.feature;
        let t = w.linear(&f.fc1, Some(&f.bn1), &t)?;
        w.linear(&f.fc2, Some(&f.bn2), &t)
    }
}

impl<B: Backend> Backbone<B> for FaceVit<B> {
    fn feature_dim(&self) -> usize {
        self.num_features
    }

    fn input_size(&self) -> usize {
        self.image_size
    }

    fn features(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        self.forward(x)
    }
}

impl<B: Backend> FoldBatchNorm for FaceVit<B> {
    /// The feature head's two BatchNorms into its two linear layers.
    fn fold_batch_norm(self) -> Self {
        let f = self.feature;
        let (fc1, bn1) = fold_linear(f.fc1, f.bn1);
        let (fc2, bn2) = fold_linear(f.fc2, f.bn2);
        Self {
            feature: FeatureHead { fc1, bn1, fc2, bn2 },
            ..self
        }
    }
}

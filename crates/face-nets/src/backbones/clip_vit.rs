//! The visual tower of CLIP ViT-B/16 (Radford et al., 2021) in OpenAI's layout, as FaRL
//! (Zheng et al., CVPR 2022) checkpoints store it: 16×16 patches of a 224×224 image, a class
//! token, learned position embeddings, `ln_pre`, pre-LN residual attention blocks (packed
//! `in_proj`, QuickGELU MLP), `ln_post` on the class token and the projection `proj`.
//!
//! FaRL's `.pth` is `{"state_dict": {"visual.*": …, text tower …, "logit_scale": …}}`; the text
//! tower's keys (`transformer.resblocks.*`) have the same names as the visual ones without the
//! prefix, so [`ClipCheckpoint`] sets every key apart first and then takes only the visual ones.

use std::path::Path;

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::conv::Conv2d;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};

use super::Backbone;
use crate::blocks::{conv, Activation, LinearInit, TransformerBlock, TransformerBlockConfig};
use crate::error::{NetsError, Result};
use crate::onnx_writer::{Attr, OnnxWriter};
use crate::weights::{load_pytorch, LoadReport};

/// Checkpoint-key remaps from OpenAI CLIP's residual attention blocks (after the visual prefix is
/// stripped) to the shared [`TransformerBlock`]: `nn.MultiheadAttention`'s packed
/// `in_proj_weight`/`in_proj_bias` are the qkv linear layer (PyTorch's `[out, in]` layout,
/// transposed on load like any linear weight), `out_proj` its output projection.
pub(crate) const BLOCK_KEYS: &[(&str, &str)] = &[
    (r"^(transformer\.resblocks\.\d+)\.ln_1\.", "$1.norm1."),
    (r"^(transformer\.resblocks\.\d+)\.ln_2\.", "$1.norm2."),
    (
        r"^(transformer\.resblocks\.\d+)\.attn\.in_proj_weight$",
        "$1.attn.qkv.weight",
    ),
    (
        r"^(transformer\.resblocks\.\d+)\.attn\.in_proj_bias$",
        "$1.attn.qkv.bias",
    ),
    (
        r"^(transformer\.resblocks\.\d+)\.attn\.out_proj\.",
        "$1.attn.proj.",
    ),
    (r"^(transformer\.resblocks\.\d+)\.mlp\.c_fc\.", "$1.mlp.fc1."),
    (r"^(transformer\.resblocks\.\d+)\.mlp\.c_proj\.", "$1.mlp.fc2."),
];

/// The inverse of [`BLOCK_KEYS`], for `face_nets::export`: the shared block's names back to
/// OpenAI CLIP's.
pub(crate) const TORCH_EXPORT_KEYS: &[(&str, &str)] = &[
    (r"^(transformer\.resblocks\.\d+)\.norm1\.", "$1.ln_1."),
    (r"^(transformer\.resblocks\.\d+)\.norm2\.", "$1.ln_2."),
    (
        r"^(transformer\.resblocks\.\d+)\.attn\.qkv\.weight$",
        "$1.attn.in_proj_weight",
    ),
    (
        r"^(transformer\.resblocks\.\d+)\.attn\.qkv\.bias$",
        "$1.attn.in_proj_bias",
    ),
    (
        r"^(transformer\.resblocks\.\d+)\.attn\.proj\.",
        "$1.attn.out_proj.",
    ),
    (r"^(transformer\.resblocks\.\d+)\.mlp\.fc1\.", "$1.mlp.c_fc."),
    (r"^(transformer\.resblocks\.\d+)\.mlp\.fc2\.", "$1.mlp.c_proj."),
];

/// The LayerNorm ε of every norm in the tower.
const LN_EPS: f64 = 1e-5;

/// CLIP ViT configuration.
#[derive(Config, Debug, PartialEq)]
pub struct ClipVitConfig {
    /// Input side.
    #[config(default = 224)]
    pub image_size: usize,
    /// Patch side.
    #[config(default = 16)]
    pub patch_size: usize,
    /// Token width.
    #[config(default = 768)]
    pub width: usize,
    /// Number of residual attention blocks.
    #[config(default = 12)]
    pub layers: usize,
    /// Attention heads.
    #[config(default = 12)]
    pub heads: usize,
    /// Width of the projected output (`proj`).
    #[config(default = 512)]
    pub output_dim: usize,
    /// QuickGELU `x·σ(1.702x)` (OpenAI CLIP and FaRL) instead of exact GELU (open_clip's default).
    #[config(default = true)]
    pub quick_gelu: bool,
}

/// Where the visual tower sits in a checkpoint file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipCheckpoint {
    /// Nested dict holding the tensors (`Some("state_dict")` for FaRL).
    pub top_level_key: Option<String>,
    /// Prefix of the visual tower's keys (`"visual."`; empty for a bare visual state dict).
    pub prefix: String,
}

impl ClipCheckpoint {
    /// FaRL's release files (`FaRL-Base-Patch16-LAIONFace20M-ep*.pth`).
    pub fn farl() -> Self {
        Self {
            top_level_key: Some("state_dict".into()),
            prefix: "visual.".into(),
        }
    }

    /// A whole-CLIP state dict (`model.state_dict()` of OpenAI CLIP or open_clip).
    pub fn clip_state_dict() -> Self {
        Self {
            top_level_key: None,
            prefix: "visual.".into(),
        }
    }
}

impl ClipVitConfig {
    /// ViT-B/16 (FaRL's backbone).
    pub fn vit_b16() -> Self {
        Self::new()
    }

    /// Tokens per image including the class token.
    pub fn num_tokens(&self) -> usize {
        (self.image_size / self.patch_size).pow(2) + 1
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// Zero sizes, heads not dividing the width or a patch larger than the image.
    pub fn validate(&self) -> Result<()> {
        if self.width == 0 || self.layers == 0 || self.output_dim == 0 {
            return Err(NetsError::Config {
                name: "width",
                message: "width, layers and output_dim must be positive".into(),
            });
        }
        if self.heads == 0 || !self.width.is_multiple_of(self.heads) {
            return Err(NetsError::Config {
                name: "heads",
                message: format!("{} heads do not divide width {}", self.heads, self.width),
            });
        }
        if self.patch_size == 0 || self.patch_size > self.image_size {
            return Err(NetsError::Config {
                name: "patch_size",
                message: format!("patch {} vs image {}", self.patch_size, self.image_size),
            });
        }
        Ok(())
    }

    /// The configuration of one residual attention block: (Quick)GELU MLP of 4× the width,
    /// qkv with bias, LayerNorm ε 1e-5, projections initialised N(0, width^−½).
    pub fn block(&self) -> TransformerBlockConfig {
        TransformerBlockConfig::new(self.width, self.heads, 4 * self.width)
            .with_activation(if self.quick_gelu {
                Activation::QuickGelu
            } else {
                Activation::Gelu
            })
            .with_layer_norm_eps(LN_EPS)
            .with_init(LinearInit::Normal {
                std: (self.width as f64).powf(-0.5),
            })
    }

    /// Builds the tower with random weights.
    ///
    /// # Panics
    /// When [`ClipVitConfig::validate`] fails.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ClipVit<B> {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let w = self.width;
        let scale = (w as f64).powf(-0.5);
        let normal = Distribution::Normal(0.0, scale);
        let ln = || LayerNormConfig::new(w).with_epsilon(LN_EPS).init(device);
        ClipVit {
            conv1: conv(
                3,
                w,
                [self.patch_size; 2],
                self.patch_size,
                [0, 0],
                1,
                false,
                device,
            ),
            class_embedding: Param::from_tensor(Tensor::random([w], normal, device)),
            positional_embedding: Param::from_tensor(Tensor::random([self.num_tokens(), w], normal, device)),
            ln_pre: ln(),
            transformer: ClipTransformer {
                resblocks: (0..self.layers).map(|_| self.block().init(device)).collect(),
            },
            ln_post: ln(),
            proj: Param::from_tensor(Tensor::random([w, self.output_dim], normal, device)),
            image_size: self.image_size,
            output_dim: self.output_dim,
        }
    }

    /// Builds the tower and loads it from a CLIP-family checkpoint; every key outside the
    /// visual prefix is reported as ignored.
    ///
    /// # Errors
    /// As [`crate::weights::load_pytorch`], plus an invalid configuration.
    pub fn load_torch<B: Backend>(
        &self,
        path: &Path,
        layout: &ClipCheckpoint,
        device: &B::Device,
    ) -> Result<(ClipVit<B>, LoadReport)> {
        self.validate()?;
        let mut model = self.init(device);
        // Every key first gets an `other.` prefix, then the visual ones lose it with theirs;
        // then the blocks' names become the shared block's.
        let visual = format!("^other\\.{}", regex::escape(&layout.prefix));
        let mut remaps = vec![("^", "other."), (visual.as_str(), "")];
        remaps.extend_from_slice(BLOCK_KEYS);
        let report = load_pytorch(
            &mut model,
            path,
            &remaps,
            &[r"^other\."],
            layout.top_level_key.as_deref(),
        )?;
        Ok((model, report))
    }
}

/// The block stack (`transformer.resblocks.*`).
#[derive(Module, Debug)]
pub struct ClipTransformer<B: Backend> {
    resblocks: Vec<TransformerBlock<B>>,
}

/// CLIP's visual tower.
#[derive(Module, Debug)]
pub struct ClipVit<B: Backend> {
    conv1: Conv2d<B>,
    class_embedding: Param<Tensor<B, 1>>,
    positional_embedding: Param<Tensor<B, 2>>,
    ln_pre: LayerNorm<B>,
    transformer: ClipTransformer<B>,
    ln_post: LayerNorm<B>,
    proj: Param<Tensor<B, 2>>,
    image_size: usize,
    output_dim: usize,
}

impl<B: Backend> ClipVit<B> {
    /// All tokens after the last block, `[N, 3, S, S]` → `[N, 1 + (S/P)², width]` (class token first).
    pub fn tokens(&self, x: Tensor<B, 4>) -> Tensor<B, 3> {
        let patches: Tensor<B, 3> = crate::ops::conv2d(&self.conv1, x).flatten(2, 3);
        let patches = patches.swap_dims(1, 2);
        let [n, _, w] = patches.dims();
        let cls = self.class_embedding.val().reshape([1, 1, w]).expand([n, 1, w]);
        let t = Tensor::cat(vec![cls, patches], 1) + self.positional_embedding.val().unsqueeze_dim(0);
        let t = crate::ops::layer_norm(&self.ln_pre, LN_EPS, t);
        self.transformer.resblocks.iter().fold(t, |t, b| b.forward(t))
    }

    /// The projected image embedding (`ln_post(class token) · proj`), `[N, output_dim]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let t = self.tokens(x);
        let [n, _, w] = t.dims();
        let cls: Tensor<B, 2> =
            crate::ops::layer_norm(&self.ln_post, LN_EPS, t.narrow(1, 0, 1)).reshape([n, w]);
        cls.matmul(self.proj.val())
    }
}

impl<B: Backend> ClipVit<B> {
    /// The tower as ONNX nodes from `x` to the projected `[N, output_dim]` embedding. The class
    /// token is prepended by padding the patch tokens with a zero row and adding one constant
    /// that holds the class embedding in that row and the position embeddings in all rows.
    pub(crate) fn write_onnx(&self, w: &mut OnnxWriter, x: &str) -> Result<String> {
        let [tokens, width] = self.positional_embedding.dims();
        let t = w.conv(&self.conv1, None, x)?;
        let t = w.reshape(&t, vec![0, width as i64, (tokens - 1) as i64]);
        let t = w.transpose(&t, vec![0, 2, 1]);
        let t = w.pad(&t, vec![0, 1, 0, 0, 0, 0], 0.0);
        let cls = Tensor::cat(
            vec![
                self.class_embedding.val().reshape([1, width]),
                Tensor::zeros([tokens - 1, width], &self.class_embedding.device()),
            ],
            0,
        );
        let embed = w.tensor(
            "embeddings",
            (cls + self.positional_embedding.val()).unsqueeze_dim::<3>(0),
        )?;
        let t = w.node("Add", &[&t, &embed], vec![]);
        let mut t = w.layer_norm(&self.ln_pre, LN_EPS, &t)?;
        for b in &self.transformer.resblocks {
            t = b.write_onnx(w, &t, LN_EPS)?;
        }
        let cls = w.slice(&t, vec![1], vec![0], vec![1]);
        let cls = w.node("Flatten", &[&cls], vec![("axis", Attr::Int(1))]);
        let cls = w.layer_norm(&self.ln_post, LN_EPS, &cls)?;
        let proj = w.tensor("proj", self.proj.val())?;
        Ok(w.node("MatMul", &[&cls, &proj], vec![]))
    }
}

impl<B: Backend> Backbone<B> for ClipVit<B> {
    fn feature_dim(&self) -> usize {
        self.output_dim
    }

    fn input_size(&self) -> usize {
        self.image_size
    }

    fn features(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        self.forward(x)
    }
}

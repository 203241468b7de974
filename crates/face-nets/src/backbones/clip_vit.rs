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
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::{gelu, sigmoid};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};

use super::Backbone;
use crate::error::{NetsError, Result};
use crate::layers::{conv, multi_head_attention};
use crate::weights::{load_pytorch, LoadReport};

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
        let ln = || LayerNormConfig::new(w).with_epsilon(1e-5).init(device);
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
                resblocks: (0..self.layers)
                    .map(|_| ResidualAttentionBlock {
                        ln_1: ln(),
                        attn: PackedAttention {
                            in_proj_weight: Param::from_tensor(Tensor::random([3 * w, w], normal, device)),
                            in_proj_bias: Param::from_tensor(Tensor::zeros([3 * w], device)),
                            out_proj: LinearConfig::new(w, w).init(device),
                            heads: self.heads,
                        },
                        ln_2: ln(),
                        mlp: ClipMlp {
                            c_fc: LinearConfig::new(w, 4 * w).init(device),
                            c_proj: LinearConfig::new(4 * w, w).init(device),
                        },
                        quick_gelu: self.quick_gelu,
                    })
                    .collect(),
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
        // Every key first gets an `other.` prefix, then the visual ones lose it with theirs.
        let visual = format!("^other\\.{}", regex::escape(&layout.prefix));
        let remaps = [("^", "other."), (visual.as_str(), "")];
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

/// Multi-head attention with PyTorch `nn.MultiheadAttention`'s packed input projection.
#[derive(Module, Debug)]
pub struct PackedAttention<B: Backend> {
    /// `[3·width, width]`, rows q, k, v (PyTorch layout, applied as `x·Wᵀ`).
    in_proj_weight: Param<Tensor<B, 2>>,
    in_proj_bias: Param<Tensor<B, 1>>,
    out_proj: Linear<B>,
    heads: usize,
}

impl<B: Backend> PackedAttention<B> {
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, _, c] = x.dims();
        let w = self.in_proj_weight.val().transpose().unsqueeze_dim::<3>(0);
        let qkv = x.matmul(w.expand([b, c, 3 * c])) + self.in_proj_bias.val().reshape([1, 1, 3 * c]);
        self.out_proj.forward(multi_head_attention(qkv, self.heads))
    }
}

/// `c_fc` → (Quick)GELU → `c_proj`.
#[derive(Module, Debug)]
pub struct ClipMlp<B: Backend> {
    c_fc: Linear<B>,
    c_proj: Linear<B>,
}

/// Pre-LN residual attention block.
#[derive(Module, Debug)]
pub struct ResidualAttentionBlock<B: Backend> {
    ln_1: LayerNorm<B>,
    attn: PackedAttention<B>,
    ln_2: LayerNorm<B>,
    mlp: ClipMlp<B>,
    quick_gelu: bool,
}

impl<B: Backend> ResidualAttentionBlock<B> {
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let x = x.clone() + self.attn.forward(self.ln_1.forward(x));
        let h = self.mlp.c_fc.forward(self.ln_2.forward(x.clone()));
        let h = if self.quick_gelu {
            h.clone() * sigmoid(h.mul_scalar(1.702))
        } else {
            gelu(h)
        };
        x + self.mlp.c_proj.forward(h)
    }
}

/// The block stack (`transformer.resblocks.*`).
#[derive(Module, Debug)]
pub struct ClipTransformer<B: Backend> {
    resblocks: Vec<ResidualAttentionBlock<B>>,
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
        let patches: Tensor<B, 3> = self.conv1.forward(x).flatten(2, 3);
        let patches = patches.swap_dims(1, 2);
        let [n, _, w] = patches.dims();
        let cls = self.class_embedding.val().reshape([1, 1, w]).expand([n, 1, w]);
        let t = Tensor::cat(vec![cls, patches], 1) + self.positional_embedding.val().unsqueeze_dim(0);
        let t = self.ln_pre.forward(t);
        self.transformer.resblocks.iter().fold(t, |t, b| b.forward(t))
    }

    /// The projected image embedding (`ln_post(class token) · proj`), `[N, output_dim]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let t = self.tokens(x);
        let [n, _, w] = t.dims();
        let cls: Tensor<B, 2> = self.ln_post.forward(t.narrow(1, 0, 1)).reshape([n, w]);
        cls.matmul(self.proj.val())
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

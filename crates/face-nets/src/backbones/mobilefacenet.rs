//! MobileFaceNet as insightface's arcface_torch defines it (`mbf`, after Chen et al.,
//! "MobileFaceNets", 2018): a strided 3×3 stem, inverted-residual depthwise blocks with PReLU,
//! a 1×1 expansion to 512 channels and a global depthwise convolution (GDC, 7×7) followed by a
//! linear layer and BatchNorm1d: a 512-d embedding for a 112×112 face.
//!
//! arcface_torch nests `nn.Sequential`s (`layers.3.layers.0.layers.2.layers.1.weight`); the
//! tables in [`torch_keys`] map those indices to the named fields below.

use std::path::Path;

use burn::config::Config;
use burn::module::Module;

use crate::fold::{fold_conv, fold_linear, FoldBatchNorm};
use crate::ops::{conv2d_fused, Activation};
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear, LinearConfig, PRelu, PReluConfig};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::Backbone;
use crate::blocks::{bn, conv};
use crate::error::{NetsError, Result};
use crate::weights::{load_pytorch, LoadReport};

/// Checkpoint-key remaps from arcface_torch's `mbf` to this module, in order. The first rule
/// depends on whether the first stage is a single grouped convolution (`blocks[0] == 1`, the
/// published `mbf`) or a residual stage.
pub fn torch_keys(single_conv_stage0: bool) -> Vec<(&'static str, &'static str)> {
    vec![
        (
            r"^layers\.1\.",
            if single_conv_stage0 { "conv_dw." } else { "stage0." },
        ),
        (r"^layers\.0\.", "stem."),
        (r"^layers\.2\.", "down1."),
        (r"^layers\.3\.", "stage1."),
        (r"^layers\.4\.", "down2."),
        (r"^layers\.5\.", "stage2."),
        (r"^layers\.6\.", "down3."),
        (r"^layers\.7\.", "stage3."),
        // GDC head: LinearBlock(0), Flatten(1), Linear(2), BatchNorm1d(3).
        (r"^features\.layers\.0\.", "gdc."),
        (r"^features\.layers\.2\.", "linear."),
        (r"^features\.layers\.3\.", "features."),
        // Inside ConvBlock / LinearBlock: conv(0), BatchNorm(1), PReLU(2).
        (r"layers\.0\.weight$", "conv.weight"),
        (
            r"layers\.1\.(weight|bias|running_mean|running_var|num_batches_tracked)$",
            "bn.$1",
        ),
        (r"layers\.2\.weight$", "prelu.alpha"),
    ]
}

/// The inverse of [`torch_keys`] (module paths, after Burn → PyTorch parameter names, to
/// arcface_torch's keys), for `face_nets::export`: first the block internals, then the stage
/// prefixes, the BatchNorm1d `features` before the rules that produce `features.layers.*`.
pub fn torch_export_keys(single_conv_stage0: bool) -> Vec<(&'static str, &'static str)> {
    vec![
        (r"conv\.weight$", "layers.0.weight"),
        (
            r"bn\.(weight|bias|running_mean|running_var|num_batches_tracked)$",
            "layers.1.$1",
        ),
        (r"prelu\.alpha$", "layers.2.weight"),
        (r"^features\.", "features.layers.3."),
        (r"^gdc\.", "features.layers.0."),
        (r"^linear\.", "features.layers.2."),
        (r"^stem\.", "layers.0."),
        (
            if single_conv_stage0 {
                r"^conv_dw\."
            } else {
                r"^stage0\."
            },
            "layers.1.",
        ),
        (r"^down1\.", "layers.2."),
        (r"^stage1\.", "layers.3."),
        (r"^down2\.", "layers.4."),
        (r"^stage2\.", "layers.5."),
        (r"^down3\.", "layers.6."),
        (r"^stage3\.", "layers.7."),
    ]
}

/// MobileFaceNet configuration.
#[derive(Config, Debug, PartialEq)]
pub struct MobileFaceNetConfig {
    /// Blocks in the four stages (`mbf`: 1, 4, 6, 2; `mbf_large`: 2, 8, 12, 4).
    #[config(default = "[1, 4, 6, 2]")]
    pub blocks: [usize; 4],
    /// Width multiplier: stages have `64·scale` and `128·scale` channels (`mbf`: 2, large: 4).
    #[config(default = 2)]
    pub scale: usize,
    /// Embedding size.
    #[config(default = 512)]
    pub num_features: usize,
}

impl MobileFaceNetConfig {
    /// arcface_torch's `mbf`.
    pub fn mbf() -> Self {
        Self::new()
    }

    /// arcface_torch's `mbf_large`.
    pub fn mbf_large() -> Self {
        Self::new().with_blocks([2, 8, 12, 4]).with_scale(4)
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// An empty stage, a zero scale or embedding size.
    pub fn validate(&self) -> Result<()> {
        if self.blocks.contains(&0) || self.scale == 0 || self.num_features == 0 {
            return Err(NetsError::Config {
                name: "blocks",
                message: format!(
                    "blocks {:?}, scale {}, num_features {}: all must be positive",
                    self.blocks, self.scale, self.num_features
                ),
            });
        }
        Ok(())
    }

    /// Builds the network with random weights.
    ///
    /// # Panics
    /// When [`MobileFaceNetConfig::validate`] fails.
    pub fn init<B: Backend>(&self, device: &B::Device) -> MobileFaceNet<B> {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let (c1, c2) = (64 * self.scale, 128 * self.scale);
        let single = self.blocks[0] == 1;
        MobileFaceNet {
            stem: ConvBlock::new(3, c1, 3, 2, 1, 1, true, device),
            conv_dw: single.then(|| ConvBlock::new(c1, c1, 3, 1, 1, 64, true, device)),
            stage0: (!single).then(|| Residual::new(c1, self.blocks[0], 128, device)),
            down1: DepthWise::new(c1, c1, false, 2, 128, device),
            stage1: Residual::new(c1, self.blocks[1], 128, device),
            down2: DepthWise::new(c1, c2, false, 2, 256, device),
            stage2: Residual::new(c2, self.blocks[2], 256, device),
            down3: DepthWise::new(c2, c2, false, 2, 512, device),
            stage3: Residual::new(c2, self.blocks[3], 256, device),
            conv_sep: ConvBlock::new(c2, 512, 1, 1, 0, 1, true, device),
            gdc: ConvBlock::new(512, 512, 7, 1, 0, 512, false, device),
            linear: LinearConfig::new(512, self.num_features)
                .with_bias(false)
                .init(device),
            features: bn(self.num_features, 1e-5, device),
            num_features: self.num_features,
        }
    }

    /// Builds the network and loads an arcface_torch `backbone.pth` state dict.
    ///
    /// # Errors
    /// As [`crate::weights::load_pytorch`], plus an invalid configuration.
    pub fn load_torch<B: Backend>(
        &self,
        path: &Path,
        device: &B::Device,
    ) -> Result<(MobileFaceNet<B>, LoadReport)> {
        self.validate()?;
        let mut model = self.init(device);
        let keys = torch_keys(self.blocks[0] == 1);
        let report = load_pytorch(&mut model, path, &keys, &[], None)?;
        Ok((model, report))
    }
}

/// Convolution (no bias) → BatchNorm → optional PReLU (`ConvBlock` / `LinearBlock`).
#[derive(Module, Debug)]
pub struct ConvBlock<B: Backend> {
    conv: Conv2d<B>,
    bn: BatchNorm<B>,
    prelu: Option<PRelu<B>>,
}

impl<B: Backend> ConvBlock<B> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        cin: usize,
        cout: usize,
        kernel: usize,
        stride: usize,
        pad: usize,
        groups: usize,
        act: bool,
        device: &B::Device,
    ) -> Self {
        Self {
            conv: conv(
                cin,
                cout,
                [kernel, kernel],
                stride,
                [pad, pad],
                groups,
                false,
                device,
            ),
            bn: bn(cout, 1e-5, device),
            prelu: act.then(|| PReluConfig::new().with_num_parameters(cout).init(device)),
        }
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward_add(x, None)
    }

    /// `forward(x) + residual`, the add fused into the convolution (before the PReLU, where
    /// there is one: the blocks that add have none).
    fn forward_add(&self, x: Tensor<B, 4>, residual: Option<Tensor<B, 4>>) -> Tensor<B, 4> {
        let act = match &self.prelu {
            Some(p) => Activation::PRelu(p),
            None => Activation::Identity,
        };
        conv2d_fused(&self.conv, Some(&self.bn), x, residual, act)
    }
}

/// Inverted residual: 1×1 expand to `groups` channels → depthwise 3×3 (stride) → 1×1 project.
#[derive(Module, Debug)]
pub struct DepthWise<B: Backend> {
    layers: Vec<ConvBlock<B>>,
    residual: bool,
}

impl<B: Backend> DepthWise<B> {
    fn new(
        cin: usize,
        cout: usize,
        residual: bool,
        stride: usize,
        groups: usize,
        device: &B::Device,
    ) -> Self {
        Self {
            layers: vec![
                ConvBlock::new(cin, groups, 1, 1, 0, 1, true, device),
                ConvBlock::new(groups, groups, 3, stride, 1, groups, true, device),
                ConvBlock::new(groups, cout, 1, 1, 0, 1, false, device),
            ],
            residual,
        }
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let Some((last, first)) = self.layers.split_last() else {
            return x;
        };
        let y = first.iter().fold(x.clone(), |y, l| l.forward(y));
        last.forward_add(y, self.residual.then_some(x))
    }
}

/// A stage of residual [`DepthWise`] blocks at constant shape.
#[derive(Module, Debug)]
pub struct Residual<B: Backend> {
    layers: Vec<DepthWise<B>>,
}

impl<B: Backend> Residual<B> {
    fn new(c: usize, blocks: usize, groups: usize, device: &B::Device) -> Self {
        Self {
            layers: (0..blocks)
                .map(|_| DepthWise::new(c, c, true, 1, groups, device))
                .collect(),
        }
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.layers.iter().fold(x, |x, l| l.forward(x))
    }
}

/// MobileFaceNet backbone producing face embeddings.
#[derive(Module, Debug)]
pub struct MobileFaceNet<B: Backend> {
    stem: ConvBlock<B>,
    conv_dw: Option<ConvBlock<B>>,
    stage0: Option<Residual<B>>,
    down1: DepthWise<B>,
    stage1: Residual<B>,
    down2: DepthWise<B>,
    stage2: Residual<B>,
    down3: DepthWise<B>,
    stage3: Residual<B>,
    conv_sep: ConvBlock<B>,
    gdc: ConvBlock<B>,
    linear: Linear<B>,
    features: BatchNorm<B>,
    num_features: usize,
}

impl<B: Backend> MobileFaceNet<B> {
    /// The 512-channel 7×7 map before the GDC head, `[N, 3, 112, 112]` → `[N, 512, 7, 7]`.
    pub fn feature_map(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let mut x = self.stem.forward(x);
        if let Some(c) = &self.conv_dw {
            x = c.forward(x);
        }
        if let Some(r) = &self.stage0 {
            x = r.forward(x);
        }
        let x = self.stage1.forward(self.down1.forward(x));
        let x = self.stage2.forward(self.down2.forward(x));
        let x = self.stage3.forward(self.down3.forward(x));
        self.conv_sep.forward(x)
    }

    /// The embedding (not L2-normalised), `[N, 3, 112, 112]` → `[N, num_features]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let x: Tensor<B, 2> = self.gdc.forward(self.feature_map(x)).flatten(1, 3);
        crate::ops::batch_norm(&self.features, crate::ops::linear(&self.linear, x))
    }
}

impl<B: Backend> Backbone<B> for MobileFaceNet<B> {
    fn feature_dim(&self) -> usize {
        self.num_features
    }

    fn input_size(&self) -> usize {
        112
    }

    fn features(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        self.forward(x)
    }
}

use crate::onnx_writer::{Attr, OnnxWriter};

impl<B: Backend> ConvBlock<B> {
    /// Convolution + folded BatchNorm (+ the residual) (+ PReLU), as ONNX nodes.
    fn write_onnx(&self, w: &mut OnnxWriter, x: &str, residual: Option<&str>) -> Result<String> {
        let mut y = w.conv(&self.conv, Some(&self.bn), x)?;
        if let Some(r) = residual {
            y = w.node("Add", &[&y, r], vec![]);
        }
        match &self.prelu {
            Some(p) => w.prelu(p, &y),
            None => Ok(y),
        }
    }
}

impl<B: Backend> DepthWise<B> {
    fn write_onnx(&self, w: &mut OnnxWriter, x: &str) -> Result<String> {
        let Some((last, first)) = self.layers.split_last() else {
            return Ok(x.to_owned());
        };
        let mut y = x.to_owned();
        for l in first {
            y = l.write_onnx(w, &y, None)?;
        }
        last.write_onnx(w, &y, self.residual.then_some(x))
    }
}

impl<B: Backend> Residual<B> {
    fn write_onnx(&self, w: &mut OnnxWriter, x: &str) -> Result<String> {
        let mut y = x.to_owned();
        for l in &self.layers {
            y = l.write_onnx(w, &y)?;
        }
        Ok(y)
    }
}

impl<B: Backend> MobileFaceNet<B> {
    /// The network as ONNX nodes from `x` to the `[N, num_features]` features.
    pub(crate) fn write_onnx(&self, w: &mut OnnxWriter, x: &str) -> Result<String> {
        let mut x = self.stem.write_onnx(w, x, None)?;
        if let Some(c) = &self.conv_dw {
            x = c.write_onnx(w, &x, None)?;
        }
        if let Some(r) = &self.stage0 {
            x = r.write_onnx(w, &x)?;
        }
        for (down, stage) in [
            (&self.down1, &self.stage1),
            (&self.down2, &self.stage2),
            (&self.down3, &self.stage3),
        ] {
            let d = down.write_onnx(w, &x)?;
            x = stage.write_onnx(w, &d)?;
        }
        let x = self.conv_sep.write_onnx(w, &x, None)?;
        let x = self.gdc.write_onnx(w, &x, None)?;
        let x = w.node("Flatten", &[&x], vec![("axis", Attr::Int(1))]);
        w.linear(&self.linear, Some(&self.features), &x)
    }
}

impl<B: Backend> FoldBatchNorm for ConvBlock<B> {
    fn fold_batch_norm(self) -> Self {
        let (conv, bn) = fold_conv(self.conv, self.bn);
        Self { conv, bn, ..self }
    }
}

impl<B: Backend> FoldBatchNorm for DepthWise<B> {
    fn fold_batch_norm(self) -> Self {
        Self {
            layers: self.layers.fold_batch_norm(),
            ..self
        }
    }
}

impl<B: Backend> FoldBatchNorm for Residual<B> {
    fn fold_batch_norm(self) -> Self {
        Self {
            layers: self.layers.fold_batch_norm(),
        }
    }
}

impl<B: Backend> FoldBatchNorm for MobileFaceNet<B> {
    fn fold_batch_norm(self) -> Self {
        let (linear, features) = fold_linear(self.linear, self.features);
        Self {
            stem: self.stem.fold_batch_norm(),
            conv_dw: self.conv_dw.fold_batch_norm(),
            stage0: self.stage0.fold_batch_norm(),
            down1: self.down1.fold_batch_norm(),
            stage1: self.stage1.fold_batch_norm(),
            down2: self.down2.fold_batch_norm(),
            stage2: self.stage2.fold_batch_norm(),
            down3: self.down3.fold_batch_norm(),
            stage3: self.stage3.fold_batch_norm(),
            conv_sep: self.conv_sep.fold_batch_norm(),
            gdc: self.gdc.fold_batch_norm(),
            linear,
            features,
            ..self
        }
    }
}

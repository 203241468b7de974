//! iResNet-18/34/50/100 as insightface's arcface_torch defines them (Duta et al., "Improved
//! Residual Networks", 2020; Deng et al., ArcFace, CVPR 2019): pre-activation `IBasicBlock`
//! (BN → conv3×3 → BN → PReLU → conv3×3(stride) → BN, plus a 1×1 conv + BN shortcut where the
//! shape changes), a 3×3 stem, four stages with stride 2, then BN → flatten → dropout →
//! linear → BatchNorm1d: a 512-d embedding for a 112×112 face.
//!
//! Field names follow arcface_torch's `backbone.pth` keys; `TORCH_KEYS` holds the few
//! renames Burn needs.

use std::path::Path;

use burn::config::Config;
use burn::module::Module;

use crate::fold::{fold_conv, fold_linear, FoldBatchNorm};
use crate::ops::{batch_norm, conv2d_fused, Activation};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PRelu, PReluConfig,
    PaddingConfig2d,
};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::Backbone;
use crate::error::{NetsError, Result};
use crate::weights::{load_pytorch, LoadReport};

/// Checkpoint-key remaps from arcface_torch to this module (regex → replacement).
/// Applied in order to each key.
pub(crate) const TORCH_KEYS: &[(&str, &str)] = &[
    (r"prelu\.weight$", "prelu.alpha"),
    (r"\.downsample\.0\.", ".downsample.conv."),
    (r"\.downsample\.1\.", ".downsample.bn."),
];

/// The inverse of [`TORCH_KEYS`]: module paths (after Burn → PyTorch parameter names) to
/// arcface_torch's keys, for `face_nets::export`.
pub(crate) const TORCH_EXPORT_KEYS: &[(&str, &str)] = &[
    (r"prelu\.alpha$", "prelu.weight"),
    (r"\.downsample\.conv\.", ".downsample.0."),
    (r"\.downsample\.bn\.", ".downsample.1."),
];

/// iResNet configuration.
#[derive(Config, Debug, PartialEq)]
pub struct IResNetConfig {
    /// Blocks per stage (r18: 2,2,2,2; r34: 3,4,6,3; r50: 3,4,14,3; r100: 3,13,30,3).
    pub layers: [usize; 4],
    /// Channels of the stem and first stage; stages use ×1, ×2, ×4, ×8 (64 in the published models).
    #[config(default = 64)]
    pub base_width: usize,
    /// Embedding size.
    #[config(default = 512)]
    pub num_features: usize,
    /// Dropout before the linear layer (0 for the published models).
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Input side in pixels (112 gives the 7×7 final map the linear layer expects).
    #[config(default = 112)]
    pub input_size: usize,
}

impl IResNetConfig {
    /// iResNet-18.
    pub fn r18() -> Self {
        Self::new([2, 2, 2, 2])
    }

    /// iResNet-34.
    pub fn r34() -> Self {
        Self::new([3, 4, 6, 3])
    }

    /// iResNet-50.
    pub fn r50() -> Self {
        Self::new([3, 4, 14, 3])
    }

    /// iResNet-100.
    pub fn r100() -> Self {
        Self::new([3, 13, 30, 3])
    }

    /// Side of the last feature map (four stride-2 stages, each `⌈s/2⌉`).
    pub fn final_size(&self) -> usize {
        (0..4).fold(self.input_size, |s, _| s.div_ceil(2))
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// A stage without blocks, zero widths, an input smaller than 16 px or a dropout outside [0, 1).
    pub fn validate(&self) -> Result<()> {
        let bad = |name, message: String| Err(NetsError::Config { name, message });
        if self.layers.contains(&0) {
            return bad("layers", format!("{:?}: every stage needs a block", self.layers));
        }
        if self.base_width == 0 || self.num_features == 0 {
            return bad(
                "base_width",
                format!(
                    "base_width {} and num_features {} must be positive",
                    self.base_width, self.num_features
                ),
            );
        }
        if self.input_size < 16 {
            return bad(
                "input_size",
                format!("{} px is too small for four stride-2 stages", self.input_size),
            );
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad("dropout", format!("{} is not in [0, 1)", self.dropout));
        }
        Ok(())
    }

    /// Builds the network with random weights.
    ///
    /// # Panics
    /// When [`IResNetConfig::validate`] fails.
    pub fn init<B: Backend>(&self, device: &B::Device) -> IResNet<B> {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let w = self.base_width;
        let bn = |c: usize| BatchNormConfig::new(c).with_epsilon(1e-5).init(device);
        let mut inplanes = w;
        let mut stage = |planes: usize, blocks: usize| -> Vec<IBasicBlock<B>> {
            let blocks = (0..blocks)
                .map(|i| {
                    let stride = if i == 0 { 2 } else { 1 };
                    let input = if i == 0 { inplanes } else { planes };
                    IBasicBlock::new(input, planes, stride, device)
                })
                .collect();
            inplanes = planes;
            blocks
        };
        let layer1 = stage(w, self.layers[0]);
        let layer2 = stage(2 * w, self.layers[1]);
        let layer3 = stage(4 * w, self.layers[2]);
        let layer4 = stage(8 * w, self.layers[3]);
        let f = self.final_size();
        IResNet {
            conv1: conv3x3(3, w, 1, device),
            bn1: bn(w),
            prelu: PReluConfig::new().with_num_parameters(w).init(device),
            layer1,
            layer2,
            layer3,
            layer4,
            bn2: bn(8 * w),
            dropout: DropoutConfig::new(self.dropout).init(),
            fc: LinearConfig::new(8 * w * f * f, self.num_features).init(device),
            features: bn(self.num_features),
            num_features: self.num_features,
            input_size: self.input_size,
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
    ) -> Result<(IResNet<B>, LoadReport)> {
        self.validate()?;
        let mut model = self.init(device);
        let report = load_pytorch(&mut model, path, TORCH_KEYS, &[], None)?;
        Ok((model, report))
    }
}

fn conv3x3<B: Backend>(cin: usize, cout: usize, stride: usize, device: &B::Device) -> Conv2d<B> {
    Conv2dConfig::new([cin, cout], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(false)
        .init(device)
}

/// The 1×1 convolution + BN shortcut of a block that changes shape.
#[derive(Module, Debug)]
pub struct Downsample<B: Backend> {
    conv: Conv2d<B>,
    bn: BatchNorm<B>,
}

/// arcface_torch's pre-activation basic block.
#[derive(Module, Debug)]
pub struct IBasicBlock<B: Backend> {
    bn1: BatchNorm<B>,
    conv1: Conv2d<B>,
    bn2: BatchNorm<B>,
    prelu: PRelu<B>,
    conv2: Conv2d<B>,
    bn3: BatchNorm<B>,
    downsample: Option<Downsample<B>>,
}

impl<B: Backend> IBasicBlock<B> {
    fn new(inplanes: usize, planes: usize, stride: usize, device: &B::Device) -> Self {
        let bn = |c: usize| BatchNormConfig::new(c).with_epsilon(1e-5).init(device);
        let downsample = (stride != 1 || inplanes != planes).then(|| Downsample {
            conv: Conv2dConfig::new([inplanes, planes], [1, 1])
                .with_stride([stride, stride])
                .with_bias(false)
                .init(device),
            bn: bn(planes),
        });
        Self {
            bn1: bn(inplanes),
            conv1: conv3x3(inplanes, planes, 1, device),
            bn2: bn(planes),
            prelu: PReluConfig::new().with_num_parameters(planes).init(device),
            conv2: conv3x3(planes, planes, stride, device),
            bn3: bn(planes),
            downsample,
        }
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let out = batch_norm(&self.bn1, x.clone());
        let out = conv2d_fused(
            &self.conv1,
            Some(&self.bn2),
            out,
            None,
            Activation::PRelu(&self.prelu),
        );
        let identity = match &self.downsample {
            Some(d) => conv2d_fused(&d.conv, Some(&d.bn), x, None, Activation::Identity),
            None => x,
        };
        conv2d_fused(
            &self.conv2,
            Some(&self.bn3),
            out,
            Some(identity),
            Activation::Identity,
        )
    }
}

/// iResNet backbone producing face embeddings.
#[derive(Module, Debug)]
pub struct IResNet<B: Backend> {
    conv1: Conv2d<B>,
    bn1: BatchNorm<B>,
    prelu: PRelu<B>,
    layer1: Vec<IBasicBlock<B>>,
    layer2: Vec<IBasicBlock<B>>,
    layer3: Vec<IBasicBlock<B>>,
    layer4: Vec<IBasicBlock<B>>,
    bn2: BatchNorm<B>,
    dropout: Dropout,
    fc: Linear<B>,
    features: BatchNorm<B>,
    num_features: usize,
    input_size: usize,
}

impl<B: Backend> IResNet<B> {
    /// The residual blocks of the four stages, in order.
    fn blocks(&self) -> impl Iterator<Item = &IBasicBlock<B>> {
        self.layer1
            .iter()
            .chain(&self.layer2)
            .chain(&self.layer3)
            .chain(&self.layer4)
    }

    /// The last feature map, before the embedding layers.
    ///
    /// # Shapes
    /// `[N, 3, S, S]` → `[N, 8·base_width, ⌈S/16⌉, ⌈S/16⌉]`.
    pub fn feature_map(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let mut x = conv2d_fused(
            &self.conv1,
            Some(&self.bn1),
            x,
            None,
            Activation::PRelu(&self.prelu),
        );
        for block in self.blocks() {
            x = block.forward(x);
        }
        batch_norm(&self.bn2, x)
    }

    /// The embedding (not L2-normalised, as arcface_torch returns it).
    ///
    /// # Shapes
    /// `[N, 3, S, S]` → `[N, num_features]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let x: Tensor<B, 2> = self.feature_map(x).flatten(1, 3);
        let x = crate::ops::linear(&self.fc, self.dropout.forward(x));
        batch_norm(&self.features, x)
    }
}

impl<B: Backend> Backbone<B> for IResNet<B> {
    fn feature_dim(&self) -> usize {
        self.num_features
    }

    fn input_size(&self) -> usize {
        self.input_size
    }

    fn features(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        self.forward(x)
    }
}

impl<B: Backend> IBasicBlock<B> {
    /// This block as ONNX nodes (as [`IBasicBlock::forward`], BatchNorms after convolutions folded).
    fn write_onnx(&self, w: &mut crate::onnx_writer::OnnxWriter, x: &str) -> Result<String> {
        let out = w.batch_norm(&self.bn1, x)?;
        let out = w.conv(&self.conv1, Some(&self.bn2), &out)?;
        let out = w.prelu(&self.prelu, &out)?;
        let out = w.conv(&self.conv2, Some(&self.bn3), &out)?;
        let identity = match &self.downsample {
            Some(d) => w.conv(&d.conv, Some(&d.bn), x)?,
            None => x.to_owned(),
        };
        Ok(w.node("Add", &[&out, &identity], vec![]))
    }
}

impl<B: Backend> IResNet<B> {
    /// The network as ONNX nodes from `x` to the `[N, num_features]` features.
    pub(crate) fn write_onnx(&self, w: &mut crate::onnx_writer::OnnxWriter, x: &str) -> Result<String> {
        let x = w.conv(&self.conv1, Some(&self.bn1), x)?;
        let mut x = w.prelu(&self.prelu, &x)?;
        for block in self.blocks() {
            x = block.write_onnx(w, &x)?;
        }
        let x = w.batch_norm(&self.bn2, &x)?;
        let x = w.node("Flatten", &[&x], vec![("axis", crate::onnx_writer::Attr::Int(1))]);
        w.linear(&self.fc, Some(&self.features), &x)
    }
}

impl<B: Backend> FoldBatchNorm for Downsample<B> {
    fn fold_batch_norm(self) -> Self {
        let (conv, bn) = fold_conv(self.conv, self.bn);
        Self { conv, bn }
    }
}

impl<B: Backend> FoldBatchNorm for IBasicBlock<B> {
    /// `bn2` into `conv1`, `bn3` into `conv2`, the shortcut's; `bn1` (before a padded
    /// convolution) stays.
    fn fold_batch_norm(self) -> Self {
        let (conv1, bn2) = fold_conv(self.conv1, self.bn2);
        let (conv2, bn3) = fold_conv(self.conv2, self.bn3);
        Self {
            conv1,
            bn2,
            conv2,
            bn3,
            downsample: self.downsample.fold_batch_norm(),
            ..self
        }
    }
}

impl<B: Backend> FoldBatchNorm for IResNet<B> {
    /// The stem's BatchNorm, every block's, and `features` into `fc`; `bn2`, which ends
    /// [`IResNet::feature_map`], stays.
    fn fold_batch_norm(self) -> Self {
        let (conv1, bn1) = fold_conv(self.conv1, self.bn1);
        let (fc, features) = fold_linear(self.fc, self.features);
        Self {
            conv1,
            bn1,
            layer1: self.layer1.fold_batch_norm(),
            layer2: self.layer2.fold_batch_norm(),
            layer3: self.layer3.fold_batch_norm(),
            layer4: self.layer4.fold_batch_norm(),
            fc,
            features,
            ..self
        }
    }
}

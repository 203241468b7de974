//! ResNet-50 in torchvision's layout (He et al., CVPR 2016; torchvision's "v1.5": the stride sits
//! on the 3×3 convolution of each bottleneck): 7×7 stem, 3×3 max-pool, four bottleneck stages,
//! global average pooling and a replaceable linear head. Field names are torchvision's
//! `state_dict` keys; `TORCH_KEYS` names the `downsample` Sequential's two entries.

use std::path::Path;

use burn::config::Config;
use burn::module::Module;

use crate::fold::{fold_conv, FoldBatchNorm};
use crate::ops::{conv2d_fused, Activation};
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::ops::PadMode;
use burn::tensor::Tensor;

use super::Backbone;
use crate::blocks::{bn, conv, global_avg_pool};
use crate::error::{NetsError, Result};
use crate::weights::{load_pytorch, LoadReport};

/// Checkpoint-key remaps from torchvision to this module (regex → replacement).
pub(crate) const TORCH_KEYS: &[(&str, &str)] = &[
    (r"\.downsample\.0\.", ".downsample.conv."),
    (r"\.downsample\.1\.", ".downsample.bn."),
];

/// The inverse of [`TORCH_KEYS`], for `face_nets::export`.
pub(crate) const TORCH_EXPORT_KEYS: &[(&str, &str)] = &[
    (r"\.downsample\.conv\.", ".downsample.0."),
    (r"\.downsample\.bn\.", ".downsample.1."),
];

/// Checkpoint tensors a headless model may leave unused (the classifier of the checkpoint).
pub(crate) const HEADLESS_UNUSED: &[&str] = &[r"^fc\."];

/// ResNet configuration (bottleneck blocks, expansion 4).
#[derive(Config, Debug, PartialEq)]
pub struct ResNetConfig {
    /// Blocks per stage (ResNet-50: 3, 4, 6, 3; ResNet-101: 3, 4, 23, 3).
    #[config(default = "[3, 4, 6, 3]")]
    pub layers: [usize; 4],
    /// Stem width; stage `i` has `base_width·2^i` inner and `4·base_width·2^i` output channels.
    #[config(default = 64)]
    pub base_width: usize,
    /// Classes of the linear head; `None` builds the network without one.
    #[config(default = "Some(1000)")]
    pub num_classes: Option<usize>,
}

impl ResNetConfig {
    /// torchvision's ResNet-50 with its 1000-class head.
    pub fn resnet50() -> Self {
        Self::new()
    }

    /// Width of the pooled features (`32·base_width`, 2048 for ResNet-50).
    pub fn feature_dim(&self) -> usize {
        32 * self.base_width
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// A stage without blocks, a zero width or a zero-class head.
    pub fn validate(&self) -> Result<()> {
        if self.layers.contains(&0) || self.base_width == 0 || self.num_classes == Some(0) {
            return Err(NetsError::Config {
                name: "layers",
                message: format!(
                    "layers {:?}, base_width {}, num_classes {:?}: all must be positive",
                    self.layers, self.base_width, self.num_classes
                ),
            });
        }
        Ok(())
    }

    /// Builds the network with random weights.
    ///
    /// # Panics
    /// When [`ResNetConfig::validate`] fails.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ResNet<B> {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let w = self.base_width;
        let mut inplanes = w;
        let mut stage = |planes: usize, blocks: usize, stride: usize| -> Vec<Bottleneck<B>> {
            (0..blocks)
                .map(|i| {
                    let s = if i == 0 { stride } else { 1 };
                    let block = Bottleneck::new(inplanes, planes, s, device);
                    inplanes = 4 * planes;
                    block
                })
                .collect()
        };
        let layer1 = stage(w, self.layers[0], 1);
        let layer2 = stage(2 * w, self.layers[1], 2);
        let layer3 = stage(4 * w, self.layers[2], 2);
        let layer4 = stage(8 * w, self.layers[3], 2);
        ResNet {
            conv1: conv(3, w, [7, 7], 2, [3, 3], 1, false, device),
            bn1: bn(w, 1e-5, device),
            // Padded with −∞ in `feature_map` (Candle's pooling takes no padding).
            maxpool: MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).init(),
            layer1,
            layer2,
            layer3,
            layer4,
            fc: self
                .num_classes
                .map(|n| LinearConfig::new(self.feature_dim(), n).init(device)),
            feature_dim: self.feature_dim(),
        }
    }

    /// Builds the network and loads a torchvision state dict. A headless configuration
    /// (`num_classes: None`) ignores the checkpoint's `fc.*`.
    ///
    /// # Errors
    /// As [`crate::weights::load_pytorch`], plus an invalid configuration.
    pub fn load_torch<B: Backend>(&self, path: &Path, device: &B::Device) -> Result<(ResNet<B>, LoadReport)> {
        self.validate()?;
        let mut model = self.init(device);
        let allow: &[&str] = if self.num_classes.is_none() {
            HEADLESS_UNUSED
        } else {
            &[]
        };
        let report = load_pytorch(&mut model, path, TORCH_KEYS, allow, None)?;
        Ok((model, report))
    }
}

/// The bottleneck block: 1×1 → 3×3 (stride) → 1×1 (×4), ReLU, projection shortcut when needed.
#[derive(Module, Debug)]
pub struct Bottleneck<B: Backend> {
    conv1: Conv2d<B>,
    bn1: BatchNorm<B>,
    conv2: Conv2d<B>,
    bn2: BatchNorm<B>,
    conv3: Conv2d<B>,
    bn3: BatchNorm<B>,
    downsample: Option<ProjectionShortcut<B>>,
}

/// torchvision's `downsample` Sequential: a strided 1×1 convolution (`0`) and BatchNorm (`1`).
#[derive(Module, Debug)]
pub struct ProjectionShortcut<B: Backend> {
    conv: Conv2d<B>,
    bn: BatchNorm<B>,
}

impl<B: Backend> Bottleneck<B> {
    fn new(inplanes: usize, planes: usize, stride: usize, device: &B::Device) -> Self {
        let out = 4 * planes;
        Self {
            conv1: conv(inplanes, planes, [1, 1], 1, [0, 0], 1, false, device),
            bn1: bn(planes, 1e-5, device),
            conv2: conv(planes, planes, [3, 3], stride, [1, 1], 1, false, device),
            bn2: bn(planes, 1e-5, device),
            conv3: conv(planes, out, [1, 1], 1, [0, 0], 1, false, device),
            bn3: bn(out, 1e-5, device),
            downsample: (stride != 1 || inplanes != out).then(|| ProjectionShortcut {
                conv: conv(inplanes, out, [1, 1], stride, [0, 0], 1, false, device),
                bn: bn(out, 1e-5, device),
            }),
        }
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let out = conv2d_fused(&self.conv1, Some(&self.bn1), x.clone(), None, Activation::Relu);
        let out = conv2d_fused(&self.conv2, Some(&self.bn2), out, None, Activation::Relu);
        let identity = match &self.downsample {
            Some(d) => conv2d_fused(&d.conv, Some(&d.bn), x, None, Activation::Identity),
            None => x,
        };
        conv2d_fused(
            &self.conv3,
            Some(&self.bn3),
            out,
            Some(identity),
            Activation::Relu,
        )
    }
}

impl<B: Backend> Bottleneck<B> {
    /// This block as ONNX nodes (BatchNorms folded into their convolutions).
    fn write_onnx(&self, w: &mut crate::onnx_writer::OnnxWriter, x: &str) -> Result<String> {
        let out = w.conv(&self.conv1, Some(&self.bn1), x)?;
        let out = w.node("Relu", &[&out], vec![]);
        let out = w.conv(&self.conv2, Some(&self.bn2), &out)?;
        let out = w.node("Relu", &[&out], vec![]);
        let out = w.conv(&self.conv3, Some(&self.bn3), &out)?;
        let identity = match &self.downsample {
            Some(d) => w.conv(&d.conv, Some(&d.bn), x)?,
            None => x.to_owned(),
        };
        let sum = w.node("Add", &[&out, &identity], vec![]);
        Ok(w.node("Relu", &[&sum], vec![]))
    }
}

impl<B: Backend> ResNet<B> {
    /// The residual blocks of the four stages, in order.
    fn blocks(&self) -> impl Iterator<Item = &Bottleneck<B>> {
        self.layer1
            .iter()
            .chain(&self.layer2)
            .chain(&self.layer3)
            .chain(&self.layer4)
    }

    /// The network as ONNX nodes from `x` to the pooled `[N, feature_dim]` features (a
    /// classifier `fc`, if any, is not part of a face model's features).
    pub(crate) fn write_onnx(&self, w: &mut crate::onnx_writer::OnnxWriter, x: &str) -> Result<String> {
        use crate::onnx_writer::Attr;
        let x = w.conv(&self.conv1, Some(&self.bn1), x)?;
        let x = w.node("Relu", &[&x], vec![]);
        let mut x = w.node(
            "MaxPool",
            &[&x],
            vec![
                ("kernel_shape", Attr::Ints(vec![3, 3])),
                ("strides", Attr::Ints(vec![2, 2])),
                ("pads", Attr::Ints(vec![1, 1, 1, 1])),
            ],
        );
        for block in self.blocks() {
            x = block.write_onnx(w, &x)?;
        }
        let x = w.node("GlobalAveragePool", &[&x], vec![]);
        Ok(w.node("Flatten", &[&x], vec![("axis", Attr::Int(1))]))
    }
}

/// ResNet with an optional, replaceable linear head.
#[derive(Module, Debug)]
pub struct ResNet<B: Backend> {
    conv1: Conv2d<B>,
    bn1: BatchNorm<B>,
    maxpool: MaxPool2d,
    layer1: Vec<Bottleneck<B>>,
    layer2: Vec<Bottleneck<B>>,
    layer3: Vec<Bottleneck<B>>,
    layer4: Vec<Bottleneck<B>>,
    fc: Option<Linear<B>>,
    feature_dim: usize,
}

impl<B: Backend> ResNet<B> {
    /// The last feature map, `[N, 3, H, W]` → `[N, 32·base_width, ⌈H/32⌉, ⌈W/32⌉]`.
    pub fn feature_map(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = conv2d_fused(&self.conv1, Some(&self.bn1), x, None, Activation::Relu);
        let x = x.pad((1, 1, 1, 1), PadMode::Constant(f32::NEG_INFINITY));
        let mut x = self.maxpool.forward(x);
        for block in self.blocks() {
            x = block.forward(x);
        }
        x
    }

    /// Head output (`[N, num_classes]`), or the pooled features when there is no head.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let f = self.features(x);
        match &self.fc {
            Some(fc) => crate::ops::linear(fc, f),
            None => f,
        }
    }

    /// Replaces the head with a freshly initialised `feature_dim → num_classes` linear layer.
    pub fn with_new_head(self, num_classes: usize, device: &B::Device) -> Self {
        let fc = LinearConfig::new(self.feature_dim, num_classes).init(device);
        self.with_head(Some(fc))
    }

    /// Replaces the head (`None` removes it).
    ///
    /// # Panics
    /// When the head's input width is not the feature width.
    pub fn with_head(mut self, head: Option<Linear<B>>) -> Self {
        if let Some(fc) = &head {
            let [d_in, _] = fc.weight.dims();
            assert_eq!(d_in, self.feature_dim, "head input width");
        }
        self.fc = head;
        self
    }

    /// The current head.
    pub fn head(&self) -> Option<&Linear<B>> {
        self.fc.as_ref()
    }
}

impl<B: Backend> Backbone<B> for ResNet<B> {
    fn feature_dim(&self) -> usize {
        self.feature_dim
    }

    fn input_size(&self) -> usize {
        224
    }

    fn features(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        global_avg_pool(self.feature_map(x))
    }
}

impl<B: Backend> FoldBatchNorm for ProjectionShortcut<B> {
    fn fold_batch_norm(self) -> Self {
        let (conv, bn) = fold_conv(self.conv, self.bn);
        Self { conv, bn }
    }
}

impl<B: Backend> FoldBatchNorm for Bottleneck<B> {
    fn fold_batch_norm(self) -> Self {
        let (conv1, bn1) = fold_conv(self.conv1, self.bn1);
        let (conv2, bn2) = fold_conv(self.conv2, self.bn2);
        let (conv3, bn3) = fold_conv(self.conv3, self.bn3);
        Self {
            conv1,
            bn1,
            conv2,
            bn2,
            conv3,
            bn3,
            downsample: self.downsample.fold_batch_norm(),
        }
    }
}

impl<B: Backend> FoldBatchNorm for ResNet<B> {
    fn fold_batch_norm(self) -> Self {
        let (conv1, bn1) = fold_conv(self.conv1, self.bn1);
        Self {
            conv1,
            bn1,
            layer1: self.layer1.fold_batch_norm(),
            layer2: self.layer2.fold_batch_norm(),
            layer3: self.layer3.fold_batch_norm(),
            layer4: self.layer4.fold_batch_norm(),
            ..self
        }
    }
}

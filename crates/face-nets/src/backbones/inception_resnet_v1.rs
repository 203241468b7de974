//! Inception-ResNet-V1 as facenet-pytorch defines it (Szegedy et al., AAAI 2017; the FaceNet
//! variant of Sandberg's TensorFlow port): a 160×160 face → 512-d L2-normalised embedding.
//! Stem, 5 × Block35 (scale 0.17), Mixed-6a, 10 × Block17 (0.10), Mixed-7a, 5 × Block8 (0.20),
//! a final Block8 without ReLU, global average pooling, a bias-free linear layer and
//! BatchNorm1d (ε = 0.001, as every BatchNorm here, the value of the TensorFlow original).
//!
//! Field names are facenet-pytorch's keys (`conv2d_1a.conv.weight`, `repeat_1.0.branch1.1.bn.*`);
//! the pretrained `vggface2` / `casia-webface` state dicts also hold the classifier `logits.*`,
//! which a model built without `num_classes` ignores.
//!
//! `width_divisor` divides every channel count (1 is the published network; larger values make
//! small test networks with the same topology).

use std::path::Path;

use burn::config::Config;
use burn::module::Module;

use crate::fold::{fold_conv, fold_linear, FoldBatchNorm};
use crate::ops::{conv2d, conv2d_fused, Activation};
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::ops::PadMode;
use burn::tensor::Tensor;

use super::Backbone;
use crate::blocks::{bn, conv, global_avg_pool, l2_normalize};
use crate::error::{NetsError, Result};
use crate::onnx_writer::{Attr, OnnxWriter};
use crate::weights::{load_pytorch, LoadReport};

/// Checkpoint tensors a model without classifier leaves unused.
const CLASSIFIER: &[&str] = &[r"^logits\."];

/// Inception-ResNet-V1 configuration.
#[derive(Config, Debug, PartialEq)]
pub struct InceptionResnetV1Config {
    /// Divides every channel count (1: the published network). Must divide 32.
    #[config(default = 1)]
    pub width_divisor: usize,
    /// Classes of the `logits` layer (vggface2: 8631, casia-webface: 10575); `None`: no classifier.
    #[config(default = "None")]
    pub num_classes: Option<usize>,
    /// Dropout before the linear layer (facenet-pytorch: 0.6; inactive at inference).
    #[config(default = 0.6)]
    pub dropout: f64,
}

impl InceptionResnetV1Config {
    /// Checks the configuration.
    ///
    /// # Errors
    /// A divisor that is zero or does not divide 32, a zero-class classifier, a dropout outside [0, 1).
    pub fn validate(&self) -> Result<()> {
        let d = self.width_divisor;
        if d == 0 || !32usize.is_multiple_of(d) {
            return Err(NetsError::Config {
                name: "width_divisor",
                message: format!("{d} must divide 32 (every channel count is a multiple of 32)"),
            });
        }
        if self.num_classes == Some(0) {
            return Err(NetsError::Config {
                name: "num_classes",
                message: "a classifier needs at least one class".into(),
            });
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(NetsError::Config {
                name: "dropout",
                message: format!("{} is not in [0, 1)", self.dropout),
            });
        }
        Ok(())
    }

    /// Embedding size (`512 / width_divisor`).
    pub fn embedding_dim(&self) -> usize {
        512 / self.width_divisor
    }

    /// Builds the network with random weights.
    ///
    /// # Panics
    /// When [`InceptionResnetV1Config::validate`] fails.
    pub fn init<B: Backend>(&self, device: &B::Device) -> InceptionResnetV1<B> {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let d = self.width_divisor;
        let c = |n: usize| n / d;
        let basic =
            |cin, cout, k: [usize; 2], s, p: [usize; 2]| BasicConv2d::new(c(cin), c(cout), k, s, p, device);
        let pool = || MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).init();
        InceptionResnetV1 {
            conv2d_1a: BasicConv2d::new(3, c(32), [3, 3], 2, [0, 0], device),
            conv2d_2a: basic(32, 32, [3, 3], 1, [0, 0]),
            conv2d_2b: basic(32, 64, [3, 3], 1, [1, 1]),
            maxpool_3a: pool(),
            conv2d_3b: basic(64, 80, [1, 1], 1, [0, 0]),
            conv2d_4a: basic(80, 192, [3, 3], 1, [0, 0]),
            conv2d_4b: basic(192, 256, [3, 3], 2, [0, 0]),
            repeat_1: (0..5).map(|_| Block::block35(d, 0.17, device)).collect(),
            mixed_6a: Mixed6a {
                branch0: basic(256, 384, [3, 3], 2, [0, 0]),
                branch1: vec![
                    basic(256, 192, [1, 1], 1, [0, 0]),
                    basic(192, 192, [3, 3], 1, [1, 1]),
                    basic(192, 256, [3, 3], 2, [0, 0]),
                ],
                branch2: pool(),
            },
            repeat_2: (0..10).map(|_| Block::block17(d, 0.10, device)).collect(),
            mixed_7a: Mixed7a {
                branch0: vec![
                    basic(896, 256, [1, 1], 1, [0, 0]),
                    basic(256, 384, [3, 3], 2, [0, 0]),
                ],
                branch1: vec![
                    basic(896, 256, [1, 1], 1, [0, 0]),
                    basic(256, 256, [3, 3], 2, [0, 0]),
                ],
                branch2: vec![
                    basic(896, 256, [1, 1], 1, [0, 0]),
                    basic(256, 256, [3, 3], 1, [1, 1]),
                    basic(256, 256, [3, 3], 2, [0, 0]),
                ],
                branch3: pool(),
            },
            repeat_3: (0..5).map(|_| Block::block8(d, 0.20, true, device)).collect(),
            block8: Block::block8(d, 1.0, false, device),
            dropout: DropoutConfig::new(self.dropout).init(),
            last_linear: LinearConfig::new(c(1792), c(512)).with_bias(false).init(device),
            last_bn: bn(c(512), 1e-3, device),
            logits: self
                .num_classes
                .map(|n| LinearConfig::new(c(512), n).init(device)),
            embedding_dim: c(512),
        }
    }

    /// Builds the network and loads a facenet-pytorch state dict.
    ///
    /// # Errors
    /// As [`crate::weights::load_pytorch`], plus an invalid configuration.
    pub fn load_torch<B: Backend>(
        &self,
        path: &Path,
        device: &B::Device,
    ) -> Result<(InceptionResnetV1<B>, LoadReport)> {
        self.validate()?;
        let mut model = self.init(device);
        let allow = if self.num_classes.is_none() {
            CLASSIFIER
        } else {
            &[]
        };
        let report = load_pytorch(&mut model, path, &[], allow, None)?;
        Ok((model, report))
    }
}

/// Convolution (no bias) → BatchNorm (ε = 0.001) → ReLU.
#[derive(Module, Debug)]
pub struct BasicConv2d<B: Backend> {
    conv: Conv2d<B>,
    bn: BatchNorm<B>,
    /// Zero padding `[h, w]` applied before the convolution when it differs per axis (the
    /// factorised 1×k / k×1 kernels): Candle's convolution takes one padding for both axes.
    explicit_pad: Option<[usize; 2]>,
}

impl<B: Backend> BasicConv2d<B> {
    fn new(
        cin: usize,
        cout: usize,
        kernel: [usize; 2],
        stride: usize,
        padding: [usize; 2],
        device: &B::Device,
    ) -> Self {
        let asymmetric = padding[0] != padding[1];
        let inner = if asymmetric { [0, 0] } else { padding };
        Self {
            conv: conv(cin, cout, kernel, stride, inner, 1, false, device),
            bn: bn(cout, 1e-3, device),
            explicit_pad: asymmetric.then_some(padding),
        }
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = match self.explicit_pad {
            Some([h, w]) => x.pad((w, w, h, h), PadMode::Constant(0.0)),
            None => x,
        };
        conv2d_fused(&self.conv, Some(&self.bn), x, None, Activation::Relu)
    }
}

fn chain<B: Backend>(layers: &[BasicConv2d<B>], x: Tensor<B, 4>) -> Tensor<B, 4> {
    layers.iter().fold(x, |x, l| l.forward(x))
}

/// A scaled residual Inception block (Block35, Block17 or Block8): parallel branches,
/// concatenation, a 1×1 convolution with bias back to the input width, `x + scale·out`, ReLU.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    branch0: BasicConv2d<B>,
    branch1: Vec<BasicConv2d<B>>,
    /// Block35's third branch (empty in Block17 and Block8).
    branch2: Vec<BasicConv2d<B>>,
    conv2d: Conv2d<B>,
    scale: f64,
    relu: bool,
}

impl<B: Backend> Block<B> {
    fn block35(d: usize, scale: f64, device: &B::Device) -> Self {
        let (c, b) = (256 / d, 32 / d);
        let basic = |i, o, k: usize, p: usize| BasicConv2d::new(i, o, [k, k], 1, [p, p], device);
        Self {
            branch0: basic(c, b, 1, 0),
            branch1: vec![basic(c, b, 1, 0), basic(b, b, 3, 1)],
            branch2: vec![basic(c, b, 1, 0), basic(b, b, 3, 1), basic(b, b, 3, 1)],
            conv2d: conv(3 * b, c, [1, 1], 1, [0, 0], 1, true, device),
            scale,
            relu: true,
        }
    }

    /// Block17 (1×7 / 7×1 factorised branch) or Block8 (1×3 / 3×1).
    fn factorised(c: usize, b: usize, k: usize, scale: f64, relu: bool, device: &B::Device) -> Self {
        let p = k / 2;
        Self {
            branch0: BasicConv2d::new(c, b, [1, 1], 1, [0, 0], device),
            branch1: vec![
                BasicConv2d::new(c, b, [1, 1], 1, [0, 0], device),
                BasicConv2d::new(b, b, [1, k], 1, [0, p], device),
                BasicConv2d::new(b, b, [k, 1], 1, [p, 0], device),
            ],
            branch2: Vec::new(),
            conv2d: conv(2 * b, c, [1, 1], 1, [0, 0], 1, true, device),
            scale,
            relu,
        }
    }

    fn block17(d: usize, scale: f64, device: &B::Device) -> Self {
        Self::factorised(896 / d, 128 / d, 7, scale, true, device)
    }

    fn block8(d: usize, scale: f64, relu: bool, device: &B::Device) -> Self {
        Self::factorised(1792 / d, 192 / d, 3, scale, relu, device)
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let mut branches = vec![self.branch0.forward(x.clone()), chain(&self.branch1, x.clone())];
        if !self.branch2.is_empty() {
            branches.push(chain(&self.branch2, x.clone()));
        }
        let out = conv2d(&self.conv2d, Tensor::cat(branches, 1)).mul_scalar(self.scale) + x;
        if self.relu {
            relu(out)
        } else {
            out
        }
    }
}

/// Reduction A: 35→17 (at full input size).
#[derive(Module, Debug)]
pub struct Mixed6a<B: Backend> {
    branch0: BasicConv2d<B>,
    branch1: Vec<BasicConv2d<B>>,
    branch2: MaxPool2d,
}

/// Reduction B: 17→8.
#[derive(Module, Debug)]
pub struct Mixed7a<B: Backend> {
    branch0: Vec<BasicConv2d<B>>,
    branch1: Vec<BasicConv2d<B>>,
    branch2: Vec<BasicConv2d<B>>,
    branch3: MaxPool2d,
}

/// Inception-ResNet-V1 (facenet-pytorch layout).
#[derive(Module, Debug)]
pub struct InceptionResnetV1<B: Backend> {
    conv2d_1a: BasicConv2d<B>,
    conv2d_2a: BasicConv2d<B>,
    conv2d_2b: BasicConv2d<B>,
    maxpool_3a: MaxPool2d,
    conv2d_3b: BasicConv2d<B>,
    conv2d_4a: BasicConv2d<B>,
    conv2d_4b: BasicConv2d<B>,
    repeat_1: Vec<Block<B>>,
    mixed_6a: Mixed6a<B>,
    repeat_2: Vec<Block<B>>,
    mixed_7a: Mixed7a<B>,
    repeat_3: Vec<Block<B>>,
    block8: Block<B>,
    dropout: Dropout,
    last_linear: Linear<B>,
    last_bn: BatchNorm<B>,
    logits: Option<Linear<B>>,
    embedding_dim: usize,
}

impl<B: Backend> InceptionResnetV1<B> {
    /// The last feature map, `[N, 3, 160, 160]` → `[N, 1792/d, 3, 3]`.
    pub fn feature_map(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = self
            .conv2d_2b
            .forward(self.conv2d_2a.forward(self.conv2d_1a.forward(x)));
        let x = self.maxpool_3a.forward(x);
        let x = self
            .conv2d_4b
            .forward(self.conv2d_4a.forward(self.conv2d_3b.forward(x)));
        let x = self.repeat_1.iter().fold(x, |x, b| b.forward(x));
        let m = &self.mixed_6a;
        let x = Tensor::cat(
            vec![
                m.branch0.forward(x.clone()),
                chain(&m.branch1, x.clone()),
                m.branch2.forward(x),
            ],
            1,
        );
        let x = self.repeat_2.iter().fold(x, |x, b| b.forward(x));
        let m = &self.mixed_7a;
        let x = Tensor::cat(
            vec![
                chain(&m.branch0, x.clone()),
                chain(&m.branch1, x.clone()),
                chain(&m.branch2, x.clone()),
                m.branch3.forward(x),
            ],
            1,
        );
        let x = self.repeat_3.iter().fold(x, |x, b| b.forward(x));
        self.block8.forward(x)
    }

    /// The L2-normalised embedding, as facenet-pytorch's `forward` with `classify=False`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        l2_normalize(self.features(x), 1e-12)
    }

    /// Classifier logits (`classify=True`), or `None` when built without `num_classes`.
    pub fn classify(&self, x: Tensor<B, 4>) -> Option<Tensor<B, 2>> {
        let logits = self.logits.as_ref()?;
        Some(crate::ops::linear(logits, self.features(x)))
    }
}

impl<B: Backend> BasicConv2d<B> {
    /// Convolution (BatchNorm folded, the explicit padding as the convolution's pads) → ReLU.
    fn write_onnx(&self, w: &mut OnnxWriter, x: &str) -> Result<String> {
        let pads = self.explicit_pad.map(|[h, v]| [h, v, h, v]);
        let y = w.conv_padded(&self.conv, Some(&self.bn), x, pads)?;
        Ok(w.node("Relu", &[&y], vec![]))
    }
}

fn write_chain<'a, B: Backend>(
    layers: impl IntoIterator<Item = &'a BasicConv2d<B>>,
    w: &mut OnnxWriter,
    x: &str,
) -> Result<String> {
    layers
        .into_iter()
        .try_fold(x.to_owned(), |x, l| l.write_onnx(w, &x))
}

impl<B: Backend> Block<B> {
    /// The block as ONNX nodes (as its `forward`).
    fn write_onnx(&self, w: &mut OnnxWriter, x: &str) -> Result<String> {
        let mut branches = vec![self.branch0.write_onnx(w, x)?, write_chain(&self.branch1, w, x)?];
        if !self.branch2.is_empty() {
            branches.push(write_chain(&self.branch2, w, x)?);
        }
        let refs: Vec<&str> = branches.iter().map(String::as_str).collect();
        let cat = w.node("Concat", &refs, vec![("axis", Attr::Int(1))]);
        let out = w.conv(&self.conv2d, None, &cat)?;
        let scale = w.scalar(self.scale as f32);
        let out = w.node("Mul", &[&out, &scale], vec![]);
        let out = w.node("Add", &[&out, x], vec![]);
        Ok(if self.relu {
            w.node("Relu", &[&out], vec![])
        } else {
            out
        })
    }
}

impl<B: Backend> InceptionResnetV1<B> {
    /// The network as ONNX nodes from `x` to the `[N, embedding_dim]` features (`last_bn`
    /// folded into `last_linear`; dropout is the identity at inference).
    pub(crate) fn write_onnx(&self, w: &mut OnnxWriter, x: &str) -> Result<String> {
        let x = write_chain([&self.conv2d_1a, &self.conv2d_2a, &self.conv2d_2b], w, x)?;
        let x = w.max_pool(&self.maxpool_3a, &x)?;
        let x = write_chain([&self.conv2d_3b, &self.conv2d_4a, &self.conv2d_4b], w, &x)?;
        let x = self.repeat_1.iter().try_fold(x, |x, b| b.write_onnx(w, &x))?;
        let m = &self.mixed_6a;
        let parts = [
            m.branch0.write_onnx(w, &x)?,
            write_chain(&m.branch1, w, &x)?,
            w.max_pool(&m.branch2, &x)?,
        ];
        let x = w.node(
            "Concat",
            &parts.each_ref().map(String::as_str),
            vec![("axis", Attr::Int(1))],
        );
        let x = self.repeat_2.iter().try_fold(x, |x, b| b.write_onnx(w, &x))?;
        let m = &self.mixed_7a;
        let parts = [
            write_chain(&m.branch0, w, &x)?,
            write_chain(&m.branch1, w, &x)?,
            write_chain(&m.branch2, w, &x)?,
            w.max_pool(&m.branch3, &x)?,
        ];
        let x = w.node(
            "Concat",
            &parts.each_ref().map(String::as_str),
            vec![("axis", Attr::Int(1))],
        );
        let x = self.repeat_3.iter().try_fold(x, |x, b| b.write_onnx(w, &x))?;
        let x = self.block8.write_onnx(w, &x)?;
        let x = w.node("GlobalAveragePool", &[&x], vec![]);
        let x = w.node("Flatten", &[&x], vec![("axis", Attr::Int(1))]);
        w.linear(&self.last_linear, Some(&self.last_bn), &x)
    }
}

impl<B: Backend> Backbone<B> for InceptionResnetV1<B> {
    fn feature_dim(&self) -> usize {
        self.embedding_dim
    }

    fn input_size(&self) -> usize {
        160
    }

    /// The embedding before L2 normalisation (`last_bn` output).
    fn features(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let x = global_avg_pool(self.feature_map(x));
        self.last_bn
            .forward(crate::ops::linear(&self.last_linear, self.dropout.forward(x)))
    }
}

impl<B: Backend> FoldBatchNorm for BasicConv2d<B> {
    fn fold_batch_norm(self) -> Self {
        let (conv, bn) = fold_conv(self.conv, self.bn);
        Self { conv, bn, ..self }
    }
}

impl<B: Backend> FoldBatchNorm for Block<B> {
    fn fold_batch_norm(self) -> Self {
        Self {
            branch0: self.branch0.fold_batch_norm(),
            branch1: self.branch1.fold_batch_norm(),
            branch2: self.branch2.fold_batch_norm(),
            ..self
        }
    }
}

impl<B: Backend> FoldBatchNorm for Mixed6a<B> {
    fn fold_batch_norm(self) -> Self {
        Self {
            branch0: self.branch0.fold_batch_norm(),
            branch1: self.branch1.fold_batch_norm(),
            ..self
        }
    }
}

impl<B: Backend> FoldBatchNorm for Mixed7a<B> {
    fn fold_batch_norm(self) -> Self {
        Self {
            branch0: self.branch0.fold_batch_norm(),
            branch1: self.branch1.fold_batch_norm(),
            branch2: self.branch2.fold_batch_norm(),
            ..self
        }
    }
}

impl<B: Backend> FoldBatchNorm for InceptionResnetV1<B> {
    /// Every `BasicConv2d`, and `last_bn` into `last_linear`.
    fn fold_batch_norm(self) -> Self {
        let (last_linear, last_bn) = fold_linear(self.last_linear, self.last_bn);
        Self {
            conv2d_1a: self.conv2d_1a.fold_batch_norm(),
            conv2d_2a: self.conv2d_2a.fold_batch_norm(),
            conv2d_2b: self.conv2d_2b.fold_batch_norm(),
            conv2d_3b: self.conv2d_3b.fold_batch_norm(),
            conv2d_4a: self.conv2d_4a.fold_batch_norm(),
            conv2d_4b: self.conv2d_4b.fold_batch_norm(),
            repeat_1: self.repeat_1.fold_batch_norm(),
            mixed_6a: self.mixed_6a.fold_batch_norm(),
            repeat_2: self.repeat_2.fold_batch_norm(),
            mixed_7a: self.mixed_7a.fold_batch_norm(),
            repeat_3: self.repeat_3.fold_batch_norm(),
            block8: self.block8.fold_batch_norm(),
            last_linear,
            last_bn,
            ..self
        }
    }
}

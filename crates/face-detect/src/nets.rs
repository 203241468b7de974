//! MTCNN's three networks (Zhang et al., 2016) in the layout of facenet-pytorch 2.6.0, whose
//! `pnet.pt`/`rnet.pt`/`onet.pt` state dicts load with their own key names (only PReLU's
//! `weight` is renamed to Burn's `alpha`).
//!
//! R-Net and O-Net flatten their last feature map in `(W, H, C)` order before the dense layers
//! (facenet-pytorch permutes `NCHW → NWHC`, the layout of the original Caffe/MATLAB weights); the
//! same permutation is applied here, or the dense weights would read scrambled features.
//!
//! facenet-pytorch's `.pt` files store every weight matrix and kernel in reversed-stride
//! (column-major) order, e.g. `conv1.weight` of shape `(10, 3, 3, 3)` with strides
//! `(1, 10, 30, 90)`. burn-store 0.21's pickle reader ignores strides and reads storages as
//! row-major, so for these files (recognised by their SHA-256) the loaded tensors are put back
//! in order ([`fix_column_major`]); any other file is taken as saved contiguously.

use std::path::Path;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PRelu, PReluConfig};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use face_nets::ops::{conv2d, conv2d_fused, max_pool2d, Activation};
use face_nets::weights::{load_pytorch, LoadReport};
use sha2::Digest;

use crate::error::{DetectError, Result};

/// PReLU slopes are `prelu<i>.weight` in PyTorch and `prelu<i>.alpha` in Burn.
const REMAPS: &[(&str, &str)] = &[(r"^(prelu[0-9]+)\.weight$", "$1.alpha")];

fn conv<B: Backend>(cin: usize, cout: usize, k: usize, device: &B::Device) -> Conv2d<B> {
    Conv2dConfig::new([cin, cout], [k, k]).init(device)
}

fn prelu<B: Backend>(n: usize, device: &B::Device) -> PRelu<B> {
    PReluConfig::new().with_num_parameters(n).init(device)
}

/// PyTorch's `MaxPool2d(k, s, ceil_mode=True)`; run through [`face_nets::ops::max_pool2d`],
/// which gives ceil mode the same result on every backend (burn-candle has none of its own).
fn pool(k: usize, s: usize) -> MaxPool2d {
    MaxPool2dConfig::new([k, k])
        .with_strides([s, s])
        .with_ceil_mode(true)
        .init()
}

/// SHA-256 of facenet-pytorch 2.6.0's `pnet.pt`, `rnet.pt`, `onet.pt` (column-major storages).
pub const FACENET_PYTORCH_SHA256: [(&str, &str); 3] = [
    (
        "pnet",
        "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
    ),
    (
        "rnet",
        "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
    ),
    (
        "onet",
        "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
    ),
];

/// Loads `path` into `model`; returns whether the file is facenet-pytorch's own (whose
/// column-major storages need [`fix_column_major`]).
fn load<B: Backend, M: Module<B>>(
    model: &mut M,
    net: &'static str,
    path: &Path,
) -> Result<(LoadReport, bool)> {
    if !path.is_file() {
        return Err(DetectError::MissingFile {
            path: path.to_owned(),
        });
    }
    let bytes = std::fs::read(path).map_err(|e| DetectError::Weights {
        net,
        source: face_nets::NetsError::Checkpoint {
            path: path.to_owned(),
            message: e.to_string(),
        },
    })?;
    let sha: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let facenet = FACENET_PYTORCH_SHA256.iter().any(|(n, h)| *n == net && *h == sha);
    let report = load_pytorch(model, path, REMAPS, &[], None)
        .map_err(|source| DetectError::Weights { net, source })?;
    Ok((report, facenet))
}

/// Reorders a kernel read row-major from a column-major storage: the storage holds
/// `[kw, kh, in, out]` row-major.
fn fix_conv<B: Backend>(mut c: Conv2d<B>) -> Conv2d<B> {
    c.weight = c.weight.map(|w| {
        let [o, i, kh, kw] = w.dims();
        w.reshape([kw, kh, i, o]).permute([3, 2, 1, 0])
    });
    c
}

/// Reorders a dense weight: burn-store read the `[out, in]` column-major storage row-major and
/// transposed it to Burn's `[in, out]`; the storage itself is `[in, out]` row-major.
fn fix_linear<B: Backend>(mut l: Linear<B>) -> Linear<B> {
    l.weight = l.weight.map(|w| {
        let [i, o] = w.dims();
        w.transpose().reshape([i, o])
    });
    l
}

/// Puts the weights of a network loaded from a column-major `.pt` file back in order.
pub trait FixColumnMajor {
    /// The network with every kernel and dense weight reordered.
    fn fix_column_major(self) -> Self;
}

/// `prelu(conv(x))` in one fused call: every convolution of the three nets is followed by its PReLU.
fn conv_prelu<B: Backend>(conv: &Conv2d<B>, prelu: &PRelu<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    conv2d_fused(conv, None, x, None, Activation::PRelu(prelu))
}

/// Flattens `[N, C, H, W]` in facenet-pytorch's `(W, H, C)` order.
fn flatten_whc<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 2> {
    let n = x.dims()[0];
    x.permute([0, 3, 2, 1]).reshape([n as i32, -1])
}

/// The proposal network: fully convolutional over any image size ≥ 12 px; each output cell is a
/// 12 × 12 window at stride 2.
#[derive(Module, Debug)]
pub struct PNet<B: Backend> {
    conv1: Conv2d<B>,
    prelu1: PRelu<B>,
    pool1: MaxPool2d,
    conv2: Conv2d<B>,
    prelu2: PRelu<B>,
    conv3: Conv2d<B>,
    prelu3: PRelu<B>,
    conv4_1: Conv2d<B>,
    conv4_2: Conv2d<B>,
}

impl<B: Backend> PNet<B> {
    /// A randomly initialised P-Net.
    pub fn new(device: &B::Device) -> Self {
        Self {
            conv1: conv(3, 10, 3, device),
            prelu1: prelu(10, device),
            pool1: pool(2, 2),
            conv2: conv(10, 16, 3, device),
            prelu2: prelu(16, device),
            conv3: conv(16, 32, 3, device),
            prelu3: prelu(32, device),
            conv4_1: conv(32, 2, 1, device),
            conv4_2: conv(32, 4, 1, device),
        }
    }

    /// Loads facenet-pytorch's `pnet.pt`.
    ///
    /// # Errors
    /// A missing or unreadable file, or a key/shape mismatch.
    pub fn load(path: &Path, device: &B::Device) -> Result<(Self, LoadReport)> {
        let mut net = Self::new(device);
        let (report, column_major) = load(&mut net, "pnet", path)?;
        Ok((if column_major { net.fix_column_major() } else { net }, report))
    }

    /// `x`: `[N, 3, H, W]` normalised as `(RGB − 127.5) / 128`. Returns the box regression
    /// `[N, 4, H', W']` and the face probability `[N, H', W']` (softmax over the two classes).
    pub fn forward(&self, x: Tensor<B, 4>) -> (Tensor<B, 4>, Tensor<B, 3>) {
        let x = max_pool2d(&self.pool1, conv_prelu(&self.conv1, &self.prelu1, x));
        let x = conv_prelu(&self.conv2, &self.prelu2, x);
        let x = conv_prelu(&self.conv3, &self.prelu3, x);
        let prob = face_probability(conv2d(&self.conv4_1, x.clone()));
        let [n, _, h, w] = prob.dims();
        (conv2d(&self.conv4_2, x), prob.reshape([n, h, w]))
    }
}

/// The refinement network on 24 × 24 crops.
#[derive(Module, Debug)]
pub struct RNet<B: Backend> {
    conv1: Conv2d<B>,
    prelu1: PRelu<B>,
    pool1: MaxPool2d,
    conv2: Conv2d<B>,
    prelu2: PRelu<B>,
    pool2: MaxPool2d,
    conv3: Conv2d<B>,
    prelu3: PRelu<B>,
    dense4: Linear<B>,
    prelu4: PRelu<B>,
    dense5_1: Linear<B>,
    dense5_2: Linear<B>,
}

impl<B: Backend> RNet<B> {
    /// A randomly initialised R-Net.
    pub fn new(device: &B::Device) -> Self {
        Self {
            conv1: conv(3, 28, 3, device),
            prelu1: prelu(28, device),
            pool1: pool(3, 2),
            conv2: conv(28, 48, 3, device),
            prelu2: prelu(48, device),
            pool2: pool(3, 2),
            conv3: conv(48, 64, 2, device),
            prelu3: prelu(64, device),
            dense4: LinearConfig::new(576, 128).init(device),
            prelu4: prelu(128, device),
            dense5_1: LinearConfig::new(128, 2).init(device),
            dense5_2: LinearConfig::new(128, 4).init(device),
        }
    }

    /// Loads facenet-pytorch's `rnet.pt`.
    ///
    /// # Errors
    /// A missing or unreadable file, or a key/shape mismatch.
    pub fn load(path: &Path, device: &B::Device) -> Result<(Self, LoadReport)> {
        let mut net = Self::new(device);
        let (report, column_major) = load(&mut net, "rnet", path)?;
        Ok((if column_major { net.fix_column_major() } else { net }, report))
    }

    /// `x`: `[N, 3, 24, 24]`. Returns the box regression `[N, 4]` and the face probability `[N]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> (Tensor<B, 2>, Tensor<B, 1>) {
        let x = max_pool2d(&self.pool1, conv_prelu(&self.conv1, &self.prelu1, x));
        let x = max_pool2d(&self.pool2, conv_prelu(&self.conv2, &self.prelu2, x));
        let x = conv_prelu(&self.conv3, &self.prelu3, x);
        let x = self.prelu4.forward(self.dense4.forward(flatten_whc(x)));
        let prob = face_probability(self.dense5_1.forward(x.clone()));
        let n = prob.dims()[0];
        (self.dense5_2.forward(x), prob.reshape([n]))
    }
}

/// The output network on 48 × 48 crops: boxes, probabilities and 5 landmarks.
#[derive(Module, Debug)]
pub struct ONet<B: Backend> {
    conv1: Conv2d<B>,
    prelu1: PRelu<B>,
    pool1: MaxPool2d,
    conv2: Conv2d<B>,
    prelu2: PRelu<B>,
    pool2: MaxPool2d,
    conv3: Conv2d<B>,
    prelu3: PRelu<B>,
    pool3: MaxPool2d,
    conv4: Conv2d<B>,
    prelu4: PRelu<B>,
    dense5: Linear<B>,
    prelu5: PRelu<B>,
    dense6_1: Linear<B>,
    dense6_2: Linear<B>,
    dense6_3: Linear<B>,
}

impl<B: Backend> ONet<B> {
    /// A randomly initialised O-Net.
    pub fn new(device: &B::Device) -> Self {
        Self {
            conv1: conv(3, 32, 3, device),
            prelu1: prelu(32, device),
            pool1: pool(3, 2),
            conv2: conv(32, 64, 3, device),
            prelu2: prelu(64, device),
            pool2: pool(3, 2),
            conv3: conv(64, 64, 3, device),
            prelu3: prelu(64, device),
            pool3: pool(2, 2),
            conv4: conv(64, 128, 2, device),
            prelu4: prelu(128, device),
            dense5: LinearConfig::new(1152, 256).init(device),
            prelu5: prelu(256, device),
            dense6_1: LinearConfig::new(256, 2).init(device),
            dense6_2: LinearConfig::new(256, 4).init(device),
            dense6_3: LinearConfig::new(256, 10).init(device),
        }
    }

    /// Loads facenet-pytorch's `onet.pt`.
    ///
    /// # Errors
    /// A missing or unreadable file, or a key/shape mismatch.
    pub fn load(path: &Path, device: &B::Device) -> Result<(Self, LoadReport)> {
        let mut net = Self::new(device);
        let (report, column_major) = load(&mut net, "onet", path)?;
        Ok((if column_major { net.fix_column_major() } else { net }, report))
    }

    /// `x`: `[N, 3, 48, 48]`. Returns the box regression `[N, 4]`, the landmarks `[N, 10]`
    /// (five x fractions of the box width, then five y fractions) and the face probability `[N]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> (Tensor<B, 2>, Tensor<B, 2>, Tensor<B, 1>) {
        let x = max_pool2d(&self.pool1, conv_prelu(&self.conv1, &self.prelu1, x));
        let x = max_pool2d(&self.pool2, conv_prelu(&self.conv2, &self.prelu2, x));
        let x = max_pool2d(&self.pool3, conv_prelu(&self.conv3, &self.prelu3, x));
        let x = conv_prelu(&self.conv4, &self.prelu4, x);
        let x = self.prelu5.forward(self.dense5.forward(flatten_whc(x)));
        let prob = face_probability(self.dense6_1.forward(x.clone()));
        let n = prob.dims()[0];
        (
            self.dense6_2.forward(x.clone()),
            self.dense6_3.forward(x),
            prob.reshape([n]),
        )
    }
}

/// The face class's probability from two-class logits along dimension 1 (`[N, 2, …]` →
/// `[N, 1, …]`): the second channel of a softmax, in its arithmetic, so the values are those of
/// `softmax(logits, 1)` bit for bit: `m = max(l₀, l₁)`, then `exp(l₁ − m) / (exp(l₀ − m) +
/// exp(l₁ − m))`.
///
/// Written with element-wise ops because a max over a dimension of two costs more than the
/// network on NdArray: it runs as an argmax and a gather, serially, on the calling thread (8.7 %
/// of the cascade's CPU time on obama.jpg, docs/BENCHMARKS.md, issue 18's seventh part).
fn face_probability<B: Backend, const D: usize>(logits: Tensor<B, D>) -> Tensor<B, D> {
    let l0 = logits.clone().narrow(1, 0, 1);
    let l1 = logits.narrow(1, 1, 1);
    let m = l0.clone().max_pair(l1.clone());
    let e0 = (l0 - m.clone()).exp();
    let e1 = (l1 - m).exp();
    e1.clone() / (e0 + e1)
}

impl<B: Backend> FixColumnMajor for PNet<B> {
    fn fix_column_major(self) -> Self {
        Self {
            conv1: fix_conv(self.conv1),
            conv2: fix_conv(self.conv2),
            conv3: fix_conv(self.conv3),
            conv4_1: fix_conv(self.conv4_1),
            conv4_2: fix_conv(self.conv4_2),
            ..self
        }
    }
}

impl<B: Backend> FixColumnMajor for RNet<B> {
    fn fix_column_major(self) -> Self {
        Self {
            conv1: fix_conv(self.conv1),
            conv2: fix_conv(self.conv2),
            conv3: fix_conv(self.conv3),
            dense4: fix_linear(self.dense4),
            dense5_1: fix_linear(self.dense5_1),
            dense5_2: fix_linear(self.dense5_2),
            ..self
        }
    }
}

impl<B: Backend> FixColumnMajor for ONet<B> {
    fn fix_column_major(self) -> Self {
        Self {
            conv1: fix_conv(self.conv1),
            conv2: fix_conv(self.conv2),
            conv3: fix_conv(self.conv3),
            conv4: fix_conv(self.conv4),
            dense5: fix_linear(self.dense5),
            dense6_1: fix_linear(self.dense6_1),
            dense6_2: fix_linear(self.dense6_2),
            dense6_3: fix_linear(self.dense6_3),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::NdArray;
    use burn::tensor::activation::softmax;
    use burn::tensor::{Distribution, Tensor};

    use super::face_probability;

    fn assert_softmax_bits<const D: usize>(logits: Tensor<NdArray<f32>, D>) {
        let want = softmax(logits.clone(), 1).narrow(1, 1, 1).into_data();
        let got = face_probability(logits).into_data();
        assert_eq!(want.shape, got.shape);
        let (want, got) = (want.to_vec::<f32>(), got.to_vec::<f32>());
        let (want, got) = (want.expect("f32 data"), got.expect("f32 data"));
        for (k, (a, b)) in want.iter().zip(&got).enumerate() {
            assert_eq!(
                a.to_bits(),
                b.to_bits(),
                "element {k}: softmax {a}, face_probability {b}"
            );
        }
    }

    /// Bit equality with the softmax it replaces, for planes (P-Net) and rows (R-, O-Net), at the
    /// logit scales the nets produce and far beyond them (where an unshifted exp overflows).
    #[test]
    fn face_probability_is_softmax_bit_for_bit() {
        let device = Default::default();
        for scale in [1.0, 30.0, 200.0] {
            let normal = Distribution::Normal(0.0, scale);
            assert_softmax_bits(Tensor::<NdArray<f32>, 4>::random([3, 2, 7, 5], normal, &device));
            assert_softmax_bits(Tensor::<NdArray<f32>, 2>::random([9, 2], normal, &device));
        }
    }
}

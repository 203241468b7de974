//! The fused convolution's fast NdArray path against its composed form (Burn's own
//! `Conv2d`/`BatchNorm`/`PRelu` forwards, which `Autodiff<NdArray>` takes), on shapes the
//! networks use and shapes they do not.

use burn::backend::{Autodiff, NdArray};
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PRelu, PReluConfig, PaddingConfig2d};
use burn::tensor::{Tensor, TensorData};
use face_nets::ops::{conv2d, conv2d_fused, Activation};

type Fast = NdArray<f32>;
type Composed = Autodiff<NdArray<f32>>;

/// Deterministic values (no RNG: other tests draw from Burn's process-wide one in parallel).
fn values(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.0 - 1.0)
        .collect()
}

fn tensor<B: burn::tensor::backend::Backend, const D: usize>(shape: [usize; D], seed: usize) -> Tensor<B, D> {
    let n = shape.iter().product();
    Tensor::from_data(TensorData::new(values(n, seed), shape), &Default::default())
}

struct Case {
    x: [usize; 4],
    cout: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: PaddingConfig2d,
    groups: usize,
    bias: bool,
}

fn layers<B: burn::tensor::backend::Backend>(c: &Case, seed: usize) -> (Conv2d<B>, BatchNorm<B>, PRelu<B>) {
    let device = Default::default();
    let mut conv: Conv2d<B> = Conv2dConfig::new([c.x[1], c.cout], c.kernel)
        .with_stride(c.stride)
        .with_padding(c.padding.clone())
        .with_groups(c.groups)
        .with_bias(c.bias)
        .init(&device);
    conv.weight = Param::from_tensor(tensor(conv.weight.dims(), seed));
    if let Some(b) = &conv.bias {
        conv.bias = Some(Param::from_tensor(tensor(b.dims(), seed + 1)));
    }
    let mut bn: BatchNorm<B> = BatchNormConfig::new(c.cout).init(&device);
    bn.gamma = Param::from_tensor(tensor([c.cout], seed + 2).add_scalar(1.5));
    bn.beta = Param::from_tensor(tensor([c.cout], seed + 3));
    bn.running_mean = burn::module::RunningState::new(tensor([c.cout], seed + 4));
    bn.running_var =
        burn::module::RunningState::new(tensor::<B, 1>([c.cout], seed + 5).abs().add_scalar(0.2));
    let mut prelu: PRelu<B> = PReluConfig::new().with_num_parameters(c.cout).init(&device);
    prelu.alpha = Param::from_tensor(tensor([c.cout], seed + 6).mul_scalar(0.3));
    (conv, bn, prelu)
}

fn max_rel(a: &Tensor<Fast, 4>, b: Tensor<Composed, 4>) -> f32 {
    let a: Vec<f32> = a.clone().into_data().to_vec().unwrap();
    let b: Vec<f32> = b.inner().into_data().to_vec().unwrap();
    assert_eq!(a.len(), b.len());
    let scale = b.iter().map(|v| v.abs()).fold(1.0f32, f32::max);
    a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max) / scale
}

#[test]
fn fast_fused_convolutions_match_the_composed_ops() {
    let e = PaddingConfig2d::Explicit;
    let cases = [
        // iResNet's 3×3, its stride-2 and its 1×1 downsample
        Case {
            x: [2, 8, 14, 14],
            cout: 16,
            kernel: [3, 3],
            stride: [1, 1],
            padding: e(1, 1, 1, 1),
            groups: 1,
            bias: false,
        },
        Case {
            x: [3, 8, 15, 13],
            cout: 8,
            kernel: [3, 3],
            stride: [2, 2],
            padding: e(1, 1, 1, 1),
            groups: 1,
            bias: false,
        },
        Case {
            x: [2, 8, 9, 9],
            cout: 16,
            kernel: [1, 1],
            stride: [2, 2],
            padding: e(0, 0, 0, 0),
            groups: 1,
            bias: false,
        },
        // depthwise (MobileFaceNet), batch 1, stride 2, padding 0
        Case {
            x: [1, 12, 11, 10],
            cout: 12,
            kernel: [3, 3],
            stride: [2, 2],
            padding: e(0, 0, 0, 0),
            groups: 12,
            bias: false,
        },
        Case {
            x: [2, 6, 7, 7],
            cout: 6,
            kernel: [7, 7],
            stride: [1, 1],
            padding: PaddingConfig2d::Valid,
            groups: 6,
            bias: true,
        },
        // grouped, non-square kernel and input, asymmetric padding, 7×7 stems
        Case {
            x: [2, 6, 9, 12],
            cout: 9,
            kernel: [3, 2],
            stride: [1, 2],
            padding: e(2, 0, 1, 1),
            groups: 3,
            bias: true,
        },
        Case {
            x: [1, 3, 17, 19],
            cout: 4,
            kernel: [7, 7],
            stride: [2, 2],
            padding: e(3, 3, 3, 3),
            groups: 1,
            bias: true,
        },
        Case {
            x: [1, 4, 5, 5],
            cout: 4,
            kernel: [1, 1],
            stride: [1, 1],
            padding: e(0, 0, 0, 0),
            groups: 1,
            bias: true,
        },
        // `Same` is served by the composed body on both sides
        Case {
            x: [1, 4, 6, 6],
            cout: 4,
            kernel: [3, 3],
            stride: [1, 1],
            padding: PaddingConfig2d::Same,
            groups: 1,
            bias: true,
        },
    ];
    for (i, c) in cases.iter().enumerate() {
        let (conv_f, bn_f, prelu_f) = layers::<Fast>(c, 10 * i);
        let (conv_c, bn_c, prelu_c) = layers::<Composed>(c, 10 * i);
        let bn_c = bn_c.no_grad();
        let x_f: Tensor<Fast, 4> = tensor(c.x, 10 * i + 7);
        let x_c: Tensor<Composed, 4> = tensor(c.x, 10 * i + 7);
        let out = conv2d(&conv_f, x_f.clone()).dims();
        let r_f: Tensor<Fast, 4> = tensor(out, 10 * i + 8);
        let r_c: Tensor<Composed, 4> = tensor(out, 10 * i + 8);

        let plain = max_rel(&conv2d(&conv_f, x_f.clone()), conv_c.forward(x_c.clone()));
        // the composed side in eval mode: BatchNorm's inference form, as on NdArray
        let bn_eval = |y: Tensor<Composed, 4>| {
            let [_, ch, _, _] = y.dims();
            let scale = bn_c
                .gamma
                .val()
                .div(bn_c.running_var.value().add_scalar(bn_c.epsilon).sqrt());
            let shift = bn_c.beta.val() - bn_c.running_mean.value() * scale.clone();
            y * scale.reshape([1, ch, 1, 1]) + shift.reshape([1, ch, 1, 1])
        };
        let full = max_rel(
            &conv2d_fused(
                &conv_f,
                Some(&bn_f),
                x_f.clone(),
                Some(r_f.clone()),
                Activation::PRelu(&prelu_f),
            ),
            prelu_c.forward(bn_eval(conv_c.forward(x_c.clone())) + r_c.clone()),
        );
        let relu = max_rel(
            &conv2d_fused(&conv_f, None, x_f.clone(), Some(r_f), Activation::Relu),
            burn::tensor::activation::relu(conv_c.forward(x_c.clone()) + r_c),
        );
        let bn_only = max_rel(
            &conv2d_fused(&conv_f, Some(&bn_f), x_f, None, Activation::Identity),
            bn_eval(conv_c.forward(x_c)),
        );
        for (what, err) in [
            ("conv", plain),
            ("conv+bn+res+prelu", full),
            ("conv+res+relu", relu),
            ("conv+bn", bn_only),
        ] {
            assert!(err <= 1e-5, "case {i} {what}: max relative |Δ| {err:e}");
        }
    }
}

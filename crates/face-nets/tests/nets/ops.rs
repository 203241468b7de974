//! The fused convolution's fast NdArray path against its composed form (Burn's own
//! `Conv2d`/`BatchNorm`/`PRelu` forwards), on shapes the networks use and shapes they do not;
//! its gradients under `Autodiff<NdArray>` against Burn's and against finite differences.

use burn::backend::{Autodiff, NdArray};
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig, LinearLayout, PRelu,
    PReluConfig, PaddingConfig2d,
};
use burn::tensor::{Tensor, TensorData};
use face_nets::multi_head_attention;
use face_nets::ops::{
    batch_norm, conv2d, conv2d_affine, conv2d_fused, gelu, l2_normalize, layer_norm, linear, matmul,
    Activation,
};

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

/// Shapes the networks use and shapes they do not.
fn cases() -> Vec<Case> {
    let e = PaddingConfig2d::Explicit;
    vec![
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
    ]
}

#[test]
fn fast_fused_convolutions_match_the_composed_ops() {
    for (i, c) in cases().iter().enumerate() {
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
            &conv2d_fused(&conv_f, None, x_f.clone(), Some(r_f.clone()), Activation::Relu),
            burn::tensor::activation::relu(conv_c.forward(x_c.clone()) + r_c.clone()),
        );
        let bn_only = max_rel(
            &conv2d_fused(&conv_f, Some(&bn_f), x_f.clone(), None, Activation::Identity),
            bn_eval(conv_c.forward(x_c.clone())),
        );
        // an exported affine layer (`Mul`, `Add` by [1, C, 1, 1] constants), then residual, ReLU
        let co = out[1];
        let scale_f: Tensor<Fast, 4> = tensor([1, co, 1, 1], 10 * i + 9);
        let shift_f: Tensor<Fast, 4> = tensor([1, co, 1, 1], 10 * i + 3);
        let (scale_c, shift_c): (Tensor<Composed, 4>, Tensor<Composed, 4>) = (
            tensor([1, co, 1, 1], 10 * i + 9),
            tensor([1, co, 1, 1], 10 * i + 3),
        );
        let affine = max_rel(
            &conv2d_affine(
                &conv_f,
                scale_f.clone(),
                shift_f.clone(),
                x_f.clone(),
                Some(r_f.clone()),
                Activation::Relu,
            ),
            burn::tensor::activation::relu(
                conv_c.forward(x_c.clone()) * scale_c.clone() + shift_c.clone() + r_c.clone(),
            ),
        );
        // a scale shaped for broadcasting over everything takes the composed body
        let scalar = max_rel(
            &conv2d_affine(
                &conv_f,
                scale_f.slice([0..1, 0..1]),
                shift_f,
                x_f.clone(),
                None,
                Activation::Identity,
            ),
            conv_c.forward(x_c.clone()) * scale_c.slice([0..1, 0..1]) + shift_c,
        );
        for (what, err) in [
            ("conv", plain),
            ("conv+bn+res+prelu", full),
            ("conv+res+relu", relu),
            ("conv+bn", bn_only),
            ("conv·scale+shift+res+relu", affine),
            ("conv·scalar+shift", scalar),
        ] {
            assert!(err <= 1e-5, "case {i} {what}: max relative |Δ| {err:e}");
        }
    }
}

/// Max |got − want| over max(max |want|, `floor`).
fn grad_rel<const D: usize>(
    what: &str,
    got: Option<Tensor<Fast, D>>,
    want: Option<Tensor<Fast, D>>,
    floor: f32,
) -> f32 {
    let (Some(got), Some(want)) = (got, want) else {
        panic!("{what}: a gradient is missing");
    };
    let got: Vec<f32> = got.into_data().to_vec().unwrap();
    let want: Vec<f32> = want.into_data().to_vec().unwrap();
    assert_eq!(got.len(), want.len(), "{what}");
    let scale = want.iter().map(|v| v.abs()).fold(floor, f32::max);
    got.iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
        / scale
}

/// Training: the fused op's gradients (its own GEMM backward for the convolution, Burn's for
/// the training-mode BatchNorm, residual and PReLU) against the same layers composed of Burn's
/// module forwards, for the input, the weight, the bias and every BatchNorm/PReLU parameter.
#[test]
fn fused_convolution_gradients_match_the_composed_ops() {
    for (i, c) in cases().iter().enumerate() {
        for fused in [false, true] {
            // Fresh leaves for each graph: a backward pass frees the graph it ran on.
            let (conv, bn, prelu) = layers::<Composed>(c, 10 * i);
            let x: Tensor<Composed, 4> = tensor(c.x, 10 * i + 7).require_grad();
            let out = conv.forward(x.clone()).dims();
            let r: Tensor<Composed, 4> = tensor(out, 10 * i + 8).require_grad();
            let weights: Tensor<Composed, 4> = tensor(out, 10 * i + 9);
            let fast = if fused {
                conv2d_fused(
                    &conv,
                    Some(&bn),
                    x.clone(),
                    Some(r.clone()),
                    Activation::PRelu(&prelu),
                )
            } else {
                conv2d(&conv, x.clone())
            };
            let g_fast = (fast * weights.clone()).sum().backward();
            let (conv_r, bn_r, prelu_r) = layers::<Composed>(c, 10 * i);
            let x_r: Tensor<Composed, 4> = tensor(c.x, 10 * i + 7).require_grad();
            let r_r: Tensor<Composed, 4> = tensor(out, 10 * i + 8).require_grad();
            let reference = if fused {
                prelu_r.forward(bn_r.forward(conv_r.forward(x_r.clone())) + r_r.clone())
            } else {
                conv_r.forward(x_r.clone())
            };
            let g_ref = (reference * weights).sum().backward();
            let (x, r, conv, bn, prelu) = ((x, x_r), (r, r_r), (conv, conv_r), (bn, bn_r), (prelu, prelu_r));
            // A training-mode BatchNorm subtracts the batch mean, so the bias before it has a
            // zero gradient: both sides are rounding noise there, judged against 1.
            let bias_floor = if fused { 1.0 } else { 1e-3 };
            let mut errs = vec![
                ("dx", grad_rel("dx", x.0.grad(&g_fast), x.1.grad(&g_ref), 1e-3)),
                (
                    "dw",
                    grad_rel(
                        "dw",
                        conv.0.weight.grad(&g_fast),
                        conv.1.weight.grad(&g_ref),
                        1e-3,
                    ),
                ),
            ];
            if c.bias {
                let (b0, b1) = (conv.0.bias.as_ref(), conv.1.bias.as_ref());
                let (got, want) = (b0.and_then(|b| b.grad(&g_fast)), b1.and_then(|b| b.grad(&g_ref)));
                errs.push(("db", grad_rel("db", got, want, bias_floor)));
            }
            if fused {
                let rows = [
                    (
                        "dres",
                        r.0.grad(&g_fast).map(|t| t.flatten(0, 3)),
                        r.1.grad(&g_ref).map(|t| t.flatten(0, 3)),
                    ),
                    ("dgamma", bn.0.gamma.grad(&g_fast), bn.1.gamma.grad(&g_ref)),
                    ("dbeta", bn.0.beta.grad(&g_fast), bn.1.beta.grad(&g_ref)),
                    ("dalpha", prelu.0.alpha.grad(&g_fast), prelu.1.alpha.grad(&g_ref)),
                ];
                for (what, got, want) in rows {
                    errs.push((what, grad_rel(what, got, want, 1e-3)));
                }
            }
            for (what, err) in errs {
                assert!(
                    err <= 1e-4,
                    "case {i} fused {fused} {what}: max relative |Δ| {err:e}"
                );
            }
        }
    }
}

/// `L = Σ r·tanh(conv(x, W) + b)` in f64, by the definition.
fn loss_f64(x: &[f64], w: &[f64], b: &[f64], r: &[f64], [n, c, h, wd]: [usize; 4], co: usize) -> f64 {
    // 3×3, stride 2, padding 1 (top/left) and 0 (bottom/right): the shape of the test below
    let (ho, wo) = ((h + 1 - 3) / 2 + 1, (wd + 1 - 3) / 2 + 1);
    let mut loss = 0.0;
    for i in 0..n {
        for o in 0..co {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut acc = b[o];
                    for ci in 0..c {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (iy, ix) = ((oy * 2 + ky) as isize - 1, (ox * 2 + kx) as isize - 1);
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                acc += x[((i * c + ci) * h + iy as usize) * wd + ix as usize]
                                    * w[((o * c + ci) * 3 + ky) * 3 + kx];
                            }
                        }
                    }
                    loss += r[((i * co + o) * ho + oy) * wo + ox] * acc.tanh();
                }
            }
        }
    }
    loss
}

/// The op's gradients against central finite differences of the loss computed in f64.
#[test]
fn fused_convolution_gradients_match_finite_differences() {
    let (xs, co) = ([2, 3, 6, 5], 4);
    let conv: Conv2d<Composed> = Conv2dConfig::new([xs[1], co], [3, 3])
        .with_stride([2, 2])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 0, 0))
        .with_bias(true)
        .init(&Default::default());
    let mut conv = conv;
    conv.weight = Param::from_tensor(tensor::<Composed, 4>(conv.weight.dims(), 1).mul_scalar(0.5));
    conv.bias = Some(Param::from_tensor(tensor([co], 2).mul_scalar(0.3)));
    let x: Tensor<Composed, 4> = tensor(xs, 3).require_grad();
    let y = conv2d(&conv, x.clone());
    let r: Tensor<Composed, 4> = tensor(y.dims(), 4);
    let grads = (y.tanh() * r.clone()).sum().backward();

    let f64s = |t: Tensor<Fast, 1>| -> Vec<f64> {
        t.into_data()
            .to_vec::<f32>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect()
    };
    let xv = f64s(x.clone().inner().flatten(0, 3));
    let wv = f64s(conv.weight.val().inner().flatten(0, 3));
    let bv = f64s(conv.bias.as_ref().unwrap().val().inner());
    let rv = f64s(r.inner().flatten(0, 3));
    let loss = |x: &[f64], w: &[f64], b: &[f64]| loss_f64(x, w, b, &rv, xs, co);
    let central = |v: &[f64], i: usize, f: &dyn Fn(&[f64]) -> f64| {
        let h = 1e-5;
        let (mut up, mut down) = (v.to_vec(), v.to_vec());
        up[i] += h;
        down[i] -= h;
        (f(&up) - f(&down)) / (2.0 * h)
    };
    let grad = |t: Option<Tensor<Fast, 4>>| f64s(t.expect("a gradient").flatten(0, 3));
    let dx = grad(x.grad(&grads));
    let dw = grad(conv.weight.grad(&grads));
    let db = f64s(conv.bias.as_ref().unwrap().grad(&grads).expect("a bias gradient"));
    type Check<'a> = (&'a str, &'a [f64], &'a [f64], &'a dyn Fn(&[f64]) -> f64);
    let checks: [Check; 3] = [
        ("dx", &xv, &dx, &|v| loss(v, &wv, &bv)),
        ("dw", &wv, &dw, &|v| loss(&xv, v, &bv)),
        ("db", &bv, &db, &|v| loss(&xv, &wv, v)),
    ];
    for (what, at, got, f) in checks {
        assert_eq!(at.len(), got.len(), "{what}");
        for (i, g) in got.iter().enumerate() {
            let fd = central(at, i, f);
            assert!(
                (g - fd).abs() <= 1e-4 * fd.abs().max(1.0),
                "{what}[{i}]: autodiff {g} vs finite differences {fd}"
            );
        }
    }
}

/// A BatchNorm with every vector set (no RNG), for `channels` channels.
fn batch_norm_layer<B: burn::tensor::backend::Backend>(channels: usize, seed: usize) -> BatchNorm<B> {
    let mut bn: BatchNorm<B> = BatchNormConfig::new(channels)
        .with_momentum(0.3)
        .init(&Default::default());
    bn.gamma = Param::from_tensor(tensor([channels], seed).add_scalar(1.5));
    bn.beta = Param::from_tensor(tensor([channels], seed + 1));
    bn.running_mean = burn::module::RunningState::new(tensor([channels], seed + 2));
    bn.running_var =
        burn::module::RunningState::new(tensor::<B, 1>([channels], seed + 3).abs().add_scalar(0.2));
    bn
}

fn max_rel_1(what: &str, got: Tensor<Fast, 1>, want: Tensor<Fast, 1>) -> f32 {
    grad_rel(what, Some(got), Some(want), 1e-3)
}

/// `ops::batch_norm` against `BatchNorm::forward`: inference on NdArray (running statistics),
/// and training under autodiff (batch statistics, the outputs, every gradient and the updated
/// running mean and variance), on 4-d inputs (odd planes, batch 1) and a 2-d one (the
/// embedding's BatchNorm1d).
#[test]
fn batch_norm_matches_burns_in_inference_and_training() {
    let shapes: [&[usize]; 4] = [&[2, 5, 7, 9], &[1, 3, 4, 4], &[3, 16, 13, 1], &[6, 10]];
    for (i, shape) in shapes.iter().enumerate() {
        let c = shape[1];
        let n: usize = shape.iter().product();
        // as `[N, rest]`, reshaped to the case's rank below
        let data = |seed| {
            let v: Vec<f32> = values(n, seed).iter().map(|v| v * 3.0 + 0.5).collect();
            TensorData::new(v, [shape[0], n / shape[0]])
        };

        // inference
        let bn = batch_norm_layer::<Fast>(c, 10 * i);
        let x = Tensor::<Fast, 2>::from_data(data(10 * i + 5), &Default::default());
        let (got, want) = if shape.len() == 4 {
            let x: Tensor<Fast, 4> = x.reshape([shape[0], shape[1], shape[2], shape[3]]);
            (
                batch_norm(&bn, x.clone()).flatten(0, 3),
                bn.forward(x).flatten(0, 3),
            )
        } else {
            (
                batch_norm(&bn, x.clone()).flatten(0, 1),
                bn.forward(x).flatten(0, 1),
            )
        };
        let err = max_rel_1("inference", got, want);
        assert!(err <= 1e-6, "case {i} inference: {err:e}");

        // training: both sides on fresh modules and leaves
        let run = |ours: bool| {
            let bn = batch_norm_layer::<Composed>(c, 10 * i);
            let x = Tensor::<Composed, 2>::from_data(data(10 * i + 5), &Default::default()).require_grad();
            let w = Tensor::<Composed, 1>::from_data(
                TensorData::new(values(n, 10 * i + 6), [n]),
                &Default::default(),
            );
            let y = if shape.len() == 4 {
                let x4: Tensor<Composed, 4> = x.clone().reshape([shape[0], shape[1], shape[2], shape[3]]);
                let y = if ours { batch_norm(&bn, x4) } else { bn.forward(x4) };
                y.flatten(0, 3)
            } else {
                let y = if ours {
                    batch_norm(&bn, x.clone())
                } else {
                    bn.forward(x.clone())
                };
                y.flatten(0, 1)
            };
            let grads = (y.clone() * w).sum().backward();
            let g = |t: Option<Tensor<Fast, 1>>| t.expect("a gradient");
            [
                y.inner(),
                g(x.grad(&grads).map(|t| t.flatten(0, 1))),
                g(bn.gamma.grad(&grads)),
                g(bn.beta.grad(&grads)),
                bn.running_mean.value().inner(),
                bn.running_var.value().inner(),
            ]
        };
        let (ours, burns) = (run(true), run(false));
        for ((what, got), want) in ["y", "dx", "dgamma", "dbeta", "running mean", "running var"]
            .into_iter()
            .zip(ours)
            .zip(burns)
        {
            let err = max_rel_1(what, got, want);
            assert!(err <= 1e-4, "case {i} training {what}: max relative |Δ| {err:e}");
        }
    }
}

/// Max and average pools: the direct NdArray pass against Burn's pools (composed side under
/// autodiff), over the teachers' and MTCNN's settings and others; ceil mode against a case
/// worked by hand.
#[test]
fn fast_pools_match_burns() {
    use burn::nn::pool::{AvgPool2dConfig, MaxPool2dConfig};
    use face_nets::ops::{avg_pool2d, max_pool2d};
    let e = PaddingConfig2d::Explicit;
    // (input, kernel, stride, padding, ceil mode)
    let max_cases = [
        ([2, 3, 9, 9], [3, 3], [2, 2], PaddingConfig2d::Valid, false),
        ([1, 2, 23, 17], [3, 3], [2, 2], PaddingConfig2d::Valid, true),
        ([2, 2, 12, 11], [2, 2], [2, 2], PaddingConfig2d::Valid, true),
        ([1, 3, 8, 7], [3, 2], [1, 2], e(1, 0, 1, 0), false),
        ([1, 2, 7, 9], [3, 3], [2, 2], e(1, 1, 1, 1), true),
    ];
    for (i, (x, k, s, p, ceil)) in max_cases.into_iter().enumerate() {
        let pool = MaxPool2dConfig::new(k)
            .with_strides(s)
            .with_padding(p)
            .with_ceil_mode(ceil)
            .init();
        let fast = max_pool2d(&pool, tensor::<Fast, 4>(x, i));
        let composed = max_pool2d(&pool, tensor::<Composed, 4>(x, i));
        assert_eq!(fast.dims(), composed.dims(), "max case {i}");
        assert!(max_rel(&fast, composed) == 0.0, "max case {i}");
    }
    let avg_cases = [
        ([2, 4, 16, 16], [2, 2], [2, 2], PaddingConfig2d::Valid, false),
        ([1, 3, 9, 7], [3, 3], [2, 1], e(1, 1, 1, 1), false),
        ([1, 3, 9, 7], [3, 3], [2, 1], e(1, 1, 1, 1), true),
    ];
    for (i, (x, k, s, p, count_pad)) in avg_cases.into_iter().enumerate() {
        let pool = AvgPool2dConfig::new(k)
            .with_strides(s)
            .with_padding(p)
            .with_count_include_pad(count_pad)
            .init();
        let fast = avg_pool2d(&pool, tensor::<Fast, 4>(x, 20 + i));
        let composed = avg_pool2d(&pool, tensor::<Composed, 4>(x, 20 + i));
        assert_eq!(fast.dims(), composed.dims(), "avg case {i}");
        let err = max_rel(&fast, composed);
        assert!(err <= 1e-6, "avg case {i}: {err:e}");
    }
    // 5 × 5 ramp, 2 × 2 windows, stride 2, ceil mode: 3 × 3, the last row and column clipped
    let ramp: Vec<f32> = (0..25).map(|v| v as f32).collect();
    let pool = MaxPool2dConfig::new([2, 2])
        .with_strides([2, 2])
        .with_ceil_mode(true)
        .init();
    let want = [6.0, 8.0, 9.0, 16.0, 18.0, 19.0, 21.0, 23.0, 24.0];
    let fast = max_pool2d(
        &pool,
        Tensor::<Fast, 4>::from_data(TensorData::new(ramp.clone(), [1, 1, 5, 5]), &Default::default()),
    );
    let composed = max_pool2d(
        &pool,
        Tensor::<Composed, 4>::from_data(TensorData::new(ramp, [1, 1, 5, 5]), &Default::default()),
    );
    assert_eq!(fast.into_data().to_vec::<f32>().unwrap(), want);
    assert_eq!(composed.inner().into_data().to_vec::<f32>().unwrap(), want);
}

/// A linear layer with deterministic weights, stored as `layout` says.
fn linear_layer<B: burn::tensor::backend::Backend>(
    [k, n]: [usize; 2],
    bias: bool,
    layout: LinearLayout,
    seed: usize,
) -> Linear<B> {
    let mut l: Linear<B> = LinearConfig::new(k, n)
        .with_bias(bias)
        .with_layout(layout)
        .init(&Default::default());
    // A `Col` layer's weight is a transposed view of `[n, k]` storage, read through its strides.
    let weight: Tensor<B, 2> = match layout {
        LinearLayout::Row => tensor([k, n], seed),
        LinearLayout::Col => tensor::<B, 2>([n, k], seed).transpose(),
    };
    l.weight = Param::from_tensor(weight);
    if l.bias.is_some() {
        l.bias = Some(Param::from_tensor(tensor([n], seed + 1)));
    }
    l
}

/// `(x shape, output width, bias, layout)`: a token batch, a single row, a 4-D input, a
/// transposed weight and a 1 × 1 product.
fn linear_cases() -> Vec<(Vec<usize>, usize, bool, LinearLayout)> {
    vec![
        (vec![2, 3, 5], 7, true, LinearLayout::Row),
        (vec![1, 19], 1, false, LinearLayout::Row),
        (vec![2, 3, 4, 6], 9, true, LinearLayout::Row),
        (vec![37, 64], 130, true, LinearLayout::Col),
        (vec![1, 1], 1, true, LinearLayout::Row),
        (vec![50, 192], 576, true, LinearLayout::Row),
    ]
}

fn run_linear<B: burn::tensor::backend::Backend>(
    layer: &Linear<B>,
    x: Tensor<B, 4>,
    dims: &[usize],
    fast: bool,
) -> Tensor<B, 4> {
    // Each case runs at its own rank (the op flattens the leading dimensions).
    macro_rules! at {
        ($d:literal) => {{
            let shape: [usize; $d] = dims.try_into().expect("rank");
            let x: Tensor<B, $d> = x.reshape(shape);
            let y = if fast { linear(layer, x) } else { layer.forward(x) };
            let n = y.dims()[$d - 1];
            y.reshape([-1, 1, 1, n as i32])
        }};
    }
    match dims.len() {
        2 => at!(2),
        3 => at!(3),
        _ => at!(4),
    }
}

/// The linear layer and GELU ops against Burn's `Linear::forward` and `gelu`, in inference and
/// under autodiff (input, weight and bias gradients).
#[test]
fn fast_linear_and_gelu_match_burns() {
    for (i, (dims, n, bias, layout)) in linear_cases().into_iter().enumerate() {
        let k = dims[dims.len() - 1];
        let count: usize = dims.iter().product();
        let flat = |seed| tensor::<Fast, 4>([count / k, 1, 1, k], seed);
        let layer = linear_layer::<Fast>([k, n], bias, layout, 10 * i);
        let got = run_linear(&layer, flat(10 * i + 5), &dims, true);
        let want = run_linear(&layer, flat(10 * i + 5), &dims, false);
        let err = max_rel(&got, Tensor::<Composed, 4>::from_inner(want));
        assert!(err <= 1e-5, "linear case {i}: max relative |Δ| {err:e}");

        let grads = |fast: bool| {
            let layer = linear_layer::<Composed>([k, n], bias, layout, 10 * i);
            let x: Tensor<Composed, 4> = tensor([count / k, 1, 1, k], 10 * i + 5).require_grad();
            let y = run_linear(&layer, x.clone(), &dims, fast);
            let r: Tensor<Composed, 4> = tensor(y.dims(), 10 * i + 6);
            let g = (y * r).sum().backward();
            let db = layer.bias.as_ref().and_then(|b| b.grad(&g));
            (x.grad(&g), layer.weight.grad(&g), db)
        };
        let (fast, reference) = (grads(true), grads(false));
        let mut errs = vec![
            ("dx", grad_rel("dx", fast.0, reference.0, 1e-3)),
            ("dw", grad_rel("dw", fast.1, reference.1, 1e-3)),
        ];
        if bias {
            errs.push(("db", grad_rel("db", fast.2, reference.2, 1e-3)));
        }
        for (what, err) in errs {
            assert!(err <= 1e-5, "linear case {i} {what}: max relative |Δ| {err:e}");
        }
    }

    // GELU over [−6, 6] (and its flat tails): the forward against Burn's (erf-based), the
    // gradient against the exact derivative composed of Burn's ops, `x·½(1 + erf(x/√2))`.
    let x = |scale: f32| {
        Tensor::<Composed, 2>::from_data(
            TensorData::new(values(3 * 1001, 1).iter().map(|v| v * scale).collect(), [3, 1001]),
            &Default::default(),
        )
    };
    for scale in [1.0, 6.0, 40.0] {
        let got = gelu(x(scale).inner());
        let want = burn::tensor::activation::gelu(x(scale).inner());
        let err = (got - want).abs().max().into_scalar();
        assert!(err <= 2e-6 * scale, "gelu forward ×{scale}: max |Δ| {err:e}");

        let (a, b) = (x(scale).require_grad(), x(scale).require_grad());
        let r = x(0.7).mul_scalar(-1.3);
        let g_fast = (gelu(a.clone()) * r.clone()).sum().backward();
        let exact = b.clone()
            * b.clone()
                .div_scalar(std::f32::consts::SQRT_2)
                .erf()
                .add_scalar(1.0)
            / 2.0;
        let g_ref = (exact * r).sum().backward();
        let err = grad_rel("dgelu", a.grad(&g_fast), b.grad(&g_ref), 1.0);
        assert!(err <= 2e-6, "gelu gradient ×{scale}: max |Δ| {err:e}");
    }
}

/// A LayerNorm of width `d` with γ and β away from their initial ones and zeros.
fn layer_norm_module<B: burn::tensor::backend::Backend>(
    d: usize,
    eps: f64,
    bias: bool,
    seed: usize,
) -> LayerNorm<B> {
    let mut norm: LayerNorm<B> = LayerNormConfig::new(d)
        .with_epsilon(eps)
        .with_bias(bias)
        .init(&Default::default());
    norm.gamma = Param::from_tensor(tensor::<B, 1>([d], seed).add_scalar(1.2));
    if bias {
        norm.beta = Some(Param::from_tensor(tensor([d], seed + 1)));
    }
    norm
}

/// `ops::layer_norm` against `LayerNorm::forward`: inference on NdArray, and under autodiff the
/// output and the input, γ and β gradients, on the LAFS shape (16 views of 50 tokens, 192
/// wide: 800 rows, past several blocks of rows), odd widths, one row, rows of one value (zero
/// variance: the output is β) and an input with a large offset (a mean far from zero). The
/// bound grows with the offset: an f32 mean of values near 100 is rounded to their ulp
/// (7.6e-6), in both implementations, and normalising divides that by the spread.
#[test]
fn fast_layer_norm_matches_burns() {
    let cases: [([usize; 3], f64, bool, f32); 6] = [
        ([16, 50, 192], 1e-6, true, 1.0),
        ([3, 7, 5], 1e-5, true, 3.0),
        ([2, 65, 9], 1e-5, false, 1.0),
        ([1, 1, 24], 1e-6, true, 1.0),
        ([2, 3, 1], 1e-5, true, 1.0),
        ([4, 6, 32], 1e-6, true, 100.0),
    ];
    for (i, (dims, eps, bias, offset)) in cases.into_iter().enumerate() {
        let input = |seed| tensor::<Fast, 3>(dims, seed).add_scalar(offset);
        let norm = layer_norm_module::<Fast>(dims[2], eps, bias, 10 * i);
        let got = layer_norm(&norm, eps, input(10 * i + 5));
        let want = norm.forward(input(10 * i + 5));
        let bound = 1e-5 * (1.0 + offset / 10.0);
        let err = (got - want).abs().max().into_scalar();
        assert!(err <= bound, "layer norm case {i}: max |Δ| {err:e}");

        let grads = |fast: bool| {
            let norm = layer_norm_module::<Composed>(dims[2], eps, bias, 10 * i);
            let x = tensor::<Composed, 3>(dims, 10 * i + 5)
                .add_scalar(offset)
                .require_grad();
            let y = if fast {
                layer_norm(&norm, eps, x.clone())
            } else {
                norm.forward(x.clone())
            };
            let r: Tensor<Composed, 3> = tensor(dims, 10 * i + 6);
            let g = (y.clone() * r).sum().backward();
            let db = norm.beta.as_ref().and_then(|b| b.grad(&g));
            (y.inner(), x.grad(&g), norm.gamma.grad(&g), db)
        };
        let (fast, reference) = (grads(true), grads(false));
        let err = (fast.0 - reference.0).abs().max().into_scalar();
        assert!(
            err <= bound,
            "layer norm case {i}, training forward: max |Δ| {err:e}"
        );
        let mut errs = vec![
            ("dx", grad_rel("dx", fast.1, reference.1, 1e-3)),
            ("dgamma", grad_rel("dgamma", fast.2, reference.2, 1e-3)),
        ];
        if bias {
            errs.push(("dbeta", grad_rel("dbeta", fast.3, reference.3, 1e-3)));
        }
        for (what, err) in errs {
            assert!(
                err <= 1e-4,
                "layer norm case {i} {what}: max relative |Δ| {err:e}"
            );
        }
    }
}

/// `ops::l2_normalize` against the same normalisation composed of Burn's ops (square, sum,
/// square root, clamp, divide), along rows and columns: inference on NdArray, and the output
/// and input gradient under autodiff. Shapes: DINO's prototype matrix in small (many columns,
/// past one block), a batch of embeddings, two rows, and a matrix with a zero row and column.
#[test]
fn fast_l2_normalize_matches_the_composed_ops() {
    fn composed<B: burn::tensor::backend::Backend>(x: Tensor<B, 2>, dim: usize) -> Tensor<B, 2> {
        let norm = x.clone().powi_scalar(2).sum_dim(dim).sqrt().clamp_min(1e-12);
        x / norm
    }
    for (i, [r, c]) in [[16, 3000], [32, 64], [2, 7], [5, 6]].into_iter().enumerate() {
        let input = |zero: bool| {
            let mut v = values(r * c, 30 + i);
            if zero {
                v.iter_mut().step_by(c).for_each(|v| *v = 0.0);
                v[..c].fill(0.0);
            }
            TensorData::new(v, [r, c])
        };
        for dim in [0, 1] {
            let zero = i == 3;
            let x = || Tensor::<Fast, 2>::from_data(input(zero), &Default::default());
            let err = (l2_normalize(x(), dim, 1e-12) - composed(x(), dim))
                .abs()
                .max()
                .into_scalar();
            assert!(err <= 1e-6, "case {i}, dim {dim}: max |Δ| {err:e}");

            let grads = |fast: bool| {
                let x = Tensor::<Composed, 2>::from_data(input(zero), &Default::default()).require_grad();
                let y = if fast {
                    l2_normalize(x.clone(), dim, 1e-12)
                } else {
                    composed(x.clone(), dim)
                };
                let g = (y.clone() * tensor::<Composed, 2>([r, c], 40 + i))
                    .sum()
                    .backward();
                (y.inner(), x.grad(&g))
            };
            let (fast, reference) = (grads(true), grads(false));
            let err = (fast.0 - reference.0).abs().max().into_scalar();
            assert!(
                err <= 1e-6,
                "case {i}, dim {dim}, training forward: max |Δ| {err:e}"
            );
            let err = grad_rel("dx", fast.1, reference.1, 1e-3);
            assert!(err <= 1e-4, "case {i}, dim {dim}: dx max relative |Δ| {err:e}");
        }
    }
}

/// Attention composed of Burn's ops, as `multi_head_attention` computes it on other backends.
fn attention_reference<B: burn::tensor::backend::Backend>(qkv: Tensor<B, 3>, heads: usize) -> Tensor<B, 3> {
    let [b, n, c3] = qkv.dims();
    let (c, hd) = (c3 / 3, c3 / 3 / heads);
    let part = |i: usize| {
        qkv.clone()
            .narrow(2, i * c, c)
            .reshape([b, n, heads, hd])
            .swap_dims(1, 2)
    };
    let scores = part(0)
        .matmul(part(1).swap_dims(2, 3))
        .div_scalar((hd as f32).sqrt());
    let p = burn::tensor::activation::softmax(scores, 3);
    p.matmul(part(2)).swap_dims(1, 2).reshape([b, n, c])
}

/// The fused attention (NdArray inference, and its backward under autodiff) against the same
/// attention composed of Burn's ops: sequence lengths of the LAFS views (50, 10), one token,
/// one head, odd widths.
#[test]
fn fused_attention_matches_the_composed_ops() {
    for (i, [b, n, c, heads]) in [
        [4, 50, 192, 3],
        [6, 10, 24, 3],
        [3, 1, 8, 2],
        [2, 7, 5, 1],
        [1, 33, 12, 4],
    ]
    .into_iter()
    .enumerate()
    {
        let qkv = |scale: f32| tensor::<Composed, 3>([b, n, 3 * c], 100 + i).mul_scalar(scale);
        let got = multi_head_attention(qkv(3.0).inner(), heads);
        let want = attention_reference(qkv(3.0).inner(), heads);
        let err = (got - want).abs().max().into_scalar();
        assert!(err <= 1e-5, "attention case {i}: max |Δ| {err:e}");

        // Logits of a few units, as after a LayerNorm; sharper ones make the composed f32
        // softmax backward itself the larger error (the kernel test in `ops/dense.rs` checks
        // the fused one against f64 finite differences to 1e-5 with logits of ±20).
        let (a, r) = (qkv(1.0).require_grad(), tensor::<Composed, 3>([b, n, c], 200 + i));
        let g_fast = (multi_head_attention(a.clone(), heads) * r.clone())
            .sum()
            .backward();
        let z = qkv(1.0).require_grad();
        let g_ref = (attention_reference(z.clone(), heads) * r).sum().backward();
        // 1e-3: the composed reference's f32 sums follow the GEMM kernels of the host (4.4e-4
        // measured on an AVX2-only host, under 1e-4 with AVX-512); the fused kernel itself
        // holds 1e-5 against f64 finite differences on both (`ops/dense.rs`).
        let err = grad_rel("dqkv", a.grad(&g_fast), z.grad(&g_ref), 1e-3);
        assert!(err <= 1e-3, "attention case {i} dqkv: max relative |Δ| {err:e}");
    }
}

/// `ops::matmul` against Burn's `matmul`: forward on NdArray, and both operands' gradients under
/// autodiff, with a transposed right operand (read through its strides) and an operand that is
/// itself computed (the DINO head's normalised prototypes).
#[test]
fn fast_matmul_matches_burns() {
    for (i, [m, k, n]) in [[1, 1, 1], [7, 5, 3], [40, 33, 129]].into_iter().enumerate() {
        for transposed in [false, true] {
            let rhs = |seed| match transposed {
                false => tensor::<Composed, 2>([k, n], seed),
                true => tensor::<Composed, 2>([n, k], seed).transpose(),
            };
            let a = || tensor::<Composed, 2>([m, k], 300 + i);
            let got = matmul(a().inner(), rhs(400 + i).inner());
            let want = a().inner().matmul(rhs(400 + i).inner());
            let err =
                (got - want.clone()).abs().max().into_scalar() / want.abs().max().into_scalar().max(1.0);
            assert!(err <= 1e-5, "matmul case {i} transposed {transposed}: {err:e}");

            let r = tensor::<Composed, 2>([m, n], 500 + i);
            let grads = |fast: bool| {
                let (a, b) = (a().require_grad(), rhs(400 + i).require_grad());
                let scaled = b.clone().mul_scalar(1.5);
                let y = if fast {
                    matmul(a.clone(), scaled)
                } else {
                    a.clone().matmul(scaled)
                };
                let g = (y * r.clone()).sum().backward();
                (a.grad(&g), b.grad(&g))
            };
            let (fast, reference) = (grads(true), grads(false));
            for (what, got, want) in [("da", fast.0, reference.0), ("db", fast.1, reference.1)] {
                let err = grad_rel(what, got, want, 1e-3);
                assert!(
                    err <= 1e-5,
                    "matmul case {i} transposed {transposed} {what}: {err:e}"
                );
            }
        }
    }
}

#[test]
fn composed_strided_pointwise_convolution_matches_burns_own() {
    // On backends without the fast path, a strided 1×1 convolution is composed as a strided
    // slice and a stride-1 convolution (Burn 0.21's CubeCL kernels get its input gradient
    // wrong; the workspace's `tests/cubecl.rs` runs that case on wgpu). Here on Candle, forward
    // and both gradients, against Burn's own convolution on NdArray.
    type Candle = face_nets::CandleTrain;
    // (Candle's convolution backward takes no groups, so groups = 1 here.)
    for (size, stride, bias) in [(14, 2, false), (13, 2, true), (9, 3, true)] {
        let c = Case {
            x: [2, 4, size, size],
            cout: 6,
            kernel: [1, 1],
            stride: [stride, stride],
            padding: PaddingConfig2d::Valid,
            groups: 1,
            bias,
        };
        let (conv_n, _, _) = layers::<Composed>(&c, 40);
        let (conv_c, _, _) = layers::<Candle>(&c, 40);
        let x_n: Tensor<Composed, 4> = tensor::<Composed, 4>(c.x, 47).require_grad();
        let x_c: Tensor<Candle, 4> = tensor::<Candle, 4>(c.x, 47).require_grad();
        let y_n = conv_n.forward(x_n.clone());
        let y_c = conv2d(&conv_c, x_c.clone());
        let v = |t: Tensor<Candle, 4>| t.into_data().to_vec::<f32>().unwrap();
        let w = |t: Tensor<Composed, 4>| t.into_data().to_vec::<f32>().unwrap();
        let diff = |a: Vec<f32>, b: Vec<f32>| {
            a.iter()
                .zip(&b)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0f32, f32::max)
        };
        assert_eq!(y_c.dims(), y_n.dims());
        assert!(
            diff(v(y_c.clone()), w(y_n.clone())) < 1e-5,
            "{size}/{stride}: forward"
        );
        let g_n = (y_n.clone() * y_n).sum().backward();
        let g_c = (y_c.clone() * y_c).sum().backward();
        let dx_n = x_n.grad(&g_n).unwrap().into_data().to_vec::<f32>().unwrap();
        let dx_c = x_c.grad(&g_c).unwrap().into_data().to_vec::<f32>().unwrap();
        assert!(diff(dx_c, dx_n) < 1e-5, "{size}/{stride}: input gradient");
        let dw_n = conv_n
            .weight
            .grad(&g_n)
            .unwrap()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let dw_c = conv_c
            .weight
            .grad(&g_c)
            .unwrap()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        assert!(diff(dw_c, dw_n) < 1e-4, "{size}/{stride}: weight gradient");
    }
}

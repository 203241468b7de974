//! Where iResNet-50's forward time goes on the CPU backends: times each layer kind at the shapes
//! of the four stages (batch 32, 112×112 input) and multiplies by how often iResNet-50 runs it.
//!
//! ```text
//! cargo run -p face-nets --release --example profile_ops
//! ```
// burn-candle is deprecated in Burn 0.21 but is the Candle CPU backend compared here.
#![allow(deprecated)]

use std::time::{Duration, Instant};

use burn::backend::candle::Candle;
use burn::backend::NdArray;
use burn::nn::conv::Conv2dConfig;
use burn::nn::{BatchNormConfig, PReluConfig, PaddingConfig2d};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};

const BATCH: usize = 32;

fn time<B: Backend>(f: impl Fn() -> Tensor<B, 4>) -> Duration {
    let _ = f().into_data();
    let reps = 3;
    let t = Instant::now();
    for _ in 0..reps {
        let _ = f().into_data();
    }
    t.elapsed() / reps
}

fn profile<B: Backend>(name: &str) {
    let d = B::Device::default();
    // (channels, side, 3×3 stride-1 convs, first conv of the stage at stride 2 from (c/2, 2·side))
    // iResNet-50 blocks per stage: 3, 4, 14, 3; each block: 2 convs, 3 BN, 1 PReLU.
    let stages = [
        (64usize, 56usize, 3usize),
        (128, 28, 4),
        (256, 14, 14),
        (512, 7, 3),
    ];
    let (mut conv_total, mut other_total) = (Duration::ZERO, Duration::ZERO);
    println!("{name}: per-stage times at batch {BATCH} (one op; × count in iResNet-50)");
    for (c, s, blocks) in stages {
        let x = Tensor::<B, 4>::random([BATCH, c, s, s], Distribution::Default, &d);
        let conv = Conv2dConfig::new([c, c], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_bias(false)
            .init::<B>(&d);
        let bn = BatchNormConfig::new(c).init::<B>(&d);
        let prelu = PReluConfig::new().with_num_parameters(c).init::<B>(&d);
        let t_conv = time(|| conv.forward(x.clone()));
        let t_bn = time(|| bn.forward(x.clone()));
        let t_prelu = time(|| prelu.forward(x.clone()));
        let t_add = time(|| x.clone() + x.clone());
        let gflop = 2.0 * (BATCH * c * c * 9 * s * s) as f64 / 1e9;
        println!(
            "  {c:>3} ch @ {s:>2}²: conv3×3 {t_conv:>10.2?} ({:.1} GFLOP/s), BN {t_bn:.2?}, PReLU {t_prelu:.2?}, add {t_add:.2?}",
            gflop / t_conv.as_secs_f64()
        );
        let n_conv = 2 * blocks as u32;
        conv_total += t_conv * n_conv;
        other_total += t_bn * (3 * blocks as u32) + t_prelu * blocks as u32 + t_add * blocks as u32;
    }
    println!(
        "  ≈ iResNet-50 body: 3×3 convolutions {conv_total:.2?}, BN + PReLU + add {other_total:.2?} ({:.0}% convolution)",
        100.0 * conv_total.as_secs_f64() / (conv_total + other_total).as_secs_f64()
    );
}

fn main() {
    profile::<NdArray<f32>>("ndarray");
    profile::<Candle<f32, i64>>("candle");
}

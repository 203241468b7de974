//! Forward throughput at batch 32 of iResNet-50 and MobileFaceNet (112×112, eval mode) on the
//! CPU backends: NdArray (SIMD, rayon), Candle, and Flex (Burn's im2col + GEMM CPU backend). The anchor, onnxruntime on the same
//! networks exported by tools/reference_nets.py, is measured by tools/bench_nets_onnxruntime.py
//! in the same sitting; docs/BENCHMARKS.md has the ratios.
//!
//! NdArray runs the fused fast path (`face_nets::ops`), the other two Burn's own convolutions.
//! `FACEKIT_BENCH_NETS=iresnet50,mbf` picks networks (default both),
//! `FACEKIT_BENCH_BACKENDS=ndarray,candle,flex` backends (default all three).
// burn-candle is marked deprecated in Burn 0.21 but is the Candle CPU backend the parity
// requirement names; it stays until Burn drops it.
#![allow(deprecated)]

use burn::backend::candle::Candle;
use burn::backend::{Flex, NdArray};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use face_nets::{IResNetConfig, MobileFaceNetConfig};

const BATCH: usize = 32;

fn run<B: Backend>(c: &mut Criterion, backend: &str, nets: &[String]) {
    let device = B::Device::default();
    let x = Tensor::<B, 4>::random([BATCH, 3, 112, 112], Distribution::Normal(0.0, 0.5), &device);
    let mut group = c.benchmark_group(format!("forward_b{BATCH}"));
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    if nets.iter().any(|n| n == "iresnet50") {
        let m = IResNetConfig::r50().init::<B>(&device);
        group.bench_function(format!("iresnet50/{backend}"), |b| {
            b.iter(|| m.forward(x.clone()).into_data())
        });
    }
    if nets.iter().any(|n| n == "mbf") {
        let m = MobileFaceNetConfig::mbf().init::<B>(&device);
        group.bench_function(format!("mbf/{backend}"), |b| {
            b.iter(|| m.forward(x.clone()).into_data())
        });
    }
    group.finish();
}

fn forward(c: &mut Criterion) {
    face_nets::keep_freed_memory();
    let nets: Vec<String> = std::env::var("FACEKIT_BENCH_NETS")
        .unwrap_or_else(|_| "iresnet50,mbf".into())
        .split(',')
        .map(str::to_owned)
        .collect();
    let backends = std::env::var("FACEKIT_BENCH_BACKENDS").unwrap_or_else(|_| "ndarray,candle,flex".into());
    let wanted = |b: &str| backends.split(',').any(|x| x.trim() == b);
    if wanted("ndarray") {
        run::<NdArray<f32>>(c, "ndarray", &nets);
    }
    if wanted("candle") {
        run::<Candle<f32, i64>>(c, "candle", &nets);
    }
    if wanted("flex") {
        run::<Flex<f32>>(c, "flex", &nets);
    }
}

criterion_group!(benches, forward);
criterion_main!(benches);

//! Pretraining throughput of LAFS with ViT-Tiny on 112-pixel faces (DINO head with 65 536
//! prototypes, 2 global views of 49 landmark tokens + 6 local views of 9), batch 16, on the CPU
//! backends: view building alone, one optimizer step on prebuilt views, and both together.
//! The anchor is `tools/bench_ssl_torch.py` (the same model and step in PyTorch), run in the same
//! sitting.

#[path = "../tests/ssl/common.rs"]
mod common;

use burn::backend::{Autodiff, NdArray};
use burn::tensor::backend::AutodiffBackend;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use face_ssl::{Face, PretrainConfig, Pretrainer, Session};

const BATCH: usize = 16;

fn faces() -> Vec<Face> {
    let all: Vec<Face> = common::bundled_faces().into_iter().map(|b| b.face).collect();
    all.into_iter().cycle().take(BATCH).collect()
}

fn step_bench<B: AutodiffBackend>(c: &mut Criterion, name: &str, device: B::Device) {
    let config = PretrainConfig::lafs();
    let faces = faces();
    let trainer = Pretrainer::<B>::new(config.clone(), device.clone()).expect("config");
    let indices: Vec<usize> = (0..BATCH).collect();
    let views = trainer.batch_views(&faces, &indices, 1, 0).expect("views");
    let mut session = Session::<B>::new(&config, &device, BATCH, 1000).expect("session");
    let mut group = c.benchmark_group("pretrain");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(format!("step/{name}"), |b| {
        b.iter(|| session.step(&views, 1).expect("step"))
    });
    let mut step = 0u64;
    group.bench_function(format!("views+step/{name}"), |b| {
        b.iter(|| {
            step += 1;
            let v = trainer.batch_views(&faces, &indices, 1, step).expect("views");
            session.step(&v, 1).expect("step")
        })
    });
    group.finish();
}

fn views(c: &mut Criterion) {
    let config = PretrainConfig::lafs();
    let faces = faces();
    let trainer = Pretrainer::<Autodiff<NdArray<f32>>>::new(config, Default::default()).expect("config");
    let indices: Vec<usize> = (0..BATCH).collect();
    let mut group = c.benchmark_group("pretrain");
    group.sample_size(20);
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut step = 0u64;
    group.bench_function("views", |b| {
        b.iter(|| {
            step += 1;
            trainer.batch_views(&faces, &indices, 1, step).expect("views")
        })
    });
    group.finish();
}

fn ndarray(c: &mut Criterion) {
    // As `facekit pretrain` does (glibc: freed blocks stay mapped).
    face_nets::keep_freed_memory();
    step_bench::<Autodiff<NdArray<f32>>>(c, "ndarray", Default::default());
}

// burn-candle is marked deprecated in Burn 0.21 but has the faster CPU matmul here.
#[allow(deprecated)]
fn candle(c: &mut Criterion) {
    step_bench::<Autodiff<burn::backend::Candle<f32, i64>>>(c, "candle", Default::default());
}

criterion_group!(benches, views, ndarray, candle);
criterion_main!(benches);

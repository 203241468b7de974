//! Distillation cost on the CPU at batch 32, split the way a run spends it:
//! - `student_step/{ndarray,candle}`: one optimizer step of the default student (iResNet-18,
//!   width 16, 128 features, 112 px; multitask head; joint loss; AdamW) — per epoch, per image;
//! - `data/augment_b32`: building the batch (augmentation + normalisation of in-memory crops);
//! - `teachers/b32`: both real teachers on 32 aligned crops (NdArray) — once per image, when the
//!   target cache is built.
//!
//! The anchor is `tools/bench_distill_torch.py` (the same student, loss and optimizer in PyTorch
//! on 2 CPU threads), run in the same sitting; docs/BENCHMARKS.md has the ratios and shares.
//!
//! Built with `--features cuda`, `student_step/cuda_b32` and `teachers/both_b32/cuda` run the
//! same work on the first GPU (`tools/gpu_check.sh`; the anchor is then
//! `bench_distill_torch.py --device cuda`).
#![allow(deprecated)]

use std::path::PathBuf;

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use face_distill::config::DistillConfig;
use face_distill::data::{augmentation, DistillBatch, FaceSet, Targets};
use face_distill::trainer::distill_loss;
use face_nets::{CandleTrain, FaceModel, NdArrayTrain};
use face_teachers::{
    default_models_dir, AgeGenderTeacher, DlibAgeGenderTeacher, FaceRef, FrFeatureTeacher, IdentityTeacher,
};
use image::RgbImage;

const BATCH: usize = 32;

fn crops(size: u32) -> Vec<RgbImage> {
    // FACEKIT_ROOT: the repository on a machine the binary was carried to (tools/gpu_check.sh).
    let root = std::env::var_os("FACEKIT_ROOT")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let dir = root.join("crates/face-teachers/tests/fixtures/crops");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixture crops")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(&format!("_{size}.png")))
        .collect();
    files.sort();
    files
        .iter()
        .cycle()
        .take(BATCH)
        .map(|p| image::open(p).expect("crop").to_rgb8())
        .collect()
}

fn face_set() -> FaceSet {
    let images = crops(112);
    let n = images.len();
    let targets = Targets {
        dim: 512,
        embeddings: (0..n * 512).map(|i| ((i % 7) as f32 - 3.0) / 40.0).collect(),
        age_bins: (0..81).map(|i| i as f32).collect(),
        age_probs: vec![1.0 / 81.0; n * 81],
        expected_age: vec![40.0; n],
        p_male: vec![0.5; n],
    };
    FaceSet::new((0..n).map(|i| format!("f{i}")).collect(), images, targets, None).expect("set")
}

fn student_step<B: AutodiffBackend>(c: &mut Criterion, name: &str) {
    use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
    let device = B::Device::default();
    let config = DistillConfig::default();
    let set = face_set();
    let rows: Vec<usize> = (0..BATCH).collect();
    let batch = DistillBatch::<B>::new(&set, &rows, None, &face_data::Normalize::arcface(), &device)
        .expect("bundled faces");
    let bins = Tensor::<B, 1>::from_data(TensorData::new(set.targets().age_bins.clone(), [81]), &device);
    let mut model = Some(
        config
            .model_config(512, &set.targets().age_bins)
            .init::<B>(&device)
            .expect("student"),
    );
    let mut optim = AdamWConfig::new().init::<B, FaceModel<B>>();
    let mut group = c.benchmark_group("student_step");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(format!("{name}_b{BATCH}"), |b| {
        b.iter(|| {
            let m = model.take().expect("model");
            let (loss, _) = distill_loss(&config, &m, &batch, bins.clone());
            let grads = GradientsParams::from_grads(loss.backward(), &m);
            let m = optim.step(1e-3, m, grads);
            // Wait for the update (lazy backends) by reading one value back.
            let _ = m
                .head
                .gender
                .forward(Tensor::zeros([1, 128], &device))
                .into_data();
            model = Some(m);
        })
    });
    group.finish();
}

fn data(c: &mut Criterion) {
    let set = face_set();
    let rows: Vec<usize> = (0..BATCH).collect();
    let pipe = augmentation(&DistillConfig::default().data.augment, 112).expect("augmentation on");
    let mut group = c.benchmark_group("data");
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut epoch = 0;
    group.bench_function(format!("augment_b{BATCH}"), |b| {
        b.iter(|| {
            epoch += 1;
            face_distill::data::image_batch(
                &set,
                &rows,
                Some((&pipe, 0, epoch, 0)),
                &face_data::Normalize::arcface(),
            )
        })
    });
    group.finish();
}

fn teachers<B: burn::tensor::backend::Backend>(c: &mut Criterion, name: &str) {
    let device = B::Device::default();
    let models = default_models_dir();
    let id = FrFeatureTeacher::<B>::load(&models, &device).expect("fr_feature");
    let ag = DlibAgeGenderTeacher::<B>::load(&models, &device).expect("age/gender");
    let images = crops(112);
    let template = face_data::FaceTemplate::arcface(112).expect("template");
    let lm: [[f32; 2]; 5] = std::array::from_fn(|j| template.points[j]);
    let faces: Vec<FaceRef<'_>> = images
        .iter()
        .map(|img| FaceRef {
            image: img,
            landmarks: lm,
            bbox: None,
        })
        .collect();
    let mut group = c.benchmark_group("teachers");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(format!("both_b{BATCH}/{name}"), |b| {
        b.iter(|| {
            let e = id.embed_faces(&faces, &device).expect("embed").into_data();
            let a = ag
                .predict_faces(&faces, &device)
                .expect("age/gender")
                .p_male
                .into_data();
            (e, a)
        })
    });
    group.finish();
}

fn all(c: &mut Criterion) {
    // As the `facekit` program and the quickstart do (glibc: freed blocks stay mapped).
    face_nets::keep_freed_memory();
    data(c);
    student_step::<NdArrayTrain>(c, "ndarray");
    student_step::<CandleTrain>(c, "candle");
    teachers::<burn::backend::NdArray>(c, "ndarray");
    #[cfg(feature = "cuda")]
    {
        student_step::<face_nets::runtime::CudaTrain>(c, "cuda");
        teachers::<burn::backend::Cuda<f32, i32>>(c, "cuda");
    }
}

criterion_group!(benches, all);
criterion_main!(benches);

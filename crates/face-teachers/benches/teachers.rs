//! Teacher throughput on the CPU backends (NdArray with SIMD + rayon, and Candle): the identity
//! teacher `fr_feature` at batch 1 and 32, `age-v1` and `gender-v1` at batch 32, on real
//! aligned crops (the parity fixtures), each ONNX file run by face-nets' executor. The anchor, onnxruntime on the same ONNX files and
//! batches, is `tools/bench_teachers_reference.py`, run in the same sitting; docs/BENCHMARKS.md
//! has the ratios.
// burn-candle is marked deprecated in Burn 0.21 but is the Candle CPU backend DESIGN.md names.
#![allow(deprecated)]

use std::path::Path;

use burn::backend::candle::Candle;
use burn::backend::NdArray;
use burn::tensor::backend::Backend;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use face_teachers::{
    default_models_dir, AgeGenderTeacher, DlibAgeGenderTeacher, FrFeatureTeacher, IdentityTeacher,
    SpecAgeGenderTeacher, SpecFile, SpecIdentityTeacher, DLIB_AGE_GENDER_SPEC, FR_FEATURE_SPEC,
};
use image::RgbImage;

fn crops(size: u32, n: usize) -> Vec<RgbImage> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/crops");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixture crops")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(&format!("_{size}.png")))
        .collect();
    files.sort();
    files
        .iter()
        .cycle()
        .take(n)
        .map(|p| image::open(p).expect("crop").to_rgb8())
        .collect()
}

fn run<B: Backend>(c: &mut Criterion, backend: &str) {
    let device = B::Device::default();
    let models = default_models_dir();
    let id = FrFeatureTeacher::<B>::load(&models, &device).expect("fr_feature");
    let ag = DlibAgeGenderTeacher::<B>::load(&models, &device).expect("age/gender");
    let mut group = c.benchmark_group("teachers");
    group.sample_size(10);
    for batch in [1usize, 32] {
        let c112 = crops(112, batch);
        let x = id
            .recipe()
            .prepare_aligned::<B>(&c112.iter().collect::<Vec<_>>(), &device)
            .expect("prepare");
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("fr_feature_b{batch}/{backend}"), |b| {
            b.iter(|| id.embed(&x).expect("embed").into_data())
        });
    }
    let (c64, c32) = (crops(64, 32), crops(32, 32));
    let a = ag
        .age_recipe()
        .prepare_aligned::<B>(&c64.iter().collect::<Vec<_>>(), &device)
        .expect("prepare");
    let g = ag
        .gender_recipe()
        .prepare_aligned::<B>(&c32.iter().collect::<Vec<_>>(), &device)
        .expect("prepare");
    group.throughput(Throughput::Elements(32));
    group.bench_function(format!("age_gender_b32/{backend}"), |b| {
        b.iter(|| {
            let out = ag.predict(&a, &g).expect("predict");
            (out.expected_age.into_data(), out.p_male.into_data())
        })
    });
    group.finish();
}

/// Loading a teacher from its spec on NdArray: reading and hashing the files (SHA-256),
/// parsing and compiling the graphs, the batching probe of a batch-1 graph, and the blank-face
/// run that checks the output widths. The anchor is onnxruntime's session creation on the same
/// files (`tools/bench_teachers_reference.py --load`).
fn load(c: &mut Criterion) {
    let models = default_models_dir();
    let device = Default::default();
    let mut group = c.benchmark_group("teachers_load");
    group.sample_size(10);
    let id = SpecFile::read(&models.join(FR_FEATURE_SPEC)).expect("bundled spec");
    group.bench_function("fr_feature_spec/ndarray", |b| {
        b.iter(|| {
            SpecIdentityTeacher::<NdArray<f32>>::load(&id, &device)
                .expect("load")
                .dim()
        })
    });
    let ag = SpecFile::read(&models.join(DLIB_AGE_GENDER_SPEC)).expect("bundled spec");
    group.bench_function("age_gender_spec/ndarray", |b| {
        b.iter(|| {
            SpecAgeGenderTeacher::<NdArray<f32>>::load(&ag, &device)
                .expect("load")
                .age_bins()
                .len()
        })
    });
    group.finish();
}

fn teachers(c: &mut Criterion) {
    face_nets::keep_freed_memory();
    run::<NdArray<f32>>(c, "ndarray");
    run::<Candle<f32, i64>>(c, "candle");
    load(c);
}

criterion_group!(benches, teachers);
criterion_main!(benches);

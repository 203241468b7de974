//! MTCNN detection throughput (whole cascade, facenet-pytorch's defaults) on bundled photos on
//! NdArray (SIMD + rayon): obama.jpg (910 × 1137, one face) and t1.jpg (group, 8 faces). The
//! anchor, facenet-pytorch 2.6.0's `MTCNN.detect` on CPU with the same images, is
//! `tools/bench_teachers_reference.py`, run in the same sitting; docs/BENCHMARKS.md has the ratios.

use std::path::Path;

use burn::backend::NdArray;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use face_detect::{Mtcnn, MtcnnConfig};

fn mtcnn(c: &mut Criterion) {
    face_nets::keep_freed_memory();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let device = Default::default();
    let det =
        Mtcnn::<NdArray<f32>>::load(&root.join("models"), MtcnnConfig::default(), &device).expect("weights");
    let mut group = c.benchmark_group("mtcnn");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));
    for name in ["obama.jpg", "t1.jpg"] {
        let img = face_data::read_rgb(&root.join("data/faces").join(name)).expect("image");
        group.bench_function(format!("detect/{name}/ndarray"), |b| b.iter(|| det.detect(&img)));
    }
    group.finish();
}

criterion_group!(benches, mtcnn);
criterion_main!(benches);

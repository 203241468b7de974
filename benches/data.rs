//! Criterion bench of face-data's decode → align → normalise pipeline (112×112 ArcFace crops,
//! planar floats). The anchor is the same pipeline in Python — Pillow decode, scikit-image
//! `SimilarityTransform` + `warp`, numpy normalisation (and OpenCV's `warpAffine` as a second,
//! faster anchor) — run by `tools/bench_align_python.py` on the very files this bench writes
//! to `out/bench-faces/` (see docs/BENCHMARKS.md).
//!
//! Inputs: `data/faces/obama.jpg` (910×1137) and 16 LFW-like 250×250 JPEG crops of it at
//! different offsets and scales, with the hand-marked landmarks moved accordingly.

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use face_data::{align_batch, AlignSpec, FaceJob, ImageSource};
use image::codecs::jpeg::JpegEncoder;

/// The hand-marked landmarks of data/faces/obama.jpg (data/faces/landmarks.json).
fn obama_landmarks() -> Vec<[f32; 2]> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/faces/landmarks.json");
    let all: std::collections::HashMap<String, Vec<[f32; 2]>> =
        serde_json::from_str(&std::fs::read_to_string(path).expect("landmarks.json"))
            .expect("landmarks.json");
    all["obama.jpg"].clone()
}

/// Writes the bench inputs and a manifest the Python anchor reads.
fn inputs() -> (Vec<FaceJob>, Vec<FaceJob>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src_path = root.join("data/faces/obama.jpg");
    let src = face_data::read_rgb(&src_path).expect("data/faces/obama.jpg");
    let obama_lm = obama_landmarks();
    let out = root.join("out/bench-faces");
    std::fs::create_dir_all(&out).expect("create out/bench-faces");
    let mut small = Vec::new();
    let mut manifest = Vec::new();
    for i in 0..16u32 {
        // Scale so the inter-ocular distance is 60–100 px (LFW-like), then a 250×250 window.
        let scale = 0.6 + 0.04 * i as f32;
        let (w, h) = (
            (src.width() as f32 * scale) as u32,
            (src.height() as f32 * scale) as u32,
        );
        let resized = image::imageops::resize(&src, w, h, image::imageops::FilterType::Triangle);
        let (cx, cy) = (494.0 * scale, 270.0 * scale);
        let x0 = (cx - 125.0 + (i % 4) as f32 * 6.0 - 9.0).clamp(0.0, (w - 250) as f32) as u32;
        let y0 = (cy - 125.0 + (i / 4) as f32 * 6.0 - 9.0).clamp(0.0, (h - 250) as f32) as u32;
        let crop = image::imageops::crop_imm(&resized, x0, y0, 250, 250).to_image();
        let path = out.join(format!("crop_{i:02}.jpg"));
        let mut bytes = Vec::new();
        JpegEncoder::new_with_quality(&mut bytes, 90)
            .encode_image(&crop)
            .expect("encode");
        std::fs::write(&path, &bytes).expect("write crop");
        // Resize maps pixel centres: x' = (x + 0.5)·s − 0.5.
        let lm: Vec<[f32; 2]> = obama_lm
            .iter()
            .map(|p| {
                [
                    (p[0] + 0.5) * scale - 0.5 - x0 as f32,
                    (p[1] + 0.5) * scale - 0.5 - y0 as f32,
                ]
            })
            .collect();
        manifest.push(serde_json::json!({"path": path, "landmarks": lm}));
        small.push(FaceJob {
            source: ImageSource::File(path),
            landmarks: lm,
        });
    }
    let large = vec![
        FaceJob {
            source: ImageSource::File(src_path.clone()),
            landmarks: obama_lm.clone()
        };
        4
    ];
    let m = serde_json::json!({
        "small": manifest,
        "large": {"path": src_path, "landmarks": obama_lm, "repeat": 4},
    });
    std::fs::write(
        out.join("manifest.json"),
        serde_json::to_string_pretty(&m).expect("json"),
    )
    .expect("manifest");
    (small, large)
}

fn bench(c: &mut Criterion) {
    let (small, large) = inputs();
    let spec = AlignSpec::arcface_112().expect("spec");
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let mut g = c.benchmark_group("decode_align_normalise");
    g.sample_size(20);
    for (name, jobs) in [("lfw_250px", &small), ("photo_910x1137", &large)] {
        g.throughput(Throughput::Elements(jobs.len() as u64));
        g.bench_function(format!("{name}/1_thread"), |b| {
            b.iter(|| {
                let batch = one.install(|| align_batch(jobs, &spec)).expect("batch");
                assert!(batch.failures.is_empty());
                batch
            })
        });
        g.bench_function(format!("{name}/all_cores"), |b| {
            b.iter(|| {
                let batch = align_batch(jobs, &spec).expect("batch");
                assert!(batch.failures.is_empty());
                batch
            })
        });
    }
    g.finish();
    // The stages alone, single-threaded, to say where the time goes.
    let bytes: Vec<u8> = std::fs::read(match &small[0].source {
        ImageSource::File(p) => p.clone(),
        ImageSource::Bytes { name, .. } => PathBuf::from(name),
    })
    .expect("read");
    let img = face_data::decode_rgb(&bytes, Path::new("crop")).expect("decode");
    let mut s = c.benchmark_group("stages_lfw_250px");
    s.bench_function("decode", |b| {
        b.iter(|| face_data::decode_rgb(&bytes, Path::new("crop")).expect("decode"))
    });
    s.bench_function("align_normalise", |b| {
        b.iter(|| {
            face_data::align_face(&img, &small[0].landmarks, &spec.template, &spec.normalize, false)
                .expect("align")
        })
    });
    s.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! The bundled teachers as face-nets' executor compiles them: the fused programs, the
//! batch-1 identity graph running whole batches, and the teachers on Candle (Burn's own ops,
//! against the same onnxruntime outputs as `teachers_parity` checks on NdArray).
#![allow(deprecated)]

use std::path::{Path, PathBuf};

use burn::backend::candle::Candle;
use burn::backend::NdArray;
use face_nets::onnx::OnnxModel;
use face_teachers::{
    default_models_dir, AgeGenderTeacher, DlibAgeGenderTeacher, FrFeatureTeacher, IdentityTeacher,
};
use image::RgbImage;

use crate::{max_abs, values};

type Nd = NdArray<f32>;
type Cd = Candle<f32, i64>;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A reference face: its id and onnxruntime's raw embedding, age and gender probabilities.
struct Reference {
    id: String,
    embedding: Vec<f32>,
    age: Vec<f32>,
    gender: Vec<f32>,
}

fn reference() -> Vec<Reference> {
    let text = std::fs::read(fixtures().join("teachers_reference.json")).unwrap();
    let r: serde_json::Value = serde_json::from_slice(&text).unwrap();
    let floats = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    r["faces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| Reference {
            id: f["face"].as_str().unwrap().to_string(),
            embedding: floats(&f["embedding"]),
            age: floats(&f["age_probs"]),
            gender: floats(&f["gender_probs"]),
        })
        .collect()
}

fn crops(faces: &[Reference], size: u32) -> Vec<RgbImage> {
    faces
        .iter()
        .map(|f| {
            image::open(fixtures().join(format!("crops/{}_{size}.png", f.id)))
                .unwrap()
                .to_rgb8()
        })
        .collect()
}

#[test]
fn the_bundled_files_compile_to_fused_programs() {
    let dev = Default::default();
    let load = |name: &str| OnnxModel::<Nd>::load(default_models_dir().join(name), &dev).unwrap();
    let id = load("fr_feature.onnx");
    // 50 Conv, 33 PRelu, 12 Add, 1 Reshape: every PRelu and residual Add folds into its
    // convolution. The file declares [1, 3, 112, 112]; its one batch-1 reshape copies the
    // batch axis instead, as the load-time probe confirmed, so batches run at once.
    assert_eq!(id.steps(), 51);
    assert_eq!(id.input().dims, vec![Some(1), Some(3), Some(112), Some(112)]);
    assert!(id.runs_batched());
    // 59 operators (and 24 constants): each of the 11 Conv takes its Mul/Add affine pair, the
    // residual Add where there is one, and its Relu: 23 steps, the fusion the retired generated
    // code had.
    let age = load("age-v1.onnx");
    assert_eq!(age.input().dims, vec![None, Some(3), Some(64), Some(64)]);
    assert_eq!(age.output("probabilities").unwrap().dims, vec![None, Some(81)]);
    assert_eq!(age.steps(), 23);
    let gender = load("gender-v1.onnx");
    // 26 operators: 4 fused convolutions, 2 pools, 2 Flatten, 2 Gemm, Relu, 2 Mul, Softmax.
    assert_eq!(gender.steps(), 14);
}

#[test]
fn identity_teacher_on_candle_matches_onnxruntime() {
    let dev = Default::default();
    let faces = reference();
    let c112 = crops(&faces, 112);
    let teacher = FrFeatureTeacher::<Cd>::load(&default_models_dir(), &dev).unwrap();
    let x = teacher
        .recipe()
        .prepare_aligned::<Cd>(&c112.iter().collect::<Vec<_>>(), &dev)
        .unwrap();
    let raw = values(teacher.raw_embeddings(&x).unwrap());
    let mut worst = 0.0f32;
    for (k, f) in faces.iter().enumerate() {
        let scale = f.embedding.iter().map(|v| v.abs()).fold(0.0, f32::max);
        worst = worst.max(max_abs(&raw[k * 512..(k + 1) * 512], &f.embedding) / scale);
    }
    eprintln!(
        "fr_feature on candle, {} faces: max |Δ|/max vs onnxruntime {worst:.2e}",
        faces.len()
    );
    assert!(worst <= 1e-4, "{worst}");
}

#[test]
fn age_gender_teacher_on_candle_matches_onnxruntime() {
    // burn-candle's pools have no padding and cannot leave it out of the count; the age
    // network's pools need both, so they pad explicitly (face_nets::ops::avg_pool2d).
    let dev = Default::default();
    let faces = reference();
    let (c64, c32) = (crops(&faces, 64), crops(&faces, 32));
    let teacher = DlibAgeGenderTeacher::<Cd>::load(&default_models_dir(), &dev).unwrap();
    let a = teacher
        .age_recipe()
        .prepare_aligned::<Cd>(&c64.iter().collect::<Vec<_>>(), &dev)
        .unwrap();
    let g = teacher
        .gender_recipe()
        .prepare_aligned::<Cd>(&c32.iter().collect::<Vec<_>>(), &dev)
        .unwrap();
    let out = teacher.predict(&a, &g).unwrap();
    let (pa, pm) = (values(out.age_probs), values(out.p_male));
    let (mut wa, mut wg) = (0.0f32, 0.0f32);
    for (k, f) in faces.iter().enumerate() {
        wa = wa.max(max_abs(&pa[k * 81..(k + 1) * 81], &f.age));
        wg = wg.max((pm[k] - f.gender[1]).abs());
    }
    eprintln!("age/gender on candle: max |Δ| age probs {wa:.2e}, P(male) {wg:.2e}");
    assert!(wa <= 1e-4 && wg <= 1e-4, "age {wa}, gender {wg}");
}

//! The real teachers (their ONNX files run by face-nets' executor) against onnxruntime on the same crops (fixture
//! written by tools/reference_teachers.py), our alignment against the reference crops, and
//! real-face sanity checks with the bundled images.

use std::path::{Path, PathBuf};

use burn::backend::NdArray;
use face_teachers::{
    default_models_dir, AgeGenderTeacher, DlibAgeGenderTeacher, FaceRef, FrFeatureTeacher, IdentityTeacher,
    TeacherError,
};
use image::RgbImage;

use crate::{max_abs, values};

type B = NdArray<f32>;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn faces_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/faces")
}

struct Face {
    id: String,
    image: String,
    landmarks: [[f32; 2]; 5],
    embedding: Vec<f32>,
    embedding_unit: Vec<f32>,
    age_probs: Vec<f32>,
    expected_age: f32,
    p_male: f32,
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn reference() -> Vec<Face> {
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("teachers_reference.json")).unwrap()).unwrap();
    r["faces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let lm: Vec<Vec<f32>> = f["landmarks"].as_array().unwrap().iter().map(floats).collect();
            Face {
                id: f["face"].as_str().unwrap().into(),
                image: f["image"].as_str().unwrap().into(),
                landmarks: std::array::from_fn(|j| [lm[j][0], lm[j][1]]),
                embedding: floats(&f["embedding"]),
                embedding_unit: floats(&f["embedding_unit"]),
                age_probs: floats(&f["age_probs"]),
                expected_age: f["expected_age"].as_f64().unwrap() as f32,
                p_male: floats(&f["gender_probs"])[1],
            }
        })
        .collect()
}

fn crop(face: &Face, size: u32) -> RgbImage {
    image::open(fixtures().join(format!("crops/{}_{size}.png", face.id)))
        .unwrap()
        .to_rgb8()
}

#[test]
fn identity_teacher_matches_onnxruntime() {
    let dev = Default::default();
    let teacher = FrFeatureTeacher::<B>::load(&default_models_dir(), &dev).unwrap();
    let faces = reference();
    assert!(faces.len() >= 30);
    let crops: Vec<RgbImage> = faces.iter().map(|f| crop(f, 112)).collect();
    let refs: Vec<&RgbImage> = crops.iter().collect();
    // One batch of all faces: the file's batch-1 reshape copies the batch axis (load-time probe).
    let input = teacher.recipe().prepare_aligned::<B>(&refs, &dev).unwrap();
    let raw = values(teacher.raw_embeddings(&input).unwrap());
    let unit = values(teacher.embed(&input).unwrap());
    let (mut worst_raw, mut worst_unit) = (0.0f32, 0.0f32);
    for (k, f) in faces.iter().enumerate() {
        let scale = f.embedding.iter().map(|v| v.abs()).fold(0.0, f32::max);
        worst_raw = worst_raw.max(max_abs(&raw[k * 512..(k + 1) * 512], &f.embedding) / scale);
        worst_unit = worst_unit.max(max_abs(&unit[k * 512..(k + 1) * 512], &f.embedding_unit));
    }
    println!("fr_feature: max |Δ| unit embedding {worst_unit:.2e}, raw (relative to max) {worst_raw:.2e}");
    assert!(worst_unit <= 1e-4, "unit embeddings differ by {worst_unit}");
    assert!(
        worst_raw <= 1e-4,
        "raw embeddings differ by {worst_raw} (relative)"
    );
}

#[test]
fn age_gender_teacher_matches_onnxruntime() {
    let dev = Default::default();
    let teacher = DlibAgeGenderTeacher::<B>::load(&default_models_dir(), &dev).unwrap();
    let faces = reference();
    let c64: Vec<RgbImage> = faces.iter().map(|f| crop(f, 64)).collect();
    let c32: Vec<RgbImage> = faces.iter().map(|f| crop(f, 32)).collect();
    let a = teacher
        .age_recipe()
        .prepare_aligned::<B>(&c64.iter().collect::<Vec<_>>(), &dev)
        .unwrap();
    let g = teacher
        .gender_recipe()
        .prepare_aligned::<B>(&c32.iter().collect::<Vec<_>>(), &dev)
        .unwrap();
    let out = teacher.predict(&a, &g).unwrap();
    let (probs, ages, males) = (
        values(out.age_probs),
        values(out.expected_age),
        values(out.p_male),
    );
    let (mut wp, mut wa, mut wg) = (0.0f32, 0.0f32, 0.0f32);
    for (k, f) in faces.iter().enumerate() {
        wp = wp.max(max_abs(&probs[k * 81..(k + 1) * 81], &f.age_probs));
        wa = wa.max((ages[k] - f.expected_age).abs());
        wg = wg.max((males[k] - f.p_male).abs());
    }
    println!("age/gender: max |Δ| age probs {wp:.2e}, expected age {wa:.2e} y, P(male) {wg:.2e}");
    assert!(wa <= 0.05, "expected age differs by {wa} years");
    assert!(wg <= 1e-4, "P(male) differs by {wg}");
    assert!(wp <= 1e-4, "age distribution differs by {wp}");
}

/// Our crops (face-data's alignment, our JPEG decoder) against the reference crops (scikit-image
/// warp of Pillow's decode): PNG sources give the same pixels up to a rare rounding tie; JPEG
/// sources also carry decoder differences. The teachers' outputs on our crops stay close.
#[test]
fn our_alignment_reproduces_the_reference_crops() {
    let dev = Default::default();
    let teacher = FrFeatureTeacher::<B>::load(&default_models_dir(), &dev).unwrap();
    let faces = reference();
    let mut images = std::collections::HashMap::new();
    let mut worst_cos = 1.0f32;
    for f in &faces {
        let img = images
            .entry(f.image.clone())
            .or_insert_with(|| face_data::read_rgb(&faces_dir().join(&f.image)).unwrap());
        let template = teacher.recipe().template().unwrap();
        let m = template.transform_for(&f.landmarks).unwrap();
        let ours = face_data::warp_affine(img, &m, 112, 112).unwrap();
        let theirs = crop(f, 112);
        let mean_diff = ours
            .as_raw()
            .iter()
            .zip(theirs.as_raw())
            .map(|(a, b)| (f32::from(*a) - f32::from(*b)).abs())
            .sum::<f32>()
            / ours.as_raw().len() as f32;
        let limit = if f.image.ends_with(".png") { 0.01 } else { 1.5 };
        assert!(mean_diff <= limit, "{}: mean |Δ pixel| {mean_diff}", f.id);
        let e = values(
            teacher
                .embed_faces(
                    &[FaceRef {
                        image: img,
                        landmarks: f.landmarks,
                        bbox: None,
                    }],
                    &dev,
                )
                .unwrap(),
        );
        let cos: f32 = e.iter().zip(&f.embedding_unit).map(|(a, b)| a * b).sum();
        worst_cos = worst_cos.min(cos);
    }
    println!("end-to-end embeddings vs reference: min cosine {worst_cos:.5}");
    assert!(worst_cos > 0.99, "min cosine {worst_cos}");
}

#[test]
fn same_person_scores_higher_than_other_people() {
    let faces = reference();
    let dot = |a: &[f32], b: &[f32]| -> f32 { a.iter().zip(b).map(|(x, y)| x * y).sum() };
    let obama: Vec<&Face> = faces.iter().filter(|f| f.image.starts_with("obama")).collect();
    let others: Vec<&Face> = faces.iter().filter(|f| !f.image.starts_with("obama")).collect();
    assert_eq!(obama.len(), 5);
    // Every obama image's nearest neighbour among all other faces is another obama image.
    for a in &obama {
        let best_same = obama
            .iter()
            .filter(|b| b.id != a.id)
            .map(|b| dot(&a.embedding_unit, &b.embedding_unit))
            .fold(-1.0, f32::max);
        let best_other = others
            .iter()
            .map(|b| dot(&a.embedding_unit, &b.embedding_unit))
            .fold(-1.0, f32::max);
        assert!(
            best_same > best_other,
            "{}: best obama {best_same} vs best other {best_other}",
            a.id
        );
    }
    // Whole faces (obama_partial_face2 has half the crop outside the photo; see docs): every
    // genuine pair beats every obama-vs-other pair.
    let whole: Vec<&&Face> = obama
        .iter()
        .filter(|f| f.image != "obama_partial_face2.jpg")
        .collect();
    let min_genuine = whole
        .iter()
        .enumerate()
        .flat_map(|(i, a)| {
            whole[i + 1..]
                .iter()
                .map(move |b| dot(&a.embedding_unit, &b.embedding_unit))
        })
        .fold(1.0, f32::min);
    let max_impostor = whole
        .iter()
        .flat_map(|a| {
            others
                .iter()
                .map(move |b| dot(&a.embedding_unit, &b.embedding_unit))
        })
        .fold(-1.0, f32::max);
    println!("obama: min genuine {min_genuine:.3}, max impostor {max_impostor:.3}");
    assert!(
        min_genuine > max_impostor,
        "min genuine {min_genuine} vs max impostor {max_impostor}"
    );
}

#[test]
fn gender_of_the_bundled_people() {
    let faces = reference();
    for f in &faces {
        let male =
            f.image.starts_with("obama") || f.image.starts_with("biden") || f.image.starts_with("Tom_Hanks");
        let female = f.image == "astronaut.png"; // Eileen Collins
        if male {
            assert!(f.p_male > 0.5, "{}: P(male) {}", f.id, f.p_male);
        }
        if female {
            assert!(f.p_male < 0.5, "{}: P(male) {}", f.id, f.p_male);
        }
    }
}

#[test]
fn wrong_inputs_are_refused() {
    let dev = Default::default();
    let dir = default_models_dir();
    let id = FrFeatureTeacher::<B>::load(&dir, &dev).unwrap();
    let ag = DlibAgeGenderTeacher::<B>::load(&dir, &dev).unwrap();
    let c64 = RgbImage::new(64, 64);
    let c32 = RgbImage::new(32, 32);
    let age_batch = ag.age_recipe().prepare_aligned::<B>(&[&c64], &dev).unwrap();
    let gender_batch = ag.gender_recipe().prepare_aligned::<B>(&[&c32], &dev).unwrap();
    // An age crop fed to the identity teacher, and the two age/gender batches swapped.
    assert!(matches!(
        id.embed(&age_batch),
        Err(TeacherError::RecipeMismatch { .. })
    ));
    assert!(matches!(
        ag.predict(&gender_batch, &age_batch),
        Err(TeacherError::RecipeMismatch { .. })
    ));
    // A 64 px crop for the 112 px recipe.
    let e = id.recipe().prepare_aligned::<B>(&[&c64], &dev).unwrap_err();
    assert!(
        e.to_string().contains("64×64") && e.to_string().contains("112×112"),
        "{e}"
    );
    assert!(matches!(
        id.recipe().prepare::<B>(&[], &dev),
        Err(TeacherError::EmptyBatch)
    ));
    // Degenerate landmarks.
    let img = RgbImage::new(50, 50);
    assert!(id
        .embed_faces(
            &[FaceRef {
                image: &img,
                landmarks: [[3.0, 3.0]; 5],
                bbox: None,
            }],
            &dev
        )
        .is_err());
}

#[test]
fn missing_or_foreign_weights_are_reported() {
    let dev = Default::default();
    let tmp = std::env::temp_dir().join(format!("facekit-teachers-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let e = FrFeatureTeacher::<B>::load(&tmp, &dev).unwrap_err();
    assert!(
        matches!(e, TeacherError::MissingModel { .. }) && e.to_string().contains("fr_feature.onnx"),
        "{e}"
    );
    // Another valid ONNX file under the teacher's name is not the teacher.
    std::fs::copy(
        default_models_dir().join("gender-v1.onnx"),
        tmp.join("fr_feature.onnx"),
    )
    .unwrap();
    let e = FrFeatureTeacher::<B>::load(&tmp, &dev).unwrap_err();
    assert!(matches!(e, TeacherError::ModelVersion { .. }), "{e}");
    assert!(
        e.to_string().contains("fr_feature.onnx") && e.to_string().contains("87aacdfe"),
        "{e}"
    );
    std::fs::remove_dir_all(&tmp).unwrap();
}

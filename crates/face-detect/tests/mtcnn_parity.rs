//! MTCNN against facenet-pytorch 2.6.0 (fixture written by tools/reference_teachers.py):
//! the three networks on a fixed input, then the whole cascade on every bundled image.
// burn-candle is marked deprecated in Burn 0.21; checked here because MTCNN runs on it too.
#![allow(deprecated)]

use std::path::{Path, PathBuf};

use burn::backend::candle::Candle;
use burn::backend::NdArray;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use face_detect::{DetectError, Mtcnn, MtcnnConfig, ONet, PNet, RNet};

type B = NdArray<f32>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn reference() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mtcnn_reference.json");
    serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("json")
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// x[i] = 0.5·sin(0.37·i) over the flattened tensor (as the reference script).
fn det_input<B: Backend>(shape: [usize; 4]) -> Tensor<B, 4> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|i| (0.5 * (0.37 * i as f64).sin()) as f32).collect();
    Tensor::from_data(TensorData::new(v, shape), &Default::default())
}

fn max_diff(ours: Vec<f32>, theirs: &[f32]) -> f32 {
    assert_eq!(ours.len(), theirs.len());
    ours.iter()
        .zip(theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

#[test]
fn networks_match_pytorch() {
    networks_match_pytorch_on::<NdArray<f32>>();
}

/// Candle has no ceil-mode pooling; `face_nets::ops::max_pool2d` pads with −∞ there instead.
#[test]
fn networks_match_pytorch_on_candle() {
    networks_match_pytorch_on::<Candle<f32, i64>>();
}

fn networks_match_pytorch_on<B: Backend>() {
    let r = reference();
    let dev = Default::default();
    let models = root().join("models");
    let shape = |n: &str| -> [usize; 4] {
        let s: Vec<usize> = r["nets"][n]["input_shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        [s[0], s[1], s[2], s[3]]
    };
    let out = |n: &str, k: usize| floats(&r["nets"][n]["outputs"][k]);

    let (pnet, report) = PNet::<B>::load(&models.join("pnet.pt"), &dev).unwrap();
    assert_eq!(report.applied.len(), 13, "{:?}", report.applied);
    let (reg, prob) = pnet.forward(det_input(shape("pnet")));
    let reg_d = max_diff(values(reg), &out("pnet", 0));
    // The reference's second output is the 2-class softmax; ours keeps the face class.
    let both = out("pnet", 1);
    let face: Vec<f32> = both[both.len() / 2..].to_vec();
    let prob_d = max_diff(values(prob), &face);
    assert!(reg_d < 1e-5 && prob_d < 1e-5, "P-Net: reg {reg_d}, prob {prob_d}");

    let (rnet, _) = RNet::<B>::load(&models.join("rnet.pt"), &dev).unwrap();
    let (reg, prob) = rnet.forward(det_input(shape("rnet")));
    let reg_d = max_diff(values(reg), &out("rnet", 0));
    let p: Vec<f32> = out("rnet", 1).chunks(2).map(|c| c[1]).collect();
    let prob_d = max_diff(values(prob), &p);
    assert!(reg_d < 1e-5 && prob_d < 1e-5, "R-Net: reg {reg_d}, prob {prob_d}");

    let (onet, _) = ONet::<B>::load(&models.join("onet.pt"), &dev).unwrap();
    let (reg, points, prob) = onet.forward(det_input(shape("onet")));
    let reg_d = max_diff(values(reg), &out("onet", 0));
    let pts_d = max_diff(values(points), &out("onet", 1));
    let p: Vec<f32> = out("onet", 2).chunks(2).map(|c| c[1]).collect();
    let prob_d = max_diff(values(prob), &p);
    assert!(
        reg_d < 1e-5 && pts_d < 1e-5 && prob_d < 1e-5,
        "O-Net: reg {reg_d}, points {pts_d}, prob {prob_d}"
    );
}

struct Want {
    boxes: Vec<Vec<f32>>,
    landmarks: Vec<Vec<f32>>,
    probs: Vec<f32>,
}

fn want(v: &serde_json::Value) -> Want {
    Want {
        boxes: v["boxes"].as_array().unwrap().iter().map(floats).collect(),
        landmarks: v["landmarks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_array().unwrap().iter().flat_map(floats).collect())
            .collect(),
        probs: floats(&v["probs"]),
    }
}

/// The bundled MTCNN with facenet-pytorch's defaults on NdArray.
fn detector() -> Mtcnn<B> {
    Mtcnn::<B>::load(
        &root().join("models"),
        MtcnnConfig::default(),
        &Default::default(),
    )
    .unwrap()
}

/// The reference images whose file name ends with `ext`, with their detections.
fn images_ending(r: &serde_json::Value, ext: &str) -> Vec<(String, Want)> {
    r["images"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(f, _)| f.ends_with(ext))
        .map(|(f, v)| (f.clone(), want(v)))
        .collect()
}

fn image_path(file: &str) -> PathBuf {
    match file.strip_prefix("fixtures/") {
        Some(f) => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(f),
        None => root().join("data/faces").join(file),
    }
}

/// Largest |Δ| between our face and the reference face `k` (box, landmarks).
fn diffs(det: &face_detect::Detection, w: &Want, k: usize) -> (f32, f32) {
    let db = det
        .bbox
        .iter()
        .zip(&w.boxes[k])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    let dl = det
        .landmarks
        .iter()
        .flatten()
        .zip(&w.landmarks[k])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    (db, dl)
}

/// Lossless images (the same pixels on both sides): every face, in the same order, within
/// 0.01 px and probabilities within 1e-4 of facenet-pytorch's `MTCNN(keep_all=True).detect`.
#[test]
fn detections_match_facenet_pytorch_on_identical_pixels() {
    let r = reference();
    let mtcnn = detector();
    let (mut faces, mut worst) = (0, 0.0f32);
    for (file, w) in images_ending(&r, ".png") {
        let got = mtcnn.detect(&face_data::read_rgb(&image_path(&file)).unwrap());
        assert_eq!(
            got.len(),
            w.boxes.len(),
            "{file}: {} faces vs facenet-pytorch's {}",
            got.len(),
            w.boxes.len()
        );
        for (k, det) in got.iter().enumerate() {
            let (db, dl) = diffs(det, &w, k);
            assert!(
                db <= 0.01 && dl <= 0.01,
                "{file} face {k}: box {:?} vs {:?}, landmarks Δ {dl}",
                det.bbox,
                w.boxes[k]
            );
            assert!(
                (det.score - w.probs[k]).abs() <= 1e-4,
                "{file} face {k}: p {} vs {}",
                det.score,
                w.probs[k]
            );
            worst = worst.max(db).max(dl);
            faces += 1;
        }
    }
    assert!(faces >= 8, "{faces}");
    println!("{faces} faces on lossless images: max |Δ| {worst:.5} px");
}

/// JPEG images: our decoder (zune-jpeg) and Pillow's (libjpeg-turbo) differ by a level here and
/// there, which moves boxes by up to ~2.5 px and can push a borderline candidate over the 0.7
/// threshold (re-encoding Pillow's pixels losslessly gives exact agreement, as on the PNGs above).
/// So: the confident faces (p ≥ 0.95) are the same, each within 3 px; the photos of face_recognition
/// (baseline JPEGs both decoders read alike) within 0.1 px.
#[test]
fn detections_match_facenet_pytorch_on_jpegs() {
    let r = reference();
    let mtcnn = detector();
    let (mut faces, mut worst) = (0, 0.0f32);
    for (file, w) in images_ending(&r, ".jpg") {
        let got = mtcnn.detect(&face_data::read_rgb(&image_path(&file)).unwrap());
        let tol = if file.starts_with("obama") || file.starts_with("biden") {
            0.1
        } else {
            3.0
        };
        // Every confident reference face has one of ours within `tol`, and vice versa.
        for k in (0..w.probs.len()).filter(|&k| w.probs[k] >= 0.95) {
            let (db, dl) = got
                .iter()
                .map(|d| diffs(d, &w, k))
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .unwrap_or((f32::MAX, f32::MAX));
            assert!(
                db <= tol && dl <= tol,
                "{file}: reference face {k} {:?} unmatched (Δ box {db}, landmarks {dl})",
                w.boxes[k]
            );
            worst = worst.max(db).max(dl);
            faces += 1;
        }
        for det in got.iter().filter(|d| d.score >= 0.95) {
            let db = (0..w.probs.len())
                .map(|k| diffs(det, &w, k).0)
                .fold(f32::MAX, f32::min);
            assert!(
                db <= tol,
                "{file}: our face {:?} (p {}) has no reference face within {tol} px",
                det.bbox,
                det.score
            );
        }
    }
    assert!(faces >= 30, "{faces}");
    println!("{faces} confident faces on JPEGs: max |Δ| {worst:.3} px");
}

#[test]
fn aligned_crop_puts_eyes_on_the_template() {
    let mtcnn = detector();
    // The insightface test image is already aligned to the ArcFace template at 112 × 112.
    let img = face_data::read_rgb(&root().join("data/faces/Tom_Hanks_54745.png")).unwrap();
    let faces = mtcnn.detect(&img);
    assert_eq!(faces.len(), 1);
    // MTCNN's landmarks land within a few pixels of the ArcFace template (eye centres as
    // MTCNN sees them on this crop sit ~5 px off insightface's detector's).
    for (p, t) in faces[0].landmarks.iter().zip(face_data::ARCFACE_112) {
        assert!(
            (p[0] - t[0]).abs() < 10.0 && (p[1] - t[1]).abs() < 10.0,
            "{p:?} vs template {t:?}"
        );
    }
    let crop = faces[0]
        .align(&img, &face_data::FaceTemplate::arcface(112).unwrap())
        .unwrap();
    assert_eq!(crop.dimensions(), (112, 112));
}

#[test]
fn bad_weights_are_reported() {
    let dev = Default::default();
    let missing = Mtcnn::<B>::load(Path::new("/nonexistent"), MtcnnConfig::default(), &dev).unwrap_err();
    assert!(matches!(missing, DetectError::MissingFile { .. }), "{missing}");
    assert!(missing.to_string().contains("pnet.pt"));
    // R-Net's file is not a P-Net.
    let wrong = PNet::<B>::load(&root().join("models/rnet.pt"), &dev).unwrap_err();
    assert!(
        matches!(wrong, DetectError::Weights { net: "pnet", .. }),
        "{wrong}"
    );
    let bad = MtcnnConfig {
        factor: 1.5,
        ..MtcnnConfig::default()
    };
    assert!(Mtcnn::<B>::load(&root().join("models"), bad, &dev).is_err());
}

#[test]
fn no_faces_in_a_blank_image() {
    let mtcnn = detector();
    assert!(mtcnn.detect(&image::RgbImage::new(64, 48)).is_empty());
    assert!(mtcnn.detect(&image::RgbImage::new(0, 0)).is_empty());
    // Smaller than one P-Net window at the first scale.
    assert!(mtcnn.detect(&image::RgbImage::new(10, 10)).is_empty());
}

/// A tight crop (the face's MTCNN box shrunk to 80 %, resized to 150 px: forehead and chin cut)
/// against the same face in the full photo. Without the padded pass the landmarks drift; with
/// `retry_padding` they land where the full-photo landmarks fall in the crop. On an ordinary
/// photo the padded pass never runs, so facenet-pytorch parity is untouched.
#[test]
fn padded_retry_recovers_tight_crops_and_leaves_ordinary_photos_alone() {
    let img = face_data::read_rgb(&root().join("data/faces/obama.jpg")).unwrap();
    let plain = detector();
    let full = plain.detect(&img);
    let face = full[0].clone();
    let (cx, cy) = (
        (face.bbox[0] + face.bbox[2]) / 2.0,
        (face.bbox[1] + face.bbox[3]) / 2.0,
    );
    let side = 0.8 * (face.bbox[2] - face.bbox[0]).max(face.bbox[3] - face.bbox[1]);
    let (x0, y0) = ((cx - side / 2.0).round(), (cy - side / 2.0).round());
    let cut = image::imageops::crop_imm(&img, x0 as u32, y0 as u32, side as u32, side as u32).to_image();
    let tight = image::imageops::resize(&cut, 150, 150, image::imageops::FilterType::Lanczos3);
    let k = 150.0 / (side as u32) as f32;
    let expected: Vec<[f32; 2]> = face
        .landmarks
        .iter()
        .map(|p| [(p[0] - x0) * k, (p[1] - y0) * k])
        .collect();
    let error = |found: Option<&face_detect::Detection>| -> f32 {
        found.map_or(f32::INFINITY, |d| {
            d.landmarks
                .iter()
                .zip(&expected)
                .map(|(a, b)| (a[0] - b[0]).hypot(a[1] - b[1]))
                .sum::<f32>()
                / 5.0
        })
    };
    let padded = Mtcnn::<B>::load(
        &root().join("models"),
        MtcnnConfig {
            retry_padding: 0.25,
            ..MtcnnConfig::default()
        },
        &Default::default(),
    )
    .unwrap();
    let before = error(plain.detect(&tight).first());
    let after = error(padded.detect(&tight).first());
    println!("tight crop: mean landmark error {before:.2} px unpadded, {after:.2} px with the padded pass");
    assert!(
        after < 3.0,
        "padded landmarks {after} px from the full-photo ones"
    );
    assert!(after < before, "padding must help: {after} vs {before}");
    // The ordinary photo: identical detections (the largest face is far below half the frame).
    let again = padded.detect(&img);
    assert_eq!(again.len(), full.len());
    for (a, b) in again.iter().zip(&full) {
        assert_eq!((a.bbox, a.landmarks), (b.bbox, b.landmarks));
    }
    // Out-of-range padding is refused.
    let bad = MtcnnConfig {
        retry_padding: f64::NAN,
        ..MtcnnConfig::default()
    };
    assert!(Mtcnn::<B>::load(&root().join("models"), bad, &Default::default()).is_err());
}

//! Alignment against scikit-image (tools/reference_align.py) and on drawn landmarks.

use std::path::{Path, PathBuf};

use face_data::{
    align_face, warp_affine_f32, Affine2, ChannelOrder, DataError, FaceTemplate, Normalize, ARCFACE_112,
};
use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/align")
        .join(name)
}

fn reference() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("align_reference.json")).unwrap()).unwrap()
}

fn points(v: &serde_json::Value) -> Vec<[f32; 2]> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| [p[0].as_f64().unwrap() as f32, p[1].as_f64().unwrap() as f32])
        .collect()
}

fn matrix(v: &serde_json::Value) -> [[f64; 3]; 2] {
    let r = |i: usize| {
        let row = v[i].as_array().unwrap();
        [
            row[0].as_f64().unwrap(),
            row[1].as_f64().unwrap(),
            row[2].as_f64().unwrap(),
        ]
    };
    [r(0), r(1)]
}

fn assert_matrix_close(ours: &Affine2, theirs: [[f64; 3]; 2], tol: f64) {
    for (i, (row_a, row_b)) in ours.m.iter().zip(&theirs).enumerate() {
        for (j, (&a, &b)) in row_a.iter().zip(row_b).enumerate() {
            assert!(
                (a - b).abs() <= tol * (1.0 + b.abs()),
                "entry ({i},{j}): ours {a}, skimage {b}"
            );
        }
    }
}

/// `SimilarityTransform.estimate` of scikit-image 0.26 on random point sets and on the
/// hand-marked landmarks of data/faces/obama.jpg: same matrix to 1e-9 (relative).
#[test]
fn similarity_matches_skimage() {
    let r = reference();
    for case in r["random_cases"].as_array().unwrap() {
        let dst: Vec<[f32; 2]> = points(&case["dst"]);
        // skimage got float64 targets; feed the same values through f32 only where exact.
        let m = Affine2::estimate_similarity(&points(&case["src"]), &dst).unwrap();
        // dst went through f32 here, so allow its rounding (≈ 6e-8 relative).
        assert_matrix_close(&m, matrix(&case["matrix"]), 1e-6);
    }
    let template = FaceTemplate::arcface(112).unwrap();
    let m = template.transform_for(&points(&r["obama_landmarks"])).unwrap();
    assert_matrix_close(&m, matrix(&r["obama_to_arcface_112"]), 1e-6);
    // The template constant is insightface's arcface_dst.
    assert_eq!(points(&r["arcface_template"]), ARCFACE_112.to_vec());
}

/// `skimage.transform.warp(order=1, mode="constant", preserve_range=True)` of a real face
/// crop (lossless PNG): every output value within 2e-3 of scikit-image's float64 result.
#[test]
fn warp_matches_skimage_on_real_face() {
    let r = reference();
    let img = image::open(fixture("obama_face.png")).unwrap().into_rgb8();
    let lm = points(&r["crop_landmarks"]);
    let dst = points(&r["crop_template"]);
    let m = Affine2::estimate_similarity(&lm, &dst).unwrap();
    assert_matrix_close(&m, matrix(&r["crop_matrix"]), 1e-6);
    let ours = warp_affine_f32(&img, &m, 56, 56).unwrap();
    let bytes = std::fs::read(fixture("warp_56.f32")).unwrap();
    let theirs: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(ours.len(), theirs.len());
    let max = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(max < 2e-3, "max |ours − skimage| = {max}");
    // The crop leaves a black border; both agree it is exactly zero.
    assert_eq!(ours[0], 0.0);
    assert_eq!(theirs[0], 0.0);
}

/// The JPEG decoder (zune-jpeg via `image`) against Pillow/libjpeg-turbo on data/faces/obama.jpg:
/// decoders may differ by rounding of the IDCT and chroma upsampling, so the check is on the
/// mean (within 0.5 of 255) and on the median sampled difference.
#[test]
fn jpeg_decode_agrees_with_pillow() {
    let r = reference();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/faces/obama.jpg");
    let img = face_data::read_rgb(&path).unwrap();
    let d = &r["obama_decode"];
    assert_eq!(img.width() as u64, d["width"].as_u64().unwrap());
    assert_eq!(img.height() as u64, d["height"].as_u64().unwrap());
    let n = f64::from(img.width() * img.height());
    for c in 0..3 {
        let ours: f64 = img.pixels().map(|p| f64::from(p[c])).sum::<f64>() / n;
        let pil = d["mean_rgb"][c].as_f64().unwrap();
        assert!(
            (ours - pil).abs() < 0.5,
            "channel {c}: mean {ours} vs Pillow {pil}"
        );
    }
    let mut diffs: Vec<f64> = d["samples"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            let (x, y) = (s[0].as_u64().unwrap() as u32, s[1].as_u64().unwrap() as u32);
            let p = img.get_pixel(x, y);
            (0..3)
                .map(move |c| (f64::from(p[c]) - s[2][c].as_f64().unwrap()).abs())
                .collect::<Vec<_>>()
        })
        .collect();
    diffs.sort_by(f64::total_cmp);
    assert!(
        diffs[diffs.len() / 2] <= 2.0,
        "median sampled difference {}",
        diffs[diffs.len() / 2]
    );
}

/// Draws Gaussian dots at the landmarks of a randomly placed, scaled and rotated face, aligns,
/// and finds each dot again: every dot lands on its template point within 0.5 px.
#[test]
fn drawn_landmarks_land_on_the_template() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let template = FaceTemplate::arcface(112).unwrap();
    for trial in 0..12 {
        let scale: f32 = rng.gen_range(1.5..3.5);
        let angle: f32 = rng.gen_range(-0.7..0.7);
        let (w, h) = (760u32, 720u32);
        let (tx, ty) = (rng.gen_range(120.0..260.0), rng.gen_range(120.0..200.0));
        let (c, s) = (angle.cos() * scale, angle.sin() * scale);
        let lm: Vec<[f32; 2]> = ARCFACE_112
            .iter()
            .map(|p| [c * p[0] - s * p[1] + tx + 60.0, s * p[0] + c * p[1] + ty + 60.0])
            .collect();
        let sigma = 2.0 * scale;
        let mut img = RgbImage::new(w, h);
        for (x, y, px) in img.enumerate_pixels_mut() {
            let v: f32 = lm
                .iter()
                .map(|q| {
                    (-((x as f32 - q[0]).powi(2) + (y as f32 - q[1]).powi(2)) / (2.0 * sigma * sigma)).exp()
                })
                .sum();
            let g = (255.0 * v).round().min(255.0) as u8;
            *px = Rgb([g, g, g]);
        }
        let crop = align_face(
            &img,
            &lm,
            &template,
            &Normalize {
                input_scale: 1.0,
                mean: [0.0; 3],
                std: [1.0; 3],
                order: ChannelOrder::Rgb,
            },
            false,
        )
        .unwrap();
        for (k, t) in template.points.iter().enumerate() {
            let (mut sw, mut sx, mut sy) = (0.0f64, 0.0f64, 0.0f64);
            let (cx, cy) = (t[0].round() as i32, t[1].round() as i32);
            for y in cy - 6..=cy + 6 {
                for x in cx - 6..=cx + 6 {
                    let v = f64::from(crop.at(0, y as usize, x as usize));
                    sw += v;
                    sx += v * f64::from(x);
                    sy += v * f64::from(y);
                }
            }
            let (fx, fy) = (sx / sw, sy / sw);
            let err = ((fx - f64::from(t[0])).powi(2) + (fy - f64::from(t[1])).powi(2)).sqrt();
            assert!(
                err < 0.5,
                "trial {trial}, landmark {k}: found ({fx:.2}, {fy:.2}), template {t:?}, error {err:.3} px"
            );
        }
    }
}

#[test]
fn real_face_aligns_with_small_residual_and_flip_mirrors() {
    let r = reference();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/faces/obama.jpg");
    let img = face_data::read_rgb(&path).unwrap();
    let lm = points(&r["obama_landmarks"]);
    let template = FaceTemplate::arcface(112).unwrap();
    let m = template.transform_for(&lm).unwrap();
    let rms = (lm
        .iter()
        .zip(&template.points)
        .map(|(p, t)| {
            let q = m.apply(*p);
            (q[0] - t[0]).powi(2) + (q[1] - t[1]).powi(2)
        })
        .sum::<f32>()
        / 5.0)
        .sqrt();
    assert!(
        rms < 3.0,
        "hand-marked landmarks fit the template with RMS {rms} px"
    );
    let a = align_face(&img, &lm, &template, &Normalize::arcface(), false).unwrap();
    let mut b = align_face(&img, &lm, &template, &Normalize::arcface(), true).unwrap();
    b.flip_horizontal();
    assert_eq!(a, b);
    assert!(a.data.iter().all(|v| (-1.0..=1.0).contains(v)));
    // BGR output is the RGB output with planes swapped.
    let bgr = align_face(
        &img,
        &lm,
        &template,
        &Normalize::arcface().with_order(ChannelOrder::Bgr),
        false,
    )
    .unwrap();
    let plane = 112 * 112;
    assert_eq!(bgr.data[..plane], a.data[2 * plane..]);
}

#[test]
fn templates_and_presets() {
    let t = FaceTemplate::arcface(224).unwrap();
    assert!((t.points[0][0] - 2.0 * 38.2946).abs() < 1e-4);
    let t = FaceTemplate::arcface(128).unwrap();
    assert!(
        (t.points[0][0] - (38.2946 + 8.0)).abs() < 1e-4,
        "128 crops shift the template by 8 px"
    );
    assert!(FaceTemplate::arcface(100).is_err());
    let d = FaceTemplate::dlib(64, 0.2).unwrap();
    // Nose base: (0.2 + 0.4901123135679) / 1.4 · 64.
    assert!((d.points[4][0] - 31.548_004).abs() < 1e-4, "{:?}", d.points[4]);
    assert!((d.points[4][1] - (0.2 + 0.627_797_531_647_5_f64) as f32 / 1.4 * 64.0).abs() < 1e-4);
    assert!(FaceTemplate::dlib(64, -0.1).is_err());

    let (s, b) = Normalize::arcface().affine();
    assert!((0.0 * s[0] + b[0] + 1.0).abs() < 1e-6 && (255.0 * s[0] + b[0] - 1.0).abs() < 1e-6);
    let (s, b) = Normalize::dlib_age_gender().affine();
    assert!(
        (122.782 * s[0] + b[0]).abs() < 1e-6
            && (104.298 * s[2] + b[2]).abs() < 1e-6
            && (s[1] - 1.0 / 256.0).abs() < 1e-9
    );
    let (s, b) = Normalize::imagenet().affine();
    assert!((255.0 * s[0] + b[0] - (1.0 - 0.485) / 0.229).abs() < 1e-5);
    let (s, b) = Normalize::facenet().affine();
    assert!((127.5 * s[0] + b[0]).abs() < 1e-6 && (s[0] - 1.0 / 128.0).abs() < 1e-9);
    assert!(Normalize {
        std: [0.0, 1.0, 1.0],
        ..Normalize::arcface()
    }
    .validate()
    .is_err());
}

#[test]
fn degenerate_landmarks_are_errors() {
    let t = FaceTemplate::arcface(112).unwrap();
    let img = RgbImage::new(10, 10);
    let norm = Normalize::arcface();
    let same = vec![[3.0, 3.0]; 5];
    assert!(matches!(
        align_face(&img, &same, &t, &norm, false),
        Err(DataError::DegenerateLandmarks(_))
    ));
    let nan = vec![[1.0, 2.0], [f32::NAN, 1.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]];
    assert!(align_face(&img, &nan, &t, &norm, false).is_err());
    assert!(align_face(&img, &[[1.0, 2.0], [3.0, 4.0]], &t, &norm, false).is_err());
    assert!(Affine2 {
        m: [[0.0; 3], [0.0; 3]]
    }
    .inverse()
    .is_none());
    // An empty source image aligns to an all-black crop, not a panic.
    let out = align_face(&RgbImage::new(0, 0), &ARCFACE_112, &t, &norm, false).unwrap();
    assert!(out.data.iter().all(|v| *v == -1.0));
}

#[test]
fn pyramid_halves_with_the_binomial_filter_and_picks_dlibs_level() {
    // One row of a vertical edge: columns 0–3 at 0, 4–7 at 160; rows identical.
    let img = RgbImage::from_fn(8, 4, |x, _| {
        if x < 4 {
            Rgb([0, 0, 0])
        } else {
            Rgb([160, 160, 160])
        }
    });
    let half = face_data::pyramid_down(&img);
    assert_eq!(half.dimensions(), (4, 2));
    // Output column k sits at source column 2k: taps 2k−2 … 2k+2 with [1 4 6 4 1]/16.
    // k = 1 (source 2): 0,0,0,0,160·1/16 → 10; k = 2 (source 4): 0·1+0·4+160·(6+4+1)/16 → 110.
    let row: Vec<u8> = (0..4).map(|x| half.get_pixel(x, 0)[0]).collect();
    assert_eq!(row, vec![0, 10, 110, 160]);
    assert_eq!(half.get_pixel(2, 1), half.get_pixel(2, 0));

    // A 64-px crop of a face at scale 0.2 (the face spans 320 px): 25× the crop's area, so two
    // halvings (6.25×, then 1.56×: a third would fall below the crop), and the map from the
    // level is the source map scaled by 4.
    let big = RgbImage::new(800, 600);
    let m = Affine2 {
        m: [[0.2, 0.0, -10.0], [0.0, 0.2, -5.0]],
    };
    let (level, lm) = face_data::pyramid_level(&big, &m, 64, 64);
    assert_eq!(level.dimensions(), (200, 150));
    assert_eq!(lm.m, [[0.8, 0.0, -10.0], [0.0, 0.8, -5.0]]);
    // At or above the source's scale, the source itself.
    let up = Affine2 {
        m: [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]],
    };
    let (level, lm) = face_data::pyramid_level(&big, &up, 64, 64);
    assert_eq!((level.dimensions(), lm), ((800, 600), up));
}

#[test]
fn facenet_crop_matches_facenet_pytorch() {
    let src = image::open(fixture("obama_face.png")).unwrap().to_rgb8();
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("facenet_cases.json")).unwrap()).unwrap();
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for c in cases {
        let b: Vec<f32> = c["box"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let size = c["size"].as_u64().unwrap() as u32;
        let margin = c["margin"].as_u64().unwrap() as u32;
        let ours = face_data::facenet_crop(&src, [b[0], b[1], b[2], b[3]], size, margin).unwrap();
        let theirs = image::open(fixture(c["file"].as_str().unwrap()))
            .unwrap()
            .to_rgb8();
        assert_eq!(ours.dimensions(), theirs.dimensions());
        // Pillow resamples in fixed point and rounds to 8 bits between its two passes; the
        // filter and the box are the same, so values differ by that rounding only (measured:
        // max 1, mean 0.15).
        let diffs: Vec<i32> = ours
            .as_raw()
            .iter()
            .zip(theirs.as_raw())
            .map(|(&a, &b)| (i32::from(a) - i32::from(b)).abs())
            .collect();
        let max = diffs.iter().copied().max().unwrap();
        let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
        assert!(max <= 1 && mean < 0.25, "{}: max {max}, mean {mean}", c["file"]);
    }
}

#[test]
fn facenet_crop_refuses_bad_boxes_and_margins() {
    let src = RgbImage::new(50, 40);
    let e = face_data::facenet_crop(&src, [60.0, 5.0, 80.0, 30.0], 32, 0).unwrap_err();
    assert!(
        e.to_string().contains("covers no pixel of the 50×40 photo"),
        "{e}"
    );
    let e = face_data::facenet_crop(&src, [f32::NAN, 5.0, 20.0, 30.0], 32, 0).unwrap_err();
    assert!(e.to_string().contains("not finite"), "{e}");
    let e = face_data::facenet_crop(&src, [5.0, 5.0, 20.0, 30.0], 32, 32).unwrap_err();
    assert!(e.to_string().contains("margin of 32"), "{e}");
}

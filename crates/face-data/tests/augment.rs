//! Augmentations, LAFS landmark operations, the parallel pipeline and the Burn adapters.

use std::path::{Path, PathBuf};

use face_data::augment::{
    adjust_hue, gaussian_blur, resize_region, ColorJitter, Compose, RandomGaussianBlur, RandomGrayscale,
    RandomHorizontalFlip, RandomResizedCrop, RandomSolarize,
};
use face_data::landmarks::{extract_patches, patch_grid, perturb_landmarks, shuffle_landmarks};
use face_data::{align_batch, AlignSpec, ChannelOrder, DataRng, FaceJob, ImageSource, Normalize, Transform};
use image::{Rgb, RgbImage};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};

fn rng(seed: u64) -> DataRng {
    DataRng::seed_from_u64(seed)
}

fn noise(w: u32, h: u32, seed: u64) -> RgbImage {
    let mut r = rng(seed);
    RgbImage::from_fn(w, h, |_, _| Rgb([r.gen(), r.gen(), r.gen()]))
}

fn raw_norm() -> Normalize {
    Normalize {
        input_scale: 1.0,
        mean: [0.0; 3],
        std: [1.0; 3],
        order: ChannelOrder::Rgb,
    }
}

#[test]
fn resize_of_the_full_image_at_its_size_is_identity() {
    let img = noise(37, 23, 1);
    assert_eq!(resize_region(&img, [0.0, 0.0, 37.0, 23.0], 37, 23), img);
    // Halving a 2×2-constant-block image gives the block values.
    let blocks = RgbImage::from_fn(8, 6, |x, y| {
        let v = ((x / 2) * 30 + (y / 2) * 7) as u8;
        Rgb([v, v, v])
    });
    // Halving uses a triangle filter of radius 2 source pixels: an inner output pixel weighs the
    // four source pixels around its centre 1/8, 3/8, 3/8, 1/8, i.e. its own block ¾ and each
    // neighbouring block ⅛ — exactly the block value on this linear ramp. A border pixel has
    // only three source pixels (¾, ¾, ¼ → 3/7, 3/7, 1/7), so its own block weighs 6/7 and the
    // one neighbour 1/7. Per axis (block index → mean block index):
    //   x: 0 → 1/7, 1 → 1, 2 → 2, 3 → 3 − 1/7;   y: 0 → 1/7, 1 → 1, 2 → 2 − 1/7.
    let half = resize_region(&blocks, [0.0, 0.0, 8.0, 6.0], 4, 3);
    let mean_x = [1.0 / 7.0, 1.0, 2.0, 3.0 - 1.0 / 7.0];
    let mean_y = [1.0 / 7.0, 1.0, 2.0 - 1.0 / 7.0];
    for (x, y, p) in half.enumerate_pixels() {
        let v = 30.0 * mean_x[x as usize] + 7.0 * mean_y[y as usize];
        // Only the final rounding to 8 bits separates the two.
        assert!(
            (f32::from(p[0]) - v).abs() <= 0.5 + 1e-3,
            "({x},{y}) {} vs {v}",
            p[0]
        );
    }
    // A crop of a constant image stays constant.
    let c = RgbImage::from_pixel(50, 40, Rgb([10, 20, 30]));
    assert!(resize_region(&c, [5.0, 7.0, 31.0, 17.0], 24, 24)
        .pixels()
        .all(|p| *p == Rgb([10, 20, 30])));
}

proptest! {
    #[test]
    fn random_resized_crop_regions_stay_inside(w in 1u32..400, h in 1u32..400, seed in 0u64..1000) {
        let t = RandomResizedCrop::new(112, 112);
        t.validate().unwrap();
        let [x, y, cw, ch] = t.sample_region(w, h, &mut rng(seed));
        prop_assert!(x >= 0.0 && y >= 0.0 && cw >= 1.0 && ch >= 1.0);
        prop_assert!(x + cw <= f64::from(w) + 1e-9 && y + ch <= f64::from(h) + 1e-9, "{:?} in {w}×{h}", [x, y, cw, ch]);
    }

    #[test]
    fn landmark_shuffle_permutes_a_subset(n in 2usize..60, fraction in 0.0f64..=1.0, seed in 0u64..500) {
        let orig: Vec<[f32; 2]> = (0..n).map(|i| [i as f32, 2.0 * i as f32]).collect();
        let mut pts = orig.clone();
        let picked = shuffle_landmarks(&mut pts, fraction, &mut rng(seed)).unwrap();
        let k = (fraction * n as f64).round() as usize;
        if k >= 2 {
            prop_assert_eq!(picked.len(), k);
            for i in 0..n {
                if picked.contains(&i) {
                    prop_assert_ne!(pts[i], orig[i], "picked landmark {} did not move", i);
                } else {
                    prop_assert_eq!(pts[i], orig[i]);
                }
            }
            let mut a: Vec<u32> = pts.iter().map(|p| p[0] as u32).collect();
            a.sort();
            prop_assert_eq!(a, (0..n as u32).collect::<Vec<_>>(), "same multiset of positions");
        } else {
            prop_assert!(picked.is_empty());
            prop_assert_eq!(pts, orig);
        }
    }
}

#[test]
fn random_resized_crop_output_and_scale_range() {
    let t = RandomResizedCrop::new(64, 48).with_scale(0.4, 1.0);
    let mut r = rng(3);
    for _ in 0..200 {
        let [_, _, cw, ch] = t.sample_region(200, 150, &mut r);
        let frac = cw * ch / 30000.0;
        assert!((0.35..=1.0).contains(&frac), "area fraction {frac}");
        let ratio = cw / ch;
        assert!((0.70..=1.40).contains(&ratio), "ratio {ratio}");
    }
    let out = t.apply(noise(200, 150, 2), &mut r);
    assert_eq!(out.dimensions(), (64, 48));
    assert!(RandomResizedCrop {
        scale: (0.5, 0.2),
        ..t
    }
    .validate()
    .is_err());
}

#[test]
fn colour_ops() {
    let img = noise(20, 10, 4);
    let mut r = rng(0);
    // Zero-strength jitter is the identity; always-flip twice is the identity.
    let none = ColorJitter {
        brightness: 0.0,
        contrast: 0.0,
        saturation: 0.0,
        hue: 0.0,
        p: 1.0,
    };
    assert_eq!(none.apply(img.clone(), &mut r), img);
    let flip = RandomHorizontalFlip { p: 1.0 };
    let once = flip.apply(img.clone(), &mut r);
    assert_eq!(once.get_pixel(0, 3), img.get_pixel(19, 3));
    assert_eq!(flip.apply(once, &mut r), img);
    // Grayscale: equal channels, Pillow's luma.
    let g = RandomGrayscale { p: 1.0 }.apply(RgbImage::from_pixel(2, 2, Rgb([200, 100, 50])), &mut r);
    assert_eq!(*g.get_pixel(1, 1), Rgb([124, 124, 124])); // 0.299·200 + 0.587·100 + 0.114·50 = 124.2
                                                          // Hue rotation by a full turn is the identity (up to rounding); by 1/3 turn maps red to green.
    let mut red = RgbImage::from_pixel(1, 1, Rgb([255, 0, 0]));
    adjust_hue(&mut red, 1.0 / 3.0);
    assert_eq!(*red.get_pixel(0, 0), Rgb([0, 255, 0]));
    let mut same = img.clone();
    adjust_hue(&mut same, 0.0);
    assert!(same
        .as_raw()
        .iter()
        .zip(img.as_raw())
        .all(|(a, b)| a.abs_diff(*b) <= 1));
    // Brightness only scales towards black; saturation 0 of gray is a no-op.
    let j = ColorJitter {
        brightness: 0.5,
        contrast: 0.0,
        saturation: 0.0,
        hue: 0.0,
        p: 1.0,
    };
    let b = j.apply(RgbImage::from_pixel(3, 3, Rgb([100, 100, 100])), &mut rng(9));
    let v = b.get_pixel(0, 0)[0];
    assert!((50..=150).contains(&v) && b.pixels().all(|p| p[0] == v && p[1] == v));
    // Solarize inverts bright values only.
    let s = RandomSolarize {
        threshold: 128,
        p: 1.0,
    }
    .apply(RgbImage::from_pixel(1, 1, Rgb([10, 128, 255])), &mut r);
    assert_eq!(*s.get_pixel(0, 0), Rgb([10, 127, 0]));
}

#[test]
fn blur_preserves_constants_and_mass() {
    let c = RgbImage::from_pixel(15, 9, Rgb([77, 88, 99]));
    assert_eq!(gaussian_blur(&c, 1.7), c);
    let mut dot = RgbImage::new(31, 31);
    dot.put_pixel(15, 15, Rgb([255, 255, 255]));
    let b = gaussian_blur(&dot, 1.0);
    let total: u32 = b.pixels().map(|p| u32::from(p[0])).sum();
    assert!((240..=270).contains(&total), "mass {total}");
    assert!(
        b.get_pixel(15, 15)[0] > b.get_pixel(16, 15)[0] && b.get_pixel(16, 15)[0] > b.get_pixel(18, 15)[0]
    );
    assert_eq!(gaussian_blur(&dot, 0.0), dot);
    // A composed DINO-like pipeline runs and is reproducible.
    let dino = Compose::new()
        .then(RandomResizedCrop::new(96, 96).with_scale(0.4, 1.0))
        .then(RandomHorizontalFlip { p: 0.5 })
        .then(ColorJitter::dino())
        .then(RandomGrayscale { p: 0.2 })
        .then(RandomGaussianBlur {
            sigma: (0.1, 2.0),
            p: 1.0,
        })
        .then(RandomSolarize {
            threshold: 128,
            p: 0.2,
        });
    let img = noise(120, 130, 7);
    assert_eq!(
        dino.apply(img.clone(), &mut rng(1)),
        dino.apply(img.clone(), &mut rng(1))
    );
    assert_eq!(dino.apply(img, &mut rng(1)).dimensions(), (96, 96));
}

#[test]
fn landmark_perturbation_and_patches() {
    let grid = patch_grid(112, 14).unwrap();
    assert_eq!(grid.len(), 196);
    assert_eq!(grid[0], [3.5, 3.5]);
    assert_eq!(grid[15], [11.5, 11.5]);
    assert!(patch_grid(10, 11).is_err());
    let mut pts = grid.clone();
    perturb_landmarks(&mut pts, 3.0, 112, 112, &mut rng(2)).unwrap();
    let mut moved = 0;
    for (p, q) in pts.iter().zip(&grid) {
        assert!((p[0] - q[0]).abs() <= 3.0 + 1e-5 && (p[1] - q[1]).abs() <= 3.0 + 1e-5);
        assert!((0.0..=111.0).contains(&p[0]) && (0.0..=111.0).contains(&p[1]));
        moved += usize::from(p != q);
    }
    assert!(moved > 190);
    assert!(perturb_landmarks(&mut pts, -1.0, 112, 112, &mut rng(2)).is_err());
    assert!(shuffle_landmarks(&mut pts, 1.5, &mut rng(2)).is_err());

    // Patches around integer points copy the pixels exactly; outside is black.
    let img = noise(40, 30, 5);
    let patches = extract_patches(&img, &[[10.0, 12.0], [0.0, 0.0]], 5, &raw_norm()).unwrap();
    assert_eq!(patches.len(), 2 * 3 * 25);
    // Patch 0, channel 1, row 0, col 0 ↔ pixel (8, 10).
    assert_eq!(patches[25], f32::from(img.get_pixel(8, 10)[1]));
    // Patch 0 centre ↔ pixel (10, 12).
    assert_eq!(patches[12], f32::from(img.get_pixel(10, 12)[0]));
    // Patch 1 top-left is outside the image.
    assert_eq!(patches[75], 0.0);
    assert_eq!(patches[75 + 12], f32::from(img.get_pixel(0, 0)[0]));
    // Even patch sizes centre between pixels.
    let p4 = extract_patches(&img, &[[10.5, 12.5]], 4, &raw_norm()).unwrap();
    assert_eq!(p4[0], f32::from(img.get_pixel(9, 11)[0]));
    assert!(extract_patches(&img, &[[f32::NAN, 0.0]], 4, &raw_norm()).is_err());
    assert!(extract_patches(&img, &[[1.0, 0.0]], 0, &raw_norm()).is_err());
}

fn obama() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/faces/obama.jpg")
}

/// The hand-marked landmarks of data/faces/obama.jpg (data/faces/landmarks.json).
fn obama_landmarks() -> Vec<[f32; 2]> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/faces/landmarks.json");
    let all: std::collections::HashMap<String, Vec<[f32; 2]>> =
        serde_json::from_str(&std::fs::read_to_string(path).expect("landmarks.json"))
            .expect("landmarks.json");
    all["obama.jpg"].clone()
}

#[test]
fn pipeline_reports_each_failure_and_keeps_the_rest() {
    let dir = std::env::temp_dir().join(format!("facekit-pipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("corrupt.jpg"), b"\xff\xd8\xff\xe0 not really a jpeg").unwrap();
    let bytes = std::fs::read(obama()).unwrap();
    let jobs = vec![
        FaceJob {
            source: ImageSource::File(obama()),
            landmarks: obama_landmarks(),
        },
        FaceJob {
            source: ImageSource::File(dir.join("missing.jpg")),
            landmarks: obama_landmarks(),
        },
        FaceJob {
            source: ImageSource::File(dir.join("corrupt.jpg")),
            landmarks: obama_landmarks(),
        },
        FaceJob {
            source: ImageSource::Bytes {
                name: "mem.jpg".into(),
                data: bytes,
            },
            landmarks: obama_landmarks(),
        },
        FaceJob {
            source: ImageSource::File(obama()),
            landmarks: vec![[1.0, 1.0]; 5],
        },
    ];
    let mut spec = AlignSpec::arcface_112().unwrap();
    spec.with_flip = true;
    let batch = align_batch(&jobs, &spec).unwrap();
    assert_eq!(batch.ok, [0, 3]);
    assert_eq!(
        batch.failures.iter().map(|f| f.index).collect::<Vec<_>>(),
        [1, 2, 4]
    );
    let msgs: Vec<String> = batch.failures.iter().map(|f| f.error.to_string()).collect();
    assert!(msgs[0].contains("missing.jpg"), "{}", msgs[0]);
    assert!(
        msgs[1].contains("corrupt.jpg") && msgs[1].contains("decode"),
        "{}",
        msgs[1]
    );
    assert!(
        msgs[2].contains("obama.jpg") && msgs[2].contains("coincide"),
        "{}",
        msgs[2]
    );
    let per = spec.floats_per_face();
    assert_eq!(per, 2 * 3 * 112 * 112);
    assert_eq!(batch.data.len(), 2 * per);
    assert_eq!(
        batch.data[..per],
        batch.data[per..],
        "file and in-memory sources give the same crop"
    );
    // The flipped copy mirrors the crop.
    let (plain, flipped) = batch.data[..per].split_at(per / 2);
    assert_eq!(plain[5], flipped[111 - 5]);
    std::fs::remove_dir_all(&dir).ok();
}

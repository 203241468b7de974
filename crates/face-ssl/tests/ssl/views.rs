//! Multi-crop views and the LAFS augmentations on real aligned faces.

use crate::common;

use burn::backend::NdArray;
use face_data::augment::DataRng;
use face_data::landmarks::extract_patches;
use face_data::Normalize;
use face_ssl::views::stack;
use face_ssl::{Face, TokenVitConfig, Tokenizer, ViewBuilder, ViewConfig, ViewTokens};
use rand::SeedableRng;

type B = NdArray<f32>;

/// Landmark views without photometric changes, crops or flips: token geometry only.
fn plain(shuffle: f64, perturb: f32) -> ViewConfig {
    ViewConfig {
        global_scale: [1.0, 1.0],
        flip: 0.0,
        photometric: false,
        shuffle,
        perturb,
        ..ViewConfig::default()
    }
}

fn first_face() -> Face {
    common::bundled_faces().swap_remove(0).face
}

fn to_pixels(c: [f32; 2], size: f32) -> [f32; 2] {
    [(c[0] + 1.0) / 2.0 * size - 0.5, (c[1] + 1.0) / 2.0 * size - 0.5]
}

fn patch_at(face: &Face, c: [f32; 2]) -> Vec<f32> {
    extract_patches(&face.image, &[to_pixels(c, 112.0)], 16, &Normalize::arcface()).unwrap()
}

#[test]
fn shuffle_permutes_tokens_that_keep_their_coordinates() {
    let face = first_face();
    let still = ViewBuilder::new(plain(0.0, 0.0))
        .unwrap()
        .views(&face, &mut DataRng::seed_from_u64(1))
        .unwrap();
    let shuffled = ViewBuilder::new(plain(1.0, 0.0))
        .unwrap()
        .views(&face, &mut DataRng::seed_from_u64(1))
        .unwrap();
    let (a, b) = (&still.global[0], &shuffled.global[0]);
    assert_eq!(a.len(), 49);
    // Slots stay in place; what sits in them moved (every token: a derangement of all 49).
    assert_eq!(a.slots, b.slots);
    assert_eq!(a.slots, (0..49).collect::<Vec<u32>>());
    let moved = a.coords.iter().zip(&b.coords).filter(|(x, y)| x != y).count();
    assert_eq!(moved, 49);
    // The shuffled coordinates are a permutation of the originals …
    let key = |c: &[f32; 2]| (c[0].to_bits(), c[1].to_bits());
    let mut ka: Vec<_> = a.coords.iter().map(key).collect();
    let mut kb: Vec<_> = b.coords.iter().map(key).collect();
    ka.sort_unstable();
    kb.sort_unstable();
    assert_eq!(ka, kb);
    // … and each token's patch is still the patch cut at its own coordinates.
    let per = 3 * 16 * 16;
    for (j, c) in b.coords.iter().enumerate() {
        let want = patch_at(&face, *c);
        let worst = b.patches[j * per..(j + 1) * per]
            .iter()
            .zip(&want)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        // Only the round trip pixel → [−1, 1] → pixel of the coordinate differs.
        assert!(worst < 1e-5, "token {j}: {worst}");
    }
    // A token-level check of the same rule on a hand-made view.
    let mut v = ViewTokens {
        patches: (0..5).flat_map(|i| std::iter::repeat_n(i as f32, 2)).collect(),
        coords: (0..5).map(|i| [i as f32, -(i as f32)]).collect(),
        slots: (0..5).collect(),
    };
    let picked = v.shuffle(0.6, &mut DataRng::seed_from_u64(3)).unwrap();
    assert_eq!(picked.len(), 3);
    for j in 0..5 {
        assert_eq!(
            v.patches[2 * j],
            v.coords[j][0],
            "patch and coordinate travel together"
        );
        assert_eq!(v.slots[j], j as u32);
    }
    assert!(v.shuffle(1.5, &mut DataRng::seed_from_u64(3)).is_err());
}

#[test]
fn perturbation_stays_within_its_bound() {
    let face = first_face();
    let still = ViewBuilder::new(plain(0.0, 0.0)).unwrap();
    let moved = ViewBuilder::new(plain(0.0, 3.0)).unwrap();
    let unit = 3.0 * 2.0 / 112.0 + 1e-6;
    let mut largest = 0.0f32;
    for seed in 0..20 {
        let a = still.views(&face, &mut DataRng::seed_from_u64(seed)).unwrap();
        let b = moved.views(&face, &mut DataRng::seed_from_u64(seed)).unwrap();
        for (x, y) in a.global[0].coords.iter().zip(&b.global[0].coords) {
            for k in 0..2 {
                let d = (x[k] - y[k]).abs();
                assert!(d <= unit, "moved {d} > bound {unit}");
                largest = largest.max(d);
            }
        }
    }
    // The bound is used, not merely respected.
    assert!(largest > 0.8 * unit, "largest move {largest}");
}

#[test]
fn dense_landmarks_follow_the_face() {
    // On a crop whose landmarks sit on the template, the dense landmarks are the 7×7 grid.
    let face = Face::aligned(first_face().image).unwrap();
    let b = ViewBuilder::new(ViewConfig::default()).unwrap();
    let v = b.eval_view(&face).unwrap();
    assert_eq!(v.len(), 49);
    for (j, c) in v.coords.iter().enumerate() {
        let (r, col) = ((j / 7) as f32, (j % 7) as f32);
        let want = [(col + 0.5) / 7.0 * 2.0 - 1.0, (r + 0.5) / 7.0 * 2.0 - 1.0];
        assert!(
            (c[0] - want[0]).abs() < 1e-4 && (c[1] - want[1]).abs() < 1e-4,
            "{j}: {c:?} vs {want:?}"
        );
    }
    // Real landmarks move them: the detected points of a real face are not the template.
    let real = first_face();
    let w = b.eval_view(&real).unwrap();
    let shift = v
        .coords
        .iter()
        .zip(&w.coords)
        .map(|(a, b)| (a[0] - b[0]).abs().max((a[1] - b[1]).abs()))
        .fold(0.0, f32::max);
    assert!(shift > 0.01, "dense landmarks ignore the face ({shift})");
    // With the five points only, there are five tokens.
    let five = ViewBuilder::new(ViewConfig {
        grid: 0,
        local_tokens: 3,
        ..ViewConfig::default()
    })
    .unwrap();
    assert_eq!(five.eval_view(&real).unwrap().len(), 5);
}

#[test]
fn flips_keep_slot_meaning() {
    let face = first_face();
    let flip = ViewBuilder::new(ViewConfig {
        flip: 1.0,
        ..plain(0.0, 0.0)
    })
    .unwrap();
    let v = flip.views(&face, &mut DataRng::seed_from_u64(0)).unwrap();
    // Slot 0 is the top-left of the dense grid; after a mirror with swapped eyes and mouth
    // corners it is still on the image's left and top.
    let c = v.global[0].coords[0];
    assert!(c[0] < -0.5 && c[1] < -0.5, "{c:?}");
    let c = v.global[0].coords[48];
    assert!(c[0] > 0.5 && c[1] > 0.5, "{c:?}");
}

#[test]
fn view_counts_and_batches() {
    let face = first_face();
    for (config, global, local) in [(ViewConfig::default(), 49, 9), (ViewConfig::dino(), 49, 9)] {
        let b = ViewBuilder::new(config.clone()).unwrap();
        let v = b.views(&face, &mut DataRng::seed_from_u64(7)).unwrap();
        assert_eq!(
            v.global.iter().map(ViewTokens::len).collect::<Vec<_>>(),
            [global, global]
        );
        assert_eq!(v.local.len(), config.local_views);
        assert!(v
            .local
            .iter()
            .all(|l| l.len() == local && l.patches.len() == local * 768));
        assert!(v
            .global
            .iter()
            .chain(&v.local)
            .flat_map(|t| &t.coords)
            .all(|c| c[0].abs() <= 1.0 && c[1].abs() <= 1.0));
        let batch = stack::<B>(&[&v.global[0], &v.global[1]], &Default::default()).unwrap();
        assert_eq!(batch.patches.dims(), [2, global, 768]);
        assert!(stack::<B>(&[&v.global[0], &v.local[0]], &Default::default()).is_err());
        assert!(stack::<B>(&[], &Default::default()).is_err());
    }
    // Local landmark views are face parts: neighbouring slots of the dense grid.
    let b = ViewBuilder::new(ViewConfig::default()).unwrap();
    let v = b.views(&face, &mut DataRng::seed_from_u64(9)).unwrap();
    for l in &v.local {
        // The 9 landmarks nearest an anchor lie within 2 grid steps of it: no two are more
        // than 4 steps apart (9 scattered slots of a 7×7 grid almost never are).
        let pos = |s: u32| ((s / 7) as f32, (s % 7) as f32);
        let widest = l
            .slots
            .iter()
            .flat_map(|&a| l.slots.iter().map(move |&b| (a, b)))
            .map(|(a, b)| {
                let (p, q) = (pos(a), pos(b));
                ((p.0 - q.0).powi(2) + (p.1 - q.1).powi(2)).sqrt()
            })
            .fold(0.0, f32::max);
        assert!(widest <= 4.0 + 1e-6, "{:?} spans {widest}", l.slots);
    }
}

#[test]
fn bad_settings_are_named() {
    let err = |c: ViewConfig| ViewBuilder::new(c).unwrap_err().to_string();
    assert!(err(ViewConfig {
        shuffle: 1.2,
        ..ViewConfig::default()
    })
    .contains("views.shuffle"));
    assert!(err(ViewConfig {
        local_tokens: 60,
        ..ViewConfig::default()
    })
    .contains("views.local_tokens"));
    assert!(err(ViewConfig {
        image_size: 100,
        ..ViewConfig::default()
    })
    .contains("views.image_size"));
    assert!(err(ViewConfig {
        local_size: 40,
        ..ViewConfig::dino()
    })
    .contains("views.local_size"));
    assert!(err(ViewConfig {
        perturb: f32::NAN,
        ..ViewConfig::default()
    })
    .contains("views.perturb"));
    assert!(err(ViewConfig {
        global_scale: [0.5, 1.5],
        ..ViewConfig::default()
    })
    .contains("views.global_scale"));
    assert!("sideways".parse::<Tokenizer>().is_err());
    assert!(Face::aligned(image::RgbImage::new(112, 100)).is_err());
    let mut config = face_ssl::PretrainConfig::lafs();
    config.vit.patch_size = 8;
    assert!(config.validate().unwrap_err().to_string().contains("views.patch"));
    let mut config = face_ssl::PretrainConfig::lafs();
    config.vit.max_slots = 10;
    assert!(config
        .validate()
        .unwrap_err()
        .to_string()
        .contains("vit.max_slots"));
    assert!(TokenVitConfig {
        num_heads: 5,
        ..TokenVitConfig::tiny()
    }
    .validate()
    .is_err());
}

#[test]
fn token_order_alone_carries_no_position() {
    let _rng = crate::common::burn_rng();
    // With coordinates as the only position information, a ViT with a class token is blind to
    // token order: the landmark shuffle changes nothing. Slot embeddings make it matter.
    let face = first_face();
    let still = ViewBuilder::new(plain(0.0, 0.0))
        .unwrap()
        .views(&face, &mut DataRng::seed_from_u64(4))
        .unwrap();
    let shuffled = ViewBuilder::new(plain(1.0, 0.0))
        .unwrap()
        .views(&face, &mut DataRng::seed_from_u64(4))
        .unwrap();
    let dev = Default::default();
    let batch = |v: &ViewTokens| stack::<B>(&[v], &dev).unwrap();
    let small = TokenVitConfig {
        embed_dim: 32,
        depth: 2,
        num_heads: 2,
        mlp_ratio: 2,
        ..TokenVitConfig::tiny()
    };
    let diff = |max_slots: usize| {
        let vit = TokenVitConfig {
            max_slots,
            ..small.clone()
        }
        .init::<B>(&dev);
        let a = vit
            .forward(&batch(&still.global[0]))
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let b = vit
            .forward(&batch(&shuffled.global[0]))
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    };
    assert!(diff(0) < 1e-5, "coordinate-only ViT saw the order: {}", diff(0));
    assert!(diff(64) > 1e-3, "slot embeddings ignored: {}", diff(64));
}

#[test]
fn as_a_backbone_the_token_vit_sees_what_pretraining_evaluates() {
    let _rng = crate::common::burn_rng();
    // face-nets' `Backbone::features` cuts the tokens of an aligned face from the tensor; face-ssl's
    // evaluation view cuts them from the image at the landmarks. On template-aligned faces (the
    // student's crops) both must give the same representation, for LAFS' dense landmarks, for
    // the five points, and for DINO's grid.
    use face_nets::Backbone;
    let dev = Default::default();
    let faces: Vec<Face> = common::bundled_faces()
        .into_iter()
        .take(3)
        .map(|b| Face::aligned(b.face.image).unwrap())
        .collect();
    let mut tried = 0;
    for (tokenizer, grid) in [
        (Tokenizer::Landmarks, 7),
        (Tokenizer::Landmarks, 0),
        (Tokenizer::Grid, 7),
    ] {
        let mut config = face_ssl::PretrainConfig::tiny(tokenizer);
        config.views.grid = grid;
        config.views.local_views = 0;
        let vit = config.backbone_config().unwrap().init::<B>(&dev);
        let views = ViewBuilder::new(config.views.clone()).unwrap();
        let reference = face_ssl::embed(&vit, &views, &faces, 4, &dev).unwrap();
        let pixels: Vec<f32> = faces
            .iter()
            .flat_map(|f| face_data::Chw::from_rgb(&f.image, &Normalize::arcface()).data)
            .collect();
        let x = burn::tensor::Tensor::<B, 4>::from_data(
            burn::tensor::TensorData::new(pixels, [faces.len(), 3, 112, 112]),
            &dev,
        );
        let f = face_nets::l2_normalize(vit.features(x), 1e-12);
        let got = face_nets::to_f32_vec(f).unwrap();
        let want: Vec<f32> = reference.concat();
        let diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            diff < 1e-4,
            "{tokenizer:?} grid {grid}: the two tokenisations differ by {diff}"
        );
        assert_eq!(vit.input_size(), 112);
        tried += 1;
    }
    assert_eq!(tried, 3);
}

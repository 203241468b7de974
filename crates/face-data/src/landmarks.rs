//! Landmark lists and landmark-centred patches for LAFS (Sun et al., "LAFS: Landmark-based
//! Facial Self-supervised Learning for Face Recognition", CVPR 2024), with its two
//! landmark-specific augmentations:
//! - **landmark shuffle**: a random subset of the landmarks exchange positions, so the tokens
//!   no longer sit in their usual order ([`shuffle_landmarks`]);
//! - **landmark coordinate perturbation**: every landmark moves by a uniform random offset
//!   ([`perturb_landmarks`]).
//!
//! Both operate on any point list — detected landmarks or the centres of a regular patch grid
//! ([`patch_grid`]), which makes a plain ViT tokenisation a special case.

use image::RgbImage;
use rand::seq::{index, SliceRandom};
use rand::Rng;

use crate::augment::DataRng;
use crate::error::{DataError, Result};
use crate::image_ops::Normalize;

/// Centres of the `n × n` non-overlapping patches of an `size × size` image (row-major),
/// in the pixel-centre convention of [`crate::align`].
///
/// # Errors
/// `n == 0` or `size < n`.
pub fn patch_grid(size: u32, n: u32) -> Result<Vec<[f32; 2]>> {
    if n == 0 || size < n {
        return Err(DataError::param(
            "n",
            format!("a {n}×{n} grid does not fit a {size}-pixel image"),
        ));
    }
    let step = size as f32 / n as f32;
    Ok((0..n)
        .flat_map(|r| (0..n).map(move |c| [(c as f32 + 0.5) * step - 0.5, (r as f32 + 0.5) * step - 0.5]))
        .collect())
}

/// Landmark shuffle: picks `round(fraction · len)` landmarks at random and permutes their
/// positions among themselves (a derangement when at least 2 are picked, so each picked
/// landmark really moves). Returns the picked indices.
///
/// # Errors
/// A fraction outside [0, 1].
pub fn shuffle_landmarks(points: &mut [[f32; 2]], fraction: f64, rng: &mut DataRng) -> Result<Vec<usize>> {
    shuffle_subset(points, fraction, rng)
}

/// The shuffle of [`shuffle_landmarks`] on any items (e.g. whole tokens: a patch with its
/// coordinates): `round(fraction · len)` randomly picked items are deranged among their own
/// places; the others stay. Returns the picked indices.
///
/// # Errors
/// A fraction outside [0, 1].
pub fn shuffle_subset<T: Clone>(items: &mut [T], fraction: f64, rng: &mut DataRng) -> Result<Vec<usize>> {
    if !(0.0..=1.0).contains(&fraction) {
        return Err(DataError::param(
            "fraction",
            format!("{fraction} is not in [0, 1]"),
        ));
    }
    let k = (fraction * items.len() as f64).round() as usize;
    if k < 2 {
        return Ok(Vec::new());
    }
    let picked = index::sample(rng, items.len(), k).into_vec();
    // A random cyclic shift of a shuffled order is a derangement of the picked set.
    let mut order = picked.clone();
    order.shuffle(rng);
    let original: Vec<T> = order.iter().map(|&i| items[i].clone()).collect();
    for (j, &i) in order.iter().enumerate() {
        items[i] = original[(j + 1) % k].clone();
    }
    Ok(picked)
}

/// Landmark coordinate perturbation: adds independent uniform offsets in
/// `[−max_offset, max_offset]` pixels to each coordinate, then clamps into
/// `[0, width−1] × [0, height−1]`.
///
/// # Errors
/// A negative or non-finite offset.
pub fn perturb_landmarks(
    points: &mut [[f32; 2]],
    max_offset: f32,
    width: u32,
    height: u32,
    rng: &mut DataRng,
) -> Result<()> {
    if !(max_offset >= 0.0 && max_offset.is_finite()) {
        return Err(DataError::param(
            "max_offset",
            format!("{max_offset} must be a finite non-negative number"),
        ));
    }
    if max_offset == 0.0 {
        return Ok(());
    }
    let (wx, hy) = ((width.max(1) - 1) as f32, (height.max(1) - 1) as f32);
    for p in points.iter_mut() {
        p[0] = (p[0] + rng.gen_range(-max_offset..=max_offset)).clamp(0.0, wx);
        p[1] = (p[1] + rng.gen_range(-max_offset..=max_offset)).clamp(0.0, hy);
    }
    Ok(())
}

/// Extracts a `patch × patch` patch centred on each point (bilinear, black outside),
/// normalised, as `points.len() × 3 × patch × patch` floats — the token inputs of a
/// landmark-based ViT.
///
/// # Errors
/// `patch == 0` or a non-finite point.
pub fn extract_patches(
    img: &RgbImage,
    points: &[[f32; 2]],
    patch: u32,
    normalize: &Normalize,
) -> Result<Vec<f32>> {
    if patch == 0 {
        return Err(DataError::param("patch", "patch size must be positive"));
    }
    if let Some(p) = points.iter().find(|p| !(p[0].is_finite() && p[1].is_finite())) {
        return Err(DataError::DegenerateLandmarks(format!(
            "non-finite landmark {p:?}"
        )));
    }
    let ps = patch as usize;
    let plane = ps * ps;
    let mut out = vec![0.0f32; points.len() * 3 * plane];
    let half = (patch as f32 - 1.0) / 2.0;
    for (n, p) in points.iter().enumerate() {
        // Translation taking patch pixel (0, 0) to p − half.
        let m = crate::align::Affine2 {
            m: [
                [1.0, 0.0, f64::from(half - p[0])],
                [0.0, 1.0, f64::from(half - p[1])],
            ],
        };
        let px = crate::align::warp_affine_f32(img, &m, patch, patch)?;
        let pixels = px.chunks_exact(3).map(|v| [v[0], v[1], v[2]]);
        normalize.planar_into(pixels, &mut out[n * 3 * plane..(n + 1) * 3 * plane]);
    }
    Ok(out)
}

//! Training augmentations on 8-bit RGB images, with torchvision's sampling rules (the
//! recipes of arcface_torch and DINO are written in them): random resized crop, horizontal
//! flip, colour jitter, random grayscale, Gaussian blur and solarisation. Every transform
//! draws from the caller's seeded [`DataRng`], so a pipeline is reproducible.

use image::RgbImage;
use rand::seq::SliceRandom;
use rand::Rng;

use crate::error::{DataError, Result};

/// The random generator used by augmentations and samplers (portable and seedable).
pub type DataRng = rand_chacha::ChaCha8Rng;

/// One augmentation step.
pub trait Transform: Send + Sync {
    /// Applies the transform (possibly a no-op, for probabilistic ones).
    fn apply(&self, img: RgbImage, rng: &mut DataRng) -> RgbImage;
}

/// Transforms applied in order.
#[derive(Default)]
pub struct Compose {
    steps: Vec<Box<dyn Transform>>,
}

impl Compose {
    /// An empty pipeline.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a step.
    pub fn then(mut self, t: impl Transform + 'static) -> Self {
        self.steps.push(Box::new(t));
        self
    }
}

impl Transform for Compose {
    fn apply(&self, mut img: RgbImage, rng: &mut DataRng) -> RgbImage {
        for s in &self.steps {
            img = s.apply(img, rng);
        }
        img
    }
}

/// Resamples the `[x0, x0+cw) × [y0, y0+ch)` region of `src` to `out_w × out_h` with a
/// triangle (bilinear) filter widened by the scale factor when shrinking — Pillow's
/// antialiased `resize(BILINEAR, box=…)`, which torchvision uses on PIL images.
pub fn resize_region(src: &RgbImage, region: [f64; 4], out_w: u32, out_h: u32) -> RgbImage {
    let [x0, y0, cw, ch] = region;
    let h_weights = filter_weights(x0, cw, out_w as usize, src.width() as usize);
    let v_weights = filter_weights(y0, ch, out_h as usize, src.height() as usize);
    let (sw, sh) = (src.width() as usize, src.height() as usize);
    let raw = src.as_raw();
    // Horizontal pass into a float buffer of sh × out_w × 3.
    let ow = out_w as usize;
    let mut tmp = vec![0.0f32; sh * ow * 3];
    for y in 0..sh {
        let row = &raw[y * sw * 3..(y + 1) * sw * 3];
        for (x, (start, w)) in h_weights.iter().enumerate() {
            let mut acc = [0.0f32; 3];
            for (k, wk) in w.iter().enumerate() {
                let o = (start + k) * 3;
                for c in 0..3 {
                    acc[c] += wk * f32::from(row[o + c]);
                }
            }
            tmp[(y * ow + x) * 3..(y * ow + x) * 3 + 3].copy_from_slice(&acc);
        }
    }
    let mut out = RgbImage::new(out_w, out_h);
    let buf: &mut [u8] = &mut out;
    for (y, (start, w)) in v_weights.iter().enumerate() {
        for x in 0..ow {
            let mut acc = [0.0f32; 3];
            for (k, wk) in w.iter().enumerate() {
                let o = ((start + k) * ow + x) * 3;
                for c in 0..3 {
                    acc[c] += wk * tmp[o + c];
                }
            }
            for c in 0..3 {
                buf[(y * ow + x) * 3 + c] = crate::align::round_u8(acc[c]);
            }
        }
    }
    out
}

/// For each output sample: first source index and normalised weights.
fn filter_weights(start: f64, len: f64, out: usize, src_len: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = len / out as f64;
    let support = scale.max(1.0); // triangle of radius 1, widened when shrinking
    (0..out)
        .map(|i| {
            let center = start + (i as f64 + 0.5) * scale;
            let lo = ((center - support).floor().max(0.0) as usize).min(src_len.saturating_sub(1));
            let hi = ((center + support).ceil() as usize).clamp(lo + 1, src_len);
            let mut w: Vec<f32> = (lo..hi)
                .map(|j| {
                    let d = ((j as f64 + 0.5 - center) / support).abs();
                    (1.0 - d).max(0.0) as f32
                })
                .collect();
            let sum: f32 = w.iter().sum();
            if sum > 0.0 {
                w.iter_mut().for_each(|v| *v /= sum);
            } else {
                // Degenerate region: nearest pixel.
                w.iter_mut().for_each(|v| *v = 0.0);
                w[0] = 1.0;
            }
            (lo, w)
        })
        .collect()
}

/// torchvision `RandomResizedCrop`: a crop of random area fraction in `scale` and aspect ratio
/// (log-uniform) in `ratio`, resized to `width × height`; after 10 failed draws, a central
/// crop with the ratio clamped to the range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomResizedCrop {
    /// Output width.
    pub width: u32,
    /// Output height.
    pub height: u32,
    /// Area fraction range.
    pub scale: (f64, f64),
    /// Aspect-ratio (w/h) range.
    pub ratio: (f64, f64),
}

impl RandomResizedCrop {
    /// torchvision's defaults: scale (0.08, 1), ratio (3/4, 4/3).
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
        }
    }

    /// Sets the area range (DINO: 0.4–1 for global views, 0.05–0.4 for local ones).
    pub fn with_scale(mut self, lo: f64, hi: f64) -> Self {
        self.scale = (lo, hi);
        self
    }

    /// Checks the ranges.
    ///
    /// # Errors
    /// Zero size, or a range that is empty, non-positive or (for scale) above 1.
    pub fn validate(&self) -> Result<()> {
        let (s0, s1) = self.scale;
        let (r0, r1) = self.ratio;
        if self.width == 0
            || self.height == 0
            || !(0.0 < s0 && s0 <= s1 && s1 <= 1.0)
            || !(0.0 < r0 && r0 <= r1 && r1.is_finite())
        {
            return Err(DataError::param("RandomResizedCrop", format!("{self:?}")));
        }
        Ok(())
    }

    /// The crop region `[x, y, w, h]` for an image of `iw × ih`. Ranges that
    /// [`RandomResizedCrop::validate`] would reject are repaired rather than panicking: bounds
    /// are ordered, scale clamped into (0, 1] and ratio into (0, ∞); non-finite values become
    /// torchvision's defaults.
    pub fn sample_region(&self, iw: u32, ih: u32, rng: &mut DataRng) -> [f64; 4] {
        let (w, h) = (f64::from(iw.max(1)), f64::from(ih.max(1)));
        let area = w * h;
        let ordered = |(a, b): (f64, f64), default: (f64, f64)| {
            if a.is_finite() && b.is_finite() {
                (a.min(b), a.max(b))
            } else {
                default
            }
        };
        let (s0, s1) = ordered(self.scale, (0.08, 1.0));
        let (s0, s1) = (s0.clamp(1e-6, 1.0), s1.clamp(1e-6, 1.0));
        let (r0, r1) = ordered(self.ratio, (0.75, 4.0 / 3.0));
        let (r0, r1) = (r0.max(1e-6), r1.max(1e-6));
        let (lr0, lr1) = (r0.ln(), r1.ln());
        for _ in 0..10 {
            let target = area * rng.gen_range(s0..=s1);
            let aspect = rng.gen_range(lr0..=lr1).exp();
            let cw = (target * aspect).sqrt().round();
            let ch = (target / aspect).sqrt().round();
            if cw > 0.0 && ch > 0.0 && cw <= w && ch <= h {
                let x = rng.gen_range(0..=(w - cw) as u32) as f64;
                let y = rng.gen_range(0..=(h - ch) as u32) as f64;
                return [x, y, cw, ch];
            }
        }
        let in_ratio = w / h;
        let (cw, ch) = if in_ratio < r0 {
            (w, (w / r0).round().max(1.0))
        } else if in_ratio > r1 {
            ((h * r1).round().max(1.0), h)
        } else {
            (w, h)
        };
        [((w - cw) / 2.0).round(), ((h - ch) / 2.0).round(), cw, ch]
    }
}

impl Transform for RandomResizedCrop {
    fn apply(&self, img: RgbImage, rng: &mut DataRng) -> RgbImage {
        if img.width() == 0 || img.height() == 0 {
            return img;
        }
        let region = self.sample_region(img.width(), img.height(), rng);
        resize_region(&img, region, self.width, self.height)
    }
}

/// Mirrors left–right with probability `p`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomHorizontalFlip {
    /// Probability.
    pub p: f64,
}

impl Transform for RandomHorizontalFlip {
    fn apply(&self, mut img: RgbImage, rng: &mut DataRng) -> RgbImage {
        if rng.gen_bool(self.p.clamp(0.0, 1.0)) {
            image::imageops::flip_horizontal_in_place(&mut img);
        }
        img
    }
}

/// ITU-R 601 luma, as Pillow's `convert("L")`.
#[inline]
fn luma(px: &[u8]) -> f32 {
    0.299 * f32::from(px[0]) + 0.587 * f32::from(px[1]) + 0.114 * f32::from(px[2])
}

/// torchvision `ColorJitter`: brightness, contrast and saturation factors drawn from
/// `[max(0, 1−v), 1+v]`, hue shift from `[−hue, hue]` (fraction of a turn), applied in a
/// random order; with probability `p` (DINO applies it with 0.8).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColorJitter {
    /// Brightness strength.
    pub brightness: f32,
    /// Contrast strength.
    pub contrast: f32,
    /// Saturation strength.
    pub saturation: f32,
    /// Hue strength, at most 0.5.
    pub hue: f32,
    /// Probability of applying.
    pub p: f64,
}

impl ColorJitter {
    /// DINO's setting: 0.4, 0.4, 0.2, 0.1 with p = 0.8.
    pub fn dino() -> Self {
        Self {
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.2,
            hue: 0.1,
            p: 0.8,
        }
    }
}

fn blend(img: &mut RgbImage, factor: f32, other: impl Fn(&[u8]) -> [f32; 3]) {
    for px in img.chunks_exact_mut(3) {
        let o = other(px);
        for c in 0..3 {
            px[c] = crate::align::round_u8(o[c] + factor * (f32::from(px[c]) - o[c]));
        }
    }
}

/// Rotates the hue of every pixel by `shift` turns (HSV, like torchvision's `adjust_hue`).
pub fn adjust_hue(img: &mut RgbImage, shift: f32) {
    for px in img.chunks_exact_mut(3) {
        let (r, g, b) = (
            f32::from(px[0]) / 255.0,
            f32::from(px[1]) / 255.0,
            f32::from(px[2]) / 255.0,
        );
        let max = r.max(g).max(b);
        let min = r.min(g).min(b);
        let d = max - min;
        if d == 0.0 {
            continue;
        }
        let h = if max == r {
            ((g - b) / d).rem_euclid(6.0)
        } else if max == g {
            (b - r) / d + 2.0
        } else {
            (r - g) / d + 4.0
        } / 6.0;
        let h = (h + shift).rem_euclid(1.0) * 6.0;
        let (s, v) = (d / max, max);
        let i = h.floor();
        let f = h - i;
        let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
        let (r, g, b) = match i as i32 % 6 {
            0 => (v, t, p),
            1 => (q, v, p),
            2 => (p, v, t),
            3 => (p, q, v),
            4 => (t, p, v),
            _ => (v, p, q),
        };
        px[0] = crate::align::round_u8(r * 255.0);
        px[1] = crate::align::round_u8(g * 255.0);
        px[2] = crate::align::round_u8(b * 255.0);
    }
}

impl Transform for ColorJitter {
    fn apply(&self, mut img: RgbImage, rng: &mut DataRng) -> RgbImage {
        if !rng.gen_bool(self.p.clamp(0.0, 1.0)) {
            return img;
        }
        let factor = |rng: &mut DataRng, v: f32| {
            if v > 0.0 {
                rng.gen_range((1.0 - v).max(0.0)..=1.0 + v)
            } else {
                1.0
            }
        };
        let mut order = [0u8, 1, 2, 3];
        order.shuffle(rng);
        for op in order {
            match op {
                0 if self.brightness > 0.0 => {
                    let f = factor(rng, self.brightness);
                    blend(&mut img, f, |_| [0.0; 3]);
                }
                1 if self.contrast > 0.0 => {
                    let f = factor(rng, self.contrast);
                    let n = (img.width() * img.height()).max(1) as f32;
                    let mean = (img.chunks_exact(3).map(luma).sum::<f32>() / n).round();
                    blend(&mut img, f, |_| [mean; 3]);
                }
                2 if self.saturation > 0.0 => {
                    let f = factor(rng, self.saturation);
                    blend(&mut img, f, |px| [luma(px).round(); 3]);
                }
                3 if self.hue > 0.0 && self.hue.is_finite() => {
                    let h = self.hue.min(0.5);
                    let shift = rng.gen_range(-h..=h);
                    adjust_hue(&mut img, shift);
                }
                _ => {}
            }
        }
        img
    }
}

/// Converts to gray (replicated in 3 channels) with probability `p`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomGrayscale {
    /// Probability.
    pub p: f64,
}

impl Transform for RandomGrayscale {
    fn apply(&self, mut img: RgbImage, rng: &mut DataRng) -> RgbImage {
        if rng.gen_bool(self.p.clamp(0.0, 1.0)) {
            for px in img.chunks_exact_mut(3) {
                let l = crate::align::round_u8(luma(px));
                px.copy_from_slice(&[l, l, l]);
            }
        }
        img
    }
}

/// Separable Gaussian blur with edge replication; kernel radius `ceil(3σ)`.
pub fn gaussian_blur(img: &RgbImage, sigma: f32) -> RgbImage {
    if sigma.is_nan() || sigma <= 0.0 || img.width() == 0 || img.height() == 0 {
        return img.clone();
    }
    let r = (3.0 * sigma).ceil() as isize;
    let mut k: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f32 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= s);
    let (w, h) = (img.width() as isize, img.height() as isize);
    let src = img.as_raw();
    let mut tmp = vec![0.0f32; src.len()];
    for y in 0..h {
        for x in 0..w {
            let mut acc = [0.0f32; 3];
            for (j, kv) in k.iter().enumerate() {
                let xx = (x + j as isize - r).clamp(0, w - 1);
                let o = ((y * w + xx) * 3) as usize;
                for c in 0..3 {
                    acc[c] += kv * f32::from(src[o + c]);
                }
            }
            let o = ((y * w + x) * 3) as usize;
            tmp[o..o + 3].copy_from_slice(&acc);
        }
    }
    let mut out = img.clone();
    let buf: &mut [u8] = &mut out;
    for y in 0..h {
        for x in 0..w {
            let mut acc = [0.0f32; 3];
            for (j, kv) in k.iter().enumerate() {
                let yy = (y + j as isize - r).clamp(0, h - 1);
                let o = ((yy * w + x) * 3) as usize;
                for c in 0..3 {
                    acc[c] += kv * tmp[o + c];
                }
            }
            let o = ((y * w + x) * 3) as usize;
            for c in 0..3 {
                buf[o + c] = crate::align::round_u8(acc[c]);
            }
        }
    }
    out
}

/// Gaussian blur with σ uniform in `sigma` and probability `p` (DINO: σ ∈ [0.1, 2]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomGaussianBlur {
    /// σ range in pixels.
    pub sigma: (f32, f32),
    /// Probability.
    pub p: f64,
}

impl Transform for RandomGaussianBlur {
    fn apply(&self, img: RgbImage, rng: &mut DataRng) -> RgbImage {
        let (lo, hi) = self.sigma;
        if !(lo.is_finite() && hi.is_finite()) || lo > hi || !rng.gen_bool(self.p.clamp(0.0, 1.0)) {
            return img;
        }
        let s = rng.gen_range(lo..=hi);
        gaussian_blur(&img, s)
    }
}

/// Inverts every value ≥ `threshold` with probability `p` (DINO's second global view).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomSolarize {
    /// Threshold (128 in DINO).
    pub threshold: u8,
    /// Probability.
    pub p: f64,
}

impl Transform for RandomSolarize {
    fn apply(&self, mut img: RgbImage, rng: &mut DataRng) -> RgbImage {
        if rng.gen_bool(self.p.clamp(0.0, 1.0)) {
            img.iter_mut()
                .filter(|v| **v >= self.threshold)
                .for_each(|v| *v = 255 - *v);
        }
        img
    }
}

/// facenet-pytorch's crop (`extract_face` on a PIL image): the detection box widened by a
/// margin given in *output* pixels (`margin · box side / (size − margin)` in the photo, half on
/// each side), clipped to the photo, truncated to whole pixels, then resized to `size × size`
/// with Pillow's antialiased bilinear filter ([`resize_region`] of the
/// cropped pixels).
///
/// # Errors
/// A zero size, a margin of at least `size`, a non-finite box, or a box with nothing of the
/// photo inside it.
pub fn facenet_crop(src: &RgbImage, bbox: [f32; 4], size: u32, margin: u32) -> Result<RgbImage> {
    if size == 0 || margin >= size {
        return Err(DataError::InvalidParameter {
            name: "margin",
            message: format!("a facenet crop of {size} px cannot take a margin of {margin} px"),
        });
    }
    if bbox.iter().any(|v| !v.is_finite()) {
        return Err(DataError::DegenerateLandmarks(format!(
            "face box {bbox:?} is not finite"
        )));
    }
    let [x0, y0, x1, y1] = bbox.map(f64::from);
    let grow = |lo: f64, hi: f64| f64::from(margin) * (hi - lo) / f64::from(size - margin) / 2.0;
    let (mx, my) = (grow(x0, x1), grow(y0, y1));
    // Python's int() of a non-negative value: truncation.
    let left = (x0 - mx).max(0.0).trunc();
    let top = (y0 - my).max(0.0).trunc();
    let right = (x1 + mx).min(f64::from(src.width())).trunc();
    let bottom = (y1 + my).min(f64::from(src.height())).trunc();
    if right <= left || bottom <= top {
        return Err(DataError::DegenerateLandmarks(format!(
            "face box {bbox:?} covers no pixel of the {}×{} photo",
            src.width(),
            src.height()
        )));
    }
    // Cropped first: Pillow's filter taps then stop at the box's edges, where a resize with
    // a box would read the pixels beyond them.
    let (w, h) = (right - left, bottom - top);
    let cut = image::imageops::crop_imm(src, left as u32, top as u32, w as u32, h as u32).to_image();
    Ok(resize_region(&cut, [0.0, 0.0, w, h], size, size))
}

//! 5-point similarity alignment: least-squares similarity (Umeyama, 1991) from detected
//! landmarks to a template, and bilinear warping with a black border.
//!
//! Coordinates follow OpenCV and scikit-image: pixel `(x, y)` has its centre at integer
//! `(x, y)`, so a template point `(38.29, 51.70)` lies between pixels 38/39 and 51/52. This is
//! the convention of insightface's `norm_crop` (`cv2.warpAffine` of the `estimate_norm`
//! matrix), so features of models trained on its crops are reproduced.

use image::RgbImage;

use crate::error::{DataError, Result};
use crate::image_ops::{Chw, Normalize};

/// The ArcFace 112×112 template (insightface `arcface_dst`): left eye, right eye, nose tip,
/// left and right mouth corners, as seen in the image.
pub const ARCFACE_112: [[f32; 2]; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// dlib's 5-point face template on the unit square (`get_face_chip_details` in
/// `dlib/image_transforms/interpolation.h`), in the order of dlib's 5-point shape predictor:
/// right-eye outer corner, right-eye inner corner, left-eye outer, left-eye inner, nose base
/// (image left/right: indices 0–1 are on the image's right side).
pub const DLIB_5: [[f64; 2]; 5] = [
    [0.8595674595992, 0.2134981538014],
    [0.6460604764104, 0.2289674387677],
    [0.1205750620789, 0.2137274526848],
    [0.3340850613712, 0.2290642403242],
    [0.4901123135679, 0.6277975316475],
];

/// A 2×3 affine map `(x, y) ↦ (m[0][0]·x + m[0][1]·y + m[0][2], m[1][0]·x + m[1][1]·y + m[1][2])`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine2 {
    /// Row-major coefficients, the layout of OpenCV's `M` and `skimage` `params[:2]`.
    pub m: [[f64; 3]; 2],
}

impl Affine2 {
    /// The identity map.
    pub const IDENTITY: Affine2 = Affine2 {
        m: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
    };

    /// Maps a point.
    pub fn apply(&self, p: [f32; 2]) -> [f32; 2] {
        let (x, y) = (f64::from(p[0]), f64::from(p[1]));
        let m = &self.m;
        [
            (m[0][0] * x + m[0][1] * y + m[0][2]) as f32,
            (m[1][0] * x + m[1][1] * y + m[1][2]) as f32,
        ]
    }

    /// The inverse map, or `None` when the linear part is singular.
    pub fn inverse(&self) -> Option<Affine2> {
        let [[a, b, c], [d, e, f]] = self.m;
        let det = a * e - b * d;
        if !det.is_finite() || det.abs() < 1e-12 {
            return None;
        }
        let (ia, ib, id, ie) = (e / det, -b / det, -d / det, a / det);
        Some(Affine2 {
            m: [[ia, ib, -(ia * c + ib * f)], [id, ie, -(id * c + ie * f)]],
        })
    }

    /// Uniform scale of a similarity (`√|det|`).
    pub fn scale(&self) -> f64 {
        (self.m[0][0] * self.m[1][1] - self.m[0][1] * self.m[1][0])
            .abs()
            .sqrt()
    }

    /// The least-squares similarity (rotation, uniform scale, translation; no reflection)
    /// mapping `src[i]` onto `dst[i]` — Umeyama's solution, equal to scikit-image's
    /// `SimilarityTransform.estimate` and dlib's `find_similarity_transform`.
    ///
    /// # Errors
    /// Fewer than 2 points, different lengths, non-finite coordinates, or source points that
    /// all coincide.
    pub fn estimate_similarity(src: &[[f32; 2]], dst: &[[f32; 2]]) -> Result<Affine2> {
        if src.len() != dst.len() {
            return Err(DataError::DegenerateLandmarks(format!(
                "{} source points, {} template points",
                src.len(),
                dst.len()
            )));
        }
        if src.len() < 2 {
            return Err(DataError::DegenerateLandmarks(format!(
                "{} points; a similarity needs 2",
                src.len()
            )));
        }
        if let Some(p) = src
            .iter()
            .chain(dst)
            .find(|p| !(p[0].is_finite() && p[1].is_finite()))
        {
            return Err(DataError::DegenerateLandmarks(format!("non-finite point {p:?}")));
        }
        let n = src.len() as f64;
        let mean = |pts: &[[f32; 2]]| {
            let (sx, sy) = pts.iter().fold((0.0, 0.0), |(sx, sy), p| {
                (sx + f64::from(p[0]), sy + f64::from(p[1]))
            });
            (sx / n, sy / n)
        };
        let (msx, msy) = mean(src);
        let (mdx, mdy) = mean(dst);
        // With centred points s and d, minimise Σ|[a −b; b a]·s + t − d|²: the normal equations
        // decouple to a = Σ(s·d)/Σ|s|², b = Σ(s×d)/Σ|s|².
        let (mut ss, mut dot, mut cross) = (0.0, 0.0, 0.0);
        for (s, d) in src.iter().zip(dst) {
            let (sx, sy) = (f64::from(s[0]) - msx, f64::from(s[1]) - msy);
            let (dx, dy) = (f64::from(d[0]) - mdx, f64::from(d[1]) - mdy);
            ss += sx * sx + sy * sy;
            dot += sx * dx + sy * dy;
            cross += sx * dy - sy * dx;
        }
        let spread = (ss / n).sqrt();
        if spread.is_nan() || spread <= 1e-6 * (1.0 + msx.abs().max(msy.abs())) {
            return Err(DataError::DegenerateLandmarks(format!(
                "all {} source points coincide near ({msx:.2}, {msy:.2})",
                src.len()
            )));
        }
        let (a, b) = (dot / ss, cross / ss);
        if a == 0.0 && b == 0.0 {
            return Err(DataError::DegenerateLandmarks(
                "the template collapses to a point".into(),
            ));
        }
        Ok(Affine2 {
            m: [
                [a, -b, mdx - (a * msx - b * msy)],
                [b, a, mdy - (b * msx + a * msy)],
            ],
        })
    }
}

/// Target landmark positions in an output crop of a given size.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceTemplate {
    /// Landmark targets in output pixels.
    pub points: Vec<[f32; 2]>,
    /// Output width.
    pub width: u32,
    /// Output height.
    pub height: u32,
}

impl FaceTemplate {
    /// The ArcFace template for a square crop of `size` pixels, scaled as insightface's
    /// `estimate_norm` does: sizes that are multiples of 112 scale the template; multiples of
    /// 128 scale it by `size/128` and shift it right by `8·size/128`.
    ///
    /// # Errors
    /// A size that is a multiple of neither 112 nor 128.
    pub fn arcface(size: u32) -> Result<Self> {
        let (ratio, dx) = if size > 0 && size.is_multiple_of(112) {
            (size as f32 / 112.0, 0.0)
        } else if size > 0 && size.is_multiple_of(128) {
            let r = size as f32 / 128.0;
            (r, 8.0 * r)
        } else {
            return Err(DataError::param(
                "size",
                format!("ArcFace crops are multiples of 112 or 128 pixels, not {size}"),
            ));
        };
        let points = ARCFACE_112
            .iter()
            .map(|p| [p[0] * ratio + dx, p[1] * ratio])
            .collect();
        Ok(Self {
            points,
            width: size,
            height: size,
        })
    }

    /// The ArcFace template for a square crop of any `size`: exact insightface placement at
    /// multiples of 112 and 128 ([`FaceTemplate::arcface`]), a plain scaling of the 112
    /// template otherwise (the crop of a model whose input is 160 or 224 pixels).
    ///
    /// # Errors
    /// A zero size.
    pub fn arcface_scaled(size: u32) -> Result<Self> {
        if size > 0 && (size.is_multiple_of(112) || size.is_multiple_of(128)) {
            return Self::arcface(size);
        }
        if size == 0 {
            return Err(DataError::param("size", "a crop of 0 pixels".to_string()));
        }
        let s = size as f32 / 112.0;
        let points = ARCFACE_112.iter().map(|p| [p[0] * s, p[1] * s]).collect();
        Self::custom(points, size, size)
    }

    /// dlib's 5-point template for a `size`-pixel square chip with `padding` (fraction of the
    /// face width added on each side; the age/gender teacher uses 0.2): [`DLIB_5`] placed by
    /// [`FaceTemplate::dlib_chip`].
    ///
    /// # Errors
    /// A zero size or a negative or non-finite padding.
    pub fn dlib(size: u32, padding: f64) -> Result<Self> {
        Self::dlib_chip(&DLIB_5, size, padding)
    }

    /// Points given in dlib's unit-square chip frame (`get_face_chip_details`) placed in a
    /// `size`-pixel square chip with `padding`: point `(padding + p) / (1 + 2·padding) · size`
    /// for each unit-square point `p`. [`DLIB_5`] gives dlib's own template; other point sets
    /// (e.g. another landmarker's points carried into the same frame) reach the same chip.
    ///
    /// # Errors
    /// A zero size or a negative or non-finite padding.
    pub fn dlib_chip(unit_points: &[[f64; 2]], size: u32, padding: f64) -> Result<Self> {
        if size == 0 || !(padding.is_finite() && padding >= 0.0) {
            return Err(DataError::param(
                "padding",
                format!("size {size} and padding {padding} must be positive"),
            ));
        }
        let s = f64::from(size);
        let points = unit_points
            .iter()
            .map(|p| {
                [
                    ((padding + p[0]) / (2.0 * padding + 1.0) * s) as f32,
                    ((padding + p[1]) / (2.0 * padding + 1.0) * s) as f32,
                ]
            })
            .collect();
        Ok(Self {
            points,
            width: size,
            height: size,
        })
    }

    /// A template from explicit points.
    ///
    /// # Errors
    /// Fewer than 2 points, a zero size, or a non-finite point.
    pub fn custom(points: Vec<[f32; 2]>, width: u32, height: u32) -> Result<Self> {
        if points.len() < 2 || width == 0 || height == 0 || points.iter().flatten().any(|v| !v.is_finite()) {
            return Err(DataError::param(
                "template",
                format!("{} points for {width}×{height}", points.len()),
            ));
        }
        Ok(Self {
            points,
            width,
            height,
        })
    }

    /// The similarity mapping `landmarks` (in the source image) onto this template.
    ///
    /// # Errors
    /// As [`Affine2::estimate_similarity`].
    pub fn transform_for(&self, landmarks: &[[f32; 2]]) -> Result<Affine2> {
        Affine2::estimate_similarity(landmarks, &self.points)
    }
}

/// `floor` by truncation (a libm call is avoided on baseline x86-64); exact for |v| < 2⁶³.
#[inline(always)]
fn floor_i64(v: f64) -> i64 {
    let t = v as i64;
    t - i64::from((t as f64) > v)
}

/// One bilinear sample of channel-interleaved `src` at `(x, y)`; neighbours outside the image
/// count as 0 (OpenCV's and scikit-image's constant border).
#[inline(always)]
fn sample3(src: &[u8], w: usize, h: usize, x: f64, y: f64) -> [f32; 3] {
    // Outside (−1, w) × (−1, h) no neighbour has a non-zero weight (and NaN lands here too).
    if !(x > -1.0 && y > -1.0 && x < w as f64 && y < h as f64) {
        return [0.0; 3];
    }
    let (x0, y0) = (floor_i64(x), floor_i64(y));
    let (fx, fy) = ((x - x0 as f64) as f32, (y - y0 as f64) as f32);
    if x0 >= 0 && y0 >= 0 && (x0 as usize) + 1 < w && (y0 as usize) + 1 < h {
        let o = (y0 as usize * w + x0 as usize) * 3;
        let top = &src[o..o + 6];
        let bottom = &src[o + 3 * w..o + 3 * w + 6];
        let mut out = [0.0f32; 3];
        for c in 0..3 {
            let (p00, p01) = (f32::from(top[c]), f32::from(top[c + 3]));
            let (p10, p11) = (f32::from(bottom[c]), f32::from(bottom[c + 3]));
            let t = p00 + fx * (p01 - p00);
            let b = p10 + fx * (p11 - p10);
            out[c] = t + fy * (b - t);
        }
        return out;
    }
    let mut out = [0.0f32; 3];
    let weights = [
        (0, 0, (1.0 - fx) * (1.0 - fy)),
        (1, 0, fx * (1.0 - fy)),
        (0, 1, (1.0 - fx) * fy),
        (1, 1, fx * fy),
    ];
    for (dx, dy, wgt) in weights {
        let (xx, yy) = (x0 + dx, y0 + dy);
        if xx >= 0 && yy >= 0 && (xx as usize) < w && (yy as usize) < h && wgt != 0.0 {
            let o = (yy as usize * w + xx as usize) * 3;
            out[0] += wgt * f32::from(src[o]);
            out[1] += wgt * f32::from(src[o + 1]);
            out[2] += wgt * f32::from(src[o + 2]);
        }
    }
    out
}

/// Rounds a non-negative interpolated value to the nearest 8-bit level (half away from zero,
/// like `f32::round`, without the libm call), clamping into 0–255.
#[inline(always)]
pub(crate) fn round_u8(v: f32) -> u8 {
    (v + 0.5).clamp(0.0, 255.0) as u8
}

/// Walks the output grid row by row, handing each row of (unrounded) RGB samples to `put_row`.
fn warp_rows(
    src: &RgbImage,
    to_dst: &Affine2,
    out_w: u32,
    out_h: u32,
    mut put_row: impl FnMut(usize, &[[f32; 3]]),
) -> Result<()> {
    let inv = to_dst
        .inverse()
        .ok_or_else(|| DataError::DegenerateLandmarks(format!("singular alignment matrix {:?}", to_dst.m)))?;
    let (w, h) = (src.width() as usize, src.height() as usize);
    let raw = src.as_raw();
    let [[a, b, c], [d, e, f]] = inv.m;
    let mut row = vec![[0.0f32; 3]; out_w as usize];
    for v in 0..out_h as usize {
        let (bx, by) = (b * v as f64 + c, e * v as f64 + f);
        for (u, px) in row.iter_mut().enumerate() {
            let uf = u as f64;
            *px = sample3(raw, w, h, a * uf + bx, d * uf + by);
        }
        put_row(v, &row);
    }
    Ok(())
}

/// Warps `src` by `to_dst` (source → output coordinates) into an `out_w × out_h` image,
/// bilinear, black outside, values rounded to `u8` (as `cv2.warpAffine` on 8-bit images).
///
/// # Errors
/// A singular matrix.
pub fn warp_affine(src: &RgbImage, to_dst: &Affine2, out_w: u32, out_h: u32) -> Result<RgbImage> {
    let mut out = RgbImage::new(out_w, out_h);
    let w = out_w as usize;
    let buf: &mut [u8] = &mut out;
    warp_rows(src, to_dst, out_w, out_h, |v, row| {
        for (dst, px) in buf[v * w * 3..(v + 1) * w * 3].chunks_exact_mut(3).zip(row) {
            for c in 0..3 {
                dst[c] = round_u8(px[c]);
            }
        }
    })?;
    Ok(out)
}

/// As [`warp_affine`] but keeps the interpolated values unrounded: `out_h × out_w × 3`
/// floats in 0–255 (scikit-image's `warp(order=1, mode="constant", preserve_range=True)`).
///
/// # Errors
/// A singular matrix.
pub fn warp_affine_f32(src: &RgbImage, to_dst: &Affine2, out_w: u32, out_h: u32) -> Result<Vec<f32>> {
    let mut out = vec![0.0f32; out_w as usize * out_h as usize * 3];
    let w = out_w as usize;
    warp_rows(src, to_dst, out_w, out_h, |v, row| {
        for (dst, px) in out[v * w * 3..(v + 1) * w * 3].chunks_exact_mut(3).zip(row) {
            dst.copy_from_slice(px);
        }
    })?;
    Ok(out)
}

/// Aligns a face to `template` and normalises it in one pass, straight into planar
/// `3 × H × W` floats; `flip` mirrors the crop horizontally (insightface's test-time flip).
/// Interpolated values are rounded to integers first, as the 8-bit crop of
/// `cv2.warpAffine` would be, so features match the reference pipelines.
///
/// # Errors
/// Degenerate landmarks (see [`Affine2::estimate_similarity`]).
pub fn align_face(
    src: &RgbImage,
    landmarks: &[[f32; 2]],
    template: &FaceTemplate,
    normalize: &Normalize,
    flip: bool,
) -> Result<Chw> {
    let m = template.transform_for(landmarks)?;
    warp_normalized(src, &m, template.width, template.height, normalize, flip)
}

/// As [`align_face`], but a face much larger than the crop is first reduced through an image
/// pyramid ([`pyramid_level`]), as dlib's `extract_image_chip` does, instead of being sampled
/// bilinearly from the full-resolution photo (which aliases: at 4× reduction bilinear sampling
/// reads 1 pixel in 16). The dlib-trained networks (the age/gender teacher) saw such chips.
///
/// # Errors
/// Degenerate landmarks (see [`Affine2::estimate_similarity`]).
pub fn align_face_pyramid(
    src: &RgbImage,
    landmarks: &[[f32; 2]],
    template: &FaceTemplate,
    normalize: &Normalize,
    flip: bool,
) -> Result<Chw> {
    let m = template.transform_for(landmarks)?;
    let (level, m) = pyramid_level(src, &m, template.width, template.height);
    warp_normalized(&level, &m, template.width, template.height, normalize, flip)
}

/// Halves an image: a separable `[1 4 6 4 1] / 16` binomial low-pass (edge pixels repeated),
/// then every other pixel from the first; level pixel `k` sits at source pixel `2k`. Values are
/// rounded to 8 bits, as each level of dlib's `pyramid_down<2>` is.
pub fn pyramid_down(src: &RgbImage) -> RgbImage {
    const K: [f32; 5] = [1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0];
    let (w, h) = (src.width() as usize, src.height() as usize);
    let (ow, oh) = (w.div_ceil(2), h.div_ceil(2));
    let raw = src.as_raw();
    let clamp = |i: isize, n: usize| i.clamp(0, n as isize - 1) as usize;
    // Vertical pass on the kept rows, then horizontal on the kept columns.
    let mut rows = vec![0f32; oh * w * 3];
    for (oy, row) in rows.chunks_exact_mut(w * 3).enumerate() {
        for (k, wk) in K.iter().enumerate() {
            let y = clamp(2 * oy as isize + k as isize - 2, h);
            let line = &raw[y * w * 3..(y + 1) * w * 3];
            row.iter_mut()
                .zip(line)
                .for_each(|(r, &v)| *r += wk * f32::from(v));
        }
    }
    let mut out = RgbImage::new(ow as u32, oh as u32);
    let buf: &mut [u8] = &mut out;
    for oy in 0..oh {
        let row = &rows[oy * w * 3..(oy + 1) * w * 3];
        for ox in 0..ow {
            let mut px = [0f32; 3];
            for (k, wk) in K.iter().enumerate() {
                let x = clamp(2 * ox as isize + k as isize - 2, w);
                for c in 0..3 {
                    px[c] += wk * row[x * 3 + c];
                }
            }
            let o = (oy * ow + ox) * 3;
            for c in 0..3 {
                buf[o + c] = round_u8(px[c]);
            }
        }
    }
    out
}

/// The pyramid level to sample an `out_w × out_h` crop from, with the map from that level:
/// the source is halved while the region the crop covers would still span more than the
/// crop's area after halving (dlib's `extract_image_chips` rule). A crop at or above the
/// source's scale uses the source itself.
pub fn pyramid_level<'a>(
    src: &'a RgbImage,
    to_dst: &Affine2,
    out_w: u32,
    out_h: u32,
) -> (std::borrow::Cow<'a, RgbImage>, Affine2) {
    let s = to_dst.scale();
    let area = f64::from(out_w) * f64::from(out_h);
    if !(s.is_finite() && s > 0.0) {
        return (std::borrow::Cow::Borrowed(src), *to_dst);
    }
    // The covered region's area in source pixels.
    let mut covered = area / (s * s);
    let mut level = std::borrow::Cow::Borrowed(src);
    let mut m = *to_dst;
    while covered / 4.0 > area && level.width() > 1 && level.height() > 1 {
        level = std::borrow::Cow::Owned(pyramid_down(&level));
        // A level point q is the source point 2q.
        for row in &mut m.m {
            row[0] *= 2.0;
            row[1] *= 2.0;
        }
        covered /= 4.0;
    }
    (level, m)
}

/// Warps and normalises into planar floats (the shared body of the `align_face` variants).
fn warp_normalized(
    src: &RgbImage,
    m: &Affine2,
    out_w: u32,
    out_h: u32,
    normalize: &Normalize,
    flip: bool,
) -> Result<Chw> {
    let (w, h) = (out_w as usize, out_h as usize);
    let mut out = Chw::zeros(3, h, w);
    let (scale, shift) = normalize.affine();
    let order = normalize.order.indices();
    let (p0, rest) = out.data.split_at_mut(w * h);
    let (p1, p2) = rest.split_at_mut(w * h);
    let mut planes = [p0, p1, p2];
    warp_rows(src, m, out_w, out_h, |v, row| {
        for (k, plane) in planes.iter_mut().enumerate() {
            let ch = order[k];
            let (s, t) = (scale[ch], shift[ch]);
            let dst = &mut plane[v * w..(v + 1) * w];
            let value = |px: &[f32; 3]| f32::from(round_u8(px[ch])) * s + t;
            if flip {
                dst.iter_mut().rev().zip(row).for_each(|(d, px)| *d = value(px));
            } else {
                dst.iter_mut().zip(row).for_each(|(d, px)| *d = value(px));
            }
        }
    })?;
    Ok(out)
}

/// Mirrors an image left–right in place.
pub fn flip_horizontal(img: &mut RgbImage) {
    image::imageops::flip_horizontal_in_place(img);
}

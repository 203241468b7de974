//! Multi-crop views of a face as token sequences (DINO's 2 global + N local views), in two
//! tokenisations:
//!
//! - [`Tokenizer::Grid`] — plain DINO: a view is a random resized crop, cut into a regular grid
//!   of `patch × patch` tokens (global views `image_size`, local views `local_size` pixels).
//! - [`Tokenizer::Landmarks`] — LAFS: tokens are patches centred on facial landmarks. The five
//!   detected points (eyes, nose, mouth corners) give a similarity from the ArcFace template to
//!   the face; a dense `grid × grid` landmark set laid on the template is carried through it, so
//!   the dense points follow the face (`grid = 0` uses the five points themselves). Each view
//!   applies LAFS' two augmentations on top of DINO's: **landmark coordinate perturbation**
//!   (every point moves by at most `perturb` pixels before its patch is cut) and **landmark
//!   shuffle** (a `shuffle` fraction of the tokens trade slots, each keeping its own patch and
//!   coordinates). A local view is the `local_tokens` landmarks nearest a random anchor
//!   landmark (a face part), from its own augmented copy of the face.
//!
//! Photometric augmentations follow DINO: colour jitter (p 0.8), grayscale (p 0.2), Gaussian
//! blur (p 1.0 / 0.1 on the two global views, 0.5 on local ones; σ scaled to the face size) and
//! solarisation on the second global view (p 0.2). A flip mirrors the image and swaps the left
//! and right landmarks, so a slot keeps its meaning.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use face_data::augment::{
    resize_region, ColorJitter, DataRng, RandomGaussianBlur, RandomGrayscale, RandomResizedCrop,
    RandomSolarize, Transform,
};
use face_data::landmarks::{extract_patches, patch_grid, perturb_landmarks, shuffle_subset};
use face_data::{Affine2, FaceTemplate, Normalize};
use image::RgbImage;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SslError};
use face_nets::TokenBatch;

/// How a view becomes tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tokenizer {
    /// A regular patch grid (DINO).
    Grid,
    /// Patches centred on facial landmarks (LAFS).
    Landmarks,
}

impl std::str::FromStr for Tokenizer {
    type Err = SslError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "grid" | "dino" => Ok(Self::Grid),
            "landmarks" | "lafs" => Ok(Self::Landmarks),
            other => Err(SslError::config(
                "views.tokenizer",
                format!("unknown tokenizer `{other}` (grid or landmarks)"),
            )),
        }
    }
}

/// Multi-crop view settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ViewConfig {
    /// Grid (DINO) or landmark (LAFS) tokens.
    pub tokenizer: Tokenizer,
    /// Side of a global view, pixels (a multiple of 112 or 128 for landmark tokens).
    pub image_size: u32,
    /// Side of a token patch, pixels (must equal the ViT's `patch_size`).
    pub patch: u32,
    /// Grid: tokens per side of a global view. Landmarks: side of the dense landmark grid
    /// (0 = the five detected points).
    pub grid: u32,
    /// Area fraction range of the global crops.
    pub global_scale: [f64; 2],
    /// Local views per image.
    pub local_views: usize,
    /// Grid: area fraction range of the local crops.
    pub local_scale: [f64; 2],
    /// Grid: side of a local view, pixels (a multiple of `patch`).
    pub local_size: u32,
    /// Landmarks: tokens of a local view (the landmarks nearest its anchor).
    pub local_tokens: usize,
    /// Fraction of a view's tokens that trade slots (landmark shuffle).
    pub shuffle: f64,
    /// Largest landmark displacement, pixels at `image_size` (coordinate perturbation).
    pub perturb: f32,
    /// Horizontal flip probability.
    pub flip: f64,
    /// DINO's colour jitter, grayscale, blur and solarisation.
    pub photometric: bool,
}

impl Default for ViewConfig {
    /// LAFS on 112-pixel faces: 7×7 dense landmarks, 16-pixel patches, 2 global + 6 local views
    /// of 9 landmarks, shuffle 0.2, perturbation ±3 px.
    fn default() -> Self {
        Self {
            tokenizer: Tokenizer::Landmarks,
            image_size: 112,
            patch: 16,
            grid: 7,
            global_scale: [0.6, 1.0],
            local_views: 6,
            local_scale: [0.15, 0.4],
            local_size: 48,
            local_tokens: 9,
            shuffle: 0.2,
            perturb: 3.0,
            flip: 0.5,
            photometric: true,
        }
    }
}

impl ViewConfig {
    /// Plain DINO on 112-pixel faces: a 7×7 grid of 16-pixel patches, 48-pixel local crops.
    pub fn dino() -> Self {
        Self {
            tokenizer: Tokenizer::Grid,
            global_scale: [0.4, 1.0],
            shuffle: 0.0,
            perturb: 0.0,
            ..Self::default()
        }
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// The first offending key.
    pub fn validate(&self) -> Result<()> {
        let c = SslError::config;
        if self.patch == 0 || self.image_size < self.patch {
            return Err(c(
                "views.patch",
                format!("{} px patches on {} px views", self.patch, self.image_size),
            ));
        }
        let range_ok = |r: [f64; 2]| 0.0 < r[0] && r[0] <= r[1] && r[1] <= 1.0;
        if !range_ok(self.global_scale) {
            return Err(c(
                "views.global_scale",
                format!("{:?} is not a range in (0, 1]", self.global_scale),
            ));
        }
        if !(0.0..=1.0).contains(&self.shuffle) {
            return Err(c("views.shuffle", format!("{} is not in [0, 1]", self.shuffle)));
        }
        if !(self.perturb >= 0.0 && self.perturb.is_finite()) {
            return Err(c(
                "views.perturb",
                format!("{} must be finite and ≥ 0", self.perturb),
            ));
        }
        if !(0.0..=1.0).contains(&self.flip) {
            return Err(c("views.flip", format!("{} is not in [0, 1]", self.flip)));
        }
        match self.tokenizer {
            Tokenizer::Grid => {
                if self.grid == 0 || self.grid * self.patch > self.image_size {
                    return Err(c(
                        "views.grid",
                        format!(
                            "{0}×{0} patches of {1} px do not fit {2} px",
                            self.grid, self.patch, self.image_size
                        ),
                    ));
                }
                if self.local_views > 0 {
                    if !range_ok(self.local_scale) {
                        return Err(c(
                            "views.local_scale",
                            format!("{:?} is not a range in (0, 1]", self.local_scale),
                        ));
                    }
                    if self.local_size < self.patch || !self.local_size.is_multiple_of(self.patch) {
                        return Err(c(
                            "views.local_size",
                            format!(
                                "{} px is not a positive multiple of the {} px patch",
                                self.local_size, self.patch
                            ),
                        ));
                    }
                }
            }
            Tokenizer::Landmarks => {
                FaceTemplate::arcface(self.image_size).map_err(|e| c("views.image_size", e.to_string()))?;
                if self.local_views > 0 && !(1..=self.landmark_count()).contains(&self.local_tokens) {
                    return Err(c(
                        "views.local_tokens",
                        format!("{} of {} landmarks", self.local_tokens, self.landmark_count()),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Landmarks per face in landmark mode (`grid²`, or 5).
    pub fn landmark_count(&self) -> usize {
        if self.grid == 0 {
            5
        } else {
            (self.grid * self.grid) as usize
        }
    }

    /// Tokens of a global view.
    pub fn global_tokens(&self) -> usize {
        match self.tokenizer {
            Tokenizer::Grid => (self.grid * self.grid) as usize,
            Tokenizer::Landmarks => self.landmark_count(),
        }
    }

    /// Tokens of a local view.
    pub fn local_view_tokens(&self) -> usize {
        match self.tokenizer {
            Tokenizer::Grid => ((self.local_size / self.patch.max(1)).pow(2)) as usize,
            Tokenizer::Landmarks => self.local_tokens,
        }
    }

    /// Slots a ViT needs for these views.
    pub fn slots(&self) -> usize {
        self.global_tokens().max(self.local_view_tokens())
    }
}

/// A face image with its five landmarks (left eye, right eye, nose, left and right mouth
/// corners, in image pixels) — an aligned crop or a whole photo.
#[derive(Debug, Clone)]
pub struct Face {
    /// The image.
    pub image: RgbImage,
    /// The five landmarks, image pixels.
    pub landmarks: [[f32; 2]; 5],
}

impl Face {
    /// Aligns a face in a photo to the ArcFace template at `size` pixels (a similarity fitted
    /// on the five `landmarks`, as the teachers' crops are made) and carries the landmarks into
    /// the crop.
    ///
    /// # Errors
    /// A size that is not a multiple of 112 or 128, or degenerate landmarks.
    pub fn align(photo: &RgbImage, landmarks: &[[f32; 2]; 5], size: u32) -> Result<Self> {
        let to_crop = FaceTemplate::arcface(size)?.transform_for(landmarks)?;
        Ok(Self {
            image: face_data::warp_affine(photo, &to_crop, size, size)?,
            landmarks: landmarks.map(|p| to_crop.apply(p)),
        })
    }

    /// An aligned ArcFace crop whose landmarks are taken to sit on the template (when the
    /// detector's points are not at hand).
    ///
    /// # Errors
    /// A crop whose side is not a multiple of 112 or 128, or not square.
    pub fn aligned(image: RgbImage) -> Result<Self> {
        if image.width() != image.height() {
            return Err(SslError::Data(format!(
                "an aligned crop is square, not {}×{}",
                image.width(),
                image.height()
            )));
        }
        let t = FaceTemplate::arcface(image.width())?;
        let mut landmarks = [[0.0; 2]; 5];
        landmarks.copy_from_slice(&t.points[..5]);
        Ok(Self { image, landmarks })
    }
}

/// One view as tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewTokens {
    /// `t × 3·p·p` patch values, token-major, channel-planar, ArcFace-normalised.
    pub patches: Vec<f32>,
    /// Token centres in `[−1, 1]` view coordinates (x, y).
    pub coords: Vec<[f32; 2]>,
    /// Slot of each token.
    pub slots: Vec<u32>,
}

impl ViewTokens {
    /// Tokens in the view.
    pub fn len(&self) -> usize {
        self.coords.len()
    }

    /// `true` for a view without tokens.
    pub fn is_empty(&self) -> bool {
        self.coords.is_empty()
    }

    /// Landmark shuffle: a `fraction` of the tokens trade slots; each moved token keeps its
    /// patch and coordinates, only its slot changes. Returns the slots that changed hands.
    ///
    /// # Errors
    /// A fraction outside [0, 1].
    pub fn shuffle(&mut self, fraction: f64, rng: &mut DataRng) -> Result<Vec<usize>> {
        let t = self.len();
        let mut order: Vec<usize> = (0..t).collect();
        let picked = shuffle_subset(&mut order, fraction, rng)?;
        if picked.is_empty() {
            return Ok(picked);
        }
        let per = self.patches.len() / t.max(1);
        let (old_p, old_c) = (self.patches.clone(), self.coords.clone());
        for (j, &from) in order.iter().enumerate() {
            self.patches[j * per..(j + 1) * per].copy_from_slice(&old_p[from * per..(from + 1) * per]);
            self.coords[j] = old_c[from];
        }
        Ok(picked)
    }
}

/// The views of one face for one step.
#[derive(Debug, Clone)]
pub struct FaceViews {
    /// The two global views.
    pub global: [ViewTokens; 2],
    /// The local views.
    pub local: Vec<ViewTokens>,
}

/// Builds views from faces (see the module documentation).
#[derive(Debug, Clone)]
pub struct ViewBuilder {
    config: ViewConfig,
    normalize: Normalize,
    /// The five template points at `image_size`.
    template: Vec<[f32; 2]>,
    /// The dense landmarks on the template (landmark mode).
    dense: Vec<[f32; 2]>,
    /// For each landmark, all landmarks by template distance (local views).
    neighbours: Vec<Vec<usize>>,
}

/// Which photometric recipe a view gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ViewKind {
    Global1,
    Global2,
    Local,
}

/// The centres of an `n × n` grid of `patch`-pixel patches covering the central `n·patch`
/// pixels of a `size`-pixel view: the same layout face-nets' token ViT cuts from an aligned face
/// ([`face_nets::TokenLayout::Grid`]), so one rule serves the views and the backbone.
fn centred_grid(size: u32, n: u32, patch: u32) -> Vec<[f32; 2]> {
    face_nets::TokenInput {
        image_size: size as usize,
        layout: face_nets::TokenLayout::Grid { n: n as usize },
    }
    .centres(patch as usize)
}

/// Pixel centre `p` in a `size`-pixel view → `[−1, 1]`.
fn to_unit(p: [f32; 2], size: u32) -> [f32; 2] {
    let s = size as f32;
    [(p[0] + 0.5) / s * 2.0 - 1.0, (p[1] + 0.5) / s * 2.0 - 1.0]
}

impl ViewBuilder {
    /// A builder for `config`.
    ///
    /// # Errors
    /// As [`ViewConfig::validate`].
    pub fn new(config: ViewConfig) -> Result<Self> {
        config.validate()?;
        let (template, dense) = match config.tokenizer {
            Tokenizer::Grid => (Vec::new(), Vec::new()),
            Tokenizer::Landmarks => {
                let t = FaceTemplate::arcface(config.image_size)?.points;
                let dense = if config.grid == 0 {
                    t.clone()
                } else {
                    patch_grid(config.image_size, config.grid)?
                };
                (t, dense)
            }
        };
        let neighbours = dense
            .iter()
            .map(|a| {
                let mut idx: Vec<usize> = (0..dense.len()).collect();
                let d = |i: &usize| (dense[*i][0] - a[0]).powi(2) + (dense[*i][1] - a[1]).powi(2);
                idx.sort_by(|x, y| d(x).total_cmp(&d(y)).then(x.cmp(y)));
                idx
            })
            .collect();
        Ok(Self {
            config,
            normalize: Normalize::arcface(),
            template,
            dense,
            neighbours,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ViewConfig {
        &self.config
    }

    fn photometric(&self, img: RgbImage, kind: ViewKind, rng: &mut DataRng) -> RgbImage {
        if !self.config.photometric {
            return img;
        }
        // DINO's σ ∈ [0.1, 2] is for 224-pixel views; scale it to ours.
        let s = self.config.image_size as f32 / 224.0;
        let blur = |p: f64| RandomGaussianBlur {
            sigma: (0.1 * s, 2.0 * s),
            p,
        };
        let img = ColorJitter::dino().apply(img, rng);
        let img = RandomGrayscale { p: 0.2 }.apply(img, rng);
        match kind {
            ViewKind::Global1 => blur(1.0).apply(img, rng),
            ViewKind::Global2 => {
                let img = blur(0.1).apply(img, rng);
                RandomSolarize {
                    threshold: 128,
                    p: 0.2,
                }
                .apply(img, rng)
            }
            ViewKind::Local => blur(0.5).apply(img, rng),
        }
    }

    /// A random resized crop of `face` to `out` pixels and the five landmarks in it, flipped
    /// with the configured probability (left and right landmarks swapped).
    fn crop(&self, face: &Face, scale: [f64; 2], out: u32, rng: &mut DataRng) -> (RgbImage, [[f32; 2]; 5]) {
        let rrc = RandomResizedCrop::new(out, out).with_scale(scale[0], scale[1]);
        let region = rrc.sample_region(face.image.width(), face.image.height(), rng);
        let [x0, y0, cw, ch] = region;
        let mut img = resize_region(&face.image, region, out, out);
        let (sx, sy) = (f64::from(out) / cw, f64::from(out) / ch);
        let mut lm = face.landmarks.map(|p| {
            [
                ((f64::from(p[0]) + 0.5 - x0) * sx - 0.5) as f32,
                ((f64::from(p[1]) + 0.5 - y0) * sy - 0.5) as f32,
            ]
        });
        if rng.gen_bool(self.config.flip) {
            image::imageops::flip_horizontal_in_place(&mut img);
            let w = (out - 1) as f32;
            let m = lm.map(|p| [w - p[0], p[1]]);
            lm = [m[1], m[0], m[2], m[4], m[3]];
        }
        (img, lm)
    }

    /// The landmark positions (all slots) for a view whose five points are `lm`.
    fn landmark_points(&self, lm: &[[f32; 2]; 5]) -> Result<Vec<[f32; 2]>> {
        if self.config.grid == 0 {
            return Ok(lm.to_vec());
        }
        let to_view = Affine2::estimate_similarity(&self.template, lm)?;
        Ok(self.dense.iter().map(|&p| to_view.apply(p)).collect())
    }

    /// Tokens of `img` at `points` (pixels), with their slots.
    fn tokens(&self, img: &RgbImage, points: &[[f32; 2]], slots: Vec<u32>) -> Result<ViewTokens> {
        let patches = extract_patches(img, points, self.config.patch, &self.normalize)?;
        let size = img.width();
        Ok(ViewTokens {
            patches,
            coords: points.iter().map(|&p| to_unit(p, size)).collect(),
            slots,
        })
    }

    /// A landmark-token view: all landmarks, or the `subset` nearest a random anchor.
    fn landmark_view(
        &self,
        face: &Face,
        kind: ViewKind,
        local: bool,
        rng: &mut DataRng,
    ) -> Result<ViewTokens> {
        let c = &self.config;
        let (img, lm) = self.crop(face, c.global_scale, c.image_size, rng);
        let img = self.photometric(img, kind, rng);
        let mut points = self.landmark_points(&lm)?;
        perturb_landmarks(&mut points, c.perturb, img.width(), img.height(), rng)?;
        let chosen: Vec<usize> = if local {
            let anchor = rng.gen_range(0..points.len());
            let mut s = self.neighbours[anchor][..c.local_tokens].to_vec();
            s.sort_unstable();
            s
        } else {
            (0..points.len()).collect()
        };
        let pts: Vec<[f32; 2]> = chosen.iter().map(|&i| points[i]).collect();
        let mut v = self.tokens(&img, &pts, chosen.iter().map(|&i| i as u32).collect())?;
        v.shuffle(c.shuffle, rng)?;
        Ok(v)
    }

    /// A grid-token view: a random resized crop to `size`, cut into `size/patch` per side.
    fn grid_view(&self, face: &Face, kind: ViewKind, rng: &mut DataRng) -> Result<ViewTokens> {
        let c = &self.config;
        let (scale, size, n) = match kind {
            ViewKind::Local => (c.local_scale, c.local_size, c.local_size / c.patch),
            _ => (c.global_scale, c.image_size, c.grid),
        };
        let (img, _) = self.crop(face, scale, size, rng);
        let img = self.photometric(img, kind, rng);
        let points = centred_grid(size, n, c.patch);
        let mut v = self.tokens(&img, &points, (0..points.len() as u32).collect())?;
        v.shuffle(c.shuffle, rng)?;
        Ok(v)
    }

    /// The 2 global + `local_views` local views of `face`.
    ///
    /// # Errors
    /// Degenerate landmarks (the similarity cannot be fitted).
    pub fn views(&self, face: &Face, rng: &mut DataRng) -> Result<FaceViews> {
        let make = |kind: ViewKind, rng: &mut DataRng| match self.config.tokenizer {
            Tokenizer::Grid => self.grid_view(face, kind, rng),
            Tokenizer::Landmarks => self.landmark_view(face, kind, kind == ViewKind::Local, rng),
        };
        let g1 = make(ViewKind::Global1, rng)?;
        let g2 = make(ViewKind::Global2, rng)?;
        let local = (0..self.config.local_views)
            .map(|_| make(ViewKind::Local, rng))
            .collect::<Result<Vec<_>>>()?;
        Ok(FaceViews {
            global: [g1, g2],
            local,
        })
    }

    /// The deterministic view used to embed a face (no augmentation): the whole image resized
    /// to `image_size`, all tokens in their own slots.
    ///
    /// # Errors
    /// Degenerate landmarks.
    pub fn eval_view(&self, face: &Face) -> Result<ViewTokens> {
        let c = &self.config;
        let (w, h) = (face.image.width(), face.image.height());
        let img = resize_region(
            &face.image,
            [0.0, 0.0, f64::from(w), f64::from(h)],
            c.image_size,
            c.image_size,
        );
        let (sx, sy) = (c.image_size as f32 / w as f32, c.image_size as f32 / h as f32);
        match c.tokenizer {
            Tokenizer::Grid => {
                let points = centred_grid(c.image_size, c.grid, c.patch);
                self.tokens(&img, &points, (0..points.len() as u32).collect())
            }
            Tokenizer::Landmarks => {
                let lm = face
                    .landmarks
                    .map(|p| [(p[0] + 0.5) * sx - 0.5, (p[1] + 0.5) * sy - 0.5]);
                let points = self.landmark_points(&lm)?;
                self.tokens(&img, &points, (0..points.len() as u32).collect())
            }
        }
    }
}

/// Stacks views with equal token counts into a batch.
///
/// # Errors
/// No views, or views of different lengths.
pub fn stack<B: Backend>(views: &[&ViewTokens], device: &B::Device) -> Result<TokenBatch<B>> {
    let first = views
        .first()
        .ok_or_else(|| SslError::Data("no views to stack".into()))?;
    let (t, per) = (first.len(), first.patches.len() / first.len().max(1));
    if let Some(bad) = views.iter().find(|v| v.len() != t || v.patches.len() != t * per) {
        return Err(SslError::Data(format!(
            "views of {} and {} tokens cannot share a batch",
            t,
            bad.len()
        )));
    }
    let n = views.len();
    let patches: Vec<f32> = views.iter().flat_map(|v| v.patches.iter().copied()).collect();
    let coords: Vec<f32> = views
        .iter()
        .flat_map(|v| v.coords.iter().flatten().copied())
        .collect();
    let slots: Vec<i64> = views
        .iter()
        .flat_map(|v| v.slots.iter().map(|&s| i64::from(s)))
        .collect();
    Ok(TokenBatch {
        patches: Tensor::from_data(TensorData::new(patches, [n, t, per]), device),
        coords: Tensor::from_data(TensorData::new(coords, [n, t, 2]), device),
        slots: Tensor::<B, 2, Int>::from_data(TensorData::new(slots, [n, t]), device),
    })
}

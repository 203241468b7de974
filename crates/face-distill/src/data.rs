//! Training and validation faces, row-aligned with the teachers' targets (and identity labels
//! where known), and the batches built from them: [`FaceSet`] holds aligned crops in memory,
//! [`StreamedFaces`] reads each face from its source and its targets from the cache file when a
//! batch needs them (memory O(batch), for sets larger than RAM). Both give the trainer the same
//! crops, so a run trains to the same weights on either ([`TrainFaces`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use face_data::augment::{ColorJitter, Compose, RandomGrayscale, RandomHorizontalFlip, RandomResizedCrop};
use face_data::{Chw, DataRng, FaceSource, FaceTemplate, Normalize, Transform};
use face_teachers::{CacheFile, CacheRow, TargetCache};
use image::RgbImage;
use rand::SeedableRng;
use rayon::prelude::*;

use crate::config::AugmentConfig;
use crate::error::{DistillError, Result};

/// The teachers' outputs for a set of faces (row `i` belongs to face `i`).
#[derive(Debug, Clone, PartialEq)]
pub struct Targets {
    /// Embedding width.
    pub dim: usize,
    /// `N × dim` unit embeddings of the identity teacher.
    pub embeddings: Vec<f32>,
    /// The age (years) of each bin.
    pub age_bins: Vec<f32>,
    /// `N × bins` age distributions.
    pub age_probs: Vec<f32>,
    /// `N` expected ages.
    pub expected_age: Vec<f32>,
    /// `N` probabilities of "male".
    pub p_male: Vec<f32>,
}

impl Targets {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.p_male.len()
    }

    /// True when there is no row.
    pub fn is_empty(&self) -> bool {
        self.p_male.is_empty()
    }

    /// Checks that every array has `n` rows and finite values.
    fn validate(&self) -> Result<()> {
        let n = self.len();
        let k = self.age_bins.len();
        if self.dim == 0 || k < 2 {
            return Err(DistillError::Data(format!(
                "targets need dim ≥ 1 and ≥ 2 age bins, got {} and {k}",
                self.dim
            )));
        }
        for (name, len, want) in [
            ("embeddings", self.embeddings.len(), n * self.dim),
            ("age_probs", self.age_probs.len(), n * k),
            ("expected_age", self.expected_age.len(), n),
        ] {
            if len != want {
                return Err(DistillError::Data(format!(
                    "targets `{name}` has {len} values, {n} rows need {want}"
                )));
            }
        }
        for (name, v) in [
            ("embeddings", &self.embeddings),
            ("age_probs", &self.age_probs),
            ("expected_age", &self.expected_age),
            ("p_male", &self.p_male),
        ] {
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(DistillError::Data(format!(
                    "targets `{name}` value {i} is not finite"
                )));
            }
        }
        Ok(())
    }

    fn select(&self, rows: &[usize]) -> Self {
        let k = self.age_bins.len();
        let gather = |v: &[f32], w: usize| {
            rows.iter()
                .flat_map(|&r| v[r * w..(r + 1) * w].iter().copied())
                .collect()
        };
        Self {
            dim: self.dim,
            embeddings: gather(&self.embeddings, self.dim),
            age_bins: self.age_bins.clone(),
            age_probs: gather(&self.age_probs, k),
            expected_age: gather(&self.expected_age, 1),
            p_male: gather(&self.p_male, 1),
        }
    }
}

/// Faces for the student: aligned 8-bit crops of the student's input size, their teacher
/// targets and, for validation, identity labels.
#[derive(Debug, Clone)]
pub struct FaceSet {
    ids: Vec<String>,
    images: Vec<RgbImage>,
    targets: Targets,
    labels: Option<Vec<u32>>,
    attributes: Option<Attributes>,
}

/// Ground-truth age and gender where known (one entry per face; `None` = unknown).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Attributes {
    /// Age in years.
    pub age: Vec<Option<f32>>,
    /// `true` for male.
    pub male: Vec<Option<bool>>,
}

impl FaceSet {
    /// A set from parts.
    ///
    /// # Errors
    /// Mismatched lengths, crops of different sizes or not square, non-finite targets,
    /// duplicated ids.
    pub fn new(
        ids: Vec<String>,
        images: Vec<RgbImage>,
        targets: Targets,
        labels: Option<Vec<u32>>,
    ) -> Result<Self> {
        let n = ids.len();
        if n == 0 {
            return Err(DistillError::Data("a face set needs at least one face".into()));
        }
        if images.len() != n || targets.len() != n || labels.as_ref().is_some_and(|l| l.len() != n) {
            return Err(DistillError::Data(format!(
                "{n} ids, {} images, {} target rows, {} labels: all must match",
                images.len(),
                targets.len(),
                labels.as_ref().map_or(n, Vec::len)
            )));
        }
        targets.validate()?;
        let (w, h) = images[0].dimensions();
        if w != h {
            return Err(DistillError::Data(format!(
                "crops must be square, `{}` is {w}×{h}",
                ids[0]
            )));
        }
        if let Some(i) = images.iter().position(|im| im.dimensions() != (w, h)) {
            return Err(DistillError::Data(format!(
                "crop `{}` is {:?}, the others {w}×{h}",
                ids[i],
                images[i].dimensions()
            )));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(d) = ids.iter().find(|id| !seen.insert(id.as_str())) {
            return Err(DistillError::Data(format!("face id `{d}` appears twice")));
        }
        Ok(Self {
            ids,
            images,
            targets,
            labels,
            attributes: None,
        })
    }

    /// Attaches ground-truth ages and genders, so evaluation also reports the student's (and
    /// the teacher's) error against them.
    ///
    /// # Errors
    /// Lengths that differ from the set's, or a negative or non-finite age.
    pub fn with_attributes(mut self, attributes: Attributes) -> Result<Self> {
        if attributes.age.len() != self.len() || attributes.male.len() != self.len() {
            return Err(DistillError::Data(format!(
                "{} faces but {} ages and {} genders",
                self.len(),
                attributes.age.len(),
                attributes.male.len()
            )));
        }
        if let Some(i) = attributes
            .age
            .iter()
            .position(|a| a.is_some_and(|a| !(a.is_finite() && a >= 0.0)))
        {
            return Err(DistillError::Data(format!(
                "age of `{}` is not a valid age",
                self.ids[i]
            )));
        }
        self.attributes = Some(attributes);
        Ok(self)
    }

    /// Ground-truth ages and genders, when attached.
    pub fn attributes(&self) -> Option<&Attributes> {
        self.attributes.as_ref()
    }

    /// Loads the faces of a teacher-target cache: each image is read again from `source` (the
    /// one the cache was built from) and aligned with the landmarks stored in the cache to the
    /// student's `size`. `labels` maps cache ids to identity names; faces whose id it lacks are
    /// dropped from a labelled set (so a validation set can be a subset of a cache).
    ///
    /// # Errors
    /// A cache id missing from `source`, an unreadable image, or degenerate landmarks.
    pub fn from_cache(
        cache: &TargetCache,
        source: &dyn FaceSource,
        size: u32,
        labels: Option<&HashMap<String, String>>,
    ) -> Result<Self> {
        let rows: Vec<usize> = (0..cache.len())
            .filter(|&r| labels.is_none_or(|l| l.contains_key(&cache.ids[r])))
            .collect();
        if rows.is_empty() {
            return Err(DistillError::Data("no cached face has a label".into()));
        }
        let at = source_rows(&cache.ids, source)?;
        let template = FaceTemplate::arcface_scaled(size)?;
        let images = rows
            .iter()
            .map(|&r| align_row(source, at[r] as usize, &cache.landmarks(r), &template, size))
            .collect::<Result<Vec<_>>>()?;
        let k = cache.meta.age_bins.len();
        let targets = Targets {
            dim: cache.meta.dim,
            embeddings: rows
                .iter()
                .flat_map(|&r| cache.embedding(r).iter().copied())
                .collect(),
            age_bins: cache.meta.age_bins.clone(),
            age_probs: rows
                .iter()
                .flat_map(|&r| cache.age_probs[r * k..(r + 1) * k].iter().copied())
                .collect(),
            expected_age: rows.iter().map(|&r| cache.expected_age[r]).collect(),
            p_male: rows.iter().map(|&r| cache.p_male[r]).collect(),
        };
        let ids: Vec<String> = rows.iter().map(|&r| cache.ids[r].clone()).collect();
        let labels = labels.map(|l| {
            let names: Vec<&str> = ids.iter().map(|id| l[id].as_str()).collect();
            // Dense numbers in name order, so the same names always get the same numbers.
            let order: std::collections::BTreeSet<&str> = names.iter().copied().collect();
            let index: HashMap<&str, u32> = order.into_iter().zip(0..).collect();
            names.iter().map(|n| index[n]).collect()
        });
        Self::new(ids, images, targets, labels)
    }

    /// Number of faces.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when empty (never, for a constructed set).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Face ids.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Crop side in pixels.
    pub fn size(&self) -> u32 {
        self.images[0].width()
    }

    /// The aligned crop of face `i`.
    pub fn image(&self, i: usize) -> &RgbImage {
        &self.images[i]
    }

    /// The teacher targets.
    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    /// Identity labels (dense, from 0), when known.
    pub fn labels(&self) -> Option<&[u32]> {
        self.labels.as_deref()
    }

    /// The faces at `rows`, in that order.
    pub fn subset(&self, rows: &[usize]) -> Result<Self> {
        if let Some(&r) = rows.iter().find(|&&r| r >= self.len()) {
            return Err(DistillError::Data(format!("row {r} out of {}", self.len())));
        }
        let set = Self::new(
            rows.iter().map(|&r| self.ids[r].clone()).collect(),
            rows.iter().map(|&r| self.images[r].clone()).collect(),
            self.targets.select(rows),
            self.labels.as_ref().map(|l| rows.iter().map(|&r| l[r]).collect()),
        )?;
        match &self.attributes {
            Some(a) => set.with_attributes(Attributes {
                age: rows.iter().map(|&r| a.age[r]).collect(),
                male: rows.iter().map(|&r| a.male[r]).collect(),
            }),
            None => Ok(set),
        }
    }
}

/// The source index of each cache id. A cache lists its rows in source order, so one walk
/// along the source finds them without an index of every id; a cache whose ids are in another
/// order falls back to a lookup table.
///
/// # Errors
/// An id the source does not have.
fn source_rows(ids: &[String], source: &dyn FaceSource) -> Result<Vec<u32>> {
    let n = source.len();
    if n > u32::MAX as usize {
        return Err(DistillError::Data(format!(
            "{}: {n} images exceed the 2^32 a face set indexes",
            source.origin().display()
        )));
    }
    let mut out = Vec::with_capacity(ids.len());
    let mut j = 0;
    for id in ids {
        while j < n && source.id(j)? != id.as_str() {
            j += 1;
        }
        if j == n {
            break;
        }
        out.push(j as u32);
        j += 1;
    }
    if out.len() == ids.len() {
        return Ok(out);
    }
    let mut index: HashMap<String, u32> = HashMap::with_capacity(n);
    for i in 0..n {
        index.insert(source.id(i)?.into_owned(), i as u32);
    }
    ids.iter()
        .map(|id| {
            index.get(id).copied().ok_or_else(|| {
                DistillError::Data(format!(
                    "cache row `{id}` is not an image of {}: build the cache from this source",
                    source.origin().display()
                ))
            })
        })
        .collect()
}

/// Image `i` of `source` aligned by `landmarks` to `template` (a `size` px crop).
fn align_row(
    source: &dyn FaceSource,
    i: usize,
    landmarks: &[[f32; 2]; 5],
    template: &FaceTemplate,
    size: u32,
) -> Result<RgbImage> {
    let img = source.image(i)?;
    let m = template.transform_for(landmarks)?;
    Ok(face_data::warp_affine(&img, &m, size, size)?)
}

/// Faces the trainer draws its batches from: in memory ([`FaceSet`]) or read from disk when a
/// batch needs them ([`StreamedFaces`]). Row `i`'s crop and targets belong together.
pub trait TrainFaces: Sync {
    /// Number of faces.
    fn len(&self) -> usize;

    /// True when there is no face.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Crop side in pixels.
    fn size(&self) -> u32;

    /// Embedding width of the targets.
    fn dim(&self) -> usize;

    /// The age (years) of each target bin.
    fn age_bins(&self) -> &[f32];

    /// A fingerprint of the face ids (FNV-1a over the ids, and the count): a checkpoint is tied
    /// to the faces it was trained on.
    fn fingerprint(&self) -> String;

    /// The aligned crop of face `row`.
    ///
    /// # Errors
    /// `row` out of range, or the face unreadable from disk.
    fn crop(&self, row: usize) -> Result<Cow<'_, RgbImage>>;

    /// The targets of `rows`, in that order.
    ///
    /// # Errors
    /// A row out of range, or a read failing.
    fn targets_of(&self, rows: &[usize]) -> Result<Targets>;
}

/// FNV-1a over `ids` (stable across runs and platforms) and their count.
fn ids_fingerprint<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    let mut h = face_io::Fingerprint::new();
    let mut n = 0usize;
    for id in ids {
        h.write(id.as_bytes()).write(&[0]);
        n += 1;
    }
    format!("{}-{n}", h.hex())
}

fn out_of_range(row: usize, n: usize) -> DistillError {
    DistillError::Data(format!("row {row} out of {n}"))
}

impl TrainFaces for FaceSet {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn size(&self) -> u32 {
        self.images[0].width()
    }

    fn dim(&self) -> usize {
        self.targets.dim
    }

    fn age_bins(&self) -> &[f32] {
        &self.targets.age_bins
    }

    fn fingerprint(&self) -> String {
        ids_fingerprint(self.ids.iter().map(String::as_str))
    }

    fn crop(&self, row: usize) -> Result<Cow<'_, RgbImage>> {
        self.images
            .get(row)
            .map(Cow::Borrowed)
            .ok_or_else(|| out_of_range(row, self.len()))
    }

    fn targets_of(&self, rows: &[usize]) -> Result<Targets> {
        if let Some(&r) = rows.iter().find(|&&r| r >= self.len()) {
            return Err(out_of_range(r, self.len()));
        }
        Ok(self.targets.select(rows))
    }
}

/// Training faces streamed from disk: each crop is read from the face source and aligned when
/// a batch needs it, and its targets are read from the cache file, so memory holds a batch (and
/// a 4-byte source index per face), however many faces there are. It gives the same crops as
/// [`FaceSet::from_cache`] on the same cache and source.
#[derive(Debug)]
pub struct StreamedFaces {
    cache: CacheFile,
    source: Box<dyn FaceSource>,
    at: Vec<u32>,
    template: FaceTemplate,
    size: u32,
    fingerprint: String,
}

impl StreamedFaces {
    /// Opens the cache file `cache` over the source it was built from, for `size` px crops.
    ///
    /// # Errors
    /// An unreadable cache, an empty one, or a cached id the source does not have.
    pub fn open(cache: &Path, source: Box<dyn FaceSource>, size: u32) -> Result<Self> {
        let mut file = CacheFile::open(cache)?;
        if file.is_empty() {
            return Err(DistillError::Data(format!(
                "{}: the cache has no face",
                cache.display()
            )));
        }
        let at = source_rows(&file.ids, source.as_ref())?;
        let fingerprint = ids_fingerprint(file.ids.iter().map(String::as_str));
        // The ids served their purpose; a large set's names need not stay in memory.
        file.ids = Vec::new();
        Ok(Self {
            cache: file,
            source,
            at,
            template: FaceTemplate::arcface_scaled(size)?,
            size,
            fingerprint,
        })
    }

    /// The cache file.
    pub fn cache(&self) -> &CacheFile {
        &self.cache
    }

    fn row(&self, row: usize) -> Result<CacheRow> {
        if row >= self.at.len() {
            return Err(out_of_range(row, self.at.len()));
        }
        Ok(self.cache.row(row)?)
    }
}

impl TrainFaces for StreamedFaces {
    fn len(&self) -> usize {
        self.at.len()
    }

    fn size(&self) -> u32 {
        self.size
    }

    fn dim(&self) -> usize {
        self.cache.meta.dim
    }

    fn age_bins(&self) -> &[f32] {
        &self.cache.meta.age_bins
    }

    fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    fn crop(&self, row: usize) -> Result<Cow<'_, RgbImage>> {
        let r = self.row(row)?;
        let img = align_row(
            self.source.as_ref(),
            self.at[row] as usize,
            &r.landmarks,
            &self.template,
            self.size,
        )?;
        Ok(Cow::Owned(img))
    }

    fn targets_of(&self, rows: &[usize]) -> Result<Targets> {
        let mut t = Targets {
            dim: self.dim(),
            embeddings: Vec::with_capacity(rows.len() * self.dim()),
            age_bins: self.age_bins().to_vec(),
            age_probs: Vec::with_capacity(rows.len() * self.age_bins().len()),
            expected_age: Vec::with_capacity(rows.len()),
            p_male: Vec::with_capacity(rows.len()),
        };
        for &r in rows {
            let row = self.row(r)?;
            t.embeddings.extend(row.embedding);
            t.age_probs.extend(row.age_probs);
            t.expected_age.push(row.expected_age);
            t.p_male.push(row.p_male);
        }
        t.validate()?;
        Ok(t)
    }
}

/// Builds the augmentation pipeline for crops of `size` pixels (`None` when disabled).
pub fn augmentation(config: &AugmentConfig, size: u32) -> Option<Compose> {
    if !config.enabled {
        return None;
    }
    let mut c = Compose::new();
    if config.crop_scale.0 < 1.0 {
        c = c.then(RandomResizedCrop {
            width: size,
            height: size,
            scale: config.crop_scale,
            ratio: (0.9, 1.1),
        });
    }
    c = c.then(RandomHorizontalFlip { p: config.flip });
    if config.color_jitter > 0.0 {
        let v = config.color_jitter;
        c = c.then(ColorJitter {
            brightness: v,
            contrast: v,
            saturation: v,
            hue: 0.0,
            p: 0.8,
        });
    }
    if config.grayscale > 0.0 {
        c = c.then(RandomGrayscale { p: config.grayscale });
    }
    Some(c)
}

/// The seed of one sample's augmentation: a SplitMix64 mix of the run seed, the epoch and the
/// position in the epoch, so a resumed run draws the same augmentations.
pub fn sample_seed(seed: u64, epoch: u64, position: u64) -> u64 {
    let mut z =
        seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ position.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Normalised `[N, 3, S, S]` pixels of `rows`, augmented when `augment` is given (each sample
/// with its own generator seeded by [`sample_seed`] from `(seed, epoch, first_position + i)`),
/// read and augmented in parallel.
///
/// # Errors
/// A face that cannot be read.
pub fn image_batch(
    set: &dyn TrainFaces,
    rows: &[usize],
    augment: Option<(&Compose, u64, u64, u64)>,
    normalize: &Normalize,
) -> Result<Vec<f32>> {
    let chw: Vec<Vec<f32>> = rows
        .par_iter()
        .enumerate()
        .map(|(i, &r)| {
            let img = set.crop(r)?;
            let img = match augment {
                Some((pipe, seed, epoch, first)) => {
                    let mut rng = DataRng::seed_from_u64(sample_seed(seed, epoch, first + i as u64));
                    Cow::Owned(pipe.apply(img.into_owned(), &mut rng))
                }
                None => img,
            };
            Ok(Chw::from_rgb(&img, normalize).data)
        })
        .collect::<Result<_>>()?;
    Ok(chw.concat())
}

/// A batch on the host: normalised pixels and the targets of its faces.
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    /// `N × 3 × S × S` pixels.
    pub pixels: Vec<f32>,
    /// Crop side.
    pub size: usize,
    /// The faces' targets.
    pub targets: Targets,
}

impl HostBatch {
    /// Reads `rows` of `set` (see [`image_batch`]).
    ///
    /// # Errors
    /// A face or target row that cannot be read.
    pub fn new(
        set: &dyn TrainFaces,
        rows: &[usize],
        augment: Option<(&Compose, u64, u64, u64)>,
        normalize: &Normalize,
    ) -> Result<Self> {
        Ok(Self {
            pixels: image_batch(set, rows, augment, normalize)?,
            size: set.size() as usize,
            targets: set.targets_of(rows)?,
        })
    }
}

/// A batch of student inputs and their targets, on one device.
#[derive(Debug, Clone)]
pub struct DistillBatch<B: Backend> {
    /// `[N, 3, S, S]` normalised faces.
    pub images: Tensor<B, 4>,
    /// `[N, dim]` teacher embeddings.
    pub embeddings: Tensor<B, 2>,
    /// `[N, bins]` teacher age distributions.
    pub age_probs: Tensor<B, 2>,
    /// `[N]` teacher expected ages.
    pub expected_age: Tensor<B, 1>,
    /// `[N]` teacher P(male).
    pub p_male: Tensor<B, 1>,
}

impl<B: Backend> DistillBatch<B> {
    /// Gathers `rows` of `set` onto `device`.
    ///
    /// # Errors
    /// A face or target row that cannot be read.
    pub fn new(
        set: &dyn TrainFaces,
        rows: &[usize],
        augment: Option<(&Compose, u64, u64, u64)>,
        normalize: &Normalize,
        device: &B::Device,
    ) -> Result<Self> {
        Ok(Self::from_host(
            HostBatch::new(set, rows, augment, normalize)?,
            device,
        ))
    }

    /// Moves a host batch onto `device`.
    pub fn from_host(host: HostBatch, device: &B::Device) -> Self {
        let t = host.targets;
        let (n, s, k) = (t.len(), host.size, t.age_bins.len());
        Self {
            images: Tensor::from_data(TensorData::new(host.pixels, [n, 3, s, s]), device),
            embeddings: Tensor::from_data(TensorData::new(t.embeddings, [n, t.dim]), device),
            age_probs: Tensor::from_data(TensorData::new(t.age_probs, [n, k]), device),
            expected_age: Tensor::from_data(TensorData::new(t.expected_age, [n]), device),
            p_male: Tensor::from_data(TensorData::new(t.p_male, [n]), device),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(n: usize) -> Targets {
        Targets {
            dim: 2,
            embeddings: [1.0, 0.0].repeat(n),
            age_bins: vec![10.0, 20.0],
            age_probs: [0.5, 0.5].repeat(n),
            expected_age: vec![15.0; n],
            p_male: vec![0.5; n],
        }
    }

    #[test]
    fn face_set_refuses_bad_parts() {
        let img = RgbImage::new(8, 8);
        let ok = FaceSet::new(
            vec!["a".into(), "b".into()],
            vec![img.clone(), img.clone()],
            targets(2),
            None,
        );
        assert!(ok.is_ok());
        let short = FaceSet::new(vec!["a".into()], vec![img.clone(), img.clone()], targets(2), None);
        assert!(matches!(short, Err(DistillError::Data(m)) if m.contains("must match")));
        let dup = FaceSet::new(
            vec!["a".into(), "a".into()],
            vec![img.clone(), img.clone()],
            targets(2),
            None,
        );
        assert!(matches!(dup, Err(DistillError::Data(m)) if m.contains("twice")));
        let mut nan = targets(2);
        nan.p_male[1] = f32::NAN;
        let bad = FaceSet::new(
            vec!["a".into(), "b".into()],
            vec![img.clone(), img.clone()],
            nan,
            None,
        );
        assert!(matches!(bad, Err(DistillError::Data(m)) if m.contains("p_male")));
        let sizes = FaceSet::new(
            vec!["a".into(), "b".into()],
            vec![img, RgbImage::new(9, 9)],
            targets(2),
            None,
        );
        assert!(matches!(sizes, Err(DistillError::Data(m)) if m.contains("`b`")));
    }

    #[test]
    fn sample_seeds_differ_and_repeat() {
        assert_eq!(sample_seed(1, 2, 3), sample_seed(1, 2, 3));
        assert_ne!(sample_seed(1, 2, 3), sample_seed(1, 3, 2));
        assert_ne!(sample_seed(0, 0, 0), sample_seed(0, 0, 1));
    }
}

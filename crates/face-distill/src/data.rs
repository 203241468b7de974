//! Training and validation faces: aligned crops held in memory, row-aligned with the teachers'
//! targets (and identity labels where known), and the batches built from them.

use std::collections::HashMap;
use std::path::PathBuf;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use face_data::augment::{ColorJitter, Compose, RandomGrayscale, RandomHorizontalFlip, RandomResizedCrop};
use face_data::formats::recordio::InsightFaceRecordSet;
use face_data::{Chw, DataRng, FaceTemplate, Normalize, Transform};
use face_teachers::{CacheItem, TargetCache};
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

    /// Loads the faces of a teacher-target cache: each image is read again (file or RecordIO
    /// record) and aligned with the landmarks stored in the cache to the student's `size`.
    /// `labels` maps cache ids to identity names; faces whose id it lacks are dropped from a
    /// labelled set (so a validation set can be a subset of a cache).
    ///
    /// # Errors
    /// A cache id missing from `items`, an unreadable image, or degenerate landmarks.
    pub fn from_cache(
        cache: &TargetCache,
        items: &[CacheItem],
        size: u32,
        labels: Option<&HashMap<String, String>>,
    ) -> Result<Self> {
        let by_id: HashMap<&str, &CacheItem> = items.iter().map(|it| (it.id.as_str(), it)).collect();
        let rows: Vec<usize> = (0..cache.len())
            .filter(|&r| labels.is_none_or(|l| l.contains_key(&cache.ids[r])))
            .collect();
        if rows.is_empty() {
            return Err(DistillError::Data("no cached face has a label".into()));
        }
        let template = FaceTemplate::arcface_scaled(size)?;
        let mut sets: HashMap<PathBuf, InsightFaceRecordSet> = HashMap::new();
        let mut images = Vec::with_capacity(rows.len());
        for &r in &rows {
            let id = &cache.ids[r];
            let item = by_id
                .get(id.as_str())
                .ok_or_else(|| DistillError::Data(format!("cache row `{id}` is not in the item list")))?;
            let img = load_item(item, &mut sets)?;
            let lm: Vec<[f32; 2]> = cache.landmarks[r * 10..r * 10 + 10]
                .chunks_exact(2)
                .map(|p| [p[0], p[1]])
                .collect();
            let m = template.transform_for(&lm)?;
            images.push(face_data::warp_affine(&img, &m, size, size)?);
        }
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

/// Reads an item's image from its file or RecordIO set.
fn load_item(item: &CacheItem, sets: &mut HashMap<PathBuf, InsightFaceRecordSet>) -> Result<RgbImage> {
    match item.record {
        None => Ok(face_data::read_rgb(&item.path)?),
        Some(i) => {
            if !sets.contains_key(&item.path) {
                let set = InsightFaceRecordSet::open(&item.path)?;
                sets.insert(item.path.clone(), set);
            }
            let (_, bytes) = sets[&item.path].get(i)?;
            Ok(face_data::decode_rgb(&bytes, &item.path)?)
        }
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

/// Normalised `[N, 3, S, S]` pixels of `rows`, augmented when `augment` is given (each sample
/// with its own generator seeded by [`sample_seed`] from `(seed, epoch, first_position + i)`).
pub fn image_batch(
    set: &FaceSet,
    rows: &[usize],
    augment: Option<(&Compose, u64, u64, u64)>,
    normalize: &Normalize,
) -> Vec<f32> {
    let chw: Vec<Vec<f32>> = rows
        .par_iter()
        .enumerate()
        .map(|(i, &r)| {
            let img = set.image(r);
            let img = match augment {
                Some((pipe, seed, epoch, first)) => {
                    let mut rng = DataRng::seed_from_u64(sample_seed(seed, epoch, first + i as u64));
                    pipe.apply(img.clone(), &mut rng)
                }
                None => img.clone(),
            };
            Chw::from_rgb(&img, normalize).data
        })
        .collect();
    chw.concat()
}

impl<B: Backend> DistillBatch<B> {
    /// Gathers `rows` of `set` onto `device`.
    pub fn new(
        set: &FaceSet,
        rows: &[usize],
        augment: Option<(&Compose, u64, u64, u64)>,
        normalize: &Normalize,
        device: &B::Device,
    ) -> Self {
        let n = rows.len();
        let s = set.size() as usize;
        let t = set.targets();
        let k = t.age_bins.len();
        let sel = t.select(rows);
        let pixels = image_batch(set, rows, augment, normalize);
        Self {
            images: Tensor::from_data(TensorData::new(pixels, [n, 3, s, s]), device),
            embeddings: Tensor::from_data(TensorData::new(sel.embeddings, [n, t.dim]), device),
            age_probs: Tensor::from_data(TensorData::new(sel.age_probs, [n, k]), device),
            expected_age: Tensor::from_data(TensorData::new(sel.expected_age, [n]), device),
            p_male: Tensor::from_data(TensorData::new(sel.p_male, [n]), device),
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

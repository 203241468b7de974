//! Adapters for Burn's data loader (feature `burn`): datasets of face images and a batcher
//! that stacks them into `[N, 3, H, W]` tensors.
//!
//! Burn's `DataLoader` stops an epoch at the first `None` a dataset returns, so these datasets
//! never use `None` for a bad image: their item is `Result<FaceSample, LoadFailure>`, and
//! [`FaceBatcher`] moves failures into [`FaceBatch::failures`] — the trainer sees and counts
//! every skipped file.

use std::sync::atomic::{AtomicU64, Ordering};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::backend::Backend;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;

use crate::augment::{DataRng, Transform};
use crate::formats::recordio::InsightFaceRecordSet;
use crate::image_ops::{decode_rgb, Chw, Normalize};
use crate::pipeline::{prepare, AlignSpec, FaceJob};

/// One prepared face.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceSample {
    /// Dataset index.
    pub index: usize,
    /// `3 × height × width` normalised values.
    pub image: Vec<f32>,
    /// Class (identity) label, or −1 when unlabelled.
    pub label: i64,
}

/// A face that could not be prepared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadFailure {
    /// Dataset index.
    pub index: usize,
    /// The error, naming the file.
    pub message: String,
}

/// The item type of the face datasets.
pub type FaceItem = Result<FaceSample, LoadFailure>;

/// Images with landmarks, aligned on access.
pub struct AlignedFaceDataset {
    jobs: Vec<(FaceJob, i64)>,
    spec: AlignSpec,
}

impl AlignedFaceDataset {
    /// A dataset of `(job, label)` pairs prepared with `spec` (its `with_flip` is ignored).
    pub fn new(jobs: Vec<(FaceJob, i64)>, mut spec: AlignSpec) -> Self {
        spec.with_flip = false;
        Self { jobs, spec }
    }
}

impl Dataset<FaceItem> for AlignedFaceDataset {
    fn get(&self, index: usize) -> Option<FaceItem> {
        let (job, label) = self.jobs.get(index)?;
        Some(
            prepare(job, &self.spec)
                .map(|image| FaceSample {
                    index,
                    image,
                    label: *label,
                })
                .map_err(|e| LoadFailure {
                    index,
                    message: e.to_string(),
                }),
        )
    }

    fn len(&self) -> usize {
        self.jobs.len()
    }
}

/// An insightface RecordIO training set (already aligned crops), decoded, optionally
/// augmented and normalised on access. Augmentation randomness is seeded by
/// `(seed, epoch, index)`, so a run can be replayed; call [`RecordSetDataset::set_epoch`]
/// between epochs.
pub struct RecordSetDataset {
    set: InsightFaceRecordSet,
    normalize: Normalize,
    augment: Option<Box<dyn Transform>>,
    seed: u64,
    epoch: AtomicU64,
}

impl RecordSetDataset {
    /// Wraps a record set.
    pub fn new(
        set: InsightFaceRecordSet,
        normalize: Normalize,
        augment: Option<Box<dyn Transform>>,
        seed: u64,
    ) -> Self {
        Self {
            set,
            normalize,
            augment,
            seed,
            epoch: AtomicU64::new(0),
        }
    }

    /// Sets the epoch that seeds augmentation.
    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::Relaxed);
    }

    fn load(&self, index: usize) -> crate::Result<FaceSample> {
        let (label, bytes) = self.set.get(index)?;
        let name = format!("{}#{index}", self.set.reader().path().display());
        let mut img = decode_rgb(&bytes, std::path::Path::new(&name))?;
        if let Some(t) = &self.augment {
            let e = self.epoch.load(Ordering::Relaxed);
            let mut rng = DataRng::seed_from_u64(
                self.seed ^ e.rotate_left(32) ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            );
            img = t.apply(img, &mut rng);
        }
        Ok(FaceSample {
            index,
            image: Chw::from_rgb(&img, &self.normalize).data,
            label: i64::from(label),
        })
    }
}

impl Dataset<FaceItem> for RecordSetDataset {
    fn get(&self, index: usize) -> Option<FaceItem> {
        if index >= self.set.len() {
            return None;
        }
        Some(self.load(index).map_err(|e| LoadFailure {
            index,
            message: e.to_string(),
        }))
    }

    fn len(&self) -> usize {
        self.set.len()
    }
}

/// A batch of faces on a device.
#[derive(Debug, Clone)]
pub struct FaceBatch<B: Backend> {
    /// `[N, 3, H, W]`.
    pub images: Tensor<B, 4>,
    /// `[N]` class labels.
    pub labels: Tensor<B, 1, Int>,
    /// Dataset index of each row.
    pub indices: Vec<usize>,
    /// Items of this batch that failed to load (not in the tensors).
    pub failures: Vec<LoadFailure>,
}

/// Stacks [`FaceItem`]s of one `height × width` into a [`FaceBatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaceBatcher {
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
}

impl<B: Backend> Batcher<B, FaceItem, FaceBatch<B>> for FaceBatcher {
    fn batch(&self, items: Vec<FaceItem>, device: &Device<B>) -> FaceBatch<B> {
        let per = 3 * self.height * self.width;
        let mut data = Vec::with_capacity(items.len() * per);
        let (mut labels, mut indices, mut failures) = (Vec::new(), Vec::new(), Vec::new());
        for item in items {
            match item {
                Ok(s) if s.image.len() == per => {
                    data.extend_from_slice(&s.image);
                    labels.push(s.label);
                    indices.push(s.index);
                }
                Ok(s) => failures.push(LoadFailure {
                    index: s.index,
                    message: format!(
                        "image has {} values, the batcher expects 3×{}×{}",
                        s.image.len(),
                        self.height,
                        self.width
                    ),
                }),
                Err(f) => failures.push(f),
            }
        }
        let n = indices.len();
        FaceBatch {
            images: Tensor::from_data(TensorData::new(data, [n, 3, self.height, self.width]), device),
            labels: Tensor::from_data(TensorData::new(labels, [n]), device),
            indices,
            failures,
        }
    }
}

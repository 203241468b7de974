//! Parallel decode → align → normalise of many faces with rayon. A file that cannot be read,
//! decoded or aligned is reported with its index and error and left out of the batch; it is
//! never a panic and never dropped without a trace.

use std::path::PathBuf;

use rayon::prelude::*;

use crate::align::{align_face, FaceTemplate};
use crate::error::{DataError, Result};
use crate::image_ops::{decode_rgb, Normalize};

/// Where a face image comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageSource {
    /// A file on disk.
    File(PathBuf),
    /// Encoded bytes already in memory (e.g. a RecordIO payload), with a name for errors.
    Bytes {
        /// Name used in error messages.
        name: PathBuf,
        /// Encoded image.
        data: Vec<u8>,
    },
}

impl ImageSource {
    fn name(&self) -> &std::path::Path {
        match self {
            ImageSource::File(p) => p,
            ImageSource::Bytes { name, .. } => name,
        }
    }
}

/// One face to prepare: an image and its 5 (or more) landmarks in that image.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceJob {
    /// The image.
    pub source: ImageSource,
    /// Landmarks, in the template's point order.
    pub landmarks: Vec<[f32; 2]>,
}

/// How to prepare faces.
#[derive(Debug, Clone, PartialEq)]
pub struct AlignSpec {
    /// Target template (and output size).
    pub template: FaceTemplate,
    /// Normalisation.
    pub normalize: Normalize,
    /// Also produce the mirrored crop of every face (stored right after it).
    pub with_flip: bool,
}

impl AlignSpec {
    /// ArcFace 112×112 crops, `(x−127.5)/127.5`.
    ///
    /// # Errors
    /// Never in practice (112 is a valid ArcFace size).
    pub fn arcface_112() -> Result<Self> {
        Ok(Self {
            template: FaceTemplate::arcface(112)?,
            normalize: Normalize::arcface(),
            with_flip: false,
        })
    }

    /// Floats per face (`3·H·W`, doubled with flip).
    pub fn floats_per_face(&self) -> usize {
        3 * self.template.width as usize * self.template.height as usize * if self.with_flip { 2 } else { 1 }
    }
}

/// A failure of one job.
#[derive(Debug)]
pub struct JobFailure {
    /// Index of the job.
    pub index: usize,
    /// What went wrong (naming the file).
    pub error: DataError,
}

/// Prepared faces.
#[derive(Debug)]
pub struct AlignedBatch {
    /// `ok.len() × floats_per_face` values (NCHW, flipped copy after each face when asked).
    pub data: Vec<f32>,
    /// Indices of the jobs that succeeded, in job order.
    pub ok: Vec<usize>,
    /// Jobs that failed, in job order.
    pub failures: Vec<JobFailure>,
}

/// Decodes, aligns and normalises one job.
///
/// # Errors
/// I/O, decoding or degenerate landmarks, naming the image.
pub fn prepare(job: &FaceJob, spec: &AlignSpec) -> Result<Vec<f32>> {
    let img = match &job.source {
        ImageSource::File(p) => {
            let bytes = std::fs::read(p).map_err(|e| DataError::io(p, e))?;
            decode_rgb(&bytes, p)?
        }
        ImageSource::Bytes { name, data } => decode_rgb(data, name)?,
    };
    let named = |e: DataError| match e {
        DataError::DegenerateLandmarks(m) => {
            DataError::DegenerateLandmarks(format!("{}: {m}", job.source.name().display()))
        }
        other => other,
    };
    let face = align_face(&img, &job.landmarks, &spec.template, &spec.normalize, false).map_err(named)?;
    if !spec.with_flip {
        return Ok(face.data);
    }
    let mut flipped = face.clone();
    flipped.flip_horizontal();
    let mut out = face.data;
    out.extend_from_slice(&flipped.data);
    Ok(out)
}

/// Prepares all jobs in parallel (rayon's global pool).
///
/// # Errors
/// An invalid normalisation; per-job errors go to [`AlignedBatch::failures`].
pub fn align_batch(jobs: &[FaceJob], spec: &AlignSpec) -> Result<AlignedBatch> {
    spec.normalize.validate()?;
    let results: Vec<Result<Vec<f32>>> = jobs.par_iter().map(|j| prepare(j, spec)).collect();
    let per = spec.floats_per_face();
    let n_ok = results.iter().filter(|r| r.is_ok()).count();
    let mut batch = AlignedBatch {
        data: Vec::with_capacity(n_ok * per),
        ok: Vec::with_capacity(n_ok),
        failures: Vec::new(),
    };
    for (index, r) in results.into_iter().enumerate() {
        match r {
            Ok(v) => {
                batch.data.extend_from_slice(&v);
                batch.ok.push(index);
            }
            Err(error) => batch.failures.push(JobFailure { index, error }),
        }
    }
    Ok(batch)
}

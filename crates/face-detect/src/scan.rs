//! Faces of many images: the one "detect, keep the largest face, give it the image's label,
//! align" helper the `facekit` program, the distillation pipeline and the examples share.

use std::collections::HashMap;
use std::path::PathBuf;

use burn::tensor::backend::Backend;
use image::RgbImage;

use crate::error::Result;
use crate::mtcnn::{Detection, Mtcnn};

/// One face found by [`Mtcnn::scan_images`].
#[derive(Debug, Clone, Copy)]
pub struct ScannedFace<'a> {
    /// The image's id.
    pub image_id: &'a str,
    /// The decoded image.
    pub photo: &'a RgbImage,
    /// Rank by box area within the image (0: the largest).
    pub rank: usize,
    /// The detection.
    pub detection: &'a Detection,
    /// The image's label, on its largest face only (a labelled image shows one person).
    pub label: Option<&'a str>,
}

/// What [`Mtcnn::scan_images`] went through.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ScanReport {
    /// Images read.
    pub images: usize,
    /// Images that could not be read: `(id, reason)`.
    pub unreadable: Vec<(String, String)>,
    /// Faces handed to the callback.
    pub faces: usize,
    /// Ids of readable images without a face (at the score threshold).
    pub without_face: Vec<String>,
}

impl<B: Backend> Mtcnn<B> {
    /// The largest face of `img` (the first of [`Mtcnn::detect`]), if any.
    pub fn largest(&self, img: &RgbImage) -> Option<Detection> {
        self.detect(img).into_iter().next()
    }

    /// The largest face of `img` aligned to `template`, with its detection; `None` without a
    /// face.
    ///
    /// # Errors
    /// Degenerate landmarks.
    pub fn largest_aligned(
        &self,
        img: &RgbImage,
        template: &face_data::FaceTemplate,
    ) -> Result<Option<(Detection, RgbImage)>> {
        match self.largest(img) {
            Some(d) => {
                let crop = d.align(img, template)?;
                Ok(Some((d, crop)))
            }
            None => Ok(None),
        }
    }

    /// Reads each `(id, path)` image, detects its faces with a score of at least `min_score`,
    /// and calls `each` for every face, largest first; the image's entry in `labels` goes to
    /// its largest face. Unreadable images are listed in the report, not fatal. `progress` is
    /// called once per image.
    ///
    /// # Errors
    /// The first error `each` returns.
    pub fn scan_images<E>(
        &self,
        items: &[(String, PathBuf)],
        labels: &HashMap<String, String>,
        min_score: f32,
        mut progress: impl FnMut(),
        mut each: impl FnMut(ScannedFace<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<ScanReport, E> {
        let mut report = ScanReport {
            images: items.len(),
            ..ScanReport::default()
        };
        for (id, path) in items {
            let photo = match face_data::read_rgb(path) {
                Ok(p) => p,
                Err(e) => {
                    report.unreadable.push((id.clone(), e.to_string()));
                    progress();
                    continue;
                }
            };
            let found: Vec<Detection> = self
                .detect(&photo)
                .into_iter()
                .filter(|d| d.score >= min_score)
                .collect();
            if found.is_empty() {
                report.without_face.push(id.clone());
            }
            for (rank, detection) in found.iter().enumerate() {
                each(ScannedFace {
                    image_id: id,
                    photo: &photo,
                    rank,
                    detection,
                    label: if rank == 0 {
                        labels.get(id).map(String::as_str)
                    } else {
                        None
                    },
                })?;
                report.faces += 1;
            }
            progress();
        }
        Ok(report)
    }
}

//! # face-detect
//!
//! MTCNN face detection (P-, R- and O-Net) on Burn 0.21, generic over `B: Backend`, with the
//! weights of facenet-pytorch 2.6.0 read straight from its legacy `.pt` files: image pyramid,
//! NMS, box regression and 5 landmarks, reproducing facenet-pytorch's `MTCNN.detect` to a
//! fraction of a pixel. Alignment of the detected faces is face-data's
//! ([`face_data::FaceTemplate`]); [`Detection::align`] chains the two, and
//! [`Mtcnn::largest_aligned`] / [`Mtcnn::scan_images`] are the one "detect, keep the largest
//! face, give it the image's label, align" path of the program, the pipeline and the examples.
//!
//! ```no_run
//! use burn::backend::NdArray;
//! use face_detect::{Mtcnn, MtcnnConfig};
//!
//! let device = Default::default();
//! let mtcnn = Mtcnn::<NdArray>::load("models".as_ref(), MtcnnConfig::default(), &device)?;
//! let img = face_data::read_rgb("data/faces/obama.jpg".as_ref())?;
//! for face in mtcnn.detect(&img) {
//!     println!("{:?} p={:.3}", face.bbox, face.score);
//!     let crop = face.align(&img, &face_data::FaceTemplate::arcface(112)?)?;
//!     assert_eq!(crop.dimensions(), (112, 112));
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod error;
pub mod mtcnn;
pub mod nets;
pub mod nms;
mod resample;
mod scan;

pub use error::{DetectError, Result};
pub use mtcnn::{DetectStats, Detection, Mtcnn, MtcnnConfig, RETRY_PADDING};
pub use nets::{FixColumnMajor, ONet, PNet, RNet};
pub use scan::{ScanReport, ScannedFace};

impl Detection {
    /// The face warped onto `template` (similarity from the 5 landmarks, bilinear, black border).
    ///
    /// # Errors
    /// Degenerate landmarks.
    pub fn align(
        &self,
        img: &image::RgbImage,
        template: &face_data::FaceTemplate,
    ) -> Result<image::RgbImage> {
        let m = template.transform_for(&self.landmarks)?;
        Ok(face_data::warp_affine(img, &m, template.width, template.height)?)
    }
}

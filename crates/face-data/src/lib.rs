//! # face-data
//!
//! Face datasets and what happens to images before a network sees them, in pure Rust (no Burn
//! unless the `burn` feature adds data-loader adapters):
//!
//! - [`formats`]: CelebA annotations, LFW `pairs.txt`, IJB-B/C 1:1 metadata, insightface
//!   RecordIO (`train.rec`/`train.idx`, read and written without MXNet), identity-per-folder
//!   trees, UTKFace names and age/gender CSVs — each parser names file and line on bad input;
//! - [`align`]: least-squares similarity to the ArcFace 112×112 or dlib 5-point template and a
//!   bilinear warp, fused with [`Normalize`] presets into planar floats;
//! - [`augment`] (torchvision-rule augmentations) and [`landmarks`] (LAFS landmark shuffle,
//!   coordinate perturbation, landmark-centred patches);
//! - [`pipeline`]: parallel decode + align with per-file failure reports;
//! - [`source`]: random access to sets larger than memory ([`FaceSource`]: RecordIO by positional
//!   reads, image folders, list files);
//! - [`captions`]: lexical analysis of caption corpora (CSV, TSV, JSONL, Parquet): terms,
//!   n-grams, named identities and identity-bearing patterns, attribute words, scripts;
//! - [`sampler`] (P×K identity batches), [`imbalance`] (IRLbl, MeanIR, category ratios,
//!   ML-ROS oversampling) and [`pairs`] (demographic-balanced verification pair lists).
//!
//! ```
//! use face_data::{align_face, FaceTemplate, Normalize};
//! // A synthetic 200×200 image and the landmarks of a face in it.
//! let img = image::RgbImage::from_pixel(200, 200, image::Rgb([200, 150, 100]));
//! let landmarks = [[70.0, 80.0], [130.0, 80.0], [100.0, 115.0], [75.0, 145.0], [125.0, 145.0]];
//! let crop = align_face(&img, &landmarks, &FaceTemplate::arcface(112)?, &Normalize::arcface(), false)?;
//! assert_eq!(crop.shape(), [3, 112, 112]);
//! assert!((crop.at(0, 56, 56) - (200.0 - 127.5) / 127.5).abs() < 1e-6);
//! # Ok::<(), face_data::DataError>(())
//! ```
#![warn(missing_docs)]

pub mod align;
pub mod augment;
#[cfg(feature = "burn")]
pub mod burn_adapters;
pub mod captions;
mod error;
pub mod formats;
pub mod image_ops;
pub mod imbalance;
pub mod labels;
pub mod landmarks;
pub mod pairs;
pub mod pipeline;
pub mod sampler;
pub mod source;
mod text;

pub use align::{
    align_face, align_face_pyramid, pyramid_down, pyramid_level, warp_affine, warp_affine_f32, Affine2,
    FaceTemplate, ARCFACE_112, DLIB_5,
};
pub use augment::{facenet_crop, DataRng, Transform};
pub use error::{DataError, Result};
pub use formats::folders::{list_images, IMAGE_EXTENSIONS};
pub use image_ops::{decode_rgb, read_rgb, ChannelOrder, Chw, Normalize};
pub use labels::{read_identity_labels, read_label_table, LabelFile};
pub use pipeline::{align_batch, AlignSpec, AlignedBatch, FaceJob, ImageSource};
pub use sampler::PkSampler;
pub use source::{open_source, FaceSource, FileFaces, RecordIoFaces};

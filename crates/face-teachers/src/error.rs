//! The error type of `face-teachers`.

use std::path::PathBuf;

/// Errors of teacher loading, inference and the target cache.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TeacherError {
    /// A network failed (a tensor that cannot be read back).
    #[error(transparent)]
    Nets(#[from] face_nets::NetsError),
    /// An ONNX model could not be loaded or run.
    #[error(transparent)]
    Onnx(#[from] face_nets::onnx::OnnxError),
    /// A file could not be read or written (an output, a spec file: with its line and key).
    #[error(transparent)]
    Output(#[from] face_io::IoError),
    /// A teacher spec is inconsistent with itself or with its model.
    #[error("{path}: `{key}`: {message}")]
    Spec {
        /// The spec file.
        path: PathBuf,
        /// The key at fault (dotted).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A model file is missing.
    #[error("{path}: no such file (the bundled models come with the repository; tools/fetch_models.sh fetches them again)")]
    MissingModel {
        /// The expected file.
        path: PathBuf,
    },
    /// A bundled model file is not the version its recipe and outputs were written for.
    #[error("{path}: SHA-256 {found} is not the expected {expected} (a different model version; re-fetch it with tools/fetch_models.sh)")]
    ModelVersion {
        /// The file.
        path: PathBuf,
        /// Its hash.
        found: String,
        /// The hash of the bundled version.
        expected: String,
    },
    /// A batch prepared for one recipe was given to a teacher with another.
    #[error("input prepared for recipe `{given}` given to a teacher expecting `{expected}`")]
    RecipeMismatch {
        /// The batch's recipe.
        given: String,
        /// The teacher's recipe.
        expected: String,
    },
    /// A pre-aligned crop of the wrong size.
    #[error("crop {index} is {width}×{height}, recipe `{recipe}` needs {size}×{size}")]
    CropSize {
        /// Position in the batch.
        index: usize,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
        /// The recipe.
        recipe: String,
        /// The required side.
        size: u32,
    },
    /// An empty batch.
    #[error("empty batch: no faces to run the teacher on")]
    EmptyBatch,
    /// The target cache file is malformed or belongs to other teachers.
    #[error("{path}: {message}")]
    Cache {
        /// The cache or journal file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An I/O error on a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// An image or alignment error.
    #[error(transparent)]
    Data(#[from] face_data::DataError),
    /// A detection error.
    #[error(transparent)]
    Detect(#[from] face_detect::DetectError),
}

impl TeacherError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn cache(path: &std::path::Path, message: impl Into<String>) -> Self {
        Self::Cache {
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

/// `Result` with [`TeacherError`].
pub type Result<T, E = TeacherError> = std::result::Result<T, E>;

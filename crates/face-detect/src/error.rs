//! The error type of `face-detect`.

use std::path::PathBuf;

/// Errors of detector construction and detection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DetectError {
    /// A network's weights could not be loaded.
    #[error("MTCNN {net}: {source}")]
    Weights {
        /// `pnet`, `rnet` or `onet`.
        net: &'static str,
        /// The loader's error (names the file and keys).
        #[source]
        source: face_nets::NetsError,
    },
    /// The weights directory lacks a file.
    #[error("{path}: missing MTCNN weights (run tools/fetch_models.sh)")]
    MissingFile {
        /// The expected file.
        path: PathBuf,
    },
    /// An invalid parameter.
    #[error("invalid MTCNN parameter `{name}`: {message}")]
    Param {
        /// The parameter.
        name: &'static str,
        /// Why.
        message: String,
    },
    /// An image could not be read or aligned.
    #[error(transparent)]
    Data(#[from] face_data::DataError),
}

/// `Result` with [`DetectError`].
pub type Result<T, E = DetectError> = std::result::Result<T, E>;

//! The one error type of `face-search`.

use std::path::PathBuf;

/// Everything that can go wrong while building, reading or searching a gallery.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SearchError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Writing a gallery failed (other than a file-system error, which is [`Self::Io`]).
    #[error(transparent)]
    Output(face_io::IoError),
    /// A gallery file is not one we wrote, is truncated, or is inconsistent.
    #[error("{path}: not a valid facekit gallery: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Vectors of different dimensions were mixed.
    #[error("{what}: dimension mismatch (expected {expected}, found {found})")]
    Dimension {
        /// Which input.
        what: &'static str,
        /// Dimension of the gallery (or of the first vector).
        expected: usize,
        /// Dimension found.
        found: usize,
    },
    /// A value is NaN or infinite.
    #[error("{what}: row {row}, column {column} is not finite ({value})")]
    NonFinite {
        /// Which input.
        what: &'static str,
        /// Row of the bad value.
        row: usize,
        /// Column of the bad value.
        column: usize,
        /// The bad value.
        value: f32,
    },
    /// The input is empty where data is needed.
    #[error("{what} is empty")]
    Empty {
        /// Which input.
        what: &'static str,
    },
    /// A pair or id refers to a row that does not exist.
    #[error("{what}: index {index} out of range (only {len} rows)")]
    OutOfRange {
        /// Which input.
        what: &'static str,
        /// The bad index.
        index: usize,
        /// Rows available.
        len: usize,
    },
    /// Any other invalid argument.
    #[error("{0}")]
    Invalid(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, SearchError>;

impl From<face_io::IoError> for SearchError {
    /// A file-system failure keeps its own variant (path and OS error).
    fn from(e: face_io::IoError) -> Self {
        match e {
            face_io::IoError::Io { path, source } => Self::Io { path, source },
            other => Self::Output(other),
        }
    }
}

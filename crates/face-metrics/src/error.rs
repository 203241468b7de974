//! The one error type of `face-metrics`.

use std::path::PathBuf;

/// Everything that can go wrong while computing or writing a metric.
///
/// Variants name the input (`what`) and carry the offending index and value, so a
/// caller can point at the bad row of its own data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// Two inputs that must be parallel have different lengths.
    #[error("{what}: lengths differ (expected {expected}, found {found})")]
    LengthMismatch {
        /// Which input.
        what: &'static str,
        /// Length of the reference input.
        expected: usize,
        /// Length found.
        found: usize,
    },
    /// A score or value is NaN or infinite.
    #[error("{what}: value at index {index} is not finite ({value})")]
    NonFinite {
        /// Which input.
        what: &'static str,
        /// Position of the bad value.
        index: usize,
        /// The bad value.
        value: f64,
    },
    /// The input holds no genuine (same-identity, positive) pairs.
    #[error("{what}: no genuine (positive) pairs")]
    NoGenuine {
        /// Which input.
        what: &'static str,
    },
    /// The input holds no impostor (different-identity, negative) pairs.
    #[error("{what}: no impostor (negative) pairs")]
    NoImpostor {
        /// Which input.
        what: &'static str,
    },
    /// An input that must not be empty is empty.
    #[error("{what}: empty input")]
    Empty {
        /// Which input.
        what: &'static str,
    },
    /// A false-accept / false-positive-identification rate target outside (0, 1].
    #[error("{what}: target rate {value} is outside (0, 1]")]
    InvalidRate {
        /// Which rate.
        what: &'static str,
        /// The bad target.
        value: f64,
    },
    /// A parameter (bin count, window, smoothing factor, rank…) is out of range.
    #[error("{what}: invalid parameter: {reason}")]
    InvalidParameter {
        /// Which parameter.
        what: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// A class label is outside `0..classes`.
    #[error("{what}: label {label} at index {index} is outside 0..{classes}")]
    ClassOutOfRange {
        /// Which input.
        what: &'static str,
        /// Position of the bad label.
        index: usize,
        /// The bad label.
        label: usize,
        /// Number of classes.
        classes: usize,
    },
    /// An embedding row has zero (or non-finite) norm, so its cosine is undefined.
    #[error("{what}: embedding row {row} has norm {norm}, cosine is undefined")]
    DegenerateEmbedding {
        /// Which input.
        what: &'static str,
        /// Row index.
        row: usize,
        /// Its Euclidean norm.
        norm: f64,
    },
    /// Writing a report or plot failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file being written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Writing an output file failed (other than a file-system error, which is [`Self::Io`]).
    #[error(transparent)]
    Output(face_io::IoError),
    /// The plotting backend failed.
    #[error("plotting {path}: {message}")]
    Plot {
        /// The file being drawn.
        path: PathBuf,
        /// The backend's message.
        message: String,
    },
    /// Serialising a report to JSON failed.
    #[error("serialising report: {0}")]
    Json(#[from] serde_json::Error),
}

/// `Result` with [`MetricsError`].
pub type Result<T> = std::result::Result<T, MetricsError>;

impl From<face_io::IoError> for MetricsError {
    /// A file-system failure keeps its own variant (path and OS error).
    fn from(e: face_io::IoError) -> Self {
        match e {
            face_io::IoError::Io { path, source } => Self::Io { path, source },
            other => Self::Output(other),
        }
    }
}

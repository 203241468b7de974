//! The one error type of `face-eval`.

use std::path::PathBuf;

/// Everything that can go wrong while running a protocol.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// A protocol file could not be read or parsed.
    #[error(transparent)]
    Data(#[from] face_data::DataError),
    /// A metric could not be computed (no genuine pairs, non-finite score…).
    #[error(transparent)]
    Metrics(#[from] face_metrics::MetricsError),
    /// An output could not be written.
    #[error(transparent)]
    Output(#[from] face_io::IoError),
    /// Scoring failed (dimension mismatch…).
    #[error(transparent)]
    Search(#[from] face_search::SearchError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A features file is malformed.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The protocol names an image that has no embedding.
    #[error("no embedding for {id:?} (needed by {context})")]
    MissingEmbedding {
        /// The image id (path) looked up.
        id: String,
        /// Which protocol row needed it.
        context: String,
    },
    /// Inputs that must agree do not.
    #[error("{0}")]
    Inconsistent(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, EvalError>;

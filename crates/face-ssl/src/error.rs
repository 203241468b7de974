//! Errors of self-supervised pretraining.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = SslError> = std::result::Result<T, E>;

/// What can go wrong while configuring, pretraining or evaluating.
#[derive(Debug, thiserror::Error)]
pub enum SslError {
    /// A configuration value is out of range or inconsistent.
    #[error("config `{key}`: {message}")]
    Config {
        /// The dotted key (`dino.teacher_temp`, `views.local`, …).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A configuration file or override could not be parsed.
    #[error("config {path}: {message}")]
    ConfigFile {
        /// The file (or `<override>` for a `key=value` override).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The images or landmarks are unusable.
    #[error("data: {0}")]
    Data(String),
    /// The loss became NaN or infinite.
    #[error("non-finite loss {value} at step {step}")]
    NonFinite {
        /// Optimizer step (1-based).
        step: u64,
        /// The value.
        value: f64,
    },
    /// A saved model is missing or does not fit the configuration.
    #[error("model {path}: {message}")]
    Model {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// File-system error.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A configuration or output file could not be read or written.
    #[error(transparent)]
    File(#[from] face_io::IoError),
    /// From face-data (augmentation, landmarks, images).
    #[error(transparent)]
    FaceData(#[from] face_data::DataError),
    /// From face-metrics (evaluation, curves).
    #[error(transparent)]
    Metrics(#[from] face_metrics::MetricsError),
    /// From face-nets (margin loss configuration).
    #[error(transparent)]
    Nets(#[from] face_nets::NetsError),
}

impl SslError {
    /// A configuration error for `key`.
    pub fn config(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Config {
            key: key.into(),
            message: message.into(),
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

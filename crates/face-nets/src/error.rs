//! The error type of `face-nets`.

use std::path::PathBuf;

/// Errors of model construction and checkpoint loading.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetsError {
    /// The checkpoint could not be read.
    #[error("{path}: {message}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Required weights are absent from the checkpoint (after key remapping).
    #[error("{path}: {} model weights missing from the checkpoint, e.g. {}", keys.len(), keys.iter().take(5).cloned().collect::<Vec<_>>().join(", "))]
    MissingKeys {
        /// The checkpoint file.
        path: PathBuf,
        /// Model paths with no tensor.
        keys: Vec<String>,
    },
    /// The checkpoint has tensors the model does not use and that are not allowed to be left over.
    #[error("{path}: {} checkpoint tensors unused by the model, e.g. {}", keys.len(), keys.iter().take(5).cloned().collect::<Vec<_>>().join(", "))]
    UnusedKeys {
        /// The checkpoint file.
        path: PathBuf,
        /// Checkpoint keys (after remapping) nothing consumed.
        keys: Vec<String>,
    },
    /// A tensor has the wrong shape or type.
    #[error("{path}: {message}")]
    Tensor {
        /// The checkpoint file.
        path: PathBuf,
        /// Which tensor and what differs.
        message: String,
    },
    /// The requested device is not available in this build or on this machine.
    #[error("device: {0}")]
    Device(String),
    /// A tensor could not be read back to the host.
    #[error("cannot read back {0}")]
    Readback(String),
    /// Writing or reading a file failed.
    #[error(transparent)]
    File(#[from] face_io::IoError),
    /// An invalid configuration.
    #[error("invalid config `{name}`: {message}")]
    Config {
        /// The field.
        name: &'static str,
        /// Why.
        message: String,
    },
}

/// Result alias of this crate.
pub type Result<T, E = NetsError> = std::result::Result<T, E>;

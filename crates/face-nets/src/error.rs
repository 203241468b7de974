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
    /// The checkpoint's keys do not match the architecture (after key remapping): model weights
    /// without a tensor, checkpoint tensors nothing uses (outside the allow-list), or both.
    #[error(
        "{path}: the checkpoint does not match the architecture: {}",
        describe_keys(missing, unused)
    )]
    Keys {
        /// The checkpoint file.
        path: PathBuf,
        /// Model paths with no tensor.
        missing: Vec<String>,
        /// Checkpoint keys nothing consumed.
        unused: Vec<String>,
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

/// `N model weights missing (a, b, …); M checkpoint tensors unused (c, …)`, the first 8 of each.
fn describe_keys(missing: &[String], unused: &[String]) -> String {
    let list = |keys: &[String]| {
        let mut s = keys.iter().take(8).cloned().collect::<Vec<_>>().join(", ");
        if keys.len() > 8 {
            s.push_str(", …");
        }
        s
    };
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!(
            "{} model weights missing ({})",
            missing.len(),
            list(missing)
        ));
    }
    if !unused.is_empty() {
        parts.push(format!(
            "{} checkpoint tensors unused ({})",
            unused.len(),
            list(unused)
        ));
    }
    parts.join("; ")
}

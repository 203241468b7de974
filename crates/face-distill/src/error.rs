//! Errors of the distillation trainer.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = DistillError> = std::result::Result<T, E>;

/// What can go wrong while configuring, training or evaluating a student.
#[derive(Debug, thiserror::Error)]
pub enum DistillError {
    /// A configuration value is out of range or inconsistent with the data.
    #[error("config `{key}`: {message}")]
    Config {
        /// The dotted key (`optim.lr`, `data.batch`, …).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The training or validation data is unusable.
    #[error("data: {0}")]
    Data(String),
    /// A checkpoint is missing, corrupt, or from another run.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint directory or file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The loss became NaN or infinite.
    #[error("non-finite loss {value} at step {step} ({part})")]
    NonFinite {
        /// Optimizer step.
        step: u64,
        /// Which loss term.
        part: &'static str,
        /// The value.
        value: f64,
    },
    /// A device's forward or backward pass panicked (out of memory, a backend fault).
    #[error("device {device} failed at step {step}: {message}")]
    DeviceStep {
        /// The device's index and name.
        device: String,
        /// The optimizer step (1-based) being computed.
        step: u64,
        /// The panic's message.
        message: String,
    },
    /// A multi-process run failed: a bad setting, a peer that does not match, stops or does
    /// not answer in time.
    #[error("peer {peer}: {message}")]
    Peers {
        /// This process's peer id.
        peer: u32,
        /// What went wrong, naming the other peer when known.
        message: String,
    },
    /// A configuration or output file could not be read or written.
    #[error(transparent)]
    File(#[from] face_io::IoError),
    /// The requested device is not available in this build or on this machine.
    #[error("device: {0}")]
    Device(String),
    /// File-system error.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// From face-data.
    #[error(transparent)]
    FaceData(#[from] face_data::DataError),
    /// From face-metrics.
    #[error(transparent)]
    Metrics(#[from] face_metrics::MetricsError),
    /// From face-nets.
    #[error(transparent)]
    Nets(#[from] face_nets::NetsError),
    /// From face-detect.
    #[error(transparent)]
    Detect(#[from] face_detect::DetectError),
    /// From face-teachers.
    #[error(transparent)]
    Teachers(#[from] face_teachers::TeacherError),
}

impl DistillError {
    pub(crate) fn config(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Config {
            key: key.into(),
            message: message.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }

    pub(crate) fn checkpoint(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Checkpoint {
            path: path.into(),
            message: message.into(),
        }
    }
}

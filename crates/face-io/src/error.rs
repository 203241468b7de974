//! The one error type of face-io.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = IoError> = std::result::Result<T, E>;

/// What can go wrong writing a file, reading a configuration or handling checkpoints.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IoError {
    /// A file-system operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file is malformed or does not fit the expected type.
    #[error("{path}:{line}:{column}: {message}")]
    Json {
        /// The file (`<override>` for a command-line override).
        path: PathBuf,
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A configuration names a key the configuration type does not have.
    #[error("{path}: unknown key `{key}`{}", hint.as_ref().map(|h| format!(" (did you mean `{h}`?)")).unwrap_or_default())]
    UnknownKey {
        /// The file (`<override>` for a command-line override).
        path: PathBuf,
        /// The full dotted key, e.g. `student.backbone.base_widht`.
        key: String,
        /// A known key of the same section that is spelled alike.
        hint: Option<String>,
    },
    /// A `key=value` override is malformed or its value has the wrong type.
    #[error("override `{text}`: {message}")]
    Override {
        /// The override as given.
        text: String,
        /// What is wrong.
        message: String,
    },
    /// A value cannot be serialised (a non-finite float in JSON, for instance).
    #[error("{path}: cannot serialise: {message}")]
    Serialise {
        /// The file being written.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl IoError {
    /// A closure turning an `std::io::Error` into [`IoError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }

    pub(crate) fn json(path: impl Into<PathBuf>, e: &serde_json::Error) -> Self {
        // serde_json appends " at line L column C" to its message; the fields carry them.
        let text = e.to_string();
        let message = match text.rfind(" at line ") {
            Some(i) if e.line() > 0 => text[..i].to_owned(),
            _ => text,
        };
        Self::Json {
            path: path.into(),
            line: e.line(),
            column: e.column(),
            message,
        }
    }
}

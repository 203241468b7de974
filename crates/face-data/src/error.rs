//! The error type of `face-data`: every variant names the file, line, record or parameter involved.

use std::path::PathBuf;

/// Everything that can go wrong while reading datasets, aligning faces or sampling.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// An output could not be written.
    #[error(transparent)]
    Output(#[from] face_io::IoError),
    /// A text file has a malformed line.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file (or the name given to an in-memory text).
        path: PathBuf,
        /// 1-based line number; 0 when the problem concerns the whole file.
        line: usize,
        /// What is wrong, quoting the offending token.
        message: String,
    },
    /// An image could not be decoded.
    #[error("{path}: cannot decode image: {message}")]
    Decode {
        /// The image file, or `<rec>#<key>` for a RecordIO record.
        path: PathBuf,
        /// The decoder's message.
        message: String,
    },
    /// A RecordIO file is corrupt or a key is missing.
    #[error("{path}: RecordIO byte offset {offset}: {message}")]
    RecordIo {
        /// The `.rec` or `.idx` file.
        path: PathBuf,
        /// Byte offset of the record in the `.rec` file.
        offset: u64,
        /// What is wrong.
        message: String,
    },
    /// A parameter is out of its valid range.
    #[error("invalid parameter `{name}`: {message}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// Why it is invalid, with the value.
        message: String,
    },
    /// Landmarks from which no similarity transform can be estimated.
    #[error("degenerate landmarks: {0}")]
    DegenerateLandmarks(String),
    /// A request cannot be met by the data (too few identities, images or pairs).
    #[error("not enough data: {0}")]
    NotEnough(String),
    /// Two inputs that must agree do not (row counts, names, lengths).
    #[error("inconsistent inputs: {0}")]
    Inconsistent(String),
}

/// Result alias of this crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

impl DataError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    /// A parse error at `line` (1-based) of `path`.
    pub fn parse(path: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Self {
        DataError::Parse {
            path: path.into(),
            line,
            message: message.into(),
        }
    }

    /// An invalid parameter.
    pub fn param(name: &'static str, message: impl Into<String>) -> Self {
        DataError::InvalidParameter {
            name,
            message: message.into(),
        }
    }
}

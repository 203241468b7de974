//! The program's error: bad input (exit 3) or a failure while running (exit 4).

/// What went wrong, as one line naming the file and the problem.
#[derive(Debug)]
pub enum CliError {
    /// The input is wrong: a missing or malformed file, no face, mismatched dimensions.
    Input(String),
    /// Running failed: output not writable, device unavailable.
    Failure(String),
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Input(m) | CliError::Failure(m) => f.write_str(m),
        }
    }
}

/// Result alias of the program.
pub type Res<T> = Result<T, CliError>;

/// Classifies library errors at the call site.
pub trait Classify<T> {
    /// The error is the input's fault (exit 3).
    fn input(self) -> Res<T>;
    /// The error happened while running or writing (exit 4).
    fn failure(self) -> Res<T>;
}

impl<T, E: std::fmt::Display> Classify<T> for Result<T, E> {
    fn input(self) -> Res<T> {
        self.map_err(|e| CliError::Input(e.to_string()))
    }
    fn failure(self) -> Res<T> {
        self.map_err(|e| CliError::Failure(e.to_string()))
    }
}

/// An input error from a message.
pub fn bad(message: impl Into<String>) -> CliError {
    CliError::Input(message.into())
}

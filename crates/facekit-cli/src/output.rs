//! What every command returns and how it writes: the summary (human and JSON), atomic files,
//! progress bars.

use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::error::{Classify, Res};

/// What a command reports.
pub struct Outcome {
    /// The human summary (printed without `--json`).
    pub human: String,
    /// The JSON summary (printed with `--json`).
    pub json: Value,
    /// Exit code (0, or 1 for a rejected `verify`).
    pub code: u8,
}

impl Outcome {
    /// A successful outcome (exit 0).
    pub fn ok(human: String, json: Value) -> Self {
        Self { human, json, code: 0 }
    }
}

/// Writes `bytes` atomically (face-io), creating the parent folder.
pub fn write_file(path: &Path, bytes: &[u8]) -> Res<()> {
    ensure_parent(path)?;
    face_io::write_atomic(path, bytes).failure()
}

/// Writes pretty JSON atomically, creating the parent folder.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Res<()> {
    ensure_parent(path)?;
    face_io::write_json(path, value).failure()
}

/// Creates the folder an output file goes into.
pub fn ensure_parent(path: &Path) -> Res<()> {
    face_io::ensure_parent(path).failure()
}

/// A progress bar on stderr (hidden with `--json`).
pub fn bar(len: usize, what: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{what} {{bar:30}} {{pos}}/{{len}} {{per_sec}} eta {{eta}}"
    )) {
        b.set_style(style);
    }
    b
}

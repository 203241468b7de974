//! # face-io
//!
//! The file layer every facekit crate writes through (no Burn, three small dependencies):
//!
//! - [`write_atomic`] / [`write_json`]: a file appears whole or not at all (`<name>.partial`,
//!   fsync, rename, fsync of the folder);
//! - [`read_config`] / [`parse_config`] / [`apply_overrides`]: JSON configurations and dotted
//!   `key=value` overrides where a key the type does not know is an error at every depth, named
//!   by its full dotted path;
//! - [`CheckpointDir`]: step-numbered checkpoint folders committed by one rename, and
//!   [`Fingerprint`], which ties a checkpoint to the data it was trained on.
//!
//! ```
//! #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
//! struct Config { lr: f64 }
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("config.json");
//! face_io::write_config(&path, &Config { lr: 0.1 })?;
//! let c: Config = face_io::read_config(&path)?;
//! let c = face_io::apply_overrides(&c, &["lr=0.5".to_string()])?;
//! assert_eq!(c, Config { lr: 0.5 });
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod checkpoint;
mod config;
mod error;
mod file;
mod fingerprint;

pub use checkpoint::CheckpointDir;
pub use config::{
    apply_overrides, check_every_section, from_value_strict, parse_config, read_config, sections,
    with_extra_key, write_config, OVERRIDE_SOURCE,
};
pub use error::{IoError, Result};
pub use file::{ensure_parent, partial_path, read_exact_at, read_json, sync_dir, write_atomic, write_json};
pub use fingerprint::Fingerprint;

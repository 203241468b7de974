//! Face recognition evaluation protocols on embeddings, without Burn.
//!
//! - [`ijb`]: IJB-B / IJB-C 1:1 verification with insightface's template
//!   aggregation and its `N`/`D`/`F` ablation switches;
//! - [`lfw`]: LFW 10-fold accuracy (threshold chosen on 9 folds) and VAL@FAR;
//! - [`pairs`]: any pair list, per group (e.g. demographic-balanced lists) with
//!   the largest gap between groups;
//! - [`attributes`]: the CelebA attribute-paired threshold-accuracy table;
//! - [`identify`]: top-N identification on a gallery/probe split;
//! - [`enrol`]: the failure-to-enrol policy every protocol applies (`reject`, `skip`, `fail`);
//! - [`scores`]: per-pair score files (`scores.tsv`, or `scores.npy` at IJB sizes).
//!
//! Embeddings come from a facekit gallery file or a numpy `.npy` matrix
//! ([`Embeddings`]); scores and metrics come from `face-search` and
//! `face-metrics`. The `facekit eval` command is a thin layer over these.
//!
//! ```
//! use face_eval::lfw::best_threshold;
//! // Accept when score > threshold: the midpoint between 0.3 and 0.7 separates these.
//! let t = best_threshold(&[(0.9, true), (0.7, true), (0.3, false), (0.1, false)]);
//! assert_eq!(t, 0.5);
//! ```

#![warn(missing_docs)]

pub mod attributes;
mod embeddings;
pub mod enrol;
mod error;
pub mod identify;
pub mod ijb;
pub mod lfw;
pub mod pairs;
pub mod scores;

pub use embeddings::{read_npy_f32, write_npy_f32, write_npy_i64, Embeddings};
pub use error::{EvalError, Result};

//! Fast 1:N face search and 1:1 pair scoring, without Burn.
//!
//! A [`Gallery`] holds embeddings with string ids in one of four [`Storage`]
//! forms — f32, f16, int8 (per-row symmetric quantisation) or sparse (only the
//! non-zeros, for ReLU embeddings) — in a single file that is memory-mapped when
//! opened. [`Gallery::search`] scores a batch of queries against every row with
//! register-tiled SIMD kernels (AVX2+FMA when the CPU has them, chosen at run
//! time), in parallel over gallery chunks, and returns the exact top-k per query
//! (ties to the lower row). [`score_pairs`] scores long pair lists such as IJB-C's.
//!
//! ```
//! use face_search::{BuildOptions, Gallery, Storage};
//! let ids = ["alice", "bob", "carol"];
//! let rows = [1.0, 0.0, 0.0, 1.0, 0.6, 0.8];
//! let gallery = Gallery::build(&ids, 2, &rows, BuildOptions::new(Storage::F32))?;
//! let hits = gallery.search(&[0.5, 0.6], 2)?;
//! assert_eq!(gallery.id(hits[0][0].index as usize), "carol");
//! # Ok::<(), face_search::SearchError>(())
//! ```
//!
//! Why a crate of its own rather than a module of `face-metrics`: search is a
//! storage-and-kernels problem (file format, memory maps, SIMD), used at run
//! time by deployments as much as by evaluation; `face-metrics` stays a pure
//! function-of-scores crate and consumes the scores this crate produces.

#![warn(missing_docs)]

mod error;
mod gallery;
mod kernels;
mod pairs;
mod search;
mod topk;

pub use error::{Result, SearchError};
pub use gallery::{BuildOptions, Gallery, Storage};
pub use pairs::score_pairs;
pub use topk::Hit;

/// Whether the AVX2+FMA kernels are in use on this CPU (set `FACEKIT_NO_SIMD=1`
/// to force the portable ones).
pub fn simd_in_use() -> bool {
    kernels::simd_available()
}

//! # face-metrics
//!
//! Evaluation metrics for face recognition, in pure Rust (no Burn): any Rust
//! project can import it.
//!
//! * 1:1 verification — the exact scikit-learn ROC ([`roc_curve`]), AUC
//!   (trapezoid and Mann–Whitney), TAR@FAR in three conventions
//!   ([`FarConvention`]), EER with its interval, DET points, FNMR@FMR — through
//!   [`VerificationScores`], which handles IJB-C-sized score sets (15.7 M pairs)
//!   without sorting them.
//! * 1:N identification — [`cmc`], [`top_n_accuracy`], [`tpir_at_fpir`].
//! * Attributes — [`age_mae`], [`cumulative_score`], [`gender_accuracy`], [`ConfusionMatrix`].
//! * irAUC training monitor — [`PairwiseBatchAuc`], [`RunningAuc`], [`IrAucMonitor`],
//!   and the pooled [`StreamingAuc`].
//! * Per-group breakdown ([`per_group`]), JSON reports ([`VerificationReport`]) and
//!   SVG plots ([`write_roc_svg`], [`write_det_svg`]).
//!
//! Scores are similarities: a pair is accepted when `score >= threshold`.
//!
//! ```
//! use face_metrics::{FarConvention, VerificationScores, DEFAULT_FAR_TARGETS};
//! let genuine = [0.81, 0.74, 0.66, 0.35];
//! let impostor = [0.42, 0.30, 0.12, 0.05, -0.1];
//! let v = VerificationScores::from_split(&genuine, &impostor)?;
//! assert_eq!(v.auc(), 19.0 / 20.0);
//! let tar = v.tar_at_far(&DEFAULT_FAR_TARGETS, FarConvention::Nearest)?;
//! assert_eq!(tar.len(), 6);
//! # Ok::<(), face_metrics::MetricsError>(())
//! ```
#![warn(missing_docs)]

mod attributes;
mod checks;
mod error;
mod groups;
mod identification;
mod irauc;
mod plot;
mod probit;
mod report;
mod roc;
mod serde_float;
mod slots;
mod verification;

pub use attributes::{age_mae, cumulative_score, gender_accuracy, ConfusionMatrix};
pub use error::{MetricsError, Result};
pub use groups::{per_group, GroupBreakdown};
pub use identification::{cmc, search_outcomes, top_n_accuracy, tpir_at_fpir, ProbeOutcome, TpirAtFpir};
pub use irauc::{BatchAuc, IrAucMonitor, IrAucStep, PairwiseBatchAuc, RunningAuc, Smoothing, StreamingAuc};
pub use plot::{write_curve_svg, write_det_svg, write_roc_svg};
pub use probit::probit;
pub use report::VerificationReport;
pub use roc::{auc_trapezoid, mann_whitney_auc, roc_curve, RocCurve, RocOptions};
pub use verification::{
    threshold_accuracy, DetPoint, Eer, FarConvention, RocPoint, TarAtFar, VerificationScores,
    DEFAULT_FAR_TARGETS,
};

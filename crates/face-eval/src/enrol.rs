//! Failure to enrol (ISO/IEC 19795-1): an image with no usable face, or an id without an
//! embedding, must not stop an evaluation, and must not be dropped silently either. A
//! [`MissingPolicy`] says what happens to the pairs (or probes) that need it, and a
//! [`FailureToEnrol`] record goes into every report: the count, the rate and each failed image
//! with its reason.
//!
//! Under [`MissingPolicy::Reject`] (the default) a pair with a missing side is a non-match at
//! every threshold: it counts against TAR / for FNMR when genuine and as a correct rejection when
//! impostor, never as a match. It is scored with a floor below every real score
//! ([`PolicyScores::floor`]), which a threshold never accepts — except the degenerate accept-all
//! threshold at the floor itself, the FAR = 1 end of the ROC, where every pair is accepted
//! anyway.

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// What happens to a pair (or probe) that needs an image that failed to enrol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingPolicy {
    /// A non-match at every threshold (ISO/IEC 19795-1's treatment of a failure to enrol).
    #[default]
    Reject,
    /// Left out of the metrics (and counted).
    Skip,
    /// The evaluation stops with an error naming the failures.
    Fail,
}

impl std::str::FromStr for MissingPolicy {
    type Err = EvalError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "reject" => Ok(Self::Reject),
            "skip" => Ok(Self::Skip),
            "fail" => Ok(Self::Fail),
            other => Err(EvalError::Inconsistent(format!(
                "unknown missing-face policy `{other}` (reject, skip or fail)"
            ))),
        }
    }
}

/// One image that failed to enrol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolFailure {
    /// The image id (as the protocol names it).
    pub id: String,
    /// Why: no face found, unreadable image, no embedding in the file…
    pub reason: String,
}

/// The failure-to-enrol part of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureToEnrol {
    /// The policy applied.
    pub policy: MissingPolicy,
    /// Images the protocol needed.
    pub images: usize,
    /// Images that failed, each with its reason.
    pub failed: Vec<EnrolFailure>,
    /// `failed / images` (0 without images).
    pub rate: f64,
    /// Pairs (or probes) that needed a failed image.
    pub affected: usize,
    /// Of those, counted as non-matches (reject).
    pub rejected: usize,
    /// Of those, left out of the metrics (skip).
    pub skipped: usize,
}

impl FailureToEnrol {
    /// The record for `images` needed images of which `failed` failed, and `affected` pairs
    /// under `policy`.
    pub fn new(policy: MissingPolicy, images: usize, failed: Vec<EnrolFailure>, affected: usize) -> Self {
        let rate = if images == 0 {
            0.0
        } else {
            failed.len() as f64 / images as f64
        };
        Self {
            policy,
            images,
            rate,
            affected,
            rejected: if policy == MissingPolicy::Reject {
                affected
            } else {
                0
            },
            skipped: if policy == MissingPolicy::Skip {
                affected
            } else {
                0
            },
            failed,
        }
    }

    /// One line for a summary.
    pub fn summary(&self) -> String {
        format!(
            "failure to enrol: {} of {} images ({:.2} %); {} pairs affected ({} rejected as non-matches, {} skipped)",
            self.failed.len(),
            self.images,
            100.0 * self.rate,
            self.affected,
            self.rejected,
            self.skipped
        )
    }

    /// The error [`MissingPolicy::Fail`] stops with: the count and the first failures.
    pub fn error(&self) -> EvalError {
        let first: Vec<String> = self
            .failed
            .iter()
            .take(3)
            .map(|f| format!("{}: {}", f.id, f.reason))
            .collect();
        EvalError::Inconsistent(format!(
            "{} of {} images failed to enrol (e.g. {}); --missing reject counts their pairs as non-matches, skip leaves them out",
            self.failed.len(),
            self.images,
            first.join("; ")
        ))
    }
}

/// Pair scores after a policy: what the metrics see.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyScores {
    /// The score of each kept pair (a missing pair under `Reject` holds [`PolicyScores::floor`]).
    pub scores: Vec<f64>,
    /// Whether each kept pair is genuine.
    pub genuine: Vec<bool>,
    /// The index of each kept pair in the input.
    pub kept: Vec<usize>,
    /// Pairs with a missing side.
    pub missing: usize,
    /// The score given to rejected pairs: 1 below the lowest real score.
    pub floor: f64,
}

impl PolicyScores {
    /// Moves the floor of the rejected pairs below `bound` too (to `bound − 1` when it is not
    /// already below), for a protocol that also decides at fixed thresholds (CelebA's
    /// 0.6/0.7/0.8), so a rejected pair stays a non-match at every one of them. Real scores are
    /// untouched: they all lie at least 1 above the old floor.
    pub fn lower_floor(&mut self, bound: f64) {
        if self.floor < bound {
            return;
        }
        let (old, floor) = (self.floor, bound - 1.0);
        self.scores
            .iter_mut()
            .filter(|s| **s == old)
            .for_each(|s| *s = floor);
        self.floor = floor;
    }
}

/// Applies `policy` to pair scores whose `None` entries have a missing side.
///
/// # Errors
/// `Fail` with any missing pair; lengths that differ; a non-finite real score; no real score at
/// all (every pair misses a side, so no threshold means anything).
///
/// # Examples
/// ```
/// use face_eval::enrol::{apply_policy, MissingPolicy};
/// let raw = [Some(0.9), None, Some(0.2)];
/// let genuine = [true, true, false];
/// let r = apply_policy(&raw, &genuine, MissingPolicy::Reject)?;
/// assert_eq!(r.scores, vec![0.9, -0.8, 0.2]); // the genuine pair with a missing side can never match
/// let s = apply_policy(&raw, &genuine, MissingPolicy::Skip)?;
/// assert_eq!((s.scores, s.kept), (vec![0.9, 0.2], vec![0, 2]));
/// assert!(apply_policy(&raw, &genuine, MissingPolicy::Fail).is_err());
/// # Ok::<(), face_eval::EvalError>(())
/// ```
pub fn apply_policy(raw: &[Option<f64>], genuine: &[bool], policy: MissingPolicy) -> Result<PolicyScores> {
    if raw.len() != genuine.len() {
        return Err(EvalError::Inconsistent(format!(
            "{} scores for {} labels",
            raw.len(),
            genuine.len()
        )));
    }
    if let Some(i) = raw.iter().position(|s| s.is_some_and(|v| !v.is_finite())) {
        return Err(EvalError::Inconsistent(format!(
            "pair {}: score {:?} is not finite",
            i + 1,
            raw[i]
        )));
    }
    let missing = raw.iter().filter(|s| s.is_none()).count();
    if missing > 0 && policy == MissingPolicy::Fail {
        return Err(EvalError::Inconsistent(format!(
            "{missing} of {} pairs have a side without an embedding",
            raw.len()
        )));
    }
    let lowest = raw.iter().flatten().copied().fold(f64::INFINITY, f64::min);
    if !lowest.is_finite() {
        return Err(EvalError::Inconsistent(format!(
            "all {} pairs have a side without an embedding: nothing to evaluate",
            raw.len()
        )));
    }
    let floor = lowest - 1.0;
    let mut out = PolicyScores {
        scores: Vec::with_capacity(raw.len()),
        genuine: Vec::with_capacity(raw.len()),
        kept: Vec::with_capacity(raw.len()),
        missing,
        floor,
    };
    for (i, (s, &g)) in raw.iter().zip(genuine).enumerate() {
        match (s, policy) {
            (Some(v), _) => out.scores.push(*v),
            (None, MissingPolicy::Reject) => out.scores.push(floor),
            (None, _) => continue,
        }
        out.genuine.push(g);
        out.kept.push(i);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use face_metrics::{FarConvention, VerificationScores};

    #[test]
    fn a_rejected_genuine_pair_costs_tar_at_every_far() {
        // 4 genuine pairs (one misses a side) and 4 impostors.
        let raw = [
            Some(0.9),
            Some(0.8),
            Some(0.7),
            None,
            Some(0.5),
            Some(0.4),
            Some(0.3),
            Some(0.2),
        ];
        let genuine = [true, true, true, true, false, false, false, false];
        let r = apply_policy(&raw, &genuine, MissingPolicy::Reject).unwrap();
        assert_eq!(r.floor, 0.2 - 1.0);
        let v = VerificationScores::from_pairs(r.scores.clone(), r.genuine.clone()).unwrap();
        // At FAR 0 the three real genuine scores pass, the rejected one cannot: TAR 3/4.
        let t = v.tar_at_far(&[0.25], FarConvention::AtMost).unwrap();
        assert_eq!(t[0].tar, 0.75);
        // AUC: the rejected genuine pair loses to every impostor.
        assert!((v.auc() - 0.75).abs() < 1e-12, "{}", v.auc());
        // Skipped, the same list is perfect.
        let s = apply_policy(&raw, &genuine, MissingPolicy::Skip).unwrap();
        let v = VerificationScores::from_pairs(s.scores, s.genuine).unwrap();
        assert_eq!(v.auc(), 1.0);
        assert_eq!(s.missing, 1);
    }

    #[test]
    fn bad_inputs() {
        // A floor lowered below a fixed threshold moves the rejected pairs only.
        let mut r = apply_policy(&[Some(0.9), None], &[true, true], MissingPolicy::Reject).unwrap();
        r.lower_floor(-0.5);
        assert_eq!((r.scores.clone(), r.floor), (vec![0.9, -1.5], -1.5));
        r.lower_floor(0.6); // already below
        assert_eq!(r.scores, vec![0.9, -1.5]);
        assert!(apply_policy(&[Some(1.0)], &[true, false], MissingPolicy::Reject).is_err());
        assert!(apply_policy(&[Some(f64::NAN)], &[true], MissingPolicy::Reject).is_err());
        assert!(apply_policy(&[None, None], &[true, false], MissingPolicy::Reject).is_err());
        assert_eq!("skip".parse::<MissingPolicy>().unwrap(), MissingPolicy::Skip);
        assert!("drop".parse::<MissingPolicy>().is_err());
        let fte = FailureToEnrol::new(
            MissingPolicy::Reject,
            4,
            vec![EnrolFailure {
                id: "a.jpg".into(),
                reason: "no face found".into(),
            }],
            3,
        );
        assert_eq!((fte.rate, fte.rejected, fte.skipped), (0.25, 3, 0));
        assert!(fte.error().to_string().contains("a.jpg: no face found"));
    }
}

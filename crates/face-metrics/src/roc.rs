//! The exact ROC curve, as scikit-learn's `roc_curve` computes it, and the two AUCs.
//!
//! Scores are similarities: a pair is accepted when `score >= threshold`.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::checks;
use crate::error::{MetricsError, Result};

/// Options of [`roc_curve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RocOptions {
    /// Drop points that are collinear with their neighbours (scikit-learn's
    /// `drop_intermediate`, default `true`): a point is kept when its increment of
    /// false or true positives differs from the next point's.
    pub drop_intermediate: bool,
}

impl Default for RocOptions {
    fn default() -> Self {
        Self {
            drop_intermediate: true,
        }
    }
}

/// An ROC curve: one point per distinct threshold, in decreasing threshold order,
/// starting with the `(0, 0)` point at `+inf`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RocCurve {
    /// Decision thresholds (accept when `score >= threshold`); the first is `+inf`.
    pub thresholds: Vec<f64>,
    /// False positive rate (FAR) at each threshold.
    pub fpr: Vec<f64>,
    /// True positive rate (TAR) at each threshold.
    pub tpr: Vec<f64>,
    /// False positives (accepted impostors) at each threshold.
    pub fps: Vec<u64>,
    /// True positives (accepted genuine pairs) at each threshold.
    pub tps: Vec<u64>,
}

impl RocCurve {
    /// Number of points.
    pub fn len(&self) -> usize {
        self.thresholds.len()
    }

    /// Whether the curve has no point (never true for a computed curve).
    pub fn is_empty(&self) -> bool {
        self.thresholds.is_empty()
    }

    /// Area under this curve by the trapezoid rule.
    pub fn auc(&self) -> Result<f64> {
        auc_trapezoid(&self.fpr, &self.tpr)
    }
}

/// Scores with their labels, sorted by decreasing score (ties in any order).
fn sorted_desc(scores: &[f64], genuine: &[bool]) -> Vec<(f64, bool)> {
    let mut pairs: Vec<(f64, bool)> = scores
        .par_iter()
        .zip(genuine.par_iter())
        .map(|(&s, &g)| (checks::canonical(s), g))
        .collect();
    pairs.par_sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    pairs
}

fn validate_pairs(what: &'static str, scores: &[f64], genuine: &[bool]) -> Result<(usize, usize)> {
    checks::same_len(what, scores.len(), genuine.len())?;
    checks::non_empty(what, scores.len())?;
    checks::all_finite(what, scores)?;
    let n_gen = genuine.par_iter().filter(|&&g| g).count();
    checks::both_classes(what, n_gen, scores.len() - n_gen)?;
    Ok((n_gen, scores.len() - n_gen))
}

/// Computes the ROC curve of similarity `scores` with labels `genuine`
/// (`true` = same identity), point for point as scikit-learn's
/// `roc_curve(genuine, scores, drop_intermediate=…)` (version ≥ 1.3, where the
/// first threshold is `+inf`).
///
/// This sorts all scores: O(n log n). For the summary numbers of a large
/// evaluation (AUC, TAR@FAR, EER) use [`crate::VerificationScores`], which does not sort.
///
/// # Errors
/// Length mismatch, empty input, a non-finite score, or a missing class.
///
/// # Examples
/// ```
/// use face_metrics::{roc_curve, RocOptions};
/// let scores = [0.9, 0.8, 0.7, 0.3, 0.2];
/// let genuine = [true, true, false, true, false];
/// let roc = roc_curve(&scores, &genuine, RocOptions { drop_intermediate: false }).unwrap();
/// assert_eq!(roc.thresholds[0], f64::INFINITY);
/// assert_eq!(roc.tps, vec![0, 1, 2, 2, 3, 3]);
/// assert_eq!(roc.fps, vec![0, 0, 0, 1, 1, 2]);
/// assert!((roc.auc().unwrap() - 5.0 / 6.0).abs() < 1e-15);
/// ```
pub fn roc_curve(scores: &[f64], genuine: &[bool], options: RocOptions) -> Result<RocCurve> {
    let (n_gen, n_imp) = validate_pairs("roc_curve", scores, genuine)?;
    let sorted = sorted_desc(scores, genuine);

    // One point per distinct score: cumulative counts up to the last of its ties.
    let mut thresholds = Vec::new();
    let mut fps = Vec::new();
    let mut tps = Vec::new();
    let (mut tp, mut fp) = (0u64, 0u64);
    for (i, &(s, g)) in sorted.iter().enumerate() {
        if g {
            tp += 1;
        } else {
            fp += 1;
        }
        let last_of_ties = i + 1 == sorted.len() || sorted[i + 1].0 != s;
        if last_of_ties {
            thresholds.push(s);
            fps.push(fp);
            tps.push(tp);
        }
    }

    if options.drop_intermediate && fps.len() > 2 {
        let keep: Vec<usize> = (0..fps.len())
            .filter(|&i| {
                i == 0
                    || i + 1 == fps.len()
                    || fps[i + 1] + fps[i - 1] != 2 * fps[i]
                    || tps[i + 1] + tps[i - 1] != 2 * tps[i]
            })
            .collect();
        thresholds = keep.iter().map(|&i| thresholds[i]).collect();
        fps = keep.iter().map(|&i| fps[i]).collect();
        tps = keep.iter().map(|&i| tps[i]).collect();
    }

    thresholds.insert(0, f64::INFINITY);
    fps.insert(0, 0);
    tps.insert(0, 0);
    let fpr = fps.iter().map(|&f| f as f64 / n_imp as f64).collect();
    let tpr = tps.iter().map(|&t| t as f64 / n_gen as f64).collect();
    Ok(RocCurve {
        thresholds,
        fpr,
        tpr,
        fps,
        tps,
    })
}

/// Area under a curve by the trapezoid rule, as scikit-learn's `auc(x, y)`:
/// `x` must be monotone (either direction).
///
/// # Errors
/// Length mismatch, fewer than two points, non-finite values, or non-monotone `x`.
///
/// # Examples
/// ```
/// let area = face_metrics::auc_trapezoid(&[0.0, 0.5, 1.0], &[0.0, 1.0, 1.0]).unwrap();
/// assert!((area - 0.75).abs() < 1e-15);
/// ```
pub fn auc_trapezoid(x: &[f64], y: &[f64]) -> Result<f64> {
    checks::same_len("auc_trapezoid", x.len(), y.len())?;
    if x.len() < 2 {
        return Err(MetricsError::InvalidParameter {
            what: "auc_trapezoid",
            reason: format!("needs at least 2 points, got {}", x.len()),
        });
    }
    checks::all_finite("auc_trapezoid x", x)?;
    checks::all_finite("auc_trapezoid y", y)?;
    let increasing = x.windows(2).all(|w| w[1] >= w[0]);
    let decreasing = x.windows(2).all(|w| w[1] <= w[0]);
    if !increasing && !decreasing {
        return Err(MetricsError::InvalidParameter {
            what: "auc_trapezoid",
            reason: "x is neither increasing nor decreasing".into(),
        });
    }
    let area: f64 = x
        .windows(2)
        .zip(y.windows(2))
        .map(|(xw, yw)| (xw[1] - xw[0]) * (yw[1] + yw[0]) / 2.0)
        .sum();
    Ok(if decreasing && !increasing { -area } else { area })
}

/// Mann–Whitney AUC: the probability that a random genuine pair scores above a
/// random impostor pair, ties counting ½. Equal to the trapezoid AUC of the ROC.
///
/// Sorts the scores; [`crate::VerificationScores::auc`] gives the same number
/// without sorting.
///
/// # Errors
/// As [`roc_curve`].
///
/// # Examples
/// ```
/// // genuine {3, 2}, impostor {2, 1}: pairs (3,2) (3,1) (2,1) win, (2,2) ties.
/// let auc = face_metrics::mann_whitney_auc(&[3.0, 2.0, 2.0, 1.0], &[true, true, false, false]).unwrap();
/// assert_eq!(auc, 3.5 / 4.0);
/// ```
pub fn mann_whitney_auc(scores: &[f64], genuine: &[bool]) -> Result<f64> {
    let (n_gen, n_imp) = validate_pairs("mann_whitney_auc", scores, genuine)?;
    let sorted = sorted_desc(scores, genuine);
    // Walk groups of tied scores from the top; each impostor wins against every
    // genuine above its group and ties with the genuine inside it.
    let (mut gen_above, mut twice_wins) = (0u128, 0u128);
    let mut i = 0;
    while i < sorted.len() {
        let s = sorted[i].0;
        let (mut g, mut n) = (0u128, 0u128);
        while i < sorted.len() && sorted[i].0 == s {
            if sorted[i].1 {
                g += 1;
            } else {
                n += 1;
            }
            i += 1;
        }
        twice_wins += n * (2 * gen_above + g);
        gen_above += g;
    }
    Ok(twice_wins as f64 / (2 * n_gen as u128 * n_imp as u128) as f64)
}

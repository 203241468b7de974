//! LFW 10-fold verification: for each fold, the threshold that maximises
//! accuracy on the other nine folds is applied to it; VAL@FAR uses, per fold,
//! the threshold whose FAR on the other nine folds is at most the target.
//!
//! Scores are similarities (higher = same person); a pair is accepted when its
//! score is **above** the threshold. Candidate thresholds are the midpoints
//! between consecutive distinct training scores (plus one below the lowest), and
//! ties in accuracy go to the lowest threshold, so the result is exact and
//! independent of any grid. `tools/reference_eval.py` implements the same rule
//! in numpy for the parity test.

use face_data::formats::lfw::LfwPairs;
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// One fold's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldResult {
    /// Threshold chosen on the other folds for accuracy.
    pub threshold: f64,
    /// Accuracy on this fold at that threshold.
    pub accuracy: f64,
    /// Threshold chosen on the other folds for the FAR target.
    pub val_threshold: f64,
    /// Genuine acceptance rate (VAL) on this fold at `val_threshold`.
    pub val: f64,
    /// False acceptance rate on this fold at `val_threshold`.
    pub far: f64,
}

/// The 10-fold report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LfwReport {
    /// Mean accuracy over folds.
    pub accuracy: f64,
    /// Standard deviation of the fold accuracies (population, as numpy's default).
    pub accuracy_std: f64,
    /// FAR target of VAL.
    pub far_target: f64,
    /// Mean VAL over folds.
    pub val: f64,
    /// Standard deviation of VAL.
    pub val_std: f64,
    /// Mean measured FAR over folds.
    pub far: f64,
    /// Per fold.
    pub folds: Vec<FoldResult>,
}

impl LfwReport {
    /// One-line summary.
    pub fn summary(&self) -> String {
        format!(
            "accuracy {:.2}% ± {:.2}%   VAL {:.2}% ± {:.2}% @ FAR {:.4}% (target {:e})",
            100.0 * self.accuracy,
            100.0 * self.accuracy_std,
            100.0 * self.val,
            100.0 * self.val_std,
            100.0 * self.far,
            self.far_target
        )
    }
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64;
    (m, var.sqrt())
}

/// The accuracy-maximising threshold of `(score, genuine)` pairs (accept if `score > t`).
pub fn best_threshold(scored: &[(f64, bool)]) -> f64 {
    let mut s: Vec<(f64, bool)> = scored.to_vec();
    s.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n_gen = s.iter().filter(|x| x.1).count();
    // Threshold below everything: all accepted.
    let mut best_t = s.first().map_or(0.0, |x| x.0 - 1.0);
    let mut correct = n_gen;
    let mut best = correct;
    let mut i = 0;
    while i < s.len() {
        // Move every pair with this score to the rejected side.
        let v = s[i].0;
        while i < s.len() && s[i].0 == v {
            if s[i].1 {
                correct -= 1;
            } else {
                correct += 1;
            }
            i += 1;
        }
        let t = if i < s.len() { 0.5 * (v + s[i].0) } else { v };
        if correct > best {
            best = correct;
            best_t = t;
        }
    }
    best_t
}

/// The lowest threshold among the training scores whose FAR (`score > t`) is at most `far`.
fn far_threshold(impostors: &mut [f64], far: f64) -> f64 {
    impostors.sort_by(|a, b| b.total_cmp(a));
    let allowed = (far * impostors.len() as f64).floor() as usize;
    match impostors.get(allowed) {
        Some(&t) => t,
        None => impostors.last().map_or(0.0, |&t| t - 1.0),
    }
}

/// Runs the protocol on one similarity score per pair of `pairs` (file order).
///
/// # Errors
/// A score count ≠ pair count, fewer than 2 folds, a non-finite score, or a
/// fold without genuine or impostor pairs.
pub fn lfw_10fold(pairs: &LfwPairs, scores: &[f64], far_target: f64) -> Result<LfwReport> {
    if scores.len() != pairs.pairs.len() {
        return Err(EvalError::Inconsistent(format!(
            "{} scores for {} pairs",
            scores.len(),
            pairs.pairs.len()
        )));
    }
    if pairs.folds < 2 {
        return Err(EvalError::Inconsistent(format!(
            "{} fold(s): cross-validation needs at least 2",
            pairs.folds
        )));
    }
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        return Err(EvalError::Inconsistent(format!(
            "score of pair {} is not finite ({})",
            i + 1,
            scores[i]
        )));
    }
    if !(far_target > 0.0 && far_target <= 1.0) {
        return Err(EvalError::Inconsistent(format!(
            "FAR target {far_target} is outside (0, 1]"
        )));
    }
    let mut folds = Vec::with_capacity(pairs.folds);
    for k in 0..pairs.folds {
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for (p, &s) in pairs.pairs.iter().zip(scores) {
            if p.fold == k {
                test.push((s, p.same))
            } else {
                train.push((s, p.same))
            }
        }
        let count = |v: &[(f64, bool)], g: bool| v.iter().filter(|x| x.1 == g).count();
        if count(&test, true) == 0 || count(&test, false) == 0 || count(&train, false) == 0 {
            return Err(EvalError::Inconsistent(format!(
                "fold {} lacks genuine or impostor pairs",
                k + 1
            )));
        }
        let threshold = best_threshold(&train);
        let accuracy = test.iter().filter(|&&(s, g)| (s > threshold) == g).count() as f64 / test.len() as f64;
        let mut imp: Vec<f64> = train.iter().filter(|x| !x.1).map(|x| x.0).collect();
        let val_threshold = far_threshold(&mut imp, far_target);
        let rate = |g: bool| {
            test.iter()
                .filter(|&&(s, gg)| gg == g && s > val_threshold)
                .count() as f64
                / count(&test, g) as f64
        };
        folds.push(FoldResult {
            threshold,
            accuracy,
            val_threshold,
            val: rate(true),
            far: rate(false),
        });
    }
    let (accuracy, accuracy_std) = mean_std(&folds.iter().map(|f| f.accuracy).collect::<Vec<_>>());
    let (val, val_std) = mean_std(&folds.iter().map(|f| f.val).collect::<Vec<_>>());
    let far = folds.iter().map(|f| f.far).sum::<f64>() / folds.len() as f64;
    Ok(LfwReport {
        accuracy,
        accuracy_std,
        far_target,
        val,
        val_std,
        far,
        folds,
    })
}

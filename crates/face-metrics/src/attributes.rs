//! Attribute metrics: age MAE and cumulative score, gender accuracy, confusion matrix.

use serde::{Deserialize, Serialize};

use crate::checks;
use crate::error::{MetricsError, Result};

fn paired(what: &'static str, pred: &[f64], truth: &[f64]) -> Result<()> {
    checks::same_len(what, truth.len(), pred.len())?;
    checks::non_empty(what, pred.len())?;
    checks::all_finite(what, pred)?;
    checks::all_finite(what, truth)
}

/// Mean absolute error between predicted and true ages.
///
/// # Errors
/// Length mismatch, empty input or a non-finite age.
///
/// # Examples
/// ```
/// assert_eq!(face_metrics::age_mae(&[30.0, 42.0], &[28.0, 40.0]).unwrap(), 2.0);
/// ```
pub fn age_mae(predicted: &[f64], truth: &[f64]) -> Result<f64> {
    paired("age_mae", predicted, truth)?;
    Ok(predicted
        .iter()
        .zip(truth)
        .map(|(p, t)| (p - t).abs())
        .sum::<f64>()
        / truth.len() as f64)
}

/// Cumulative score CS@k: the fraction of faces whose absolute age error is ≤ `k` years.
///
/// # Errors
/// As [`age_mae`], or a negative / non-finite `k`.
///
/// # Examples
/// ```
/// let cs = face_metrics::cumulative_score(&[30.0, 42.0, 60.0], &[28.0, 40.0, 50.0], 5.0).unwrap();
/// assert!((cs - 2.0 / 3.0).abs() < 1e-15);
/// ```
pub fn cumulative_score(predicted: &[f64], truth: &[f64], k: f64) -> Result<f64> {
    paired("cumulative_score", predicted, truth)?;
    if !(k >= 0.0 && k.is_finite()) {
        return Err(MetricsError::InvalidParameter {
            what: "cumulative_score k",
            reason: format!("must be a finite number of years >= 0, got {k}"),
        });
    }
    let hits = predicted
        .iter()
        .zip(truth)
        .filter(|(p, t)| (*p - *t).abs() <= k)
        .count();
    Ok(hits as f64 / truth.len() as f64)
}

/// Gender accuracy from predicted probabilities of "male" (or any one class):
/// a prediction is that class when `probability >= 0.5`.
///
/// # Errors
/// Length mismatch, empty input, or a probability outside [0, 1].
///
/// # Examples
/// ```
/// let acc = face_metrics::gender_accuracy(&[0.9, 0.2, 0.6], &[true, false, false]).unwrap();
/// assert!((acc - 2.0 / 3.0).abs() < 1e-15);
/// ```
pub fn gender_accuracy(probability: &[f64], truth: &[bool]) -> Result<f64> {
    checks::same_len("gender_accuracy", truth.len(), probability.len())?;
    checks::non_empty("gender_accuracy", truth.len())?;
    if let Some(index) = probability.iter().position(|p| !(0.0..=1.0).contains(p)) {
        return Err(MetricsError::NonFinite {
            what: "gender_accuracy probability (must be in [0, 1])",
            index,
            value: probability[index],
        });
    }
    let hits = probability
        .iter()
        .zip(truth)
        .filter(|(&p, &t)| (p >= 0.5) == t)
        .count();
    Ok(hits as f64 / truth.len() as f64)
}

/// A confusion matrix: `counts[truth][predicted]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    /// Number of classes.
    pub classes: usize,
    /// `counts[t][p]`: samples of true class `t` predicted as `p`.
    pub counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// Builds the matrix from class indices in `0..classes`.
    ///
    /// # Errors
    /// Length mismatch, empty input, or a label outside `0..classes`.
    ///
    /// # Examples
    /// ```
    /// let cm = face_metrics::ConfusionMatrix::new(&[0, 1, 1], &[0, 1, 0], 2).unwrap();
    /// assert_eq!(cm.counts, vec![vec![1, 1], vec![0, 1]]); // rows: truth, columns: prediction
    /// assert!((cm.accuracy() - 2.0 / 3.0).abs() < 1e-15);
    /// ```
    pub fn new(predicted: &[usize], truth: &[usize], classes: usize) -> Result<Self> {
        checks::same_len("confusion matrix", truth.len(), predicted.len())?;
        checks::non_empty("confusion matrix", truth.len())?;
        let mut counts = vec![vec![0u64; classes]; classes];
        for (index, (&p, &t)) in predicted.iter().zip(truth).enumerate() {
            for (what, label) in [("confusion matrix prediction", p), ("confusion matrix truth", t)] {
                if label >= classes {
                    return Err(MetricsError::ClassOutOfRange {
                        what,
                        index,
                        label,
                        classes,
                    });
                }
            }
            counts[t][p] += 1;
        }
        Ok(Self { classes, counts })
    }

    /// Total samples.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Fraction on the diagonal.
    pub fn accuracy(&self) -> f64 {
        let diag: u64 = (0..self.classes).map(|i| self.counts[i][i]).sum();
        diag as f64 / self.total() as f64
    }

    /// Recall of each class (`NaN` for a class with no sample).
    pub fn recall(&self) -> Vec<f64> {
        self.counts
            .iter()
            .enumerate()
            .map(|(i, row)| row[i] as f64 / row.iter().sum::<u64>() as f64)
            .collect()
    }
}

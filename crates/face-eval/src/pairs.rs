//! Any pair list (path, path, same), such as face-data's demographic-balanced
//! lists: the overall report, the same metrics per group, and the spread
//! between groups (largest gap and ratio) for each metric.

use std::collections::BTreeMap;

use face_data::pairs::PairList;
use face_metrics::{per_group, FarConvention, GroupBreakdown, VerificationReport, VerificationScores};
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// One group's metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMetrics {
    /// Group label (`""` for ungrouped pairs).
    pub group: String,
    /// Genuine pairs.
    pub n_genuine: u64,
    /// Impostor pairs.
    pub n_impostor: u64,
    /// AUC.
    pub auc: f64,
    /// EER.
    pub eer: f64,
    /// Accuracy at the threshold of the overall EER (one operating point for all groups).
    pub accuracy: f64,
    /// False match rate of this group at that common threshold.
    pub fmr: f64,
    /// False non-match rate of this group at that common threshold.
    pub fnmr: f64,
    /// TAR at each FAR target (`Nearest` convention), within the group.
    pub tar_at_far: Vec<(f64, f64)>,
}

/// The grouped report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairsReport {
    /// All pairs together.
    pub overall: VerificationReport,
    /// The common operating threshold (overall EER threshold).
    pub threshold: f64,
    /// Per group, in label order.
    pub groups: Vec<GroupMetrics>,
    /// For each metric (`auc`, `eer`, `accuracy`, `fmr`, `fnmr`): per-group values, the
    /// best and worst group and the gap between them. Empty with fewer than 2 groups.
    pub spread: BTreeMap<String, GroupBreakdown>,
}

impl PairsReport {
    /// A plain-text table.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut s = self.overall.summary();
        let _ = writeln!(s, "\ncommon threshold {:.5} (overall EER)", self.threshold);
        let _ = writeln!(
            s,
            "{:<24}{:>8}{:>8}{:>9}{:>8}{:>9}{:>8}{:>8}",
            "group", "genuine", "impost", "AUC", "EER%", "acc%", "FMR%", "FNMR%"
        );
        for g in &self.groups {
            let _ = writeln!(
                s,
                "{:<24}{:>8}{:>8}{:>9.4}{:>8.2}{:>9.2}{:>8.2}{:>8.2}",
                if g.group.is_empty() { "(none)" } else { &g.group },
                g.n_genuine,
                g.n_impostor,
                g.auc,
                100.0 * g.eer,
                100.0 * g.accuracy,
                100.0 * g.fmr,
                100.0 * g.fnmr
            );
        }
        for (metric, b) in &self.spread {
            let _ = writeln!(
                s,
                "largest gap in {metric}: {:.4} ({} {:.4} vs {} {:.4})",
                b.gap, b.max.0, b.max.1, b.min.0, b.min.1
            );
        }
        s
    }
}

/// Reads one metric of a group.
type Metric = fn(&GroupMetrics) -> f64;

/// Builds the report from one similarity score per pair (file order).
///
/// # Errors
/// A score count ≠ pair count, a non-finite score, or a group without genuine
/// or impostor pairs (named).
pub fn pairs_report(
    name: &str,
    pairs: &PairList,
    scores: &[f64],
    far_targets: &[f64],
) -> Result<PairsReport> {
    if scores.len() != pairs.pairs.len() {
        return Err(EvalError::Inconsistent(format!(
            "{} scores for {} pairs",
            scores.len(),
            pairs.pairs.len()
        )));
    }
    let genuine: Vec<bool> = pairs.pairs.iter().map(|p| p.genuine).collect();
    let overall = VerificationReport::new(
        name,
        &VerificationScores::from_pairs(scores, &genuine[..])?,
        far_targets,
    )?;
    let threshold = overall.eer.threshold;
    let labels: Vec<&str> = pairs.pairs.iter().map(|p| p.group.as_str()).collect();
    let mut members: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, g) in labels.iter().enumerate() {
        members.entry(g).or_default().push(i);
    }
    let mut groups = Vec::with_capacity(members.len());
    for (g, idx) in &members {
        let s: Vec<f64> = idx.iter().map(|&i| scores[i]).collect();
        let l: Vec<bool> = idx.iter().map(|&i| genuine[i]).collect();
        let v = VerificationScores::from_pairs(&s[..], &l[..])
            .map_err(|e| EvalError::Inconsistent(format!("group {g:?}: {e}")))?;
        let (ng, ni) = (v.n_genuine(), v.n_impostor());
        let false_match = s
            .iter()
            .zip(&l)
            .filter(|&(&x, &gen)| !gen && x > threshold)
            .count() as f64;
        let false_non = s
            .iter()
            .zip(&l)
            .filter(|&(&x, &gen)| gen && x <= threshold)
            .count() as f64;
        let tar = v.tar_at_far(far_targets, FarConvention::Nearest)?;
        groups.push(GroupMetrics {
            group: (*g).to_owned(),
            n_genuine: ng,
            n_impostor: ni,
            auc: v.auc(),
            eer: v.eer().eer,
            accuracy: 1.0 - (false_match + false_non) / idx.len() as f64,
            fmr: false_match / ni as f64,
            fnmr: false_non / ng as f64,
            tar_at_far: tar.iter().map(|t| (t.target_far, t.tar)).collect(),
        });
    }
    let mut spread = BTreeMap::new();
    if groups.len() >= 2 {
        let names: Vec<&str> = groups.iter().map(|g| g.group.as_str()).collect();
        let metrics: [(&str, Metric); 5] = [
            ("auc", |g| g.auc),
            ("eer", |g| g.eer),
            ("accuracy", |g| g.accuracy),
            ("fmr", |g| g.fmr),
            ("fnmr", |g| g.fnmr),
        ];
        for (metric, f) in metrics {
            let b = per_group(&names, |idx| Ok(f(&groups[idx[0]])))?;
            spread.insert(metric.to_owned(), b);
        }
    }
    Ok(PairsReport {
        overall,
        threshold,
        groups,
        spread,
    })
}

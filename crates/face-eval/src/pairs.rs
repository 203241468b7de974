//! Any pair list (path, path, same), such as face-data's demographic-balanced
//! lists: the overall report, the same metrics per group, the spread between
//! groups (largest gap and ratio) for each metric, and the demographic
//! differentials — FMR and FNMR per group at one global threshold (the overall
//! EER's, and the one where the overall FAR meets a target), with their max/min
//! ratio across groups. A group of one class (only impostors, or only genuine
//! pairs) gets the rates that exist for it and never stops the report.

use std::collections::BTreeMap;

use face_data::pairs::PairList;
use face_metrics::{per_group, FarConvention, GroupBreakdown, VerificationReport, VerificationScores};
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// One group's metrics. A group may hold one class only (a demographic report's cross-group
/// impostors, say): the metrics that need both classes are then absent, never an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMetrics {
    /// Group label (`""` for ungrouped pairs).
    pub group: String,
    /// Genuine pairs.
    pub n_genuine: u64,
    /// Impostor pairs.
    pub n_impostor: u64,
    /// AUC (absent without both classes).
    pub auc: Option<f64>,
    /// EER (absent without both classes).
    pub eer: Option<f64>,
    /// Accuracy at the threshold of the overall EER (one operating point for all groups; a
    /// pair matches when its score is at least the threshold).
    pub accuracy: f64,
    /// False match rate at that common threshold (absent without impostors).
    pub fmr: Option<f64>,
    /// False non-match rate at that common threshold (absent without genuine pairs).
    pub fnmr: Option<f64>,
    /// False match rate at the threshold of the global FAR target (absent without impostors).
    pub fmr_at_far: Option<f64>,
    /// False non-match rate at the threshold of the global FAR target (absent without genuine
    /// pairs).
    pub fnmr_at_far: Option<f64>,
    /// TAR at each FAR target (`Nearest` convention), within the group (empty without both
    /// classes).
    pub tar_at_far: Vec<(f64, f64)>,
}

/// The spread of one error rate across groups at one global threshold, as demographic
/// differential reports give it (ISO/IEC 19795-10, NIST FRVT part 8): the highest and lowest
/// group and their ratio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Differential {
    /// The group with the highest rate, and the rate.
    pub max: (String, f64),
    /// The group with the lowest rate, and the rate.
    pub min: (String, f64),
    /// `max / min`; absent when the lowest rate is 0 (the ratio is unbounded: see the counts).
    pub ratio: Option<f64>,
    /// Groups that have the rate (the others lack the class it needs).
    pub groups: usize,
}

/// FMR and FNMR across groups at the two global thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Differentials {
    /// FMR at the overall EER threshold.
    pub fmr_at_eer: Option<Differential>,
    /// FNMR at the overall EER threshold.
    pub fnmr_at_eer: Option<Differential>,
    /// FMR at the threshold of the global FAR target.
    pub fmr_at_far: Option<Differential>,
    /// FNMR at the threshold of the global FAR target.
    pub fnmr_at_far: Option<Differential>,
}

/// The grouped report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairsReport {
    /// All pairs together.
    pub overall: VerificationReport,
    /// The common operating threshold (overall EER threshold).
    pub threshold: f64,
    /// The global FAR target of the second common threshold.
    pub far_target: f64,
    /// Its threshold: the lowest at which the overall FAR is at most the target (`AtMost`).
    pub far_threshold: f64,
    /// Per group, in label order.
    pub groups: Vec<GroupMetrics>,
    /// For each metric (`auc`, `eer`, `accuracy`, `fmr`, `fnmr`): per-group values over the
    /// groups that have it, the best and worst group and the gap between them. A metric no two
    /// groups have is left out.
    pub spread: BTreeMap<String, GroupBreakdown>,
    /// FMR / FNMR max/min across groups at the EER threshold and at the FAR-target threshold.
    pub differentials: Differentials,
}

impl PairsReport {
    /// A plain-text table.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let opt = |v: Option<f64>, scale: f64, w: usize| match v {
            Some(x) => format!("{:>w$.2}", scale * x),
            None => format!("{:>w$}", "–"),
        };
        let mut s = self.overall.summary();
        let _ = writeln!(
            s,
            "\ncommon thresholds: {:.5} (overall EER), {:.5} (overall FAR ≤ {:e}); a pair matches at or above the threshold",
            self.threshold, self.far_threshold, self.far_target
        );
        let _ = writeln!(
            s,
            "{:<24}{:>8}{:>8}{:>9}{:>8}{:>9}{:>8}{:>8}{:>10}{:>10}",
            "group", "genuine", "impost", "AUC", "EER%", "acc%", "FMR%", "FNMR%", "FMR@FAR%", "FNMR@FAR%"
        );
        for g in &self.groups {
            let _ = writeln!(
                s,
                "{:<24}{:>8}{:>8}{}{}{:>9.2}{}{}{}{}",
                if g.group.is_empty() { "(none)" } else { &g.group },
                g.n_genuine,
                g.n_impostor,
                match g.auc {
                    Some(a) => format!("{a:>9.4}"),
                    None => format!("{:>9}", "–"),
                },
                opt(g.eer, 100.0, 8),
                100.0 * g.accuracy,
                opt(g.fmr, 100.0, 8),
                opt(g.fnmr, 100.0, 8),
                opt(g.fmr_at_far, 100.0, 10),
                opt(g.fnmr_at_far, 100.0, 10),
            );
        }
        for (metric, b) in &self.spread {
            let _ = writeln!(
                s,
                "largest gap in {metric}: {:.4} ({} {:.4} vs {} {:.4})",
                b.gap, b.max.0, b.max.1, b.min.0, b.min.1
            );
        }
        let d = &self.differentials;
        for (name, diff) in [
            ("FMR at the EER threshold", &d.fmr_at_eer),
            ("FNMR at the EER threshold", &d.fnmr_at_eer),
            ("FMR at the FAR threshold", &d.fmr_at_far),
            ("FNMR at the FAR threshold", &d.fnmr_at_far),
        ] {
            if let Some(x) = diff {
                let _ = writeln!(
                    s,
                    "{name}: max/min {} ({} {:.4} / {} {:.4}, {} groups)",
                    x.ratio
                        .map_or("unbounded (min 0)".to_owned(), |r| format!("{r:.3}")),
                    x.max.0,
                    x.max.1,
                    x.min.0,
                    x.min.1,
                    x.groups
                );
            }
        }
        s
    }
}

type Metric = fn(&GroupMetrics) -> Option<f64>;

/// Errors of one group at a threshold, `(false matches, false non-matches)`. A pair matches
/// when its score is at least the threshold — the convention the thresholds themselves come
/// from (face-metrics' ROC, EER and TAR@FAR), so the pair sitting at the threshold counts as
/// the threshold's own FAR/TAR counts it.
fn errors_at(scores: &[f64], genuine: &[bool], threshold: f64) -> (usize, usize) {
    let fm = scores
        .iter()
        .zip(genuine)
        .filter(|&(&x, &g)| !g && x >= threshold)
        .count();
    let fnm = scores
        .iter()
        .zip(genuine)
        .filter(|&(&x, &g)| g && x < threshold)
        .count();
    (fm, fnm)
}

fn rate(count: usize, of: u64) -> Option<f64> {
    (of > 0).then(|| count as f64 / of as f64)
}

/// `(group, value)` for the groups that have the metric.
fn values_of(groups: &[GroupMetrics], f: Metric) -> Vec<(&str, f64)> {
    groups
        .iter()
        .filter_map(|g| f(g).map(|v| (g.group.as_str(), v)))
        .collect()
}

/// The max/min of a rate over the groups that have it (none with fewer than two).
fn differential(groups: &[GroupMetrics], f: Metric) -> Option<Differential> {
    let have = values_of(groups, f);
    if have.len() < 2 {
        return None;
    }
    let max = have.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1))?;
    let min = have.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1))?;
    Some(Differential {
        max: (max.0.to_owned(), max.1),
        min: (min.0.to_owned(), min.1),
        ratio: (min.1 > 0.0).then(|| max.1 / min.1),
        groups: have.len(),
    })
}

/// Computes the overall report, the per-group metrics at two common thresholds (the overall
/// EER threshold and the threshold where the overall FAR is at most `far_target`), the spread
/// of each metric and the FMR / FNMR differentials across groups.
///
/// # Errors
/// A score count ≠ pair count, a non-finite score, an overall list without genuine or
/// impostor pairs, or a FAR target outside (0, 1).
pub fn pairs_report(
    name: &str,
    pairs: &PairList,
    scores: &[f64],
    far_targets: &[f64],
    far_target: f64,
) -> Result<PairsReport> {
    if scores.len() != pairs.pairs.len() {
        return Err(EvalError::Inconsistent(format!(
            "{} scores for {} pairs",
            scores.len(),
            pairs.pairs.len()
        )));
    }
    let genuine: Vec<bool> = pairs.pairs.iter().map(|p| p.genuine).collect();
    let all = VerificationScores::from_pairs(scores, &genuine[..])?;
    let overall = VerificationReport::new(name, &all, far_targets)?;
    let threshold = overall.eer.threshold;
    let far_threshold = all
        .tar_at_far(&[far_target], FarConvention::AtMost)?
        .first()
        .map_or(f64::INFINITY, |t| t.threshold);
    let mut members: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, p) in pairs.pairs.iter().enumerate() {
        members.entry(p.group.as_str()).or_default().push(i);
    }
    let mut groups = Vec::with_capacity(members.len());
    for (g, idx) in &members {
        let s: Vec<f64> = idx.iter().map(|&i| scores[i]).collect();
        let l: Vec<bool> = idx.iter().map(|&i| genuine[i]).collect();
        let ng = l.iter().filter(|&&x| x).count() as u64;
        let ni = l.len() as u64 - ng;
        let (fm, fnm) = errors_at(&s, &l, threshold);
        let (fm_far, fnm_far) = errors_at(&s, &l, far_threshold);
        let (auc, eer, tar_at_far) = if ng > 0 && ni > 0 {
            let v = VerificationScores::from_pairs(&s[..], &l[..])
                .map_err(|e| EvalError::Inconsistent(format!("group {g:?}: {e}")))?;
            let tar = v.tar_at_far(far_targets, FarConvention::Nearest)?;
            (
                Some(v.auc()),
                Some(v.eer().eer),
                tar.iter().map(|t| (t.target_far, t.tar)).collect(),
            )
        } else {
            (None, None, Vec::new())
        };
        groups.push(GroupMetrics {
            group: (*g).to_owned(),
            n_genuine: ng,
            n_impostor: ni,
            auc,
            eer,
            accuracy: 1.0 - (fm + fnm) as f64 / idx.len() as f64,
            fmr: rate(fm, ni),
            fnmr: rate(fnm, ng),
            fmr_at_far: rate(fm_far, ni),
            fnmr_at_far: rate(fnm_far, ng),
            tar_at_far,
        });
    }
    let mut spread = BTreeMap::new();
    let metrics: [(&str, Metric); 5] = [
        ("auc", |g| g.auc),
        ("eer", |g| g.eer),
        ("accuracy", |g| Some(g.accuracy)),
        ("fmr", |g| g.fmr),
        ("fnmr", |g| g.fnmr),
    ];
    for (metric, f) in metrics {
        let have = values_of(&groups, f);
        if have.len() >= 2 {
            let names: Vec<&str> = have.iter().map(|(n, _)| *n).collect();
            let b = per_group(&names, |idx| Ok(have[idx[0]].1))?;
            spread.insert(metric.to_owned(), b);
        }
    }
    let differentials = Differentials {
        fmr_at_eer: differential(&groups, |g| g.fmr),
        fnmr_at_eer: differential(&groups, |g| g.fnmr),
        fmr_at_far: differential(&groups, |g| g.fmr_at_far),
        fnmr_at_far: differential(&groups, |g| g.fnmr_at_far),
    };
    Ok(PairsReport {
        overall,
        threshold,
        far_target,
        far_threshold,
        groups,
        spread,
        differentials,
    })
}

//! 1:N identification: CMC (rank-k identification rate), top-N accuracy and
//! open-set TPIR@FPIR.
//!
//! Input is a row-major similarity matrix, one row per probe and one column per
//! gallery entry, with an identity label per row and column. The rank of a mated
//! probe is 1 + the number of non-mated gallery entries scoring at least as high
//! as its best mated entry (a tie with a wrong identity counts against the probe).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::checks;
use crate::error::{MetricsError, Result};

/// Per-probe outcome of a search against the gallery.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProbeOutcome {
    /// Highest similarity over the whole gallery.
    pub top_score: f64,
    /// For a mated probe (its identity is in the gallery): the best mated
    /// similarity and its rank (1 = top). `None` for non-mated probes.
    pub mated: Option<(f64, usize)>,
}

/// Searches each probe row of `similarity` (`probe_ids.len()` × `gallery_ids.len()`,
/// row-major) against the gallery.
///
/// # Errors
/// Shape mismatch, empty gallery or probes, or a non-finite similarity.
pub fn search_outcomes<L: PartialEq + Sync>(
    similarity: &[f32],
    probe_ids: &[L],
    gallery_ids: &[L],
) -> Result<Vec<ProbeOutcome>> {
    let (p, g) = (probe_ids.len(), gallery_ids.len());
    checks::non_empty("gallery", g)?;
    checks::non_empty("probes", p)?;
    checks::same_len("similarity matrix (probes × gallery)", p * g, similarity.len())?;
    checks::all_finite_f32("similarity matrix", similarity)?;
    Ok(similarity
        .par_chunks(g)
        .zip(probe_ids.par_iter())
        .map(|(row, id)| {
            let top = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let best_mated = row
                .iter()
                .zip(gallery_ids)
                .filter(|(_, gid)| *gid == id)
                .map(|(&s, _)| s)
                .fold(None, |acc: Option<f32>, s| Some(acc.map_or(s, |a| a.max(s))));
            let mated = best_mated.map(|m| {
                let better = row
                    .iter()
                    .zip(gallery_ids)
                    .filter(|(&s, gid)| *gid != id && s >= m)
                    .count();
                (f64::from(m), better + 1)
            });
            ProbeOutcome {
                top_score: f64::from(top),
                mated,
            }
        })
        .collect())
}

/// Cumulative match characteristic: `cmc[k-1]` = fraction of mated probes whose
/// rank is ≤ k, for k = 1..=`max_rank`. Non-mated probes are ignored.
///
/// # Errors
/// As [`search_outcomes`], `max_rank` = 0, or no mated probe.
///
/// # Examples
/// ```
/// // 2 probes × 3 gallery entries.
/// let sim = [0.9, 0.2, 0.1,   // probe "a": its mate "a" is first
///            0.8, 0.3, 0.7];  // probe "c": beaten by "a" (0.8) → rank 2
/// let cmc = face_metrics::cmc(&sim, &["a", "c"], &["a", "b", "c"], 3).unwrap();
/// assert_eq!(cmc, vec![0.5, 1.0, 1.0]);
/// ```
pub fn cmc<L: PartialEq + Sync>(
    similarity: &[f32],
    probe_ids: &[L],
    gallery_ids: &[L],
    max_rank: usize,
) -> Result<Vec<f64>> {
    if max_rank == 0 {
        return Err(MetricsError::InvalidParameter {
            what: "cmc max_rank",
            reason: "must be at least 1".into(),
        });
    }
    let outcomes = search_outcomes(similarity, probe_ids, gallery_ids)?;
    let ranks: Vec<usize> = outcomes.iter().filter_map(|o| o.mated.map(|m| m.1)).collect();
    checks::non_empty("mated probes", ranks.len())?;
    let mut hist = vec![0usize; max_rank + 1];
    for r in ranks.iter() {
        hist[(*r).min(max_rank + 1) - 1] += 1;
    }
    let mut acc = 0;
    Ok(hist[..max_rank]
        .iter()
        .map(|&h| {
            acc += h;
            acc as f64 / ranks.len() as f64
        })
        .collect())
}

/// Top-N identification accuracy: the fraction of mated probes whose identity is
/// among the `n` most similar gallery entries (CMC at rank `n`).
///
/// # Errors
/// As [`cmc`].
pub fn top_n_accuracy<L: PartialEq + Sync>(
    similarity: &[f32],
    probe_ids: &[L],
    gallery_ids: &[L],
    n: usize,
) -> Result<f64> {
    Ok(cmc(similarity, probe_ids, gallery_ids, n)?[n - 1])
}

/// One open-set result: TPIR at an FPIR target.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TpirAtFpir {
    /// FPIR asked for.
    pub target_fpir: f64,
    /// FPIR achieved: non-mated probes whose top score reaches the threshold.
    pub fpir: f64,
    /// TPIR: mated probes with rank ≤ `rank` whose mated score reaches the threshold.
    pub tpir: f64,
    /// The threshold (a candidate is returned when `score >= threshold`).
    #[serde(with = "crate::serde_float")]
    pub threshold: f64,
}

/// Open-set identification: for each FPIR target, the lowest threshold whose FPIR
/// is at most the target, and the TPIR (hits at rank ≤ `rank`) there.
///
/// # Errors
/// As [`search_outcomes`], a target outside (0, 1], `rank` = 0, or no mated or
/// no non-mated probe.
pub fn tpir_at_fpir<L: PartialEq + Sync>(
    similarity: &[f32],
    probe_ids: &[L],
    gallery_ids: &[L],
    targets: &[f64],
    rank: usize,
) -> Result<Vec<TpirAtFpir>> {
    for &t in targets {
        checks::rate("FPIR target", t)?;
    }
    if rank == 0 {
        return Err(MetricsError::InvalidParameter {
            what: "tpir_at_fpir rank",
            reason: "must be at least 1".into(),
        });
    }
    let outcomes = search_outcomes(similarity, probe_ids, gallery_ids)?;
    let mut non_mated: Vec<f64> = outcomes
        .iter()
        .filter(|o| o.mated.is_none())
        .map(|o| o.top_score)
        .collect();
    let mated: Vec<(f64, usize)> = outcomes.iter().filter_map(|o| o.mated).collect();
    if mated.is_empty() {
        return Err(MetricsError::NoGenuine {
            what: "tpir_at_fpir (mated probes)",
        });
    }
    if non_mated.is_empty() {
        return Err(MetricsError::NoImpostor {
            what: "tpir_at_fpir (non-mated probes)",
        });
    }
    non_mated.sort_unstable_by(|a, b| b.total_cmp(a));
    let n = non_mated.len();
    Ok(targets
        .iter()
        .map(|&f| {
            // Largest k with k/n <= f; the threshold must reject the (k+1)-th.
            let mut k = ((f * n as f64).floor() as usize).min(n);
            while k > 0 && k as f64 / n as f64 > f {
                k -= 1;
            }
            let threshold = if k == n {
                f64::NEG_INFINITY
            } else {
                non_mated[k].next_up()
            };
            let false_hits = non_mated.partition_point(|&s| s >= threshold);
            let hits = mated
                .iter()
                .filter(|&&(s, r)| r <= rank && s >= threshold)
                .count();
            TpirAtFpir {
                target_fpir: f,
                fpir: false_hits as f64 / n as f64,
                tpir: hits as f64 / mated.len() as f64,
                threshold,
            }
        })
        .collect())
}

//! Closed-set identification on a gallery/probe split: the first image of each
//! identity (in row order) is enrolled, every other image is a probe, and
//! top-N accuracy is the fraction of probes whose identity's gallery entry is
//! among the N best matches (ties: the lower gallery row ranks first).

use std::collections::HashMap;

use face_search::{BuildOptions, Gallery, Storage};
use serde::{Deserialize, Serialize};

use crate::embeddings::Embeddings;
use crate::error::{EvalError, Result};

/// The identification report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentifyReport {
    /// Enrolled identities (gallery rows).
    pub gallery: usize,
    /// Probes (images of enrolled identities beyond the first).
    pub probes: usize,
    /// Images that failed to enrol and count as probes never identified (the `reject`
    /// policy; 0 otherwise). Top-N accuracy is over `probes + rejected`.
    #[serde(default)]
    pub rejected: usize,
    /// `(N, top-N accuracy)`.
    pub top_n: Vec<(usize, f64)>,
}

impl IdentifyReport {
    /// One-line summary.
    pub fn summary(&self) -> String {
        let acc: Vec<String> = self
            .top_n
            .iter()
            .map(|(n, a)| format!("top-{n} {:.2}%", 100.0 * a))
            .collect();
        let rejected = if self.rejected > 0 {
            format!(" (+{} failed to enrol, counted as misses)", self.rejected)
        } else {
            String::new()
        };
        format!(
            "{} identities enrolled, {} probes{rejected}: {}",
            self.gallery,
            self.probes,
            acc.join(", ")
        )
    }
}

/// Runs the split and search; `labels[i]` is the identity of row `i`.
///
/// # Errors
/// A label count ≠ row count, an empty `ns` or an `N` of 0, or no identity with
/// at least two images (no probes).
pub fn identify(embeddings: &Embeddings, labels: &[String], ns: &[usize]) -> Result<IdentifyReport> {
    identify_with_rejected(embeddings, labels, ns, 0)
}

/// [`identify`] where `rejected` more images failed to enrol: under the `reject` policy each
/// counts as a probe that is never identified, at any rank.
///
/// # Errors
/// As [`identify`].
pub fn identify_with_rejected(
    embeddings: &Embeddings,
    labels: &[String],
    ns: &[usize],
    rejected: usize,
) -> Result<IdentifyReport> {
    if labels.len() != embeddings.len() {
        return Err(EvalError::Inconsistent(format!(
            "{} labels for {} embeddings",
            labels.len(),
            embeddings.len()
        )));
    }
    if ns.is_empty() || ns.contains(&0) {
        return Err(EvalError::Inconsistent("top-N needs N ≥ 1".into()));
    }
    let mut enrolled: HashMap<&str, usize> = HashMap::new();
    let mut gallery_rows = Vec::new();
    let mut probes = Vec::new();
    for (i, l) in labels.iter().enumerate() {
        if enrolled.contains_key(l.as_str()) {
            probes.push(i);
        } else {
            enrolled.insert(l, gallery_rows.len());
            gallery_rows.push(i);
        }
    }
    if probes.is_empty() {
        return Err(EvalError::Inconsistent(
            "no identity has a second image, so there is nothing to probe".into(),
        ));
    }
    let d = embeddings.dim();
    let mut g = Vec::with_capacity(gallery_rows.len() * d);
    let ids: Vec<&str> = gallery_rows.iter().map(|&i| labels[i].as_str()).collect();
    for &i in &gallery_rows {
        g.extend_from_slice(embeddings.row(i));
    }
    let gallery = Gallery::build(&ids, d, &g, BuildOptions::new(Storage::F32))?;
    let mut q = Vec::with_capacity(probes.len() * d);
    for &i in &probes {
        q.extend_from_slice(embeddings.row(i));
    }
    let k = ns.iter().copied().max().unwrap_or(1);
    let hits = gallery.search(&q, k)?;
    let top_n = ns
        .iter()
        .map(|&n| {
            let ok = probes
                .iter()
                .zip(&hits)
                .filter(|(&p, h)| {
                    h.iter()
                        .take(n)
                        .any(|x| x.index as usize == enrolled[labels[p].as_str()])
                })
                .count();
            (n, ok as f64 / (probes.len() + rejected) as f64)
        })
        .collect();
    Ok(IdentifyReport {
        gallery: gallery_rows.len(),
        probes: probes.len(),
        rejected,
        top_n,
    })
}

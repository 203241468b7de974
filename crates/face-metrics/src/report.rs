//! The serialisable verification report.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{MetricsError, Result};
use crate::verification::{DetPoint, Eer, FarConvention, RocPoint, TarAtFar, VerificationScores};

/// Everything a 1:1 verification evaluation reports, ready for JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerificationReport {
    /// What was evaluated (protocol, model…).
    pub name: String,
    /// Genuine pairs.
    pub n_genuine: u64,
    /// Impostor pairs.
    pub n_impostor: u64,
    /// Area under the ROC (Mann–Whitney, ties ½).
    pub auc: f64,
    /// Equal error rate.
    pub eer: Eer,
    /// TAR at each FAR target, for each of the three conventions.
    pub tar_at_far: Vec<TarAtFar>,
    /// ROC corners thinned to plot resolution (every corner where FAR moves by
    /// ≥ 0.2 % in log10 or TAR by ≥ 0.05 %), first and last kept.
    pub roc: Vec<RocPoint>,
    /// DET points at the same resolution.
    pub det: Vec<DetPoint>,
}

fn thin_roc(points: Vec<RocPoint>) -> Vec<RocPoint> {
    let mut out: Vec<RocPoint> = Vec::new();
    let n = points.len();
    for (i, p) in points.into_iter().enumerate() {
        let keep = match out.last() {
            None => true,
            Some(q) => {
                i + 1 == n
                    || (p.tar - q.tar).abs() >= 5e-4
                    || (q.far == 0.0) != (p.far == 0.0)
                    || (p.far > 0.0 && q.far > 0.0 && (p.far.log10() - q.far.log10()).abs() >= 2e-3)
            }
        };
        if keep {
            out.push(p);
        }
    }
    out
}

impl VerificationReport {
    /// Computes the report at the given FAR targets (all three conventions).
    ///
    /// # Errors
    /// A FAR target outside (0, 1].
    pub fn new(
        name: impl Into<String>,
        scores: &VerificationScores<'_>,
        far_targets: &[f64],
    ) -> Result<Self> {
        scores.preload(far_targets);
        let mut tar_at_far = Vec::new();
        for convention in FarConvention::ALL {
            tar_at_far.extend(scores.tar_at_far(far_targets, convention)?);
        }
        let roc = thin_roc(scores.roc_points());
        let det = roc.iter().filter_map(DetPoint::from_roc).collect();
        Ok(Self {
            name: name.into(),
            n_genuine: scores.n_genuine(),
            n_impostor: scores.n_impostor(),
            auc: scores.auc(),
            eer: scores.eer(),
            tar_at_far,
            roc,
            det,
        })
    }

    /// The TAR@FAR entry for a convention and target, if reported.
    pub fn tar(&self, convention: FarConvention, target_far: f64) -> Option<&TarAtFar> {
        self.tar_at_far
            .iter()
            .find(|t| t.convention == convention && t.target_far == target_far)
    }

    /// A plain-text table: AUC, EER, and TAR@FAR per convention.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}: {} genuine / {} impostor pairs\nAUC {:.6}   EER {:.4}% (interval {:.4}%–{:.4}%, threshold {:.5})",
            self.name,
            self.n_genuine,
            self.n_impostor,
            self.auc,
            100.0 * self.eer.eer,
            100.0 * self.eer.lower,
            100.0 * self.eer.upper,
            self.eer.threshold
        );
        let mut targets: Vec<f64> = self.tar_at_far.iter().map(|t| t.target_far).collect();
        targets.sort_by(f64::total_cmp);
        targets.dedup();
        let _ = write!(s, "{:<12}", "TAR@FAR");
        for t in &targets {
            let _ = write!(s, "{:>10.0e}", t);
        }
        for conv in FarConvention::ALL {
            let _ = write!(s, "\n{:<12}", format!("{conv:?}"));
            for &t in &targets {
                match self.tar(conv, t) {
                    Some(r) => {
                        let _ = write!(s, "{:>9.2}%", 100.0 * r.tar);
                    }
                    None => {
                        let _ = write!(s, "{:>10}", "-");
                    }
                }
            }
        }
        s.push('\n');
        s
    }

    /// Writes the report as pretty JSON (to a temporary file, then renamed, so a
    /// crash never leaves a half-written report).
    ///
    /// # Errors
    /// I/O or serialisation failure, naming the path.
    pub fn write_json(&self, path: impl AsRef<Path>) -> Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        Ok(face_io::write_atomic(path.as_ref(), text.as_bytes())?)
    }

    /// Reads a report written by [`VerificationReport::write_json`].
    ///
    /// # Errors
    /// I/O failure or malformed JSON.
    pub fn read_json(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| MetricsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(serde_json::from_str(&text)?)
    }
}

//! Validation of a student against its teachers on labelled faces: irAUC over fixed P×K
//! batches, the exact AUC and TAR@FAR over all pairs, embedding agreement, age MAE and gender
//! agreement with the teachers.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use face_data::{Normalize, PkSampler};
use face_metrics::{FarConvention, IrAucMonitor, VerificationScores};
use face_nets::FaceModel;
use serde::{Deserialize, Serialize};

use crate::config::DistillConfig;
use crate::data::{image_batch, FaceSet};
use crate::error::{DistillError, Result};
use crate::losses::expected_age;

/// Faces per forward pass during evaluation.
const EVAL_CHUNK: usize = 64;

/// The student's outputs on a face set, on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    /// Embedding width.
    pub dim: usize,
    /// `N × dim` unit embeddings.
    pub embeddings: Vec<f32>,
    /// `N` expected ages (with the teachers' bin ages).
    pub expected_age: Vec<f32>,
    /// `N` P(male).
    pub p_male: Vec<f32>,
}

/// Runs `student` (inference mode) over every face of `set`, unaugmented.
///
/// # Errors
/// A tensor that cannot be read back.
pub fn predict<B: Backend>(student: &FaceModel<B>, set: &FaceSet, device: &B::Device) -> Result<Predictions> {
    let s = set.size() as usize;
    let bins_host = &set.targets().age_bins;
    let bins = Tensor::<B, 1>::from_data(TensorData::new(bins_host.clone(), [bins_host.len()]), device);
    let normalize = Normalize::arcface();
    let mut out = Predictions {
        dim: 0,
        embeddings: Vec::new(),
        expected_age: Vec::new(),
        p_male: Vec::new(),
    };
    let rows: Vec<usize> = (0..set.len()).collect();
    for chunk in rows.chunks(EVAL_CHUNK) {
        let pixels = image_batch(set, chunk, None, &normalize)?;
        let x = Tensor::<B, 4>::from_data(TensorData::new(pixels, [chunk.len(), 3, s, s]), device);
        let o = student.forward(x);
        out.dim = o.embedding.dims()[1];
        out.embeddings.extend(face_nets::to_f32_vec(o.embedding)?);
        out.expected_age
            .extend(face_nets::to_f32_vec(expected_age(o.age_logits, bins.clone()))?);
        out.p_male
            .extend(face_nets::to_f32_vec(burn::tensor::activation::sigmoid(
                o.gender_logit,
            ))?);
    }
    Ok(out)
}

/// All `N(N−1)/2` pair scores (cosine = dot of unit rows) split into genuine and impostor.
pub fn all_pairs(embeddings: &[f32], dim: usize, labels: &[u32]) -> (Vec<f64>, Vec<f64>) {
    let n = labels.len();
    let (mut gen, mut imp) = (Vec::new(), Vec::new());
    for i in 0..n {
        let a = &embeddings[i * dim..(i + 1) * dim];
        for j in i + 1..n {
            let b = &embeddings[j * dim..(j + 1) * dim];
            let s: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
            if labels[i] == labels[j] {
                gen.push(s);
            } else {
                imp.push(s);
            }
        }
    }
    (gen, imp)
}

/// All pairs of a labelled set, scored by cosine, ready for ROC/AUC/TAR@FAR.
///
/// # Errors
/// No genuine or no impostor pair.
pub fn pair_scores(embeddings: &[f32], dim: usize, labels: &[u32]) -> Result<VerificationScores<'static>> {
    let (gen, imp) = all_pairs(embeddings, dim, labels);
    if gen.is_empty() || imp.is_empty() {
        return Err(DistillError::Data(format!(
            "validation needs genuine and impostor pairs, has {} and {}",
            gen.len(),
            imp.len()
        )));
    }
    Ok(VerificationScores::from_split(&gen, imp)?)
}

/// `(AUC, [(far, tar)])` of scored pairs, TAR@FAR with the `Nearest` convention.
///
/// # Errors
/// An invalid FAR target.
pub fn summarise(scores: &VerificationScores<'_>, far_targets: &[f64]) -> Result<(f64, Vec<(f64, f64)>)> {
    let tars = scores
        .tar_at_far(far_targets, FarConvention::Nearest)?
        .into_iter()
        .map(|t| (t.target_far, t.tar))
        .collect();
    Ok((scores.auc(), tars))
}

/// Verification on all pairs: [`pair_scores`] then [`summarise`].
///
/// # Errors
/// No genuine or no impostor pair.
pub fn verification(
    embeddings: &[f32],
    dim: usize,
    labels: &[u32],
    far_targets: &[f64],
) -> Result<(f64, Vec<(f64, f64)>)> {
    summarise(&pair_scores(embeddings, dim, labels)?, far_targets)
}

/// The fixed validation batches: P×K batches drawn once with seed 0 (the same every epoch, so
/// curves compare models, not samples); the whole set as one batch when P×K sampling yields
/// none (fewer than P identities with K faces).
pub fn validation_batches(labels: &[u32], p: usize, k: usize) -> Vec<Vec<usize>> {
    let pk = PkSampler::new(labels, p, k, 0)
        .map(|s| s.epoch(0))
        .unwrap_or_default();
    if pk.is_empty() {
        vec![(0..labels.len()).collect()]
    } else {
        pk
    }
}

/// One validation pass, as logged in `val.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRow {
    /// Finished epochs (0: the untrained student).
    pub epoch: u64,
    /// Optimizer steps done.
    pub step: u64,
    /// irAUC = 1 − running per-batch AUC over the fixed P×K batches (lower is better).
    pub ir_auc: Option<f64>,
    /// Batches skipped for lacking genuine or impostor pairs.
    pub skipped_batches: u64,
    /// Exact AUC over all pairs of the validation set.
    pub auc: f64,
    /// TAR at each FAR target (`Nearest`).
    pub tar_at_far: Vec<(f64, f64)>,
    /// Mean cosine between student and teacher embeddings of the same face.
    pub teacher_cosine: f64,
    /// Mean |student − teacher| expected age, years.
    pub age_mae_vs_teacher: f64,
    /// Share of faces where student and teacher agree on P(male) > 0.5.
    pub gender_agreement: f64,
    /// Mean |student − true| age over faces with a known age (none without labels).
    #[serde(default)]
    pub age_mae_vs_labels: Option<f64>,
    /// Share of faces with a known gender that the student gets right.
    #[serde(default)]
    pub gender_accuracy_vs_labels: Option<f64>,
}

impl EvalRow {
    /// Header of `val.csv`.
    pub const CSV_HEADER: &'static str =
        "epoch,step,ir_auc,skipped_batches,auc,teacher_cosine,age_mae_vs_teacher,gender_agreement,age_mae_vs_labels,gender_accuracy_vs_labels,tar_at_far";

    /// One `val.csv` line (TAR@FAR as `far:tar` pairs separated by `;`).
    pub fn csv_line(&self) -> String {
        let tars: Vec<String> = self
            .tar_at_far
            .iter()
            .map(|(f, t)| format!("{f:e}:{t}"))
            .collect();
        format!(
            "{},{},{},{},{},{},{},{},{},{},{}",
            self.epoch,
            self.step,
            self.ir_auc.map_or(String::new(), |x| x.to_string()),
            self.skipped_batches,
            self.auc,
            self.teacher_cosine,
            self.age_mae_vs_teacher,
            self.gender_agreement,
            self.age_mae_vs_labels.map_or(String::new(), |x| x.to_string()),
            self.gender_accuracy_vs_labels
                .map_or(String::new(), |x| x.to_string()),
            tars.join(";")
        )
    }

    /// A one-line summary.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "irAUC {} AUC {:.4} cos(teacher) {:.3} age MAE {:.2} y gender agree {:.1}%",
            self.ir_auc.map_or("–".into(), |x| format!("{x:.3e}")),
            self.auc,
            self.teacher_cosine,
            self.age_mae_vs_teacher,
            100.0 * self.gender_agreement
        );
        if let Some(m) = self.age_mae_vs_labels {
            s.push_str(&format!(" | vs labels: age MAE {m:.2} y"));
        }
        if let Some(a) = self.gender_accuracy_vs_labels {
            s.push_str(&format!(" gender acc {:.1}%", 100.0 * a));
        }
        s
    }
}

/// Compares predictions with the set's teacher targets and labels.
///
/// # Errors
/// An unlabelled set, or a set without genuine and impostor pairs.
pub fn score(
    pred: &Predictions,
    set: &FaceSet,
    config: &DistillConfig,
    epoch: u64,
    step: u64,
) -> Result<EvalRow> {
    let labels = set
        .labels()
        .ok_or_else(|| DistillError::Data("validation faces need identity labels".into()))?;
    let d = pred.dim;
    let t = set.targets();
    if d != t.dim {
        return Err(DistillError::Data(format!(
            "student gives {d}-d embeddings, teacher {}",
            t.dim
        )));
    }
    let mut monitor = IrAucMonitor::new(config.val.smoothing)?;
    for batch in validation_batches(labels, config.val.p, config.val.k) {
        let emb: Vec<f32> = batch
            .iter()
            .flat_map(|&r| pred.embeddings[r * d..(r + 1) * d].iter().copied())
            .collect();
        let lab: Vec<u32> = batch.iter().map(|&r| labels[r]).collect();
        monitor.update(&emb, d, &lab)?;
    }
    let (auc, tar_at_far) = verification(&pred.embeddings, d, labels, &config.val.far_targets)?;
    let agree = agreement(pred, t);
    Ok(EvalRow {
        epoch,
        step,
        ir_auc: monitor.ir_auc(),
        skipped_batches: monitor.skipped(),
        auc,
        tar_at_far,
        teacher_cosine: agree.teacher_cosine,
        age_mae_vs_teacher: agree.age_mae,
        gender_agreement: agree.gender,
        age_mae_vs_labels: set
            .attributes()
            .and_then(|a| age_mae_vs_labels(&pred.expected_age, &a.age)),
        gender_accuracy_vs_labels: set
            .attributes()
            .and_then(|a| gender_accuracy_vs_labels(&pred.p_male, &a.male)),
    })
}

/// Mean |predicted − true| age over the faces whose age is known (`None` when none is).
pub fn age_mae_vs_labels(predicted: &[f32], truth: &[Option<f32>]) -> Option<f64> {
    let errs: Vec<f64> = predicted
        .iter()
        .zip(truth)
        .filter_map(|(p, t)| t.map(|t| f64::from((p - t).abs())))
        .collect();
    (!errs.is_empty()).then(|| errs.iter().sum::<f64>() / errs.len() as f64)
}

/// Share of faces with a known gender where `P(male) > 0.5` matches it (`None` when none is).
pub fn gender_accuracy_vs_labels(p_male: &[f32], truth: &[Option<bool>]) -> Option<f64> {
    let hits: Vec<bool> = p_male
        .iter()
        .zip(truth)
        .filter_map(|(p, t)| t.map(|t| (*p > 0.5) == t))
        .collect();
    (!hits.is_empty()).then(|| hits.iter().filter(|h| **h).count() as f64 / hits.len() as f64)
}

/// How closely a student's predictions follow the teachers' targets on the same faces.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    /// Mean cosine between student and teacher embeddings.
    pub teacher_cosine: f64,
    /// Mean |student − teacher| expected age, years.
    pub age_mae: f64,
    /// Share of faces with the same gender decision (P(male) > 0.5).
    pub gender: f64,
}

/// Compares predictions with targets row by row (same faces, same order).
pub fn agreement(pred: &Predictions, t: &crate::data::Targets) -> Agreement {
    let n = t.len().max(1) as f64;
    let d = t.dim;
    let teacher_cosine = (0..t.len())
        .map(|r| {
            pred.embeddings[r * d..(r + 1) * d]
                .iter()
                .zip(&t.embeddings[r * d..(r + 1) * d])
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum::<f64>()
        })
        .sum::<f64>()
        / n;
    let age_mae = pred
        .expected_age
        .iter()
        .zip(&t.expected_age)
        .map(|(a, b)| f64::from((a - b).abs()))
        .sum::<f64>()
        / n;
    let gender = pred
        .p_male
        .iter()
        .zip(&t.p_male)
        .filter(|(a, b)| (**a > 0.5) == (**b > 0.5))
        .count() as f64
        / n;
    Agreement {
        teacher_cosine,
        age_mae,
        gender,
    }
}

/// [`predict`] then [`score`] on the first device of the student.
///
/// # Errors
/// As [`score`].
pub fn evaluate<B: Backend>(
    student: &FaceModel<B>,
    set: &FaceSet,
    config: &DistillConfig,
    epoch: u64,
    step: u64,
) -> Result<EvalRow> {
    let device = student
        .head
        .gender
        .devices()
        .into_iter()
        .next()
        .unwrap_or_default();
    let pred = predict(student, set, &device)?;
    score(&pred, set, config, epoch, step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_metrics_skip_unknowns() {
        let mae = age_mae_vs_labels(&[10.0, 20.0, 30.0], &[Some(12.0), None, Some(27.0)]);
        assert_eq!(mae, Some(2.5));
        assert_eq!(age_mae_vs_labels(&[10.0], &[None]), None);
        let acc = gender_accuracy_vs_labels(&[0.9, 0.2, 0.6], &[Some(true), Some(true), None]);
        assert_eq!(acc, Some(0.5));
        assert_eq!(gender_accuracy_vs_labels(&[0.9], &[None]), None);
    }

    #[test]
    fn all_pairs_split_by_label() {
        // Three unit vectors: 0 and 1 same identity.
        let e = [1.0, 0.0, 0.6, 0.8, 0.0, 1.0];
        let (g, i) = all_pairs(&e, 2, &[5, 5, 9]);
        assert_eq!(g.len(), 1);
        assert!((g[0] - 0.6).abs() < 1e-7);
        assert_eq!(i.len(), 2);
        assert!((i[0] - 0.0).abs() < 1e-12 && (i[1] - 0.8).abs() < 1e-7);
        let (auc, _) = verification(&e, 2, &[5, 5, 9], &[0.1]).unwrap();
        // Genuine 0.6 beats impostor 0.0, loses to 0.8: AUC 1/2.
        assert!((auc - 0.5).abs() < 1e-12);
        assert!(verification(&e, 2, &[1, 2, 3], &[0.1]).is_err());
    }

    #[test]
    fn small_sets_are_one_batch() {
        assert_eq!(validation_batches(&[0, 0, 1], 8, 4), vec![vec![0, 1, 2]]);
        let labels: Vec<u32> = (0..40).map(|i| i / 4).collect();
        let b = validation_batches(&labels, 2, 4);
        assert_eq!(b.len(), 5);
        assert!(b.iter().all(|x| x.len() == 8));
        assert_eq!(b, validation_batches(&labels, 2, 4));
    }
}

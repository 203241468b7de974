//! The final report of a run: teacher against student (untrained and trained) on the labelled
//! pairs, with the training cost, as `report.json` and a ROC picture.

use std::path::Path;

use face_metrics::write_roc_svg;
use serde::{Deserialize, Serialize};

use crate::config::DistillConfig;
use crate::data::FaceSet;
use crate::error::{DistillError, Result};
use crate::eval::{pair_scores, summarise, EvalRow, Predictions};
use crate::trainer::TrainState;

/// One model's line in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelLine {
    /// `teacher`, `student (untrained)` or `student`.
    pub model: String,
    /// Exact AUC over all labelled pairs.
    pub auc: f64,
    /// TAR at each FAR target (`Nearest`).
    pub tar_at_far: Vec<(f64, f64)>,
    /// irAUC over the fixed validation batches (students only).
    pub ir_auc: Option<f64>,
    /// Mean cosine to the teacher's embedding (students only).
    pub teacher_cosine: Option<f64>,
    /// Mean |student − teacher| expected age in years (students only).
    pub age_mae_vs_teacher: Option<f64>,
    /// Share of faces where the predicted gender agrees with the teacher (students only).
    pub gender_agreement: Option<f64>,
    /// Mean |predicted − true| age where the faces carry age labels.
    pub age_mae_vs_labels: Option<f64>,
    /// Gender accuracy where the faces carry gender labels.
    pub gender_accuracy_vs_labels: Option<f64>,
}

impl ModelLine {
    fn from_eval(model: &str, r: &EvalRow) -> Self {
        Self {
            model: model.into(),
            auc: r.auc,
            tar_at_far: r.tar_at_far.clone(),
            ir_auc: r.ir_auc,
            teacher_cosine: Some(r.teacher_cosine),
            age_mae_vs_teacher: Some(r.age_mae_vs_teacher),
            gender_agreement: Some(r.gender_agreement),
            age_mae_vs_labels: r.age_mae_vs_labels,
            gender_accuracy_vs_labels: r.gender_accuracy_vs_labels,
        }
    }
}

/// `report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalReport {
    /// Labelled faces evaluated.
    pub faces: usize,
    /// Identities among them.
    pub identities: usize,
    /// Genuine and impostor pairs.
    pub pairs: (usize, usize),
    /// True when the labelled faces were also training faces: then the numbers measure how
    /// well the student copies the teachers, not how it generalises.
    pub on_training_images: bool,
    /// Teacher, untrained student, trained student.
    pub models: Vec<ModelLine>,
    /// Optimizer steps and epochs done.
    pub steps: u64,
    /// Finished epochs.
    pub epochs: u64,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Training faces seen per second of training (data + compute).
    pub train_images_per_second: f64,
    /// Share of training time spent building batches (decode-free: crops are in memory).
    pub data_share: f64,
    /// Share spent in the student's forward, backward and update.
    pub compute_share: f64,
}

impl FinalReport {
    /// A plain-text table for the terminal.
    pub fn table(&self) -> String {
        let far = self
            .models
            .first()
            .and_then(|m| m.tar_at_far.iter().map(|(f, _)| *f).rfind(|f| *f <= 0.1));
        let mut s = format!(
            "{} labelled faces, {} identities, {} genuine / {} impostor pairs{}\n",
            self.faces,
            self.identities,
            self.pairs.0,
            self.pairs.1,
            if self.on_training_images {
                " — ON TRAINING IMAGES: these measure agreement with the teachers, not generalisation"
            } else {
                ""
            }
        );
        s.push_str(&format!(
            "{:<22} {:>7} {:>14} {:>10} {:>12} {:>12} {:>13}\n",
            "model",
            "AUC",
            far.map_or("TAR".into(), |f| format!("TAR@FAR={f:.0e}")),
            "irAUC",
            "cos(teacher)",
            "age MAE (y)",
            "gender agree"
        ));
        let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("–".to_string(), f);
        for m in &self.models {
            let tar = far.and_then(|f| m.tar_at_far.iter().find(|(x, _)| *x == f).map(|(_, t)| *t));
            s.push_str(&format!(
                "{:<22} {:>7.4} {:>14} {:>10} {:>12} {:>12} {:>13}\n",
                m.model,
                m.auc,
                opt(tar, &|t| format!("{t:.3}")),
                opt(m.ir_auc, &|x| format!("{x:.2e}")),
                opt(m.teacher_cosine, &|x| format!("{x:.3}")),
                opt(m.age_mae_vs_teacher, &|x| format!("{x:.2}")),
                opt(m.gender_agreement, &|x| format!("{:.1}%", 100.0 * x)),
            ));
        }
        s.push_str(&format!(
            "{} steps, {} epochs{}; {:.1} training faces/s ({:.1}% data, {:.1}% student)\n",
            self.steps,
            self.epochs,
            if self.stopped_early {
                " (stopped early)"
            } else {
                ""
            },
            self.train_images_per_second,
            100.0 * self.data_share,
            100.0 * self.compute_share
        ));
        s
    }
}

/// Builds the report from the teacher's targets, the run's history and the trained student's
/// predictions on `val`; writes `report.json` and `roc.svg` into `run_dir`.
///
/// # Errors
/// An unlabelled set, a run without validation rows, or I/O failure.
pub fn write_report(
    run_dir: &Path,
    config: &DistillConfig,
    val: &FaceSet,
    trained: &Predictions,
    state: &TrainState,
    on_training_images: bool,
) -> Result<FinalReport> {
    let labels = val
        .labels()
        .ok_or_else(|| DistillError::Data("the report needs labelled faces".into()))?;
    let t = val.targets();
    let (untrained, last) = match (state.val.first(), state.val.last()) {
        (Some(a), Some(b)) => (a, b),
        _ => return Err(DistillError::Data("the run has no validation rows".into())),
    };
    let teacher_scores = pair_scores(&t.embeddings, t.dim, labels)?;
    let (teacher_auc, teacher_tar) = summarise(&teacher_scores, &config.val.far_targets)?;
    let teacher = ModelLine {
        model: "teacher".into(),
        auc: teacher_auc,
        tar_at_far: teacher_tar,
        ir_auc: None,
        teacher_cosine: None,
        age_mae_vs_teacher: None,
        gender_agreement: None,
        age_mae_vs_labels: val
            .attributes()
            .and_then(|a| crate::eval::age_mae_vs_labels(&t.expected_age, &a.age)),
        gender_accuracy_vs_labels: val
            .attributes()
            .and_then(|a| crate::eval::gender_accuracy_vs_labels(&t.p_male, &a.male)),
    };
    let pairs = (
        teacher_scores.n_genuine() as usize,
        teacher_scores.n_impostor() as usize,
    );
    let teacher_roc = teacher_scores.roc_points();
    let student_roc = pair_scores(&trained.embeddings, trained.dim, labels)?.roc_points();
    let min_far = (1.0 / pairs.1 as f64).clamp(1e-6, 0.5);
    write_roc_svg(
        run_dir.join("roc.svg"),
        "Verification ROC: teacher vs distilled student",
        &[("teacher", &teacher_roc), ("student", &student_roc)],
        min_far,
    )?;
    let (data, compute) = state.train.iter().fold((0.0, 0.0), |(d, c), r| {
        (d + r.data_seconds, c + r.compute_seconds)
    });
    let faces_seen: u64 = state.train.iter().map(|r| r.faces).sum();
    let total = (data + compute).max(1e-9);
    let mut ids: Vec<u32> = labels.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let report = FinalReport {
        faces: val.len(),
        identities: ids.len(),
        pairs,
        on_training_images,
        models: vec![
            teacher,
            ModelLine::from_eval("student (untrained)", untrained),
            ModelLine::from_eval("student", last),
        ],
        steps: state.step,
        epochs: state.epoch,
        stopped_early: state.stopped_early,
        train_images_per_second: faces_seen as f64 / total,
        data_share: data / total,
        compute_share: compute / total,
    };
    face_io::write_json(&run_dir.join("report.json"), &report)?;
    Ok(report)
}

//! The typed run configuration: JSON on disk, `key=value` overrides on the command line, and a
//! copy saved beside every run.

use std::path::{Path, PathBuf};

use face_metrics::Smoothing;
use face_nets::{BackboneConfig, FaceModelConfig, IResNetConfig};
use serde::{Deserialize, Serialize};

use crate::error::{DistillError, Result};

/// Everything that defines a distillation run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DistillConfig {
    /// The student network.
    pub student: StudentConfig,
    /// Loss terms and their weights.
    pub loss: LossConfig,
    /// Optimizer and learning-rate schedule.
    pub optim: OptimConfig,
    /// Batching and augmentation.
    pub data: DataConfig,
    /// Loop length, checkpoints, early stopping.
    pub train: TrainConfig,
    /// Validation and the irAUC monitor.
    pub val: ValConfig,
    /// Which teachers make the targets.
    pub teachers: TeachersConfig,
}

/// The two teachers, as teacher spec files (`face_teachers::spec`); absent: the bundled ones
/// (`models/fr_feature.teacher.json`, `models/dlib_age_gender.teacher.json`). The target cache
/// is keyed by the specs' hashes, so targets of other teachers are never mixed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TeachersConfig {
    /// A spec with an `identity` network.
    pub identity: Option<PathBuf>,
    /// A spec with `age` and `gender` networks.
    pub age_gender: Option<PathBuf>,
}

impl TeachersConfig {
    /// The identity teacher on `device`.
    ///
    /// # Errors
    /// A bad spec or model (see `face_teachers::SpecIdentityTeacher::load`).
    pub fn identity<B: burn::tensor::backend::Backend>(
        &self,
        models: &Path,
        device: &B::Device,
    ) -> Result<face_teachers::SpecIdentityTeacher<B>> {
        let spec = match &self.identity {
            Some(p) => face_teachers::SpecFile::read(p)?,
            None => face_teachers::SpecFile::in_dir(face_teachers::TeacherSpec::fr_feature(), models),
        };
        Ok(face_teachers::SpecIdentityTeacher::load(&spec, device)?)
    }

    /// The age/gender teacher on `device`.
    ///
    /// # Errors
    /// A bad spec or model (see `face_teachers::SpecAgeGenderTeacher::load`).
    pub fn age_gender<B: burn::tensor::backend::Backend>(
        &self,
        models: &Path,
        device: &B::Device,
    ) -> Result<face_teachers::SpecAgeGenderTeacher<B>> {
        let spec = match &self.age_gender {
            Some(p) => face_teachers::SpecFile::read(p)?,
            None => face_teachers::SpecFile::in_dir(face_teachers::TeacherSpec::dlib_age_gender(), models),
        };
        Ok(face_teachers::SpecAgeGenderTeacher::load(&spec, device)?)
    }
}

/// The student: a face-nets backbone and the multitask head (whose sizes come from the
/// teachers' targets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudentConfig {
    /// The backbone and its own configuration.
    pub backbone: BackboneConfig,
    /// Start the backbone from a pretrained one: a folder with `backbone.json` and
    /// `backbone.bin` (what `facekit pretrain` writes). Its configuration replaces `backbone`
    /// ([`DistillConfig::resolve_init`]); the heads start from random weights.
    #[serde(default)]
    pub init: Option<PathBuf>,
}

impl Default for StudentConfig {
    /// A narrow iResNet-18 (base width 16, 128-d features): a few minutes of CPU training.
    fn default() -> Self {
        Self {
            backbone: BackboneConfig::IResNet(
                IResNetConfig::r18().with_base_width(16).with_num_features(128),
            ),
            init: None,
        }
    }
}

/// Which tasks are distilled (for ablations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TaskMode {
    /// Identity, age and gender together.
    #[default]
    Joint,
    /// The identity embedding only (age and gender weights are ignored).
    IdentityOnly,
    /// Age and gender only (the identity weights are ignored).
    AgeGenderOnly,
}

/// How the age head is matched to the teacher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AgeLoss {
    /// KL(teacher ‖ student) over the age bins.
    #[default]
    Kl,
    /// |E_student[age] − E_teacher[age]| in years.
    L1,
}

/// Loss terms and weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossConfig {
    /// Which tasks are trained.
    pub mode: TaskMode,
    /// Weight of `1 − cos(student, teacher)`.
    pub identity: f64,
    /// Weight of relational KD (0 = off): mean squared difference of the batch's pairwise
    /// cosine matrices, off the diagonal.
    pub relational: f64,
    /// The age criterion.
    pub age_loss: AgeLoss,
    /// Weight of the age term.
    pub age: f64,
    /// Weight of the gender BCE against the teacher's soft probability.
    pub gender: f64,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            mode: TaskMode::Joint,
            identity: 1.0,
            relational: 0.0,
            age_loss: AgeLoss::Kl,
            age: 1.0,
            gender: 1.0,
        }
    }
}

impl LossConfig {
    /// The weights in force after [`LossConfig::mode`]: `(identity, relational, age, gender)`.
    pub fn effective_weights(&self) -> (f64, f64, f64, f64) {
        match self.mode {
            TaskMode::Joint => (self.identity, self.relational, self.age, self.gender),
            TaskMode::IdentityOnly => (self.identity, self.relational, 0.0, 0.0),
            TaskMode::AgeGenderOnly => (0.0, 0.0, self.age, self.gender),
        }
    }
}

/// AdamW with linear warm-up and cosine decay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Peak learning rate.
    pub lr: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Adam's β₁, β₂.
    pub betas: (f64, f64),
    /// Adam's ε.
    pub epsilon: f64,
    /// Optimizer steps of linear warm-up from 0.
    pub warmup_steps: u64,
    /// The cosine ends at `lr · min_lr_ratio`.
    pub min_lr_ratio: f64,
    /// Clip the gradient's global L2 norm (none when absent).
    pub clip_grad_norm: Option<f64>,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            lr: 2e-3,
            weight_decay: 5e-4,
            betas: (0.9, 0.999),
            epsilon: 1e-8,
            warmup_steps: 20,
            min_lr_ratio: 0.01,
            clip_grad_norm: Some(5.0),
        }
    }
}

/// Batching and augmentation of the unlabelled training faces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Faces per micro-batch (split across devices).
    pub batch: usize,
    /// Micro-batches per optimizer step (gradient accumulation).
    pub accumulate: usize,
    /// The augmentation of student inputs (teacher targets are of the clean crop).
    pub augment: AugmentConfig,
    /// Whether training faces are held in memory or read from disk batch by batch (the same
    /// crops either way, so the same run).
    pub stream: Streaming,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            batch: 32,
            accumulate: 1,
            augment: AugmentConfig::default(),
            stream: Streaming::Auto,
        }
    }
}

/// Where training faces live during training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Streaming {
    /// Read from disk when the cache has more than [`Streaming::AUTO_LIMIT`] faces, held in
    /// memory otherwise.
    Auto,
    /// Always held in memory (aligned crops, 37.6 KB per 112 px face).
    Off,
    /// Always read from disk when a batch needs them (memory O(batch)).
    On,
}

impl Streaming {
    /// The size above which `auto` streams: 20 000 faces of 112 px are 750 MB in memory.
    pub const AUTO_LIMIT: usize = 20_000;

    /// Whether a set of `faces` faces is streamed.
    pub fn streams(self, faces: usize) -> bool {
        match self {
            Self::Auto => faces > Self::AUTO_LIMIT,
            Self::Off => false,
            Self::On => true,
        }
    }
}

/// Label-preserving augmentations for aligned faces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentConfig {
    /// Master switch.
    pub enabled: bool,
    /// Probability of a horizontal flip.
    pub flip: f64,
    /// Area range of the random resized crop (`[1, 1]` disables it).
    pub crop_scale: (f64, f64),
    /// Brightness / contrast / saturation jitter strength (0 disables it).
    pub color_jitter: f32,
    /// Probability of converting to grayscale.
    pub grayscale: f64,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            flip: 0.5,
            crop_scale: (0.85, 1.0),
            color_jitter: 0.2,
            grayscale: 0.05,
        }
    }
}

/// Loop length, checkpoints and early stopping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Epochs over the training faces.
    pub epochs: u64,
    /// Stop after this many optimizer steps, whatever the epoch (none when absent).
    pub max_steps: Option<u64>,
    /// Seed of data order and augmentation (`pipeline` also seeds the backend with it before
    /// initialising the student).
    pub seed: u64,
    /// Save a checkpoint every this many optimizer steps (and at every epoch end).
    pub checkpoint_every: u64,
    /// Checkpoints kept on disk (the newest ones).
    pub keep_checkpoints: usize,
    /// Stop when validation irAUC has not improved by `min_delta` for this many epochs
    /// (none: never stop early).
    pub early_stop_patience: Option<u64>,
    /// Improvement that resets the patience counter.
    pub early_stop_min_delta: f64,
    /// Print a line every this many steps when the output is not a terminal.
    pub log_every: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            max_steps: None,
            seed: 0,
            checkpoint_every: 50,
            keep_checkpoints: 2,
            early_stop_patience: Some(10),
            early_stop_min_delta: 0.0,
            log_every: 10,
        }
    }
}

/// Validation on labelled pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValConfig {
    /// Identities per validation batch (P of P×K); sets smaller than one batch are one batch.
    pub p: usize,
    /// Images per identity (K of P×K).
    pub k: usize,
    /// Smoothing of the per-batch AUCs within one validation pass.
    pub smoothing: Smoothing,
    /// FAR targets reported (TAR@FAR, `Nearest` convention).
    pub far_targets: Vec<f64>,
}

impl Default for ValConfig {
    fn default() -> Self {
        Self {
            p: 8,
            k: 4,
            smoothing: Smoothing::Window { n: 1_000_000 },
            far_targets: vec![1e-4, 1e-3, 1e-2, 1e-1],
        }
    }
}

impl DistillConfig {
    /// Reads a JSON config (missing keys take their defaults; an unknown key is an error at
    /// every depth, named by its dotted path).
    ///
    /// # Errors
    /// Unreadable file, malformed JSON or an unknown key.
    pub fn read(path: &Path) -> Result<Self> {
        Ok(face_io::read_config(path)?)
    }

    /// Writes the config as pretty JSON, atomically.
    ///
    /// # Errors
    /// I/O failure.
    pub fn write(&self, path: &Path) -> Result<()> {
        Ok(face_io::write_config(path, self)?)
    }

    /// Applies `key=value` overrides with dotted keys (`optim.lr=1e-3`,
    /// `student.backbone.base_width=32`). The value is read as JSON, or taken as a string when
    /// it is not JSON (`loss.mode=identity_only`).
    ///
    /// # Errors
    /// A malformed override, a key that does not exist, or a value of the wrong type.
    ///
    /// # Examples
    /// ```
    /// use face_distill::{DistillConfig, TaskMode};
    /// let c = DistillConfig::default()
    ///     .with_overrides(&["optim.lr=1e-3".into(), "loss.mode=age_gender_only".into()])
    ///     .unwrap();
    /// assert_eq!(c.optim.lr, 1e-3);
    /// assert_eq!(c.loss.mode, TaskMode::AgeGenderOnly);
    /// assert!(c.with_overrides(&["optim.learning_rate=1".into()]).is_err());
    /// ```
    pub fn with_overrides(&self, overrides: &[String]) -> Result<Self> {
        Ok(face_io::apply_overrides(self, overrides)?)
    }

    /// With `student.init` set, replaces `student.backbone` by the pretrained backbone's
    /// configuration (its `backbone.json`); otherwise returns the config as it is.
    ///
    /// # Errors
    /// A missing or malformed `backbone.json`.
    pub fn resolve_init(&self) -> Result<Self> {
        let mut c = self.clone();
        if let Some(dir) = &self.student.init {
            c.student.backbone = face_nets::model::read_backbone_config(dir)?;
        }
        Ok(c)
    }

    /// The face model this config trains, given the teachers' embedding width and age bins.
    pub fn model_config(&self, embedding_dim: usize, age_bins: &[f32]) -> FaceModelConfig {
        FaceModelConfig::new(self.student.backbone.clone(), embedding_dim, age_bins.to_vec())
    }

    /// Checks ranges that the types cannot.
    ///
    /// # Errors
    /// The first offending key.
    pub fn validate(&self) -> Result<()> {
        fn c(key: &str, message: impl Into<String>) -> DistillError {
            DistillError::config(key, message)
        }
        self.student.backbone.validate()?;
        let l = &self.loss;
        for (k, v) in [
            ("loss.identity", l.identity),
            ("loss.relational", l.relational),
            ("loss.age", l.age),
            ("loss.gender", l.gender),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(c(k, format!("must be finite and ≥ 0, got {v}")));
            }
        }
        let (wi, wr, wa, wg) = l.effective_weights();
        if wi + wr + wa + wg <= 0.0 {
            return Err(c(
                "loss",
                format!("{:?} leaves every loss weight at zero", l.mode),
            ));
        }
        let o = &self.optim;
        if !(o.lr.is_finite() && o.lr > 0.0) {
            return Err(c("optim.lr", format!("must be > 0, got {}", o.lr)));
        }
        if !(o.weight_decay.is_finite() && o.weight_decay >= 0.0) {
            return Err(c(
                "optim.weight_decay",
                format!("must be ≥ 0, got {}", o.weight_decay),
            ));
        }
        if !(0.0..1.0).contains(&o.betas.0) || !(0.0..1.0).contains(&o.betas.1) {
            return Err(c("optim.betas", format!("must be in [0, 1), got {:?}", o.betas)));
        }
        if o.epsilon.is_nan() || o.epsilon <= 0.0 {
            return Err(c("optim.epsilon", "must be > 0"));
        }
        if !(0.0..=1.0).contains(&o.min_lr_ratio) {
            return Err(c(
                "optim.min_lr_ratio",
                format!("must be in [0, 1], got {}", o.min_lr_ratio),
            ));
        }
        if let Some(n) = o.clip_grad_norm {
            if !(n.is_finite() && n > 0.0) {
                return Err(c("optim.clip_grad_norm", format!("must be > 0, got {n}")));
            }
        }
        let d = &self.data;
        if d.batch < 2 {
            return Err(c(
                "data.batch",
                format!("must be ≥ 2 (relational KD and BN need pairs), got {}", d.batch),
            ));
        }
        if d.accumulate == 0 {
            return Err(c("data.accumulate", "must be ≥ 1"));
        }
        let a = &d.augment;
        if !(0.0..=1.0).contains(&a.flip) || !(0.0..=1.0).contains(&a.grayscale) {
            return Err(c(
                "data.augment",
                "flip and grayscale are probabilities in [0, 1]",
            ));
        }
        let (s0, s1) = a.crop_scale;
        if !(0.0 < s0 && s0 <= s1 && s1 <= 1.0) {
            return Err(c(
                "data.augment.crop_scale",
                format!("need 0 < lo ≤ hi ≤ 1, got {:?}", a.crop_scale),
            ));
        }
        if !(a.color_jitter.is_finite() && (0.0..1.0).contains(&a.color_jitter)) {
            return Err(c(
                "data.augment.color_jitter",
                format!("must be in [0, 1), got {}", a.color_jitter),
            ));
        }
        let t = &self.train;
        if t.epochs == 0 {
            return Err(c("train.epochs", "must be ≥ 1"));
        }
        if t.max_steps == Some(0) {
            return Err(c("train.max_steps", "must be ≥ 1 when given"));
        }
        if t.checkpoint_every == 0 || t.log_every == 0 {
            return Err(c(
                "train.checkpoint_every",
                "checkpoint_every and log_every must be ≥ 1",
            ));
        }
        if t.keep_checkpoints == 0 {
            return Err(c("train.keep_checkpoints", "must be ≥ 1 (resume needs one)"));
        }
        let v = &self.val;
        if v.p < 2 || v.k < 2 {
            return Err(c(
                "val",
                format!("P×K needs P ≥ 2 and K ≥ 2, got {}×{}", v.p, v.k),
            ));
        }
        face_metrics::RunningAuc::new(v.smoothing)?;
        if let Some(f) = v.far_targets.iter().find(|f| !(**f > 0.0 && **f < 1.0)) {
            return Err(c(
                "val.far_targets",
                format!("FAR targets lie in (0, 1), got {f}"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test per section: every section of the configuration, at every depth (the Burn-derived
    /// backbone configs included), refuses a key it does not have and names its full path, in a
    /// file and as an override; the defaults read back as written.
    #[test]
    fn every_section_refuses_an_unknown_key() {
        let sections = face_io::check_every_section(&DistillConfig::default()).unwrap();
        for s in [
            "",
            "student",
            "student.backbone",
            "loss",
            "optim",
            "data",
            "data.augment",
            "train",
            "val",
        ] {
            assert!(
                sections.iter().any(|x| x == s),
                "section {s:?} not checked: {sections:?}"
            );
        }
    }
}

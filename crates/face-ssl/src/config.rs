//! The pretraining run configuration: JSON on disk, `key=value` overrides on the command line.

use std::path::Path;

use face_nets::{NetsError, TokenInput, TokenLayout, TokenVitConfig};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SslError};
use crate::head::DinoHeadConfig;
use crate::monitor::CollapseThresholds;
use crate::views::{Tokenizer, ViewConfig};

/// DINO's self-distillation settings (the paper's defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DinoConfig {
    /// Student temperature τs.
    pub student_temp: f64,
    /// Teacher temperature τt after the warm-up.
    pub teacher_temp: f64,
    /// Teacher temperature at the first epoch.
    pub warmup_teacher_temp: f64,
    /// Epochs of linear teacher-temperature warm-up.
    pub warmup_teacher_temp_epochs: usize,
    /// Momentum of the teacher-output centre.
    pub center_momentum: f64,
    /// EMA momentum of the teacher at the first step (cosine to 1 at the end).
    pub momentum_teacher: f64,
    /// Epochs during which the head's last layer is frozen.
    pub freeze_last_layer: usize,
}

impl Default for DinoConfig {
    fn default() -> Self {
        Self {
            student_temp: 0.1,
            teacher_temp: 0.04,
            warmup_teacher_temp: 0.04,
            warmup_teacher_temp_epochs: 0,
            center_momentum: 0.9,
            momentum_teacher: 0.996,
            freeze_last_layer: 1,
        }
    }
}

/// Optimiser (AdamW with scheduled decoupled weight decay) and schedules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    /// Epochs.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Peak learning rate per 256 images (scaled linearly by `batch_size / 256`).
    pub lr: f64,
    /// Final learning rate.
    pub min_lr: f64,
    /// Epochs of linear learning-rate warm-up.
    pub warmup_epochs: usize,
    /// Weight decay at the start (cosine to `weight_decay_end`); biases and norms are not decayed.
    pub weight_decay: f64,
    /// Weight decay at the end.
    pub weight_decay_end: f64,
    /// Per-parameter gradient norm clip (0 = off).
    pub clip_grad: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            epochs: 100,
            batch_size: 64,
            lr: 5e-4,
            min_lr: 1e-6,
            warmup_epochs: 10,
            weight_decay: 0.04,
            weight_decay_end: 0.4,
            clip_grad: 3.0,
        }
    }
}

/// Checkpoints of a run (with [`crate::Pretrainer::with_run_dir`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Save a checkpoint every this many optimizer steps (and at every epoch end).
    pub every: u64,
    /// Checkpoints kept on disk (the newest ones).
    pub keep: usize,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self { every: 50, keep: 2 }
    }
}

/// Everything a pretraining run needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PretrainConfig {
    /// Seed of initialisation, batch order and augmentation.
    pub seed: u64,
    /// The backbone.
    pub vit: TokenVitConfig,
    /// The projection head.
    pub head: DinoHeadConfig,
    /// Views and tokenisation.
    pub views: ViewConfig,
    /// Self-distillation.
    pub dino: DinoConfig,
    /// Optimiser and schedules.
    pub optim: OptimConfig,
    /// Collapse warning thresholds.
    pub monitor: CollapseThresholds,
    /// Checkpoints (used when the run has a folder).
    pub checkpoint: CheckpointConfig,
}

impl Default for PretrainConfig {
    /// LAFS with ViT-Tiny on 112-pixel faces.
    fn default() -> Self {
        Self::lafs()
    }
}

impl PretrainConfig {
    /// LAFS: landmark tokens with slot embeddings, ViT-Tiny, 65 536 prototypes.
    pub fn lafs() -> Self {
        Self {
            seed: 0,
            vit: TokenVitConfig::tiny(),
            head: DinoHeadConfig::default(),
            views: ViewConfig::default(),
            dino: DinoConfig::default(),
            optim: OptimConfig::default(),
            monitor: CollapseThresholds::default(),
            checkpoint: CheckpointConfig::default(),
        }
    }

    /// Plain DINO: grid tokens, position from coordinates only (no slot embeddings).
    pub fn dino() -> Self {
        let mut c = Self::lafs();
        c.views = ViewConfig::dino();
        c.vit.max_slots = 0;
        c
    }

    /// A network small enough for CPU tests and demos (64 wide, 2 blocks, 256 prototypes) on
    /// `tokenizer` views with 4 local views, batches of 8; the DINO recipe otherwise, with the
    /// centre momentum raised to 0.99 for the small batches.
    pub fn tiny(tokenizer: Tokenizer) -> Self {
        let mut c = match tokenizer {
            Tokenizer::Grid => Self::dino(),
            Tokenizer::Landmarks => Self::lafs(),
        };
        c.vit = TokenVitConfig {
            embed_dim: 64,
            depth: 2,
            num_heads: 2,
            mlp_ratio: 2,
            max_slots: c.vit.max_slots.min(c.views.slots()),
            ..c.vit
        };
        c.head = DinoHeadConfig {
            out_dim: 256,
            hidden_dim: 256,
            bottleneck_dim: 64,
            layers: 3,
        };
        c.views.local_views = 4;
        c.optim = OptimConfig {
            epochs: 10,
            batch_size: 8,
            // 5e-4 at batch 8.
            lr: 5e-4 * 256.0 / 8.0,
            warmup_epochs: 1,
            ..OptimConfig::default()
        };
        c.dino.momentum_teacher = 0.99;
        // DINO's 0.9 averages the centre over ~10 batches of 1024; with batches of 8 it would
        // follow each batch and flatten the targets to uniform. 0.99 averages ~800 images.
        c.dino.center_momentum = 0.99;
        c
    }

    /// Reads a JSON config (missing keys take their defaults, unknown keys are errors at every
    /// depth).
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

    /// Applies `key=value` overrides with dotted keys (`optim.epochs=5`,
    /// `views.tokenizer=grid`).
    ///
    /// # Errors
    /// A malformed override, an unknown key or a value of the wrong type.
    ///
    /// # Examples
    /// ```
    /// use face_ssl::{PretrainConfig, Tokenizer};
    /// let c = PretrainConfig::lafs()
    ///     .with_overrides(&["optim.epochs=5".into(), "views.tokenizer=grid".into()])
    ///     .unwrap();
    /// assert_eq!((c.optim.epochs, c.views.tokenizer), (5, Tokenizer::Grid));
    /// assert!(c.with_overrides(&["optim.epoch=5".into()]).is_err());
    /// ```
    pub fn with_overrides(&self, overrides: &[String]) -> Result<Self> {
        Ok(face_io::apply_overrides(self, overrides)?)
    }

    /// How an aligned face becomes tokens when the pretrained ViT serves as a backbone: the
    /// deterministic view of the configured views (a centred patch grid for DINO; the dense
    /// landmark grid, or the five ArcFace template points, for LAFS).
    ///
    /// # Errors
    /// A view size the ArcFace template cannot take.
    pub fn backbone_input(&self) -> Result<TokenInput> {
        let v = &self.views;
        let layout = match (v.tokenizer, v.grid) {
            (Tokenizer::Grid, n) => TokenLayout::Grid { n: n as usize },
            (Tokenizer::Landmarks, 0) => TokenLayout::Points {
                points: face_data::FaceTemplate::arcface(v.image_size)?.points[..5].to_vec(),
            },
            (Tokenizer::Landmarks, n) => TokenLayout::Dense { n: n as usize },
        };
        Ok(TokenInput {
            image_size: v.image_size as usize,
            layout,
        })
    }

    /// The backbone's configuration with its input filled from the views (what a distillation
    /// student seeded from this run is built from).
    ///
    /// # Errors
    /// As [`PretrainConfig::backbone_input`].
    pub fn backbone_config(&self) -> Result<TokenVitConfig> {
        Ok(TokenVitConfig {
            input: Some(self.backbone_input()?),
            ..self.vit.clone()
        })
    }

    /// Checks every section and their agreement.
    ///
    /// # Errors
    /// The first offending key.
    pub fn validate(&self) -> Result<()> {
        let c = SslError::config;
        self.views.validate()?;
        let derived = self.backbone_input()?;
        match &self.vit.input {
            Some(given) if *given != derived => {
                return Err(c(
                    "vit.input",
                    format!("{given:?} disagrees with the views, which give {derived:?} (leave it out)"),
                ))
            }
            _ => {}
        }
        self.backbone_config()?.validate().map_err(|e| match e {
            NetsError::Config { name, message } => SslError::config(format!("vit.{name}"), message),
            other => other.into(),
        })?;
        self.head.validate()?;
        if self.vit.patch_size != self.views.patch as usize {
            return Err(c(
                "views.patch",
                format!(
                    "{} px, but the ViT's patch_size is {}",
                    self.views.patch, self.vit.patch_size
                ),
            ));
        }
        if self.vit.max_slots > 0 && self.vit.max_slots < self.views.slots() {
            return Err(c(
                "vit.max_slots",
                format!(
                    "{} slots, but the views have {} tokens",
                    self.vit.max_slots,
                    self.views.slots()
                ),
            ));
        }
        let d = &self.dino;
        for (key, v) in [
            ("dino.student_temp", d.student_temp),
            ("dino.teacher_temp", d.teacher_temp),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(c(key, format!("{v} must be positive")));
            }
        }
        if !(d.warmup_teacher_temp > 0.0 && d.warmup_teacher_temp.is_finite()) {
            return Err(c("dino.warmup_teacher_temp", "must be positive".into()));
        }
        for (key, v) in [
            ("dino.center_momentum", d.center_momentum),
            ("dino.momentum_teacher", d.momentum_teacher),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(c(key, format!("{v} is not in [0, 1]")));
            }
        }
        if self.checkpoint.every == 0 || self.checkpoint.keep == 0 {
            return Err(c("checkpoint", "every and keep must be ≥ 1".into()));
        }
        let o = &self.optim;
        if o.epochs == 0 || o.batch_size == 0 {
            return Err(c("optim", "epochs and batch_size must be positive".into()));
        }
        for (key, v) in [
            ("optim.lr", o.lr),
            ("optim.min_lr", o.min_lr),
            ("optim.weight_decay", o.weight_decay),
            ("optim.weight_decay_end", o.weight_decay_end),
            ("optim.clip_grad", o.clip_grad),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(c(key, format!("{v} must be finite and ≥ 0")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test per section: every section of the configuration (the face-nets token ViT
    /// included) refuses a key it does not have and names its full path, in a file and as an
    /// override; the presets read back as written.
    #[test]
    fn every_section_refuses_an_unknown_key() {
        for config in [PretrainConfig::lafs(), PretrainConfig::tiny(Tokenizer::Grid)] {
            let sections = face_io::check_every_section(&config).unwrap();
            for s in [
                "",
                "vit",
                "head",
                "views",
                "dino",
                "optim",
                "monitor",
                "checkpoint",
            ] {
                assert!(
                    sections.iter().any(|x| x == s),
                    "section {s:?} not checked: {sections:?}"
                );
            }
        }
    }

    #[test]
    fn the_backbone_input_follows_the_views() {
        let lafs = PretrainConfig::lafs().backbone_input().unwrap();
        assert_eq!(lafs.layout, TokenLayout::Dense { n: 7 });
        let dino = PretrainConfig::dino().backbone_input().unwrap();
        assert_eq!(dino.layout, TokenLayout::Grid { n: 7 });
        let mut five = PretrainConfig::lafs();
        five.views.grid = 0;
        match five.backbone_input().unwrap().layout {
            TokenLayout::Points { points } => {
                assert_eq!(points.len(), 5);
                assert!((points[0][0] - 38.2946).abs() < 1e-3, "{points:?}");
            }
            other => panic!("{other:?}"),
        }
        // A given input that disagrees with the views is refused by name.
        let mut c = PretrainConfig::lafs();
        c.vit.input = Some(dino);
        assert!(c.validate().unwrap_err().to_string().contains("vit.input"));
    }
}

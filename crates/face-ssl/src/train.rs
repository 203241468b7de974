//! The pretraining loop: student and EMA teacher (backbone + DINO head), multi-crop views,
//! centring and sharpening, AdamW with scheduled weight decay, per-parameter gradient clipping,
//! the head's last layer frozen in the first epoch(s), and per-epoch collapse monitors.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::PretrainConfig;
use crate::error::{Result, SslError};
use crate::head::DinoHead;
use crate::loss::{dino_loss, teacher_targets, Centre};
use crate::monitor::{marginal_entropy, mean_entropy, normalised_std, Collapse, Monitors};
use crate::schedule::{teacher_temperature, Cosine};
use crate::views::{stack, Face, FaceViews, ViewBuilder, ViewTokens};
use face_data::augment::DataRng;
use face_nets::{FusedAdamW, TokenBatch, TokenVit};

/// Backbone + projection head: the student, or (on the inner backend) the teacher.
#[derive(Module, Debug)]
pub struct DinoModel<B: Backend> {
    /// The ViT whose class token is the representation.
    pub backbone: TokenVit<B>,
    /// The projection head (discarded after pretraining).
    pub head: DinoHead<B>,
}

impl<B: Backend> DinoModel<B> {
    /// A model of `config`'s architecture with random weights.
    ///
    /// # Errors
    /// An invalid configuration.
    pub fn new(config: &PretrainConfig, device: &B::Device) -> Result<Self> {
        let backbone = config.backbone_config()?.init(device);
        let head = config.head.init(backbone.embed_dim(), device)?;
        Ok(Self { backbone, head })
    }

    /// The representation `[n, d]` and the logits `[n, K]`.
    pub fn forward(&self, batch: &TokenBatch<B>) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let features = self.backbone.forward(batch);
        let logits = self.head.forward(features.clone());
        (features, logits)
    }
}

/// One epoch of pretraining.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRow {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Optimizer steps so far.
    pub steps: u64,
    /// Learning rate at the epoch's last step.
    pub lr: f64,
    /// Weight decay at the epoch's last step.
    pub weight_decay: f64,
    /// Teacher EMA momentum at the epoch's last step.
    pub momentum: f64,
    /// Teacher temperature of the epoch.
    pub teacher_temp: f64,
    /// Means of the monitors over the epoch's steps.
    pub monitors: Monitors,
    /// The collapse the monitors show, if any.
    pub collapse: Option<Collapse>,
    /// Wall time of the epoch, seconds.
    pub seconds: f64,
    /// Images per second (each image is all of its views).
    pub images_per_second: f64,
}

/// The result of a run.
#[derive(Debug)]
pub struct Pretrained<B: Backend> {
    /// The configuration it ran with.
    pub config: PretrainConfig,
    /// The teacher (DINO evaluates the teacher), backbone and head.
    pub teacher: DinoModel<B>,
    /// One row per finished epoch.
    pub history: Vec<EpochRow>,
    /// Optimizer steps done (fewer than planned after a stop).
    pub steps: u64,
    /// The checkpoint this run resumed from.
    pub resumed_from: Option<PathBuf>,
}

/// Collects every float parameter in visiting order, each as its own `Tensor<B, D>` (boxed,
/// so parameters of every rank share one list; no reshape, which copies on NdArray).
struct Collect {
    out: Vec<Box<dyn Any>>,
}

impl<B: Backend> ModuleVisitor<B> for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.out.push(Box::new(param.val()));
    }
}

/// `teacher ← m·teacher + (1 − m)·student`, parameter by parameter in visiting order.
struct Ema {
    student: std::vec::IntoIter<Box<dyn Any>>,
    momentum: f64,
    missing: usize,
}

impl<B: Backend> ModuleMapper<B> for Ema {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, t, mapper) = param.consume();
        let student = self.student.next().map(|s| s.downcast::<Tensor<B, D>>());
        let t = match student {
            Some(Ok(s)) if s.shape() == t.shape() => face_nets::ops::ema(t, *s, self.momentum),
            _ => {
                self.missing += 1;
                t
            }
        };
        Param::from_mapped_value(id, t, mapper)
    }
}

/// `teacher ← m·teacher + (1 − m)·student`.
///
/// # Errors
/// Student and teacher of different architectures.
pub fn ema_update<B: Backend>(
    teacher: DinoModel<B>,
    student: &DinoModel<B>,
    momentum: f64,
) -> Result<DinoModel<B>> {
    let mut collect = Collect { out: Vec::new() };
    student.visit(&mut collect);
    let mut ema = Ema {
        student: collect.out.into_iter(),
        momentum,
        missing: 0,
    };
    let teacher = teacher.map(&mut ema);
    if ema.missing > 0 || ema.student.next().is_some() {
        return Err(SslError::Data(
            "teacher and student have different architectures".into(),
        ));
    }
    Ok(teacher)
}

/// The per-step augmentation generator: a function of the seed, epoch, step and image, so a
/// run is reproducible whatever the thread count.
fn view_rng(seed: u64, epoch: usize, step: u64, image: usize) -> DataRng {
    let mix = seed
        ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ step.wrapping_mul(0xBF58_476D_1CE4_E5B9)
        ^ (image as u64).wrapping_mul(0x94D0_49BB_1331_11EB);
    DataRng::seed_from_u64(mix)
}

/// Views of a batch stacked view-major: the global batch `[2n]` and the local batch `[L·n]`.
fn stacked<B: Backend>(
    views: &[FaceViews],
    device: &B::Device,
) -> Result<(TokenBatch<B>, Option<TokenBatch<B>>)> {
    let global: Vec<&ViewTokens> = (0..2)
        .flat_map(|k| views.iter().map(move |v| &v.global[k]))
        .collect();
    let locals = views.first().map_or(0, |v| v.local.len());
    let local: Vec<&ViewTokens> = (0..locals)
        .flat_map(|k| views.iter().map(move |v| &v.local[k]))
        .collect();
    let g = stack(&global, device)?;
    let l = if local.is_empty() {
        None
    } else {
        Some(stack(&local, device)?)
    };
    Ok((g, l))
}

/// What one optimizer step measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    /// DINO loss.
    pub loss: f64,
    /// Mean entropy of the teacher targets.
    pub teacher_entropy: f64,
    /// Entropy of the batch-mean teacher target.
    pub marginal_entropy: f64,
    /// `std·√d` of the student's normalised global-view representations.
    pub std_ratio: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Weight decay used.
    pub weight_decay: f64,
    /// Teacher momentum used.
    pub momentum: f64,
    /// Teacher temperature used.
    pub teacher_temp: f64,
}

/// The state of a run between steps: student, EMA teacher, optimizer, centre and schedules.
/// [`Pretrainer::fit`] drives it over epochs; a caller with its own data loop can drive
/// [`Session::step`] directly.
pub struct Session<B: AutodiffBackend> {
    config: PretrainConfig,
    device: B::Device,
    student: DinoModel<B>,
    teacher: DinoModel<B::InnerBackend>,
    optim: FusedAdamW<DinoModel<B>, B>,
    centre: Centre<B::InnerBackend>,
    lr: Cosine,
    wd: Cosine,
    momentum: Cosine,
    step: u64,
}

impl<B: AutodiffBackend> Session<B> {
    /// A fresh run of `config` planned for `total_steps` steps (the length of the schedules),
    /// with `batch` images per step (the learning rate scales by `batch / 256`).
    ///
    /// # Errors
    /// An invalid configuration.
    pub fn new(
        config: &PretrainConfig,
        device: &B::Device,
        batch: usize,
        steps_per_epoch: usize,
    ) -> Result<Self> {
        config.validate()?;
        B::seed(device, config.seed);
        let student = DinoModel::<B>::new(config, device)?;
        Self::with_student(config, device, batch, steps_per_epoch, student)
    }

    /// A fresh run of `config` from the given student (its weights, e.g. moved from another
    /// backend or another run); the EMA teacher starts as its copy. Otherwise as
    /// [`Session::new`].
    ///
    /// # Errors
    /// An invalid configuration, or a student of another architecture.
    pub fn with_student(
        config: &PretrainConfig,
        device: &B::Device,
        batch: usize,
        steps_per_epoch: usize,
        student: DinoModel<B>,
    ) -> Result<Self> {
        config.validate()?;
        let c = config;
        let fresh = DinoModel::<B>::new(c, device)?;
        if fresh.num_params() != student.num_params() {
            return Err(SslError::Config {
                key: "backbone".into(),
                message: format!(
                    "the student passed in has {} parameters, the configured architecture {}",
                    student.num_params(),
                    fresh.num_params()
                ),
            });
        }
        let student = student.fork(device);
        let teacher = student.valid();
        let optim = FusedAdamW::new()
            .with_epsilon(1e-8)
            .with_clip_norm(Some(c.optim.clip_grad as f32));
        let total = (steps_per_epoch * c.optim.epochs) as u64;
        let lr_scaled = c.optim.lr * (batch as f64) / 256.0;
        Ok(Self {
            config: c.clone(),
            device: device.clone(),
            student,
            teacher,
            optim,
            centre: Centre::zeros(c.head.out_dim, c.dino.center_momentum, device),
            lr: Cosine::new(lr_scaled, c.optim.min_lr, total)
                .with_warmup((steps_per_epoch * c.optim.warmup_epochs) as u64, 0.0),
            wd: Cosine::new(c.optim.weight_decay, c.optim.weight_decay_end, total),
            momentum: Cosine::new(c.dino.momentum_teacher, 1.0, total),
            step: 0,
        })
    }

    /// Steps done.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The student being trained.
    pub fn student(&self) -> &DinoModel<B> {
        &self.student
    }

    /// The EMA teacher.
    pub fn teacher(&self) -> &DinoModel<B::InnerBackend> {
        &self.teacher
    }

    /// Ends the session, keeping the teacher.
    pub fn into_teacher(self) -> DinoModel<B::InnerBackend> {
        self.teacher
    }

    /// One optimizer step on the views of a batch of images in `epoch` (0-based; it sets the
    /// teacher temperature and whether the head's last layer is frozen).
    ///
    /// # Errors
    /// Views of unequal token counts, or a non-finite loss.
    pub fn step(&mut self, views: &[FaceViews], epoch: usize) -> Result<StepStats> {
        let c = &self.config;
        let n = views.len();
        let temp = teacher_temperature(
            c.dino.warmup_teacher_temp,
            c.dino.teacher_temp,
            c.dino.warmup_teacher_temp_epochs,
            epoch,
        );
        let (global, local) = stacked::<B>(views, &self.device)?;
        let global_inner = TokenBatch::<B::InnerBackend> {
            patches: global.patches.clone().inner(),
            coords: global.coords.clone().inner(),
            slots: global.slots.clone().inner(),
        };
        // As DINO's multi-crop wrapper: the backbone per token count, one head pass for all.
        let features = self.student.backbone.forward(&global);
        let all = match &local {
            Some(local) => Tensor::cat(vec![features.clone(), self.student.backbone.forward(local)], 0),
            None => features.clone(),
        };
        let logits = self.student.head.forward(all);
        let (_, t_logits) = self.teacher.forward(&global_inner);
        let targets = teacher_targets(t_logits.clone(), self.centre.value(), temp);
        let loss = dino_loss(
            Tensor::from_inner(targets.clone()),
            logits,
            n,
            c.dino.student_temp,
        );
        let loss_value = loss.clone().into_scalar().elem::<f64>();
        self.step += 1;
        if !loss_value.is_finite() {
            return Err(SslError::NonFinite {
                step: self.step,
                value: loss_value,
            });
        }
        let d = features.dims()[1] as f64;
        let stats = StepStats {
            loss: loss_value,
            teacher_entropy: mean_entropy(targets.clone()),
            marginal_entropy: marginal_entropy(targets),
            std_ratio: normalised_std(features.inner()) * d.sqrt(),
            lr: self.lr.at(self.step - 1),
            weight_decay: self.wd.at(self.step - 1),
            momentum: self.momentum.at(self.step - 1),
            teacher_temp: temp,
        };
        let mut grads = GradientsParams::from_grads(loss.backward(), &self.student);
        if epoch < c.dino.freeze_last_layer {
            grads.remove::<B::InnerBackend, 2>(self.student.head.last_layer_id());
        }
        self.optim.set_weight_decay(stats.weight_decay);
        self.student = self.optim.step(stats.lr, self.student.clone(), grads);
        self.teacher = ema_update(self.teacher.clone(), &self.student.valid(), stats.momentum)?;
        self.centre.update(t_logits);
        Ok(stats)
    }
}

/// Runs DINO / LAFS pretraining, optionally with step-exact checkpoints in a run folder.
#[derive(Debug)]
pub struct Pretrainer<B: AutodiffBackend> {
    config: PretrainConfig,
    builder: ViewBuilder,
    device: B::Device,
    run_dir: Option<PathBuf>,
    progress: bool,
    stop_after: Option<u64>,
}

/// The loop's position and what the current epoch has measured so far, saved in every
/// checkpoint beside the session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LoopState {
    /// Epoch in progress (0-based).
    epoch: usize,
    /// Steps done inside it.
    step_in_epoch: usize,
    /// Sums over the epoch's steps: loss, teacher entropy, KL, std ratio, marginal entropy.
    sums: [f64; 5],
    /// The epoch's last step.
    last: Option<StepStats>,
    /// Seconds spent on the epoch so far.
    seconds: f64,
    /// Finished epochs.
    history: Vec<EpochRow>,
    /// The `on_epoch` callback asked to stop.
    stopped: bool,
    /// Fingerprint of the faces, so a checkpoint is never resumed on other data.
    fingerprint: String,
}

/// File names inside a checkpoint folder.
mod checkpoint_files {
    pub const STUDENT: &str = "student.bin";
    pub const TEACHER: &str = "teacher.bin";
    pub const OPTIM: &str = "optim.bin";
    pub const SESSION: &str = "session.json";
    pub const STATE: &str = "state.json";
}

/// What a session saves beside its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SessionState {
    step: u64,
    centre: Vec<f32>,
}

impl<B: AutodiffBackend> Session<B> {
    /// Writes the session into the folder `dir`: student, EMA teacher, optimizer state, centre
    /// and step count.
    ///
    /// # Errors
    /// I/O failure.
    pub fn save(&self, dir: &Path) -> Result<()> {
        use checkpoint_files::*;
        face_nets::record::save_module(&self.student, &dir.join(STUDENT))?;
        face_nets::record::save_module(&self.teacher, &dir.join(TEACHER))?;
        face_nets::record::write_record::<B, _>(self.optim.to_record(), &dir.join(OPTIM))?;
        let state = SessionState {
            step: self.step,
            centre: face_nets::to_f32_vec(self.centre.value())?,
        };
        Ok(face_io::write_json(&dir.join(SESSION), &state)?)
    }

    /// Restores a session written by [`Session::save`] into this one (same configuration).
    ///
    /// # Errors
    /// A missing or corrupt file, or weights of another architecture.
    pub fn restore(&mut self, dir: &Path) -> Result<()> {
        use checkpoint_files::*;
        let d = &self.device;
        self.student = face_nets::record::load_module(self.student.clone(), &dir.join(STUDENT), d)?;
        self.teacher = face_nets::record::load_module(self.teacher.clone(), &dir.join(TEACHER), d)?;
        let optim = face_nets::record::read_record::<B, _>(&dir.join(OPTIM), d)?;
        self.optim = self.optim.clone().load_record(optim);
        let state: SessionState = face_io::read_json(&dir.join(SESSION))?;
        let k = state.centre.len();
        if k != self.config.head.out_dim {
            return Err(SslError::Model {
                path: dir.join(SESSION),
                message: format!(
                    "a centre of {k} values for {} prototypes",
                    self.config.head.out_dim
                ),
            });
        }
        self.centre.set(Tensor::from_data(
            burn::tensor::TensorData::new(state.centre, [1, k]),
            d,
        ));
        self.step = state.step;
        Ok(())
    }
}

/// The order of the faces in `epoch`: the run's order generator shuffled once per epoch from
/// the first, so a resumed run replays exactly the order an uninterrupted one drew.
fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = DataRng::seed_from_u64(seed ^ 0x5EED);
    for _ in 0..=epoch {
        order.shuffle(&mut rng);
    }
    order
}

/// Fingerprint of the faces: their count, sizes, landmarks and a sample of their pixels.
fn fingerprint(faces: &[Face]) -> String {
    let mut f = face_io::Fingerprint::new();
    for face in faces {
        f.write(&face.image.width().to_le_bytes())
            .write(&face.image.height().to_le_bytes());
        for p in face.landmarks.iter().flatten() {
            f.write(&p.to_le_bytes());
        }
        let raw = face.image.as_raw();
        let stride = (raw.len() / 4096).max(1);
        let sample: Vec<u8> = raw.iter().step_by(stride).copied().collect();
        f.write(&sample);
    }
    format!("{}-{}", f.hex(), faces.len())
}

impl<B: AutodiffBackend> Pretrainer<B> {
    /// A trainer for `config` on `device`.
    ///
    /// # Errors
    /// An invalid configuration.
    pub fn new(config: PretrainConfig, device: B::Device) -> Result<Self> {
        config.validate()?;
        let builder = ViewBuilder::new(config.views.clone())?;
        Ok(Self {
            config,
            builder,
            device,
            run_dir: None,
            progress: false,
            stop_after: None,
        })
    }

    /// Keeps step-exact checkpoints in `dir/checkpoints` (every `checkpoint.every` steps and at
    /// every epoch end) and resumes from the newest one when [`Pretrainer::fit`] finds one. The
    /// folder's `config.json` must then hold the same configuration.
    pub fn with_run_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.run_dir = Some(dir.into());
        self
    }

    /// Shows a progress bar (steps, ETA, loss) on stderr.
    pub fn with_progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// Stops (with a checkpoint, when there is a run folder) once `steps` optimizer steps are
    /// done in total — a time-sliced or pre-empted job; the next [`Pretrainer::fit`] on the same
    /// folder continues exactly there.
    pub fn with_stop_after(mut self, steps: Option<u64>) -> Self {
        self.stop_after = steps;
        self
    }

    /// The view builder (also used to embed faces after pretraining).
    pub fn views(&self) -> &ViewBuilder {
        &self.builder
    }

    /// Optimizer steps per epoch for `n` images (whole batches; one short batch when `n` is
    /// below the batch size).
    pub fn steps_per_epoch(&self, n: usize) -> usize {
        (n / self.config.optim.batch_size).max(1)
    }

    /// The views of `faces[indices]` for step `step` of `epoch`, built in parallel; each image's
    /// augmentation is a function of (seed, epoch, step, image), so runs are reproducible.
    ///
    /// # Errors
    /// Degenerate landmarks.
    pub fn batch_views(
        &self,
        faces: &[Face],
        indices: &[usize],
        epoch: usize,
        step: u64,
    ) -> Result<Vec<FaceViews>> {
        indices
            .par_iter()
            .map(|&i| {
                self.builder
                    .views(&faces[i], &mut view_rng(self.config.seed, epoch, step, i))
            })
            .collect()
    }

    fn checkpoints(&self) -> Option<face_io::CheckpointDir> {
        self.run_dir
            .as_ref()
            .map(|d| face_io::CheckpointDir::new(d.join("checkpoints"), self.config.checkpoint.keep))
    }

    /// The state to start from: the newest checkpoint of the run folder (restored into
    /// `session`), or a fresh one.
    fn start(&self, session: &mut Session<B>, faces: &[Face]) -> Result<(LoopState, Option<PathBuf>)> {
        let fingerprint = fingerprint(faces);
        let fresh = LoopState {
            epoch: 0,
            step_in_epoch: 0,
            sums: [0.0; 5],
            last: None,
            seconds: 0.0,
            history: Vec::new(),
            stopped: false,
            fingerprint: fingerprint.clone(),
        };
        let (Some(dir), Some(checkpoints)) = (&self.run_dir, self.checkpoints()) else {
            return Ok((fresh, None));
        };
        let config_path = dir.join(files::CONFIG);
        let Some((_, latest)) = checkpoints.latest()? else {
            std::fs::create_dir_all(dir).map_err(|e| SslError::io(dir, e))?;
            self.config.write(&config_path)?;
            return Ok((fresh, None));
        };
        if PretrainConfig::read(&config_path)? != self.config {
            return Err(SslError::Model {
                path: config_path,
                message: "the run folder holds a run with another configuration".into(),
            });
        }
        let state_path = latest.join(checkpoint_files::STATE);
        let state: LoopState = face_io::read_json(&state_path)?;
        if state.fingerprint != fingerprint {
            return Err(SslError::Model {
                path: state_path,
                message: format!(
                    "the checkpoint was trained on other faces ({} vs {fingerprint})",
                    state.fingerprint
                ),
            });
        }
        session.restore(&latest)?;
        Ok((state, Some(latest)))
    }

    fn save_checkpoint(&self, session: &Session<B>, state: &LoopState) -> Result<()> {
        if let Some(checkpoints) = self.checkpoints() {
            let staging = checkpoints.staging()?;
            session.save(&staging)?;
            face_io::write_json(&staging.join(checkpoint_files::STATE), state)?;
            checkpoints.commit(session.steps())?;
        }
        Ok(())
    }

    fn progress_bar(&self, total: u64, at: u64) -> Option<indicatif::ProgressBar> {
        self.progress.then(|| {
            let pb = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "pretrain {bar:30} {pos}/{len} steps {elapsed_precise} ETA {eta} {msg}",
            ) {
                pb.set_style(style);
            }
            pb.set_position(at);
            pb
        })
    }

    /// The epoch's row from its sums.
    fn epoch_row(&self, state: &LoopState, steps: u64, batch: usize, per_epoch: usize) -> Result<EpochRow> {
        let c = &self.config;
        let n = per_epoch as f64;
        let s = &state.sums;
        let monitors = Monitors {
            loss: s[0] / n,
            teacher_entropy: s[1] / n,
            marginal_entropy: s[4] / n,
            kl: s[2] / n,
            std_ratio: s[3] / n,
            max_entropy: (c.head.out_dim as f64).ln(),
        };
        let last = state
            .last
            .ok_or_else(|| SslError::Data("an epoch without steps".into()))?;
        Ok(EpochRow {
            epoch: state.epoch + 1,
            steps,
            lr: last.lr,
            weight_decay: last.weight_decay,
            momentum: last.momentum,
            teacher_temp: last.teacher_temp,
            monitors,
            collapse: monitors.collapse(&c.monitor),
            seconds: state.seconds,
            images_per_second: (per_epoch * batch) as f64 / state.seconds.max(1e-9),
        })
    }

    /// Pretrains on `faces`, calling `on_epoch` after each epoch (print, log, stop early by
    /// returning `false`). The row's `collapse` is the warning of the monitors. With a run
    /// folder, the run resumes from its newest checkpoint.
    ///
    /// # Errors
    /// Fewer than two faces, degenerate landmarks, a non-finite loss, or a run folder holding
    /// another configuration or other faces.
    pub fn fit(
        &self,
        faces: &[Face],
        mut on_epoch: impl FnMut(&EpochRow) -> bool,
    ) -> Result<Pretrained<B::InnerBackend>> {
        let c = &self.config;
        if faces.len() < 2 {
            return Err(SslError::Data(format!(
                "pretraining needs at least 2 faces, got {}",
                faces.len()
            )));
        }
        let per_epoch = self.steps_per_epoch(faces.len());
        let batch = c.optim.batch_size.min(faces.len());
        let mut session = Session::<B>::new(c, &self.device, batch, per_epoch)?;
        let (mut state, resumed_from) = self.start(&mut session, faces)?;
        let total = (per_epoch * c.optim.epochs) as u64;
        let bar = self.progress_bar(total, session.steps());
        let mut saved_at = resumed_from.as_ref().map(|_| session.steps());
        'epochs: while state.epoch < c.optim.epochs && !state.stopped {
            let order = epoch_order(faces.len(), c.seed, state.epoch);
            let chunks: Vec<&[usize]> = order.chunks(batch).take(per_epoch).collect();
            while state.step_in_epoch < per_epoch {
                if self.stop_after.is_some_and(|s| session.steps() >= s) {
                    break 'epochs;
                }
                let started = Instant::now();
                let views =
                    self.batch_views(faces, chunks[state.step_in_epoch], state.epoch, session.steps())?;
                let s = session.step(&views, state.epoch)?;
                for (acc, v) in state.sums.iter_mut().zip([
                    s.loss,
                    s.teacher_entropy,
                    s.loss - s.teacher_entropy,
                    s.std_ratio,
                    s.marginal_entropy,
                ]) {
                    *acc += v;
                }
                state.last = Some(s);
                state.step_in_epoch += 1;
                state.seconds += started.elapsed().as_secs_f64();
                if let Some(pb) = &bar {
                    pb.set_position(session.steps());
                    pb.set_message(format!("epoch {} loss {:.4}", state.epoch + 1, s.loss));
                }
                if session.steps().is_multiple_of(c.checkpoint.every) && state.step_in_epoch < per_epoch {
                    self.save_checkpoint(&session, &state)?;
                    saved_at = Some(session.steps());
                }
            }
            let row = self.epoch_row(&state, session.steps(), batch, per_epoch)?;
            let go_on = match &bar {
                Some(pb) => pb.suspend(|| on_epoch(&row)),
                None => on_epoch(&row),
            };
            state.history.push(row);
            state.epoch += 1;
            state.step_in_epoch = 0;
            state.sums = [0.0; 5];
            state.last = None;
            state.seconds = 0.0;
            state.stopped = !go_on;
            self.save_checkpoint(&session, &state)?;
            saved_at = Some(session.steps());
        }
        // A stop mid-epoch is saved too, so the next call resumes exactly there.
        if saved_at != Some(session.steps()) {
            self.save_checkpoint(&session, &state)?;
        }
        if let Some(pb) = bar {
            pb.finish_and_clear();
        }
        Ok(Pretrained {
            config: c.clone(),
            steps: session.steps(),
            resumed_from,
            teacher: session.into_teacher(),
            history: state.history,
        })
    }
}

/// File names inside a run directory.
pub mod files {
    /// The configuration.
    pub const CONFIG: &str = "config.json";
    /// The teacher's backbone weights.
    pub const BACKBONE: &str = face_nets::model::files::BACKBONE_WEIGHTS;
    /// The backbone's face-nets configuration (input filled from the views).
    pub const BACKBONE_CONFIG: &str = face_nets::model::files::BACKBONE_CONFIG;
    /// The teacher's head weights (to continue pretraining or inspect prototypes).
    pub const HEAD: &str = "head.bin";
    /// One JSON object per epoch.
    pub const HISTORY: &str = "history.json";
    /// The monitor curves.
    pub const MONITORS_SVG: &str = "monitors.svg";
}

impl<B: Backend> Pretrained<B> {
    /// Writes the run to `dir`: `config.json`, `backbone.bin` with `backbone.json` (a face-nets
    /// backbone folder, which `facekit distill --init` reads), `head.bin`, `history.json` and
    /// `monitors.svg` (each atomically; the config last, so a directory with a config is whole).
    ///
    /// # Errors
    /// I/O failure.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| SslError::io(dir, e))?;
        face_nets::record::save_module(&self.teacher.backbone, &dir.join(files::BACKBONE))?;
        let backbone = face_nets::BackboneConfig::TokenVit(self.config.backbone_config()?);
        face_io::write_config(&dir.join(files::BACKBONE_CONFIG), &backbone)?;
        face_nets::record::save_module(&self.teacher.head, &dir.join(files::HEAD))?;
        face_io::write_json(&dir.join(files::HISTORY), &self.history)?;
        write_monitor_svg(&dir.join(files::MONITORS_SVG), &self.history)?;
        self.config.write(&dir.join(files::CONFIG))
    }
}

/// Loads the pretrained backbone of a run directory written by [`Pretrained::save`]; its
/// backbone input (how an aligned face becomes tokens) is filled from the views, so it can
/// serve as a face-nets [`face_nets::Backbone`].
///
/// # Errors
/// A missing or corrupt file, or weights that do not fit the saved configuration.
pub fn load_backbone<B: Backend>(dir: &Path, device: &B::Device) -> Result<(PretrainConfig, TokenVit<B>)> {
    let config = PretrainConfig::read(&dir.join(files::CONFIG))?;
    config.validate()?;
    let model = config.backbone_config()?.init::<B>(device);
    let model = face_nets::record::load_module(model, &dir.join(files::BACKBONE), device)?;
    Ok((config, model))
}

/// Draws loss, teacher entropy (per image and of the batch mean), KL(teacher‖student) and `std·√d` against the epoch.
///
/// # Errors
/// No epoch, or a drawing / I/O failure.
pub fn write_monitor_svg(path: &Path, history: &[EpochRow]) -> Result<()> {
    let series = |f: fn(&Monitors) -> f64| -> Vec<(f64, f64)> {
        history.iter().map(|r| (r.epoch as f64, f(&r.monitors))).collect()
    };
    let (loss, entropy, marginal, kl, std) = (
        series(|m| m.loss),
        series(|m| m.teacher_entropy),
        series(|m| m.marginal_entropy),
        series(|m| m.kl),
        series(|m| m.std_ratio),
    );
    face_metrics::write_curve_svg(
        path,
        "Self-distillation monitors",
        ("epoch", "nats / ratio"),
        &[
            ("DINO loss", &loss),
            ("teacher entropy", &entropy),
            ("marginal entropy", &marginal),
            ("KL(teacher ‖ student)", &kl),
            ("std·√d of embeddings", &std),
        ],
        false,
    )?;
    Ok(())
}

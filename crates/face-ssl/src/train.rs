//! The pretraining loop: student and EMA teacher (backbone + DINO head), multi-crop views,
//! centring and sharpening, AdamW with scheduled weight decay, per-parameter gradient clipping,
//! the head's last layer frozen in the first epoch(s), and per-epoch collapse monitors.

use std::path::Path;
use std::time::Instant;

use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{Adam, AdamConfig, GradientsParams, Optimizer};
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
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
use crate::vit::{TokenBatch, TokenVit};
use face_data::augment::DataRng;

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
        let backbone = config.vit.init(device)?;
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
    /// One row per epoch.
    pub history: Vec<EpochRow>,
}

/// Collects every float parameter, flattened, in visiting order.
struct Collect<B: Backend> {
    out: Vec<Tensor<B, 1>>,
}

impl<B: Backend> ModuleVisitor<B> for Collect<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        let n = t.shape().num_elements();
        self.out.push(t.reshape([n]));
    }
}

/// `teacher ← m·teacher + (1 − m)·student`, parameter by parameter in visiting order.
struct Ema<B: Backend> {
    student: std::vec::IntoIter<Tensor<B, 1>>,
    momentum: f64,
    missing: usize,
}

impl<B: Backend> ModuleMapper<B> for Ema<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, t, mapper) = param.consume();
        let t = match self.student.next() {
            Some(s) if s.dims()[0] == t.shape().num_elements() => {
                let s: Tensor<B, D> = s.reshape(t.shape());
                t.mul_scalar(self.momentum) + s.mul_scalar(1.0 - self.momentum)
            }
            _ => {
                self.missing += 1;
                t
            }
        };
        Param::from_mapped_value(id, t, mapper)
    }
}

/// Decoupled weight decay `θ ← θ·(1 − lr·wd)` on parameters of two or more dimensions (DINO
/// leaves biases and norm scales undecayed).
struct Decay {
    factor: f64,
}

impl<B: AutodiffBackend> ModuleMapper<B> for Decay {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        if D < 2 || self.factor == 1.0 {
            return param;
        }
        let (id, t, mapper) = param.consume();
        let t = Tensor::<B, D>::from_inner(t.inner().mul_scalar(self.factor)).require_grad();
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

/// Runs DINO / LAFS pretraining.
#[derive(Debug)]
pub struct Pretrainer<B: AutodiffBackend> {
    config: PretrainConfig,
    builder: ViewBuilder,
    device: B::Device,
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
}

/// The state of a run between steps: student, EMA teacher, optimizer, centre and schedules.
/// [`Pretrainer::fit`] drives it over epochs; a caller with its own data loop can drive
/// [`Session::step`] directly.
pub struct Session<B: AutodiffBackend> {
    config: PretrainConfig,
    device: B::Device,
    student: DinoModel<B>,
    teacher: DinoModel<B::InnerBackend>,
    optim: OptimizerAdaptor<Adam, DinoModel<B>, B>,
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
        let c = config;
        B::seed(device, c.seed);
        let student = DinoModel::<B>::new(c, device)?;
        let teacher = student.valid();
        let optim = AdamConfig::new()
            .with_epsilon(1e-8)
            .with_grad_clipping(
                (c.optim.clip_grad > 0.0).then_some(GradientClippingConfig::Norm(c.optim.clip_grad as f32)),
            )
            .init::<B, DinoModel<B>>();
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
        };
        let mut grads = GradientsParams::from_grads(loss.backward(), &self.student);
        if epoch < c.dino.freeze_last_layer {
            grads.remove::<B::InnerBackend, 2>(self.student.head.last_layer_id());
        }
        let student = self.student.clone().map(&mut Decay {
            factor: 1.0 - stats.lr * stats.weight_decay,
        });
        self.student = self.optim.step(stats.lr, student, grads);
        self.teacher = ema_update(self.teacher.clone(), &self.student.valid(), stats.momentum)?;
        self.centre.update(t_logits);
        Ok(stats)
    }
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
        })
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

    /// Pretrains on `faces`, calling `on_epoch` after each epoch (print, log, stop early by
    /// returning `false`). The row's `collapse` is the warning of the monitors.
    ///
    /// # Errors
    /// Fewer than two faces, degenerate landmarks, or a non-finite loss.
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
        let k = c.head.out_dim as f64;
        let mut order: Vec<usize> = (0..faces.len()).collect();
        let mut order_rng = DataRng::seed_from_u64(c.seed ^ 0x5EED);
        let mut history = Vec::with_capacity(c.optim.epochs);

        for epoch in 0..c.optim.epochs {
            let started = Instant::now();
            order.shuffle(&mut order_rng);
            let mut sums = [0.0f64; 5];
            let mut last = None;
            for chunk in order.chunks(batch).take(per_epoch) {
                let views = self.batch_views(faces, chunk, epoch, session.steps())?;
                let s = session.step(&views, epoch)?;
                for (acc, v) in sums.iter_mut().zip([
                    s.loss,
                    s.teacher_entropy,
                    s.loss - s.teacher_entropy,
                    s.std_ratio,
                    s.marginal_entropy,
                ]) {
                    *acc += v;
                }
                last = Some(s);
            }
            let steps = per_epoch as f64;
            let seconds = started.elapsed().as_secs_f64();
            let monitors = Monitors {
                loss: sums[0] / steps,
                teacher_entropy: sums[1] / steps,
                marginal_entropy: sums[4] / steps,
                kl: sums[2] / steps,
                std_ratio: sums[3] / steps,
                max_entropy: k.ln(),
            };
            let last = last.ok_or_else(|| SslError::Data("an epoch without steps".into()))?;
            let row = EpochRow {
                epoch: epoch + 1,
                steps: session.steps(),
                lr: last.lr,
                weight_decay: last.weight_decay,
                momentum: last.momentum,
                teacher_temp: teacher_temperature(
                    c.dino.warmup_teacher_temp,
                    c.dino.teacher_temp,
                    c.dino.warmup_teacher_temp_epochs,
                    epoch,
                ),
                monitors,
                collapse: monitors.collapse(&c.monitor),
                seconds,
                images_per_second: (per_epoch * batch) as f64 / seconds.max(1e-9),
            };
            let go_on = on_epoch(&row);
            history.push(row);
            if !go_on {
                break;
            }
        }
        Ok(Pretrained {
            config: c.clone(),
            teacher: session.into_teacher(),
            history,
        })
    }
}

fn recorder() -> BinBytesRecorder<FullPrecisionSettings> {
    BinBytesRecorder::default()
}

/// File names inside a run directory.
pub mod files {
    /// The configuration.
    pub const CONFIG: &str = "config.json";
    /// The teacher's backbone weights.
    pub const BACKBONE: &str = "backbone.bin";
    /// The teacher's head weights (to continue pretraining or inspect prototypes).
    pub const HEAD: &str = "head.bin";
    /// One JSON object per epoch.
    pub const HISTORY: &str = "history.json";
    /// The monitor curves.
    pub const MONITORS_SVG: &str = "monitors.svg";
}

impl<B: Backend> Pretrained<B> {
    /// Writes the run to `dir`: `config.json`, `backbone.bin`, `head.bin`, `history.json` and
    /// `monitors.svg` (each atomically; the config last, so a directory with a config is whole).
    ///
    /// # Errors
    /// I/O failure.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| SslError::io(dir, e))?;
        let save = |name: &str, record_bytes: std::result::Result<Vec<u8>, String>| -> Result<()> {
            let path = dir.join(name);
            let bytes = record_bytes.map_err(|message| SslError::Model {
                path: path.clone(),
                message,
            })?;
            face_data::write_atomic(&path, &bytes).map_err(SslError::from)
        };
        save(
            files::BACKBONE,
            Recorder::<B>::record(&recorder(), self.teacher.backbone.clone().into_record(), ())
                .map_err(|e| e.to_string()),
        )?;
        save(
            files::HEAD,
            Recorder::<B>::record(&recorder(), self.teacher.head.clone().into_record(), ())
                .map_err(|e| e.to_string()),
        )?;
        let history = serde_json::to_vec_pretty(&self.history).map_err(|e| SslError::Data(e.to_string()))?;
        face_data::write_atomic(&dir.join(files::HISTORY), &history)?;
        write_monitor_svg(&dir.join(files::MONITORS_SVG), &self.history)?;
        self.config.write(&dir.join(files::CONFIG))
    }
}

/// Loads the pretrained backbone of a run directory written by [`Pretrained::save`].
///
/// # Errors
/// A missing or corrupt file, or weights that do not fit the saved configuration.
pub fn load_backbone<B: Backend>(dir: &Path, device: &B::Device) -> Result<(PretrainConfig, TokenVit<B>)> {
    let config = PretrainConfig::read(&dir.join(files::CONFIG))?;
    let path = dir.join(files::BACKBONE);
    let bytes = std::fs::read(&path).map_err(|e| SslError::io(&path, e))?;
    let model = config.vit.init::<B>(device)?;
    // Burn 0.21's byte recorder panics (instead of failing) on truncated input.
    let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Recorder::<B>::load(&recorder(), bytes, device).map(|record| model.load_record(record))
    }));
    let bad = |message: String| SslError::Model {
        path: path.clone(),
        message,
    };
    match loaded {
        Ok(Ok(model)) => Ok((config, model)),
        Ok(Err(e)) => Err(bad(format!("cannot read: {e}"))),
        Err(_) => Err(bad("corrupt or truncated weights".into())),
    }
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

//! The training loop as a step-wise session: AdamW with warm-up and cosine decay, gradient
//! accumulation, data-parallel steps over several devices, step-exact checkpoints and resume,
//! validation with irAUC and early stopping, metrics files and curves.
//!
//! [`Trainer::open`] gives a [`Session`] (fresh, or resumed from the run folder's newest
//! checkpoint); [`Session::step`] does one optimizer step, [`Session::end_epoch`] validates and
//! checkpoints, [`Session::finish`] writes the model. [`Trainer::fit`] drives them.
//!
//! It is a plain loop rather than burn-train's `Learner`: burn-train 0.21 checkpoints at epoch
//! ends only and does not restore its data loaders' position, so a run killed mid-epoch cannot
//! resume without repeating or skipping steps; here the data order, the augmentation and the
//! learning rate are pure functions of `(seed, epoch, step)`, so a resumed run is bit-identical to
//! an uninterrupted one. Multi-device steps use Burn's own machinery (`Module::fork`,
//! `GradientsAccumulator`, `Optimizer::step_multi`, which reduces the per-device gradients).
//! Across processes ([`Trainer::with_peers`]) each peer computes its share of the batch and the
//! gradients are summed by burn-collective before the same AdamW step on every peer.
//! Checkpoint folders are face-io's, weights go through face-nets' records — the same
//! machinery face-ssl's pretrainer uses.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{
    AdamW, AdamWConfig, GradientsAccumulator, GradientsParams, MultiGradientsParams, Optimizer,
};
use burn::prelude::DeviceOps;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use face_data::augment::Compose;
use face_data::Normalize;
use face_io::CheckpointDir;
use face_nets::{FaceModel, FaceModelConfig};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::config::{AgeLoss, DistillConfig};
use crate::data::{augmentation, DistillBatch, FaceSet, HostBatch, TrainFaces};
use crate::error::{DistillError, Result};
use crate::eval::{evaluate, EvalRow};
use crate::losses;
use crate::peers::{Agreement, Peers};

/// The learning rate at optimizer step `step` (0-based) of `total`: linear warm-up from
/// `lr/warmup` to `lr` over `warmup` steps, then a cosine from `lr` to `lr·min_ratio` at the
/// last step.
pub fn learning_rate(lr: f64, warmup: u64, min_ratio: f64, step: u64, total: u64) -> f64 {
    if step < warmup {
        return lr * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1);
    let t = ((step - warmup) as f64 / (span.max(2) - 1) as f64).min(1.0);
    let floor = lr * min_ratio;
    floor + (lr - floor) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
}

/// One optimizer step as logged in `train.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainRow {
    /// Optimizer steps done (1-based).
    pub step: u64,
    /// Epoch (0-based).
    pub epoch: u64,
    /// Faces in the step (all micro-batches and devices).
    pub faces: u64,
    /// Learning rate used.
    pub lr: f64,
    /// Weighted total loss.
    pub loss: f64,
    /// `1 − cos` identity term (unweighted).
    pub identity: f64,
    /// Relational KD term (unweighted; 0 when off).
    pub relational: f64,
    /// Age term (unweighted).
    pub age: f64,
    /// Gender term (unweighted).
    pub gender: f64,
    /// Seconds spent building batches in this step.
    pub data_seconds: f64,
    /// Seconds of forward, backward and optimizer update in this step.
    pub compute_seconds: f64,
}

/// The loop's position and history, saved in every checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimizer steps done.
    pub step: u64,
    /// Current epoch (0-based).
    pub epoch: u64,
    /// Optimizer steps done inside the current epoch.
    pub step_in_epoch: u64,
    /// Best validation irAUC so far (lower is better).
    pub best_ir_auc: Option<f64>,
    /// Epoch (1-based count of finished epochs) of the best irAUC.
    pub best_epoch: Option<u64>,
    /// Finished epochs without an improvement.
    pub bad_epochs: u64,
    /// Set when early stopping ended the run.
    pub stopped_early: bool,
    /// Per-step log.
    pub train: Vec<TrainRow>,
    /// Per-epoch validation (row 0: the untrained student).
    pub val: Vec<EvalRow>,
    /// Fingerprint of the training ids, so a checkpoint is never resumed on other data.
    pub data_fingerprint: String,
}

/// What [`Trainer::fit`] returns.
#[derive(Debug)]
pub struct FitOutcome<B: AutodiffBackend> {
    /// The trained student (on the first device).
    pub student: FaceModel<B>,
    /// Its configuration (what `model.json` in the run folder holds).
    pub model_config: FaceModelConfig,
    /// The loop's final state and history.
    pub state: TrainState,
    /// Steps done by this call (after a resume, fewer than `state.step`).
    pub steps_this_call: u64,
    /// The checkpoint this call resumed from.
    pub resumed_from: Option<PathBuf>,
}

/// Configured trainer writing into one run directory.
#[derive(Debug, Clone)]
pub struct Trainer<B: AutodiffBackend> {
    config: DistillConfig,
    devices: Vec<B::Device>,
    run_dir: PathBuf,
    progress: bool,
    stop_after: Option<u64>,
    /// The other processes of a multi-process run.
    peers: Option<std::sync::Arc<Peers<B::InnerBackend>>>,
}

/// The order of the faces in an epoch, as the seed gives it.
fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut rows: Vec<usize> = (0..n).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(crate::data::sample_seed(seed, epoch, u64::MAX));
    rows.shuffle(&mut rng);
    rows
}

/// The loss terms of one (micro-)batch: `(weighted total, [identity, relational, age, gender])`.
pub fn distill_loss<B: Backend>(
    config: &DistillConfig,
    student: &FaceModel<B>,
    batch: &DistillBatch<B>,
    bins: Tensor<B, 1>,
) -> (Tensor<B, 1>, [Tensor<B, 1>; 4]) {
    let out = student.forward(batch.images.clone());
    let (wi, wr, wa, wg) = config.loss.effective_weights();
    let device = batch.images.device();
    let zero = || Tensor::<B, 1>::zeros([1], &device);
    let id = if wi > 0.0 || wr == 0.0 {
        losses::identity_cosine(out.embedding.clone(), batch.embeddings.clone())
    } else {
        zero()
    };
    let rel = if wr > 0.0 {
        losses::relational(out.embedding.clone(), batch.embeddings.clone())
    } else {
        zero()
    };
    let age = match config.loss.age_loss {
        AgeLoss::Kl => losses::age_kl(out.age_logits.clone(), batch.age_probs.clone()),
        AgeLoss::L1 => losses::age_l1(out.age_logits.clone(), batch.expected_age.clone(), bins),
    };
    let gender = losses::gender_bce(out.gender_logit.clone(), batch.p_male.clone());
    // Terms with weight 0 stay in the log but out of the graph's total.
    let mut total = zero();
    for (w, t) in [(wi, &id), (wr, &rel), (wa, &age), (wg, &gender)] {
        if w > 0.0 {
            total = total + t.clone() * w;
        }
    }
    (total, [id, rel, age, gender])
}

/// Forward and backward of one device's share of a micro-batch on a fork of `model`; the
/// gradients (of the loss scaled by the share) go into `acc`. Returns the weighted
/// `[total, identity, relational, age, gender]`.
fn device_step<B: AutodiffBackend>(
    config: &DistillConfig,
    model: &FaceModel<B>,
    device: &B::Device,
    batch: DistillBatch<B>,
    bins: Tensor<B, 1>,
    share: f64,
    acc: &mut GradientsAccumulator<FaceModel<B>>,
) -> Result<[f64; 5]> {
    let m = model.clone().fork(device);
    let (loss, terms) = distill_loss(config, &m, &batch, bins);
    let grads = GradientsParams::from_grads((loss.clone() * share).backward(), &m);
    acc.accumulate(&m, grads);
    let mut out = [face_nets::to_f64_scalar(loss)? * share, 0.0, 0.0, 0.0, 0.0];
    for (o, t) in out[1..].iter_mut().zip(terms) {
        *o = face_nets::to_f64_scalar(t)? * share;
    }
    Ok(out)
}

/// Runs one piece of work per device, each on its own thread, and collects the results in
/// device order. A panic on a thread becomes [`DistillError::DeviceStep`] naming the device
/// and `step`, never a made-up value.
fn on_devices<D: std::fmt::Debug, T: Send>(
    devices: &[D],
    step: u64,
    work: Vec<impl FnOnce() -> Result<T> + Send>,
) -> Result<Vec<T>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = work.into_iter().map(|w| scope.spawn(w)).collect();
        handles
            .into_iter()
            .zip(devices)
            .enumerate()
            .map(|(i, (h, device))| match h.join() {
                Ok(result) => result,
                Err(payload) => Err(DistillError::DeviceStep {
                    device: format!("{i} ({device:?})"),
                    step,
                    message: panic_text(payload.as_ref()),
                }),
            })
            .collect()
    })
}

/// Folds the BatchNorm running statistics that the devices' threads left into the model's own.
///
/// Burn keeps a running statistic per thread and averages the threads' values only when the
/// module is synced (its record taken); a thread that reads it first sees the last synced value.
/// Each multi-device micro-batch computes on new threads, so without this every step would start
/// from the statistics before training and the threads' values would pile up unsynced. After
/// it, the statistics are the mean of the devices' updates of the previous value, and the next
/// micro-batch starts from them. (With more than two devices Burn adds them in an unspecified
/// order: the last bit may differ between runs.)
fn sync_running_statistics<B: AutodiffBackend>(model: &FaceModel<B>) {
    // A clone shares the running statistics; taking its record syncs them.
    let _ = model.clone().into_record();
}

/// A micro-batch read ahead: its `(step in epoch, micro-batch)` and each device's share.
type ReadAhead = ((u64, usize), Result<Vec<HostBatch>>);

/// Reads each device's share of a micro-batch: its faces (augmented by their epoch positions)
/// and targets.
fn read_micro_batch(
    train: &dyn TrainFaces,
    pipe: Option<&Compose>,
    seed: u64,
    epoch: u64,
    plan: &[(Vec<usize>, u64)],
    normalize: &Normalize,
) -> Result<Vec<HostBatch>> {
    plan.iter()
        .map(|(rows, first)| HostBatch::new(train, rows, pipe.map(|p| (p, seed, epoch, *first)), normalize))
        .collect()
}

/// The text of a panic payload.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

impl<B: AutodiffBackend> Trainer<B> {
    /// A trainer for `config` on `devices` (data-parallel when more than one) writing into
    /// `run_dir`.
    ///
    /// # Errors
    /// An invalid config or no device.
    pub fn new(config: DistillConfig, devices: Vec<B::Device>, run_dir: impl Into<PathBuf>) -> Result<Self> {
        config.validate()?;
        if devices.is_empty() {
            return Err(DistillError::Device("no device given".into()));
        }
        if devices.len() > config.data.batch {
            return Err(DistillError::config(
                "data.batch",
                format!("{} devices need a batch of at least as many faces", devices.len()),
            ));
        }
        Ok(Self {
            config,
            devices,
            run_dir: run_dir.into(),
            progress: std::io::stderr().is_terminal(),
            stop_after: None,
            peers: None,
        })
    }

    /// Shows (or hides) the live progress bar; plain log lines are printed when hidden.
    pub fn with_progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// Stops (with a checkpoint) once `steps` optimizer steps are done in total, without
    /// changing the learning-rate schedule — a time-sliced or pre-empted job; the next
    /// [`Trainer::fit`] on the same run directory continues exactly there. (`train.max_steps`, in
    /// contrast, shortens the run and its schedule.)
    pub fn with_stop_after(mut self, steps: Option<u64>) -> Self {
        self.stop_after = steps;
        self
    }

    /// Trains together with other processes (see [`crate::peers`]): the batch of every step is
    /// split across the peers, this one computing its share on its one device, and the
    /// gradients are summed across them before every peer takes the same optimizer step. Each
    /// peer writes its own run folder; they hold the same weights and checkpoints.
    ///
    /// # Errors
    /// More than one device in this process (one device per peer).
    pub fn with_peers(mut self, peers: Peers<B::InnerBackend>) -> Result<Self> {
        if self.devices.len() != 1 {
            return Err(DistillError::Peers {
                peer: peers.config().id,
                message: format!(
                    "{} devices in one peer: a multi-process run takes one device per process",
                    self.devices.len()
                ),
            });
        }
        self.peers = Some(std::sync::Arc::new(peers));
        Ok(self)
    }

    /// How many shares a micro-batch is split into: devices × peers.
    fn shares(&self) -> usize {
        self.devices.len() * self.peers.as_ref().map_or(1, |p| p.config().count as usize)
    }

    /// The run directory.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The configuration.
    pub fn config(&self) -> &DistillConfig {
        &self.config
    }

    fn checkpoints(&self) -> CheckpointDir {
        CheckpointDir::new(
            self.run_dir.join("checkpoints"),
            self.config.train.keep_checkpoints,
        )
    }

    /// Optimizer steps per epoch: whole micro-batches, grouped by `accumulate` (a set smaller
    /// than one batch is one batch).
    pub fn steps_per_epoch(&self, n: usize) -> u64 {
        let micro = (n / self.config.data.batch).max(1);
        ((micro / self.config.data.accumulate).max(1)) as u64
    }

    fn total_steps(&self, n: usize) -> u64 {
        let all = self.config.train.epochs * self.steps_per_epoch(n);
        self.config.train.max_steps.map_or(all, |m| m.min(all))
    }

    /// Trains `student` on `train`, validating on `val` at every epoch end (see [`Session`]).
    ///
    /// # Errors
    /// As [`Trainer::open`] and the session's steps.
    pub fn fit(
        &self,
        student: FaceModel<B>,
        train: &dyn TrainFaces,
        val: Option<&FaceSet>,
    ) -> Result<FitOutcome<B>> {
        let mut session = self.open(student, train, val)?;
        while !session.done() {
            if session.epoch_complete() {
                session.end_epoch()?;
            } else {
                session.step()?;
            }
        }
        session.finish()
    }

    /// Checks the data against the student and opens a session: resumed from the newest
    /// checkpoint of the run folder if there is one (the given student's weights are then
    /// replaced by the checkpoint's), fresh otherwise (validating the untrained student first).
    ///
    /// # Errors
    /// A checkpoint of another config or data, a student whose input or output sizes do not
    /// match the faces and targets, or I/O failure.
    pub fn open<'a>(
        &'a self,
        student: FaceModel<B>,
        train: &'a dyn TrainFaces,
        val: Option<&'a FaceSet>,
    ) -> Result<Session<'a, B>> {
        let c = &self.config;
        let dev0 = self.devices[0].clone();
        check_data(&student, train, val, &dev0)?;
        let model_config = c.model_config(train.dim(), train.age_bins());
        let optim = AdamWConfig::new()
            .with_beta_1(c.optim.betas.0 as f32)
            .with_beta_2(c.optim.betas.1 as f32)
            .with_epsilon(c.optim.epsilon as f32)
            .with_weight_decay(c.optim.weight_decay as f32)
            .with_grad_clipping(
                c.optim
                    .clip_grad_norm
                    .map(|n| GradientClippingConfig::Norm(n as f32)),
            )
            .init::<B, FaceModel<B>>();
        // Burn shares BatchNorm running statistics between clones of a module, so train a
        // copy of our own: a fresh model of the configured architecture with the given weights
        // (a caller's clones are then left untouched).
        let fresh = model_config.init::<B>(&dev0)?;
        if fresh.num_params() != student.num_params() {
            return Err(DistillError::config(
                "student.backbone",
                format!(
                    "the student passed in has {} parameters, the configured architecture {}",
                    student.num_params(),
                    fresh.num_params()
                ),
            ));
        }
        let model = fresh.load_record(student.into_record());
        let n = train.len();
        let bins = self
            .devices
            .iter()
            .map(|d| {
                Tensor::from_data(
                    TensorData::new(train.age_bins().to_vec(), [train.age_bins().len()]),
                    d,
                )
            })
            .collect();
        let mut session = Session {
            trainer: self,
            train,
            val,
            model,
            model_config,
            optim,
            state: TrainState {
                step: 0,
                epoch: 0,
                step_in_epoch: 0,
                best_ir_auc: None,
                best_epoch: None,
                bad_epochs: 0,
                stopped_early: false,
                train: Vec::new(),
                val: Vec::new(),
                data_fingerprint: train.fingerprint(),
            },
            per_epoch: self.steps_per_epoch(n),
            total: self.total_steps(n),
            batch: c.data.batch.min(n),
            pipe: augmentation(&c.data.augment, train.size()),
            bins,
            order: None,
            ahead: None,
            resumed_from: None,
            start_step: 0,
            saved_at: None,
            bar: None,
        };
        if session.batch < self.shares() {
            return Err(DistillError::config(
                "data.batch",
                format!(
                    "a batch of {} faces cannot be split into {} shares (devices × peers)",
                    session.batch,
                    self.shares()
                ),
            ));
        }
        session.resume_or_start()?;
        if let Some(peers) = &self.peers {
            peers.agree(&session.agreement()?)?;
        }
        session.bar = self.progress.then(|| {
            let pb = indicatif::ProgressBar::new(session.total);
            pb.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} steps {elapsed_precise} ETA {eta} {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            pb.set_position(session.state.step);
            pb
        });
        Ok(session)
    }
}

/// The training faces fit the student (input size, output sizes) and the validation faces fit
/// the training faces.
fn check_data<B: AutodiffBackend>(
    student: &FaceModel<B>,
    train: &dyn TrainFaces,
    val: Option<&FaceSet>,
    device: &B::Device,
) -> Result<()> {
    let (dim, bins) = (train.dim(), train.age_bins());
    if student.input_size() != train.size() as usize {
        return Err(DistillError::Data(format!(
            "the student takes {} px crops, the training faces are {} px",
            student.input_size(),
            train.size()
        )));
    }
    if let Some(v) = val {
        if v.size() != train.size() || v.targets().dim != dim || v.targets().age_bins != bins {
            return Err(DistillError::Data(
                "validation faces differ from the training faces in crop size or teacher outputs".into(),
            ));
        }
        if v.labels().is_none() {
            return Err(DistillError::Data("validation faces need identity labels".into()));
        }
    }
    // One clean crop through the student: its output sizes must match the teachers'.
    // (In inference mode: a training-mode forward would move the caller's BatchNorm statistics.)
    let probe = student.valid().forward(
        DistillBatch::<B::InnerBackend>::new(train, &[0], None, &Normalize::arcface(), device)?.images,
    );
    let (emb, age) = (probe.embedding.dims()[1], probe.age_logits.dims()[1]);
    if emb != dim || age != bins.len() {
        return Err(DistillError::Data(format!(
            "the student gives {emb}-d embeddings and {age} age bins, the teachers {dim} and {}",
            bins.len()
        )));
    }
    Ok(())
}

/// An open training run: the model, its optimizer and the loop's state, advanced one
/// optimizer step ([`Session::step`]) or one epoch end ([`Session::end_epoch`]) at a time.
pub struct Session<'a, B: AutodiffBackend> {
    trainer: &'a Trainer<B>,
    train: &'a dyn TrainFaces,
    val: Option<&'a FaceSet>,
    model: FaceModel<B>,
    model_config: FaceModelConfig,
    optim: OptimizerAdaptor<AdamW, FaceModel<B>, B>,
    state: TrainState,
    per_epoch: u64,
    total: u64,
    batch: usize,
    pipe: Option<Compose>,
    /// The teachers' bin ages on each device (the L1 age loss needs them).
    bins: Vec<Tensor<B, 1>>,
    /// The current epoch's face order.
    order: Option<(u64, Vec<usize>)>,
    /// The next micro-batch, read while the previous one computed: `(step, micro-batch)` and
    /// each device's share.
    ahead: Option<ReadAhead>,
    resumed_from: Option<PathBuf>,
    start_step: u64,
    saved_at: Option<u64>,
    bar: Option<indicatif::ProgressBar>,
}

impl<B: AutodiffBackend> Session<'_, B> {
    /// The loop's state and history.
    pub fn state(&self) -> &TrainState {
        &self.state
    }

    /// The model being trained.
    pub fn model(&self) -> &FaceModel<B> {
        &self.model
    }

    /// The checkpoint the session resumed from.
    pub fn resumed_from(&self) -> Option<&Path> {
        self.resumed_from.as_deref()
    }

    /// Optimizer steps the run plans in all (after `train.max_steps`).
    pub fn total_steps(&self) -> u64 {
        self.total
    }

    /// Every planned step is done, early stopping ended the run, or the trainer's
    /// `stop_after` is reached (then the epoch end is not run).
    pub fn done(&self) -> bool {
        let c = &self.trainer.config;
        let s = &self.state;
        if s.epoch >= c.train.epochs || s.stopped_early {
            return true;
        }
        !self.epoch_complete()
            && (s.step >= self.total || self.trainer.stop_after.is_some_and(|x| s.step >= x))
    }

    /// The current epoch's steps are all done; [`Session::end_epoch`] comes next.
    pub fn epoch_complete(&self) -> bool {
        self.state.step_in_epoch >= self.per_epoch
    }

    fn resume_or_start(&mut self) -> Result<()> {
        let tr = self.trainer;
        let c = &tr.config;
        let config_path = tr.run_dir.join("config.json");
        std::fs::create_dir_all(&tr.run_dir).map_err(DistillError::io(&tr.run_dir))?;
        match tr.checkpoints().latest()? {
            Some((_, dir)) => {
                let saved = DistillConfig::read(&config_path)?;
                let mut a = saved.clone();
                let mut b = c.clone();
                // Only the loop's length may change on resume.
                a.train.epochs = 0;
                a.train.max_steps = None;
                b.train.epochs = 0;
                b.train.max_steps = None;
                // Streamed and in-memory faces are the same crops.
                a.data.stream = b.data.stream;
                if a != b {
                    return Err(DistillError::checkpoint(
                        &dir,
                        "the run directory holds a run with another config (only train.epochs, train.max_steps and data.stream may change on resume)",
                    ));
                }
                let state: TrainState = face_io::read_json(&dir.join("state.json"))?;
                if state.data_fingerprint != self.state.data_fingerprint {
                    return Err(DistillError::checkpoint(
                        &dir,
                        "the checkpoint was trained on other faces",
                    ));
                }
                // Record the (possibly longer) loop this call runs.
                c.write(&config_path)?;
                let dev0 = &tr.devices[0];
                self.model =
                    face_nets::record::load_module(self.model.clone(), &dir.join("model.bin"), dev0)?;
                let record = face_nets::record::read_record::<B, _>(&dir.join("optim.bin"), dev0)?;
                self.optim = self.optim.clone().load_record(record);
                self.state = state;
                self.saved_at = Some(self.state.step);
                self.resumed_from = Some(dir);
            }
            None => {
                c.write(&config_path)?;
                if let Some(v) = self.val {
                    let row = evaluate(&self.model.valid(), v, c, 0, 0)?;
                    self.state.val.push(row);
                }
            }
        }
        self.start_step = self.state.step;
        // The metric files always mirror the state (rows after the checkpoint are dropped).
        self.write_logs()
    }

    /// The rows of micro-batch `a` of step `step_in_epoch` of the current epoch, split across
    /// the devices: each device's rows and the epoch position of its first face (the
    /// augmentation seeds follow from it).
    fn plan(&mut self, step_in_epoch: u64, a: usize) -> Vec<(Vec<usize>, u64)> {
        let c = &self.trainer.config;
        let n = self.train.len();
        let epoch = self.state.epoch;
        if self.order.as_ref().is_none_or(|(e, _)| *e != epoch) {
            self.order = Some((epoch, epoch_order(n, c.train.seed, epoch)));
        }
        let order = self.order.as_ref().map(|(_, o)| o.as_slice()).unwrap_or_default();
        let first = ((step_in_epoch as usize * c.data.accumulate + a) * self.batch) % n.max(1);
        let rows: Vec<usize> = (0..self.batch).map(|i| order[(first + i) % n]).collect();
        // Balanced shares (sizes differ by at most one), devices × peers of them; this process
        // computes its peer's run of shares, one per device.
        let shares = self.trainer.shares();
        let local = self.trainer.devices.len();
        let peer = self.trainer.peers.as_ref().map_or(0, |p| p.config().id as usize);
        (peer * local..(peer + 1) * local)
            .map(|d| {
                let (lo, hi) = (d * rows.len() / shares, (d + 1) * rows.len() / shares);
                (rows[lo..hi].to_vec(), (first + lo) as u64)
            })
            .collect()
    }

    /// What the peers of a multi-process run must share: configuration, data, starting
    /// weights and step.
    fn agreement(&self) -> Result<Agreement> {
        let config = serde_json::to_vec(&self.trainer.config)
            .map_err(|e| DistillError::Data(format!("hashing the configuration: {e}")))?;
        let mut weights = face_io::Fingerprint::new();
        for x in face_nets::record::float_values(&self.model) {
            weights.write(&x.to_le_bytes());
        }
        Ok(Agreement {
            config: face_io::Fingerprint::new().write(&config).value(),
            data: face_io::Fingerprint::new()
                .write(self.state.data_fingerprint.as_bytes())
                .value(),
            weights: weights.value(),
            step: self.state.step,
        })
    }

    /// The micro-batch after `(step_in_epoch, a)` within this epoch, if there is one.
    fn next_in_epoch(&self, step_in_epoch: u64, a: usize) -> Option<(u64, usize)> {
        if a + 1 < self.trainer.config.data.accumulate {
            Some((step_in_epoch, a + 1))
        } else if step_in_epoch + 1 < self.per_epoch {
            Some((step_in_epoch + 1, 0))
        } else {
            None
        }
    }

    /// Moves each device's share of a micro-batch onto its device, with the bins and the
    /// share of the step's faces.
    fn to_devices(&self, host: Vec<HostBatch>) -> Vec<(DistillBatch<B>, Tensor<B, 1>, f64)> {
        let step_faces = (self.batch * self.trainer.config.data.accumulate) as f64;
        host.into_iter()
            .zip(&self.trainer.devices)
            .enumerate()
            .map(|(d, (h, device))| {
                let share = h.targets.len() as f64 / step_faces;
                (DistillBatch::from_host(h, device), self.bins[d].clone(), share)
            })
            .collect()
    }

    /// Forward and backward of one micro-batch on every device (one thread per device, inline
    /// for one), gradients into `accumulators`. A panic on a device thread is an error naming
    /// the device and the step.
    fn forward_backward(
        &self,
        batches: Vec<(DistillBatch<B>, Tensor<B, 1>, f64)>,
        accumulators: &mut [GradientsAccumulator<FaceModel<B>>],
    ) -> Result<Vec<[f64; 5]>> {
        let tr = self.trainer;
        let c = &tr.config;
        let step = self.state.step + 1;
        if batches.len() == 1 {
            let (b, bins, share) = batches
                .into_iter()
                .next()
                .ok_or_else(|| DistillError::Data("no batch".into()))?;
            return Ok(vec![device_step(
                c,
                &self.model,
                &tr.devices[0],
                b,
                bins,
                share,
                &mut accumulators[0],
            )?]);
        }
        let model = &self.model;
        let work: Vec<_> = batches
            .into_iter()
            .zip(&tr.devices)
            .zip(accumulators.iter_mut())
            .map(|(((b, bins, share), device), acc)| {
                move || device_step(c, model, device, b, bins, share, acc)
            })
            .collect();
        let terms = on_devices(&tr.devices, step, work);
        sync_running_statistics(model);
        terms
    }

    /// One optimizer step: `data.accumulate` micro-batches, each split across the devices,
    /// then AdamW; a checkpoint every `train.checkpoint_every` steps.
    ///
    /// # Errors
    /// A finished epoch (call [`Session::end_epoch`]), a non-finite loss, a panic on a device,
    /// or I/O failure.
    pub fn step(&mut self) -> Result<TrainRow> {
        if self.epoch_complete() {
            return Err(DistillError::Data(
                "the epoch is complete: end it before the next step".into(),
            ));
        }
        let tr = self.trainer;
        let c = &tr.config;
        let lr = learning_rate(
            c.optim.lr,
            c.optim.warmup_steps,
            c.optim.min_lr_ratio,
            self.state.step,
            self.total,
        );
        let mut accumulators: Vec<GradientsAccumulator<FaceModel<B>>> =
            tr.devices.iter().map(|_| GradientsAccumulator::new()).collect();
        let mut parts = [0.0f64; 5];
        let (mut data_s, mut compute_s) = (0.0, 0.0);
        let normalize = Normalize::arcface();
        let (seed, epoch) = (c.train.seed, self.state.epoch);
        let in_epoch = self.state.step_in_epoch;
        for a in 0..c.data.accumulate {
            // This micro-batch: read ahead during the previous one, or read now (the first of a
            // session or of an epoch).
            let t0 = Instant::now();
            let host = match self.ahead.take() {
                Some((key, host)) if key == (in_epoch, a) => host?,
                _ => {
                    let plan = self.plan(in_epoch, a);
                    read_micro_batch(self.train, self.pipe.as_ref(), seed, epoch, &plan, &normalize)?
                }
            };
            let batches = self.to_devices(host);
            let next = self
                .next_in_epoch(in_epoch, a)
                .map(|(s, b)| ((s, b), self.plan(s, b)));
            data_s += t0.elapsed().as_secs_f64();
            // The next one is read on another thread (decoding on the worker pool) while this
            // one computes here: the compute stays on the caller's thread, whose identity Burn's
            // BatchNorm running statistics are kept by.
            let t1 = Instant::now();
            let (train, pipe) = (self.train, self.pipe.as_ref());
            let this: &Self = self;
            let (terms, ahead) = std::thread::scope(|scope| {
                let reader = next.map(|(key, plan)| {
                    let normalize = &normalize;
                    scope.spawn(move || (key, read_micro_batch(train, pipe, seed, epoch, &plan, normalize)))
                });
                let terms = this.forward_backward(batches, &mut accumulators);
                let ahead = reader.map(|h| match h.join() {
                    Ok(read) => read,
                    Err(payload) => (
                        (u64::MAX, 0),
                        Err(DistillError::Data(format!(
                            "reading the next batch panicked: {}",
                            panic_text(payload.as_ref())
                        ))),
                    ),
                });
                (terms, ahead)
            });
            // A reader's panic surfaces here, not at a batch it no longer matches.
            if let Some((_, Err(e))) = ahead.as_ref().filter(|(k, _)| k.0 == u64::MAX) {
                return Err(DistillError::Data(e.to_string()));
            }
            self.ahead = ahead;
            for t in terms? {
                for (p, v) in parts.iter_mut().zip(t) {
                    *p += v;
                }
            }
            compute_s += t1.elapsed().as_secs_f64();
        }
        let t2 = Instant::now();
        let mut grads: Vec<GradientsParams> = accumulators.iter_mut().map(|a| a.grads()).collect();
        let mut peer_buffers = None;
        if let Some(peers) = &tr.peers {
            // The step's gradients and loss over every peer's share: then every peer takes the
            // same optimizer step (and the same decision on a non-finite loss).
            let g = grads.pop().unwrap_or_default();
            let (g, summed, buffers) =
                peers.all_reduce_step::<B, _, 5>(self.state.step + 1, &self.model, g, parts)?;
            grads = vec![g];
            parts = summed;
            peer_buffers = Some(buffers);
        }
        compute_s += t2.elapsed().as_secs_f64();
        if !parts[0].is_finite() {
            return Err(DistillError::NonFinite {
                step: self.state.step,
                part: "total",
                value: parts[0],
            });
        }
        let t3 = Instant::now();
        let grads = MultiGradientsParams {
            grads: grads
                .into_iter()
                .zip(&tr.devices)
                .map(|(g, dev)| (g, dev.to_id()))
                .collect(),
        };
        self.model = self.optim.step_multi(lr, self.model.clone(), grads);
        if let Some(buffers) = peer_buffers {
            self.model = buffers.apply(self.model.clone());
        }
        if tr.devices.len() > 1 {
            // step_multi updates each parameter on the device that reduced its gradient;
            // gather them back on the first device.
            self.model = self.model.clone().fork(&tr.devices[0]);
        }
        compute_s += t3.elapsed().as_secs_f64();
        self.state.step += 1;
        self.state.step_in_epoch += 1;
        let row = TrainRow {
            step: self.state.step,
            epoch: self.state.epoch,
            faces: (self.batch * c.data.accumulate) as u64,
            lr,
            loss: parts[0],
            identity: parts[1],
            relational: parts[2],
            age: parts[3],
            gender: parts[4],
            data_seconds: data_s,
            compute_seconds: compute_s,
        };
        self.state.train.push(row);
        self.report_step(&row);
        if self.state.step.is_multiple_of(c.train.checkpoint_every) {
            self.checkpoint()?;
        }
        Ok(row)
    }

    /// Validates the current model on the validation faces (none without them).
    ///
    /// # Errors
    /// As [`evaluate`].
    pub fn validate(&self) -> Result<Option<EvalRow>> {
        let c = &self.trainer.config;
        self.val
            .map(|v| evaluate(&self.model.valid(), v, c, self.state.epoch, self.state.step))
            .transpose()
    }

    /// Ends the epoch: validation, the early-stopping rule, a checkpoint.
    ///
    /// # Errors
    /// As [`Session::validate`] and [`Session::checkpoint`].
    pub fn end_epoch(&mut self) -> Result<Option<EvalRow>> {
        let c = &self.trainer.config;
        self.state.epoch += 1;
        self.state.step_in_epoch = 0;
        let row = self.validate()?;
        if let Some(row) = &row {
            self.state.val.push(row.clone());
            let s = &mut self.state;
            match (row.ir_auc, s.best_ir_auc) {
                (Some(x), Some(best)) if x < best - c.train.early_stop_min_delta => {
                    s.best_ir_auc = Some(x);
                    s.best_epoch = Some(s.epoch);
                    s.bad_epochs = 0;
                }
                (Some(x), None) => {
                    s.best_ir_auc = Some(x);
                    s.best_epoch = Some(s.epoch);
                }
                _ => s.bad_epochs += 1,
            }
            if c.train.early_stop_patience.is_some_and(|p| s.bad_epochs >= p) {
                s.stopped_early = true;
            }
            let line = format!("epoch {} validation: {}", self.state.epoch, row.summary());
            match &self.bar {
                Some(pb) => pb.println(line),
                None => eprintln!("{line}"),
            }
        }
        self.checkpoint()?;
        Ok(row)
    }

    /// Saves a checkpoint of the current step (model, optimizer, loop state) and rewrites the
    /// metric files.
    ///
    /// # Errors
    /// I/O failure.
    pub fn checkpoint(&mut self) -> Result<PathBuf> {
        let checkpoints = self.trainer.checkpoints();
        let staging = checkpoints.staging()?;
        face_nets::record::save_module(&self.model, &staging.join("model.bin"))?;
        face_nets::record::write_record::<B, _>(self.optim.to_record(), &staging.join("optim.bin"))?;
        face_io::write_json(&staging.join("state.json"), &self.state)?;
        let dir = checkpoints.commit(self.state.step)?;
        self.saved_at = Some(self.state.step);
        self.write_logs()?;
        Ok(dir)
    }

    /// Ends the session: a run that ended mid-epoch is validated once more (not after a
    /// `stop_after` pre-emption: that run goes on), the last step is checkpointed, and the model
    /// is written to the run folder (`model.json`, `student.bin`).
    ///
    /// # Errors
    /// As [`Session::validate`] and [`Session::checkpoint`].
    pub fn finish(mut self) -> Result<FitOutcome<B>> {
        let c = &self.trainer.config;
        let s = &self.state;
        let finished = s.step >= self.total || s.epoch >= c.train.epochs || s.stopped_early;
        if finished && self.val.is_some() && s.val.last().map(|r| r.step) != Some(s.step) {
            if let Some(row) = self.validate()? {
                self.state.val.push(row);
                self.saved_at = None;
            }
        }
        // A stop mid-epoch is saved too, so the next call resumes exactly there.
        if self.saved_at != Some(self.state.step) || self.state.step == 0 {
            self.checkpoint()?;
        }
        if let Some(pb) = self.bar.take() {
            pb.finish_and_clear();
        }
        self.model
            .valid()
            .save(&self.model_config, &self.trainer.run_dir)?;
        Ok(FitOutcome {
            steps_this_call: self.state.step - self.start_step,
            student: self.model,
            model_config: self.model_config,
            state: self.state,
            resumed_from: self.resumed_from,
        })
    }

    fn report_step(&self, row: &TrainRow) {
        let state = &self.state;
        let ir = state
            .val
            .last()
            .and_then(|v| v.ir_auc)
            .map_or("–".to_string(), |x| format!("{x:.3e}"));
        let msg = format!(
            "loss {:.4} (id {:.4} age {:.4} gender {:.4}) lr {:.2e} irAUC {ir}",
            row.loss, row.identity, row.age, row.gender, row.lr
        );
        match &self.bar {
            Some(pb) => {
                pb.set_position(state.step);
                pb.set_message(msg);
            }
            None => {
                if state.step.is_multiple_of(self.trainer.config.train.log_every) || state.step == self.total
                {
                    eprintln!("step {}/{} epoch {} {msg}", state.step, self.total, state.epoch);
                }
            }
        }
    }

    /// Rewrites `train.csv`, `val.csv` and the curves from the state.
    fn write_logs(&self) -> Result<()> {
        let run_dir = &self.trainer.run_dir;
        let state = &self.state;
        let mut train = String::from(
            "step,epoch,faces,lr,loss,identity,relational,age,gender,data_seconds,compute_seconds\n",
        );
        for r in &state.train {
            train.push_str(&format!(
                "{},{},{},{:e},{},{},{},{},{},{:.6},{:.6}\n",
                r.step,
                r.epoch,
                r.faces,
                r.lr,
                r.loss,
                r.identity,
                r.relational,
                r.age,
                r.gender,
                r.data_seconds,
                r.compute_seconds
            ));
        }
        face_io::write_atomic(&run_dir.join("train.csv"), train.as_bytes())?;
        let mut val = format!("{}\n", EvalRow::CSV_HEADER);
        for r in &state.val {
            val.push_str(&r.csv_line());
            val.push('\n');
        }
        face_io::write_atomic(&run_dir.join("val.csv"), val.as_bytes())?;
        let loss: Vec<(f64, f64)> = state.train.iter().map(|r| (r.step as f64, r.loss)).collect();
        if !loss.is_empty() {
            face_metrics::write_curve_svg(
                run_dir.join("loss.svg"),
                "Training loss",
                ("optimizer step", "loss"),
                &[("total", &loss)],
                true,
            )?;
        }
        let ir: Vec<(f64, f64)> = state
            .val
            .iter()
            .filter_map(|r| r.ir_auc.map(|x| (r.epoch as f64, x.max(1e-9))))
            .collect();
        if !ir.is_empty() {
            face_metrics::write_curve_svg(
                run_dir.join("irauc.svg"),
                "Validation irAUC (1 − mean per-batch AUC)",
                ("epoch", "irAUC (log)"),
                &[("student", &ir)],
                true,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays() {
        let lr = |s| learning_rate(1.0, 4, 0.1, s, 14);
        assert!((lr(0) - 0.25).abs() < 1e-12);
        assert!((lr(3) - 1.0).abs() < 1e-12);
        assert!((lr(4) - 1.0).abs() < 1e-12);
        // Last step (13): cosine at t = 1 → the floor.
        assert!((lr(13) - 0.1).abs() < 1e-12);
        // Middle of the cosine (t = 0.5 at step 4 + 4.5): halfway between peak and floor.
        let mid = learning_rate(1.0, 0, 0.0, 5, 11);
        assert!((mid - 0.5).abs() < 1e-12, "{mid}");
        for s in 4..13 {
            assert!(lr(s + 1) <= lr(s));
        }
    }

    #[test]
    fn epoch_order_is_a_seeded_permutation() {
        let a = epoch_order(50, 7, 3);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_eq!(a, epoch_order(50, 7, 3));
        assert_ne!(a, epoch_order(50, 7, 4));
    }

    #[test]
    fn a_panic_on_a_device_is_an_error_naming_it() {
        let ok: Vec<Box<dyn FnOnce() -> Result<u32> + Send>> = vec![Box::new(|| Ok(1)), Box::new(|| Ok(2))];
        assert_eq!(on_devices(&["cpu:0", "cpu:1"], 3, ok).unwrap(), vec![1, 2]);
        let work: Vec<Box<dyn FnOnce() -> Result<u32> + Send>> =
            vec![Box::new(|| Ok(1)), Box::new(|| panic!("out of memory"))];
        match on_devices(&["cpu:0", "cpu:1"], 7, work) {
            Err(DistillError::DeviceStep {
                device,
                step,
                message,
            }) => {
                assert_eq!(
                    (device.as_str(), step, message.as_str()),
                    ("1 (\"cpu:1\")", 7, "out of memory")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn panic_payloads_are_read() {
        let p = std::panic::catch_unwind(|| panic!("out of memory on device 1")).unwrap_err();
        assert_eq!(panic_text(p.as_ref()), "out of memory on device 1");
        let q = std::panic::catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        assert_eq!(panic_text(q.as_ref()), "(no message)");
    }
}

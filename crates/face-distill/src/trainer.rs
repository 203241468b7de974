//! The training loop: AdamW with warm-up and cosine decay, gradient accumulation, data-parallel
//! steps over several devices, step-exact checkpoints and resume, validation with irAUC and early
//! stopping, metrics files, a report and pictures.
//!
//! It is a plain loop rather than burn-train's `Learner`: burn-train 0.21 checkpoints at epoch
//! ends only and does not restore its data loaders' position, so a run killed mid-epoch cannot
//! resume without repeating or skipping steps; here the data order, the augmentation and the
//! learning rate are pure functions of `(seed, epoch, step)`, so a resumed run is bit-identical to
//! an uninterrupted one. Multi-device steps use Burn's own machinery (`Module::fork`,
//! `GradientsAccumulator`, `Optimizer::step_multi`, which reduces the per-device gradients).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, MultiGradientsParams, Optimizer};
use burn::prelude::DeviceOps;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use face_data::augment::Compose;
use face_data::Normalize;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, write_atomic};
use crate::config::{AgeLoss, DistillConfig};
use crate::data::{augmentation, DistillBatch, FaceSet};
use crate::error::{DistillError, Result};
use crate::eval::{evaluate, EvalRow};
use crate::losses;
use crate::student::Student;

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
    pub student: Student<B>,
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
}

/// The micro-batches of an epoch, in the order the seed gives.
fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut rows: Vec<usize> = (0..n).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(crate::data::sample_seed(seed, epoch, u64::MAX));
    rows.shuffle(&mut rng);
    rows
}

/// FNV-1a over the ids (stable across runs and platforms) and the count.
fn fingerprint(set: &FaceSet) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for id in set.ids() {
        for b in id.bytes().chain(std::iter::once(0)) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{:016x}-{}", h, set.len())
}

/// The loss terms of one (micro-)batch: `(weighted total, [identity, relational, age, gender])`.
pub fn distill_loss<B: Backend>(
    config: &DistillConfig,
    student: &Student<B>,
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
    model: &Student<B>,
    device: &B::Device,
    batch: DistillBatch<B>,
    bins: Tensor<B, 1>,
    share: f64,
    acc: &mut GradientsAccumulator<Student<B>>,
) -> [f64; 5] {
    let m = model.clone().fork(device);
    let (loss, terms) = distill_loss(config, &m, &batch, bins);
    let grads = GradientsParams::from_grads((loss.clone() * share).backward(), &m);
    acc.accumulate(&m, grads);
    let mut out = [scalar(loss) * share, 0.0, 0.0, 0.0, 0.0];
    for (o, t) in out[1..].iter_mut().zip(terms) {
        *o = scalar(t) * share;
    }
    out
}

fn scalar<B: Backend>(t: Tensor<B, 1>) -> f64 {
    t.into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .ok()
        .and_then(|v| v.first().copied())
        .unwrap_or(f64::NAN)
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

    /// The run directory.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The configuration.
    pub fn config(&self) -> &DistillConfig {
        &self.config
    }

    fn checkpoint_dir(&self) -> PathBuf {
        self.run_dir.join("checkpoints")
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

    /// Trains `student` on `train`, validating on `val` at every epoch end. If the run directory
    /// holds a checkpoint of the same config and data, training resumes from it (the given
    /// student's weights are then replaced by the checkpoint's).
    ///
    /// # Errors
    /// A checkpoint of another config or data, a student whose output sizes do not match the
    /// targets, a non-finite loss, or I/O failure.
    pub fn fit(&self, student: Student<B>, train: &FaceSet, val: Option<&FaceSet>) -> Result<FitOutcome<B>> {
        let c = &self.config;
        let dev0 = self.devices[0].clone();
        std::fs::create_dir_all(self.checkpoint_dir()).map_err(DistillError::io(self.checkpoint_dir()))?;
        let t = train.targets();
        if student.input_size() != train.size() as usize {
            return Err(DistillError::Data(format!(
                "the student takes {} px crops, the training faces are {} px",
                student.input_size(),
                train.size()
            )));
        }
        if let Some(v) = val {
            if v.size() != train.size() || v.targets().dim != t.dim || v.targets().age_bins != t.age_bins {
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
            DistillBatch::<B::InnerBackend>::new(train, &[0], None, &Normalize::arcface(), &dev0).images,
        );
        let (emb, age) = (probe.embedding.dims()[1], probe.age_logits.dims()[1]);
        if emb != t.dim || age != t.age_bins.len() {
            return Err(DistillError::Data(format!(
                "the student gives {emb}-d embeddings and {age} age bins, the teachers {} and {}",
                t.dim,
                t.age_bins.len()
            )));
        }
        let mut optim = AdamWConfig::new()
            .with_beta_1(c.optim.betas.0 as f32)
            .with_beta_2(c.optim.betas.1 as f32)
            .with_epsilon(c.optim.epsilon as f32)
            .with_weight_decay(c.optim.weight_decay as f32)
            .with_grad_clipping(
                c.optim
                    .clip_grad_norm
                    .map(|n| GradientClippingConfig::Norm(n as f32)),
            )
            .init::<B, Student<B>>();

        // Burn shares BatchNorm running statistics between clones of a module, so train a
        // copy of our own: a fresh student of the configured architecture with the given
        // weights (a caller's clones are then left untouched).
        let fresh = Student::<B>::new(&c.student.backbone, t.dim, t.age_bins.len(), &dev0)?;
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
        let mut model = fresh.load_record(student.into_record());
        let fp = fingerprint(train);
        let latest = checkpoint::list(&self.checkpoint_dir())?.pop();
        let (mut state, resumed_from) = match latest {
            Some((_, dir)) => {
                let saved = DistillConfig::read(&self.run_dir.join("config.json"))?;
                let mut a = saved.clone();
                let mut b = c.clone();
                // Only the loop's length may change on resume.
                a.train.epochs = 0;
                a.train.max_steps = None;
                b.train.epochs = 0;
                b.train.max_steps = None;
                if a != b {
                    return Err(DistillError::checkpoint(
                        &dir,
                        "the run directory holds a run with another config (only train.epochs and train.max_steps may change on resume)",
                    ));
                }
                let state: TrainState = serde_json::from_slice(
                    &std::fs::read(dir.join("state.json"))
                        .map_err(DistillError::io(dir.join("state.json")))?,
                )
                .map_err(|e| DistillError::checkpoint(dir.join("state.json"), e.to_string()))?;
                if state.data_fingerprint != fp {
                    return Err(DistillError::checkpoint(
                        &dir,
                        "the checkpoint was trained on other faces",
                    ));
                }
                // Record the (possibly longer) loop this call runs.
                c.write(&self.run_dir.join("config.json"))?;
                model = checkpoint::load_module(model, &dir.join("model.bin"), &dev0)?;
                let record = checkpoint::read_record::<B, _>(&dir.join("optim.bin"), &dev0)?;
                optim = optim.load_record(record);
                (state, Some(dir))
            }
            None => {
                c.write(&self.run_dir.join("config.json"))?;
                let mut state = TrainState {
                    step: 0,
                    epoch: 0,
                    step_in_epoch: 0,
                    best_ir_auc: None,
                    best_epoch: None,
                    bad_epochs: 0,
                    stopped_early: false,
                    train: Vec::new(),
                    val: Vec::new(),
                    data_fingerprint: fp,
                };
                if let Some(v) = val {
                    state.val.push(evaluate(&model.valid(), v, c, 0, 0)?);
                }
                (state, None)
            }
        };
        // The metric files always mirror the state (rows after the checkpoint are dropped).
        self.write_logs(&state)?;

        let n = train.len();
        let per_epoch = self.steps_per_epoch(n);
        let total = self.total_steps(n);
        let batch = c.data.batch.min(n);
        let micro_per_step = c.data.accumulate;
        let pipe: Option<Compose> = augmentation(&c.data.augment, train.size());
        let normalize = Normalize::arcface();
        // The teachers' bin ages, once per device (the L1 age loss needs them).
        let bins: Vec<Tensor<B, 1>> = self
            .devices
            .iter()
            .map(|d| Tensor::from_data(TensorData::new(t.age_bins.clone(), [t.age_bins.len()]), d))
            .collect();
        let start_step = state.step;
        let bar = self.progress.then(|| {
            let pb = indicatif::ProgressBar::new(total);
            pb.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} steps {elapsed_precise} ETA {eta} {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            pb.set_position(state.step);
            pb
        });

        let mut saved_at = resumed_from.as_ref().map(|_| state.step);
        'epochs: while state.epoch < c.train.epochs && !state.stopped_early {
            let order = epoch_order(n, c.train.seed, state.epoch);
            while state.step_in_epoch < per_epoch {
                if state.step >= total || self.stop_after.is_some_and(|s| state.step >= s) {
                    break 'epochs;
                }
                let lr = learning_rate(
                    c.optim.lr,
                    c.optim.warmup_steps,
                    c.optim.min_lr_ratio,
                    state.step,
                    total,
                );
                let mut accumulators: Vec<GradientsAccumulator<Student<B>>> =
                    self.devices.iter().map(|_| GradientsAccumulator::new()).collect();
                let mut parts = [0.0f64; 5];
                let (mut data_s, mut compute_s) = (0.0, 0.0);
                let step_faces = (batch * micro_per_step) as f64;
                for a in 0..micro_per_step {
                    let first = ((state.step_in_epoch as usize * micro_per_step + a) * batch) % n.max(1);
                    let rows: Vec<usize> = (0..batch).map(|i| order[(first + i) % n]).collect();
                    let chunk = rows.len().div_ceil(self.devices.len());
                    let t0 = Instant::now();
                    let batches: Vec<(DistillBatch<B>, Tensor<B, 1>, f64)> = self
                        .devices
                        .iter()
                        .zip(rows.chunks(chunk))
                        .enumerate()
                        .map(|(d, (device, rows_d))| {
                            let aug = pipe
                                .as_ref()
                                .map(|p| (p, c.train.seed, state.epoch, (first + d * chunk) as u64));
                            let b = DistillBatch::<B>::new(train, rows_d, aug, &normalize, device);
                            (b, bins[d].clone(), rows_d.len() as f64 / step_faces)
                        })
                        .collect();
                    data_s += t0.elapsed().as_secs_f64();
                    let t1 = Instant::now();
                    // One thread per device (inline for one): forward, backward, accumulate.
                    let terms: Vec<[f64; 5]> = if batches.len() == 1 {
                        let (b, bins, share) = batches.into_iter().next().expect("one batch");
                        vec![device_step(
                            c,
                            &model,
                            &self.devices[0],
                            b,
                            bins,
                            share,
                            &mut accumulators[0],
                        )]
                    } else {
                        std::thread::scope(|scope| {
                            let handles: Vec<_> = batches
                                .into_iter()
                                .zip(&self.devices)
                                .zip(accumulators.iter_mut())
                                .map(|(((b, bins, share), device), acc)| {
                                    let m = &model;
                                    scope.spawn(move || device_step(c, m, device, b, bins, share, acc))
                                })
                                .collect();
                            handles
                                .into_iter()
                                .map(|h| h.join().unwrap_or([f64::NAN; 5]))
                                .collect()
                        })
                    };
                    for t in terms {
                        for (p, v) in parts.iter_mut().zip(t) {
                            *p += v;
                        }
                    }
                    compute_s += t1.elapsed().as_secs_f64();
                }
                if !parts[0].is_finite() {
                    return Err(DistillError::NonFinite {
                        step: state.step,
                        part: "total",
                        value: parts[0],
                    });
                }
                let t2 = Instant::now();
                let grads = MultiGradientsParams {
                    grads: accumulators
                        .iter_mut()
                        .zip(&self.devices)
                        .map(|(acc, dev)| (acc.grads(), dev.to_id()))
                        .collect(),
                };
                model = optim.step_multi(lr, model, grads);
                if self.devices.len() > 1 {
                    // step_multi updates each parameter on the device that reduced its gradient;
                    // gather them back on the first device.
                    model = model.fork(&dev0);
                }
                compute_s += t2.elapsed().as_secs_f64();
                state.step += 1;
                state.step_in_epoch += 1;
                let row = TrainRow {
                    step: state.step,
                    epoch: state.epoch,
                    faces: (batch * micro_per_step) as u64,
                    lr,
                    loss: parts[0],
                    identity: parts[1],
                    relational: parts[2],
                    age: parts[3],
                    gender: parts[4],
                    data_seconds: data_s,
                    compute_seconds: compute_s,
                };
                state.train.push(row);
                self.report_step(bar.as_ref(), &row, &state, total);
                if state.step.is_multiple_of(c.train.checkpoint_every) {
                    self.save(&model, &optim, &state)?;
                    saved_at = Some(state.step);
                }
            }
            // Epoch end: validate, early stopping, checkpoint.
            state.epoch += 1;
            state.step_in_epoch = 0;
            if let Some(v) = val {
                let row = evaluate(&model.valid(), v, c, state.epoch, state.step)?;
                let ir = row.ir_auc;
                state.val.push(row);
                match (ir, state.best_ir_auc) {
                    (Some(x), Some(best)) if x < best - c.train.early_stop_min_delta => {
                        state.best_ir_auc = Some(x);
                        state.best_epoch = Some(state.epoch);
                        state.bad_epochs = 0;
                    }
                    (Some(x), None) => {
                        state.best_ir_auc = Some(x);
                        state.best_epoch = Some(state.epoch);
                    }
                    _ => state.bad_epochs += 1,
                }
                if c.train.early_stop_patience.is_some_and(|p| state.bad_epochs >= p) {
                    state.stopped_early = true;
                }
                if let Some(pb) = &bar {
                    pb.println(format!(
                        "epoch {} validation: {}",
                        state.epoch,
                        state.val.last().map_or(String::new(), EvalRow::summary)
                    ));
                } else {
                    eprintln!(
                        "epoch {} validation: {}",
                        state.epoch,
                        state.val.last().map_or(String::new(), EvalRow::summary)
                    );
                }
            }
            self.save(&model, &optim, &state)?;
            saved_at = Some(state.step);
        }
        // A run that ends mid-epoch (train.max_steps) is validated once more, so the last row
        // describes the final weights (not after a pre-emption by `stop_after`: that run goes on).
        if let Some(v) = val {
            let finished = state.step >= total || state.epoch >= c.train.epochs || state.stopped_early;
            if finished && state.val.last().map(|r| r.step) != Some(state.step) {
                state
                    .val
                    .push(evaluate(&model.valid(), v, c, state.epoch, state.step)?);
                saved_at = None;
            }
        }
        // A stop mid-epoch is saved too, so the next call resumes exactly there.
        if saved_at != Some(state.step) || state.step == 0 {
            self.save(&model, &optim, &state)?;
        }
        if let Some(pb) = bar {
            pb.finish_and_clear();
        }
        checkpoint::save_module(&model.valid(), &self.run_dir.join("student.bin"))?;
        Ok(FitOutcome {
            steps_this_call: state.step - start_step,
            student: model,
            state,
            resumed_from,
        })
    }

    fn report_step(
        &self,
        bar: Option<&indicatif::ProgressBar>,
        row: &TrainRow,
        state: &TrainState,
        total: u64,
    ) {
        let ir = state
            .val
            .last()
            .and_then(|v| v.ir_auc)
            .map_or("–".to_string(), |x| format!("{x:.3e}"));
        let msg = format!(
            "loss {:.4} (id {:.4} age {:.4} gender {:.4}) lr {:.2e} irAUC {ir}",
            row.loss, row.identity, row.age, row.gender, row.lr
        );
        match bar {
            Some(pb) => {
                pb.set_position(state.step);
                pb.set_message(msg);
            }
            None => {
                if state.step.is_multiple_of(self.config.train.log_every) || state.step == total {
                    eprintln!("step {}/{} epoch {} {msg}", state.step, total, state.epoch);
                }
            }
        }
    }

    fn save<O: Optimizer<Student<B>, B>>(
        &self,
        model: &Student<B>,
        optim: &O,
        state: &TrainState,
    ) -> Result<()> {
        let dir = self.checkpoint_dir();
        let staging = dir.join(".staging");
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(DistillError::io(&staging))?;
        }
        std::fs::create_dir_all(&staging).map_err(DistillError::io(&staging))?;
        checkpoint::save_module(model, &staging.join("model.bin"))?;
        let optim_path = staging.join("optim.bin");
        let bytes = checkpoint::record_bytes::<B, _>(optim.to_record(), &optim_path)?;
        write_atomic(&optim_path, &bytes)?;
        let json =
            serde_json::to_vec(state).map_err(|e| DistillError::checkpoint(&staging, e.to_string()))?;
        write_atomic(&staging.join("state.json"), &json)?;
        checkpoint::commit(&dir, &staging, state.step, self.config.train.keep_checkpoints)?;
        self.write_logs(state)
    }

    /// Rewrites `train.csv`, `val.csv` and the curves from the state.
    fn write_logs(&self, state: &TrainState) -> Result<()> {
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
        write_atomic(&self.run_dir.join("train.csv"), train.as_bytes())?;
        let mut val = format!("{}\n", EvalRow::CSV_HEADER);
        for r in &state.val {
            val.push_str(&r.csv_line());
            val.push('\n');
        }
        write_atomic(&self.run_dir.join("val.csv"), val.as_bytes())?;
        let loss: Vec<(f64, f64)> = state.train.iter().map(|r| (r.step as f64, r.loss)).collect();
        if !loss.is_empty() {
            face_metrics::write_curve_svg(
                self.run_dir.join("loss.svg"),
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
                self.run_dir.join("irauc.svg"),
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
}

//! Few-shot evaluation of a pretrained backbone (the use LAFS is built for): the **1-shot
//! protocol** — one gallery image per identity, every other image a probe — scored as
//! identification (rank-1/rank-5 of the probes against the gallery) and verification (ROC, AUC
//! and TAR@FAR over all probe × gallery pairs), and a short **ArcFace fine-tune** on the gallery
//! shots alone (augmented views of the one image per identity), after which the protocol is run
//! again.

use burn::module::{AutodiffModule, Module};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use face_data::augment::DataRng;
use face_metrics::{top_n_accuracy, FarConvention, VerificationReport, VerificationScores};
use face_nets::{CombinedMargin, CombinedMarginConfig, NormLinear};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SslError};
use crate::views::{stack, Face, ViewBuilder, ViewTokens};
use face_nets::TokenVit;

/// L2-normalised representations of `faces` (their deterministic views), `batch` at a time.
///
/// # Errors
/// Degenerate landmarks.
pub fn embed<B: Backend>(
    backbone: &TokenVit<B>,
    views: &ViewBuilder,
    faces: &[Face],
    batch: usize,
    device: &B::Device,
) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(faces.len());
    for chunk in faces.chunks(batch.max(1)) {
        let tokens = chunk
            .iter()
            .map(|f| views.eval_view(f))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&ViewTokens> = tokens.iter().collect();
        let f = face_nets::l2_normalize(backbone.forward(&stack::<B>(&refs, device)?), 1e-12);
        let [n, d] = f.dims();
        let values = face_nets::to_f32_vec(f)?;
        out.extend((0..n).map(|i| values[i * d..(i + 1) * d].to_vec()));
    }
    Ok(out)
}

/// Which images are the gallery shots and which are probes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OneShotSplit {
    /// The first image of each identity, in order of first appearance.
    pub gallery: Vec<usize>,
    /// Every other image.
    pub probes: Vec<usize>,
}

impl OneShotSplit {
    /// The 1-shot split of `identities` (one label per image).
    pub fn new<L: PartialEq>(identities: &[L]) -> Self {
        let mut gallery: Vec<usize> = Vec::new();
        let mut probes = Vec::new();
        for (i, id) in identities.iter().enumerate() {
            if gallery.iter().any(|&g| identities[g] == *id) {
                probes.push(i);
            } else {
                gallery.push(i);
            }
        }
        Self { gallery, probes }
    }
}

/// The 1-shot protocol's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OneShotReport {
    /// Identities (= gallery size).
    pub identities: usize,
    /// Probe images.
    pub probes: usize,
    /// Rank-1 identification rate of the probes.
    pub rank1: f64,
    /// Rank-5 identification rate (rank-`identities` when there are fewer than 5).
    pub rank5: f64,
    /// Verification over all probe × gallery pairs.
    pub verification: VerificationReport,
}

impl OneShotReport {
    /// TAR at `far` (AtMost convention), if the report holds it.
    pub fn tar_at(&self, far: f64) -> Option<f64> {
        self.verification.tar(FarConvention::AtMost, far).map(|t| t.tar)
    }
}

/// Runs the 1-shot protocol on `embeddings` (unit rows) with one identity label per row.
///
/// # Errors
/// Fewer than two identities, no probe, or rows of different widths.
pub fn one_shot_eval(embeddings: &[Vec<f32>], identities: &[String]) -> Result<OneShotReport> {
    if embeddings.len() != identities.len() {
        return Err(SslError::Data(format!(
            "{} embeddings for {} labels",
            embeddings.len(),
            identities.len()
        )));
    }
    let split = OneShotSplit::new(identities);
    if split.gallery.len() < 2 || split.probes.is_empty() {
        return Err(SslError::Data(format!(
            "the 1-shot protocol needs ≥ 2 identities and a second image of one of them (got {} identities, {} probes)",
            split.gallery.len(),
            split.probes.len()
        )));
    }
    let d = embeddings[0].len();
    if let Some(bad) = embeddings.iter().position(|e| e.len() != d) {
        return Err(SslError::Data(format!(
            "embedding {bad} has {} values, not {d}",
            embeddings[bad].len()
        )));
    }
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let mut similarity = Vec::with_capacity(split.probes.len() * split.gallery.len());
    let (mut scores, mut genuine) = (Vec::new(), Vec::new());
    for &p in &split.probes {
        for &g in &split.gallery {
            let s = dot(&embeddings[p], &embeddings[g]);
            similarity.push(s);
            scores.push(f64::from(s));
            genuine.push(identities[p] == identities[g]);
        }
    }
    let probe_ids: Vec<&String> = split.probes.iter().map(|&i| &identities[i]).collect();
    let gallery_ids: Vec<&String> = split.gallery.iter().map(|&i| &identities[i]).collect();
    let rank1 = top_n_accuracy(&similarity, &probe_ids, &gallery_ids, 1)?;
    let rank5 = top_n_accuracy(&similarity, &probe_ids, &gallery_ids, 5.min(split.gallery.len()))?;
    let v = VerificationScores::from_pairs(scores, genuine)?;
    Ok(OneShotReport {
        identities: split.gallery.len(),
        probes: split.probes.len(),
        rank1,
        rank5,
        verification: VerificationReport::new("1-shot probe × gallery", &v, &[1e-3, 1e-2, 1e-1])?,
    })
}

/// The ArcFace fine-tune on the gallery shots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FineTuneConfig {
    /// Optimizer steps.
    pub steps: usize,
    /// Adam learning rate (backbone and class centres).
    pub lr: f64,
    /// Augmented views of each shot per step.
    pub views_per_shot: usize,
    /// ArcFace scale `s`.
    pub scale: f64,
    /// ArcFace additive angular margin `m`.
    pub margin: f64,
    /// Augmentation seed.
    pub seed: u64,
}

impl Default for FineTuneConfig {
    fn default() -> Self {
        Self {
            steps: 20,
            lr: 1e-4,
            views_per_shot: 4,
            scale: 32.0,
            margin: 0.3,
            seed: 0,
        }
    }
}

/// Moves a backbone's weights to another backend (e.g. an inference backbone to the autodiff
/// backend for fine-tuning) through a full-precision record.
///
/// # Errors
/// The recorder failing, or a template of another architecture.
pub fn transfer<B1: Backend, B2: Backend>(
    backbone: &TokenVit<B1>,
    template: TokenVit<B2>,
    device: &B2::Device,
) -> Result<TokenVit<B2>> {
    Ok(face_nets::record::transfer(backbone, template, device)?)
}

/// Fine-tunes `backbone` with ArcFace on the gallery shots `faces` (one per identity, class =
/// position), each step on `views_per_shot` augmented global views of every shot. Returns the
/// fine-tuned backbone and the loss of each step.
///
/// # Errors
/// Fewer than two shots, degenerate landmarks, a bad margin or a non-finite loss.
pub fn arcface_finetune<B: AutodiffBackend>(
    backbone: TokenVit<B>,
    views: &ViewBuilder,
    shots: &[Face],
    config: &FineTuneConfig,
    device: &B::Device,
) -> Result<(TokenVit<B::InnerBackend>, Vec<f64>)> {
    if shots.len() < 2 {
        return Err(SslError::Data(format!(
            "fine-tuning needs ≥ 2 identities, got {}",
            shots.len()
        )));
    }
    let margin: CombinedMargin = {
        let c = CombinedMarginConfig::arcface()
            .with_scale(config.scale)
            .with_m2(config.margin);
        c.validate()?;
        c.init()
    };
    #[derive(Module, Debug)]
    struct Tuned<B: Backend> {
        backbone: TokenVit<B>,
        centres: NormLinear<B>,
    }
    let d = backbone.embed_dim();
    let mut model = Tuned {
        backbone,
        centres: NormLinear::new(d, shots.len(), device),
    };
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init::<B, Tuned<B>>();
    let mut rng = DataRng::seed_from_u64(config.seed);
    let mut losses = Vec::with_capacity(config.steps);
    for step in 0..config.steps {
        let mut tokens = Vec::new();
        let mut labels = Vec::new();
        for _ in 0..config.views_per_shot.max(1) {
            for (class, face) in shots.iter().enumerate() {
                tokens.push(views.views(face, &mut rng)?.global[0].clone());
                labels.push(class as i64);
            }
        }
        let refs: Vec<&ViewTokens> = tokens.iter().collect();
        let batch = stack::<B>(&refs, device)?;
        let n = labels.len();
        let labels = Tensor::<B, 1, Int>::from_data(TensorData::new(labels, [n]), device);
        let cos = model.centres.forward(model.backbone.forward(&batch));
        let loss = margin.forward(cos, labels);
        let value = loss.clone().into_scalar().elem::<f64>();
        if !value.is_finite() {
            return Err(SslError::NonFinite {
                step: step as u64 + 1,
                value,
            });
        }
        losses.push(value);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(config.lr, model, grads);
    }
    Ok((model.backbone.valid(), losses))
}

/// Instance retrieval across augmentations, a label-free readout of what pretraining learned:
/// two augmented global views of every face are embedded, and each first view searches all
/// second views; the result is the fraction whose nearest second view is of the same image
/// (chance: `1 / faces.len()`). Views are drawn from `seed`, so two backbones can be compared
/// on the same views.
///
/// # Errors
/// Fewer than two faces, or degenerate landmarks.
pub fn view_retrieval<B: Backend>(
    backbone: &TokenVit<B>,
    views: &ViewBuilder,
    faces: &[Face],
    seed: u64,
    device: &B::Device,
) -> Result<f64> {
    if faces.len() < 2 {
        return Err(SslError::Data("view retrieval needs at least 2 faces".into()));
    }
    let mut rng = DataRng::seed_from_u64(seed);
    let pairs = faces
        .iter()
        .map(|f| views.views(f, &mut rng))
        .collect::<Result<Vec<_>>>()?;
    let side = |k: usize| -> Result<Tensor<B, 2>> {
        let refs: Vec<&ViewTokens> = pairs.iter().map(|v| &v.global[k]).collect();
        Ok(face_nets::l2_normalize(
            backbone.forward(&stack::<B>(&refs, device)?),
            1e-12,
        ))
    };
    let nearest = side(0)?.matmul(side(1)?.transpose()).argmax(1);
    let hits = nearest
        .into_data()
        .convert::<i64>()
        .as_slice::<i64>()
        .map_err(|e| SslError::Data(format!("retrieval readback: {e:?}")))?
        .iter()
        .enumerate()
        .filter(|(i, j)| *i as i64 == **j)
        .count();
    Ok(hits as f64 / faces.len() as f64)
}

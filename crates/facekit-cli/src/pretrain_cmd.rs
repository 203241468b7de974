//! `facekit pretrain`: DINO / LAFS self-supervised pretraining of a ViT on the faces of a folder.

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::backend::AutodiffBackend;
use face_distill::DeviceChoice;
use face_ssl::fewshot::transfer;
use face_ssl::{embed, one_shot_eval, Face, PretrainConfig, Pretrainer, Tokenizer};
use serde_json::json;

use crate::commands::Outcome;
use crate::engine::{bar, collect_images, Engine};
use crate::error::{bad, Classify, Res};

/// The options of `facekit pretrain`.
pub struct PretrainArgs<'a> {
    pub images: &'a Path,
    pub out: &'a Path,
    pub method: &'a str,
    pub preset: &'a str,
    pub config: Option<&'a Path>,
    pub overrides: &'a [String],
    pub device: &'a str,
    pub labels: Option<&'a Path>,
    pub quiet: bool,
}

/// The configuration the options ask for.
fn configuration(a: &PretrainArgs<'_>) -> Res<PretrainConfig> {
    let tokenizer: Tokenizer = a.method.parse().input()?;
    let base = match (a.config, a.preset) {
        (Some(p), _) => PretrainConfig::read(p).input()?,
        (None, "tiny") => PretrainConfig::tiny(tokenizer),
        (None, "vit-tiny") => match tokenizer {
            Tokenizer::Landmarks => PretrainConfig::lafs(),
            Tokenizer::Grid => PretrainConfig::dino(),
        },
        (None, other) => return Err(bad(format!("unknown --preset `{other}` (tiny or vit-tiny)"))),
    };
    let config = base.with_overrides(a.overrides).input()?;
    config.validate().input()?;
    Ok(config)
}

/// Faces with the identity of some of them (index into the faces, identity).
type LabelledFaces = (Vec<Face>, Vec<(usize, String)>);

/// Every confident face of every image, aligned at 112 px with its landmarks; the identity of a
/// labelled image goes to its largest face.
fn faces(engine: &Engine, a: &PretrainArgs<'_>) -> Res<LabelledFaces> {
    if !a.images.is_dir() {
        return Err(bad(format!("{}: not a folder", a.images.display())));
    }
    let labels: HashMap<String, String> = match a.labels {
        Some(p) => face_distill::data::read_labels(p).input()?,
        None => HashMap::new(),
    };
    let items = collect_images(&[a.images.to_path_buf()])?;
    let mtcnn = engine.mtcnn()?;
    let progress = bar(items.len(), "detect", a.quiet);
    let (mut faces, mut labelled) = (Vec::new(), Vec::new());
    for (id, path) in &items {
        let photo = face_data::read_rgb(path).input()?;
        let found: Vec<_> = mtcnn
            .detect(&photo)
            .into_iter()
            .filter(|d| d.score >= 0.9)
            .collect();
        let largest = found
            .iter()
            .enumerate()
            .max_by(|x, y| x.1.area().total_cmp(&y.1.area()))
            .map(|(i, _)| i);
        for (i, d) in found.iter().enumerate() {
            if let (Some(identity), Some(l)) = (labels.get(id), largest) {
                if i == l {
                    labelled.push((faces.len(), identity.clone()));
                }
            }
            faces.push(
                Face::align(&photo, &d.landmarks, 112)
                    .map_err(|e| bad(format!("{}: {e}", path.display())))?,
            );
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    if faces.len() < 2 {
        return Err(bad(format!(
            "{}: {} face(s) found; pretraining needs at least 2",
            a.images.display(),
            faces.len()
        )));
    }
    Ok((faces, labelled))
}

/// Trains on backend `B`, saves the run, and reads out the 1-shot protocol when labels exist.
fn train<B: AutodiffBackend>(
    config: PretrainConfig,
    device: B::Device,
    faces: &[Face],
    labelled: &[(usize, String)],
    a: &PretrainArgs<'_>,
) -> Res<Outcome> {
    let trainer = Pretrainer::<B>::new(config.clone(), device.clone()).input()?;
    let progress = bar(config.optim.epochs, "pretrain", a.quiet);
    let mut warnings = Vec::new();
    let run = trainer
        .fit(faces, |row| {
            progress.inc(1);
            if let Some(c) = row.collapse {
                let w = format!("epoch {}: collapse — {c}", row.epoch);
                progress.suspend(|| eprintln!("warning: {w}"));
                warnings.push(w);
            }
            true
        })
        .failure()?;
    progress.finish_and_clear();
    run.save(a.out).failure()?;
    let mut human = String::new();
    let first = run.history.first().map(|r| r.monitors);
    let last = run.history.last().map(|r| r.monitors);
    if let (Some(f), Some(l)) = (first, last) {
        human.push_str(&format!(
            "{} faces, {} epochs → {}\nloss {:.3} → {:.3}; teacher entropy {:.3} → {:.3} (ln K = {:.3}); KL {:.3} → {:.3}; std·√d {:.3} → {:.3}\n",
            faces.len(),
            run.history.len(),
            a.out.display(),
            f.loss,
            l.loss,
            f.teacher_entropy,
            l.teacher_entropy,
            l.max_entropy,
            f.kl,
            l.kl,
            f.std_ratio,
            l.std_ratio
        ));
    }
    let mut one_shot = None;
    if !labelled.is_empty() {
        let ids: Vec<String> = labelled.iter().map(|(_, id)| id.clone()).collect();
        let lf: Vec<Face> = labelled.iter().map(|(i, _)| faces[*i].clone()).collect();
        let infer_device = device.clone();
        let backbone = transfer(
            &run.teacher.backbone,
            config.vit.init::<B::InnerBackend>(&infer_device).failure()?,
            &infer_device,
        )
        .failure()?;
        let e = embed(&backbone, trainer.views(), &lf, 32, &infer_device).failure()?;
        let report = one_shot_eval(&e, &ids).input()?;
        human.push_str(&format!(
            "1-shot ({} identities, {} probes): rank-1 {:.1} %, AUC {:.3}\n",
            report.identities,
            report.probes,
            100.0 * report.rank1,
            report.verification.auc
        ));
        crate::commands::write_json(&a.out.join("one_shot.json"), &report)?;
        one_shot = Some(report);
    }
    for w in &warnings {
        human.push_str(&format!("warning: {w}\n"));
    }
    let summary = json!({
        "command": "pretrain", "faces": faces.len(), "run": a.out, "history": run.history,
        "collapse_warnings": warnings, "one_shot": one_shot.map(|r| json!({
            "identities": r.identities, "probes": r.probes, "rank1": r.rank1, "rank5": r.rank5,
            "auc": r.verification.auc,
        })),
    });
    Ok(Outcome::ok(human, summary))
}

/// Runs `facekit pretrain`.
pub fn pretrain(engine: &Engine, a: &PretrainArgs<'_>) -> Res<Outcome> {
    let config = configuration(a)?;
    let device: DeviceChoice = a.device.parse().input()?;
    let (faces, labelled) = faces(engine, a)?;
    match device {
        DeviceChoice::NdArray => {
            train::<face_distill::NdArrayTrain>(config, Default::default(), &faces, &labelled, a)
        }
        DeviceChoice::Candle => {
            train::<face_distill::CandleTrain>(config, Default::default(), &faces, &labelled, a)
        }
        DeviceChoice::Cuda(ids) => {
            if ids.len() != 1 {
                return Err(bad("pretrain runs on one GPU (cuda or cuda:N)"));
            }
            face_distill::runtime::check_cuda(&ids).failure()?;
            #[cfg(feature = "cuda")]
            {
                let device = burn::backend::cuda::CudaDevice { index: ids[0] };
                train::<face_distill::runtime::CudaTrain>(config, device, &faces, &labelled, a)
            }
            #[cfg(not(feature = "cuda"))]
            Err(crate::error::CliError::Failure(
                "this build has no CUDA support; rebuild with `--features cuda`".into(),
            ))
        }
    }
}

//! `facekit pretrain`: DINO / LAFS self-supervised pretraining of a ViT on the faces of a folder
//! (resumable: the output folder keeps step-exact checkpoints).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::backend::AutodiffBackend;
use clap::Args;
use face_nets::DeviceChoice;
use face_ssl::{embed, one_shot_eval, Face, PretrainConfig, Pretrainer, Tokenizer};
use serde_json::json;

use crate::args::{MethodArg, PresetArg};
use crate::engine::{collect_images, Engine};
use crate::error::{bad, Classify, Res};
use crate::output::{bar, write_json, Outcome};

/// Options of `facekit pretrain`.
#[derive(Debug, Args)]
pub struct PretrainArgs {
    /// Folder of images; every face MTCNN finds is aligned with its landmarks.
    #[arg(long)]
    pub images: PathBuf,
    /// Output folder: config.json, backbone.json + backbone.bin, head.bin, history.json,
    /// monitors.svg, checkpoints/ (a rerun resumes).
    #[arg(long)]
    pub out: PathBuf,
    /// Patches on facial landmarks (LAFS) or a regular patch grid (DINO).
    #[arg(long, value_enum, default_value_t = MethodArg::Lafs)]
    pub method: MethodArg,
    /// `vit-tiny` (ViT-Tiny, 65 536 prototypes, the paper recipe) or `tiny` (a CPU demo).
    #[arg(long, value_enum, default_value_t = PresetArg::VitTiny)]
    pub preset: PresetArg,
    /// A configuration file (JSON, as written into config.json) instead of the preset.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a configuration key, e.g. `--set optim.epochs=5` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// cpu (NdArray), candle, or cuda / cuda:N.
    #[arg(long, default_value = "cpu", value_parser = crate::args::device)]
    pub device: DeviceChoice,
    /// Identities of some images (`image,identity` CSV): a 1-shot read-out after training.
    #[arg(long)]
    pub labels: Option<PathBuf>,
}

/// The configuration the options ask for.
fn configuration(a: &PretrainArgs) -> Res<PretrainConfig> {
    let tokenizer: Tokenizer = a.method.into();
    let base = match (&a.config, a.preset) {
        (Some(p), _) => PretrainConfig::read(p).input()?,
        (None, PresetArg::Tiny) => PretrainConfig::tiny(tokenizer),
        (None, PresetArg::VitTiny) => match tokenizer {
            Tokenizer::Landmarks => PretrainConfig::lafs(),
            Tokenizer::Grid => PretrainConfig::dino(),
        },
    };
    let config = base.with_overrides(&a.overrides).input()?;
    config.validate().input()?;
    Ok(config)
}

/// Faces with the identity of some of them (index into the faces, identity).
type LabelledFaces = (Vec<Face>, Vec<(usize, String)>);

/// Every confident face of every image, aligned at 112 px with its landmarks; the identity of a
/// labelled image goes to its largest face.
fn faces(engine: &Engine, a: &PretrainArgs, quiet: bool) -> Res<LabelledFaces> {
    if !a.images.is_dir() {
        return Err(bad(format!("{}: not a folder", a.images.display())));
    }
    let labels: HashMap<String, String> = match &a.labels {
        Some(p) => face_data::read_identity_labels(p).input()?,
        None => HashMap::new(),
    };
    let items = collect_images(std::slice::from_ref(&a.images))?;
    let progress = bar(items.len(), "detect", quiet);
    let (mut faces, mut labelled) = (Vec::new(), Vec::new());
    let scan = engine.mtcnn()?.scan_images(
        &items,
        &labels,
        0.9,
        || progress.inc(1),
        |f| -> Res<()> {
            if let Some(identity) = f.label {
                labelled.push((faces.len(), identity.to_owned()));
            }
            let face = Face::align(f.photo, &f.detection.landmarks, 112)
                .map_err(|e| bad(format!("{}: {e}", f.image_id)))?;
            faces.push(face);
            Ok(())
        },
    )?;
    progress.finish_and_clear();
    if let Some((id, why)) = scan.unreadable.first() {
        return Err(bad(format!("{id}: {why}")));
    }
    if faces.len() < 2 {
        return Err(bad(format!(
            "{}: {} face(s) found; pretraining needs at least 2",
            a.images.display(),
            faces.len()
        )));
    }
    Ok((faces, labelled))
}

/// Trains on backend `B` (resuming from the output folder's checkpoints), saves the run, and
/// reads out the 1-shot protocol when labels exist.
fn train<B: AutodiffBackend>(
    config: PretrainConfig,
    device: B::Device,
    faces: &[Face],
    labelled: &[(usize, String)],
    out: &Path,
    quiet: bool,
) -> Res<Outcome> {
    let trainer = Pretrainer::<B>::new(config.clone(), device.clone())
        .input()?
        .with_run_dir(out)
        .with_progress(!quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let mut warnings = Vec::new();
    let run = trainer
        .fit(faces, |row| {
            if let Some(c) = row.collapse {
                let w = format!("epoch {}: collapse — {c}", row.epoch);
                if !quiet {
                    eprintln!("warning: {w}");
                }
                warnings.push(w);
            }
            true
        })
        .failure()?;
    run.save(out).failure()?;
    let mut human = String::new();
    if let Some(from) = &run.resumed_from {
        human.push_str(&format!("resumed from {}\n", from.display()));
    }
    let first = run.history.first().map(|r| r.monitors);
    let last = run.history.last().map(|r| r.monitors);
    if let (Some(f), Some(l)) = (first, last) {
        human.push_str(&format!(
            "{} faces, {} epochs → {}\nloss {:.3} → {:.3}; teacher entropy {:.3} → {:.3} (ln K = {:.3}); KL {:.3} → {:.3}; std·√d {:.3} → {:.3}\n",
            faces.len(),
            run.history.len(),
            out.display(),
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
        let e = embed(&run.teacher.backbone, trainer.views(), &lf, 32, &device).failure()?;
        let report = one_shot_eval(&e, &ids).input()?;
        human.push_str(&format!(
            "1-shot ({} identities, {} probes): rank-1 {:.1} %, AUC {:.3}\n",
            report.identities,
            report.probes,
            100.0 * report.rank1,
            report.verification.auc
        ));
        write_json(&out.join("one_shot.json"), &report)?;
        one_shot = Some(report);
    }
    for w in &warnings {
        human.push_str(&format!("warning: {w}\n"));
    }
    let summary = json!({
        "command": "pretrain", "faces": faces.len(), "run": out, "history": run.history,
        "steps": run.steps, "resumed_from": run.resumed_from,
        "collapse_warnings": warnings, "one_shot": one_shot.map(|r| json!({
            "identities": r.identities, "probes": r.probes, "rank1": r.rank1, "rank5": r.rank5,
            "auc": r.verification.auc,
        })),
    });
    Ok(Outcome::ok(human, summary))
}

/// Runs `facekit pretrain`.
pub fn run(engine: &Engine, a: PretrainArgs, quiet: bool) -> Res<Outcome> {
    let config = configuration(&a)?;
    let (faces, labelled) = faces(engine, &a, quiet)?;
    if matches!(&a.device, DeviceChoice::Cuda(ids) if ids.len() != 1) {
        return Err(bad("pretrain runs on one GPU (cuda or cuda:N)"));
    }
    struct Pretrain<'a> {
        config: PretrainConfig,
        faces: &'a [Face],
        labelled: &'a [(usize, String)],
        out: &'a Path,
        quiet: bool,
    }
    impl face_nets::TrainJob for Pretrain<'_> {
        type Output = Res<Outcome>;
        fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>) -> Res<Outcome> {
            let device = devices.into_iter().next().unwrap_or_default();
            train::<B>(
                self.config,
                device,
                self.faces,
                self.labelled,
                self.out,
                self.quiet,
            )
        }
    }
    a.device
        .train(Pretrain {
            config,
            faces: &faces,
            labelled: &labelled,
            out: &a.out,
            quiet,
        })
        .failure()?
}

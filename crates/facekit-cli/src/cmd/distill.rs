//! `facekit distill`: teach, then distil a student from the two teachers (resumable).

use std::path::PathBuf;

use clap::Args;
use face_distill::config::DistillConfig;
use face_distill::data::FaceSet;
use face_nets::DeviceChoice;
use serde_json::json;

use crate::engine::Engine;
use crate::error::{bad, Classify, Res};
use crate::output::Outcome;

/// Options of `facekit distill`.
#[derive(Debug, Args)]
pub struct DistillArgs {
    /// Folder of images (unlabelled).
    #[arg(long)]
    pub images: PathBuf,
    /// Output folder (faces/, targets.safetensors, run/).
    #[arg(long)]
    pub out: PathBuf,
    /// Identities of some images (`image,identity` CSV) for the validation report.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// A configuration file (JSON, as written into run/config.json); default: the built-in one.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a configuration key, e.g. `--set train.epochs=5` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Start the student's backbone from a `facekit pretrain` folder (config key `student.init`;
    /// the student then has the pretrained backbone's architecture).
    #[arg(long, value_name = "PRETRAIN_DIR")]
    pub init: Option<PathBuf>,
    /// The teachers (flags replace the config's `teachers` keys).
    #[command(flatten)]
    pub teachers: crate::args::TeacherArgs,
    /// cpu (NdArray), candle, cuda or cuda:0,1.
    #[arg(long, default_value = "cpu", value_parser = crate::args::device)]
    pub device: DeviceChoice,
}

/// Runs `facekit distill`.
pub fn run(engine: &Engine, a: DistillArgs, quiet: bool) -> Res<Outcome> {
    let base = match &a.config {
        Some(p) => DistillConfig::read(p).input()?,
        None => DistillConfig::default(),
    };
    let mut config = base.with_overrides(&a.overrides).input()?;
    if let Some(init) = &a.init {
        config.student.init = Some(init.clone());
    }
    config.teachers = a.teachers.apply(&config.teachers);
    let config = config.resolve_init().input()?;
    config.validate().input()?;
    if !a.images.is_dir() {
        return Err(bad(format!("{}: not a folder", a.images.display())));
    }
    let image_labels = match &a.labels {
        Some(p) => face_data::read_identity_labels(p).input()?,
        None => Default::default(),
    };
    let faces = a.out.join("faces");
    let cut =
        face_distill::pipeline::cut_faces(engine.mtcnn()?, &a.images, &image_labels, &faces).failure()?;
    let cache_path = a.out.join("targets.safetensors");
    let (cache, items, _) =
        face_distill::pipeline::build_targets(&engine.models, &config.teachers, &faces, &cache_path, !quiet)
            .input()?;
    let size = config.student.backbone.input_size() as u32;
    let train = FaceSet::from_cache(&cache, &items, size, None).input()?;
    let val = if cut.face_labels.is_empty() {
        None
    } else {
        Some(FaceSet::from_cache(&cache, &items, size, Some(&cut.face_labels)).input()?)
    };
    let run_dir = a.out.join("run");
    let run = face_distill::pipeline::distill(&config, &a.device, &train, val.as_ref(), &run_dir, true)
        .failure()?;
    let mut human = format!(
        "{} training faces, {} steps this call (resumed from {}) → {}\n",
        train.len(),
        run.steps_this_call,
        run.resumed_from
            .as_ref()
            .map_or("scratch".to_owned(), |p| p.display().to_string()),
        run_dir.display()
    );
    if let Some(r) = &run.report {
        human.push_str(&r.table());
    }
    let summary = json!({
        "command": "distill", "faces": train.len(), "labelled": val.as_ref().map_or(0, |v| v.len()),
        "steps_this_call": run.steps_this_call, "run": run_dir, "report": run.report,
        "backbone": config.student.backbone.arch(), "init": config.student.init,
    });
    Ok(Outcome::ok(human, summary))
}

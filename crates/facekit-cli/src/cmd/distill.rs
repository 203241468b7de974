//! `facekit distill`: teach, then distil a student from the two teachers (resumable). Photos
//! are detected and cut first; aligned crops (an insightface RecordIO set, a folder, a list)
//! are taught and trained as they are, streamed from disk when there are many
//! (`data.stream`).

use std::path::PathBuf;

use clap::Args;
use face_distill::config::DistillConfig;
use face_distill::data::{FaceSet, TrainFaces};
use face_nets::DeviceChoice;
use serde_json::json;

use crate::engine::Engine;
use crate::error::{bad, Classify, Res};
use crate::output::Outcome;

/// Options of `facekit distill`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["images", "aligned"])))]
pub struct DistillArgs {
    /// Folder of photos (unlabelled): faces are detected and cut into OUT/faces/.
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// ArcFace-aligned square crops, used as they are: an insightface RecordIO folder
    /// (train.rec + train.idx), a folder of images, or a list file of image paths.
    #[arg(long, value_name = "REC_DIR|FOLDER|LIST")]
    pub aligned: Option<PathBuf>,
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
    /// cpu (NdArray), candle, cuda or cuda:0,1. The teachers run on NdArray for either CPU
    /// choice, on the first GPU for CUDA.
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
    // Before cutting and teaching, which take a while and run on the same device.
    if let DeviceChoice::Cuda(ids) = &a.device {
        face_nets::check_cuda(ids).failure()?;
    }
    let cache_path = a.out.join("targets.safetensors");
    let size = config.student.backbone.input_size() as u32;
    let (train, val): (Box<dyn TrainFaces>, Option<FaceSet>) = match (&a.images, &a.aligned) {
        (Some(images), _) => {
            if !images.is_dir() {
                return Err(bad(format!("{}: not a folder", images.display())));
            }
            let image_labels = match &a.labels {
                Some(p) => face_data::read_identity_labels(p).input()?,
                None => Default::default(),
            };
            let faces = a.out.join("faces");
            let cut = face_distill::pipeline::cut_faces(engine.mtcnn()?, images, &image_labels, &faces)
                .failure()?;
            face_distill::pipeline::build_targets(
                &engine.models,
                &config.teachers,
                &faces,
                &cache_path,
                !quiet,
                &a.device,
            )
            .input()?;
            let source = Box::new(face_data::FileFaces::folder(&faces).input()?);
            let val = if cut.face_labels.is_empty() {
                None
            } else {
                let cache = face_teachers::TargetCache::read(&cache_path).input()?;
                Some(FaceSet::from_cache(&cache, source.as_ref(), size, Some(&cut.face_labels)).input()?)
            };
            let train = face_distill::pipeline::training_faces(&cache_path, source, size, config.data.stream)
                .input()?;
            (train, val)
        }
        (None, Some(aligned)) => {
            if a.labels.is_some() {
                return Err(bad("--labels goes with --images (photos), not --aligned"));
            }
            let source = face_data::open_source(aligned, true).input()?;
            std::fs::create_dir_all(&a.out).map_err(|e| bad(format!("{}: {e}", a.out.display())))?;
            let options = face_teachers::BuildOptions {
                progress: !quiet,
                ..Default::default()
            };
            face_distill::pipeline::teach_source(
                &engine.models,
                &config.teachers,
                source.as_ref(),
                &cache_path,
                &options,
                &a.device,
            )
            .input()?;
            let train = face_distill::pipeline::training_faces(&cache_path, source, size, config.data.stream)
                .input()?;
            (train, None)
        }
        (None, None) => return Err(bad("give --images or --aligned")),
    };
    let run_dir = a.out.join("run");
    let run =
        face_distill::pipeline::distill(&config, &a.device, train.as_ref(), val.as_ref(), &run_dir, true)
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
        "command": "distill", "faces": train.len(), "streamed": config.data.stream.streams(train.len()), "labelled": val.as_ref().map_or(0, |v| v.len()),
        "steps_this_call": run.steps_this_call, "run": run_dir, "report": run.report,
        "backbone": config.student.backbone.arch(), "init": config.student.init,
    });
    Ok(Outcome::ok(human, summary))
}

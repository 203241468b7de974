//! The main job, offline on the bundled real models and faces: detect and align every face →
//! run both teachers → teacher-target cache → distil a small student → report teacher against
//! student.
//!
//! ```text
//! cargo run --release --example quickstart                       # bundled faces (data/faces)
//! cargo run --release --example quickstart -- --images DIR [--labels id.csv] [--epochs N]
//!     [--device cpu|candle|cuda|cuda:0,1] [--out runs/quickstart] [--set key=value]…  (cpu: the default)
//! ```
//!
//! Every face found is a training face (unlabelled). Faces with a known identity (bundled:
//! `data/faces/manifest.csv`; yours: `--labels` CSV of `image file,identity`) form the labelled
//! pairs of the report; the report says so when they are also training faces. Rerunning resumes:
//! the cache and the training checkpoint are both reused.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use face_distill::config::DistillConfig;
use face_distill::pipeline::{build_targets, cut_faces, distill, load_mtcnn};
use face_distill::FaceSet;
use face_nets::DeviceChoice;
use face_teachers::default_models_dir;

type Error = Box<dyn std::error::Error>;

struct Args {
    images: PathBuf,
    labels: Option<PathBuf>,
    out: PathBuf,
    epochs: u64,
    device: DeviceChoice,
    overrides: Vec<String>,
}

fn parse_args() -> Result<Args, Error> {
    let mut a = Args {
        images: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/faces"),
        labels: None,
        out: PathBuf::from("runs/quickstart"),
        epochs: 40,
        device: DeviceChoice::NdArray,
        overrides: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--images" => a.images = value()?.into(),
            "--labels" => a.labels = Some(value()?.into()),
            "--out" => a.out = value()?.into(),
            "--epochs" => a.epochs = value()?.parse()?,
            "--device" => a.device = value()?.parse()?,
            "--set" => a.overrides.push(value()?),
            "-h" | "--help" => {
                println!(
                    "usage: quickstart [--images DIR] [--labels CSV] [--out DIR] [--epochs N] \
                     [--device cpu|candle|cuda[:i,j]] [--set key=value]…"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}` (try --help)").into()),
        }
    }
    Ok(a)
}

/// Identity of each image file: `--labels` when given; for the bundled folder, the identities
/// its manifest names (its labelled photos each show one person).
fn image_labels(args: &Args) -> Result<HashMap<String, String>, Error> {
    if let Some(p) = &args.labels {
        return Ok(face_data::read_identity_labels(p)?);
    }
    let manifest = args.images.join("manifest.csv");
    if manifest.is_file() {
        return Ok(face_data::read_identity_labels(&manifest)?);
    }
    Ok(HashMap::new())
}

fn main() -> Result<(), Error> {
    facekit::nets::keep_freed_memory();
    let t_all = Instant::now();
    let args = parse_args()?;
    let models = default_models_dir();
    let mut config = DistillConfig::default();
    config.train.epochs = args.epochs;
    config.data.batch = 16;
    config.train.checkpoint_every = 25;
    config.train.early_stop_patience = None;
    let config = config.with_overrides(&args.overrides)?.resolve_init()?;
    config.validate()?;

    // 1. Every face, cut out with a margin (rerun: the crops are made again, identically).
    let faces_dir = args.out.join("faces");
    let cut = cut_faces(
        &load_mtcnn(&models)?,
        &args.images,
        &image_labels(&args)?,
        &faces_dir,
    )?;
    println!(
        "1. detect: {} faces in {} images ({} unreadable), {} with an identity ({:.1} s)",
        cut.faces,
        cut.images,
        cut.unreadable.len(),
        cut.face_labels.len(),
        cut.seconds
    );

    // 2. Both teachers on every crop, into the resumable target cache.
    let t0 = Instant::now();
    let cache_path = args.out.join("targets.safetensors");
    let (cache, items, built) = build_targets(
        &models,
        &config.teachers,
        &faces_dir,
        &cache_path,
        true,
        &args.device,
    )?;
    println!(
        "2. teachers: {} faces cached ({} resumed), {} skipped ({:.1} s) → {}",
        cache.len(),
        built.resumed,
        cache.skipped.len(),
        t0.elapsed().as_secs_f64(),
        cache_path.display()
    );

    // 3. Distil: all faces train (unlabelled); the labelled ones also make the report's pairs.
    // Crops at the student's input size (`--set` may pick another backbone).
    let size = config.student.backbone.input_size() as u32;
    let train = FaceSet::from_cache(&cache, &items, size, None)?;
    let val = FaceSet::from_cache(&cache, &items, size, Some(&cut.face_labels))?;
    let run_dir = args.out.join("run");
    println!(
        "3. student: {} training faces, {} labelled; {} epochs on {:?} (resumes from {} if present)",
        train.len(),
        val.len(),
        config.train.epochs,
        args.device,
        run_dir.join("checkpoints").display()
    );
    let run = distill(&config, &args.device, &train, Some(&val), &run_dir, true, None)?;
    if let Some(report) = &run.report {
        println!(
            "4. report ({}):\n{}",
            run_dir.join("report.json").display(),
            report.table()
        );
    }
    println!(
        "files in {}: config.json train.csv val.csv loss.svg irauc.svg roc.svg report.json model.json student.bin checkpoints/\n\
         total {:.1} s",
        run_dir.display(),
        t_all.elapsed().as_secs_f64()
    );
    Ok(())
}

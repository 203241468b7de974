//! The main job, offline on the bundled real models and faces: detect and align every face →
//! run both teachers → teacher-target cache → distil a small student → report teacher against
//! student.
//!
//! ```text
//! cargo run --release --example quickstart                       # bundled faces (data/faces)
//! cargo run --release --example quickstart -- --images DIR [--labels id.csv] [--epochs N]
//!     [--device cpu|candle|cuda|cuda:0,1] [--out runs/quickstart] [--set key=value]…
//! ```
//!
//! Every face found is a training face (unlabelled). Faces with a known identity (bundled:
//! `data/faces/manifest.csv`; yours: `--labels` CSV of `image file,identity`) form the labelled
//! pairs of the report; the report says so when they are also training faces. Rerunning resumes:
//! the cache and the training checkpoint are both reused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::backend::NdArray;
use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use face_detect::{Mtcnn, MtcnnConfig};
use face_distill::config::DistillConfig;
use face_distill::data::read_labels;
use face_distill::eval::predict;
use face_distill::runtime::check_cuda;
use face_distill::{write_report, DeviceChoice, FaceSet, Student, Trainer};
use face_teachers::{
    build_cache, default_models_dir, BuildOptions, CacheItem, DlibAgeGenderTeacher, FrFeatureTeacher,
    LandmarkSource, TargetCache,
};

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
        device: DeviceChoice::Candle,
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
                println!("usage: quickstart [--images DIR] [--labels CSV] [--out DIR] [--epochs N] [--device cpu|candle|cuda[:i,j]] [--set key=value]…");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}` (try --help)").into()),
        }
    }
    Ok(a)
}

/// Identity of each image file: `--labels` when given; for the bundled folder, the manifest's
/// single-face images.
fn image_labels(args: &Args) -> Result<HashMap<String, String>, Error> {
    if let Some(p) = &args.labels {
        return Ok(read_labels(p)?);
    }
    let manifest = args.images.join("manifest.csv");
    let mut out = HashMap::new();
    if let Ok(text) = std::fs::read_to_string(&manifest) {
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() >= 3 && !f[1].is_empty() && f[2] == "1" {
                out.insert(f[0].to_string(), f[1].to_string());
            }
        }
    }
    Ok(out)
}

/// Step 1: every face of every image, cut out with a margin of one face size around it (so
/// both teachers' crops fit), written as `faces/<image>__<k>.png`. Returns the face files'
/// identity labels (the largest face of a labelled image carries its label).
fn cut_faces(args: &Args, mtcnn: &Mtcnn<NdArray>, faces_dir: &Path) -> Result<HashMap<String, String>, Error> {
    std::fs::create_dir_all(faces_dir)?;
    let labels = image_labels(args)?;
    let mut face_labels = HashMap::new();
    let items = CacheItem::from_folder(&args.images)?;
    let done = faces_dir.join(".done");
    let already = done.exists();
    let t0 = Instant::now();
    let mut count = 0;
    for item in &items {
        let img = match face_data::read_rgb(&item.path) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("skipping {}: {e}", item.id);
                continue;
            }
        };
        let stem = item.id.replace(['/', '\\'], "_");
        let dets = if already { Vec::new() } else { mtcnn.detect(&img) };
        let n = if already {
            std::fs::read_dir(faces_dir)?
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("{stem}__")))
                .count()
        } else {
            dets.len()
        };
        for (k, d) in dets.iter().enumerate() {
            let [x0, y0, x1, y1] = d.bbox;
            let side = 2.0 * (x1 - x0).max(y1 - y0);
            let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
            let left = (cx - side / 2.0).max(0.0) as u32;
            let top = (cy - side / 2.0).max(0.0) as u32;
            let w = (side as u32).min(img.width().saturating_sub(left)).max(1);
            let h = (side as u32).min(img.height().saturating_sub(top)).max(1);
            let crop = image::imageops::crop_imm(&img, left, top, w, h).to_image();
            crop.save(faces_dir.join(format!("{stem}__{k}.png")))?;
        }
        count += n;
        if let (Some(name), true) = (labels.get(&item.id), n > 0) {
            face_labels.insert(format!("{stem}__0.png"), name.clone());
        }
    }
    std::fs::write(&done, b"")?;
    println!(
        "1. detect + cut: {count} faces from {} images ({:.1} s){}",
        items.len(),
        t0.elapsed().as_secs_f64(),
        if already { ", reused" } else { "" }
    );
    Ok(face_labels)
}

fn main() -> Result<(), Error> {
    let args = parse_args()?;
    let models = default_models_dir();
    let cpu = Default::default();
    let mtcnn = Mtcnn::<NdArray>::load(&models, MtcnnConfig::default(), &cpu)?;
    let faces_dir = args.out.join("faces");
    let face_labels = cut_faces(&args, &mtcnn, &faces_dir)?;

    // 2. Both teachers on every face crop (MTCNN finds the face again inside its crop), cached.
    let t0 = Instant::now();
    let identity = FrFeatureTeacher::<NdArray>::load(&models, &cpu)?;
    let age_gender = DlibAgeGenderTeacher::<NdArray>::load(&models, &cpu)?;
    let items = CacheItem::from_folder(&faces_dir)?;
    let cache_path = args.out.join("targets.safetensors");
    let options = BuildOptions {
        progress: true,
        ..BuildOptions::default()
    };
    build_cache(&identity, &age_gender, LandmarkSource::Detect(&mtcnn), &items, &cache_path, &options, &cpu)?;
    let cache = TargetCache::read(&cache_path)?;
    println!(
        "2. teachers: {} faces cached, {} skipped ({:.1} s) → {}",
        cache.len(),
        cache.skipped.len(),
        t0.elapsed().as_secs_f64(),
        cache_path.display()
    );

    // 3. Student training faces (all) and labelled faces (for the report).
    let mut config = DistillConfig::default();
    config.train.epochs = args.epochs;
    config.data.batch = 16;
    config.train.checkpoint_every = 25;
    config.train.early_stop_patience = None;
    let config = config.with_overrides(&args.overrides)?;
    config.validate()?;
    let run_dir = args.out.join("run");
    std::fs::create_dir_all(&run_dir)?;
    match &args.device {
        DeviceChoice::NdArray => train::<face_distill::NdArrayTrain>(&config, &cache, &items, &face_labels, &run_dir, vec![Default::default()]),
        DeviceChoice::Candle => train::<face_distill::CandleTrain>(&config, &cache, &items, &face_labels, &run_dir, vec![Default::default()]),
        DeviceChoice::Cuda(ids) => {
            check_cuda(ids)?;
            #[cfg(feature = "cuda")]
            {
                let devices = ids.iter().map(|&index| burn::backend::cuda::CudaDevice { index }).collect();
                return train::<face_distill::runtime::CudaTrain>(&config, &cache, &items, &face_labels, &run_dir, devices);
            }
            #[allow(unreachable_code)]
            Ok(())
        }
    }
}

fn train<B: AutodiffBackend>(
    config: &DistillConfig,
    cache: &TargetCache,
    items: &[CacheItem],
    face_labels: &HashMap<String, String>,
    run_dir: &Path,
    devices: Vec<B::Device>,
) -> Result<(), Error> {
    let student = Student::<B>::new(&config.student.backbone, cache.meta.dim, cache.meta.age_bins.len(), &devices[0])?;
    let size = student.input_size() as u32;
    let train_set = FaceSet::from_cache(cache, items, size, None)?;
    let val_set = FaceSet::from_cache(cache, items, size, Some(face_labels))?;
    println!(
        "3. student: {} training faces, {} labelled faces; training {} epochs (resumes from {} if present)",
        train_set.len(),
        val_set.len(),
        config.train.epochs,
        run_dir.join("checkpoints").display()
    );
    let trainer = Trainer::<B>::new(config.clone(), devices.clone(), run_dir)?;
    let out = trainer.fit(student, &train_set, Some(&val_set))?;
    let trained = predict(&out.student.valid(), &val_set, &devices[0]);
    let report = write_report(run_dir, config, &val_set, &trained, &out.state, true)?;
    println!("4. report ({}):\n{}", run_dir.join("report.json").display(), report.table());
    println!(
        "files: {} (config.json, train.csv, val.csv, loss.svg, irauc.svg, roc.svg, student.bin, checkpoints/)",
        run_dir.display()
    );
    Ok(())
}

//! `facekit teach`: run both teachers over a set of faces into the target cache — photos (faces
//! detected and cut first) or ArcFace-aligned crops (an insightface RecordIO set, a folder or a
//! list file), at any size: batched, resumable after a kill, memory independent of the count.

use std::path::PathBuf;

use clap::Args;
use face_teachers::{BuildOptions, CacheFile};
use serde_json::json;

use crate::engine::Engine;
use crate::error::{bad, Classify, Res};
use crate::output::Outcome;

/// Options of `facekit teach`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["images", "aligned"])))]
pub struct TeachArgs {
    /// Folder of photos: faces are detected (MTCNN), cut into OUT/faces/, then taught.
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// ArcFace-aligned square crops, taught as they are: an insightface RecordIO folder
    /// (train.rec + train.idx), a folder of images, or a list file of image paths.
    #[arg(long, value_name = "REC_DIR|FOLDER|LIST")]
    pub aligned: Option<PathBuf>,
    /// Output folder: targets.safetensors (and faces/ for --images).
    #[arg(long)]
    pub out: PathBuf,
    /// Faces per teacher forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Stop after this many new faces (run again to go on from there).
    #[arg(long, value_name = "N")]
    pub max_new: Option<usize>,
    /// Where the teachers (and MTCNN for --images) run: cpu (NdArray), or cuda / cuda:N (that GPU;
    /// a build with the `cuda` feature).
    #[arg(long, default_value = "cpu", value_parser = crate::args::device)]
    pub device: face_nets::DeviceChoice,
    /// The teachers.
    #[command(flatten)]
    pub teachers: crate::args::TeacherArgs,
}

/// Runs `facekit teach`.
pub fn run(engine: &Engine, a: TeachArgs, quiet: bool) -> Res<Outcome> {
    if a.batch == 0 {
        return Err(bad("--batch must be at least 1"));
    }
    if let face_nets::DeviceChoice::Cuda(ids) = &a.device {
        if ids.len() != 1 {
            return Err(bad("teach runs on one GPU (cuda or cuda:N)"));
        }
        face_nets::check_cuda(ids).failure()?;
    }
    let teachers = a.teachers.apply(&Default::default());
    let cache_path = a.out.join("targets.safetensors");
    let options = BuildOptions {
        batch: a.batch,
        progress: !quiet,
        max_new_images: a.max_new,
    };
    let (source, cut) = match (&a.images, &a.aligned) {
        (Some(images), _) => {
            if !images.is_dir() {
                return Err(bad(format!("{}: not a folder", images.display())));
            }
            let faces = a.out.join("faces");
            let cut = face_distill::pipeline::cut_faces(engine.mtcnn()?, images, &Default::default(), &faces)
                .failure()?;
            let source: Box<dyn face_data::FaceSource> =
                Box::new(face_data::FileFaces::folder(&faces).input()?);
            (source, Some(cut))
        }
        (None, Some(aligned)) => (face_data::open_source(aligned, true).input()?, None),
        (None, None) => return Err(bad("give --images or --aligned")),
    };
    std::fs::create_dir_all(&a.out).map_err(|e| bad(format!("{}: {e}", a.out.display())))?;
    let t0 = std::time::Instant::now();
    let built = face_distill::pipeline::teach_source(
        &engine.models,
        &teachers,
        source.as_ref(),
        &cache_path,
        &options,
        &a.device,
    )
    .input()?;
    let seconds = t0.elapsed().as_secs_f64();
    let mut summary = json!({
        "command": "teach", "faces": source.len(), "resumed": built.resumed, "processed": built.processed,
        "skipped": built.skipped, "finished": built.finished, "cache": cache_path,
        "device": a.device.to_string(), "seconds": seconds,
        "images_per_s": built.processed as f64 / seconds.max(1e-9),
    });
    if let Some(cut) = &cut {
        summary["images"] = json!(cut.images);
        summary["unreadable"] = json!(cut.unreadable);
    }
    let mut human = match &cut {
        Some(cut) => format!(
            "{} faces cut from {} images ({} unreadable); ",
            cut.faces,
            cut.images,
            cut.unreadable.len()
        ),
        None => format!("{} aligned faces; ", source.len()),
    };
    if !built.finished {
        human += &format!(
            "stopped after {} new faces ({} of {} done, {} without a face): run again to go on\n",
            built.processed,
            built.resumed + built.processed,
            source.len(),
            built.skipped
        );
        return Ok(Outcome::ok(human, summary));
    }
    let cache = CacheFile::open(&cache_path).input()?;
    summary["cached"] = json!(cache.len());
    summary["identity_teacher"] = json!(cache.meta.identity_version);
    summary["age_gender_teacher"] = json!(cache.meta.age_gender_version);
    summary["embedding_dim"] = json!(cache.meta.dim);
    summary["age_bins"] = json!(cache.meta.age_bins.len());
    human += &format!(
        "{} targets cached ({} resumed, {} without a face{}) → {}\n",
        cache.len(),
        built.resumed,
        cache.skipped.len(),
        if cut.is_some() { " on re-detection" } else { "" },
        cache_path.display()
    );
    Ok(Outcome::ok(human, summary))
}

//! `facekit teach`: cut the faces of a folder and run both teachers into the target cache.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use crate::engine::Engine;
use crate::error::{bad, Classify, Res};
use crate::output::Outcome;

/// Options of `facekit teach`.
#[derive(Debug, Args)]
pub struct TeachArgs {
    /// Folder of images.
    #[arg(long)]
    pub images: PathBuf,
    /// Output folder: faces/ and targets.safetensors.
    #[arg(long)]
    pub out: PathBuf,
    /// The teachers.
    #[command(flatten)]
    pub teachers: crate::args::TeacherArgs,
}

/// Runs `facekit teach`.
pub fn run(engine: &Engine, a: TeachArgs, quiet: bool) -> Res<Outcome> {
    if !a.images.is_dir() {
        return Err(bad(format!("{}: not a folder", a.images.display())));
    }
    let mtcnn = engine.mtcnn()?;
    let faces = a.out.join("faces");
    let cut = face_distill::pipeline::cut_faces(mtcnn, &a.images, &Default::default(), &faces).failure()?;
    let cache_path = a.out.join("targets.safetensors");
    let teachers = a.teachers.apply(&Default::default());
    let (cache, _, built) =
        face_distill::pipeline::build_targets(&engine.models, &teachers, &faces, &cache_path, !quiet)
            .input()?;
    let summary = json!({
        "command": "teach", "images": cut.images, "unreadable": cut.unreadable, "faces": cut.faces,
        "cached": cache.len(), "resumed": built.resumed, "skipped": cache.skipped.len(), "cache": cache_path,
        "identity_teacher": cache.meta.identity_version, "age_gender_teacher": cache.meta.age_gender_version,
        "embedding_dim": cache.meta.dim, "age_bins": cache.meta.age_bins.len(),
    });
    Ok(Outcome::ok(
        format!(
            "{} faces cut from {} images ({} unreadable); {} targets cached ({} resumed, {} without a face on re-detection) → {}\n",
            cut.faces,
            cut.images,
            cut.unreadable.len(),
            cache.len(),
            built.resumed,
            cache.skipped.len(),
            cache_path.display()
        ),
        summary,
    ))
}

//! `facekit detect`: MTCNN boxes, scores and landmarks as JSON.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use crate::engine::{collect_images, Engine};
use crate::error::{Classify, Res};
use crate::output::{bar, write_json, Outcome};

/// Options of `facekit detect`.
#[derive(Debug, Args)]
pub struct DetectArgs {
    /// Image files or folders (searched recursively for jpg/jpeg/png).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Write the detections here (JSON).
    #[arg(long, default_value = "detections.json")]
    pub out: PathBuf,
    /// Smallest face searched for, in pixels (≥ 12).
    #[arg(long, default_value_t = 20.0)]
    pub min_face: f64,
}

/// Runs `facekit detect`.
pub fn run(engine: Engine, a: DetectArgs, quiet: bool) -> Res<Outcome> {
    let engine = engine.with_min_face(a.min_face);
    let items = collect_images(&a.inputs)?;
    let mtcnn = engine.mtcnn()?;
    let progress = bar(items.len(), "detect", quiet);
    let mut images = Vec::with_capacity(items.len());
    let mut faces = 0;
    for (id, path) in &items {
        let img = face_data::read_rgb(path).input()?;
        let dets = mtcnn.detect(&img);
        faces += dets.len();
        images.push(json!({ "image": id, "width": img.width(), "height": img.height(), "faces": dets }));
        progress.inc(1);
    }
    progress.finish_and_clear();
    write_json(&a.out, &json!({ "images": images }))?;
    let summary = json!({ "command": "detect", "images": items.len(), "faces": faces, "out": a.out });
    Ok(Outcome::ok(
        format!("{faces} faces in {} images → {}\n", items.len(), a.out.display()),
        summary,
    ))
}

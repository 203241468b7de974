//! `facekit align`: ArcFace-aligned PNG crops and a manifest.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use crate::engine::{collect_images, Engine};
use crate::error::{Classify, Res};
use crate::output::{bar, write_file, write_json, Outcome};

/// Options of `facekit align`.
#[derive(Debug, Args)]
pub struct AlignArgs {
    /// Image files or folders.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Crop side in pixels.
    #[arg(long, default_value_t = 112)]
    pub size: u32,
    /// Every face, not only the largest of each image.
    #[arg(long)]
    pub all: bool,
}

/// Runs `facekit align`.
pub fn run(engine: &Engine, a: AlignArgs, quiet: bool) -> Res<Outcome> {
    let items = collect_images(&a.inputs)?;
    let template = face_data::FaceTemplate::arcface(a.size).input()?;
    let progress = bar(items.len(), "align", quiet);
    let mut manifest = Vec::new();
    let mtcnn = engine.mtcnn()?;
    let scan = mtcnn
        .scan_images(&items, &Default::default(), 0.0, || progress.inc(1), |f| -> Res<()> {
            if f.rank > 0 && !a.all {
                return Ok(());
            }
            let crop = f.detection.align(f.photo, &template).input()?;
            let name = format!(
                "{}__{}.png",
                f.image_id.replace(['/', '\\'], "_").trim_end_matches(".jpg"),
                f.rank
            );
            let mut png = Vec::new();
            crop.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .failure()?;
            write_file(&a.out.join(&name), &png)?;
            manifest.push(json!({ "crop": name, "image": f.image_id, "face": f.rank, "score": f.detection.score, "bbox": f.detection.bbox }));
            Ok(())
        })?;
    progress.finish_and_clear();
    if let Some((id, why)) = scan.unreadable.first() {
        return Err(crate::error::bad(format!("{id}: {why}")));
    }
    let without = &scan.without_face;
    write_json(
        &a.out.join("manifest.json"),
        &json!({ "size": a.size, "crops": manifest, "no_face": without }),
    )?;
    let summary = json!({ "command": "align", "images": items.len(), "crops": manifest.len(), "no_face": without, "out": a.out });
    Ok(Outcome::ok(
        format!(
            "{} crops ({}×{}) from {} images, {} without a face → {}\n",
            manifest.len(),
            a.size,
            a.size,
            items.len(),
            without.len(),
            a.out.display()
        ),
        summary,
    ))
}

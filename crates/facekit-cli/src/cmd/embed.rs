//! `facekit embed`: the largest face of each image into a gallery file.

use std::path::PathBuf;

use clap::Args;
use face_search::{BuildOptions, Gallery, Storage};
use serde_json::json;

use crate::args::{ModelArgs, StorageArg};
use crate::engine::{collect_images, embed_items, Embedder, Engine};
use crate::error::{bad, Classify, Res};
use crate::output::{ensure_parent, Outcome};

/// Options of `facekit embed`.
#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// Image files or folders (ids: paths relative to a folder argument, or as given).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output gallery file.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Also embed the mirrored face; rows become [embedding | flipped embedding]
    /// (insightface's IJB layout), stored raw (f32, not normalised).
    #[arg(long)]
    pub flip: bool,
    /// How the gallery stores its vectors.
    #[arg(long, value_enum, default_value_t = StorageArg::F32)]
    pub storage: StorageArg,
    /// Keep the raw embedding norms (f32 only); default: L2-normalised rows for cosine search.
    #[arg(long)]
    pub raw: bool,
}

/// Runs `facekit embed`.
pub fn run(engine: &Engine, a: EmbedArgs, quiet: bool) -> Res<Outcome> {
    let storage: Storage = a.storage.into();
    if (a.raw || a.flip) && storage != Storage::F32 {
        return Err(bad(
            "--raw and --flip keep raw features, which need --storage f32",
        ));
    }
    let items = collect_images(&a.inputs)?;
    let embedder = Embedder::load(engine, &a.model.model)?;
    let (ids, data, misses) = embed_items(engine, &embedder, a.model.aligned, a.flip, &items, quiet)?;
    if ids.is_empty() {
        return Err(bad(format!("no face found in any of the {} images", items.len())));
    }
    let dim = data.len() / ids.len();
    let gallery = Gallery::build(
        &ids,
        dim,
        &data,
        BuildOptions {
            storage,
            normalise: !(a.raw || a.flip),
        },
    )
    .input()?;
    ensure_parent(&a.out)?;
    gallery.write(&a.out).failure()?;
    let summary = json!({
        "command": "embed", "model": embedder.name(), "images": items.len(), "embedded": ids.len(),
        "dim": dim, "storage": storage, "flip": a.flip, "normalised": gallery.normalised(),
        "skipped": misses, "out": a.out, "bytes": gallery.byte_len(),
    });
    let mut human = format!(
        "{} of {} images embedded ({dim}-d, {storage}{}) with {} → {}\n",
        ids.len(),
        items.len(),
        if a.flip { ", with flipped halves" } else { "" },
        embedder.name(),
        a.out.display()
    );
    for m in &misses {
        human.push_str(&format!("  skipped {}: {}\n", m.id, m.reason));
    }
    Ok(Outcome::ok(human, summary))
}

//! `facekit search`: 1:N search of query faces in a gallery file.

use std::path::{Path, PathBuf};

use clap::Args;
use face_search::Gallery;
use serde_json::{json, Value};

use crate::args::ModelArgs;
use crate::engine::{collect_images, embed_items, Embedder, Engine};
use crate::error::{bad, Classify, Res};
use crate::output::{write_json, Outcome};

/// Options of `facekit search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The gallery (.fkg, from `facekit embed`).
    #[arg(long)]
    pub gallery: PathBuf,
    /// Query images (their largest face is embedded with --model).
    pub queries: Vec<PathBuf>,
    /// Or: a gallery file of query embeddings.
    #[arg(long, conflicts_with = "queries")]
    pub query_embeddings: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Results per query.
    #[arg(short, long, default_value_t = 5)]
    pub k: usize,
    /// Also write the results here (JSON).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs `facekit search`.
pub fn run(engine: &Engine, a: SearchArgs, quiet: bool) -> Res<Outcome> {
    search(
        engine,
        &a.gallery,
        &a.queries,
        a.query_embeddings.as_deref(),
        &a.model,
        a.k,
        a.out.as_deref(),
        quiet,
    )
}

#[allow(clippy::too_many_arguments)]
fn search(
    engine: &Engine,
    gallery: &Path,
    queries: &[PathBuf],
    query_embeddings: Option<&Path>,
    model: &ModelArgs,
    k: usize,
    out: Option<&Path>,
    quiet: bool,
) -> Res<Outcome> {
    let g = Gallery::open(gallery).input()?;
    let (qids, qdata) = match query_embeddings {
        Some(p) => {
            let q = Gallery::open(p).input()?;
            (
                (0..q.len()).map(|i| q.id(i).to_owned()).collect::<Vec<_>>(),
                q.rows_f32(),
            )
        }
        None => {
            if queries.is_empty() {
                return Err(bad("give query images or --query-embeddings FILE"));
            }
            let items = collect_images(queries)?;
            let embedder = Embedder::load(engine, &model.model)?;
            let (ids, data, misses) = embed_items(engine, &embedder, model.aligned, false, &items, quiet)?;
            if ids.is_empty() {
                return Err(bad(crate::engine::describe(&misses)));
            }
            (ids, data)
        }
    };
    let qdim = qdata.len() / qids.len();
    if qdim != g.dim() {
        return Err(bad(format!(
            "queries are {qdim}-d but the gallery {} is {}-d",
            gallery.display(),
            g.dim()
        )));
    }
    let hits = g.search(&qdata, k).input()?;
    let mut human = String::new();
    let mut results = Vec::with_capacity(hits.len());
    for (q, h) in qids.iter().zip(&hits) {
        human.push_str(&format!("{q}\n"));
        let list: Vec<Value> = h
            .iter()
            .enumerate()
            .map(|(r, hit)| {
                human.push_str(&format!(
                    "  {:>2}. {:.4}  {}\n",
                    r + 1,
                    hit.score,
                    g.id(hit.index as usize)
                ));
                json!({ "rank": r + 1, "id": g.id(hit.index as usize), "row": hit.index, "score": hit.score })
            })
            .collect();
        results.push(json!({ "query": q, "hits": list }));
    }
    let doc = json!({ "command": "search", "gallery": gallery, "rows": g.len(), "storage": g.storage(), "k": k, "results": results });
    if let Some(out) = out {
        write_json(out, &doc)?;
    }
    Ok(Outcome::ok(human, doc))
}

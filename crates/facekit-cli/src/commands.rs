//! The commands other than `eval`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use face_data::imbalance::{imbalance, ml_ros, Attribute, LabelTable, MlRosConfig, MISSING};
use face_search::{BuildOptions, Gallery, Storage};
use serde_json::{json, Value};

use crate::engine::{bar, collect_images, embed_items, Embedder, Engine};
use crate::error::{bad, Classify, CliError, Res};
use crate::{Cli, Command};

/// What a command reports.
pub struct Outcome {
    /// The human summary (printed without `--json`).
    pub human: String,
    /// The JSON summary (printed with `--json`).
    pub json: Value,
    /// Exit code (0, or 1 for a rejected `verify`).
    pub code: u8,
}

impl Outcome {
    pub(crate) fn ok(human: String, json: Value) -> Self {
        Self { human, json, code: 0 }
    }
}

/// Creates the folder an output file goes into.
pub fn ensure_parent(path: &Path) -> Res<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| CliError::Failure(format!("{}: {e}", parent.display())))?;
    }
    Ok(())
}

/// Writes `bytes` atomically, creating the parent folder.
pub fn write_file(path: &Path, bytes: &[u8]) -> Res<()> {
    ensure_parent(path)?;
    face_eval::write_atomic(path, bytes).failure()
}

/// Writes pretty JSON atomically.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Res<()> {
    let text = serde_json::to_string_pretty(value).failure()?;
    write_file(path, text.as_bytes())
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Res<Outcome> {
    let quiet = cli.json;
    let engine = Engine::new(cli.models.clone());
    match cli.command {
        Command::Detect {
            inputs,
            out,
            min_face,
        } => detect(&engine.with_min_face(min_face), &inputs, &out, quiet),
        Command::Align {
            inputs,
            out,
            size,
            all,
        } => align(&engine, &inputs, &out, size, all, quiet),
        Command::Embed {
            inputs,
            out,
            model,
            flip,
            storage,
            raw,
        } => embed(&engine, &inputs, &out, &model, flip, &storage, raw, quiet),
        Command::Teach { images, out } => teach(&engine, &images, &out, quiet),
        Command::Distill {
            images,
            out,
            labels,
            config,
            overrides,
            device,
        } => distill(
            &engine,
            &images,
            &out,
            labels.as_deref(),
            config.as_deref(),
            &overrides,
            &device,
            quiet,
        ),
        Command::Pretrain {
            images,
            out,
            method,
            preset,
            config,
            overrides,
            device,
            labels,
        } => crate::pretrain_cmd::pretrain(
            &engine,
            &crate::pretrain_cmd::PretrainArgs {
                images: &images,
                out: &out,
                method: &method,
                preset: &preset,
                config: config.as_deref(),
                overrides: &overrides,
                device: &device,
                labels: labels.as_deref(),
                quiet,
            },
        ),
        Command::Eval(e) => crate::eval_cmd::run(&engine, e, quiet),
        Command::Verify {
            a,
            b,
            model,
            threshold,
            far,
            calibration,
        } => verify(&engine, &a, &b, &model, threshold, far, calibration.as_deref()),
        Command::Search {
            gallery,
            queries,
            query_embeddings,
            model,
            k,
            out,
        } => search(
            &engine,
            &gallery,
            &queries,
            query_embeddings.as_deref(),
            &model,
            k,
            out.as_deref(),
            quiet,
        ),
        Command::Oversample {
            labels,
            out,
            target_mean_ir,
            max_added,
            seed,
        } => oversample(&labels, &out, target_mean_ir, max_added, seed),
        Command::Lexicon {
            inputs,
            out,
            column,
            names,
            top,
            ngram,
        } => lexicon(&inputs, &out, &column, names.as_deref(), top, ngram, quiet),
    }
}

fn detect(engine: &Engine, inputs: &[PathBuf], out: &Path, quiet: bool) -> Res<Outcome> {
    let items = collect_images(inputs)?;
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
    let doc = json!({ "images": images });
    write_json(out, &doc)?;
    let summary = json!({ "command": "detect", "images": items.len(), "faces": faces, "out": out });
    Ok(Outcome::ok(
        format!("{faces} faces in {} images → {}\n", items.len(), out.display()),
        summary,
    ))
}

fn align(engine: &Engine, inputs: &[PathBuf], out: &Path, size: u32, all: bool, quiet: bool) -> Res<Outcome> {
    let items = collect_images(inputs)?;
    let template = face_data::FaceTemplate::arcface(size).input()?;
    std::fs::create_dir_all(out).map_err(|e| CliError::Failure(format!("{}: {e}", out.display())))?;
    let progress = bar(items.len(), "align", quiet);
    let mut manifest = Vec::new();
    let mut without = Vec::new();
    for (id, path) in &items {
        let img = face_data::read_rgb(path).input()?;
        let mut dets = engine.mtcnn()?.detect(&img);
        dets.sort_by(|a, b| b.area().total_cmp(&a.area()));
        if dets.is_empty() {
            without.push(id.clone());
        }
        let keep = if all { dets.len() } else { dets.len().min(1) };
        for (k, d) in dets.iter().take(keep).enumerate() {
            let crop = d.align(&img, &template).input()?;
            let name = format!(
                "{}__{k}.png",
                id.replace(['/', '\\'], "_").trim_end_matches(".jpg")
            );
            let mut png = Vec::new();
            crop.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .failure()?;
            write_file(&out.join(&name), &png)?;
            manifest.push(json!({ "crop": name, "image": id, "face": k, "score": d.score, "bbox": d.bbox }));
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    write_json(
        &out.join("manifest.json"),
        &json!({ "size": size, "crops": manifest, "no_face": without }),
    )?;
    let summary = json!({ "command": "align", "images": items.len(), "crops": manifest.len(), "no_face": without, "out": out });
    Ok(Outcome::ok(
        format!(
            "{} crops ({size}×{size}) from {} images, {} without a face → {}\n",
            manifest.len(),
            items.len(),
            without.len(),
            out.display()
        ),
        summary,
    ))
}

#[allow(clippy::too_many_arguments)]
fn embed(
    engine: &Engine,
    inputs: &[PathBuf],
    out: &Path,
    model: &crate::ModelArgs,
    flip: bool,
    storage: &str,
    raw: bool,
    quiet: bool,
) -> Res<Outcome> {
    let storage: Storage = storage.parse().input()?;
    if (raw || flip) && storage != Storage::F32 {
        return Err(bad(
            "--raw and --flip keep raw features, which need --storage f32",
        ));
    }
    let items = collect_images(inputs)?;
    let embedder = Embedder::load(engine, &model.model)?;
    let (ids, data, misses) = embed_items(engine, &embedder, model.aligned, flip, &items, quiet)?;
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
            normalise: !(raw || flip),
        },
    )
    .input()?;
    ensure_parent(out)?;
    gallery.write(out).failure()?;
    let summary = json!({
        "command": "embed", "model": embedder.name(), "images": items.len(), "embedded": ids.len(),
        "dim": dim, "storage": storage, "flip": flip, "normalised": gallery.normalised(),
        "skipped": misses, "out": out, "bytes": gallery.byte_len(),
    });
    let mut human = format!(
        "{} of {} images embedded ({dim}-d, {storage}{}) with {} → {}\n",
        ids.len(),
        items.len(),
        if flip { ", with flipped halves" } else { "" },
        embedder.name(),
        out.display()
    );
    for m in &misses {
        human.push_str(&format!("  skipped {m}\n"));
    }
    Ok(Outcome::ok(human, summary))
}

fn teach(engine: &Engine, images: &Path, out: &Path, quiet: bool) -> Res<Outcome> {
    if !images.is_dir() {
        return Err(bad(format!("{}: not a folder", images.display())));
    }
    let mtcnn = engine.mtcnn()?;
    let faces = out.join("faces");
    let cut = face_distill::pipeline::cut_faces(mtcnn, images, &Default::default(), &faces).failure()?;
    let cache_path = out.join("targets.safetensors");
    let (cache, _, built) =
        face_distill::pipeline::build_targets(&engine.models, &faces, &cache_path, !quiet).input()?;
    let summary = json!({
        "command": "teach", "images": cut.images, "unreadable": cut.unreadable, "faces": cut.faces,
        "cached": cache.len(), "resumed": built.resumed, "skipped": cache.skipped.len(), "cache": cache_path,
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

#[allow(clippy::too_many_arguments)]
fn distill(
    engine: &Engine,
    images: &Path,
    out: &Path,
    labels: Option<&Path>,
    config: Option<&Path>,
    overrides: &[String],
    device: &str,
    quiet: bool,
) -> Res<Outcome> {
    use face_distill::config::DistillConfig;
    use face_distill::data::FaceSet;
    let device: face_distill::DeviceChoice = device.parse().input()?;
    let base = match config {
        Some(p) => DistillConfig::read(p).input()?,
        None => DistillConfig::default(),
    };
    let config = base.with_overrides(overrides).input()?;
    config.validate().input()?;
    if !images.is_dir() {
        return Err(bad(format!("{}: not a folder", images.display())));
    }
    let image_labels = match labels {
        Some(p) => face_distill::data::read_labels(p).input()?,
        None => Default::default(),
    };
    let faces = out.join("faces");
    let cut = face_distill::pipeline::cut_faces(engine.mtcnn()?, images, &image_labels, &faces).failure()?;
    let cache_path = out.join("targets.safetensors");
    let (cache, items, _) =
        face_distill::pipeline::build_targets(&engine.models, &faces, &cache_path, !quiet).input()?;
    let size = config.student.backbone.input_size().input()? as u32;
    let train = FaceSet::from_cache(&cache, &items, size, None).input()?;
    let val = if cut.face_labels.is_empty() {
        None
    } else {
        Some(FaceSet::from_cache(&cache, &items, size, Some(&cut.face_labels)).input()?)
    };
    let run_dir = out.join("run");
    let run =
        face_distill::pipeline::distill(&config, &device, &train, val.as_ref(), &run_dir, true).failure()?;
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
    });
    Ok(Outcome::ok(human, summary))
}

/// The threshold at `far` from a calibration report (any report.json of `facekit eval`
/// holding `tar_at_far` entries, at top level or under `overall`), using the `AtMost`
/// convention so the calibration FAR does not exceed the target.
fn calibrated_threshold(path: &Path, far: f64) -> Res<(f64, Value, u64)> {
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
    let doc: Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("{}: not JSON: {e}", path.display())))?;
    let report = if doc.get("tar_at_far").is_some() {
        &doc
    } else {
        doc.get("overall").unwrap_or(&doc)
    };
    let entries = report
        .get("tar_at_far")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            bad(format!(
                "{}: no tar_at_far table (write one with `facekit eval`)",
                path.display()
            ))
        })?;
    let hit = entries.iter().find(|e| {
        e.get("convention").and_then(Value::as_str) == Some("AtMost")
            && e.get("target_far")
                .and_then(Value::as_f64)
                .is_some_and(|t| (t - far).abs() <= 1e-12 * far.max(1e-300))
    });
    let Some(hit) = hit else {
        let have: Vec<f64> = entries
            .iter()
            .filter_map(|e| e.get("target_far").and_then(Value::as_f64))
            .collect();
        return Err(bad(format!(
            "{}: no threshold for FAR {far:e} (it has {have:?})",
            path.display()
        )));
    };
    let threshold = match hit.get("threshold") {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::INFINITY),
        Some(Value::String(s)) if s.contains("inf") => f64::INFINITY,
        _ => {
            return Err(bad(format!(
                "{}: FAR {far:e} entry has no threshold",
                path.display()
            )))
        }
    };
    let impostors = report.get("n_impostor").and_then(Value::as_u64).unwrap_or(0);
    Ok((threshold, hit.clone(), impostors))
}

fn verify(
    engine: &Engine,
    a: &Path,
    b: &Path,
    model: &crate::ModelArgs,
    threshold: Option<f64>,
    far: Option<f64>,
    calibration: Option<&Path>,
) -> Res<Outcome> {
    let embedder = Embedder::load(engine, &model.model)?;
    let default_calibration = engine.models.join("fr_feature.calibration.json");
    let (threshold, source) = match (threshold, far) {
        (Some(t), _) => (t, json!({ "threshold": t })),
        (None, far) => {
            let path = match calibration {
                Some(p) => p.to_path_buf(),
                None if matches!(embedder, Embedder::Teacher(_)) => default_calibration,
                None => return Err(bad("a student needs --threshold, or --far with --calibration (a report of `facekit eval` for it)")),
            };
            let far = far.unwrap_or(1e-2);
            let (t, entry, impostors) = calibrated_threshold(&path, far)?;
            if impostors > 0 && far * (impostors as f64) < 1.0 {
                eprintln!(
                    "facekit: note: {} has {impostors} impostor pairs, too few to resolve FAR {far:e}; \
                     the threshold accepts none of them",
                    path.display()
                );
            }
            (
                t,
                json!({ "calibration": path, "far": far, "entry": entry, "calibration_impostors": impostors }),
            )
        }
    };
    let items = vec![
        (a.display().to_string(), a.to_path_buf()),
        (b.display().to_string(), b.to_path_buf()),
    ];
    let (ids, data, misses) = embed_items(engine, &embedder, model.aligned, false, &items, true)?;
    if ids.len() != 2 {
        return Err(bad(misses.join("; ")));
    }
    let e = face_eval::Embeddings::new(ids, data.len() / 2, data).input()?;
    let score = e.cosine(0, 1);
    let same = score >= threshold;
    let summary = json!({
        "command": "verify", "a": a, "b": b, "model": embedder.name(), "score": score,
        "threshold": threshold, "same_person": same, "decision_from": source,
    });
    let human = format!(
        "{}: score {score:.4} {} threshold {threshold:.4} ({})\n",
        if same { "same person" } else { "different persons" },
        if same { "≥" } else { "<" },
        match (source.get("calibration"), source.get("far")) {
            (Some(c), Some(f)) => format!("FAR {} per {}", f, c.as_str().unwrap_or_default()),
            _ => "given threshold".to_owned(),
        }
    );
    Ok(Outcome {
        human,
        json: summary,
        code: if same { 0 } else { 1 },
    })
}

#[allow(clippy::too_many_arguments)]
fn search(
    engine: &Engine,
    gallery: &Path,
    queries: &[PathBuf],
    query_embeddings: Option<&Path>,
    model: &crate::ModelArgs,
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
                return Err(bad(misses.join("; ")));
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

/// Reads a label table: a CSV header `id,<attribute>,…`, then one row per sample; any
/// text value is a category, an empty cell is missing.
fn read_label_csv(path: &Path) -> Res<(Vec<String>, Vec<Vec<String>>, LabelTable)> {
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .ok_or_else(|| bad(format!("{}: empty file", path.display())))?;
    let header: Vec<String> = header.split(',').map(|s| s.trim().to_owned()).collect();
    if header.len() < 2 {
        return Err(bad(format!(
            "{}:1: expected `id,<attribute>,…`, found {:?}",
            path.display(),
            header.join(",")
        )));
    }
    let names = header[1..].to_vec();
    let mut cats: Vec<BTreeMap<String, u16>> = vec![BTreeMap::new(); names.len()];
    let mut rows = Vec::new();
    for (ln, line) in lines {
        let f: Vec<String> = line.split(',').map(|s| s.trim().to_owned()).collect();
        if f.len() != header.len() {
            return Err(bad(format!(
                "{}:{}: {} fields, the header has {}",
                path.display(),
                ln + 1,
                f.len(),
                header.len()
            )));
        }
        for (c, v) in f[1..].iter().enumerate() {
            if !v.is_empty() {
                let n = cats[c].len() as u16;
                cats[c].entry(v.clone()).or_insert(n);
            }
        }
        rows.push(f);
    }
    if rows.is_empty() {
        return Err(bad(format!("{}: no rows after the header", path.display())));
    }
    // Category indices in sorted order (stable across runs).
    let sorted: Vec<Vec<String>> = cats.iter().map(|m| m.keys().cloned().collect()).collect();
    let index: Vec<BTreeMap<&str, u16>> = sorted
        .iter()
        .map(|v| {
            v.iter()
                .enumerate()
                .map(|(i, s)| (s.as_str(), i as u16))
                .collect()
        })
        .collect();
    let mut values = Vec::with_capacity(rows.len() * names.len());
    for r in &rows {
        for (c, v) in r[1..].iter().enumerate() {
            values.push(if v.is_empty() {
                MISSING
            } else {
                index[c][v.as_str()]
            });
        }
    }
    let attributes = names
        .iter()
        .zip(sorted)
        .map(|(n, categories)| Attribute {
            name: n.clone(),
            categories,
        })
        .collect();
    let table = LabelTable::new(attributes, values).map_err(|e| bad(format!("{}: {e}", path.display())))?;
    Ok((header, rows, table))
}

fn oversample(labels: &Path, out: &Path, target: f64, max_added: Option<usize>, seed: u64) -> Res<Outcome> {
    let (header, rows, table) = read_label_csv(labels)?;
    let config = MlRosConfig {
        target_mean_ir: target,
        max_added: max_added.unwrap_or(rows.len()),
        seed,
    };
    let outcome = ml_ros(&table, &config).input()?;
    let mut csv = header.join(",");
    csv.push('\n');
    for r in rows.iter().chain(outcome.added.iter().map(|&i| &rows[i])) {
        csv.push_str(&r.join(","));
        csv.push('\n');
    }
    write_file(out, csv.as_bytes())?;
    let before = imbalance(&table);
    let report = json!({
        "command": "oversample", "rows": rows.len(), "added": outcome.added.len(), "stop": outcome.stop,
        "mean_ir_before": before.mean_ir, "mean_ir_after": outcome.after.mean_ir,
        "before": outcome.before, "after": outcome.after, "out": out,
    });
    let mut json_path = out.as_os_str().to_owned();
    json_path.push(".json");
    write_json(Path::new(&json_path), &report)?;
    Ok(Outcome::ok(
        format!(
            "{} rows + {} replicated: MeanIR {:.3} → {:.3} ({:?}) → {} (report {})\n",
            rows.len(),
            outcome.added.len(),
            before.mean_ir,
            outcome.after.mean_ir,
            outcome.stop,
            out.display(),
            Path::new(&json_path).display()
        ),
        report,
    ))
}

fn lexicon(
    inputs: &[PathBuf],
    out: &Path,
    column: &str,
    names: Option<&Path>,
    top: usize,
    ngram: usize,
    quiet: bool,
) -> Res<Outcome> {
    use face_data::captions::{analyze_files, LexiconConfig};
    let mut config = LexiconConfig {
        top,
        max_ngram: ngram,
        ..LexiconConfig::default()
    };
    if let Some(p) = names {
        config.names = LexiconConfig::read_names(p).input()?;
    }
    for p in inputs {
        if !p.is_file() {
            return Err(bad(format!("{}: no such file", p.display())));
        }
    }
    let progress = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new_spinner()
    };
    let report = analyze_files(inputs, column, config, &mut |rows| progress.set_position(rows)).input()?;
    progress.finish_and_clear();
    report.write(out).failure()?;
    let summary = serde_json::to_value(&report).failure()?;
    Ok(Outcome::ok(
        format!(
            "{}wrote {}/report.json, top_terms.svg, top_names.svg\n",
            report.summary(),
            out.display()
        ),
        json!({ "command": "lexicon", "out": out, "report": summary }),
    ))
}

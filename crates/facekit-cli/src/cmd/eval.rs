//! `facekit eval …`: the protocols of face-eval on embeddings read from a file or
//! computed from images with a model.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use face_data::formats::ijb::{IjbBenchmark, IjbProtocol};
use face_data::formats::lfw::LfwPairs;
use face_data::pairs::PairList;
use face_eval::ijb::{ImageFeatures, TemplateOptions};
use face_eval::Embeddings;
use face_metrics::{VerificationReport, DEFAULT_FAR_TARGETS};
use serde_json::json;

use crate::args::ModelArgs;
use crate::engine::{embed_items, Embedder, Engine};
use crate::error::{bad, Classify, Res};
use crate::output::{bar, write_json, Outcome};

/// Where the embeddings of a protocol come from.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// Precomputed embeddings: a gallery file from `facekit embed` (.fkg; ids = image paths)
    /// or a numpy .npy matrix (ids from --ids).
    #[arg(long, conflicts_with = "images")]
    pub embeddings: Option<PathBuf>,
    /// One id per line for the rows of an .npy file.
    #[arg(long, requires = "embeddings")]
    pub ids: Option<PathBuf>,
    /// Or: the image root; the protocol's paths are relative to it and embedded with --model.
    #[arg(long)]
    pub images: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Options of the IJB-B/C evaluation.
#[derive(Debug, Clone, Args)]
pub struct IjbArgs {
    /// The IJB root (meta/ and loose_crop/, as insightface's IJB_release).
    #[arg(long)]
    pub root: PathBuf,
    /// Per-image features in the face list's order (.npy); default: embed loose_crop/ with --model.
    #[arg(long)]
    pub features: Option<PathBuf>,
    /// The feature rows are [embedding | flipped embedding] (insightface's layout).
    #[arg(long)]
    pub flipped_halves: bool,
    /// Model used when no --features are given.
    #[arg(long, default_value = "teacher")]
    pub model: String,
    /// N0: L2-normalise each image's feature first.
    #[arg(long)]
    pub no_norm: bool,
    /// D0: do not weight by the detector's faceness score.
    #[arg(long)]
    pub no_detector_score: bool,
    /// F0: no flip test.
    #[arg(long)]
    pub no_flip: bool,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
}

/// The protocols.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// IJB-C 1:1 verification (insightface's template aggregation).
    Ijbc(IjbArgs),
    /// IJB-B 1:1 verification.
    Ijbb(IjbArgs),
    /// LFW 10-fold accuracy and VAL@FAR on pairs.txt.
    Lfw {
        /// The pairs file (pairs.txt / pairsDevTest.txt).
        #[arg(long)]
        pairs: PathBuf,
        #[command(flatten)]
        source: SourceArgs,
        /// FAR target of VAL.
        #[arg(long, default_value_t = 1e-3)]
        far: f64,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// Any pair list (`group<TAB>label<TAB>path_a<TAB>path_b`), with per-group metrics and gaps.
    Pairs {
        /// The pair list (face-data's format; e.g. a demographic-balanced list).
        #[arg(long)]
        pairs: PathBuf,
        #[command(flatten)]
        source: SourceArgs,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// CelebA attribute-paired accuracy at fixed thresholds.
    CelebaAttr {
        /// list_attr_celeba.txt.
        #[arg(long)]
        attributes: PathBuf,
        /// Pair list of CelebA image names (face-data's pair format; groups ignored).
        #[arg(long)]
        pairs: PathBuf,
        #[command(flatten)]
        source: SourceArgs,
        /// Similarity thresholds.
        #[arg(long, value_delimiter = ',', default_value = "0.6,0.7,0.8")]
        thresholds: Vec<f64>,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// Top-N identification: the first image of each identity is enrolled, the rest probe.
    Identify {
        #[command(flatten)]
        source: SourceArgs,
        /// `id,identity` CSV; default: the parent folder of each id.
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Ranks to report.
        #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
        top: Vec<usize>,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs one protocol.
pub fn run(engine: &Engine, command: EvalCommand, quiet: bool) -> Res<Outcome> {
    match command {
        EvalCommand::Ijbc(a) => ijb(engine, a, IjbBenchmark::IjbC, quiet),
        EvalCommand::Ijbb(a) => ijb(engine, a, IjbBenchmark::IjbB, quiet),
        EvalCommand::Lfw {
            pairs,
            source,
            far,
            out,
        } => lfw(engine, &pairs, &source, far, &out, quiet),
        EvalCommand::Pairs { pairs, source, out } => pair_list(engine, &pairs, &source, &out, quiet),
        EvalCommand::CelebaAttr {
            attributes,
            pairs,
            source,
            thresholds,
            out,
        } => celeba(engine, &attributes, &pairs, &source, &thresholds, &out, quiet),
        EvalCommand::Identify {
            source,
            labels,
            top,
            out,
        } => identify(engine, &source, labels.as_deref(), &top, &out, quiet),
    }
}

/// The embeddings of `needed` ids (paths relative to the image root), from a file or a model.
fn embeddings(engine: &Engine, source: &SourceArgs, needed: &[String], quiet: bool) -> Res<Embeddings> {
    match (&source.embeddings, &source.images) {
        (Some(file), _) => {
            let e = Embeddings::read(file, source.ids.as_deref()).input()?;
            let missing: Vec<&String> = needed.iter().filter(|id| e.position(id).is_none()).collect();
            if !missing.is_empty() {
                return Err(bad(format!(
                    "{}: no embedding for {} of the {} images the protocol needs, e.g. {:?}",
                    file.display(),
                    missing.len(),
                    needed.len(),
                    missing.iter().take(3).collect::<Vec<_>>()
                )));
            }
            Ok(e)
        }
        (None, Some(root)) => {
            let embedder = Embedder::load(engine, &source.model.model)?;
            let items: Vec<(String, PathBuf)> = needed.iter().map(|id| (id.clone(), root.join(id))).collect();
            if let Some((_, p)) = items.iter().find(|(_, p)| !p.is_file()) {
                return Err(bad(format!(
                    "{}: no such image (ids are relative to --images)",
                    p.display()
                )));
            }
            let (ids, data, misses) =
                embed_items(engine, &embedder, source.model.aligned, false, &items, quiet)?;
            if !misses.is_empty() {
                return Err(bad(format!(
                    "{} of {} images have no usable face, e.g. {}; embed them yourself and pass --embeddings",
                    misses.len(),
                    items.len(),
                    misses[0]
                )));
            }
            let dim = data.len() / ids.len().max(1);
            Embeddings::new(ids, dim, data).input()
        }
        (None, None) => Err(bad("give --embeddings FILE or --images ROOT")),
    }
}

/// roc.svg, det.svg and report.json (last) of a verification report.
fn write_verification(out: &Path, report: &VerificationReport, extra: serde_json::Value) -> Res<()> {
    crate::output::ensure_parent(&out.join("report.json"))?;
    let mut doc = serde_json::to_value(report).failure()?;
    if let (Some(map), serde_json::Value::Object(more)) = (doc.as_object_mut(), extra) {
        map.extend(more);
    }
    let min_far = (1.0 / report.n_impostor as f64).clamp(1e-6, 0.1);
    face_metrics::write_roc_svg(
        out.join("roc.svg"),
        &report.name,
        &[(&report.name, &report.roc)],
        min_far,
    )
    .failure()?;
    face_metrics::write_det_svg(out.join("det.svg"), &report.name, &[(&report.name, &report.det)])
        .failure()?;
    // The report goes last: its presence means the evaluation finished.
    write_json(&out.join("report.json"), &doc)
}

fn ijb(engine: &Engine, a: IjbArgs, benchmark: IjbBenchmark, quiet: bool) -> Res<Outcome> {
    let name = match benchmark {
        IjbBenchmark::IjbB => "IJB-B",
        IjbBenchmark::IjbC => "IJB-C",
    };
    let protocol = IjbProtocol::load(&a.root, benchmark).input()?;
    let options = TemplateOptions {
        norm: !a.no_norm,
        detector_score: !a.no_detector_score,
        flip: !a.no_flip,
    };
    let (features, width, halves) = match &a.features {
        Some(p) => {
            let (rows, cols, data) = face_eval::read_npy_f32(p).input()?;
            if rows != protocol.faces.len() {
                return Err(bad(format!(
                    "{}: {rows} feature rows, the face list has {} faces",
                    p.display(),
                    protocol.faces.len()
                )));
            }
            (data, cols, a.flipped_halves)
        }
        None => {
            let embedder = Embedder::load(engine, &a.model)?;
            let template = embedder.template()?;
            let progress = bar(protocol.faces.len(), "embed", quiet);
            let mut data = Vec::with_capacity(protocol.faces.len() * 2 * embedder.dim());
            let faces: Vec<_> = protocol.faces.iter().zip(&protocol.landmarks).collect();
            // 16 faces (32 crops with their mirror images) per forward pass.
            for chunk in faces.chunks(16) {
                let mut crops = Vec::with_capacity(2 * chunk.len());
                for (f, l) in chunk {
                    let path = protocol.image_dir.join(&f.image);
                    let img = face_data::read_rgb(&path).input()?;
                    let m = template
                        .transform_for(&l.points)
                        .map_err(|e| bad(format!("{}: {e}", path.display())))?;
                    let crop = face_data::warp_affine(&img, &m, template.width, template.height).input()?;
                    let mirrored = image::imageops::flip_horizontal(&crop);
                    crops.push(crop);
                    crops.push(mirrored);
                }
                // crops = [face0, mirror0, face1, mirror1, …], so consecutive embedding rows
                // are already insightface's [face | flipped face] layout.
                data.extend(embedder.embed(&crops.iter().collect::<Vec<_>>())?);
                progress.inc(chunk.len() as u64);
            }
            progress.finish_and_clear();
            (data, 2 * embedder.dim(), true)
        }
    };
    let faceness: Vec<f32> = protocol.landmarks.iter().map(|l| l.faceness).collect();
    let feats = ImageFeatures {
        data: &features,
        width,
        flipped_halves: halves,
    };
    let (report, _) = face_eval::ijb::evaluate(
        name,
        &protocol.faces,
        &faceness,
        feats,
        &protocol.pairs,
        options,
        &DEFAULT_FAR_TARGETS,
    )
    .input()?;
    write_verification(
        &a.out,
        &report,
        json!({ "options": options, "faces": protocol.faces.len() }),
    )?;
    Ok(Outcome::ok(
        format!(
            "{}→ {}/report.json, roc.svg, det.svg\n",
            report.summary(),
            a.out.display()
        ),
        json!({ "command": "eval", "protocol": name, "report": report }),
    ))
}

fn lfw(
    engine: &Engine,
    pairs_path: &Path,
    source: &SourceArgs,
    far: f64,
    out: &Path,
    quiet: bool,
) -> Res<Outcome> {
    let pairs = LfwPairs::read(pairs_path).input()?;
    let needed: Vec<String> = pairs
        .images()
        .iter()
        .map(|i| i.relative_path().display().to_string())
        .collect();
    let e = embeddings(engine, source, &needed, quiet)?;
    let scores: Vec<f64> = pairs
        .pairs
        .iter()
        .map(|p| {
            let a = e
                .position(&p.a.relative_path().display().to_string())
                .unwrap_or(0);
            let b = e
                .position(&p.b.relative_path().display().to_string())
                .unwrap_or(0);
            e.cosine(a, b)
        })
        .collect();
    let report = face_eval::lfw::lfw_10fold(&pairs, &scores, far).input()?;
    let genuine: Vec<bool> = pairs.pairs.iter().map(|p| p.same).collect();
    let v = face_metrics::VerificationScores::from_pairs(&scores[..], &genuine[..]).input()?;
    let roc = VerificationReport::new("LFW", &v, &[far]).input()?;
    write_verification(out, &roc, json!({ "lfw": report }))?;
    Ok(Outcome::ok(
        format!(
            "LFW {}: {}\n→ {}/report.json, roc.svg, det.svg\n",
            pairs_path.display(),
            report.summary(),
            out.display()
        ),
        json!({ "command": "eval", "protocol": "lfw", "report": report, "auc": roc.auc }),
    ))
}

fn pair_scores(e: &Embeddings, list: &PairList) -> Vec<f64> {
    list.pairs
        .iter()
        .map(|p| e.cosine(e.position(&p.a).unwrap_or(0), e.position(&p.b).unwrap_or(0)))
        .collect()
}

fn needed_of(list: &PairList) -> Vec<String> {
    let mut v: Vec<String> = list
        .pairs
        .iter()
        .flat_map(|p| [p.a.clone(), p.b.clone()])
        .collect();
    v.sort();
    v.dedup();
    v
}

fn pair_list(engine: &Engine, path: &Path, source: &SourceArgs, out: &Path, quiet: bool) -> Res<Outcome> {
    let list = PairList::read(path).input()?;
    if list.pairs.is_empty() {
        return Err(bad(format!("{}: no pairs", path.display())));
    }
    let e = embeddings(engine, source, &needed_of(&list), quiet)?;
    let scores = pair_scores(&e, &list);
    let name = path
        .file_name()
        .map_or("pairs".into(), |n| n.to_string_lossy().into_owned());
    let report = face_eval::pairs::pairs_report(&name, &list, &scores, &DEFAULT_FAR_TARGETS).input()?;
    write_verification(
        out,
        &report.overall,
        json!({ "threshold": report.threshold, "groups": report.groups, "spread": report.spread }),
    )?;
    Ok(Outcome::ok(
        format!(
            "{}→ {}/report.json, roc.svg, det.svg\n",
            report.summary(),
            out.display()
        ),
        json!({ "command": "eval", "protocol": "pairs", "report": report }),
    ))
}

fn celeba(
    engine: &Engine,
    attributes: &Path,
    pairs: &Path,
    source: &SourceArgs,
    thresholds: &[f64],
    out: &Path,
    quiet: bool,
) -> Res<Outcome> {
    let attrs = face_data::formats::celeba::CelebaAttributes::read(attributes).input()?;
    let list = PairList::read(pairs).input()?;
    let e = embeddings(engine, source, &needed_of(&list), quiet)?;
    let scores = pair_scores(&e, &list);
    let named: Vec<face_eval::attributes::NamedPair> = list
        .pairs
        .iter()
        .map(|p| {
            let base = |s: &str| {
                Path::new(s)
                    .file_name()
                    .map_or(s.to_owned(), |n| n.to_string_lossy().into_owned())
            };
            face_eval::attributes::NamedPair {
                a: base(&p.a),
                b: base(&p.b),
                genuine: p.genuine,
            }
        })
        .collect();
    let table = face_eval::attributes::attribute_table(&named, &scores, &attrs, thresholds).input()?;
    write_json(&out.join("report.json"), &json!({ "attributes": table }))?;
    Ok(Outcome::ok(
        format!(
            "{}→ {}/report.json\n",
            face_eval::attributes::table_text(&table),
            out.display()
        ),
        json!({ "command": "eval", "protocol": "celeba-attr", "table": table }),
    ))
}

fn identify(
    engine: &Engine,
    source: &SourceArgs,
    labels: Option<&Path>,
    top: &[usize],
    out: &Path,
    quiet: bool,
) -> Res<Outcome> {
    let e = match (&source.embeddings, &source.images) {
        (None, Some(root)) => {
            let items = crate::engine::collect_images(std::slice::from_ref(root))?;
            let ids: Vec<String> = items.into_iter().map(|(id, _)| id).collect();
            embeddings(engine, source, &ids, quiet)?
        }
        _ => embeddings(engine, source, &[], quiet)?,
    };
    let identity: Vec<String> = match labels {
        Some(p) => {
            let map = face_data::read_identity_labels(p).input()?;
            e.ids()
                .iter()
                .map(|id| {
                    map.get(id)
                        .cloned()
                        .ok_or_else(|| bad(format!("{}: no identity for {id:?}", p.display())))
                })
                .collect::<Res<_>>()?
        }
        None => e
            .ids()
            .iter()
            .map(|id| {
                Path::new(id)
                    .parent()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            })
            .collect(),
    };
    let report = face_eval::identify::identify(&e, &identity, top).input()?;
    write_json(&out.join("report.json"), &report)?;
    Ok(Outcome::ok(
        format!("{}\n→ {}/report.json\n", report.summary(), out.display()),
        json!({ "command": "eval", "protocol": "identify", "report": report }),
    ))
}

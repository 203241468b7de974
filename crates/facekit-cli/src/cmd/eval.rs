//! `facekit eval …`: the protocols of face-eval on embeddings read from a file or
//! computed from images with a model.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use face_data::formats::ijb::{IjbBenchmark, IjbProtocol};
use face_data::formats::lfw::LfwPairs;
use face_data::pairs::PairList;
use face_eval::enrol::{apply_policy, EnrolFailure, FailureToEnrol, MissingPolicy, PolicyScores};
use face_eval::ijb::{ImageFeatures, TemplateOptions};
use face_eval::scores::{score_id_pairs, write_scores_tsv, PairScore, Scored};
use face_eval::Embeddings;
use face_metrics::{VerificationReport, DEFAULT_FAR_TARGETS};
use serde_json::json;

use crate::args::{MissingArg, ModelArgs};
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
    /// Pairs whose image failed to enrol (no face, unreadable, no embedding): `reject` counts
    /// them as non-matches at every threshold, `skip` leaves them out, `fail` stops.
    #[arg(long, value_enum, default_value_t = MissingArg::Reject)]
    pub missing: MissingArg,
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
    /// Pairs whose template has no enrolled image (unreadable images, zero or non-finite
    /// feature rows): `reject`, `skip` or `fail`, as for the other protocols.
    #[arg(long, value_enum, default_value_t = MissingArg::Reject)]
    pub missing: MissingArg,
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
        /// The global FAR whose threshold the per-group FMR/FNMR differentials are taken at
        /// (besides the EER threshold). report.json is also a calibration file for `verify`.
        #[arg(long, default_value_t = 1e-3)]
        far: f64,
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
        EvalCommand::Pairs {
            pairs,
            source,
            far,
            out,
        } => pair_list(engine, &pairs, &source, far, &out, quiet),
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

/// The embeddings of `needed` ids (paths relative to the image root), from a file or a model,
/// with the ids that failed to enrol (no embedding in the file; no face, unreadable or absent
/// image) and why.
fn embeddings(
    engine: &Engine,
    source: &SourceArgs,
    needed: &[String],
    quiet: bool,
) -> Res<(Embeddings, Vec<EnrolFailure>)> {
    match (&source.embeddings, &source.images) {
        (Some(file), _) => {
            let e = Embeddings::read(file, source.ids.as_deref()).input()?;
            let failed = needed
                .iter()
                .filter(|id| e.position(id).is_none())
                .map(|id| EnrolFailure {
                    id: id.clone(),
                    reason: format!("no embedding in {}", file.display()),
                })
                .collect();
            Ok((e, failed))
        }
        (None, Some(root)) => {
            let embedder = Embedder::load(engine, &source.model.model)?;
            let (present, absent): (Vec<_>, Vec<_>) = needed
                .iter()
                .map(|id| (id.clone(), root.join(id)))
                .partition(|(_, p)| p.is_file());
            if present.is_empty() && !needed.is_empty() {
                return Err(bad(format!(
                    "none of the {} images exists under {} (ids are relative to --images), e.g. {}",
                    needed.len(),
                    root.display(),
                    absent[0].1.display()
                )));
            }
            let (ids, data, mut failed) =
                embed_items(engine, &embedder, source.model.aligned, false, &present, quiet)?;
            failed.extend(absent.into_iter().map(|(id, _)| EnrolFailure {
                id,
                reason: "no such file".into(),
            }));
            let dim = embedder.dim();
            Ok((Embeddings::new(ids, dim, data).input()?, failed))
        }
        (None, None) => Err(bad("give --embeddings FILE or --images ROOT")),
    }
}

/// Pair scores under the failure-to-enrol policy, with the report's record of it.
struct Enrolled {
    scored: Vec<Scored>,
    applied: PolicyScores,
    fte: FailureToEnrol,
}

fn enrol_pairs<'a>(
    e: &Embeddings,
    failed: Vec<EnrolFailure>,
    images: usize,
    pairs: impl IntoIterator<Item = (&'a str, &'a str, bool)>,
    policy: MissingPolicy,
) -> Res<Enrolled> {
    let (ids, genuine): (Vec<(&str, &str)>, Vec<bool>) =
        pairs.into_iter().map(|(a, b, g)| ((a, b), g)).unzip();
    let scored = score_id_pairs(e, ids);
    let raw: Vec<Option<f64>> = scored.iter().map(|s| s.score).collect();
    let affected = raw.iter().filter(|s| s.is_none()).count();
    let fte = FailureToEnrol::new(policy, images, failed, affected);
    if policy == MissingPolicy::Fail && (affected > 0 || !fte.failed.is_empty()) {
        return Err(bad(fte.error().to_string()));
    }
    let applied = apply_policy(&raw, &genuine, policy).input()?;
    Ok(Enrolled { scored, applied, fte })
}

/// `scores.tsv` of a pair protocol.
fn write_pair_scores<'a>(
    out: &Path,
    pairs: impl IntoIterator<Item = (&'a str, &'a str, &'a str, bool)>,
    scored: &[Scored],
) -> Res<()> {
    crate::output::ensure_parent(&out.join("scores.tsv"))?;
    let rows = pairs
        .into_iter()
        .zip(scored)
        .map(|((a, b, group, genuine), s)| PairScore {
            a,
            b,
            group,
            genuine,
            score: s.score,
            missing_a: s.missing_a,
            missing_b: s.missing_b,
        });
    write_scores_tsv(&out.join("scores.tsv"), rows).failure()
}

/// The failure-to-enrol lines of a summary: the count and rate, then each failed image.
fn fte_text(fte: &FailureToEnrol) -> String {
    let mut s = format!("{}\n", fte.summary());
    for f in fte.failed.iter().take(20) {
        s.push_str(&format!("  {}: {}\n", f.id, f.reason));
    }
    if fte.failed.len() > 20 {
        s.push_str(&format!(
            "  … and {} more (report.json lists all)\n",
            fte.failed.len() - 20
        ));
    }
    s
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
    let policy = MissingPolicy::from(a.missing);
    let protocol = IjbProtocol::load(&a.root, benchmark).input()?;
    let options = TemplateOptions {
        norm: !a.no_norm,
        detector_score: !a.no_detector_score,
        flip: !a.no_flip,
    };
    let mut failed = Vec::new();
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
            // A zero or non-finite row is an image the feature extractor could not enrol.
            for (i, row) in data.chunks_exact(cols.max(1)).enumerate() {
                if row.iter().any(|v| !v.is_finite()) || row.iter().all(|&v| v == 0.0) {
                    failed.push((i, "zero or non-finite feature row".to_owned()));
                }
            }
            (data, cols, a.flipped_halves)
        }
        None => {
            let embedder = Embedder::load(engine, &a.model)?;
            let template = embedder.template()?;
            let dim = embedder.dim();
            let progress = bar(protocol.faces.len(), "embed", quiet);
            let mut data = Vec::with_capacity(protocol.faces.len() * 2 * dim);
            let faces: Vec<_> = protocol
                .faces
                .iter()
                .zip(&protocol.landmarks)
                .enumerate()
                .collect();
            // 16 faces (32 crops with their mirror images) per forward pass.
            for chunk in faces.chunks(16) {
                let mut crops = Vec::with_capacity(2 * chunk.len());
                let mut slots = Vec::with_capacity(chunk.len());
                for (i, (f, l)) in chunk {
                    let path = protocol.image_dir.join(&f.image);
                    let crop = face_data::read_rgb(&path)
                        .map_err(|e| e.to_string())
                        .and_then(|img| {
                            let m = template.transform_for(&l.points).map_err(|e| e.to_string())?;
                            face_data::warp_affine(&img, &m, template.width, template.height)
                                .map_err(|e| e.to_string())
                        });
                    match crop {
                        Ok(crop) => {
                            let mirrored = image::imageops::flip_horizontal(&crop);
                            crops.push(crop);
                            crops.push(mirrored);
                            slots.push(true);
                        }
                        Err(reason) => {
                            failed.push((*i, reason));
                            slots.push(false);
                        }
                    }
                }
                // crops = [face0, mirror0, face1, mirror1, …], so consecutive embedding rows
                // are already insightface's [face | flipped face] layout; a failed face keeps
                // its row (zeros) so rows stay in face-list order.
                let rows = if crops.is_empty() {
                    Vec::new()
                } else {
                    embedder.embed(&crops.iter().collect::<Vec<_>>())?
                };
                let mut next = rows.chunks_exact(2 * dim);
                for ok in slots {
                    match if ok { next.next() } else { None } {
                        Some(r) => data.extend_from_slice(r),
                        None => data.extend(std::iter::repeat_n(0.0, 2 * dim)),
                    }
                }
                progress.inc(chunk.len() as u64);
            }
            progress.finish_and_clear();
            (data, 2 * dim, true)
        }
    };
    let mut enrolled = vec![true; protocol.faces.len()];
    for (i, _) in &failed {
        enrolled[*i] = false;
    }
    let failures: Vec<EnrolFailure> = failed
        .into_iter()
        .map(|(i, reason)| EnrolFailure {
            id: protocol.faces[i].image.clone(),
            reason,
        })
        .collect();
    if policy == MissingPolicy::Fail && !failures.is_empty() {
        let fte = FailureToEnrol::new(policy, protocol.faces.len(), failures, 0);
        return Err(bad(fte.error().to_string()));
    }
    let faceness: Vec<f32> = protocol.landmarks.iter().map(|l| l.faceness).collect();
    let feats = ImageFeatures {
        data: &features,
        width,
        flipped_halves: halves,
    };
    let (report, scores, affected) = face_eval::ijb::evaluate_enrolled(
        name,
        &protocol.faces,
        &faceness,
        feats,
        &enrolled,
        &protocol.pairs,
        options,
        &DEFAULT_FAR_TARGETS,
        policy,
    )
    .input()?;
    let fte = FailureToEnrol::new(policy, protocol.faces.len(), failures, affected);
    crate::output::ensure_parent(&a.out.join("scores.npy"))?;
    let ids: Vec<(i64, i64, bool)> = protocol
        .pairs
        .iter()
        .map(|p| (i64::from(p.a), i64::from(p.b), p.genuine))
        .collect();
    face_eval::scores::write_scores_npy(&a.out, &scores, &ids).failure()?;
    write_verification(
        &a.out,
        &report,
        json!({ "options": options, "faces": protocol.faces.len(), "failure_to_enrol": fte }),
    )?;
    Ok(Outcome::ok(
        format!(
            "{}{}→ {}/report.json, scores.npy, scores_pairs.npy, roc.svg, det.svg\n",
            report.summary(),
            fte_text(&fte),
            a.out.display()
        ),
        json!({ "command": "eval", "protocol": name, "report": report, "failure_to_enrol": fte }),
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
    let path_of = |i: &face_data::formats::lfw::LfwImage| i.relative_path().display().to_string();
    let needed: Vec<String> = pairs.images().iter().map(path_of).collect();
    let (e, failed) = embeddings(engine, source, &needed, quiet)?;
    let ids: Vec<(String, String, bool)> = pairs
        .pairs
        .iter()
        .map(|p| (path_of(&p.a), path_of(&p.b), p.same))
        .collect();
    let policy = MissingPolicy::from(source.missing);
    let en = enrol_pairs(
        &e,
        failed,
        needed.len(),
        ids.iter().map(|(a, b, g)| (a.as_str(), b.as_str(), *g)),
        policy,
    )?;
    write_pair_scores(
        out,
        ids.iter().map(|(a, b, g)| (a.as_str(), b.as_str(), "", *g)),
        &en.scored,
    )?;
    let kept = LfwPairs {
        pairs: en.applied.kept.iter().map(|&i| pairs.pairs[i].clone()).collect(),
        ..pairs.clone()
    };
    let report = face_eval::lfw::lfw_10fold(&kept, &en.applied.scores, far).input()?;
    let v = face_metrics::VerificationScores::from_pairs(&en.applied.scores[..], &en.applied.genuine[..])
        .input()?;
    let roc = VerificationReport::new("LFW", &v, &[far]).input()?;
    write_verification(out, &roc, json!({ "lfw": report, "failure_to_enrol": en.fte }))?;
    Ok(Outcome::ok(
        format!(
            "LFW {}: {}\n{}→ {}/report.json, scores.tsv, roc.svg, det.svg\n",
            pairs_path.display(),
            report.summary(),
            fte_text(&en.fte),
            out.display()
        ),
        json!({ "command": "eval", "protocol": "lfw", "report": report, "auc": roc.auc, "failure_to_enrol": en.fte }),
    ))
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

/// Scores a pair list under the policy and writes its scores.tsv.
fn enrol_list(
    engine: &Engine,
    list: &PairList,
    source: &SourceArgs,
    out: &Path,
    quiet: bool,
) -> Res<Enrolled> {
    let needed = needed_of(list);
    let (e, failed) = embeddings(engine, source, &needed, quiet)?;
    let en = enrol_pairs(
        &e,
        failed,
        needed.len(),
        list.pairs.iter().map(|p| (p.a.as_str(), p.b.as_str(), p.genuine)),
        MissingPolicy::from(source.missing),
    )?;
    write_pair_scores(
        out,
        list.pairs
            .iter()
            .map(|p| (p.a.as_str(), p.b.as_str(), p.group.as_str(), p.genuine)),
        &en.scored,
    )?;
    Ok(en)
}

fn pair_list(
    engine: &Engine,
    path: &Path,
    source: &SourceArgs,
    far: f64,
    out: &Path,
    quiet: bool,
) -> Res<Outcome> {
    let list = PairList::read(path).input()?;
    if list.pairs.is_empty() {
        return Err(bad(format!("{}: no pairs", path.display())));
    }
    if !(far > 0.0 && far < 1.0) {
        return Err(bad(format!("--far {far}: a FAR is in (0, 1)")));
    }
    let en = enrol_list(engine, &list, source, out, quiet)?;
    let kept = PairList {
        pairs: en.applied.kept.iter().map(|&i| list.pairs[i].clone()).collect(),
    };
    let name = path
        .file_name()
        .map_or("pairs".into(), |n| n.to_string_lossy().into_owned());
    let report = face_eval::pairs::pairs_report(&name, &kept, &en.applied.scores, &DEFAULT_FAR_TARGETS, far)
        .input()?;
    write_verification(
        out,
        &report.overall,
        json!({
            "threshold": report.threshold, "far_target": report.far_target,
            "far_threshold": report.far_threshold, "groups": report.groups, "spread": report.spread,
            "differentials": report.differentials, "failure_to_enrol": en.fte,
        }),
    )?;
    Ok(Outcome::ok(
        format!(
            "{}{}→ {}/report.json (also a calibration file for `verify --calibration`), scores.tsv, roc.svg, det.svg\n",
            report.summary(),
            fte_text(&en.fte),
            out.display()
        ),
        json!({ "command": "eval", "protocol": "pairs", "report": report, "failure_to_enrol": en.fte }),
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
    let mut en = enrol_list(engine, &list, source, out, quiet)?;
    // A rejected pair must stay below every fixed threshold too, not only below the real scores.
    en.applied
        .lower_floor(thresholds.iter().copied().fold(f64::INFINITY, f64::min));
    let named: Vec<face_eval::attributes::NamedPair> = en
        .applied
        .kept
        .iter()
        .map(|&i| {
            let p = &list.pairs[i];
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
    let table =
        face_eval::attributes::attribute_table(&named, &en.applied.scores, &attrs, thresholds).input()?;
    write_json(
        &out.join("report.json"),
        &json!({ "attributes": table, "failure_to_enrol": en.fte }),
    )?;
    Ok(Outcome::ok(
        format!(
            "{}{}→ {}/report.json, scores.tsv\n",
            face_eval::attributes::table_text(&table),
            fte_text(&en.fte),
            out.display()
        ),
        json!({ "command": "eval", "protocol": "celeba-attr", "table": table, "failure_to_enrol": en.fte }),
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
    let policy = MissingPolicy::from(source.missing);
    let (e, failed) = match (&source.embeddings, &source.images) {
        (None, Some(root)) => {
            let items = crate::engine::collect_images(std::slice::from_ref(root))?;
            let ids: Vec<String> = items.into_iter().map(|(id, _)| id).collect();
            embeddings(engine, source, &ids, quiet)?
        }
        _ => embeddings(engine, source, &[], quiet)?,
    };
    let map = labels
        .map(|p| face_data::read_identity_labels(p).input().map(|m| (p, m)))
        .transpose()?;
    let identity_of = |id: &str| -> Res<String> {
        match &map {
            Some((p, m)) => m
                .get(id)
                .cloned()
                .ok_or_else(|| bad(format!("{}: no identity for {id:?}", p.display()))),
            None => Ok(Path::new(id)
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default()),
        }
    };
    let identity: Vec<String> = e.ids().iter().map(|id| identity_of(id)).collect::<Res<_>>()?;
    // A failed image of an identity with n images would have been one of its n − 1 probes (or
    // its gallery image, whose place the next image takes): min(failed, n − 1) lost probes.
    let mut per: std::collections::HashMap<String, (usize, usize)> = std::collections::HashMap::new();
    for l in &identity {
        per.entry(l.clone()).or_default().0 += 1;
    }
    for f in &failed {
        let entry = per.entry(identity_of(&f.id)?).or_default();
        entry.0 += 1;
        entry.1 += 1;
    }
    let affected: usize = per.values().map(|&(n, f)| f.min(n.saturating_sub(1))).sum();
    let fte = FailureToEnrol::new(policy, e.len() + failed.len(), failed, affected);
    if policy == MissingPolicy::Fail && !fte.failed.is_empty() {
        return Err(bad(fte.error().to_string()));
    }
    let rejected = if policy == MissingPolicy::Reject {
        affected
    } else {
        0
    };
    let report = face_eval::identify::identify_with_rejected(&e, &identity, top, rejected).input()?;
    write_json(
        &out.join("report.json"),
        &json!({ "identify": report, "failure_to_enrol": fte }),
    )?;
    Ok(Outcome::ok(
        format!(
            "{}\n{}→ {}/report.json\n",
            report.summary(),
            fte_text(&fte),
            out.display()
        ),
        json!({ "command": "eval", "protocol": "identify", "report": report, "failure_to_enrol": fte }),
    ))
}

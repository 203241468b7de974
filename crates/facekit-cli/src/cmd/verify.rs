//! `facekit verify`: compare the largest faces of two images.

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::{json, Value};

use crate::args::ModelArgs;
use crate::engine::{embed_items, Embedder, Engine};
use crate::error::{bad, Classify, Res};
use crate::output::Outcome;

/// Options of `facekit verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// First image.
    pub a: PathBuf,
    /// Second image.
    pub b: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Accept when the cosine score is at least this.
    #[arg(long, conflicts_with = "far")]
    pub threshold: Option<f64>,
    /// Decide at this false accept rate, using the thresholds of a calibration report.
    #[arg(long)]
    pub far: Option<f64>,
    /// A report.json written by `facekit eval` for this model (default for the bundled
    /// teacher: models/fr_feature.calibration.json).
    #[arg(long)]
    pub calibration: Option<PathBuf>,
}

/// Runs `facekit verify`.
pub fn run(engine: &Engine, a: VerifyArgs) -> Res<Outcome> {
    verify(
        engine,
        &a.a,
        &a.b,
        &a.model,
        a.threshold,
        a.far,
        a.calibration.as_deref(),
    )
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
    model: &ModelArgs,
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
                None if matches!(embedder, Embedder::Spec { bundled: true, .. }) => default_calibration,
                None => return Err(bad("a model other than the bundled teacher needs --threshold, or --far with --calibration (a report of `facekit eval` for it)")),
            };
            let far = far.unwrap_or(1e-2);
            let (t, entry, impostors) = calibrated_threshold(&path, far)?;
            // The finest FAR a calibration set can show is one impostor in all of them.
            let resolved = if impostors > 0 {
                1.0 / impostors as f64
            } else {
                f64::NAN
            };
            if impostors > 0 && far < resolved {
                eprintln!(
                    "facekit: warning: {} has {impostors} impostor pairs, so it resolves FAR down to \
                     1/{impostors} = {resolved:.1e}, not the {far:e} asked for; the threshold accepts none of them. \
                     Calibrate on more pairs with `facekit eval pairs` and pass --calibration.",
                    path.display()
                );
            }
            (
                t,
                json!({
                    "calibration": path, "far": far, "entry": entry, "calibration_impostors": impostors,
                    "resolved_far": (impostors > 0).then_some(resolved),
                }),
            )
        }
    };
    let items = vec![
        (a.display().to_string(), a.to_path_buf()),
        (b.display().to_string(), b.to_path_buf()),
    ];
    let (ids, data, misses) = embed_items(engine, &embedder, model.aligned, false, &items, true)?;
    if ids.len() != 2 {
        return Err(bad(crate::engine::describe(&misses)));
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
            (Some(c), Some(f)) => format!(
                "FAR {} per {}, which resolves FAR down to 1/{} impostor pairs",
                f,
                c.as_str().unwrap_or_default(),
                source["calibration_impostors"]
            ),
            _ => "given threshold".to_owned(),
        }
    );
    Ok(Outcome {
        human,
        json: summary,
        code: if same { 0 } else { 1 },
    })
}

//! `facekit export`: a model folder (a distillation run) in PyTorch layout or as ONNX.

use std::path::PathBuf;
use std::time::Instant;

use burn::backend::NdArray;
use clap::{Args, ValueEnum};
use serde_json::json;

use crate::error::{bad, Classify, Res};
use crate::output::Outcome;

/// Export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// safetensors with the PyTorch reference classes' state-dict names, plus a JSON sidecar.
    Torch,
    /// An ONNX graph (opset 17, BatchNorms folded, dynamic batch axis, named outputs).
    Onnx,
}

/// Options of `facekit export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A model folder (`model.json` + `student.bin`), or a `facekit distill` output folder
    /// holding one in `run/`.
    pub run_dir: PathBuf,
    /// torch or onnx.
    #[arg(long, value_enum)]
    pub format: Format,
    /// The file to write (`.safetensors` or `.onnx`; the torch sidecar goes to `<FILE>.json`).
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `facekit export`.
pub fn run(a: ExportArgs) -> Res<Outcome> {
    let config = face_nets::model::files::CONFIG;
    let dir = if a.run_dir.join(config).is_file() {
        a.run_dir.clone()
    } else if a.run_dir.join("run").join(config).is_file() {
        a.run_dir.join("run")
    } else {
        return Err(bad(format!(
            "{}: no {config} here or in run/ (a folder written by `facekit distill`)",
            a.run_dir.display()
        )));
    };
    let t0 = Instant::now();
    let (model_config, model) = face_nets::load_model::<NdArray>(&dir, &Default::default()).input()?;
    let loaded = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let mut files = vec![a.out.clone()];
    match a.format {
        Format::Torch => {
            face_nets::export::write_torch(&model, &model_config, &a.out).input()?;
            files.push(face_nets::export::sidecar_path(&a.out));
        }
        Format::Onnx => face_nets::export::write_onnx(&model, &model_config, &a.out).input()?,
    }
    let wrote = t1.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&a.out).map(|m| m.len()).failure()?;
    let format = match a.format {
        Format::Torch => "torch",
        Format::Onnx => "onnx",
    };
    let summary = json!({
        "command": "export", "model": dir, "format": format, "files": files, "bytes": bytes,
        "backbone": model_config.backbone.arch(), "embedding_dim": model_config.embedding_dim,
        "age_bins": model_config.age_bins.len(), "load_seconds": loaded, "export_seconds": wrote,
    });
    Ok(Outcome::ok(
        format!(
            "{} ({}, {}-d) → {} ({format}, {bytes} bytes, {:.2} s)\n",
            dir.display(),
            model_config.backbone.arch(),
            model_config.embedding_dim,
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(" + "),
            wrote
        ),
        summary,
    ))
}

//! `facekit oversample`: ML-ROS of a label table, with the imbalance report.

use std::path::{Path, PathBuf};

use clap::Args;
use face_data::imbalance::{imbalance, ml_ros, MlRosConfig};
use serde_json::json;

use crate::error::{Classify, Res};
use crate::output::{write_file, write_json, Outcome};

/// Options of `facekit oversample`.
#[derive(Debug, Args)]
pub struct OversampleArgs {
    /// The label table.
    #[arg(long)]
    pub labels: PathBuf,
    /// Output CSV: the original rows, then the replicated ones.
    #[arg(long)]
    pub out: PathBuf,
    /// Stop once the mean imbalance ratio is at most this.
    #[arg(long, default_value_t = 1.5)]
    pub target_mean_ir: f64,
    /// Add at most this many rows (default: as many as the table has).
    #[arg(long)]
    pub max_added: Option<usize>,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Runs `facekit oversample`.
pub fn run(a: OversampleArgs) -> Res<Outcome> {
    oversample(&a.labels, &a.out, a.target_mean_ir, a.max_added, a.seed)
}

fn oversample(labels: &Path, out: &Path, target: f64, max_added: Option<usize>, seed: u64) -> Res<Outcome> {
    let face_data::LabelFile { header, rows, table } = face_data::read_label_table(labels).input()?;
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

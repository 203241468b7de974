//! `facekit lexicon`: lexical analysis of caption files.

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use crate::error::{bad, Classify, Res};
use crate::output::Outcome;

/// Options of `facekit lexicon`.
#[derive(Debug, Args)]
pub struct LexiconArgs {
    /// Caption files.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output folder (report.json, top_terms.svg, top_names.svg).
    #[arg(long)]
    pub out: PathBuf,
    /// Caption column.
    #[arg(long, default_value = "caption")]
    pub column: String,
    /// Person names to count (one per line).
    #[arg(long)]
    pub names: Option<PathBuf>,
    /// Terms per table.
    #[arg(long, default_value_t = 50)]
    pub top: usize,
    /// Longest n-gram.
    #[arg(long, default_value_t = 3)]
    pub ngram: usize,
}

/// Runs `facekit lexicon`.
pub fn run(a: LexiconArgs, quiet: bool) -> Res<Outcome> {
    lexicon(
        &a.inputs,
        &a.out,
        &a.column,
        a.names.as_deref(),
        a.top,
        a.ngram,
        quiet,
    )
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

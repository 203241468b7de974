//! Lexical analysis of caption corpora (LAION-Face style metadata): which words, names and
//! identity-bearing patterns the captions carry.
//!
//! ```sh
//! cargo run --release --example lexicon -- --names crates/face-data/tests/fixtures/captions/names.txt \
//!     --out out/lexicon crates/face-data/tests/fixtures/captions/captions.parquet
//! ```
//! Options: `--column NAME` (default `caption`), `--names FILE` (one name per line),
//! `--top N` (default 50), `--ngram N` (default 3), `--out DIR` (default `out/lexicon`).
//! Inputs: `.parquet`, `.csv`, `.tsv`, `.jsonl` files. Writes `report.json`, `top_terms.svg`,
//! `top_names.svg` and prints a summary.

use std::path::PathBuf;

use face_data::captions::{analyze_files, LexiconConfig};
use indicatif::{ProgressBar, ProgressStyle};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = LexiconConfig::default();
    let (mut column, mut out, mut inputs) = ("caption".to_owned(), PathBuf::from("out/lexicon"), Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |flag: &str| args.next().ok_or_else(|| format!("{flag} needs a value"));
        match a.as_str() {
            "--column" => column = value("--column")?,
            "--names" => config.names = LexiconConfig::read_names(value("--names")?.as_ref())?,
            "--top" => config.top = value("--top")?.parse()?,
            "--ngram" => config.max_ngram = value("--ngram")?.parse()?,
            "--out" => out = value("--out")?.into(),
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}").into()),
            file => inputs.push(PathBuf::from(file)),
        }
    }
    if inputs.is_empty() {
        return Err("no input files (give .parquet, .csv, .tsv or .jsonl paths)".into());
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template(
        "{spinner} {pos} rows read, {per_sec} [{elapsed}]",
    )?);
    let report = analyze_files(&inputs, &column, config, &mut |rows| bar.set_position(rows))?;
    bar.finish_and_clear();
    report.write(&out)?;
    print!("{}", report.summary());
    println!(
        "wrote {}/report.json, top_terms.svg, top_names.svg",
        out.display()
    );
    Ok(())
}

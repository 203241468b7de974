//! `facekit`: the command-line program of the facekit workspace.
//!
//! Every command prints a short human summary (or, with `--json`, one JSON
//! object on stdout), writes its files atomically (a crash never leaves a file
//! that looks complete), and exits with a code scripts can trust:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success (`verify`: same person) |
//! | 1 | `verify`: different persons |
//! | 2 | bad command line (unknown option or value, missing argument) |
//! | 3 | bad input: a missing or malformed file, no face found, mismatched dimensions, an empty gallery, an unknown configuration key |
//! | 4 | failure while running: writing output, an unavailable device |
//!
//! Layout: one module per command under [`cmd`] with its own typed `Args`; [`args`] holds the
//! options several commands share, [`engine`] the models and the image → face → embedding path,
//! [`output`] what a command returns and how it writes. Modules depend downwards only
//! (`cmd` → `engine` → `args`/`output` → `error`); this file dispatches.

mod args;
mod cmd;
mod engine;
mod error;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::engine::Engine;
use crate::error::{CliError, Res};
use crate::output::Outcome;

/// Face detection, alignment, embedding, distillation, self-supervised pretraining, evaluation and search.
#[derive(Debug, Parser)]
#[command(name = "facekit", version, about, long_about = None)]
struct Cli {
    /// Print one JSON object on stdout instead of the human summary.
    #[arg(long, global = true)]
    json: bool,
    /// Directory of the bundled models (default: $FACEKIT_MODELS, else the repository's models/).
    #[arg(long, global = true, value_name = "DIR")]
    models: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Detect faces (MTCNN): boxes, scores and 5 landmarks per image, as JSON.
    Detect(cmd::detect::DetectArgs),
    /// Detect and align faces to the ArcFace template; writes PNG crops and a manifest.
    Align(cmd::align::AlignArgs),
    /// Embed the largest face of each image into a gallery file (.fkg) whose ids are the image paths.
    Embed(cmd::embed::EmbedArgs),
    /// Cut faces from a folder and run both teachers once into the target cache (resumable).
    Teach(cmd::teach::TeachArgs),
    /// Distil a student from the two teachers (teach + train), as the quickstart does.
    Distill(cmd::distill::DistillArgs),
    /// Export a distilled model: PyTorch layout (safetensors + JSON sidecar) or ONNX.
    Export(cmd::export::ExportArgs),
    /// Self-supervised pretraining of a ViT on unlabelled faces: LAFS (landmark tokens) or DINO.
    Pretrain(cmd::pretrain::PretrainArgs),
    /// Evaluation protocols (reports as JSON plus ROC/DET pictures).
    #[command(subcommand)]
    Eval(cmd::eval::EvalCommand),
    /// Compare the largest faces of two images: score and decision.
    Verify(cmd::verify::VerifyArgs),
    /// 1:N search of query faces (images or a query gallery) in a gallery file.
    Search(cmd::search::SearchArgs),
    /// Multi-label random oversampling (ML-ROS) of a label table (CSV: id, then one column per attribute).
    Oversample(cmd::oversample::OversampleArgs),
    /// Lexical analysis of caption files (.parquet, .csv, .tsv, .jsonl).
    Lexicon(cmd::lexicon::LexiconArgs),
}

/// Runs the parsed command line.
fn run(cli: Cli) -> Res<Outcome> {
    let quiet = cli.json;
    let engine = Engine::new(cli.models);
    match cli.command {
        Command::Detect(a) => cmd::detect::run(engine, a, quiet),
        Command::Align(a) => cmd::align::run(&engine, a, quiet),
        Command::Embed(a) => cmd::embed::run(&engine, a, quiet),
        Command::Teach(a) => cmd::teach::run(&engine, a, quiet),
        Command::Distill(a) => cmd::distill::run(&engine, a, quiet),
        Command::Pretrain(a) => cmd::pretrain::run(&engine, a, quiet),
        Command::Export(a) => cmd::export::run(a),
        Command::Eval(e) => cmd::eval::run(&engine, e, quiet),
        Command::Verify(a) => cmd::verify::run(&engine, a),
        Command::Search(a) => cmd::search::run(&engine, a, quiet),
        Command::Oversample(a) => cmd::oversample::run(a),
        Command::Lexicon(a) => cmd::lexicon::run(a, quiet),
    }
}

fn main() -> ExitCode {
    face_nets::keep_freed_memory();
    let cli = Cli::parse();
    let json = cli.json;
    match run(cli) {
        Ok(outcome) => {
            if json {
                println!("{}", outcome.json);
            } else {
                print!("{}", outcome.human);
            }
            ExitCode::from(outcome.code)
        }
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "error": e.to_string(), "exit_code": e.code() })
                );
            }
            eprintln!("facekit: {e}");
            ExitCode::from(e.code())
        }
    }
}

impl CliError {
    /// The process exit code of this error.
    pub fn code(&self) -> u8 {
        match self {
            CliError::Input(_) => 3,
            CliError::Failure(_) => 4,
        }
    }
}

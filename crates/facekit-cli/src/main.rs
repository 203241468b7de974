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
//! | 2 | bad command line (unknown option, missing argument) |
//! | 3 | bad input: a missing or malformed file, no face found, mismatched dimensions, an empty gallery |
//! | 4 | failure while running: writing output, an unavailable device |

mod commands;
mod engine;
mod error;
mod eval_cmd;
mod pretrain_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::error::CliError;

/// Face detection, alignment, embedding, distillation, self-supervised pretraining, evaluation and search.
#[derive(Debug, Parser)]
#[command(name = "facekit", version, about, long_about = None)]
pub struct Cli {
    /// Print one JSON object on stdout instead of the human summary.
    #[arg(long, global = true)]
    pub json: bool,
    /// Directory of the bundled models (default: $FACEKIT_MODELS, else the repository's models/).
    #[arg(long, global = true, value_name = "DIR")]
    pub models: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// Where a face embedding comes from.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// `teacher` (the bundled identity teacher, 512-d) or a distillation run directory
    /// (its `config.json` + `student.bin`).
    #[arg(long, default_value = "teacher", value_name = "teacher|RUN_DIR")]
    pub model: String,
    /// Images are already aligned crops of the model's input size (skip detection).
    #[arg(long)]
    pub aligned: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Detect faces (MTCNN): boxes, scores and 5 landmarks per image, as JSON.
    Detect {
        /// Image files or folders (searched recursively for jpg/jpeg/png).
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Write the detections here (JSON).
        #[arg(long, default_value = "detections.json")]
        out: PathBuf,
        /// Smallest face searched for, in pixels (≥ 12).
        #[arg(long, default_value_t = 20.0)]
        min_face: f64,
    },
    /// Detect and align faces to the ArcFace template; writes PNG crops and a manifest.
    Align {
        /// Image files or folders.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Crop side in pixels.
        #[arg(long, default_value_t = 112)]
        size: u32,
        /// Every face, not only the largest of each image.
        #[arg(long)]
        all: bool,
    },
    /// Embed the largest face of each image into a gallery file (.fkg) whose ids are the image paths.
    Embed {
        /// Image files or folders (ids: paths relative to a folder argument, or as given).
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Output gallery file.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        model: ModelArgs,
        /// Also embed the mirrored face; rows become [embedding | flipped embedding]
        /// (insightface's IJB layout), stored raw (f32, not normalised).
        #[arg(long)]
        flip: bool,
        /// Storage: f32, f16, int8 or sparse.
        #[arg(long, default_value = "f32")]
        storage: String,
        /// Keep the raw embedding norms (f32 only); default: L2-normalised rows for cosine search.
        #[arg(long)]
        raw: bool,
    },
    /// Cut faces from a folder and run both teachers once into the target cache (resumable).
    Teach {
        /// Folder of images.
        #[arg(long)]
        images: PathBuf,
        /// Output folder: faces/ and targets.safetensors.
        #[arg(long)]
        out: PathBuf,
    },
    /// Distil a student from the two teachers (teach + train), as the quickstart does.
    Distill {
        /// Folder of images (unlabelled).
        #[arg(long)]
        images: PathBuf,
        /// Output folder (faces/, targets.safetensors, run/).
        #[arg(long)]
        out: PathBuf,
        /// Identities of some images (`id,identity` CSV) for the validation report.
        #[arg(long)]
        labels: Option<PathBuf>,
        /// A configuration file (JSON, as written into run/config.json); default: the built-in one.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override a configuration key, e.g. `--set train.epochs=5` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// cpu (NdArray), candle, cuda or cuda:0,1.
        #[arg(long, default_value = "candle")]
        device: String,
    },
    /// Self-supervised pretraining of a ViT on unlabelled faces: LAFS (landmark tokens) or DINO.
    Pretrain {
        /// Folder of images; every face MTCNN finds is aligned with its landmarks.
        #[arg(long)]
        images: PathBuf,
        /// Output folder: config.json, backbone.bin, head.bin, history.json, monitors.svg.
        #[arg(long)]
        out: PathBuf,
        /// `lafs` (patches on facial landmarks) or `dino` (a regular patch grid).
        #[arg(long, default_value = "lafs")]
        method: String,
        /// `vit-tiny` (ViT-Tiny, 65 536 prototypes, the paper recipe) or `tiny` (a CPU demo).
        #[arg(long, default_value = "vit-tiny")]
        preset: String,
        /// A configuration file (JSON, as written into config.json) instead of the preset.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override a configuration key, e.g. `--set optim.epochs=5` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// cpu (NdArray), candle, or cuda / cuda:N.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Identities of some images (`image,identity` CSV): a 1-shot read-out after training.
        #[arg(long)]
        labels: Option<PathBuf>,
    },
    /// Evaluation protocols (reports as JSON plus ROC/DET pictures).
    #[command(subcommand)]
    Eval(eval_cmd::EvalCommand),
    /// Compare the largest faces of two images: score and decision.
    Verify {
        /// First image.
        a: PathBuf,
        /// Second image.
        b: PathBuf,
        #[command(flatten)]
        model: ModelArgs,
        /// Accept when the cosine score is at least this.
        #[arg(long, conflicts_with = "far")]
        threshold: Option<f64>,
        /// Decide at this false accept rate, using the thresholds of a calibration report.
        #[arg(long)]
        far: Option<f64>,
        /// A report.json written by `facekit eval` for this model (default for the bundled
        /// teacher: models/fr_feature.calibration.json).
        #[arg(long)]
        calibration: Option<PathBuf>,
    },
    /// 1:N search of query faces (images or a query gallery) in a gallery file.
    Search {
        /// The gallery (.fkg, from `facekit embed`).
        #[arg(long)]
        gallery: PathBuf,
        /// Query images (their largest face is embedded with --model).
        queries: Vec<PathBuf>,
        /// Or: a gallery file of query embeddings.
        #[arg(long, conflicts_with = "queries")]
        query_embeddings: Option<PathBuf>,
        #[command(flatten)]
        model: ModelArgs,
        /// Results per query.
        #[arg(short, long, default_value_t = 5)]
        k: usize,
        /// Also write the results here (JSON).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Multi-label random oversampling (ML-ROS) of a label table (CSV: id, then one column per attribute).
    Oversample {
        /// The label table.
        #[arg(long)]
        labels: PathBuf,
        /// Output CSV: the original rows, then the replicated ones.
        #[arg(long)]
        out: PathBuf,
        /// Stop once the mean imbalance ratio is at most this.
        #[arg(long, default_value_t = 1.5)]
        target_mean_ir: f64,
        /// Add at most this many rows (default: as many as the table has).
        #[arg(long)]
        max_added: Option<usize>,
        /// Random seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Lexical analysis of caption files (.parquet, .csv, .tsv, .jsonl).
    Lexicon {
        /// Caption files.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Output folder (report.json, top_terms.svg, top_names.svg).
        #[arg(long)]
        out: PathBuf,
        /// Caption column.
        #[arg(long, default_value = "caption")]
        column: String,
        /// Person names to count (one per line).
        #[arg(long)]
        names: Option<PathBuf>,
        /// Terms per table.
        #[arg(long, default_value_t = 50)]
        top: usize,
        /// Longest n-gram.
        #[arg(long, default_value_t = 3)]
        ngram: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    match commands::run(cli) {
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

//! Detects faces with MTCNN and prints one JSON line per image (boxes, scores, landmarks).
//!
//! ```text
//! cargo run --release -p face-detect --example detect -- data/faces/obama.jpg data/faces/t1.jpg [--candle]
//! ```

// burn-candle is marked deprecated in Burn 0.21; offered for comparison (NdArray is faster here).
#![allow(deprecated)]

use burn::backend::candle::Candle;
use burn::backend::NdArray;
use burn::tensor::backend::Backend;
use face_detect::{Mtcnn, MtcnnConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--candle") {
        run::<Candle>()
    } else {
        run::<NdArray>()
    }
}

/// NdArray by default (`--candle` for Candle).
fn run<B: Backend>() -> Result<(), Box<dyn std::error::Error>> {
    let models = std::env::var_os("FACEKIT_MODELS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"));
    let device = Default::default();
    let mtcnn = Mtcnn::<B>::load(&models, MtcnnConfig::default(), &device)?;
    let paths: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if paths.is_empty() {
        eprintln!("usage: detect IMAGE...");
        std::process::exit(2);
    }
    for path in paths {
        let img = face_data::read_rgb(path.as_ref())?;
        let (faces, stats) = mtcnn.detect_with_stats(&img);
        println!(
            "{}",
            serde_json::json!({ "image": path, "faces": faces, "stats": stats })
        );
    }
    Ok(())
}

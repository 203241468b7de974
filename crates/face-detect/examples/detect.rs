//! Detects faces with MTCNN and prints one JSON line per image (boxes, scores, landmarks).
//!
//! ```text
//! cargo run --release -p face-detect --example detect -- data/faces/obama.jpg data/faces/t1.jpg
//! ```

use burn::backend::NdArray;
use face_detect::{Mtcnn, MtcnnConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let models = std::env::var_os("FACEKIT_MODELS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"));
    let device = Default::default();
    let mtcnn = Mtcnn::<NdArray>::load(&models, MtcnnConfig::default(), &device)?;
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: detect IMAGE...");
        std::process::exit(2);
    }
    for path in paths {
        let img = face_data::read_rgb(path.as_ref())?;
        let faces = mtcnn.detect(&img);
        println!("{}", serde_json::json!({ "image": path, "faces": faces }));
    }
    Ok(())
}
